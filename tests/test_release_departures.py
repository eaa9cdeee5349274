"""Departures from the study's release closed in issue 23 (items 7-10), each with a known value: the synthetic
regime's context loss (absolute-step ramp), the ucf101 probe of the ucf101 regime, evaluation frame indices
(truncated linspace), and the hard-weighted LD softmax's scope."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from jepa_lit.module import JEPAModule
from jepa_lit.study.plan import recipe_line
from jepa_lit.study.runs import expand

SPEC = Path(__file__).resolve().parent.parent / "experiments" / "sweep.yaml"


@pytest.fixture(scope="module")
def full_runs():
    return expand(str(SPEC), "full")


def weight_at(unit: str, start: float, end: float, total: int, step: int, monkeypatch) -> float:
    module = JEPAModule.__new__(JEPAModule)  # the schedule alone, no encoder
    module.context_loss_weight, module.context_loss_start, module.context_loss_end = 0.5, start, end
    module.context_loss_unit = unit
    monkeypatch.setattr(JEPAModule, "total_steps", property(lambda self: total))
    return module.context_weight_at(step)


def test_context_loss_ramp_in_absolute_steps_as_the_release(monkeypatch):
    # the release's Lambda_LinearWarmupHold(0.5, 15000, 30000): 0 before 15,000, 0.25 at 22,500, 0.5 from 30,000
    for step, expected in [(0, 0.0), (4999, 0.0), (14999, 0.0), (22500, 0.25), (30000, 0.5)]:
        assert weight_at("steps", 15000, 30000, 5000, step, monkeypatch) == pytest.approx(expected)
    # fractions of a 5,000-step run (jepa-lit's default): the ramp runs from 2,500 to 5,000
    assert weight_at("fraction", 0.5, 1.0, 5000, 3750, monkeypatch) == pytest.approx(0.25)
    with pytest.raises(ValueError, match="context_loss_unit='epochs'"):
        from jepa_lit.models import VisionTransformer

        JEPAModule(VisionTransformer(size="tiny", depth=1, num_frames=2, img_size=32), predictor_width=32,
                   predictor_depth=1, predictor_heads=2, context_loss_unit="epochs")


def test_the_synthetic_regime_has_no_context_loss_and_the_dry_run_says_so(full_runs):
    lines = {run.regime: recipe_line(run) for run in reversed(full_runs) if run.pretrain}
    assert lines["synthetic"] == ("synthetic: 5000 steps; context loss 0.5 ramped over steps 15000 -> 30000 (steps): "
                                  "0 for the whole run, as in the release; probes: synthetic")
    assert lines["mixed"].startswith("mixed: 30000 steps; context loss 0.5 ramped over steps 15000 -> 30000 (fraction);")


def test_the_ucf101_regime_is_probed_on_ucf101(full_runs):
    ucf = [run for run in full_runs if run.regime == "ucf101"]
    assert ucf and all([p.benchmark for p in run.probes][-1] == "ucf101" for run in ucf)
    assert all("ucf101" not in [p.benchmark for p in run.probes] for run in full_runs if run.regime == "mixed")


def test_eval_frame_indices_truncate_as_the_release_by_default():
    from jepa_lit.data.clip_sampling import UniformClipSampler
    from jepa_lit.data.datamodule import ClipDataModule

    # the release's scripts/eval_*.py: np.linspace(0, total_frames - 1, num_frames, dtype=int)
    release = [0, 6, 13, 19, 26, 33, 39, 46, 52, 59, 66, 72, 79, 85, 92, 99]
    assert UniformClipSampler(16)(100)[0].tolist() == release
    rounded = UniformClipSampler(16, "round")(100)[0].tolist()
    assert rounded == [0, 7, 13, 20, 26, 33, 40, 46, 53, 59, 66, 73, 79, 86, 92, 99]
    assert sum(a != b for a, b in zip(release, rounded)) == 6
    assert UniformClipSampler(16)(5)[0].tolist() == [0, 1, 2, 3, 4] + [4] * 11  # the short-video rule, unchanged
    assert ClipDataModule().eval_clip_sampler().index_rounding == "truncate"
    assert ClipDataModule(eval_frame_indices="round").eval_clip_sampler().index_rounding == "round"
    with pytest.raises(ValueError, match="index_rounding='floor'"):
        UniformClipSampler(16, "floor")


def test_the_papers_own_deltas_are_against_its_seed_42_baseline():
    """Item 11: the paper's headline deltas (+5.92 IN-100, +3.21 SSv2, -0.30 Diving-48 for FWM-HW-LD) are the
    released numbers minus the seed-42 reference baseline, not the seed-239 baseline of the Released column."""
    from jepa_lit.study.released import released
    from jepa_lit.study.render import fmt_released
    from jepa_lit.study.tables import Cell

    table = released()
    assert table.paper_delta("mixed", "fwm_hw_ld", "imagenet100") == 5.92
    assert table.paper_delta("mixed", "fwm_hw_ld", "ssv2") == 3.21
    assert table.paper_delta("mixed", "fwm_hw_ld", "diving48") == -0.30
    assert table.paper_delta("mixed", "baseline", "imagenet100") is None  # the baseline row has no delta
    assert table.paper_delta("ucf101", "mg", "imagenet100") is None  # no paper baseline of another seed there
    assert fmt_released(Cell({}, released=30.78, released_mark="¶", paper_delta=5.92)) == "30.78¶ (paper Δ +5.92)"
    assert fmt_released(Cell({}, released=21.26, paper_baseline=24.86)) == "21.26 (paper's baseline, seed 42: 24.86)"


def test_group_softmax_known_value():
    """Item 10: softmax_scope local = the softmax over each cut group's pairs (the release: each GPU's own)."""
    import math

    import torch

    from jepa_lit.objectives.latent_dynamics import group_softmax

    scores = torch.tensor([[0.0, 1.0], [2.0, 5.0], [math.log(3.0), 0.0], [7.0, 7.0]])
    pairs = torch.tensor([[True, True], [True, False], [True, True], [False, False]])
    row_group = torch.tensor([0, 1, 0, 1])  # groups {rows 0, 2} and {rows 1, 3}: global sample i in group i mod 2
    shares, groups_with_pairs = group_softmax(scores, pairs, row_group, 2)
    # group 0: exp(0), exp(1), 3, exp(0) over its 4 pairs; group 1: its one pair (row 1, first) gets 1
    total = 1 + math.e + 3 + 1
    expected = torch.tensor([[1 / total, math.e / total], [1.0, 0.0], [3 / total, 1 / total], [0.0, 0.0]])
    assert torch.allclose(shares, expected.float()) and groups_with_pairs.item() == 2
    # the same rows as one group (softmax_scope global, or cut_group_size global): one population of 5 pairs
    one, count = group_softmax(scores, pairs, torch.zeros(4, dtype=torch.long), 1)
    assert count.item() == 1 and one.sum().item() == pytest.approx(1.0)
    assert one[1, 0].item() == pytest.approx(math.exp(2) / (total + math.exp(2)))


def test_group_softmax_is_the_same_whatever_the_process_layout():
    """1 process x 4 rows and 2 processes x 2 rows (rank r holds global samples b * 2 + r) give each pair the same
    share: the [G] maxima, sums and counts are reduced over the processes (simulated with threads)."""
    import threading

    import torch

    from jepa_lit.objectives.latent_dynamics import group_softmax

    gen = torch.Generator().manual_seed(0)
    scores = torch.randn(4, 3, generator=gen)
    pairs = torch.rand(4, 3, generator=gen) > 0.3
    groups = torch.tensor([0, 1, 0, 1])
    whole, count = group_softmax(scores, pairs, groups, 2)

    barrier, slots = threading.Barrier(2), [None, None]

    def reducer(rank: int, op):
        def reduce(value):
            slots[rank] = value
            barrier.wait()
            out = op(slots[0], slots[1])
            barrier.wait()
            return out
        return reduce

    parts = {}

    def rank_main(rank: int) -> None:
        rows = torch.arange(rank, 4, 2)  # global samples b * 2 + rank
        parts[rank] = group_softmax(scores[rows], pairs[rows], groups[rows], 2,
                                    reducer(rank, torch.maximum), reducer(rank, torch.add))

    threads = [threading.Thread(target=rank_main, args=(r,)) for r in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for rank in (0, 1):
        assert torch.allclose(parts[rank][0], whole[rank::2]) and parts[rank][1] == count


def test_softmax_scope_is_a_setting_of_the_hard_weighted_ld_variants():
    import yaml

    from jepa_lit.objectives import LatentDynamics

    experiments = SPEC.parent
    for name in ("mixed_hw_ld", "mixed_fwm_hw_ld", "mixed_hw_ld_released", "mixed_fwm_hw_ld_released"):
        objectives = yaml.safe_load((experiments / f"{name}.yaml").read_text())["model"]["init_args"]["objectives"]
        ld = next(o for o in objectives if o["class_path"].endswith("LatentDynamics"))
        assert ld["init_args"]["softmax_scope"] == "local", name
    assert LatentDynamics(hard_weighting=True).softmax_scope == "local"
    with pytest.raises(ValueError, match="softmax_scope='rank'"):
        LatentDynamics(hard_weighting=True, softmax_scope="rank")


def test_local_hard_weighted_ld_is_the_mean_over_groups_of_each_groups_weighted_error():
    """Two cut groups on one process (rows 0 and 1): L = mean over the groups of sum_p s_p mean_c e_p, s the softmax
    within the group (the release: each GPU's (w e).mean(), averaged by DDP); global: one softmax over both."""
    import torch

    from jepa_lit.masks.base import MaskPair
    from jepa_lit.objectives import LatentDynamics
    from jepa_lit.objectives.heads import grid_inputs
    from jepa_lit.step import GeneratorOutputs, StepOutputs

    grid, embed, levels = (4, 2, 2), 2, 2
    width = embed * levels
    positions = [(t, h, w) for t in range(4) for h in range(2) for w in range(2)]
    flat = {p: i for i, p in enumerate(positions)}
    gen = torch.Generator().manual_seed(0)
    target = torch.randn(2, len(positions), width, generator=gen)
    parts = []
    for row, visible in enumerate([[flat[p] for p in positions if p[1] == 0],      # top row at every t
                                   [flat[p] for p in positions if p[2] == 0]]):    # left column at every t
        context = torch.tensor([visible])
        target_idx = torch.tensor([sorted(set(flat.values()) - set(visible))])
        masks = MaskPair(context, target_idx, rows=torch.tensor([row]), weight=0.5, group=row, num_groups=2)
        features = torch.randn(1, len(visible), width, generator=gen)
        parts.append(GeneratorOutputs(masks, features, torch.randn(1, len(target_idx[0]), width, generator=gen),
                                      features))
    clip = torch.randn(2, 3, 8, 8, 8, generator=gen)

    def step() -> StepOutputs:
        return StepOutputs(clip, target, [parts], grid, embed, levels, step=0, max_steps=10)

    values = {}
    for scope in ("local", "global"):
        torch.manual_seed(0)
        objective = LatentDynamics(weight=1.0, hidden_dim=8, hard_weighting=True, temperature=0.5, softmax_scope=scope)
        objective.build(embed, levels)
        values[scope] = objective(step())["ld"].item()
        outputs = step()
        with torch.no_grad():
            error = (objective.head(grid_inputs(outputs, 0, "all", 0.5)) - outputs.target_diff()).abs().mean(-1)
        pairs = outputs.valid_pairs(0)
    per_group = []
    for row in (0, 1):
        e = error[row][pairs[row]]
        per_group.append((torch.softmax(e / 0.5, 0) * e).sum())
    assert values["local"] == pytest.approx(((per_group[0] + per_group[1]) / 2).item(), rel=1e-5)
    both = error[pairs]
    assert values["global"] == pytest.approx((torch.softmax(both / 0.5, 0) * both).sum().item(), rel=1e-5)
    assert abs(values["local"] - values["global"]) > 1e-4  # two populations, not one
