"""Synthetic moving-disc videos, generated in memory from a seed: the embedded default dataset.

The recipe is the study's Synthetic Motion Discrimination benchmark (docs/datasets.md, synthetic moving discs): a solid disc
(radius 10 to size/4 - 1 px, a colour of 120-255 per channel) moves at constant velocity over a dark
background (0-79 per channel) with per-frame grayscale noise (0-29); the label is the direction, one of
8 (N, NE, E, SE, S, SW, W, NW), ``label = index % 8`` so classes are balanced; the disc centre is
clipped at the borders. The benchmark uses 200 clips of 32 frames at 160 px and reads the first 8.

Clip ``index`` of ``seed`` draws from ``np.random.default_rng(seed + index)`` in the order of the
study's release (scripts/generate_eval_synth_videos.py), so with seed 42 the benchmark's clips are
the released ones as rendered (the release then stores them as H.264, which changes the pixels a
little). A consequence of that seeding: clip i of seed s is drawn like clip i + 1 of seed s - 1, so
two sets of clips share none only when their ``seed + index`` ranges are disjoint. The shipped
pretraining configs train on clips 0-63 of seed 42 (``seed + index`` 42-105); the benchmark tests on
clips 160-199 (202-241).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from jepa_lit.data.resumable import EpochSampler, evaluation_loader, training_loader
from jepa_lit.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from jepa_lit.seeds import run_seed


# (dx, dy) in px / frame for labels 0..7: N, NE, E, SE, S, SW, W, NW (y grows downwards).
DIRECTIONS: tuple[tuple[int, int], ...] = ((0, -4), (3, -3), (4, 0), (3, 3), (0, 4), (-3, 3), (-4, 0), (-3, -3))
DIRECTION_NAMES = ("N", "NE", "E", "SE", "S", "SW", "W", "NW")


def clip_seed(index: int, seed: int) -> int:
    """The seed of clip ``index``'s generator: ``seed + index``, the study's release seeding."""
    return seed + index


@dataclass(frozen=True)
class DiscClip:
    """One generated clip, uint8 [T, H, W, 3], with the generator's own parameters: what a probe can be
    asked to read from the frozen encoder (the direction: motion; the radius and colour: appearance)."""

    frames: np.ndarray
    direction: int  # 0..7, DIRECTION_NAMES
    radius: int  # px
    colour: tuple[int, int, int]  # RGB, 120-255 each
    radius_range: tuple[int, int]  # [low, high) of the radius draw at this frame size

    def label(self, kind: "LabelKind") -> int:
        if kind == "direction":
            return self.direction
        if kind == "size":  # the upper half of the radius draw's range: a small / large disc, balanced
            low, high = self.radius_range
            return int(self.radius >= (low + high) / 2)
        return int(np.argmax(self.colour))  # "colour": the disc's dominant channel, R / G / B


LabelKind = Literal["direction", "size", "colour"]
NUM_CLASSES: dict[str, int] = {"direction": len(DIRECTIONS), "size": 2, "colour": 3}


def disc_clip(index: int, seed: int, num_frames: int, size: int, speed: int = 1) -> DiscClip:
    """Clip ``index`` of ``seed``, a pure function of its arguments. ``speed`` multiplies the velocity;
    0 gives a still disc (a still image repeated over time, with per-frame noise)."""
    rng = np.random.default_rng(clip_seed(index, seed))
    label = index % len(DIRECTIONS)
    dx, dy = (speed * v for v in DIRECTIONS[label])
    # The draws, their order and their dtypes are the release's: a uint8 draw takes other random bits
    # than an int64 one, so the same values need the same dtype.
    background = rng.integers(0, 80, size=3, dtype=np.uint8)
    noise = rng.integers(0, 30, size=(num_frames, size, size, 1))
    frames = (background + noise).astype(np.uint8)  # at most 79 + 29
    colour = rng.integers(120, 256, size=3, dtype=np.uint8)
    radius_range = (10, max(11, size // 4))  # >= 11: room for the smallest disc below 44 px
    radius = int(rng.integers(*radius_range))
    radius = min(radius, size // 2 - 1)
    x0, y0 = rng.integers(radius, size - radius), rng.integers(radius, size - radius)
    yy, xx = np.mgrid[:size, :size]
    for t in range(num_frames):
        cx = np.clip(x0 + dx * t, radius, size - radius - 1)
        cy = np.clip(y0 + dy * t, radius, size - radius - 1)
        frames[t][(xx - cx) ** 2 + (yy - cy) ** 2 <= radius**2] = colour
    return DiscClip(frames, label, radius, tuple(int(c) for c in colour), radius_range)


def moving_disc_clip(index: int, seed: int, num_frames: int, size: int) -> tuple[np.ndarray, int]:
    """One clip as uint8 [T, H, W, 3] and its direction label, a pure function of (index, seed)."""
    clip = disc_clip(index, seed, num_frames, size)
    return clip.frames, clip.direction


_MEAN = torch.tensor(IMAGENET_MEAN).view(3, 1, 1, 1)
_STD = torch.tensor(IMAGENET_STD).view(3, 1, 1, 1)


def normalise_clip(frames: np.ndarray) -> torch.Tensor:
    """uint8 [T, H, W, 3] -> float [3, T, H, W] with ImageNet mean / std."""
    clip = torch.from_numpy(frames).float().div_(255.0).permute(3, 0, 1, 2)
    return (clip - _MEAN) / _STD


class MovingDiscDataset(Dataset):
    """``count`` clips of ``total_frames`` frames at ``size`` px, of which the first ``num_frames`` are
    returned; generated once in memory (uint8) from ``seed``; clips ``[start, stop)`` of the sequence.
    ``label``: what each clip's label is (LabelKind: its direction, size band or dominant colour)."""

    def __init__(self, count: int, num_frames: int, size: int, seed: int, total_frames: Optional[int] = None,
                 start: int = 0, label: LabelKind = "direction"):
        self.num_frames, self.start = num_frames, start
        total = max(total_frames or num_frames, num_frames)
        clips = [disc_clip(start + i, seed, total, size) for i in range(count)]
        self.frames = np.stack([c.frames[:num_frames] for c in clips])
        self.labels = [c.label(label) for c in clips]

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict:
        return {"video": normalise_clip(self.frames[i]), "label": self.labels[i], "modality": 0,
                "index": self.start + i}


class SyntheticMotionDataModule(L.LightningDataModule):
    """Moving-disc clips labelled by direction (or by an appearance property), no files needed.

    Args:
        num_clips: clips in all; the last ``val_fraction`` of them form the validation / test split
            (the benchmark: 200 clips, 160 / 40).
        num_frames: frames returned per clip (the benchmark: the first 8).
        total_frames: frames generated per clip (the benchmark: 32), so the motion is the same whatever
            ``num_frames`` is.
        crop_size: frame size in px (the benchmark: 160; the study's synthetic pretraining: 128).
        seed: generation seed, which clips the set holds (the benchmark: 42). The training order
            follows the run's seed_everything (jepa_lit.seeds).
        label: the label of each clip: ``direction`` (8 classes, the benchmark's: motion), ``size`` (the
            radius in the lower or upper half of its draw's range: appearance, 2 classes) or ``colour`` (the
            disc colour's largest channel, R / G / B: appearance, 3 classes).
    """

    def __init__(
        self,
        num_clips: int = 200,
        num_frames: int = 8,
        total_frames: int = 32,
        crop_size: int = 160,
        val_fraction: float = 0.2,
        seed: int = 42,
        batch_size: int = 8,
        num_workers: int = 0,
        label: LabelKind = "direction",
    ):
        super().__init__()
        if label not in NUM_CLASSES:
            raise ValueError(f"data.label={label!r}; expected one of {sorted(NUM_CLASSES)}")
        self.label, self.num_classes = label, NUM_CLASSES[label]
        if not 0.0 < val_fraction < 1.0:
            raise ValueError(f"data.val_fraction={val_fraction}; expected a fraction in (0, 1)")
        self.num_clips, self.num_frames, self.total_frames = num_clips, num_frames, total_frames
        self.crop_size, self.val_fraction, self.seed = crop_size, val_fraction, seed
        self.batch_size, self.num_workers = batch_size, num_workers
        self.num_train = num_clips - int(round(num_clips * val_fraction))
        if self.num_train < 1 or self.num_train >= num_clips:
            raise ValueError(f"data.num_clips={num_clips} is too small to split with val_fraction={val_fraction}")
        self.train_set: Optional[MovingDiscDataset] = None
        self.val_set: Optional[MovingDiscDataset] = None

    def setup(self, stage: Optional[str] = None) -> None:
        if self.train_set is None:
            make = dict(num_frames=self.num_frames, size=self.crop_size, seed=self.seed, total_frames=self.total_frames,
                        label=self.label)
            self.train_set = MovingDiscDataset(self.num_train, start=0, **make)
            self.val_set = MovingDiscDataset(self.num_clips - self.num_train, start=self.num_train, **make)

    def train_dataloader(self) -> DataLoader:
        # Order from (the run's seed, epoch) and a checkpointed position: a resumed run sees the same batches.
        return training_loader(self, self.train_set, EpochSampler(len(self.train_set), seed=run_seed()))

    def val_dataloader(self) -> DataLoader:
        return evaluation_loader(self, self.val_set)

    def test_dataloader(self) -> DataLoader:
        return self.val_dataloader()

    def predict_dataloader(self) -> DataLoader:
        return self.val_dataloader()
