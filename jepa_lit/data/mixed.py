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

from jepa_lit.data.clip_dataset import ClipDataset
from jepa_lit.data.datamodule import ClipDataModule, OnError, fitting, normalize_after_transfer
from jepa_lit.data.decode import DEFAULT_THREAD_TYPE, ThreadType
from jepa_lit.data.imagenet100 import ImageNet100DataModule
from jepa_lit.data.records import IndexProblem, LayoutError
from jepa_lit.data.resumable import EpochSampler, evaluation_loader, training_loader
from jepa_lit.data.ssv2 import SSv2DataModule
from jepa_lit.data.ucf101 import UCF101DataModule
from jepa_lit.data.worker_threads import DEFAULT_DECODER_THREADS, check_decoder_threads
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
    validation, so training needs only the list files. Each source is read by its dataset's
    DataModule (``sources``: UCF101DataModule, SSv2DataModule, ImageNet100DataModule) built from these
    arguments; its skipped annotation entries are in ``index_problems``.

    Args:
        root: folder holding ucf101/, ssv2/ and imagenet100/ in their official layouts.
        ucf101_root, ssv2_root, imagenet100_root: override one source's folder.
        ucf101_train_list, ssv2_train_list, imagenet100_train_list: V-JEPA style `path label` list
            files used instead of that source's official train annotations.
        ucf101_test_list, ssv2_test_list, imagenet100_test_list: the same for the evaluation splits
            (validation).
        weights: sampling probabilities of (ucf101, ssv2, imagenet100); normalised.
        samples_per_epoch: draws per epoch over all ranks; default: the three train sets' total size.
        uint8_batches: train clips (videos and images alike) leave the loader as uint8 and are
            normalised on the device after the transfer, bit for bit as on the host (see
            ClipDataModule); validation clips stay float32.
        decoder_threads: FFmpeg threads per video decoder in each loader worker (see ClipDataModule).
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
        uint8_batches: bool = False,
        decoder_threads: int = DEFAULT_DECODER_THREADS,
    ):
        super().__init__()
        if len(weights) != len(SOURCES):
            raise ValueError(f"data.weights needs {len(SOURCES)} values for {SOURCES}, got {list(weights)}")
        self.root, self.weights = root, tuple(float(w) for w in weights)
        # Each source is its dataset's DataModule with the mixed regime's pipeline: `frame_step` for every
        # source, and the bilinear evaluation resize for ImageNet-100 too. It checks on_error.
        shared = dict(num_frames=num_frames, crop_size=crop_size, frame_step=frame_step, seed=seed, on_error=on_error,
                      thread_type=thread_type, uint8_batches=uint8_batches)
        self.sources: dict[str, ClipDataModule] = {
            "ucf101": UCF101DataModule(ucf101_root or str(Path(root) / "ucf101"), ucf101_train_list,
                                       ucf101_test_list, split=ucf101_split, **shared),
            "ssv2": SSv2DataModule(ssv2_root or str(Path(root) / "ssv2"), ssv2_train_list, ssv2_test_list,
                                   video_ext=ssv2_video_ext, **shared),
            "imagenet100": ImageNet100DataModule(imagenet100_root or str(Path(root) / "imagenet100"),
                                                 imagenet100_train_list, imagenet100_test_list,
                                                 eval_interpolation="bilinear", **shared),
        }
        self.samples_per_epoch, self.num_frames, self.crop_size, self.frame_step = (samples_per_epoch, num_frames,
                                                                                    crop_size, frame_step)
        self.batch_size, self.num_workers, self.seed, self.on_error = batch_size, num_workers, seed, on_error
        self.val_samples, self.thread_type, self.pin_memory = val_samples, thread_type, pin_memory
        self.uint8_batches = uint8_batches
        self.decoder_threads = check_decoder_threads(decoder_threads)  # the loaders' workers (worker_threads.py)
        self.train_set: Optional[MixedDataset] = None
        self.val_set: Optional[MixedDataset] = None
        self.save_hyperparameters()

    def _build(self, split: Literal["train", "test"]) -> MixedDataset:
        # A source with weight 0 is never indexed nor read: an empty stand-in keeps the offsets right.
        return MixedDataset([self._dataset(name, split) if weight > 0 else []
                             for name, weight in zip(SOURCES, self.weights)])

    def _dataset(self, name: str, split: Literal["train", "test"]) -> ClipDataset:
        try:
            return self.sources[name].make_dataset(split)
        except LayoutError as e:
            official = e.__cause__ or e  # without the per-dataset hint (data.{split}_list): the mixed keys
            raise LayoutError(f"{official}\n\nThe mixed regime reads:\n{EXPECTED_LAYOUT.rstrip()}\n"
                              f"Or give a V-JEPA style list file instead: data.{name}_{split}_list") from official

    @property
    def index_problems(self) -> list[IndexProblem]:
        """The annotation entries the sources skipped."""
        return [p for source in self.sources.values() for p in source.index_problems]

    def sampler(self, dataset: MixedDataset, num_samples: int, **kwargs) -> MixtureSampler:
        return MixtureSampler([len(d) for d in dataset.datasets], self.weights, num_samples, run_seed(self.seed),
                              **kwargs)

    def setup(self, stage: Optional[str] = None) -> None:
        # The evaluation splits of a fit are read by val_dataloader(), only when the fit validates.
        if stage in (None, "fit") and self.train_set is None:
            self.train_set = self._build("train")
        if self.val_samples > 0 and self.val_set is None and stage in (None, "validate", "test"):
            self.val_set = self._build("test")

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        return normalize_after_transfer(self, batch)  # uint8_batches: after the (4x smaller) copy

    def train_dataloader(self) -> DataLoader:
        if self.train_set is None:
            self.setup("fit")
        # A checkpointed position in the epoch's draws: a resumed run continues the same epoch.
        sampler = self.sampler(self.train_set, self.samples_per_epoch or len(self.train_set), keyed=True)
        return training_loader(self, self.train_set, sampler)

    def val_dataloader(self):
        if self.val_samples <= 0:
            return []
        if self.val_set is None:
            try:
                self.val_set = self._build("test")
            except LayoutError as e:
                # Training from list files needs no official files; validating needs evaluation splits.
                if not (any(s.train_list for s in self.sources.values()) and fitting(self)):
                    raise
                log.warning("mixed: validation skipped: no evaluation split (set data.ucf101_test_list, "
                            "data.ssv2_test_list and data.imagenet100_test_list, or give the official "
                            "annotations: %s)", str(e).splitlines()[0])
                return []
        # A fixed draw, so every validation sees the same clips.
        return evaluation_loader(self, self.val_set, self.sampler(self.val_set, self.val_samples, fixed_epoch=0))

    def test_dataloader(self):
        return self.val_dataloader()
