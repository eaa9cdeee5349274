"""Frozen-encoder features, extracted once with ``Trainer.predict`` and cached on disk in fp16.

Features are the encoder's tokens [N, W] per clip (``pooling="tokens"``) or their mean [1, W]
(``pooling="mean"``, for SSv2 and ImageNet-100, where the probe averages them anyway and the full
token set would not fit on disk). Which tokens, and so the width W, is the feature ``layer``:

- ``last``: the last level, the D-wide evaluation output (the study's probes; the default);
- ``levels``: the encoder's 4 hierarchical levels concatenated, 4D wide: what the objectives train on;
- ``appearance`` / ``dynamics``: FWM's split of those 4D channels, Z_app = the first
  D_app = max(1, floor(app_ratio * 4D)) channels and Z_dyn = the rest. A clip with several views (segments x spatial crops) keeps
them: each split is stored as ``features.npy`` float16 [clips, views, L, D] (a NumPy memory map, so
sets larger than memory work) and ``labels.npy`` int64 [clips].

A clip whose file is bad (missing, zero-byte, corrupt, clearly truncated) is dropped, not replaced by
another clip as in training: the dataset is read in drop mode, the clip is logged by name, and the
split keeps ``rows.npy`` (the rows of ``features.npy`` that hold a clip; a dropped clip's row stays
empty) and ``dropped.json`` (each dropped clip's index, path and reason). Probes train and are scored
on the kept clips only.

The cache folder is keyed by a hash of everything that decides the features: the encoder's weights
and config, the feature layer (and app_ratio for the split), the pooling, and the data protocol (DataModule class and its arguments, minus loader-only
ones such as batch size, and the content of every file they name, such as a ``test_list``). A second run with the same key reads the files and never runs the encoder.
A cache entry is written to a temporary folder and renamed when complete, so an interrupted run
leaves nothing that looks valid; the folder's name holds its owner (host, pid), and the next extraction
removes those whose process is gone (reclaim_orphans). The features' memory map gets its disk blocks up
front, so a full disk is the "no space left on device" error (exit 1), not a SIGBUS. Its ``meta.json`` records the size and SHA-256 of every file of the
entry; a hit checks them first, and an entry that fails (a file truncated, zeroed or changed, or written
before the records existed) is said to be damaged, once, and recomputed.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import shutil
import socket
import time
import uuid
from pathlib import Path
from typing import Any, Iterator, Literal, Optional, Union

import lightning as L
import numpy as np
import torch
from einops import rearrange
from lightning.pytorch.callbacks import BasePredictionWriter
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from jepa_lit.atomic import WriteError, file_record, is_disk_full, record_problem, write_json
from jepa_lit.data.clip_dataset import ClipDataset, collate_dropping_bad
from jepa_lit.eval.checkpoint import FEATURE_LAYER
from jepa_lit.hashing import files_named, json_sha256
from jepa_lit.objectives.heads import app_channels  # FWM's split: the objectives layer sits below eval

log = logging.getLogger("jepa_lit.eval")

Pooling = Literal["tokens", "mean"]
FeatureLayer = Literal["last", "levels", "appearance", "dynamics"]
FEATURE_LAYERS = ("last", "levels", "appearance", "dynamics")
SPLITS = ("train", "test")
CACHE_FORMAT = 2  # 2: bad clips dropped (rows.npy, dropped.json); format 1 held substitutes in their place
# DataModule arguments that change how clips are loaded, not which pixels they hold.
LOADER_ONLY_ARGS = frozenset({"batch_size", "num_workers", "pin_memory", "thread_type", "persistent_workers",
                              "decoder_threads"})


def pool_tokens(tokens: Tensor, pooling: Pooling) -> Tensor:
    """[B, N, D] -> [B, N, D] ("tokens") or [B, 1, D] ("mean")."""
    if pooling == "tokens":
        return tokens
    if pooling == "mean":
        return tokens.mean(dim=1, keepdim=True)
    raise ValueError(f"features.pooling={pooling!r}; expected 'tokens' or 'mean'")


def check_layer(layer: str, app_ratio: float) -> None:
    """A clear error for a feature layer or app_ratio that does not exist."""
    if layer not in FEATURE_LAYERS:
        raise ValueError(f"features.layer={layer!r}; expected one of {', '.join(FEATURE_LAYERS)}")
    if layer in ("appearance", "dynamics") and not 0.0 < app_ratio < 1.0:
        raise ValueError(f"features.app_ratio={app_ratio}; expected a fraction in (0, 1) (FWM's D_app / 4D)")


def layer_tokens(encoder: nn.Module, video: Tensor, layer: FeatureLayer = "last", app_ratio: float = 0.5) -> Tensor:
    """The encoder's tokens [B, N, W] of feature ``layer`` for clips [B, 3, T, H, W].

    ``levels`` is the encoder's hierarchical output as it is: each level already went through its own
    LayerNorm (norms_block), so the 4 levels are on one scale. It is not normalised again as the
    pretraining targets are: that second, affine-free norm would only drop the learned scale and bias,
    and without it the last D channels of ``levels`` are exactly ``last``, and the FWM split below is
    exactly the Z_app / Z_dyn that the FWM objective shapes (it reads the student's hierarchical output).
    """
    if layer == "last":  # the plain forward: the study's features, computed as before
        return encoder(video)
    check_layer(layer, app_ratio)
    levels = encoder(video, hierarchical=True)
    if layer == "levels":
        return levels
    split = app_channels(levels.shape[-1], app_ratio)  # < 4D for app_ratio < 1: Z_dyn is never empty
    return levels[..., :split] if layer == "appearance" else levels[..., split:]


def encode_clips(encoder: nn.Module, video: Tensor, pooling: Pooling, layer: FeatureLayer = "last",
                 app_ratio: float = 0.5) -> Tensor:
    """Clips [B, 3, T, H, W] or multi-view clips [B, V, 3, T, H, W] -> features [B, V, L, W]."""
    views = video.shape[1] if video.ndim == 6 else 1
    if video.ndim == 6:
        video = rearrange(video, "b v c t h w -> (b v) c t h w")
    tokens = pool_tokens(layer_tokens(encoder, video, layer, app_ratio), pooling)
    return rearrange(tokens, "(b v) l d -> b v l d", v=views)


def describe_layer(layer: FeatureLayer, embed_dim: int, num_levels: int, app_ratio: float = 0.5) -> str:
    """In words, for the results JSON (and so the comparison key): which channels the probe reads."""
    if layer == "last":  # the text results have always carried: comparison keys of `last` stay as they were
        return FEATURE_LAYER
    width = embed_dim * num_levels
    if layer == "levels":
        return f"the {num_levels} hierarchical levels, each after its own LayerNorm, concatenated: {width} wide"
    split = app_channels(width, app_ratio)
    if layer == "appearance":
        return f"FWM appearance channels Z_app: the first {split} of the {width} hierarchical channels (app_ratio {app_ratio:g})"
    return f"FWM dynamics channels Z_dyn: the last {width - split} of the {width} hierarchical channels (app_ratio {app_ratio:g})"


class FeatureExtractor(L.LightningModule):
    """Wraps a frozen encoder for ``Trainer.predict``: batch -> {"features": fp16 [B, V, L, D], "label",
    "dropped"}; the clips a drop-mode dataset left out of the batch are passed on under "dropped"
    (features and label are None when the whole batch was dropped)."""

    def __init__(self, encoder: nn.Module, pooling: Pooling = "tokens", layer: FeatureLayer = "last",
                 app_ratio: float = 0.5):
        super().__init__()
        self.encoder = encoder.eval().requires_grad_(False)
        self.pooling, self.layer, self.app_ratio = pooling, layer, app_ratio

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
        dropped = batch.get("dropped", [])
        if "video" not in batch:
            return {"features": None, "label": None, "dropped": dropped}
        features = encode_clips(self.encoder, batch["video"], self.pooling, self.layer, self.app_ratio)
        return {"features": features.to(torch.float16), "label": torch.as_tensor(batch["label"]), "dropped": dropped}


class FeatureWriter(BasePredictionWriter):
    """Writes each predicted batch into memory-mapped .npy files at the samples' dataset indices, and
    records the clips the batch dropped."""

    def __init__(self, directory: Union[str, os.PathLike], num_samples: int):
        super().__init__(write_interval="batch")
        self.directory, self.num_samples = Path(directory), num_samples
        self.features: Optional[np.memmap] = None
        self.labels = np.full(num_samples, -1, dtype=np.int64)
        self.written = np.zeros(num_samples, dtype=bool)
        self.dropped: dict[int, dict[str, Any]] = {}  # dataset index -> {"index", "path", "reason"}

    def write_on_batch_end(self, trainer, pl_module, prediction, batch_indices, batch, batch_idx, dataloader_idx):
        if batch_indices is None:
            raise RuntimeError("FeatureWriter needs the samples' dataset indices (Lightning did not track them)")
        for clip in prediction["dropped"]:
            self.dropped[int(clip["index"])] = clip
        if prediction["features"] is None:  # every clip of the batch was dropped
            return
        # The batch holds the clips that loaded, in order: the batch's indices less the dropped ones.
        index = np.asarray([i for i in batch_indices if int(i) not in self.dropped], dtype=np.int64)
        features = prediction["features"].cpu().numpy()
        if len(index) != len(features):
            raise RuntimeError(f"a batch of {len(batch_indices)} indices, {len(prediction['dropped'])} dropped, "
                               f"holds {len(features)} clips")
        if self.features is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            shape = (self.num_samples, *features.shape[1:])
            self.features = np.lib.format.open_memmap(self.directory / "features.npy", mode="w+",
                                                      dtype=np.float16, shape=shape)
            reserve_disk_space(self.directory / "features.npy")
        self.features[index] = features
        self.labels[index] = prediction["label"].cpu().numpy()
        self.written[index] = True

    def finish(self) -> None:
        """Flush to disk; every sample must have been written or dropped, and at least one written."""
        done = int(self.written.sum()) + len(self.dropped)
        if done != self.num_samples:
            raise RuntimeError(f"feature extraction wrote {int(self.written.sum())} and dropped {len(self.dropped)} "
                               f"of {self.num_samples} clips")
        if self.features is None:
            reasons = "; ".join(f"{c['path']}: {c['reason']}" for c in list(self.dropped.values())[:5])
            raise RuntimeError(f"feature extraction: none of the {self.num_samples} clips could be loaded ({reasons})")
        self.features.flush()
        np.save(self.directory / "labels.npy", self.labels)
        np.save(self.directory / "rows.npy", np.flatnonzero(self.written))
        dropped = [self.dropped[i] for i in sorted(self.dropped)]
        (self.directory / "dropped.json").write_text(json.dumps(dropped, indent=1))  # in a temporary entry
        self.features = None


def reserve_disk_space(path: Path) -> None:
    """Give the (sparse) memory-mapped file its blocks now: on a full disk a write into the map would end the
    process with SIGBUS ("Bus error", nothing printed); reserved here, a full disk is an OSError (ENOSPC)
    before any feature is computed. File systems without fallocate: the free space is checked instead."""
    size = path.stat().st_size
    try:
        with open(path, "r+b") as handle:
            os.posix_fallocate(handle.fileno(), 0, size)
    except OSError as error:
        if error.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
            raise
        if shutil.disk_usage(path.parent).free < size:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path)) from error


def reclaim_orphans(cache_dir: Path, max_age_s: float = 24 * 3600) -> list[Path]:
    """Remove the temporary entries (``.KEY.tmp-HOST-PID-X``) of extractions that will never finish: their
    process is gone (SIGKILL, a crash, a node that died), or, for names without a pid (older jepa-lit) or
    another host's, they are older than ``max_age_s``; and the ``.KEY.damaged-X`` folders a discard left.
    Returns the folders removed."""
    removed = []
    host = socket.gethostname()
    for folder in Path(cache_dir).glob(".*.tmp-*") if Path(cache_dir).is_dir() else []:
        owner = folder.name.rsplit(".tmp-", 1)[1].rsplit("-", 2)
        alive = None
        if len(owner) == 3 and owner[0] == host and owner[1].isdigit():
            alive = pid_alive(int(owner[1]))
        try:
            old = time.time() - folder.stat().st_mtime > max_age_s
        except OSError:
            continue
        if alive is False or (alive is None and old):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    for folder in Path(cache_dir).glob(".*.damaged-*") if Path(cache_dir).is_dir() else []:
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    if removed:
        log.info("features: removed %d unfinished temporary cache folder(s) of ended runs: %s", len(removed),
                 ", ".join(p.name for p in removed))
    return removed


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


class FeatureSet(Dataset):
    """Cached features [clips, V, L, D] (array or memory map) and labels [clips], as a Dataset of dicts.

    rows: the rows of ``features`` that hold a clip (None: all), when dropped clips left rows empty;
    clip i of the set is row ``rows[i]``, and ``labels`` has one entry per kept clip.
    dropped: the clips left out ({"index", "path", "reason"} each).
    """

    def __init__(self, features: Union[np.ndarray, Tensor], labels: Union[np.ndarray, Tensor],
                 rows: Optional[np.ndarray] = None, dropped: Optional[list[dict[str, Any]]] = None):
        self.rows = rows
        if len(labels) != (len(features) if rows is None else len(rows)):
            raise ValueError(f"{len(features) if rows is None else len(rows)} feature rows but {len(labels)} labels")
        self.features, self.labels = features, labels
        self.dropped = dropped or []

    @classmethod
    def load(cls, directory: Union[str, os.PathLike]) -> "FeatureSet":
        directory = Path(directory)
        rows = np.load(directory / "rows.npy")
        labels = np.load(directory / "labels.npy")[rows]
        dropped = json.loads((directory / "dropped.json").read_text())
        return cls(np.load(directory / "features.npy", mmap_mode="r"), labels, rows, dropped)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, Any]:
        row = i if self.rows is None else int(self.rows[i])
        return {"features": torch.as_tensor(np.array(self.features[row])), "label": int(self.labels[i])}

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self), *self.features.shape[1:])

    def clip_counts(self) -> dict[str, Any]:
        """Clips used and dropped, and the dropped files with their reasons (for the results JSON)."""
        return {"used": len(self), "dropped": len(self.dropped),
                "bad_files": [{"path": c["path"], "reason": c["reason"]} for c in self.dropped]}


def cache_key(encoder_sha256: str, encoder_config: dict, pooling: Pooling, data_class: str,
              data_args: dict[str, Any], layer: FeatureLayer = "last",
              app_ratio: float = 0.5) -> tuple[str, dict[str, Any]]:
    """(hex key, the JSON-able description it hashes)."""
    description = {
        "format": CACHE_FORMAT,
        "encoder_sha256": encoder_sha256,
        "encoder_config": encoder_config,
        "pooling": pooling,
    }
    # `last` adds nothing, so caches written before the layer option existed keep their key
    if layer != "last":
        description["layer"] = layer
    if layer in ("appearance", "dynamics"):
        description["app_ratio"] = app_ratio
    description |= {
        "dtype": "float16",
        "data_class": data_class,
        "data_args": {k: v for k, v in sorted(data_args.items()) if k not in LOADER_ONLY_ARGS},
    }
    files = files_named(description["data_args"])  # list files by content: an edited test_list is a new key
    if files:  # nothing to add without them: the keys of caches written before stay as they were
        description["data_files"] = files
    return json_sha256(description)[:24], description


def ordered_loader(loader: DataLoader) -> DataLoader:
    """The same dataset and batching as ``loader``, in dataset order, without dropping a last partial batch.

    A ClipDataset that would replace a bad clip by another (training's "skip") drops it instead: each
    clip is scored once, so a feature set must not hold substitutes.
    """
    dataset, collate_fn = loader.dataset, loader.collate_fn
    if isinstance(dataset, ClipDataset) and dataset.on_error == "skip":
        dataset, collate_fn = dataset.with_on_error("drop"), collate_dropping_bad
    return DataLoader(dataset, batch_size=loader.batch_size or 1, shuffle=False, drop_last=False,
                      num_workers=loader.num_workers, collate_fn=collate_fn, pin_memory=loader.pin_memory,
                      worker_init_fn=loader.worker_init_fn)


def split_loaders(datamodule: L.LightningDataModule) -> dict[str, DataLoader]:
    """The train split (through the DataModule's train pipeline) and the test split, in dataset order,
    bad clips dropped (see ordered_loader)."""
    datamodule.setup("fit")
    return {"train": ordered_loader(datamodule.train_dataloader()), "test": ordered_loader(datamodule.test_dataloader())}


@contextlib.contextmanager
def quiet_lightning() -> Iterator[None]:
    """Silence Lightning's info lines ("GPU available ...") for the helper Trainers built here."""
    loggers = [logging.getLogger(name) for name in ("lightning.pytorch.utilities.rank_zero",
                                                    "lightning.fabric.utilities.rank_zero")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def extract_split(encoder: nn.Module, loader: DataLoader, directory: Path, pooling: Pooling,
                  trainer_kwargs: dict[str, Any], layer: FeatureLayer = "last", app_ratio: float = 0.5) -> None:
    """Run the encoder over ``loader`` with ``Trainer.predict`` and write the split under ``directory``."""
    writer = FeatureWriter(directory, len(loader.dataset))
    kwargs = dict(accelerator="auto", devices=1, logger=False, enable_checkpointing=False,
                  enable_model_summary=False, enable_progress_bar=False)
    kwargs.update(trainer_kwargs)
    with quiet_lightning():
        trainer = L.Trainer(**kwargs, callbacks=[writer])
    trainer.predict(FeatureExtractor(encoder, pooling, layer, app_ratio), dataloaders=loader, return_predictions=False)
    writer.finish()
    if writer.dropped:
        log.warning("features: %s: %d of %d clips dropped (bad files): %s", directory.name, len(writer.dropped),
                    len(loader.dataset), "; ".join(f"{c['path']}: {c['reason']}" for c in writer.dropped.values()))


def extract_or_load(
    encoder: nn.Module,
    datamodule: L.LightningDataModule,
    cache_dir: Union[str, os.PathLike],
    key: str,
    description: dict[str, Any],
    pooling: Pooling = "tokens",
    trainer_kwargs: Optional[dict[str, Any]] = None,
    layer: FeatureLayer = "last",
    app_ratio: float = 0.5,
) -> tuple[dict[str, FeatureSet], bool, Path]:
    """The train and test features for ``key``: read from ``cache_dir/key`` or extracted and written there.
    ``key`` must come from ``cache_key`` with the same layer, app_ratio and pooling.

    Returns ({"train": FeatureSet, "test": FeatureSet}, cache_hit, the entry's folder).
    """
    entry = Path(cache_dir) / key
    if (entry / "meta.json").is_file():
        problem = cache_problem(entry)
        if problem is None:
            log.info("features: cache hit %s", entry)
            return {split: FeatureSet.load(entry / split) for split in SPLITS}, True, entry
        log.warning("features: the cached features in %s are damaged (%s); recomputing them", entry, problem)
        discard(entry)
    reclaim_orphans(Path(cache_dir))  # what a killed or crashed extraction left, reclaimed at the next run
    # the owner in the name: a later run removes the folder once this process is gone (reclaim_orphans)
    tmp = Path(cache_dir) / f".{key}.tmp-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        for split, loader in split_loaders(datamodule).items():
            log.info("features: extracting %s (%d clips) into %s", split, len(loader.dataset), entry)
            extract_split(encoder, loader, tmp / split, pooling, trainer_kwargs or {}, layer, app_ratio)
        sets = {split: FeatureSet.load(tmp / split) for split in SPLITS}
        meta = {**description, "splits": {s: {"shape": list(sets[s].shape), **sets[s].clip_counts()} for s in SPLITS}}
        del sets
        meta["files"] = record_files(tmp)
        write_json(tmp / "meta.json", meta)
        if entry.exists():  # written meanwhile by another run with the same key: theirs is as good
            shutil.rmtree(tmp)
        else:
            os.replace(tmp, entry)
    except BaseException as error:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(error, Exception) and is_disk_full(error):
            raise WriteError(f"{entry}: no space left on device while writing the feature cache; nothing was "
                             "kept (its temporary folder is removed). Free space (or set features.cache_dir to "
                             "another disk) and run again.") from error
        raise
    return {split: FeatureSet.load(entry / split) for split in SPLITS}, False, entry


CACHE_FILES = ("features.npy", "labels.npy", "rows.npy", "dropped.json")


def record_files(entry: Path) -> dict[str, dict[str, Any]]:
    """{"train/features.npy": {"size", "sha256"}, ...} of a written entry, each file fsync'ed first (the
    entry is renamed into place next, and must be on disk when it is)."""
    records = {}
    for split in SPLITS:
        for name in CACHE_FILES:
            path = entry / split / name
            with open(path, "rb+") as handle:
                os.fsync(handle.fileno())
            records[f"{split}/{name}"] = file_record(path)
    return records


def cache_problem(entry: Path) -> Optional[str]:
    """What is wrong with a cache entry against the records in its meta.json; None when every file matches."""
    try:
        files = json.loads((entry / "meta.json").read_text()).get("files")
    except (OSError, ValueError, AttributeError) as error:
        return f"meta.json cannot be read: {error}"
    if not isinstance(files, dict) or set(files) != {f"{s}/{n}" for s in SPLITS for n in CACHE_FILES}:
        return "meta.json has no record of its files' sizes and hashes (written by an earlier jepa-lit)"
    for name, record in files.items():
        problem = record_problem(entry / name, record, "meta.json")
        if problem is not None:
            return f"{name}: {problem}"
    return None


def discard(entry: Path) -> None:
    """Move a damaged entry out of the way (a rename, so a concurrent reader never sees half of it), then delete it."""
    trash = entry.with_name(f".{entry.name}.damaged-{uuid.uuid4().hex[:8]}")
    try:
        os.replace(entry, trash)
    except OSError:
        return  # already replaced or removed by another run
    shutil.rmtree(trash, ignore_errors=True)


@torch.no_grad()
def extract_in_memory(encoder: nn.Module, loader: DataLoader, pooling: Pooling, device: torch.device,
                      max_clips: Optional[int] = None, layer: FeatureLayer = "last",
                      app_ratio: float = 0.5) -> FeatureSet:
    """Features of ``loader`` held in memory (fp16, on the CPU), for quick probes during pretraining."""
    features, labels, seen = [], [], 0
    for batch in loader:
        if "video" not in batch:  # every clip of the batch was dropped (bad files, logged by the dataset)
            continue
        video = batch["video"].to(device, non_blocking=True)
        features.append(encode_clips(encoder, video, pooling, layer, app_ratio).to(torch.float16).cpu())
        labels.append(torch.as_tensor(batch["label"]))
        seen += video.shape[0]
        if max_clips is not None and seen >= max_clips:
            break
    # The online probe calls this under the trainer's autocast; CPU autocast rejects fp16 inputs to cat.
    with torch.autocast(device_type="cpu", enabled=False):
        features_t, labels_t = torch.cat(features), torch.cat(labels)
    if max_clips is not None:
        features_t, labels_t = features_t[:max_clips], labels_t[:max_clips]
    return FeatureSet(features_t, labels_t)
