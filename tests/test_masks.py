import pytest
import torch

from jepa_lit.masks import BlockGenerator, MultiBlock3D
from jepa_lit.masks.base import masks_to_indices
from jepa_lit.masks.multiblock import block_shape

GRID = (8, 7, 7)
CLIP = torch.zeros(4, 3, 16, 112, 112)


def one_group(pairs):
    """The MaskPair of each generator, for a batch that forms a single cut group (8 or fewer samples)."""
    assert all(len(groups) == 1 and groups[0].rows is None for groups in pairs)
    return [groups[0] for groups in pairs]


def test_context_and_targets_disjoint_sorted_and_within_grid():
    pairs = one_group(MultiBlock3D(seed=1)(CLIP, GRID, step=0))
    assert len(pairs) == 2
    n = 8 * 7 * 7
    for pair in pairs:
        for ctx, tgt in zip(pair.context, pair.target):
            assert not set(ctx.tolist()) & set(tgt.tolist())
            assert torch.all(ctx.diff() > 0) and torch.all(tgt.diff() > 0)
            assert ctx.min() >= 0 and tgt.max() < n


def test_without_truncation_context_and_targets_cover_the_grid():
    sampler = MultiBlock3D(seed=3)
    pairs = one_group(sampler(torch.zeros(1, 3, 16, 112, 112), GRID, step=5))  # batch 1: nothing is cut
    for pair in pairs:
        assert pair.context.shape[1] + pair.target.shape[1] == 8 * 7 * 7


def test_index_lists_cut_to_batch_minimum():
    target = torch.zeros(2, 1, 2, 2, dtype=torch.bool)
    target[0, 0, 0, 0] = True  # sample 0: 1 target, 3 context
    target[1, 0, 0] = True  # sample 1: 2 targets, 2 context
    pair = masks_to_indices(target)
    assert pair.context.tolist() == [[1, 2], [2, 3]]
    assert pair.target.tolist() == [[0], [0]]


def test_block_shape_matches_scale_and_aspect():
    rng = torch.Generator().manual_seed(0)
    for _ in range(20):
        t, h, w = block_shape(BlockGenerator(num_blocks=8, spatial_scale=(0.15, 0.15)), (8, 14, 14), rng)
        assert t == 8  # blocks span all time
        assert abs(h * w - 0.15 * 196) <= 6 and 0.5 <= h / w <= 2.0


def test_block_counts_and_shared_block_size():
    """Each sample's targets are the union of num_blocks blocks of the one shape of this step."""
    sampler = MultiBlock3D(generators=[BlockGenerator(num_blocks=1, spatial_scale=(0.2, 0.2))], seed=0)
    pair = one_group(sampler(torch.zeros(3, 3, 16, 224, 224), (8, 14, 14), step=2))[0]
    rng = sampler.rng(2)
    t, h, w = block_shape(sampler.generators[0], (8, 14, 14), rng)
    assert pair.target.shape[1] == t * h * w  # one block: exactly its volume, same for every sample


def test_deterministic_under_seed_and_step():
    a = one_group(MultiBlock3D(seed=7)(CLIP, GRID, step=11))
    b = one_group(MultiBlock3D(seed=7)(CLIP, GRID, step=11))
    c = one_group(MultiBlock3D(seed=7)(CLIP, GRID, step=12))
    assert all(torch.equal(x.context, y.context) and torch.equal(x.target, y.target) for x, y in zip(a, b))
    assert any(not torch.equal(x.target, y.target) for x, y in zip(a, c))


def test_ranks_draw_different_masks_that_equal_one_process():
    rank0, rank1 = MultiBlock3D(seed=7), MultiBlock3D(seed=7)
    rank0.set_rank(0, world_size=2)
    rank1.set_rank(1, world_size=2)
    a, b = rank0.target_masks(CLIP[:2], GRID, step=3), rank1.target_masks(CLIP[:2], GRID, step=3)
    assert any(not torch.equal(x, y) for x, y in zip(a, b))
    whole = MultiBlock3D(seed=7).target_masks(CLIP, GRID, step=3)  # one process, batch 4
    # Samples are dealt round-robin: rank 0 holds global samples 0 and 2, rank 1 holds 1 and 3.
    assert all(torch.equal(w, torch.stack([x[0], y[0], x[1], y[1]])) for w, x, y in zip(whole, a, b))


def test_study_long_range_masks_most_tokens():
    pairs = one_group(MultiBlock3D(seed=0)(torch.zeros(8, 3, 16, 224, 224), (8, 14, 14), step=0))
    short, long = (p.target.shape[1] / (8 * 196) for p in pairs)
    assert long > short and long > 0.5


def test_grid_fully_covered_raises_clearly():
    sampler = MultiBlock3D(generators=[BlockGenerator(num_blocks=4, spatial_scale=(1.0, 1.0))])
    with pytest.raises(RuntimeError, match="covered the whole"):
        sampler(torch.zeros(1, 3, 4, 32, 32), (2, 2, 2), step=0)


def test_targets_are_the_union_of_num_blocks_blocks():
    """Every sample's target mask is exactly the union of the generator's num_blocks blocks (8 short-range
    blocks, as the study, cover more than one)."""

    class Recording(MultiBlock3D):
        def block_origins(self, clip, b, gen_index, num_blocks, shape, grid, rng):
            origins = super().block_origins(clip, b, gen_index, num_blocks, shape, grid, rng)
            drawn.append((b, gen_index, shape, origins))
            return origins

    drawn = []
    grid = (8, 14, 14)
    sampler = Recording(generators=[BlockGenerator(8, (0.15, 0.15)), BlockGenerator(2, (0.7, 0.7))], seed=4)
    masks = sampler.target_masks(torch.zeros(3, 3, 16, 224, 224), grid, step=1)
    assert [len(origins) for *_, origins in drawn] == [8, 8, 8, 2, 2, 2]  # no retries at this scale
    for b, gen_index, (t, h, w), origins in drawn:
        union = torch.zeros(grid, dtype=torch.bool)
        for t0, h0, w0 in origins.tolist():
            union[t0 : t0 + t, h0 : h0 + h, w0 : w0 + w] = True
        assert torch.equal(masks[gen_index][b], union)
    short_range_volume = drawn[0][2][0] * drawn[0][2][1] * drawn[0][2][2]
    assert all(masks[0][b].sum() > short_range_volume for b in range(3))


def test_an_unset_seed_follows_the_runs_seed(monkeypatch):
    """seed: None draws from seed_everything's seed, so another run seed also draws other masks; a set
    seed keeps its masks whatever the run's seed."""

    def targets(sampler):
        return [pair.target for pair in one_group(sampler(CLIP, GRID, step=3))]

    monkeypatch.setenv("PL_GLOBAL_SEED", "1")
    follows_1, fixed_1 = targets(MultiBlock3D()), targets(MultiBlock3D(seed=5))
    assert all(torch.equal(a, b) for a, b in zip(follows_1, targets(MultiBlock3D(seed=1))))
    monkeypatch.setenv("PL_GLOBAL_SEED", "2")
    follows_2, fixed_2 = targets(MultiBlock3D()), targets(MultiBlock3D(seed=5))
    assert not all(a.shape == b.shape and torch.equal(a, b) for a, b in zip(follows_1, follows_2))
    assert all(torch.equal(a, b) for a, b in zip(fixed_1, fixed_2))


def test_each_cut_group_is_cut_to_its_own_minimum():
    """Groups of 2 in a batch of 4: global samples i and i + 2 share a group (i mod 2); each group's
    lists have its own minimum counts, which the global cut would lower to the batch minimum."""
    clip = torch.zeros(4, 3, 16, 112, 112)
    sampler = MultiBlock3D(seed=2, cut_group_size=2)
    masks = sampler.target_masks(clip, GRID, step=1)
    for target, groups in zip(masks, sampler(clip, GRID, step=1)):
        counts = target.flatten(1).sum(1)
        assert [g.rows.tolist() for g in groups] == [[0, 2], [1, 3]]
        for group in groups:
            n_targets = counts[group.rows]
            assert group.target.shape[1] == int(n_targets.min())
            assert group.context.shape[1] == int((GRID[0] * 49 - n_targets).min())
            assert group.weight == 0.5  # two groups on one process: the mean over groups
    global_cut = one_group(MultiBlock3D(seed=2, cut_group_size="global")(clip, GRID, step=1))
    grouped = MultiBlock3D(seed=2, cut_group_size=2)(clip, GRID, step=1)
    assert any(max(g.context.shape[1] for g in groups) > pair.context.shape[1]
               for groups, pair in zip(grouped, global_cut))


def test_global_cut_is_the_previous_behaviour():
    """'global' (and any group at least the batch) cuts to the batch minimum, as masks_to_indices does."""
    sampler = MultiBlock3D(seed=9, cut_group_size="global")
    expected = [masks_to_indices(t) for t in sampler.target_masks(CLIP, GRID, step=4)]
    for size in ("global", 4, 8):
        pairs = one_group(MultiBlock3D(seed=9, cut_group_size=size)(CLIP, GRID, step=4))
        for pair, reference in zip(pairs, expected):
            assert torch.equal(pair.context, reference.context) and torch.equal(pair.target, reference.target)
            assert pair.weight == 1.0


def test_groups_are_defined_on_global_indices():
    """1 process x 4 and 2 processes x 2 with groups of 2: rank r holds global samples r and r + 2, which
    is exactly group r, with the same lists as the one process's group r."""
    clip = torch.zeros(4, 3, 16, 112, 112)
    whole = MultiBlock3D(seed=5, cut_group_size=2)(clip, GRID, step=0)
    for rank in range(2):
        sampler = MultiBlock3D(seed=5, cut_group_size=2)
        sampler.set_rank(rank, world_size=2)
        for mine, groups in zip(sampler(clip[:2], GRID, step=0), whole):
            assert len(mine) == 1 and mine[0].rows is None and mine[0].weight == 1.0  # one group per process
            assert torch.equal(mine[0].context, groups[rank].context)
            assert torch.equal(mine[0].target, groups[rank].target)


def test_cut_groups_layouts_and_weights():
    from jepa_lit.masks.groups import check_cut_group_size, cut_groups

    study = cut_groups(8, 8, rank=2, world_size=4)  # 4 x 8, groups of 8: one local group, no exchange
    assert study.ids == [2] and study.rows == [None] and study.weights == [1.0] and not study.spans_processes
    one = cut_groups(32, 8)  # 1 x 32: the same four groups
    assert one.ids == [0, 1, 2, 3] and one.rows[1].tolist() == list(range(1, 32, 4)) and one.weights == [0.25] * 4
    two = cut_groups(16, 8, rank=1, world_size=2)  # 2 x 16: rank 1 holds odd globals, groups 1 and 3
    assert two.ids == [1, 3] and two.weights == [0.5, 0.5] and not two.spans_processes
    assert cut_groups(8, "global", rank=0, world_size=4).spans_processes
    with pytest.raises(ValueError, match="cut_group_size"):
        check_cut_group_size(0)
