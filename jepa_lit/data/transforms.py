"""Clip transforms with albumentations: one random crop/flip for all frames of a clip, ImageNet normalisation.

albumentations 2.x draws a transform's parameters once per call and applies them to every array
given as ``images=``, so a clip passed as ``images=clip`` ([T, H, W, 3]) gets the same crop and
flip on every frame (per-frame calls would not). Output is a float32 tensor [3, T, H, W].

With ``normalize=False`` the output stays uint8 [3, T, H, W] (a quarter of the bytes to move to the
device) and ``normalize_on_device`` turns it into the same float32 values there, bit for bit:
albumentations normalises uint8 pixels through a per-channel table of ``(x - mean * 255) *
(1 / (std * 255))`` computed in float32, and the same two float32 operations on the device give the
same table entries (uint8 -> float32 is exact; a subtraction then a multiplication, rounded each).

Seeding: albumentations keeps its own random generators. A transform called with ``seed=`` reseeds
them first, which is how the datasets make each sample reproducible from (seed, index).
"""

from __future__ import annotations

import functools
from typing import Literal, Optional

import albumentations as A
import cv2
import numpy as np
import torch
from einops import rearrange

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

Interpolation = Literal["bilinear", "bicubic"]
INTERPOLATIONS = {"bilinear": cv2.INTER_LINEAR, "bicubic": cv2.INTER_CUBIC}

# The study's random resized crop (docs/objectives.md, base recipe).
TRAIN_SCALE = (0.3, 1.0)
TRAIN_RATIO = (0.75, 1.35)


# The transforms' normalisation; its float32 constants (mean * 255 and 1 / (std * 255), computed by
# albumentations) are also the device-side normalisation's, so both start from the same numbers.
IMAGENET_NORMALIZE = A.Normalize(mean=IMAGENET_MEAN, std=IMAGENET_STD)


@functools.cache
def _uint8_constants(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean * 255, 1 / (std * 255)) as float32 [3, 1, 1, 1] on ``device``, copied there once: a copy per
    batch would make every step wait for it."""
    mean = torch.from_numpy(IMAGENET_NORMALIZE.mean_np).view(3, 1, 1, 1)
    scale = torch.from_numpy(IMAGENET_NORMALIZE.denominator).view(3, 1, 1, 1)
    return mean.to(device), scale.to(device)


def normalize_on_device(video: torch.Tensor) -> torch.Tensor:
    """uint8 clips [..., 3, T, H, W] -> float32 with ImageNet mean / std, on the clips' device; the same
    values as the transforms' ``normalize=True`` output, bit for bit (see the module docstring)."""
    if video.dtype != torch.uint8:
        raise TypeError(f"expected uint8 clips, got {video.dtype}")
    mean, scale = _uint8_constants(video.device)
    return video.to(torch.float32).sub_(mean).mul_(scale)  # in place: no second 4-byte copy of the batch


def normalize_batch(batch):
    """A batch dict whose "video" is uint8 with that video normalised (``normalize_on_device``); any
    other batch as it is. The DataModules' ``on_after_batch_transfer``."""
    if isinstance(batch, dict) and isinstance(batch.get("video"), torch.Tensor) and batch["video"].dtype == torch.uint8:
        batch = {**batch, "video": normalize_on_device(batch["video"])}
    return batch


def _to_tensor(clip: np.ndarray) -> torch.Tensor:
    """float32 (or uint8) [T, H, W, 3] -> contiguous tensor [3, T, H, W]."""
    return torch.from_numpy(np.ascontiguousarray(rearrange(clip, "t h w c -> c t h w")))


def _as_clip(clip: np.ndarray) -> np.ndarray:
    clip = np.asarray(clip)
    if clip.ndim == 3:  # a single image
        clip = clip[None]
    if clip.ndim != 4 or clip.shape[-1] != 3 or clip.dtype != np.uint8:
        raise ValueError(f"expected a uint8 clip [T, H, W, 3] (or an image [H, W, 3]), got {clip.dtype} {clip.shape}")
    return clip


class VideoTrainTransform:
    """Random resized crop (scale 0.3-1.0, aspect 0.75-1.35) + horizontal flip, same for every frame,
    then ImageNet mean/std. uint8 [T, H, W, 3] -> float32 [3, T, crop, crop]; with ``normalize=False``
    uint8 [3, T, crop, crop] (normalised later by ``normalize_on_device``)."""

    def __init__(
        self,
        crop_size: int = 224,
        scale: tuple[float, float] = TRAIN_SCALE,
        ratio: tuple[float, float] = TRAIN_RATIO,
        hflip_p: float = 0.5,
        normalize: bool = True,
    ):
        self.crop_size, self.normalize = crop_size, normalize
        # Normalize draws no random numbers, so leaving it out changes neither the crop nor the flip.
        steps = [A.RandomResizedCrop(size=(crop_size, crop_size), scale=scale, ratio=ratio), A.HorizontalFlip(p=hflip_p)]
        if normalize:
            steps.append(A.Normalize(mean=IMAGENET_MEAN, std=IMAGENET_STD))  # its own: a Compose reseeds its steps
        self.aug = A.Compose(steps)

    def __call__(self, clip: np.ndarray, seed: Optional[int] = None) -> torch.Tensor:
        if seed is not None:
            self.aug.set_random_seed(seed)
        return _to_tensor(self.aug(images=_as_clip(clip))["images"])


class VideoEvalTransform:
    """Resize the short side to `resize_size` (default: crop_size), centre crop, ImageNet mean/std.
    `interpolation`: of the resize (the study's ImageNet-100 evaluation: bicubic; its videos: bilinear).
    `normalize=False`: uint8 output, normalised later by ``normalize_on_device``.

    With num_views > 1 the crops are taken at evenly spaced positions along the long side (for 3:
    start, centre, end) and the result is [num_views, 3, T, crop, crop]; with 1 view, [3, T, crop, crop].
    Deterministic: `seed` is accepted for a uniform interface and ignored.
    """

    def __init__(self, crop_size: int = 224, resize_size: Optional[int] = None, num_views: int = 1,
                 interpolation: Interpolation = "bilinear", normalize: bool = True):
        if num_views < 1:
            raise ValueError(f"num_views must be >= 1, got {num_views}")
        if interpolation not in INTERPOLATIONS:
            raise ValueError(f"interpolation={interpolation!r}; expected one of {sorted(INTERPOLATIONS)}")
        self.crop_size, self.num_views = crop_size, num_views
        self.resize_size = resize_size or crop_size
        if self.resize_size < crop_size:
            raise ValueError(f"resize_size {self.resize_size} is smaller than crop_size {crop_size}")
        self.resize = A.SmallestMaxSize(max_size=self.resize_size, interpolation=INTERPOLATIONS[interpolation])
        self.normalize = normalize

    def _offsets(self, length: int) -> list[int]:
        room = length - self.crop_size
        if self.num_views == 1:
            return [room // 2]
        return [round(room * v / (self.num_views - 1)) for v in range(self.num_views)]

    def __call__(self, clip: np.ndarray, seed: Optional[int] = None) -> torch.Tensor:
        clip = self.resize(images=_as_clip(clip))["images"]
        _, h, w, _ = clip.shape
        c = self.crop_size
        if h >= w:  # views move along the long side; the short side is centred
            x = (w - c) // 2
            crops = [clip[:, y : y + c, x : x + c] for y in self._offsets(h)]
        else:
            y = (h - c) // 2
            crops = [clip[:, y : y + c, x : x + c] for x in self._offsets(w)]
        views = np.concatenate(crops)
        if self.normalize:
            views = IMAGENET_NORMALIZE(images=views)["images"]
        views = rearrange(views, "(v t) h w c -> v c t h w", v=self.num_views)
        out = torch.from_numpy(np.ascontiguousarray(views))
        return out[0] if self.num_views == 1 else out


def image_to_clip(image: np.ndarray, num_frames: int) -> np.ndarray:
    """An image [H, W, 3] as a static clip [num_frames, H, W, 3] (a read-only view, no copy)."""
    image = np.asarray(image)
    return np.broadcast_to(image[None], (num_frames, *image.shape))


def transform_image_as_clip(transform, image: np.ndarray, num_frames: int, seed: Optional[int] = None) -> torch.Tensor:
    """Same result as ``transform(image_to_clip(image, num_frames), seed)``, computed once.

    The clip's frames are identical and get the same crop/flip, so transforming one frame and
    repeating it along time gives the same tensor for a fraction of the work.
    """
    one = transform(_as_clip(image)[:1], seed)  # [..., 3, 1, H, W]
    return one.repeat_interleave(num_frames, dim=-3)
