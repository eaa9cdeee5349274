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
