"""AdamW's fused, foreach and for-loop paths give the same parameters (to float rounding)."""

import copy

import pytest
import torch

from jepa_lit.masks import BlockGenerator, MultiBlock3D
from jepa_lit.models import VisionTransformer
from jepa_lit.module import JEPAModule
from jepa_lit.schedules import OptimizerConfig


def test_auto_is_fused_on_cuda_and_foreach_elsewhere():
    config = OptimizerConfig()
    assert config.adamw_kwargs("cuda") == {"fused": True, "foreach": False}
    assert config.adamw_kwargs("cpu") == {"fused": False, "foreach": True}
    assert OptimizerConfig(implementation="for-loop").adamw_kwargs("cuda") == {"fused": False, "foreach": False}
    with pytest.raises(ValueError, match="optimizer.implementation='fast'"):
        OptimizerConfig(implementation="fast").adamw_kwargs("cpu")


def test_implementations_agree_over_three_steps():
    """The same gradients (random, seeded) into each implementation: the parameters agree within 1e-6.
    (Gradients from the model would differ in rounding between the runs, and Adam scales a tiny gradient
    to a full lr step, so the comparison would measure the model, not the optimizer.)"""
    encoder = VisionTransformer(size="tiny", depth=2, num_levels=2, num_frames=4, img_size=32)
    reference = JEPAModule(encoder, MultiBlock3D(generators=[BlockGenerator(1, (0.3, 0.3))], seed=0),
                           predictor_width=32, predictor_depth=1, predictor_heads=2)
    params = {}
    for implementation in ("for-loop", "foreach", "fused"):
        module = copy.deepcopy(reference)
        module.optim = OptimizerConfig(implementation=implementation, lr=1e-3, start_lr=1e-3)
        optimizer = module.configure_optimizers()["optimizer"]
        assert optimizer.defaults["foreach"] == (implementation == "foreach")
        assert optimizer.defaults["fused"] == (implementation == "fused")
        generator = torch.Generator().manual_seed(0)
        for _ in range(3):
            for p in module.parameters():
                if p.requires_grad:
                    p.grad = torch.randn(p.shape, generator=generator) * 1e-2
            optimizer.step()
        params[implementation] = torch.cat([p.detach().flatten() for p in module.parameters()])
    moved = (params["for-loop"] - torch.cat([p.detach().flatten() for p in reference.parameters()])).abs().max()
    assert moved > 1e-4  # the steps changed the weights, so agreeing below means something
    for implementation in ("foreach", "fused"):
        assert torch.allclose(params[implementation], params["for-loop"], rtol=0, atol=1e-6), implementation
