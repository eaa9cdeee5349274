"""The clip Dataset shared by the real datasets: decoding (PyAV) or image reading, clip sampling,
transforms, and the handling of bad samples; plus the collate function of drop-mode evaluation.

Every sample is a dict {"video": float32 [3, T, H, W] (ImageNet-normalised; uint8 and not yet
normalised when the transform was built with normalize=False), "label": int (-1 when unlabeled),
"modality": 0 video / 1 image-as-clip, "index": int}; a dataset in drop mode (evaluation) returns
{"dropped": {"index", "path", "reason"}} for a bad one instead, see collate_dropping_bad.
"""

from __future__ import annotations

import logging
import os
from typing import Callable, Literal, Sequence, Union

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset, default_collate

from jepa_lit.data.clip_sampling import ClipSampler
from jepa_lit.data.decode import (
    DEFAULT_THREAD_TYPE,
    BadInputError,
    ThreadType,
    clearly_truncated,
    decode_frames,
    estimated_frame_count,
    open_video,
)
from jepa_lit.data.records import IMAGE, Record
from jepa_lit.data.transforms import transform_image_as_clip
from jepa_lit.errors import DataError

log = logging.getLogger("jepa_lit.data")

# What a ClipDataset does with a bad sample: replace it (training), raise, or drop it (evaluation).
BadSamplePolicy = Literal["skip", "raise", "drop"]


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
        shown = "; ".join(f"{path}: {why}" for path, why in list(self.bad_files.items())[:5])
        raise DataError(  # every file tried is bad: a dataset to fix, not a crash (exit 2, no traceback)
            f"{self.name}: sample {index} and {self.max_retries} replacement samples all failed to load "
            f"({len(self.bad_files)} bad files so far, e.g. {shown}); check the files (jepa-lit data check)"
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
