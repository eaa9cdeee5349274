"""Clip samplers: window shapes, frame step, uniform spread, segments, the short-video rule."""

import numpy as np
import pytest

from jepa_lit.data.clip_sampling import MultiSegmentClipSampler, RandomClipSampler, UniformClipSampler, clip_span


@pytest.mark.parametrize("step", [1, 2, 4])
def test_random_clip_is_a_stepped_window_inside_the_video(step):
    sampler = RandomClipSampler(16, step)
    rng = np.random.default_rng(0)
    starts = set()
    for _ in range(200):
        idx = sampler(100, rng)
        assert idx.shape == (1, 16) and idx.dtype == np.int64
        assert (np.diff(idx[0]) == step).all() and idx.min() >= 0 and idx.max() <= 99
        starts.add(int(idx[0, 0]))
    assert len(starts) > 20  # the start moves over the video
    assert max(starts) <= 100 - clip_span(16, step)


def test_random_clip_deterministic_per_rng_seed():
    sampler = RandomClipSampler(16, 2)
    a = [sampler(300, np.random.default_rng(7)) for _ in range(3)]
    assert all(np.array_equal(a[0], x) for x in a)
    others = [sampler(300, np.random.default_rng(s)) for s in range(8, 12)]
    assert any(not np.array_equal(o, a[0]) for o in others)


def test_short_video_repeats_last_frame():
    rng = np.random.default_rng(0)
    idx = RandomClipSampler(16, 1)(10, rng)[0]
    assert idx.tolist() == list(range(10)) + [9] * 6
    idx = RandomClipSampler(16, 2)(20, rng)[0]
    assert idx.tolist() == list(range(0, 20, 2)) + [19] * 6
    assert UniformClipSampler(16)(5)[0].tolist() == [0, 1, 2, 3, 4] + [4] * 11
    assert MultiSegmentClipSampler(8, 1, 2)(4)[:, -1].tolist() == [3, 3]
    with pytest.raises(ValueError):
        RandomClipSampler(16)(0, rng)


def test_uniform_spreads_over_whole_video():
    idx = UniformClipSampler(16)(300)[0]
    assert idx[0] == 0 and idx[-1] == 299 and len(set(idx.tolist())) == 16
    gaps = np.diff(idx)
    assert gaps.max() - gaps.min() <= 1
    assert np.array_equal(UniformClipSampler(16)(16)[0], np.arange(16))


def test_multi_segment_clips_centred_in_segments():
    idx = MultiSegmentClipSampler(8, 2, num_segments=4)(400)
    assert idx.shape == (4, 8)
    centres = idx.mean(axis=1)
    np.testing.assert_allclose(centres, [50, 150, 250, 350], atol=2)
    assert (np.diff(idx, axis=1) == 2).all()
