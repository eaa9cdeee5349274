"""Checkpoints that a crash cannot corrupt: write to a temporary file beside the target, fsync, rename.

``os.replace`` is atomic on POSIX file systems, so ``last.ckpt`` is always either the previous complete
checkpoint or the new complete one. Use it with ``trainer.plugins: jepa_lit.checkpointing.AtomicCheckpointIO``,
and ``RunCheckpoint`` (below) as the checkpoint callback.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Optional

import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO


class AtomicCheckpointIO(TorchCheckpointIO):
    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Optional[Any] = None) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(handle, "wb") as f:
                torch.save(checkpoint, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise


class RunCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` that always leaves ``last.ckpt`` at the run's final step.

    Lightning 2.6 writes ``last.ckpt`` with each periodic save, and at the end of training only if it
    never wrote one: with ``every_n_train_steps`` not dividing ``max_steps`` the last steps were lost.
    """

    def on_train_end(self, trainer, pl_module) -> None:
        if self.save_last and self._last_checkpoint_saved and self._last_global_step_saved != trainer.global_step:
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
        else:
            super().on_train_end(trainer, pl_module)


class EpochEndCheckpoint(ModelCheckpoint):
    """Epoch checkpoints (``every_n_epochs``, ``filename``, ``save_top_k`` as ModelCheckpoint), written
    right after the epoch's last training batch.

    ModelCheckpoint writes them in ``on_train_epoch_end``; resumed from such a file, Lightning 2.6 runs
    one more batch under the finished epoch's number and then starts the next epoch from the order of
    the one after, so the run no longer matches an uninterrupted one. Saved at the last batch's end,
    the checkpoint resumes exactly, like a step checkpoint (tests/test_resume.py).
    """

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        every = self._every_n_epochs
        if (trainer.is_last_batch and every >= 1 and (trainer.current_epoch + 1) % every == 0
                and not self._should_skip_saving_checkpoint(trainer)):
            self._save_topk_checkpoint(trainer, self._monitor_candidates(trainer))

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        pass  # saved at the epoch's last batch instead

    def on_validation_end(self, trainer, pl_module) -> None:
        pass
