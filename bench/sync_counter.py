"""SyncCounter: host-device syncs per training step on CUDA, a Lightning callback (bench/gpu_check.py's fit).

torch.cuda.set_sync_debug_mode("warn") makes every synchronising CUDA call (a device value read on the host,
a blocking copy, nonzero, ...) issue a warning. The warnings from one training batch start to the next are one
step's (forward, backward, optimizer, EMA, callbacks, logging, and the next batch's fetch), counted per step
after ``warmup`` steps and by the Python line that made them.
"""

from __future__ import annotations

import warnings
from collections import Counter
from pathlib import Path

import lightning as L
import torch


def site(filename: str, lineno: int) -> str:
    """A warning's place, from the package folder on (jepa_lit/guard.py:40), else the file's name."""
    for marker in ("/jepa_lit/", "/lightning/", "/torch/"):
        if marker in filename:
            return f"{marker.strip('/')}/{filename.split(marker, 1)[1]}:{lineno}"
    return f"{Path(filename).name}:{lineno}"


class SyncCounter(L.Callback):
    def __init__(self, warmup: int = 5):
        self.warmup = warmup
        self.per_step: list[int] = []
        self.sites: Counter = Counter()
        self._catcher = None
        self._records: list = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.close()
        if trainer.global_step >= self.warmup:
            self.open()

    def on_train_end(self, trainer, pl_module):
        self.close()

    def open(self) -> None:
        self._catcher = warnings.catch_warnings(record=True)
        self._records = self._catcher.__enter__()
        warnings.simplefilter("always")  # every sync, not only the first one at a line
        torch.cuda.set_sync_debug_mode("warn")

    def close(self) -> None:
        if self._catcher is None:
            return
        torch.cuda.set_sync_debug_mode("default")
        syncs = [w for w in self._records if "synchroniz" in str(w.message)]
        self.per_step.append(len(syncs))
        self.sites.update(site(w.filename, w.lineno) for w in syncs)
        self._catcher.__exit__(None, None, None)
        self._catcher = None
