"""What every real dataset shares: sample records, the clip Dataset with bad-sample handling, the
`path label` list-file reader, layout errors, and the DataModule base the dataset modules extend.

A dataset module (ucf101.py, ssv2.py, ...) only reads its official annotation files into a list of
Records; everything after that (decoding, clip sampling, transforms, skipping bad files, loaders)
happens here, the same way for all of them.

Every sample is a dict {"video": float32 [3, T, H, W] (ImageNet-normalised), "label": int (-1 when
unlabeled), "modality": 0 video / 1 image-as-clip, "index": int}; a dataset in drop mode (evaluation)
returns {"dropped": {"index", "path", "reason"}} for a bad one instead, see collate_dropping_bad.
"""

from __future__ import annotations

import json

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Literal, Optional, Sequence, Union

import lightning as L
import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import DataLoader, Dataset, default_collate

from jepa_lit.data.resumable import EpochSampler, evaluation_loader, training_loader
from jepa_lit.data.clip_sampling import ClipSampler, MultiSegmentClipSampler, RandomClipSampler, UniformClipSampler
from jepa_lit.data.decode import (
    DEFAULT_THREAD_TYPE,
    BadInputError,
    ThreadType,
    clearly_truncated,
    decode_frames,
    estimated_frame_count,
    open_video,
)
from jepa_lit.data.transforms import Interpolation, VideoEvalTransform, VideoTrainTransform, transform_image_as_clip
from jepa_lit.errors import DataError
from jepa_lit.hints import path_hint
from jepa_lit.seeds import run_seed

log = logging.getLogger("jepa_lit.data")

VIDEO, IMAGE = 0, 1  # the "modality" flag of a sample
OnError = Literal["skip", "raise"]  # the data.on_error setting
# What a ClipDataset does with a bad sample: replace it (training), raise, or drop it (evaluation).
BadSamplePolicy = Literal["skip", "raise", "drop"]


@dataclass(frozen=True, slots=True)
class Record:
    """One sample on disk: a video (optionally a frame range [start_frame, end_frame)) or an image."""

    path: str
    label: int = -1
    start_frame: Optional[int] = None
    end_frame: Optional[int] = None
    modality: int = VIDEO


@dataclass(frozen=True, slots=True)
class IndexProblem:
    """An annotation entry that could not be turned into a Record (e.g. an unknown label)."""

    where: str  # annotation file and line / item
    reason: str


class LayoutError(DataError, FileNotFoundError):
    """A dataset root that is missing or not laid out as expected; the message shows the expected tree."""


def layout_error(dataset: str, root: Union[str, os.PathLike], problem: str, expected_tree: str,
                 hint: str = "") -> LayoutError:
    return LayoutError(
        f"{dataset}: {problem}\n"
        f"  root: {root}\n"
        + "".join(f"  {line}\n" for line in hint.splitlines()) +
        f"Expected layout (the official download, unpacked under the root):\n{expected_tree.rstrip()}"
    )


def require(
    dataset: str, root: Union[str, os.PathLike], paths: Sequence[Union[str, os.PathLike]], expected_tree: str
) -> None:
    """Raise a LayoutError naming the first of `paths` that does not exist (the root itself first)."""
    if not Path(root).is_dir():
        raise layout_error(dataset, root, "root folder not found", expected_tree, path_hint(str(root)))
    for p in paths:
        if not Path(p).exists():
            raise layout_error(dataset, root, f"missing {p}", expected_tree, path_hint(str(p)))


def resolve_dataset_root(root: str, name: str, markers: Sequence[str]) -> str:
    """`root` itself, or root/<name> when root is the folder holding all datasets.

    So `--data.root DIR` works both with DIR = /datasets/ucf101 and DIR = /datasets (which holds
    ucf101/, ssv2/, ...: the layout the mixed regime reads). `markers` are entries found directly in
    the dataset's own folder; when one is in `root`, `root` is the dataset's folder.
    """
    base = Path(root)
    if (base / name).is_dir() and not any((base / m).exists() for m in markers):
        return str(base / name)
    return root


def read_list_file(list_file: Union[str, os.PathLike], root: Optional[Union[str, os.PathLike]] = None) -> list[Record]:
    """Read a V-JEPA style list file: one `path label` per line, space delimited, no header.

    The label is the last field (so a path may contain spaces). Relative paths are taken relative to
    `root`, or to the list file's folder when `root` is None. Files ending in an image extension
    become image records (modality 1).
    """
    list_file = Path(list_file)
    if not list_file.is_file():
        raise FileNotFoundError(f"list file not found: {list_file} (expected lines '<path> <label>')")
    base = Path(root) if root is not None else list_file.parent
    records = []
    for n, line in enumerate(list_file.read_text().splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        parts = line.rsplit(" ", 1)
        if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
            raise ValueError(f"{list_file}:{n}: expected '<path> <integer label>', got {line!r}")
        path = Path(parts[0].strip())
        path = path if path.is_absolute() else base / path
        modality = IMAGE if path.suffix.lower() in IMAGE_EXTENSIONS else VIDEO
        records.append(Record(str(path), int(parts[1]), modality=modality))
    if not records:
        raise ValueError(f"{list_file}: no entries (expected lines '<path> <label>')")
    return records


IMAGE_EXTENSIONS = (".jpeg", ".jpg", ".png", ".bmp", ".webp")


def read_image(path: Union[str, os.PathLike]) -> np.ndarray:
    """An image file as uint8 RGB [H, W, 3], with a BadInputError naming the file when unreadable."""
    path = str(path)
    if not os.path.exists(path):
        raise BadInputError(path, "file not found (listed but missing on disk)")
    if os.path.getsize(path) == 0:
        raise BadInputError(path, "zero-byte file")
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        why = str(e).replace(f" {path!r}", "").replace(path, "the file")  # the error names the file already
        raise BadInputError(path, f"unreadable image ({e.__class__.__name__}: {why})") from e


def load_json(path: Path):
    """An annotation file's JSON; a clear error naming the file when it is not valid JSON."""
    try:
        return json.loads(Path(path).read_text())
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: not valid JSON ({e}); expected the dataset's annotation file as "
                        "downloaded (see docs/datasets.md)") from e


def fitting(datamodule: L.LightningDataModule) -> bool:
    """Whether the DataModule's trainer is running ``fit`` (False without a trainer)."""
    trainer = datamodule.trainer
    return trainer is not None and trainer.state.fn == "fit"


def collate_dropping_bad(samples: list[dict]) -> dict:
    """Collate the samples that loaded; list those a drop-mode dataset marked bad under "dropped"
    (each {"index", "path", "reason"}). A batch whose samples all failed holds only "dropped"."""
    good = [s for s in samples if "dropped" not in s]
    batch = default_collate(good) if good else {}
    batch["dropped"] = [s["dropped"] for s in samples if "dropped" in s]
    return batch


class ClipDataset(Dataset):
    """Clips from a list of Records, decoded with PyAV (or read as images), sampled and transformed.

    Randomness: the clip window and the augmentation come from (`seed`, draw, index). Training
    samplers pass keys ``(index, draw)`` where draw numbers the sample's place in the run (epoch x
    position, see jepa_lit.data.resumable), so a resumed run sees the same clips and crops; a plain
    integer index draws from torch's global generator instead (seeded per worker by Lightning's
    ``seed_everything(..., workers=True)``).

    Bad samples (missing, zero-byte, corrupt or clearly truncated file, unreadable image) are counted
    in ``num_bad``, kept with their reason in ``bad_files`` (per process, so per DataLoader worker)
    and logged by name and reason (a warning the first time the file fails in the process, debug
    after). Then, by ``on_error``: "skip" (training, whose batches need a fixed size) replaces the
    sample by another index drawn deterministically from (seed, index, attempt); "drop" (evaluation,
    which must score each clip once) returns the marker {"dropped": {"index", "path", "reason"}}
    for ``collate_dropping_bad`` to leave out of the batch; "raise" raises the BadInputError.

    Video length comes from the header when plausible, else from demuxing. When decoding finds that
    the stream ends earlier: clearly fewer frames than announced (``clearly_truncated``, the rule of
    data check) make the file bad ("truncated: decoded N of M announced frames"); a small shortfall
    (a header that over-counts) keeps the true length and draws the clip again within it.
    """

    def __init__(
        self,
        records: Sequence[Record],
        clip_sampler: ClipSampler,
        transform: Callable,
        num_frames: int,
        seed: int = 0,
        on_error: BadSamplePolicy = "skip",
        max_retries: int = 20,
        thread_type: ThreadType = DEFAULT_THREAD_TYPE,
        name: str = "dataset",
    ):
        if on_error not in ("skip", "raise", "drop"):
            raise ValueError(f"on_error must be 'skip', 'raise' or 'drop', got {on_error!r}")
        if not records:
            raise ValueError(f"{name}: no samples")
        self.records = list(records)
        self.clip_sampler, self.transform, self.num_frames = clip_sampler, transform, num_frames
        self.seed, self.on_error, self.max_retries = seed, on_error, max_retries
        self.thread_type, self.name = thread_type, name
        self.num_bad = 0
        self.bad_files: dict[str, str] = {}
        self._lengths: dict[int, int] = {}  # record index -> frame count found (per process cache)
        self._over_counted: set[int] = set()  # records whose header announced more frames than decode

    def __len__(self) -> int:
        return len(self.records)

    def with_on_error(self, on_error: BadSamplePolicy) -> "ClipDataset":
        """The same records, pipeline and seed with another bad-sample policy (fresh counts)."""
        return ClipDataset(self.records, self.clip_sampler, self.transform, self.num_frames, seed=self.seed,
                           on_error=on_error, max_retries=self.max_retries, thread_type=self.thread_type,
                           name=self.name)

    def __getitem__(self, key) -> dict:
        index, draw = key if isinstance(key, tuple) else (key, int(torch.randint(0, 2**31 - 1, ()).item()))
        i = index
        for attempt in range(self.max_retries + 1):
            try:
                return self.load(i, np.random.SeedSequence([self.seed, draw, i]))
            except BadInputError as e:
                if self.on_error == "raise":
                    raise
                self.num_bad += 1
                # A file is named at WARNING the first time it fails in this process, at DEBUG after.
                level = logging.DEBUG if e.path in self.bad_files else logging.WARNING
                self.bad_files[e.path] = e.reason
                if self.on_error == "drop":
                    log.log(level, "%s: dropped bad sample %s: %s (%d dropped in this process)",
                            self.name, e.path, e.reason, self.num_bad)
                    return {"dropped": {"index": int(index), "path": e.path, "reason": e.reason}}
                j = int(np.random.default_rng([self.seed, index, attempt + 1]).integers(len(self)))
                log.log(
                    level,
                    "%s: skipped bad sample %s: %s (%d skips, %d bad files in this process); using index %d instead",
                    self.name,
                    e.path,
                    e.reason,
                    self.num_bad,
                    len(self.bad_files),
                    j,
                )
                i = j
        raise RuntimeError(
            f"{self.name}: index {index} and {self.max_retries} replacement samples all failed to load; "
            f"bad files so far: {self.bad_files}"
        )

    def load(self, i: int, seed_seq: np.random.SeedSequence) -> dict:
        """Load sample i with the randomness of `seed_seq`; raises BadInputError for bad files."""
        record = self.records[i]
        rng = np.random.default_rng(seed_seq)
        aug_seed = int(rng.integers(2**31 - 1))
        if record.modality == IMAGE:
            video = transform_image_as_clip(self.transform, read_image(record.path), self.num_frames, aug_seed)
        else:
            clips = self._decode(i, record, rng)
            video = [self.transform(c, aug_seed) for c in clips]
            # one clip: [3, T, H, W]; several segments / views: [clips * views, 3, T, H, W]
            video = video[0] if len(video) == 1 else torch.cat([v if v.ndim == 5 else v[None] for v in video])
        return {"video": video, "label": int(record.label), "modality": int(record.modality), "index": int(i)}

    def _decode(self, i: int, record: Record, rng: np.random.Generator) -> list[np.ndarray]:
        container = open_video(record.path, self.thread_type)
        try:
            n = self._lengths.get(i) or estimated_frame_count(container)
            lo = record.start_frame or 0
            for _ in range(2):  # a second pass only when decoding revealed a shorter video
                hi = n if record.end_frame is None else min(record.end_frame, n)
                if lo >= hi:
                    raise BadInputError(
                        record.path, f"frame range [{lo}, {record.end_frame}) is outside the video's {n} frames"
                    )
                windows = self.clip_sampler(hi - lo, rng) + lo
                decoded = [decode_frames(container, w) for w in windows]
                seen = min((d.num_frames_seen for d in decoded if d.num_frames_seen is not None), default=None)
                if seen is None or seen >= hi:
                    break
                if clearly_truncated(seen, n):
                    raise BadInputError(record.path, f"truncated: decoded {seen} of {n} announced frames")
                if i not in self._over_counted:  # tell once per file
                    self._over_counted.add(i)
                    log.warning(
                        "%s: %s decodes %d frames, its header / duration announces %d (a header that over-counts); "
                        "clips are drawn from the %d",
                        self.name,
                        record.path,
                        seen,
                        n,
                        seen,
                    )
                n = self._lengths[i] = seen  # sample again within the real length
            self._lengths.setdefault(i, n)
            return [d.frames for d in decoded]
        finally:
            container.close()


class ClipDataModule(L.LightningDataModule):
    """The DataModule base of the real datasets: subclasses index their official files, this builds
    the datasets and loaders.

    Train: random clips (``RandomClipSampler(num_frames, frame_step)``) with the study's random
    resized crop + flip; or, with ``train_sampling="uniform"`` and ``train_augment=False``, the eval
    pipeline on the train split (for frozen-feature extraction). Val and test: the official
    test/validation split, frames spread uniformly over the whole video (or ``eval_num_segments``
    segments at ``frame_step``) and ``eval_num_views`` resize + centre/side crops.

    Each split is indexed when first needed: ``setup("fit")`` reads only the train split, the
    evaluation split is read for validate / test / predict, or by ``val_dataloader`` when a fit
    validates. So a DataModule given only ``train_list`` trains without the official files; if such a
    fit validates and finds no evaluation split (no ``test_list``, no official annotations), it logs
    that and skips validation.

    ``eval_interpolation``: of the evaluation resize (ImageNet-100: bicubic, as the study).

    ``seed`` seeds the data order, clip windows and crops; None (the default) is the run's
    seed_everything (jepa_lit.seeds), so another run seed also sees other clips in another order.
    """

    num_classes: int = 0
    dataset_name: str = "dataset"
    layout_markers: tuple[str, ...] = ()  # entries found directly in the dataset's own folder

    def __init__(
        self,
        num_frames: int = 16,
        crop_size: int = 224,
        frame_step: int = 1,
        batch_size: int = 8,
        num_workers: int = 8,
        seed: Optional[int] = None,
        on_error: OnError = "skip",
        train_sampling: Literal["random", "uniform"] = "random",
        train_augment: bool = True,
        eval_num_segments: int = 1,
        eval_num_views: int = 1,
        thread_type: ThreadType = DEFAULT_THREAD_TYPE,
        pin_memory: bool = False,
        eval_interpolation: Interpolation = "bilinear",
    ):
        super().__init__()
        if on_error not in ("skip", "raise"):
            raise ValueError(f"data.on_error={on_error!r}; expected 'skip' or 'raise'")
        self.num_frames, self.crop_size, self.frame_step = num_frames, crop_size, frame_step
        self.batch_size, self.num_workers, self.seed, self.on_error = batch_size, num_workers, seed, on_error
        self.train_sampling, self.train_augment = train_sampling, train_augment
        self.eval_num_segments, self.eval_num_views = eval_num_segments, eval_num_views
        self.thread_type, self.pin_memory = thread_type, pin_memory
        self.eval_interpolation = eval_interpolation
        self.train_set: Optional[ClipDataset] = None
        self.eval_set: Optional[ClipDataset] = None
        self.index_problems: list[IndexProblem] = []

    def resolve_root(self, root: str) -> str:
        """See resolve_dataset_root()."""
        return resolve_dataset_root(root, self.dataset_name, self.layout_markers)

    def index(self, split: Literal["train", "test"]) -> tuple[list[Record], list[IndexProblem]]:
        """Records of a split: from a V-JEPA ``path label`` list file when one is given, else from the
        official annotation files under the root."""
        list_file = self.train_list if split == "train" else self.test_list
        root = self.resolve_root(self.root)
        if list_file:
            return read_list_file(list_file, root), []
        try:
            return self.index_official(root, split)
        except LayoutError as e:
            raise LayoutError(f"{e}\nOr give a V-JEPA style list file instead: data.{split}_list "
                              "('<path> <label>' lines)") from e

    # --- what a subclass provides -------------------------------------------------------------
    def index_official(self, root: str, split: Literal["train", "test"]) -> tuple[list[Record], list[IndexProblem]]:
        """Records of a split from the dataset's official files; raise a LayoutError for a bad root."""
        raise NotImplementedError

    # --- pipeline pieces ----------------------------------------------------------------------
    def train_clip_sampler(self) -> ClipSampler:
        if self.train_sampling == "uniform":
            return UniformClipSampler(self.num_frames)
        return RandomClipSampler(self.num_frames, self.frame_step)

    def eval_clip_sampler(self) -> ClipSampler:
        if self.eval_num_segments > 1:
            return MultiSegmentClipSampler(self.num_frames, self.frame_step, self.eval_num_segments)
        return UniformClipSampler(self.num_frames)

    def train_transform(self) -> Callable:
        if self.train_augment:
            return VideoTrainTransform(self.crop_size)
        return VideoEvalTransform(self.crop_size, interpolation=self.eval_interpolation)

    def eval_transform(self) -> Callable:
        return VideoEvalTransform(self.crop_size, num_views=self.eval_num_views, interpolation=self.eval_interpolation)

    def _records(self, split: Literal["train", "test"]) -> list[Record]:
        records, problems = self.index(split)
        self.index_problems.extend(problems)
        for p in problems:
            if self.on_error == "raise":
                raise DataError(f"{self.dataset_name} {split}: {p.where}: {p.reason} (data.on_error: skip "
                                "leaves such entries out, counted)")
            log.warning("%s %s: skipped annotation entry %s: %s", self.dataset_name, split, p.where, p.reason)
        if problems:
            log.warning("%s %s: %d annotation entries skipped (see above)", self.dataset_name, split, len(problems))
        return records

    def make_dataset(self, split: Literal["train", "test"]) -> ClipDataset:
        train = split == "train"
        return ClipDataset(
            self._records(split),
            self.train_clip_sampler() if train else self.eval_clip_sampler(),
            self.train_transform() if train else self.eval_transform(),
            self.num_frames,
            seed=run_seed(self.seed),
            on_error=self.on_error,
            thread_type=self.thread_type,
            name=f"{self.dataset_name}/{split}",
        )

    def setup(self, stage: Optional[str] = None) -> None:
        # The evaluation split of a fit is read by val_dataloader(), only when the fit validates.
        if stage in (None, "fit") and self.train_set is None:
            self.train_set = self.make_dataset("train")
        if stage != "fit" and self.eval_set is None:
            self.eval_set = self.make_dataset("test")

    def train_dataloader(self) -> DataLoader:
        if self.train_set is None:
            self.setup("fit")
        # Order from (seed, epoch) and a checkpointed position: a resumed run continues the same epoch.
        sampler = EpochSampler(len(self.train_set), seed=run_seed(self.seed), keyed=True)
        return training_loader(self, self.train_set, sampler)

    def val_dataloader(self):
        if self.eval_set is None:
            try:
                self.eval_set = self.make_dataset("test")
            except LayoutError as e:
                # Training from a list file needs no official files; validating needs an evaluation split.
                if not (self.train_list and fitting(self)):
                    raise
                log.warning("%s: validation skipped: no evaluation split (data.test_list is not set and the "
                            "official annotations are not there: %s)", self.dataset_name, str(e).splitlines()[0])
                return []
        return evaluation_loader(self, self.eval_set)

    def test_dataloader(self) -> DataLoader:
        return self.val_dataloader()

    def predict_dataloader(self) -> DataLoader:
        return self.val_dataloader()
