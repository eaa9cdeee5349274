"""A resumable ``last.ckpt`` when a fit is stopped by SIGTERM (SLURM preemption or time limit, ``timeout``, ``kill``).

Any number of SIGTERMs to any subset of the ranks, at any point of a step or of a checkpoint save, ends
every rank at the same step boundary:

1. The SIGTERM handler only counts the signal (so a second signal is harmless, and a save it interrupts
   goes on). It replaces Lightning's, which forwards the signal to the other local ranks and broadcasts
   from inside the handler: nested collectives that hung a rank that got two signals mid-backward.
2. Each rank passes "I was told to stop" to the next training step's all-reduce that the loss guard
   already makes (guard.py), so all ranks learn it at the same step, whichever ranks got the signal.
3. At that step's end every rank joins the save of ``last.ckpt`` (into the checkpoint callback's folder,
   where ``--ckpt_path last`` and the sweep look), then raises ``SIGTERMException``; the CLI exits 143.

A module without the guard's ``stop_agreed`` (not a JEPAModule) gets one small all-reduce per step here.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import FrameType
from typing import Callable, Optional

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.utilities import rank_zero_info
from lightning.pytorch.utilities.exceptions import SIGTERMException

from jepa_lit.distributed import all_reduce_sum


def last_checkpoint_path(trainer: L.Trainer) -> Optional[Path]:
    """``<dirpath>/last.ckpt`` of the trainer's checkpoint callback; None when there is none to write into."""
    callback = trainer.checkpoint_callback
    if not isinstance(callback, ModelCheckpoint) or callback.dirpath is None:
        return None
    return Path(callback.dirpath) / f"{callback.CHECKPOINT_NAME_LAST}{callback.FILE_EXTENSION}"


def replace_lightning_sigterm_handler(trainer: L.Trainer, handler: Callable[[int, Optional[FrameType]], None]) -> None:
    """Make ``handler`` the trainer's SIGTERM handler instead of Lightning's own.

    Lightning (2.x) installs its handler in ``Trainer._run`` through its private ``_SignalConnector``, and
    no public setting turns it off; this is the one place that reaches into it (checked against the
    installed Lightning by tests/test_ddp_preemption.py). Call it before the fit starts (a callback's
    ``setup``). Lightning still installs, restores and composes the handlers; ``trainer.received_sigterm``
    then stays False, so its loops never stop a rank on their own."""
    connector = trainer._signal_connector
    if not callable(getattr(connector, "_sigterm_notifier_fn", None)):
        raise RuntimeError(f"Lightning {L.__version__}: Trainer._signal_connector has no _sigterm_notifier_fn; "
                           "update jepa_lit.callbacks.preemption.replace_lightning_sigterm_handler")
    connector._sigterm_notifier_fn = handler


class CheckpointOnSigterm(Callback):
    """Stop every rank at the same step on SIGTERM, with ``last.ckpt`` of that step (the CLI adds this
    callback to every fit)."""

    def __init__(self) -> None:
        self.signals = 0  # SIGTERMs this process received
        self.module: Optional[L.LightningModule] = None
        self.saved: Optional[Path] = None

    def on_sigterm(self, signum: int, frame: Optional[FrameType]) -> None:
        # Flags only: no collective, no exception, no I/O inside a signal handler.
        self.signals += 1
        if hasattr(self.module, "stop_requested"):
            self.module.stop_requested = True  # carried by the next all-reduce of the loss guard

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage == "fit":
            self.module = pl_module
            replace_lightning_sigterm_handler(trainer, self.on_sigterm)

    def stop_agreed(self, pl_module: L.LightningModule) -> bool:
        agreed = getattr(pl_module, "stop_agreed", None)
        if agreed is None:  # no guard all-reduce to carry the request: one of our own
            agreed = bool(all_reduce_sum(torch.tensor(float(self.signals > 0), device=pl_module.device)) > 0)
        return agreed

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if not self.stop_agreed(pl_module):
            return
        path = last_checkpoint_path(trainer)
        if path is None:
            rank_zero_info("SIGTERM: no checkpoint callback with a folder; no checkpoint saved")
        else:
            # Recorded in the checkpoint callback's state (spelled as it joins paths), so the resumed run
            # overwrites last.ckpt instead of writing last-v1.ckpt beside it
            callback = trainer.checkpoint_callback
            callback.last_model_path = os.path.join(callback.dirpath, path.name)
            trainer.save_checkpoint(path)  # every rank joins; a further SIGTERM only counts
            self.saved = path
            rank_zero_info(f"SIGTERM: saved {path} at step {trainer.global_step}")
        raise SIGTERMException()

