"""Callbacks that send SIGTERM at awkward moments of a 2-rank DDP fit (for test_ddp_preemption.py).

Each names the step (``trainer.global_step``) at which it signals. The process group is the test's own
session (the test starts the fit with ``start_new_session``), so ``killpg`` reaches every rank, as
``timeout`` and slurmstepd do, and nothing outside the test.
"""

import os
import signal
import time

import lightning as L


def signal_group() -> None:
    os.killpg(os.getpgid(0), signal.SIGTERM)


class SigtermGroupTwice(L.Callback):
    """Rank 0 signals the whole group twice at ``step``: once inside the predictor's forward, once inside
    backward (rank 1 then has two pending SIGTERMs, the case that hung)."""

    def __init__(self, step: int = 2):
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.step and trainer.global_rank == 0:
            def in_forward(module, args):
                handle.remove()
                signal_group()
            handle = pl_module.predictor.register_forward_pre_hook(in_forward)

    def on_before_backward(self, trainer, pl_module, loss):
        if trainer.global_step == self.step and trainer.global_rank == 0:
            loss.register_hook(lambda grad: signal_group())


class SigtermRankOne(L.Callback):
    """Rank 1 alone gets SIGTERM, inside backward at ``step``; rank 0 never sees a signal."""

    def __init__(self, step: int = 2):
        self.step = step

    def on_before_backward(self, trainer, pl_module, loss):
        if trainer.global_step == self.step and trainer.global_rank == 1:
            loss.register_hook(lambda grad: os.kill(os.getpid(), signal.SIGTERM))


class SigtermDuringSave(L.Callback):
    """After step 1 every rank saves ``extra.ckpt`` (Trainer.save_checkpoint, the path ModelCheckpoint takes);
    inside that save, and inside every later one (the SIGTERM save), rank 0 signals the group and sleeps,
    so the signals land while a save is under way."""

    def __init__(self, step: int = 1, sleep: float = 1.0):
        self.step, self.sleep = step, sleep

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == self.step + 1:
            trainer.save_checkpoint(os.path.join(trainer.default_root_dir, "extra.ckpt"))

    def on_save_checkpoint(self, trainer, pl_module, checkpoint):
        if trainer.global_rank == 0:
            signal_group()
            time.sleep(self.sleep)
