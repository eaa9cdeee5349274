"""Checkpoints that a crash cannot corrupt, and that are checked when read back.

Written with ``jepa_lit.atomic.atomic_write`` (temporary file beside the target, fsync, ``os.replace``), so
``last.ckpt`` is always either the previous complete checkpoint or the new complete one, with its size and
SHA-256 in ``last.ckpt.sha256.json``; loading checks that record first (checkpointing/integrity.py). Use it
with ``trainer.plugins: jepa_lit.checkpointing.AtomicCheckpointIO``, and ``RunCheckpoint`` (below) as the
checkpoint callback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO

from jepa_lit.atomic import atomic_write, link_with_record, remove_with_sidecar
from jepa_lit.checkpointing.integrity import check_checkpoint


class AtomicCheckpointIO(TorchCheckpointIO):
    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Optional[Any] = None) -> None:
        atomic_write(path, lambda f: torch.save(checkpoint, f), integrity=True, kind="torch")

    def load_checkpoint(self, path, map_location=lambda storage, loc: storage, weights_only: Optional[bool] = None):
        if Path(path).is_file():  # Lightning's own error for a missing file stays
            check_checkpoint(path)
        return super().load_checkpoint(path, map_location=map_location, weights_only=weights_only)

    def remove_checkpoint(self, path) -> None:
        remove_with_sidecar(path)


class RunCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` that always leaves ``last.ckpt`` at the run's final step, and writes each
    checkpoint's bytes once.

    Lightning 2.6 writes ``last.ckpt`` with each periodic save, and at the end of training only if it
    never wrote one: with ``every_n_train_steps`` not dividing ``max_steps`` the last steps were lost.
    With ``save_last: true`` it also writes the whole checkpoint a second time as ``last.ckpt`` right after
    the step file; here ``last.ckpt`` becomes a hard link of the file just saved at the same step (with
    its own integrity record): the two differ only in this callback's ``last_model_path`` entry, which
    Lightning reads back only to replace that file later under the same name.
    """

    def on_train_end(self, trainer, pl_module) -> None:
        if self.save_last and self._last_checkpoint_saved and self._last_global_step_saved != trainer.global_step:
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
        else:
            super().on_train_end(trainer, pl_module)

    def _save_last_checkpoint(self, trainer, monitor_candidates) -> None:
        just_saved = self._last_checkpoint_saved if self._last_global_step_saved == trainer.global_step else ""
        last = self.format_checkpoint_name(monitor_candidates, self.CHECKPOINT_NAME_LAST)
        # The same decision on every rank: nothing here reads the local disk (file_exists is rank 0's, broadcast).
        if self.save_last is not True or not just_saved or just_saved == last \
                or (self._enable_version_counter and self.file_exists(last, trainer) and last != self.last_model_path):
            super()._save_last_checkpoint(trainer, monitor_candidates)  # a save of its own, as Lightning's
            return
        previous, self.last_model_path = self.last_model_path, last
        if trainer.is_global_zero:
            link_with_record(just_saved, last)
        trainer.strategy.barrier()
        if previous and self._should_remove_checkpoint(trainer, previous, last):
            self._remove_checkpoint(trainer, previous)


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
