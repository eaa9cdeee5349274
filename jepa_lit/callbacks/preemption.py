"""A resumable ``last.ckpt`` when a fit is stopped by SIGTERM (SLURM preemption, ``timeout``, ``kill``).

Lightning's own SIGTERM handler only records the signal (``trainer.received_sigterm``); its loops then
raise ``SIGTERMException`` at the end of the current batch, on every rank at the same step, and the
process would exit 0 with the last periodic checkpoint possibly many steps behind. This callback saves
``last.ckpt`` at that point (every rank takes part, as a save needs) into the checkpoint callback's folder,
where ``--ckpt_path last`` and the sweep look; the CLI then exits with status 143 (docs/distributed.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import lightning as L
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities import rank_zero_info
from lightning.pytorch.utilities.exceptions import SIGTERMException


def last_checkpoint_path(trainer: L.Trainer) -> Optional[Path]:
    """``<dirpath>/last.ckpt`` of the trainer's checkpoint callback; None when there is none to write into."""
    callback = trainer.checkpoint_callback
    if not isinstance(callback, ModelCheckpoint) or callback.dirpath is None:
        return None
    return Path(callback.dirpath) / f"{callback.CHECKPOINT_NAME_LAST}{callback.FILE_EXTENSION}"


class CheckpointOnSigterm(Callback):
    """Save ``last.ckpt`` when training stops on SIGTERM (the CLI adds this callback to every fit)."""

    def __init__(self) -> None:
        self.saved: Optional[Path] = None

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        if not isinstance(exception, SIGTERMException) or trainer.state.fn != TrainerFn.FITTING:
            return
        path = last_checkpoint_path(trainer)
        if path is None:
            rank_zero_info("SIGTERM: no checkpoint callback with a folder; no checkpoint saved")
            return
        trainer.save_checkpoint(path)
        self.saved = path
        rank_zero_info(f"SIGTERM: saved {path} at step {trainer.global_step}")
