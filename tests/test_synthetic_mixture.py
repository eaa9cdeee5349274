"""The laptop-scale study's data: the generator's appearance labels, the stand-in sources (still discs,
turning bars) and their mixture in the study's proportions."""

import math

import numpy as np
import pytest
import torch

from jepa_lit.data.synthetic import DIRECTIONS, SyntheticMotionDataModule, disc_clip, moving_disc_clip, normalise_clip
from jepa_lit.data.synthetic_mixture import SOURCES, SyntheticMixtureDataModule, SyntheticSources, rotating_bar_clip


def disc_mask(frame: np.ndarray, colour: tuple[int, int, int]) -> np.ndarray:
    return (frame == np.array(colour, dtype=np.uint8)).all(axis=-1)


def test_disc_clip_is_the_released_clip_with_its_parameters():
    for index in (0, 3, 17):
        frames, label = moving_disc_clip(index, 42, 32, 160)
        clip = disc_clip(index, 42, 32, 160)
        assert np.array_equal(frames, clip.frames) and label == clip.direction == index % 8
        # the radius and colour are what was drawn: the disc's pixels in frame 0 have that colour and area
        area = disc_mask(clip.frames[0], clip.colour).sum()
        assert abs(area - math.pi * clip.radius**2) < 2 * math.pi * clip.radius + 4


def test_appearance_labels_by_hand():
    clip = disc_clip(5, 1, 8, 64)
    low, high = clip.radius_range
    assert (low, high) == (10, 16)  # 64 px: radius drawn from 10..15
    assert clip.label("size") == int(clip.radius >= 13)
    assert clip.label("colour") == int(np.argmax(clip.colour))
    sizes = [disc_clip(i, 20000, 8, 64).label("size") for i in range(300)]
    assert 0.4 < np.mean(sizes) < 0.6  # the two size bands are balanced


def test_a_still_disc_stays_where_it_is():
    clip = disc_clip(9, 3, 8, 64, speed=0)
    masks = [disc_mask(f, clip.colour) for f in clip.frames]
    assert masks[0].sum() > 100 and all(np.array_equal(masks[0], m) for m in masks[1:])
    moving = disc_clip(9, 3, 8, 64)  # the same draw at speed 1 moves
    assert not np.array_equal(disc_mask(moving.frames[0], moving.colour), disc_mask(moving.frames[7], moving.colour))


def bar_angle(mask: np.ndarray) -> float:
    """The orientation of a bar's pixels (radians, image coordinates), from their second moments."""
    yy, xx = np.nonzero(mask)
    x, y = xx - xx.mean(), yy - yy.mean()
    return 0.5 * math.atan2(2 * (x * y).mean(), (x * x).mean() - (y * y).mean())


@pytest.mark.parametrize("index", [0, 1, 4, 7])
def test_a_bar_turns_one_way_at_a_steady_rate(index):
    frames = rotating_bar_clip(index, 11, 8, 64)
    colour = frames[0][np.unravel_index(np.argmax(frames[0].sum(-1)), frames[0].shape[:2])]
    angles = np.unwrap([bar_angle(disc_mask(f, tuple(colour))) for f in frames], period=math.pi)
    steps = np.diff(angles)
    sign = 1 if index % 2 == 0 else -1  # even indices clockwise on screen (angle grows with y down)
    assert np.all(np.sign(steps) == sign), steps
    assert np.all(np.abs(np.degrees(steps)) > 5) and np.all(np.abs(np.degrees(steps)) < 23)


def test_sources_are_indexed_discs_bars_stills():
    sources = SyntheticSources(pool=10, num_frames=4, size=32, seed=5)
    assert len(sources) == 30
    disc, bar, still = sources[3], sources[13], sources[23]
    assert [s["modality"] for s in (disc, bar, still)] == [0, 0, 1]
    assert all(s["video"].shape == (3, 4, 32, 32) and s["label"] == -1 for s in (disc, bar, still))
    assert torch.equal(disc["video"], normalise_clip(disc_clip(3, 5, 4, 32).frames))
    assert torch.equal(bar["video"], normalise_clip(rotating_bar_clip(3, 5, 4, 32)))
    # the stills take the generator seeds after the discs' pool: no still is a frame of a pool disc
    assert torch.equal(still["video"], normalise_clip(disc_clip(10 + 3, 5, 4, 32, speed=0).frames))


def test_the_mixture_draws_the_study_proportions_and_video_alone_only_discs():
    mixture = SyntheticMixtureDataModule(weights=(0.2, 0.6, 0.2), samples_per_epoch=6000, pool=1000)
    source, _ = mixture._sampler(6000).draws(0)
    shares = np.bincount(source, minlength=3) / len(source)
    assert np.allclose(shares, [0.2, 0.6, 0.2], atol=0.025), shares
    video = SyntheticMixtureDataModule(weights=(1.0, 0.0, 0.0), samples_per_epoch=512, pool=1000)
    batch = next(iter(video.train_dataloader()))
    assert batch["video"].shape == (8, 3, 8, 64, 64) and (batch["modality"] == 0).all()
    assert (batch["index"] < 1000).all()  # discs only


def test_bad_mixture_settings_are_refused_by_key():
    with pytest.raises(ValueError, match="data.weights"):
        SyntheticMixtureDataModule(weights=(1.0, 0.0))
    with pytest.raises(ValueError, match="data.weights"):
        SyntheticMixtureDataModule(weights=(1.0, -1.0, 0.5))
    with pytest.raises(ValueError, match="data.pool"):
        SyntheticMixtureDataModule(pool=0)


def test_the_benchmark_datamodule_labels_by_kind():
    assert len(SOURCES) == 3
    for kind, classes in (("direction", len(DIRECTIONS)), ("size", 2), ("colour", 3)):
        data = SyntheticMotionDataModule(num_clips=20, num_frames=4, crop_size=32, label=kind)
        data.setup()
        assert data.num_classes == classes
        labels = [data.val_set[i]["label"] for i in range(len(data.val_set))]
        start = data.num_train
        assert labels == [disc_clip(start + i, 42, 32, 32).label(kind) for i in range(len(labels))]
    with pytest.raises(ValueError, match="data.label"):
        SyntheticMotionDataModule(label="speed")
