"""compile_model: true on the CPU with token counts that change from one mask draw to the next."""

import copy

import pytest
import torch

from jepa_lit.callbacks.term_gradients import TermGradientNorms
from jepa_lit.masks import BlockGenerator, MultiBlock3D
from jepa_lit.models import VisionTransformer
from jepa_lit.module import JEPAModule


def small_module(compile_model: bool) -> JEPAModule:
    encoder = VisionTransformer(size="tiny", depth=2, num_levels=2, num_frames=8, img_size=64)
    masks = MultiBlock3D(generators=[BlockGenerator(2, (0.15, 0.3)), BlockGenerator(1, (0.3, 0.6))], seed=0)
    return JEPAModule(encoder, masks, predictor_width=32, predictor_depth=1, predictor_heads=2,
                      context_loss_start=0.0, context_loss_end=0.0, compile_model=compile_model)


def step_terms(module: JEPAModule, clip: torch.Tensor, step: int):
    outputs = module.forward_step(clip, step)
    terms = module.loss_terms(outputs)
    counts = [out.masks.context.shape[1] for groups in outputs.generators for out in groups]
    return terms, counts


@pytest.mark.slow
def test_compiled_steps_follow_changing_token_counts_and_allow_term_gradients():
    torch.manual_seed(0)
    eager = small_module(compile_model=False)
    compiled = small_module(compile_model=True)
    compiled.load_state_dict(eager.state_dict())
    compiled.configure_model()
    clip = torch.randn(2, 3, 8, 64, 64)
    seen = set()
    for step in range(3):
        terms, counts = step_terms(compiled, clip, step)
        expected, expected_counts = step_terms(eager, clip, step)
        assert counts == expected_counts
        seen.add(tuple(counts))
        for name in expected:
            assert torch.allclose(terms[name], expected[name], rtol=1e-4, atol=1e-5), name
        # Extra gradients with the graph retained (what TermGradientNorms and the non-finite diagnosis
        # do), then the step's own backward through the same compiled graph.
        params = [p for p in compiled.encoder.parameters() if p.requires_grad]
        assert TermGradientNorms.gradient_norm(terms["pred"], params) > 0
        torch.stack(list(terms.values())).sum().backward()
        torch.stack(list(expected.values())).sum().backward()
        for (name, p), q in zip(compiled.encoder.named_parameters(), eager.encoder.parameters()):
            assert torch.allclose(p.grad, q.grad, rtol=1e-3, atol=1e-6), name
        compiled.zero_grad(), eager.zero_grad()
    assert len(seen) == 3  # every step had its own token counts
