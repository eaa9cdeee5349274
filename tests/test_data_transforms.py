"""Clip transforms: one crop/flip for all frames, ImageNet normalisation, eval resize + crop, images."""

import numpy as np
import pytest
import torch

from jepa_lit.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    VideoEvalTransform,
    VideoTrainTransform,
    image_to_clip,
    normalize_batch,
    normalize_on_device,
    transform_image_as_clip,
)


def ramp_clip(t=8, h=60, w=80, seed=0):
    """Frames = one random image + 10 t: any geometric difference between frames shows up."""
    base = np.random.default_rng(seed).integers(0, 150, (h, w, 3))
    return np.stack([base + 10 * i for i in range(t)]).astype(np.uint8)


def test_train_transform_same_crop_and_flip_on_every_frame():
    tf = VideoTrainTransform(crop_size=32)
    clip = ramp_clip()
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    for seed in range(10):
        out = tf(clip, seed=seed)
        assert out.shape == (3, 8, 32, 32) and out.dtype == torch.float32 and out.is_contiguous()
        for t in range(1, 8):
            # same geometry on every frame => frame t - frame 0 is the constant 10 t / 255 / std
            diff = (out[:, t] - out[:, 0]) * std * 255
            assert torch.allclose(diff, torch.full_like(diff, 10.0 * t), atol=1.5)


def test_train_transform_seeded_is_deterministic_and_varies():
    tf = VideoTrainTransform(crop_size=32)
    clip = ramp_clip()
    assert torch.equal(tf(clip, seed=3), tf(clip, seed=3))
    assert not torch.equal(tf(clip, seed=3), tf(clip, seed=4))


def test_normalisation_is_imagenet():
    mean_rgb = np.round(np.array(IMAGENET_MEAN) * 255).astype(np.uint8)
    clip = np.broadcast_to(mean_rgb, (4, 40, 50, 3)).copy()
    out = VideoEvalTransform(32)(clip)
    assert out.abs().max() < 0.02
    white = VideoEvalTransform(32)(np.full((2, 40, 50, 3), 255, np.uint8))
    expected = (1 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    torch.testing.assert_close(white[:, 0, 0, 0], expected, atol=1e-3, rtol=0)


@pytest.mark.parametrize("hw", [(48, 64), (64, 48)])
def test_eval_resize_short_side_then_centre_crop(hw):
    h, w = hw
    clip = np.zeros((4, h, w, 3), np.uint8)
    clip[:, h // 2 - 2 : h // 2 + 2, w // 2 - 2 : w // 2 + 2] = 255  # a white dot at the centre
    out = VideoEvalTransform(24)(clip)
    assert out.shape == (3, 4, 24, 24)
    assert out[0, 0, 12, 12] > 1.0 and out[0, 0, 0, 0] < 0  # the centre stays in the middle


def test_eval_spatial_views():
    clip = ramp_clip(4, 40, 80)
    out = VideoEvalTransform(32, num_views=3)(clip)
    assert out.shape == (3, 3, 4, 32, 32)
    assert not torch.equal(out[0], out[2])
    torch.testing.assert_close(out[1], VideoEvalTransform(32)(clip))


def test_image_as_static_clip_equals_repeat_then_transform():
    image = ramp_clip(1, 50, 70)[0]
    tf = VideoTrainTransform(crop_size=32)
    fast = transform_image_as_clip(tf, image, 16, seed=5)
    slow = tf(image_to_clip(image, 16), seed=5)
    assert fast.shape == (3, 16, 32, 32)
    torch.testing.assert_close(fast, slow)
    with pytest.raises(ValueError):
        tf(np.zeros((4, 10, 10), np.uint8))


def test_eval_interpolation_bicubic_for_imagenet100():
    """The study resizes ImageNet-100 bicubically; the video benchmarks bilinearly (albumentations' default)."""
    import cv2

    from jepa_lit.data.imagenet100 import ImageNet100DataModule
    from jepa_lit.data.ucf101 import UCF101DataModule

    rng = np.random.default_rng(0)
    clip = rng.integers(0, 256, size=(2, 20, 30, 3), dtype=np.uint8)  # upscaled to 32: the kernels differ
    bilinear = VideoEvalTransform(32)(clip)
    bicubic = VideoEvalTransform(32, interpolation="bicubic")(clip)
    assert not torch.allclose(bilinear, bicubic)
    expected = cv2.resize(clip[0], (48, 32), interpolation=cv2.INTER_CUBIC)[:, 8:40].astype(np.float32) / 255
    mean, std = np.array((0.485, 0.456, 0.406)), np.array((0.229, 0.224, 0.225))
    assert np.allclose(bicubic[:, 0].permute(1, 2, 0).numpy(), (expected - mean) / std, atol=1e-4)
    assert ImageNet100DataModule().eval_transform().resize.interpolation == cv2.INTER_CUBIC
    assert UCF101DataModule().eval_transform().resize.interpolation == cv2.INTER_LINEAR
    with pytest.raises(ValueError, match="interpolation='nearest'"):
        VideoEvalTransform(32, interpolation="nearest")


def test_uint8_output_normalised_later_is_bit_identical():
    """normalize=False keeps the crop / flip / resize and skips only the normalisation; normalising the
    uint8 clip afterwards (as on the device) gives the float32 path's tensor exactly."""
    clip = np.random.default_rng(1).integers(0, 256, size=(4, 50, 70, 3), dtype=np.uint8)
    pairs = [(VideoTrainTransform(32), VideoTrainTransform(32, normalize=False)),
             (VideoEvalTransform(32, num_views=3), VideoEvalTransform(32, num_views=3, normalize=False)),
             (VideoEvalTransform(32, interpolation="bicubic"), VideoEvalTransform(32, interpolation="bicubic",
                                                                                  normalize=False))]
    for as_float, as_uint8 in pairs:
        for seed in range(5):
            expected, raw = as_float(clip, seed=seed), as_uint8(clip, seed=seed)
            assert raw.dtype == torch.uint8 and raw.shape == expected.shape and raw.is_contiguous()
            assert torch.equal(normalize_on_device(raw), expected)
    image = clip[0]  # an image as a static clip
    for seed in range(5):
        expected = transform_image_as_clip(VideoTrainTransform(32), image, 16, seed=seed)
        raw = transform_image_as_clip(VideoTrainTransform(32, normalize=False), image, 16, seed=seed)
        assert torch.equal(normalize_on_device(raw), expected)


def test_normalize_on_device_every_pixel_value_and_known_values():
    """All 256 values of every channel match the transform's table; two by hand: 0 -> -mean / std and
    255 -> (1 - mean) / std (to float32 rounding)."""
    values = np.repeat(np.arange(256, dtype=np.uint8), 3).reshape(1, 16, 16, 3)  # each value in every channel
    clip = np.ascontiguousarray(np.broadcast_to(values, (2, 16, 16, 3)))
    expected = VideoEvalTransform(16)(clip)
    out = normalize_on_device(VideoEvalTransform(16, normalize=False)(clip))
    assert torch.equal(out, expected) and out.dtype == torch.float32
    mean, std = torch.tensor(IMAGENET_MEAN), torch.tensor(IMAGENET_STD)
    black = normalize_on_device(torch.zeros(3, 1, 1, 1, dtype=torch.uint8)).flatten()
    white = normalize_on_device(torch.full((3, 1, 1, 1), 255, dtype=torch.uint8)).flatten()
    torch.testing.assert_close(black, -mean / std, atol=1e-6, rtol=0)
    torch.testing.assert_close(white, (1 - mean) / std, atol=1e-6, rtol=0)
    with pytest.raises(TypeError, match="uint8"):
        normalize_on_device(expected)


def test_normalize_batch_touches_only_uint8_video():
    raw = torch.full((2, 3, 1, 2, 2), 255, dtype=torch.uint8)
    batch = {"video": raw, "label": torch.tensor([1, 2])}
    out = normalize_batch(batch)
    assert out["video"].dtype == torch.float32 and out["label"] is batch["label"] and batch["video"] is raw
    assert torch.equal(out["video"], normalize_on_device(raw))
    floats = {"video": out["video"]}
    assert normalize_batch(floats) is floats  # a float32 batch (evaluation) passes as it is
    as_list, dropped = [raw], {"dropped": []}
    assert normalize_batch(as_list) is as_list and normalize_batch(dropped) is dropped
