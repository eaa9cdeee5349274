"""The paths that change on a GPU, on every device this machine has: the CPU always, CUDA where it is available
(`make gpu-check` runs this file there). Each compares the device's result with the CPU's.

- uint8 clips normalised on the device (``uint8_batches``): the CPU path's values bit for bit.
- AdamW's ``auto`` implementation (fused on CUDA, foreach elsewhere) against the for-loop reference.
- A 3-step Lightning fit of a tiny model on the device, fp32 and bf16-mixed, against the CPU's fp32 fit from the
  same seed: the losses agree within bf16's tolerance (rel 2e-2, see tests/test_precision.py; CUDA's convolutions
  may run in TF32, 10 significant bits).
"""

from __future__ import annotations

import lightning as L
import pytest
import torch

from jepa_lit.data.synthetic import SyntheticMotionDataModule
from jepa_lit.data.transforms import normalize_on_device
from jepa_lit.masks import BlockGenerator, MultiBlock3D
from jepa_lit.models import VisionTransformer
from jepa_lit.module import JEPAModule
from jepa_lit.schedules import OptimizerConfig

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
REL_TOLERANCE = 2e-2


@pytest.mark.parametrize("device", DEVICES)
def test_uint8_clips_normalised_on_the_device_equal_the_cpu_path(device):
    clips = torch.randint(0, 256, (2, 3, 4, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    clips[0, :, 0, 0, 0] = 0
    clips[0, :, 0, 0, 1] = 255  # both ends of the range
    on_device = normalize_on_device(clips.to(device)).cpu()
    assert on_device.dtype == torch.float32
    assert torch.equal(on_device, normalize_on_device(clips))


@pytest.mark.parametrize("device", DEVICES)
def test_adamw_auto_on_the_device_matches_the_for_loop_reference(device):
    def steps(kwargs: dict) -> list[torch.Tensor]:
        torch.manual_seed(0)
        layer = torch.nn.Linear(16, 8).to(device)
        optimizer = torch.optim.AdamW(layer.parameters(), lr=1e-2, weight_decay=0.05, **kwargs)
        data = torch.randn(4, 16, generator=torch.Generator().manual_seed(1)).to(device)
        for _ in range(3):
            layer(data).square().mean().backward()
            optimizer.step()
            optimizer.zero_grad()
        return [p.detach().cpu() for p in layer.parameters()]

    auto = OptimizerConfig(implementation="auto").adamw_kwargs(device)
    assert auto == ({"fused": True, "foreach": False} if device == "cuda" else {"fused": False, "foreach": True})
    reference = steps(OptimizerConfig(implementation="for-loop").adamw_kwargs(device))
    for got, want in zip(steps(auto), reference):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    initial = torch.nn.Linear(16, 8)  # and the steps moved the weights
    assert not torch.allclose(reference[0], initial.weight.detach())


def tiny_fit_losses(accelerator: str, precision: str) -> list[dict[str, float]]:
    L.seed_everything(0)  # weights, data order and masks
    encoder = VisionTransformer(size="tiny", depth=2, num_frames=8, img_size=32)
    masks = MultiBlock3D(generators=[BlockGenerator(2, (0.25, 0.25)), BlockGenerator(1, (0.5, 0.5))])
    module = JEPAModule(encoder, masks, predictor_width=32, predictor_depth=1, predictor_heads=2,
                        context_loss_start=0.0)
    data = SyntheticMotionDataModule(num_clips=10, num_frames=8, crop_size=32, batch_size=2)
    trainer = L.Trainer(max_steps=3, accelerator=accelerator, devices=1, precision=precision, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        limit_val_batches=0, num_sanity_val_steps=0)
    losses = []

    class Record(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            losses.append({k: v.item() for k, v in pl_module.last_step.terms.items()})

    trainer.callbacks.append(Record())
    trainer.fit(module, datamodule=data)
    assert trainer.global_step == 3
    return losses


@pytest.mark.slow
@pytest.mark.usefixtures("one_thread")
@pytest.mark.filterwarnings("ignore:The number of training batches")
@pytest.mark.parametrize("device", DEVICES)
def test_a_tiny_fit_on_the_device_matches_the_cpu_fp32_fit(device):
    reference = tiny_fit_losses("cpu", "32-true")
    precisions = ["32-true", "bf16-mixed"] if device == "cuda" else ["32-true"]
    for precision in precisions:
        losses = tiny_fit_losses(device, precision)
        assert [set(step) for step in losses] == [{"pred", "context"}] * 3
        for got, want in zip(losses, reference):
            for name, value in want.items():
                assert got[name] == pytest.approx(value, rel=REL_TOLERANCE, abs=1e-6), (device, precision, name)
