"""Masking variants: motion-guided (MG / AMG), future-predictive and Motion-Future samplers."""

from __future__ import annotations

import pytest
import torch

from jepa_lit.masks import BlockGenerator, FuturePredictive, MotionFuture, MotionGuided, MultiBlock3D
from jepa_lit.masks.motion_guided import motion_map


def one_group(pairs):
    """The MaskPair of each generator, for a batch that forms a single cut group (8 or fewer samples)."""
    assert all(len(groups) == 1 and groups[0].rows is None for groups in pairs)
    return [groups[0] for groups in pairs]

GRID = (4, 8, 8)  # 8 frames x 128 px, tubelet 2, patch 16
SMALL = [BlockGenerator(num_blocks=2, spatial_scale=(0.1, 0.1)), BlockGenerator(num_blocks=1, spatial_scale=(0.2, 0.2))]


def moving_square_clip(batch: int = 4) -> torch.Tensor:
    """A bright square moving down the left quarter of a still, textured frame: [B, 3, 8, 128, 128]."""
    gen = torch.Generator().manual_seed(0)
    background = torch.rand(batch, 3, 1, 128, 128, generator=gen).expand(-1, -1, 8, -1, -1).clone()
    for t in range(8):
        background[:, :, t, 8 * t : 8 * t + 32, 0:32] = 3.0
    return background


def moving_region(grid=GRID) -> torch.Tensor:
    """[T', H', W'] the token columns the square passes through (the left quarter)."""
    region = torch.zeros(grid, dtype=torch.bool)
    region[:, :, : grid[2] // 4] = True
    return region


def target_share_in_region(sampler, clip, steps: int = 12) -> float:
    region = moving_region().flatten()
    hits = total = 0
    for step in range(steps):
        for pair in one_group(sampler(clip, GRID, step)):
            hits += int(region[pair.target].sum())
            total += pair.target.numel()
    return hits / total


def test_motion_map_is_normalised_and_local():
    clip = moving_square_clip()
    motion = motion_map(clip, GRID)
    assert motion.shape == (4, *GRID)
    assert motion.amax(dim=(1, 2, 3)).allclose(torch.ones(4))
    assert motion[..., GRID[2] // 2 :].max() == 0  # the right half never moves
    assert motion_map(clip[:, :, :1], (1, 8, 8)).eq(0).all()  # a single frame has no motion


def test_motion_guided_targets_the_moving_region():
    clip = moving_square_clip()
    uniform = target_share_in_region(MultiBlock3D(SMALL, seed=1), clip)
    guided = target_share_in_region(MotionGuided(SMALL, alpha=2.0, random_rate=0.1, seed=1), clip)
    aggressive = target_share_in_region(MotionGuided(SMALL, alpha=5.0, random_rate=0.0, seed=1), clip)
    assert guided > uniform + 0.2
    assert aggressive >= guided


def test_motion_guided_on_a_still_clip_is_like_uniform():
    still = torch.rand(2, 3, 1, 128, 128).expand(-1, -1, 8, -1, -1)
    pairs = one_group(MotionGuided(SMALL, alpha=5.0, random_rate=0.0)(still, GRID, step=0))
    assert all(p.target.numel() > 0 and p.context.numel() > 0 for p in pairs)


@pytest.mark.parametrize("sampler_cls", [MotionGuided, FuturePredictive, MotionFuture])
def test_samplers_are_a_function_of_seed_rank_and_step(sampler_cls):
    clip = moving_square_clip(2)
    a, b = sampler_cls(seed=3), sampler_cls(seed=3)
    for x, y in zip(one_group(a(clip, GRID, 5)), one_group(b(clip, GRID, 5))):
        assert x.context.equal(y.context) and x.target.equal(y.target)
    b.set_rank(1)
    assert any(not x.target.equal(y.target) for x, y in zip(one_group(a(clip, GRID, 5)), one_group(b(clip, GRID, 5))))


@pytest.mark.parametrize("sampler", [FuturePredictive(), MotionFuture()])
@pytest.mark.parametrize("grid", [GRID, (3, 8, 8)])
def test_future_context_is_early_and_targets_are_its_complement(sampler, grid):
    clip = moving_square_clip(3)[:, :, : 2 * grid[0]]
    keep = max(1, int(grid[0] * 0.5))
    tokens_per_step = grid[1] * grid[2]
    num_tokens = grid[0] * tokens_per_step
    pairs = one_group(sampler(clip, grid, step=2))
    assert len(pairs) == 2  # the study: 4 short-range and 1 long-range blocks
    for pair in pairs:
        assert (pair.context // tokens_per_step < keep).all()  # context only in the first part
        for context, target in zip(pair.context.tolist(), pair.target.tolist()):
            assert target == sorted(target)
            assert sorted(context + target) == list(range(num_tokens))  # the full complement
            assert set(range(keep * tokens_per_step, num_tokens)) <= set(target)  # all of the future


def test_future_default_generators_are_the_studys():
    sampler = FuturePredictive()
    assert [g.num_blocks for g in sampler.generators] == [4, 1]
    assert [g.spatial_scale for g in sampler.generators] == [(0.15, 0.15), (0.7, 0.7)]
    motion_future = MotionFuture()
    assert (motion_future.alpha, motion_future.random_rate, motion_future.context_fraction) == (2.0, 0.1, 0.5)


def test_motion_future_places_blocks_on_motion():
    clip = moving_square_clip()
    region = moving_region()[:2].flatten()  # the early half, where the blocks matter for the context
    early = 2 * GRID[1] * GRID[2]

    def early_targets_in_region(sampler) -> float:
        hits = total = 0
        for step in range(12):
            for pair in one_group(sampler(clip, GRID, step)):
                early_targets = pair.target[pair.target < early]
                hits += int(region[early_targets].sum())
                total += early_targets.numel()
        return hits / total

    uniform = early_targets_in_region(FuturePredictive(SMALL, seed=1))
    guided = early_targets_in_region(MotionFuture(SMALL, alpha=5.0, random_rate=0.0, seed=1))
    assert guided > uniform + 0.2


def test_bad_arguments_are_clear_errors():
    with pytest.raises(ValueError, match="random_rate"):
        MotionGuided(random_rate=1.5)
    with pytest.raises(ValueError, match="context_fraction"):
        FuturePredictive(context_fraction=0.0)
