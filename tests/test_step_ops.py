"""One study step's host waits and operator count, for the base recipe and for a study config with every
objective and motion-guided future masks (MotionFuture: MG's block placement, the future complement).

The syncs are counted as in test_sync_points.py (its SyncCounter, the sampler's copies included); the ops
with a TorchDispatchMode, which sees every aten operator the step runs (forward, backward, AdamW, EMA): on
a GPU each is about one kernel launch (the sampler's host-side draw runs on the CPU by design and is
counted apart). ``python tests/test_step_ops.py`` prints both for the two configs (docs/performance.md).
"""

import sys
from collections import Counter
from pathlib import Path

import lightning as L
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

sys.path.insert(0, str(Path(__file__).parent))
from test_sync_points import (BASE_STEP_SYNCS, CountStep, SyncCounter, by_file,  # noqa: E402
                              device_syncs, hard_weighted_fwm_ld, study_module)

from jepa_lit.data.synthetic import SyntheticMotionDataModule  # noqa: E402
from jepa_lit.masks import BlockGenerator, MotionFuture  # noqa: E402
from jepa_lit.objectives import (ActionConditioned, Delta, FactorizedWorldModel, Hamiltonian,  # noqa: E402
                                 HardWeighting, Kinematic, LatentDynamics, LatentTemporalContrastive, SIGReg,
                                 Spectral, VelocityGate)


class OpCounter(TorchDispatchMode):
    """Counts aten operators while ``active``; those run inside the mask sampler's host-side draw
    (``MultiBlock3D.target_masks``: block shapes and positions, CPU tensors by design) apart."""

    def __init__(self):
        super().__init__()
        self.active, self.in_sampler_draw = False, False
        self.ops, self.sampler_draw_ops = Counter(), Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if self.active:
            (self.sampler_draw_ops if self.in_sampler_draw else self.ops)[str(func.overloadpacket)] += 1
        return func(*args, **(kwargs or {}))


class CountOps(L.Callback):
    """Enters the dispatch mode for the second training batch (batch start to batch end)."""

    def __init__(self, counter: OpCounter):
        self.counter = counter

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if batch_idx == 1:
            self.counter.active = True
            self.counter.__enter__()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if self.counter.active:
            self.counter.active = False
            self.counter.__exit__(None, None, None)


def all_objectives() -> list:
    return [Delta(), Kinematic(), HardWeighting(), LatentDynamics(hidden_dim=16), hard_weighted_fwm_ld(),
            ActionConditioned(hidden_dim=16), FactorizedWorldModel(), Hamiltonian(hidden_dim=16),
            LatentTemporalContrastive(), SIGReg(num_slices=16), Spectral(), VelocityGate()]


def motion_future_masks() -> MotionFuture:
    return MotionFuture(generators=[BlockGenerator(2, (0.15, 0.3)), BlockGenerator(1, (0.3, 0.6))])


def one_step(monkeypatch, tmp_path, objectives, masks) -> tuple[Counter, OpCounter]:
    """(device syncs by site, op counts) of the second training step."""
    syncs, ops = SyncCounter(monkeypatch), OpCounter()
    module = study_module(objectives, masks)
    draw = module.mask_sampler.target_masks

    def counted_draw(*args, **kwargs):
        ops.in_sampler_draw = True
        try:
            return draw(*args, **kwargs)
        finally:
            ops.in_sampler_draw = False

    module.mask_sampler.target_masks = counted_draw
    trainer = L.Trainer(max_steps=2, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, log_every_n_steps=1000,
                        callbacks=[CountStep(syncs), CountOps(ops)], default_root_dir=tmp_path)
    trainer.fit(module, SyntheticMotionDataModule(num_clips=8, num_frames=8, crop_size=64, batch_size=2))
    assert trainer.global_step == 2
    return device_syncs(syncs.calls), ops


@pytest.mark.slow
def test_base_step_ops_and_syncs(monkeypatch, tmp_path):
    syncs, ops = one_step(monkeypatch, tmp_path, [], None)
    print("base:", sum(syncs.values()), "syncs,", sum(ops.ops.values()), "ops +", sum(ops.sampler_draw_ops.values()),
          "in the sampler's host draw")
    assert by_file(syncs) == BASE_STEP_SYNCS, syncs  # the index lists go to the device pinned, not blocking
    # the dispatch mode saw the whole step: forward and backward matmuls, the attention, AdamW's update
    assert ops.ops["aten.addmm"] > 0 and ops.ops["aten._scaled_dot_product_flash_attention_for_cpu_backward"] > 0
    assert ops.ops["aten._fused_adamw_"] + ops.ops["aten._foreach_addcdiv_"] > 0, ops.ops


@pytest.mark.slow
def test_study_step_with_every_objective_and_motion_future_masks(monkeypatch, tmp_path):
    syncs, ops = one_step(monkeypatch, tmp_path, all_objectives(), motion_future_masks())
    print("all objectives, MotionFuture:", sum(syncs.values()), sum(ops.ops.values()), syncs)
    # What remains: MG's motion map copied to the host, whose CPU generator draws the block positions
    # from it (docs/performance.md); the future complement no longer reads anything back (no nonzero).
    assert by_file(syncs) == {**BASE_STEP_SYNCS, "cpu at motion_guided.py": 1}, syncs
    assert sum(ops.ops.values()) > 0


if __name__ == "__main__":  # the numbers of docs/performance.md
    torch.set_num_threads(1)
    for name, objectives, masks in [("base", [], None),
                                    ("all objectives + MotionFuture", all_objectives(), motion_future_masks())]:
        patch = pytest.MonkeyPatch()
        syncs, ops = one_step(patch, Path("/tmp"), objectives, masks)
        patch.undo()
        print(f"{name}: {sum(syncs.values())} syncs {dict(syncs)}; {sum(ops.ops.values())} ops per step "
              f"(+ {sum(ops.sampler_draw_ops.values())} in the sampler's host draw)")
