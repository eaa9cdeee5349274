"""Clip samplers: which frame indices of a video make a clip.

Each sampler is called as ``sampler(num_video_frames, rng)`` and returns an int64 array
[num_clips, num_frames] of frame indices (num_clips is 1 except for the multi-segment sampler).
They only pick indices; decode.py turns them into frames.

Short videos (one rule for every sampler): when a video has fewer frames than the clip needs, the
clip takes the frames that exist, in order, then repeats the last frame until it has `num_frames`
(for a stepped clip, indices past the end are replaced by the last frame). Nothing is stretched or
looped, so motion in the clip is always real motion followed by a still tail.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np


class ClipSampler(Protocol):
    num_frames: int

    def __call__(self, video_len: int, rng: np.random.Generator) -> np.ndarray: ...


def _check(num_frames: int, frame_step: int = 1) -> None:
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    if frame_step < 1:
        raise ValueError(f"frame_step must be >= 1, got {frame_step}")


def _clamp(indices: np.ndarray, video_len: int) -> np.ndarray:
    """Apply the short-video rule: an index past the end becomes the last frame."""
    if video_len < 1:
        raise ValueError(f"video has no frames (length {video_len})")
    return np.minimum(indices, video_len - 1).astype(np.int64)


def clip_span(num_frames: int, frame_step: int = 1) -> int:
    """Frames a clip covers from its first to its last index."""
    return (num_frames - 1) * frame_step + 1


class RandomClipSampler:
    """A random window of `num_frames` frames taken every `frame_step` frames.

    frame_step 1 is the UCF-101 regime (16 consecutive frames), 2 the mixed regime. The window start
    is uniform over all positions where the window fits (0 when the video is too short).
    """

    def __init__(self, num_frames: int = 16, frame_step: int = 1):
        _check(num_frames, frame_step)
        self.num_frames, self.frame_step = num_frames, frame_step

    def __call__(self, video_len: int, rng: np.random.Generator) -> np.ndarray:
        span = clip_span(self.num_frames, self.frame_step)
        start = int(rng.integers(0, max(video_len - span, 0) + 1))
        return _clamp(start + self.frame_step * np.arange(self.num_frames), video_len)[None]


class UniformClipSampler:
    """`num_frames` frames spread evenly over the whole video, first and last frame included (evaluation).

    The positions are ``linspace(0, video_len - 1, num_frames)``; ``index_rounding`` makes them frame indices:
    "truncate" (default, the study's eval scripts: ``np.linspace(..., dtype=int)``, towards 0) or "round"
    (nearest frame, jepa-lit's rule until issue 23). The two differ by one frame where a position's
    fraction is .5 or more (a 100-frame video: 6 of 16 indices).

    Deterministic: the rng is not used. A video shorter than `num_frames` gives all its frames then
    the last one repeated (the short-video rule above; the release's linspace would repeat frames along the clip).
    """

    def __init__(self, num_frames: int = 16, index_rounding: str = "truncate"):
        _check(num_frames)
        if index_rounding not in ("truncate", "round"):
            raise ValueError(f"index_rounding={index_rounding!r}; expected 'truncate' or 'round'")
        self.num_frames, self.index_rounding = num_frames, index_rounding

    def __call__(self, video_len: int, rng: np.random.Generator | None = None) -> np.ndarray:
        if video_len >= self.num_frames:
            positions = np.linspace(0, video_len - 1, self.num_frames)
            idx = np.round(positions) if self.index_rounding == "round" else positions.astype(np.int64)
        else:
            idx = np.arange(self.num_frames)
        return _clamp(idx, video_len)[None]


class MultiSegmentClipSampler:
    """`num_segments` clips for evaluation: the video is cut into equal segments and each gives the
    window (`num_frames` at `frame_step`) centred in it. Deterministic. Spatial views are taken by the
    eval transform (transforms.VideoEvalTransform(num_views=...)), so a sample holds
    num_segments x num_views clips.
    """

    def __init__(self, num_frames: int = 16, frame_step: int = 1, num_segments: int = 1):
        _check(num_frames, frame_step)
        if num_segments < 1:
            raise ValueError(f"num_segments must be >= 1, got {num_segments}")
        self.num_frames, self.frame_step, self.num_segments = num_frames, frame_step, num_segments

    def __call__(self, video_len: int, rng: np.random.Generator | None = None) -> np.ndarray:
        span = clip_span(self.num_frames, self.frame_step)
        seg = video_len / self.num_segments
        centres = (np.arange(self.num_segments) + 0.5) * seg
        starts = np.clip(np.floor(centres - span / 2), 0, max(video_len - span, 0)).astype(np.int64)
        idx = starts[:, None] + self.frame_step * np.arange(self.num_frames)[None]
        return _clamp(idx, video_len)
