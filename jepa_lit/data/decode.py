"""Clip decoding with PyAV: seek to the keyframe before the clip, decode forward only as far as needed.

A training clip is 16 frames (at most ~31 with step 2) out of videos that can be hundreds of frames
long, so decoding everything and then sampling wastes most of the work. Here the container seeks to
the nearest keyframe at or before the first wanted frame (``backward=True``), the decoder runs
forward, and stops at the last wanted frame.

Frame indices come from the decoded frames themselves, ``round((pts - start) * time_base * fps)``,
never from the header frame count (which can be wrong: an AVI may claim 444 frames and hold 68).
For every wanted index the frame shown at that time is returned, i.e. the last decoded frame whose
index is <= the wanted one; this also covers variable frame rate (gaps) and wanted indices past the
real end (the last frame repeats, the same rule as for videos shorter than a clip).
"""

from __future__ import annotations

import itertools
import os
import threading
from dataclasses import dataclass
from typing import Literal, Optional, Sequence, Union

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from jepa_lit.errors import DataError

ThreadType = Literal["AUTO", "FRAME", "SLICE", "NONE"]

# Multi-threaded decoding (frame + slice). On small sources (<= 224 px) it brings little, on
# 640-1280 px footage +13-35 % to a lone decoder (measured on this project's CPU). It only takes effect with more
# than one decoder thread: a DataLoader worker decodes with data.decoder_threads of them, 1 by default
# (jepa_lit.data.worker_threads), since the workers already fill the cores.
DEFAULT_THREAD_TYPE: ThreadType = "AUTO"

# Wanted frames further apart than this are reached with a new seek instead of decoding through the
# gap (matters for frames spread over a long video; a contiguous training clip needs one seek).
DEFAULT_SEEK_GAP = 48

# FFmpeg decoder threads of every video this process opens (codec_context.thread_count): None leaves PyAV's
# default (0, FFmpeg's choice: one per core). A DataLoader worker sets it (jepa_lit.data.worker_threads).
_decoder_threads: Optional[int] = None


def set_decoder_threads(threads: Optional[int]) -> None:
    """The decoder thread count of the videos this process opens from now on (None: PyAV's default)."""
    global _decoder_threads
    _decoder_threads = threads


def decoder_threads() -> Optional[int]:
    """The decoder thread count set for this process (None: PyAV's default)."""
    return _decoder_threads


class BadInputError(DataError, RuntimeError):
    """A file that cannot be used (video or image); carries the file name and the reason. A DataError, so
    with ``data.on_error: raise`` the commands print its message (exit 2), not a traceback; it takes one
    message too, which is how a DataLoader worker re-raises it in the main process (same type)."""

    def __init__(self, path: Union[str, os.PathLike], reason: Optional[str] = None):
        super().__init__(f"{path}: {reason}" if reason is not None else str(path))
        self.path = str(path) if reason is not None else ""
        self.reason = reason if reason is not None else str(path)


class VideoDecodeError(BadInputError):
    """A video that cannot be opened or decoded."""


@dataclass
class DecodedClip:
    """Decoded frames plus what decoding learned about the real length of the video.

    ``frames``: uint8 [T, H, W, 3]. ``num_frames_seen``: when the stream ended before the last wanted
    index, the true frame count (last decoded index + 1); otherwise None (the end was not reached).
    """

    frames: np.ndarray
    num_frames_seen: Optional[int] = None


def error_reason(error: Exception) -> str:
    """FFmpeg's reason without the file name PyAV appends (the error already names the file)."""
    return getattr(error, "strerror", None) or str(error)


def open_video(path: Union[str, os.PathLike], thread_type: ThreadType = DEFAULT_THREAD_TYPE):
    """Open a container for its first video stream, with clear errors for unusable files."""
    path = str(path)
    if not os.path.exists(path):
        raise VideoDecodeError(path, "file not found (listed in the annotations but missing on disk)")
    if os.path.getsize(path) == 0:
        raise VideoDecodeError(path, "zero-byte file")
    if not os.access(path, os.R_OK):  # FFmpeg would call it an invalid file; say what it is
        raise VideoDecodeError(path, "permission denied (the file is not readable by this user)")
    try:
        container = av.open(path, metadata_errors="ignore")
    except PermissionError as e:  # PyAV's EACCES error is one too
        raise VideoDecodeError(path, "permission denied (the file is not readable by this user)") from e
    except av.FFmpegError as e:
        raise VideoDecodeError(path, f"cannot open container: {error_reason(e)} (truncated, corrupt or not a video)") from e
    if not container.streams.video:
        container.close()
        raise VideoDecodeError(path, "no video stream in the container")
    stream = container.streams.video[0]
    stream.thread_type = thread_type
    if _decoder_threads is not None:
        stream.codec_context.thread_count = _decoder_threads
    return container


def stream_fps(stream) -> float:
    """Nominal frames per second of a stream (average rate, else guessed rate), used to map pts to indices."""
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate is not None and rate > 0:
            return float(rate)
    raise VideoDecodeError(stream.container.name, "stream has no frame rate")


def _start_pts(stream) -> int:
    return stream.start_time if stream.start_time is not None else 0


def duration_seconds(container, stream) -> Optional[float]:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return None


def header_frame_count(container) -> Optional[int]:
    """The frame count from the header when it is there and agrees with duration x fps, else None."""
    stream = container.streams.video[0]
    n = stream.frames
    if not n or n <= 0:
        return None
    duration = duration_seconds(container, stream)
    if duration is None:
        return n
    expected = duration * stream_fps(stream)
    return n if abs(n - expected) <= max(2.0, 0.05 * n) else None


def clearly_truncated(frames_found: int, frames_announced: Optional[int]) -> bool:
    """Whether a video holds clearly fewer frames than its header or duration announces (fewer than
    90 % of them, less 2). A header count is often a little off, so only a large shortfall counts:
    the one rule of ``jepa-lit data check`` and of the datasets, which skip such a file as bad."""
    return bool(frames_announced) and frames_found < 0.9 * frames_announced - 2


def demux_frame_count(container) -> int:
    """Count the video packets (one per frame; demuxing only, no decoding). Leaves the container at EOF."""
    stream = container.streams.video[0]
    return sum(1 for packet in container.demux(stream) if packet.size > 0)


def count_frames(video: Union[str, os.PathLike, "av.container.InputContainer"]) -> int:
    """Number of frames: the header's when plausible, else by demuxing packets (cheap, no decoding).

    Given an open container that had to be demuxed, the container is left at EOF; decode_frames()
    seeks before decoding, so it can be used as is.
    """
    if isinstance(video, (str, os.PathLike)):
        container = open_video(video)
        try:
            return count_frames(container)
        finally:
            container.close()
    n = header_frame_count(video)
    if n is None:
        try:
            n = demux_frame_count(video)
        except av.FFmpegError as e:
            raise VideoDecodeError(video.name, f"cannot demux: {error_reason(e)}") from e
    if n <= 0:
        raise VideoDecodeError(video.name, "video stream has no frames")
    return n


def announced_frame_count(container) -> Optional[int]:
    """The frame count a video announces: its header's when that agrees with duration x fps, else duration x
    fps; None when it announces neither. The one count that ``jepa-lit data check`` and the datasets compare
    the decoded frames with, so both report the same number for the same file."""
    n = header_frame_count(container)
    if n is not None:
        return n
    stream = container.streams.video[0]
    seconds = duration_seconds(container, stream)
    return max(1, round(seconds * stream_fps(stream))) if seconds else None


def estimated_frame_count(container) -> int:
    """The announced count (announced_frame_count), else a demux: no extra pass over the file in the usual
    cases (WebM has no header count). An over-estimate shows up when decoding reaches the real end
    (``num_frames_seen``), and the dataset then draws again within the real length."""
    return announced_frame_count(container) or count_frames(container)


def _runs(indices: np.ndarray, seek_gap: int) -> list[tuple[int, int]]:
    """Split sorted unique indices into (first, last) runs whose inner gaps are <= seek_gap."""
    runs, first = [], int(indices[0])
    for prev, cur in zip(indices[:-1], indices[1:]):
        if cur - prev > seek_gap:
            runs.append((first, int(prev)))
            first = int(cur)
    runs.append((first, int(indices[-1])))
    return runs


class _Run:
    """Decode one run of wanted frames: seek before `first`, decode forward up to `last`.

    Iterating yields (index, frame); afterwards `eof` tells whether the stream ended before `last`.
    """

    def __init__(self, container, stream, first: int, last: int, fps: float):
        self.container, self.stream, self.first, self.last, self.fps = container, stream, first, last, fps
        self.eof = True

    def _decode_from(self, target: int):
        start, tb = _start_pts(self.stream), float(self.stream.time_base)
        self.container.seek(start + int(target / self.fps / tb), stream=self.stream, backward=True, any_frame=False)
        idx = -1
        for frame in self.container.decode(self.stream):
            # Index from presentation time; a frame without pts follows the previous one.
            idx = round((frame.pts - start) * tb * self.fps) if frame.pts is not None else idx + 1
            yield idx, frame

    def __iter__(self):
        frames = self._decode_from(self.first)
        head = next(frames, None)
        if head is not None and head[0] > self.first and self.first > 0:
            frames.close()  # the seek landed after the first wanted frame: decode from the start
            frames = self._decode_from(0)
            head = next(frames, None)
        if head is None:
            return
        for idx, frame in itertools.chain([head], frames):
            yield idx, frame
            if idx >= self.last:
                self.eof = False
                frames.close()
                return


_local = threading.local()


_inherited: list = []  # converters inherited through a fork, kept alive on purpose (see below)


def _reformatter() -> VideoReformatter:
    """One YUV -> RGB converter per thread and process: it keeps its swscale context between frames,
    which frame.to_ndarray(format=...) rebuilds on every call (about 2 ms of a 640x480 frame's 2.2 ms).

    A forked DataLoader worker gets its own. The copy it inherited is never freed: freeing a swscale
    context joins its slice threads, which do not exist in the child, and the worker would hang.
    """
    if getattr(_local, "pid", None) != os.getpid():
        if hasattr(_local, "reformatter"):
            _inherited.append(_local.reformatter)
        _local.reformatter, _local.pid = VideoReformatter(), os.getpid()
    return _local.reformatter


def decode_frames(
    container,
    indices: Union[Sequence[int], np.ndarray],
    seek_gap: int = DEFAULT_SEEK_GAP,
) -> DecodedClip:
    """Decode the frames at `indices` (any order, repeats allowed) from an open container.

    Returns uint8 [len(indices), H, W, 3] in the order asked. A frame whose size differs from the
    first returned frame (resolution change mid-stream) is rescaled to it. Wanted indices past the
    real end of the stream get the last frame, and `num_frames_seen` reports the real length.
    Only the frames that end up in the clip are kept and converted to RGB.
    """
    wanted = np.asarray(indices, dtype=np.int64)
    if wanted.ndim != 1 or wanted.size == 0:
        raise ValueError(f"indices must be a non-empty 1-D sequence, got shape {wanted.shape}")
    if wanted.min() < 0:
        raise ValueError(f"frame indices must be >= 0, got {wanted.min()}")
    name = container.name
    stream = container.streams.video[0]
    fps = stream_fps(stream)
    unique = np.unique(wanted).tolist()

    chosen: dict[int, object] = {}  # wanted index -> the frame on screen at that index
    ptr = 0  # next wanted index (in `unique`) not yet given a frame
    pending = None  # last decoded frame: it covers wanted indices up to the next frame's index
    last_idx = -1
    seen_end: Optional[int] = None
    try:
        for first, last in _runs(np.asarray(unique), seek_gap):
            if seen_end is not None:
                break  # the stream already ended before this run
            run = _Run(container, stream, first, last, fps)
            for idx, frame in run:
                if idx <= last_idx:
                    continue  # decoded again after a seek landed before where we were
                while ptr < len(unique) and unique[ptr] < idx:
                    chosen[unique[ptr]] = pending if pending is not None else frame
                    ptr += 1
                pending, last_idx = frame, idx
            if run.eof:
                seen_end = last_idx + 1
    except av.FFmpegError as e:
        raise VideoDecodeError(name, f"decoding failed: {error_reason(e)}") from e
    if pending is None:
        raise VideoDecodeError(name, "no frame could be decoded")
    for i in unique[ptr:]:  # at or after the last decoded frame (or past the end): that frame
        chosen[i] = pending

    arrays: dict[int, np.ndarray] = {}  # id(frame) -> RGB array, each frame converted once
    height, width = chosen[unique[0]].height, chosen[unique[0]].width
    reformatter = _reformatter()
    for frame in chosen.values():
        if id(frame) not in arrays:
            # the size only changes when the stream changes resolution mid-way
            arrays[id(frame)] = reformatter.reformat(frame, width=width, height=height, format="rgb24").to_ndarray()
    clip = np.stack([arrays[id(chosen[i])] for i in wanted.tolist()])
    return DecodedClip(clip, seen_end)


def decode_all(path: Union[str, os.PathLike], thread_type: ThreadType = DEFAULT_THREAD_TYPE) -> np.ndarray:
    """Decode every frame of a video (reference for tests and the benchmark), uint8 [N, H, W, 3]."""
    container = open_video(path, thread_type)
    reformatter = _reformatter()
    try:
        out = [
            reformatter.reformat(f, format="rgb24").to_ndarray() for f in container.decode(container.streams.video[0])
        ]
    except av.FFmpegError as e:
        raise VideoDecodeError(path, f"decoding failed: {error_reason(e)}") from e
    finally:
        container.close()
    if not out:
        raise VideoDecodeError(path, "no frame could be decoded")
    return np.stack(out)


def read_frames(
    path: Union[str, os.PathLike],
    indices: Union[Sequence[int], np.ndarray],
    thread_type: ThreadType = DEFAULT_THREAD_TYPE,
    seek_gap: int = DEFAULT_SEEK_GAP,
) -> DecodedClip:
    """Open `path`, decode the frames at `indices`, close. See decode_frames()."""
    container = open_video(path, thread_type)
    try:
        return decode_frames(container, indices, seek_gap)
    finally:
        container.close()
