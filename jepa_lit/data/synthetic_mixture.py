"""Pretraining data of the laptop-scale study: synthetic stand-ins for the study's sources, drawn in its
proportions, each clip generated on demand from (source, index, seed), so the pool is as large as asked for
at no cost in memory or start-up time.

Sources, in the order of the study's mixture (UCF-101 : SSv2 : ImageNet-100 = 0.2 : 0.6 : 0.2):

- ``discs``: moving discs, the Synthetic Motion benchmark's recipe (jepa_lit.data.synthetic): translation at
  constant velocity. The stand-in for UCF-101; the video-alone regime draws only from it (weights 1, 0, 0).
- ``bars``: a bar turning about its centre, clockwise or anticlockwise at 8-20 degrees per frame, over the same
  kind of background and noise: a second kind of motion, the stand-in for SSv2.
- ``stills``: a still disc (the disc generator at speed 0) as a static clip of modality 1, as the mixed regime
  feeds ImageNet-100's images: appearance without motion, the stand-in for ImageNet-100.

Clip i of ``discs`` is ``disc_clip(i, seed)``; the stills take the next ``pool`` generator seeds, so a pool of
discs and a pool of stills never share a clip; the bars have their own generator keyed by (seed, i). Probe sets
must use generator seeds outside ``[seed, seed + 2 * pool)`` (experiments/probes/laptop_*.yaml do).
"""

from __future__ import annotations

import math
from typing import Optional

import lightning as L
import numpy as np
from torch.utils.data import DataLoader, Dataset

from jepa_lit.data.mixed import MixtureSampler
from jepa_lit.data.resumable import evaluation_loader, training_loader
from jepa_lit.data.synthetic import disc_clip, normalise_clip
from jepa_lit.seeds import run_seed

SOURCES = ("discs", "bars", "stills")
VIDEO, IMAGE = 0, 1  # modality, as jepa_lit.data.records


def rotating_bar_clip(index: int, seed: int, num_frames: int, size: int) -> np.ndarray:
    """A bar turning about its centre, uint8 [T, H, W, 3]; even indices turn clockwise, odd anticlockwise."""
    rng = np.random.default_rng([seed, index])
    background = rng.integers(0, 80, size=3)
    frames = (background + rng.integers(0, 30, size=(num_frames, size, size, 1))).astype(np.uint8)
    colour = rng.integers(120, 256, size=3).astype(np.uint8)
    half_length, half_width = rng.uniform(0.2, 0.35) * size, rng.uniform(0.03, 0.06) * size
    cx, cy = rng.uniform(0.35, 0.65, size=2) * size
    angle = rng.uniform(0.0, math.pi)
    turn = math.radians(rng.uniform(8.0, 20.0)) * (1 if index % 2 == 0 else -1)
    yy, xx = np.mgrid[:size, :size].astype(np.float64)
    for t in range(num_frames):
        c, s = math.cos(angle + turn * t), math.sin(angle + turn * t)
        along, across = (xx - cx) * c + (yy - cy) * s, (yy - cy) * c - (xx - cx) * s
        frames[t][(np.abs(along) <= half_length) & (np.abs(across) <= half_width)] = colour
    return frames


class SyntheticSources(Dataset):
    """``pool`` clips of each source, indexed as one sequence (discs, then bars, then stills)."""

    def __init__(self, pool: int, num_frames: int, size: int, seed: int):
        self.pool, self.num_frames, self.size, self.seed = pool, num_frames, size, seed

    def __len__(self) -> int:
        return len(SOURCES) * self.pool

    def __getitem__(self, key) -> dict:
        index = key[0] if isinstance(key, tuple) else key  # (index, draw) from a keyed sampler
        source, i = divmod(int(index), self.pool)
        if SOURCES[source] == "discs":
            frames, modality = disc_clip(i, self.seed, self.num_frames, self.size).frames, VIDEO
        elif SOURCES[source] == "bars":
            frames, modality = rotating_bar_clip(i, self.seed, self.num_frames, self.size), VIDEO
        else:
            frames, modality = disc_clip(self.pool + i, self.seed, self.num_frames, self.size, speed=0).frames, IMAGE
        return {"video": normalise_clip(frames), "label": -1, "modality": modality, "index": int(index)}


class SyntheticMixtureDataModule(L.LightningDataModule):
    """Synthetic pretraining clips drawn from ``SOURCES`` with probabilities ``weights``, with replacement.

    Args:
        weights: sampling probabilities of (discs, bars, stills), normalised; the study's mixture is
            (0.2, 0.6, 0.2), video alone (1, 0, 0).
        samples_per_epoch: draws per epoch (over all ranks).
        pool: clips per source; the draws of an epoch are a pure function of (the run's seed, epoch).
        num_frames, crop_size: the clip (frames, px).
        seed: generator seed of the pool (see the module's docstring for what probe sets must avoid).
        val_samples: a fixed draw from the same mixture for the validation loss (0: none).
    """

    num_classes = 0  # no labels: pretraining data

    def __init__(
        self,
        weights: tuple[float, float, float] = (0.2, 0.6, 0.2),
        samples_per_epoch: int = 4096,
        pool: int = 100_000,
        num_frames: int = 8,
        crop_size: int = 64,
        seed: int = 100_000,
        batch_size: int = 8,
        num_workers: int = 0,
        val_samples: int = 64,
    ):
        super().__init__()
        if len(weights) != len(SOURCES) or min(weights) < 0 or sum(weights) <= 0:
            raise ValueError(f"data.weights={list(weights)}; expected {len(SOURCES)} values >= 0 for {SOURCES} "
                             "with a positive sum")
        for name, value in (("samples_per_epoch", samples_per_epoch), ("pool", pool), ("batch_size", batch_size)):
            if value < 1:
                raise ValueError(f"data.{name}={value}; expected an int >= 1")
        self.weights, self.samples_per_epoch, self.pool = tuple(float(w) for w in weights), samples_per_epoch, pool
        self.num_frames, self.crop_size, self.seed = num_frames, crop_size, seed
        self.batch_size, self.num_workers, self.val_samples = batch_size, num_workers, val_samples
        self.dataset = SyntheticSources(pool, num_frames, crop_size, seed)
        self.save_hyperparameters()

    def _sampler(self, num_samples: int, fixed_epoch: Optional[int] = None) -> MixtureSampler:
        return MixtureSampler([self.pool] * len(SOURCES), self.weights, num_samples, seed=run_seed(),
                              fixed_epoch=fixed_epoch)

    def train_dataloader(self) -> DataLoader:
        return training_loader(self, self.dataset, self._sampler(self.samples_per_epoch))

    def val_dataloader(self):
        if not self.val_samples:
            return []  # no validation loss
        # a fixed draw, the same at every validation (no training run reaches this epoch)
        return evaluation_loader(self, self.dataset, self._sampler(self.val_samples, fixed_epoch=2**31 - 1))
