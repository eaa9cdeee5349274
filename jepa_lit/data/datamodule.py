"""The DataModule base of the real datasets (ClipDataModule): a subclass (ucf101.py, ssv2.py, ...)
only reads its official annotation files into Records; indexing from list files, problem handling,
datasets, samplers and loaders happen here, the same way for all of them.
"""

from __future__ import annotations

import logging
from typing import Callable, Literal, Optional

import lightning as L
from torch.utils.data import DataLoader

from jepa_lit.data.clip_dataset import ClipDataset
from jepa_lit.data.clip_sampling import ClipSampler, MultiSegmentClipSampler, RandomClipSampler, UniformClipSampler
from jepa_lit.data.decode import DEFAULT_THREAD_TYPE, ThreadType
from jepa_lit.data.records import IndexProblem, LayoutError, Record, read_list_file, resolve_dataset_root
from jepa_lit.data.resumable import EpochSampler, evaluation_loader, training_loader
from jepa_lit.data.transforms import Interpolation, VideoEvalTransform, VideoTrainTransform, normalize_batch
from jepa_lit.data.worker_threads import DEFAULT_DECODER_THREADS, check_decoder_threads
from jepa_lit.errors import DataError
from jepa_lit.seeds import run_seed

log = logging.getLogger("jepa_lit.data")

OnError = Literal["skip", "raise"]  # the data.on_error setting


def normalize_after_transfer(datamodule: L.LightningDataModule, batch):
    """The DataModules' ``on_after_batch_transfer``: uint8 clips (``uint8_batches``) normalised on the device,
    then cast as the trainer's precision casts float inputs (it does so before the transfer, when these
    clips were still uint8: "bf16-true" and the like); any other batch as it is."""
    normalised = normalize_batch(batch)
    if normalised is not batch and datamodule.trainer is not None:
        normalised = datamodule.trainer.precision_plugin.convert_input(normalised)
    return normalised


def fitting(datamodule: L.LightningDataModule) -> bool:
    """Whether the DataModule's trainer is running ``fit`` (False without a trainer)."""
    trainer = datamodule.trainer
    return trainer is not None and trainer.state.fn == "fit"


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

    Args:
        root: the dataset folder in its official layout, or the folder holding it under the
            dataset's name (see resolve_dataset_root); each subclass documents its layout and
            gives its own default.
        train_list, test_list: V-JEPA style ``path label`` list files read instead of the official
            annotations of that split (relative paths are taken from the root); None: the
            official files.
        seed: seeds the data order, clip windows and crops; None (the default) is the run's
            seed_everything (jepa_lit.seeds), so another run seed also sees other clips in another
            order.
        eval_interpolation: of the evaluation resize (ImageNet-100: bicubic, as the study).
        eval_frame_indices: how the uniformly spread frame positions become indices (UniformClipSampler):
            "truncate" (default, the study's eval scripts) or "round" (jepa-lit's rule until issue 23).
        uint8_batches: the train split's clips leave the loader as uint8 (crop, resize and flip done,
            a quarter of float32's bytes to copy to the device) and are normalised there, after the
            transfer (``on_after_batch_transfer``), to the same float32 values bit for bit. The
            evaluation split stays float32. Only for training through a Trainer (the hook does the
            normalising): a probe's DataModule refuses it (jepa_lit.eval.evaluate).
        decoder_threads: FFmpeg threads per video decoder in each loader worker (1: the workers are the
            parallelism; 0: FFmpeg's choice, one per core). Torch and OpenCV run one thread per worker
            (jepa_lit.data.worker_threads).
    """

    num_classes: int = 0
    dataset_name: str = "dataset"
    layout_markers: tuple[str, ...] = ()  # entries found directly in the dataset's own folder

    def __init__(
        self,
        root: str = "data",
        train_list: Optional[str] = None,
        test_list: Optional[str] = None,
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
        uint8_batches: bool = False,
        decoder_threads: int = DEFAULT_DECODER_THREADS,
        eval_frame_indices: Literal["truncate", "round"] = "truncate",
    ):
        super().__init__()
        if on_error not in ("skip", "raise"):
            raise ValueError(f"data.on_error={on_error!r}; expected 'skip' or 'raise'")
        self.root, self.train_list, self.test_list = root, train_list, test_list
        self.num_frames, self.crop_size, self.frame_step = num_frames, crop_size, frame_step
        self.batch_size, self.num_workers, self.seed, self.on_error = batch_size, num_workers, seed, on_error
        self.train_sampling, self.train_augment = train_sampling, train_augment
        self.eval_num_segments, self.eval_num_views = eval_num_segments, eval_num_views
        self.thread_type, self.pin_memory = thread_type, pin_memory
        self.eval_interpolation, self.uint8_batches = eval_interpolation, uint8_batches
        self.decoder_threads = check_decoder_threads(decoder_threads)
        self.eval_frame_indices = eval_frame_indices
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
            return read_list_file(list_file, root, self.num_classes or None), []  # labels checked here
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
            return UniformClipSampler(self.num_frames, self.eval_frame_indices)
        return RandomClipSampler(self.num_frames, self.frame_step)

    def eval_clip_sampler(self) -> ClipSampler:
        if self.eval_num_segments > 1:
            return MultiSegmentClipSampler(self.num_frames, self.frame_step, self.eval_num_segments)
        return UniformClipSampler(self.num_frames, self.eval_frame_indices)

    def train_transform(self) -> Callable:
        normalize = not self.uint8_batches  # else on the device, by on_after_batch_transfer
        if self.train_augment:
            return VideoTrainTransform(self.crop_size, normalize=normalize)
        return VideoEvalTransform(self.crop_size, interpolation=self.eval_interpolation, normalize=normalize)

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

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        return normalize_after_transfer(self, batch)  # uint8_batches: after the (4x smaller) copy

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
