"""The mixed pretraining regime: UCF-101 : SSv2 : ImageNet-100 drawn 0.2 : 0.6 : 0.2 with replacement.

Weighted sampling with per-sample weight = dataset weight / dataset size is the same distribution as
drawing a dataset with probability `weights`, then a sample uniformly inside it; MixtureSampler does
the latter (two cheap draws instead of a 300k-way categorical). The draws of an epoch are a pure
function of (seed, epoch); under DDP every rank takes every world_size-th draw of that one sequence,
so ranks draw disjoint shares of the same mixture. Videos are read at frame step 2; images become
static clips (modality 1) and go through the same transforms.
"""

from __future__ import annotations

import bisect

import logging
from pathlib import Path
from typing import Literal, Optional, Sequence

import lightning as L
import numpy as np
from torch.utils.data import ConcatDataset, DataLoader

from jepa_lit.data.resumable import EpochSampler, evaluation_loader, training_loader
from jepa_lit.data.clip_sampling import RandomClipSampler, UniformClipSampler
from jepa_lit.data.decode import DEFAULT_THREAD_TYPE, ThreadType
from jepa_lit.data.imagenet100 import index_imagenet100
from jepa_lit.data.ssv2 import index_ssv2
from jepa_lit.data.transforms import VideoEvalTransform, VideoTrainTransform
from jepa_lit.data.ucf101 import index_ucf101
from jepa_lit.data.video_dataset import (
    ClipDataset,
    IndexProblem,
    LayoutError,
    OnError,
    Record,
    fitting,
    read_list_file,
)
from jepa_lit.seeds import run_seed

log = logging.getLogger("jepa_lit.data")

SOURCES = ("ucf101", "ssv2", "imagenet100")

EXPECTED_LAYOUT = """\
DIR/                 (data.root; each sub-folder overridable: data.ucf101_root, data.ssv2_root, data.imagenet100_root)
├── ucf101/          UCF-101/<Class>/*.avi + ucfTrainTestlist/     (see jepa_lit.data.ucf101)
├── ssv2/            labels/*.json + 20bn-something-something-v2/   (see jepa_lit.data.ssv2)
└── imagenet100/     train/<wnid>/*.JPEG + val/<wnid>/*.JPEG         (see jepa_lit.data.imagenet100)
"""


class MixtureSampler(EpochSampler):
    """Draws `num_samples` indices per epoch into a ConcatDataset: source d with probability
    weights[d], then uniformly inside it. Deterministic per (seed, epoch); call set_epoch() each
    epoch (Lightning does), or pass `fixed_epoch` for the same draws every time. Each rank yields
    its share (draws rank, rank + world, ...); sharding, resuming and draw keys are EpochSampler's.
    """

    def __init__(
        self,
        sizes: Sequence[int],
        weights: Sequence[float],
        num_samples: int,
        seed: int = 0,
        num_replicas: Optional[int] = None,
        rank: Optional[int] = None,
        fixed_epoch: Optional[int] = None,
        keyed: bool = False,
    ):
        if len(sizes) != len(weights):
            raise ValueError(f"{len(sizes)} datasets but {len(weights)} weights")
        w = np.asarray(weights, dtype=np.float64)
        if (w < 0).any() or w.sum() <= 0:
            raise ValueError(f"weights must be >= 0 with a positive sum, got {list(weights)}")
        for size, weight in zip(sizes, w):
            if weight > 0 and size == 0:
                raise ValueError("a dataset with a positive weight has no samples")
        super().__init__(int(num_samples), shuffle=True, seed=seed, num_replicas=num_replicas, rank=rank, keyed=keyed)
        self.sizes = np.asarray(sizes, dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(self.sizes)[:-1]])
        self.weights = w / w.sum()
        self.fixed_epoch = fixed_epoch  # when set, set_epoch() changes nothing (a fixed validation draw)
        if fixed_epoch is not None:
            self.epoch = fixed_epoch

    def set_epoch(self, epoch: int) -> None:
        if self.fixed_epoch is None:
            super().set_epoch(epoch)

    def draws(self, epoch: Optional[int] = None) -> tuple[np.ndarray, np.ndarray]:
        """All ranks' draws of an epoch: (source of each draw, global index into the ConcatDataset)."""
        rng = np.random.default_rng([self.seed, self.epoch if epoch is None else epoch])
        source = rng.choice(len(self.sizes), size=self.total_size, p=self.weights)
        within = np.floor(rng.random(self.total_size) * self.sizes[source]).astype(np.int64)
        return source, self.offsets[source] + within

    def epoch_indices(self) -> list[int]:
        return self.draws()[1].tolist()


class MixedDataset(ConcatDataset):
    """Concatenated sources whose samples carry the global index and label -1 (no shared label space)."""

    def __getitem__(self, key) -> dict:
        # key: a global index, or (global index, draw) from a keyed sampler (see ClipDataset).
        index, draw = key if isinstance(key, tuple) else (key, None)
        source = bisect.bisect_right(self.cumulative_sizes, index)
        within = index - (self.cumulative_sizes[source - 1] if source else 0)
        sample = self.datasets[source][within if draw is None else (within, draw)]
        sample["index"] = int(index)
        sample["label"] = -1
        return sample


class MixedDataModule(L.LightningDataModule):
    """UCF-101 : SSv2 : ImageNet-100 pretraining mixture (the study's mixed regime).

    Train: MixtureSampler over the train splits (UCF-101 split `ucf101_split`, SSv2 train,
    ImageNet-100 train), random clips of `num_frames` at `frame_step` (2), the study's random
    resized crop + flip. A source with weight 0 is not read at all. Val / test: a fixed draw of
    `val_samples` from the evaluation splits with the same weights, frames spread uniformly, resize +
    centre crop (0 turns validation off). Labels are -1 (the sources have no common label space), so
    num_classes is 0.

    ``setup("fit")`` reads only the train splits; the evaluation splits are read for validate / test,
    or by ``val_dataloader`` when a fit validates. A fit from train list files that finds no
    evaluation split (no test list and no official annotations for a source) logs that and skips
    validation, so training needs only the list files.

    Args:
        root: folder holding ucf101/, ssv2/ and imagenet100/ in their official layouts.
        ucf101_root, ssv2_root, imagenet100_root: override one source's folder.
        ucf101_train_list, ssv2_train_list, imagenet100_train_list: V-JEPA style `path label` list
            files used instead of that source's official train annotations.
        ucf101_test_list, ssv2_test_list, imagenet100_test_list: the same for the evaluation splits
            (validation).
        weights: sampling probabilities of (ucf101, ssv2, imagenet100); normalised.
        samples_per_epoch: draws per epoch over all ranks; default: the three train sets' total size.
    """

    num_classes = 0
    dataset_name = "mixed"

    def __init__(
        self,
        root: str = "data",
        ucf101_root: Optional[str] = None,
        ssv2_root: Optional[str] = None,
        imagenet100_root: Optional[str] = None,
        ucf101_train_list: Optional[str] = None,
        ssv2_train_list: Optional[str] = None,
        imagenet100_train_list: Optional[str] = None,
        ucf101_test_list: Optional[str] = None,
        ssv2_test_list: Optional[str] = None,
        imagenet100_test_list: Optional[str] = None,
        weights: tuple[float, float, float] = (0.2, 0.6, 0.2),
        samples_per_epoch: Optional[int] = None,
        ucf101_split: int = 1,
        ssv2_video_ext: str = "webm",
        num_frames: int = 16,
        crop_size: int = 224,
        frame_step: int = 2,
        batch_size: int = 8,
        num_workers: int = 8,
        seed: Optional[int] = None,
        on_error: OnError = "skip",
        val_samples: int = 512,
        thread_type: ThreadType = DEFAULT_THREAD_TYPE,
        pin_memory: bool = False,
    ):
        super().__init__()
        if len(weights) != len(SOURCES):
            raise ValueError(f"data.weights needs {len(SOURCES)} values for {SOURCES}, got {list(weights)}")
        if on_error not in ("skip", "raise"):
            raise ValueError(f"data.on_error={on_error!r}; expected 'skip' or 'raise'")
        self.root = root
        self.roots = {
            "ucf101": ucf101_root or str(Path(root) / "ucf101"),
            "ssv2": ssv2_root or str(Path(root) / "ssv2"),
            "imagenet100": imagenet100_root or str(Path(root) / "imagenet100"),
        }
        self.train_lists = {"ucf101": ucf101_train_list, "ssv2": ssv2_train_list, "imagenet100": imagenet100_train_list}
        self.test_lists = {"ucf101": ucf101_test_list, "ssv2": ssv2_test_list, "imagenet100": imagenet100_test_list}
        self.weights = tuple(float(w) for w in weights)
        self.samples_per_epoch, self.ucf101_split, self.ssv2_video_ext = samples_per_epoch, ucf101_split, ssv2_video_ext
        self.num_frames, self.crop_size, self.frame_step = num_frames, crop_size, frame_step
        self.batch_size, self.num_workers, self.seed, self.on_error = batch_size, num_workers, seed, on_error
        self.val_samples, self.thread_type, self.pin_memory = val_samples, thread_type, pin_memory
        self.train_set: Optional[MixedDataset] = None
        self.val_set: Optional[MixedDataset] = None
        self.index_problems: list[IndexProblem] = []
        self.save_hyperparameters()

    def _index(self, source: str, split: Literal["train", "test"]) -> list[Record]:
        root = self.roots[source]
        list_file = (self.train_lists if split == "train" else self.test_lists)[source]
        if list_file:
            return read_list_file(list_file, root)
        try:
            return self._index_official(source, root, split)
        except LayoutError as e:
            raise LayoutError(f"{e}\n\nThe mixed regime reads:\n{EXPECTED_LAYOUT.rstrip()}\n"
                              f"Or give a V-JEPA style list file instead: data.{source}_{split}_list") from e

    def _index_official(self, source: str, root: str, split: Literal["train", "test"]) -> list[Record]:
        if source == "ucf101":
            records, problems = index_ucf101(root, self.ucf101_split, split)
        elif source == "ssv2":
            records, problems = index_ssv2(root, split, self.ssv2_video_ext)
        else:
            records, problems = index_imagenet100(root, split)
            if problems:  # missing class folders: labels are list positions, so only warn
                log.warning(
                    "imagenet100 %s: %d class folders missing, e.g. %s", split, len(problems), problems[0].where
                )
                problems = []
        for p in problems:
            if self.on_error == "raise":
                raise ValueError(f"{source} {split}: {p.where}: {p.reason}")
            log.warning("%s %s: skipped annotation entry %s: %s", source, split, p.where, p.reason)
        self.index_problems.extend(problems)
        return records

    def _build(self, split: Literal["train", "test"]) -> tuple[MixedDataset, list[float]]:
        train = split == "train"
        datasets, weights = [], []
        for source, weight in zip(SOURCES, self.weights):
            records = self._index(source, split) if weight > 0 else []
            if weight > 0 and not records:
                raise ValueError(f"mixed: {source} at {self.roots[source]} has no {split} samples")
            datasets.append(
                ClipDataset(
                    records or [Record("", -1)],  # a placeholder that weight 0 never draws
                    RandomClipSampler(self.num_frames, self.frame_step)
                    if train
                    else UniformClipSampler(self.num_frames),
                    VideoTrainTransform(self.crop_size) if train else VideoEvalTransform(self.crop_size),
                    self.num_frames,
                    seed=run_seed(self.seed),
                    on_error=self.on_error,
                    thread_type=self.thread_type,
                    name=f"{source}/{split}",
                )
            )
            weights.append(weight if records else 0.0)
        return MixedDataset(datasets), weights

    def source_sizes(self, dataset: MixedDataset, weights: Sequence[float]) -> list[int]:
        return [len(d) if w > 0 else 0 for d, w in zip(dataset.datasets, weights)]

    def setup(self, stage: Optional[str] = None) -> None:
        # The evaluation splits of a fit are read by val_dataloader(), only when the fit validates.
        if stage in (None, "fit") and self.train_set is None:
            self.train_set, self._train_weights = self._build("train")
        if self.val_samples > 0 and self.val_set is None and stage in (None, "validate", "test"):
            self.val_set, self._val_weights = self._build("test")

    def train_sampler(self) -> MixtureSampler:
        sizes = self.source_sizes(self.train_set, self._train_weights)
        return MixtureSampler(sizes, self._train_weights, self.samples_per_epoch or sum(sizes), run_seed(self.seed),
                              keyed=True)

    def train_dataloader(self) -> DataLoader:
        if self.train_set is None:
            self.setup("fit")
        # A checkpointed position in the epoch's draws: a resumed run continues the same epoch.
        return training_loader(self, self.train_set, self.train_sampler())

    def val_dataloader(self):
        if self.val_samples <= 0:
            return []
        if self.val_set is None:
            try:
                self.val_set, self._val_weights = self._build("test")
            except LayoutError as e:
                # Training from list files needs no official files; validating needs evaluation splits.
                if not (any(self.train_lists.values()) and fitting(self)):
                    raise
                log.warning("mixed: validation skipped: no evaluation split (set data.ucf101_test_list, "
                            "data.ssv2_test_list and data.imagenet100_test_list, or give the official "
                            "annotations: %s)", str(e).splitlines()[0])
                return []
        # A fixed draw, so every validation sees the same clips.
        sampler = MixtureSampler(
            self.source_sizes(self.val_set, self._val_weights),
            self._val_weights,
            self.val_samples,
            run_seed(self.seed),
            fixed_epoch=0,
        )
        return evaluation_loader(self, self.val_set, sampler)

    def test_dataloader(self):
        return self.val_dataloader()
