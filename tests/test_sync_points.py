"""Host-device synchronisations per training step, counted on the CPU.

On a GPU every Tensor -> Python value (item, bool, float, int, tolist), nonzero and boolean-mask indexing
waits for the queued kernels, and torch.tensor(python data, device=...) is a blocking copy to it; here each
such call is counted during one Lightning training step of a tiny module, with and without the study's
objectives. Both are held to the two the step needs, so that a new stall shows up in review.
"""

import inspect
import sys
from collections import Counter
from pathlib import Path

import lightning as L
import pytest
import torch

from jepa_lit.data.synthetic import SyntheticMotionDataModule
from jepa_lit.masks import BlockGenerator, MultiBlock3D
from jepa_lit.models import VisionTransformer
from jepa_lit.module import JEPAModule
from jepa_lit.objectives import LatentDynamics, objective_classes

SYNCING_METHODS = ("item", "tolist", "__bool__", "__float__", "__int__", "nonzero")


# Value reads of tensors that stay on the CPU by design, which a GPU run does not wait for: the mask sampler
# draws block shapes and positions on the CPU; AdamW keeps its step counters on the CPU. What the sampler does
# with the device is counted: copies of its index lists to it (``.to(device)`` from pageable memory waits for
# the device's queue; pinned and ``non_blocking`` does not), copies back (``.cpu()``), and its device-side
# work (future masks' complement, in future.py).
HOST_SIDE = ("/jepa_lit/masks/base.py", "/jepa_lit/masks/multiblock.py", "/jepa_lit/masks/groups.py",
             "/jepa_lit/masks/motion_guided.py", "/torch/optim/")
COPIES = ("blocking .to(device)", "cpu")  # counted wherever jepa_lit calls them, the sampler included


def caller() -> str:
    """path:line of the innermost frame outside torch's tensor code and this file (who asked for the sync)."""
    frame = sys._getframe(2)
    while frame is not None:
        name = frame.f_code.co_filename
        inside_torch = "/torch/" in name and "/torch/optim/" not in name
        if not inside_torch and name != __file__:
            return f"{name}:{frame.f_lineno}"
        frame = frame.f_back
    return "?"


def device_syncs(calls: list[str]) -> Counter:
    """The calls that make a GPU run wait, by site (file name:line)."""
    return Counter(f"{c.split(' at ')[0]} at {Path(c.split(' at ')[1]).name}" for c in calls
                   if c.split(" at ")[0] in COPIES or not any(part in c for part in HOST_SIDE))


class SyncCounter:
    """Counts calls of the syncing Tensor methods, boolean-mask indexing and ``torch.tensor(data,
    device=...)`` while ``active``."""

    def __init__(self, monkeypatch):
        self.active, self.calls = False, []
        for name in SYNCING_METHODS:
            monkeypatch.setattr(torch.Tensor, name, self.wrap(name, getattr(torch.Tensor, name)))
        monkeypatch.setattr(torch, "nonzero", self.wrap("torch.nonzero", torch.nonzero))
        make_tensor = torch.tensor

        def counted_tensor(data, *args, **kwargs):  # Python data -> a device tensor: a blocking copy on a GPU
            if self.active and kwargs.get("device") is not None:
                self.calls.append(f"torch.tensor(device=...) at {caller()}")
            return make_tensor(data, *args, **kwargs)

        monkeypatch.setattr(torch, "tensor", counted_tensor)
        getitem = torch.Tensor.__getitem__

        def counted_getitem(tensor, index):
            parts = index if isinstance(index, tuple) else (index,)
            if self.active and any(isinstance(p, torch.Tensor) and p.dtype == torch.bool for p in parts):
                self.calls.append(f"bool-mask index at {caller()}")
            return getitem(tensor, index)

        monkeypatch.setattr(torch.Tensor, "__getitem__", counted_getitem)
        move = torch.Tensor.to

        def counted_to(tensor, *args, **kwargs):  # host -> device from pageable memory: the host waits
            moves = kwargs.get("device") is not None or any(isinstance(a, (torch.device, str)) for a in args)
            if self.active and moves and not kwargs.get("non_blocking") and "/jepa_lit/" in caller():
                self.calls.append(f"blocking .to(device) at {caller()}")
            return move(tensor, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, "to", counted_to)
        to_host = torch.Tensor.cpu

        def counted_cpu(tensor, *args, **kwargs):  # device -> host: waits for the queue
            if self.active and "/jepa_lit/" in caller():
                self.calls.append(f"cpu at {caller()}")
            return to_host(tensor, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, "cpu", counted_cpu)

    def wrap(self, name, method):
        def counted(*args, **kwargs):
            if self.active:
                self.calls.append(f"{name} at {caller()}")
            return method(*args, **kwargs)

        return counted


class CountStep(L.Callback):
    """Counts from the start to the end of the second training batch (the first may set things up)."""

    def __init__(self, counter: SyncCounter):
        self.counter = counter

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.counter.active = batch_idx == 1

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.counter.active = False


def study_module(objectives, masks=None) -> JEPAModule:
    encoder = VisionTransformer(size="tiny", depth=2, num_levels=2, num_frames=8, img_size=64,
                                interpolate_rope=True)  # as the study configs
    masks = masks or MultiBlock3D(generators=[BlockGenerator(2, (0.15, 0.3)), BlockGenerator(1, (0.3, 0.6))])
    return JEPAModule(encoder, masks, objectives=objectives, predictor_width=32, predictor_depth=1,
                      predictor_heads=2, context_loss_start=0.0, context_loss_end=0.0)


def syncs_in_one_step(monkeypatch, tmp_path, objectives, progress_bar=None, masks=None, max_steps=2) -> list[str]:
    """The calls of the second training step (``progress_bar``: a progress bar callback, counted too)."""
    counter = SyncCounter(monkeypatch)
    callbacks = [CountStep(counter)] if progress_bar is None else [progress_bar, CountStep(counter)]
    trainer = L.Trainer(max_steps=max_steps, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=progress_bar is not None, enable_model_summary=False,
                        log_every_n_steps=1000, callbacks=callbacks, default_root_dir=tmp_path)
    data = SyntheticMotionDataModule(num_clips=8, num_frames=8, crop_size=64, batch_size=2)
    trainer.fit(study_module(objectives, masks), data)
    assert trainer.global_step == max_steps
    return counter.calls


def by_file(syncs: Counter) -> dict[str, int]:
    """Sync counts per kind and file, not line, so that edits elsewhere in these files do not break a count."""
    counts = Counter()
    for where, count in syncs.items():
        counts[where.rsplit(":", 1)[0]] += count
    return dict(counts)


# The two the step needs: the loss (finiteness, spikes) with the ranks' stop requests (before backward), and the
# gradients' finiteness (before AdamW).
BASE_STEP_SYNCS = {"tolist at guard.py": 1, "__bool__ at module.py": 1}


def test_base_step_syncs(monkeypatch, tmp_path):
    syncs = device_syncs(syncs_in_one_step(monkeypatch, tmp_path, []))
    print("base step:", sum(syncs.values()), syncs)
    assert by_file(syncs) == BASE_STEP_SYNCS, syncs


def hard_weighted_fwm_ld() -> LatentDynamics:
    """FWM-HW-LD's head (Z_dyn, hard weighting), named apart from the plain LD's."""
    objective = LatentDynamics(hidden_dim=16, reads="dynamics", hard_weighting=True)
    objective.name = "fwm_hw_ld"
    return objective


SMALL = {"hidden_dim": 16, "num_slices": 16}  # a head's width and SIGReg's directions, kept tiny


def small(objective: type):
    """The objective with its defaults, its heads and slices small; a new objective must build this way."""
    params = inspect.signature(objective).parameters
    return objective(**{k: v for k, v in SMALL.items() if k in params})


@pytest.mark.slow
def test_study_objectives_step_syncs(monkeypatch, tmp_path):
    objectives = [small(objective) for objective in objective_classes()] + [hard_weighted_fwm_ld()]
    assert len(objectives) >= 12  # every objective of jepa_lit/objectives/ (tests/test_objectives.py lists them)
    syncs = device_syncs(syncs_in_one_step(monkeypatch, tmp_path, objectives))
    print("with objectives:", sum(syncs.values()), syncs)
    # None of their own (32 before, docs/performance.md): means over the valid pairs or whole tubes are
    # masked sums over every position divided by the batch's count, and a generator without any is left
    # out of the average by a device flag, not by a branch on the host.
    assert by_file(syncs) == BASE_STEP_SYNCS, syncs


@pytest.mark.slow
def test_progress_bar_reads_the_loss_only_when_it_refreshes(monkeypatch, tmp_path):
    # Lightning's bar converts the logged train/loss to a Python number (.item()) at each refresh: every
    # step by default; base.yaml refreshes it every 50 steps (log_every_n_steps), so most steps have none.
    # It refreshes at the last batch of an epoch (or of the run) too: 3 steps, the 2nd counted.
    from lightning.pytorch.callbacks import TQDMProgressBar

    every_step = device_syncs(syncs_in_one_step(monkeypatch, tmp_path, [], TQDMProgressBar(1), max_steps=3))
    assert sum(every_step.values()) == sum(BASE_STEP_SYNCS.values()) + 1, every_step
    monkeypatch.undo()
    every_50 = device_syncs(syncs_in_one_step(monkeypatch, tmp_path, [], TQDMProgressBar(50), max_steps=3))
    assert by_file(every_50) == BASE_STEP_SYNCS, every_50
