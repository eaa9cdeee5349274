"""The report's verdicts on constructed inputs (issue 23, items 1-4 and 6): multiplicity adjustment (Holm, BH),
zero spread within the metric's resolution, every branch of the cross-regime answer and of the released-vs-corrected
verdict, each checked on hand-made intervals."""

from __future__ import annotations

import math
import random

import pytest
from scipy import stats as scipy_stats

from jepa_lit.study.corrections import Correction, verdict
from jepa_lit.study.cross_regime import CrossRegime, answer
from jepa_lit.study.render import chance_sentence, fmt_interval
from jepa_lit.study.stats import Delta, adjust, benjamini_hochberg, holm, paired_delta, unpaired_delta
from jepa_lit.study.tables import Cell

T2 = 4.302652729911275  # t(0.975, 2)


def from_interval(mean: float, lo: float, hi: float, n: int = 3, p_adjusted: float | None = None) -> Delta:
    """A paired-t Delta with the given 95% interval; its p is the t test's that gives this interval."""
    se = (hi - lo) / 2 / float(scipy_stats.t.ppf(0.975, n - 1))
    p = float(2 * scipy_stats.t.sf(abs(mean) / se, n - 1))
    return Delta(mean, lo, hi, n, "paired-t", p=p, p_adjusted=p if p_adjusted is None else p_adjusted)


# --- item 1: p-values and the adjustments --------------------------------------------------------------------


def test_holm_and_bh_known_values():
    p = [0.01, 0.04, 0.03, 0.005]
    # Holm: sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 -> 0.02, 0.03, 0.06, 0.04 -> running max 0.06 for the last
    assert holm(p) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # BH: sorted 0.005, 0.01, 0.03, 0.04 times 4/1, 4/2, 4/3, 4/4 -> 0.02, 0.02, 0.04, 0.04 (running min from the top)
    assert benjamini_hochberg(p) == pytest.approx([0.02, 0.04, 0.04, 0.02])
    assert holm([0.9, 0.8]) == pytest.approx([1.0, 1.0])  # capped at 1


def test_p_of_the_paired_t_matches_the_interval_it_comes_with():
    rng = random.Random(0)
    for _ in range(200):
        variant = {s: rng.gauss(1.0, 2.0) for s in range(3)}
        baseline = {s: rng.gauss(0.0, 2.0) for s in range(3)}
        d = paired_delta(variant, baseline)
        assert (d.p < 0.05) == d.excludes_zero  # df = n - 1: the same test as the interval
    d = paired_delta({0: 3.0, 1: 4.0, 2: 5.0}, {0: 0.0, 1: 0.0, 2: 0.0})  # diffs 3, 4, 5: t = 4 / (1 / sqrt 3)
    assert d.p == pytest.approx(2 * scipy_stats.t.sf(4 * math.sqrt(3), 2))
    assert d.hi - d.mean == pytest.approx(T2 / math.sqrt(3))


def test_bold_means_significant_after_adjustment_not_raw():
    # raw p ~0.04, ~0.0008 and ~0.7: Holm multiplies the second smallest by 2
    deltas = [from_interval(1.0, 0.1, 1.9), from_interval(5.0, 4.5, 5.5), from_interval(0.3, -2.0, 2.6), None]
    assert adjust(deltas, "holm") == 3
    weak, strong = deltas[0], deltas[1]
    assert weak.excludes_zero and not weak.significant and weak.p_adjusted == pytest.approx(2 * weak.p)
    assert strong.significant
    assert not fmt_interval(weak).startswith("**") and fmt_interval(strong).startswith("**")
    assert "adj" in fmt_interval(weak) and f"p {weak.p:.3f}" in fmt_interval(weak)


def test_chance_sentence_in_plain_words():
    assert chance_sentence("holm", 105).startswith(
        "with 105 test(s) at 5%, about 0.05 × 105 = 5.2 cell(s) would be bold by chance alone without adjustment; "
        "with Holm's adjustment the chance that any cell of a family is bold when no variant has a real effect is "
        "at most 5%")
    assert "false discoveries" in chance_sentence("bh", 10)


# --- item 2: zero spread within the metric's resolution -------------------------------------------------------


@pytest.mark.parametrize("clips", [1970, 5000])  # Diving-48's and ImageNet-100's test sets
def test_the_same_clip_gain_in_every_seed_has_zero_spread(clips):
    """A variant that beats the baseline by exactly 6 clips in all 3 seeds, top-1 stored to 4 decimals. On 1,970
    clips the differences then differ in the 4th decimal (0.3046, 0.3045): by equality a tiny interval, bolded
    before; within half a clip they are equal: zero spread, as on ImageNet-100's 5,000 clips (exact steps)."""
    base_counts = {0: 150, 1: 151, 2: 187}
    top1 = {s: round(100 * c / clips, 4) for s, c in base_counts.items()}
    better = {s: round(100 * (c + 6) / clips, 4) for s, c in base_counts.items()}
    unresolved = paired_delta(better, top1)  # float tolerance alone
    assert unresolved.degenerate == (clips == 5000)
    if clips == 1970:  # what the report showed before: +0.30 [+0.30, +0.30], "significant"
        assert 0 < unresolved.hi - unresolved.lo < 0.001 and unresolved.excludes_zero
    d = paired_delta(better, top1, resolution=100 / clips)
    assert d.degenerate and not d.significant and d.p is None
    assert d.mean == pytest.approx(600 / clips, abs=1e-3)
    assert fmt_interval(d).endswith("(sd 0)") and "**" not in fmt_interval(d)
    assert adjust([d], "holm") == 0  # no test: not in the family
    # one clip more in one seed is a real spread (1 clip > half a clip)
    spread = paired_delta({**better, 2: round(100 * (187 + 7) / clips, 4)}, top1, resolution=100 / clips)
    assert not spread.degenerate and spread.p is not None


def test_unpaired_zero_spread_within_resolution():
    d = unpaired_delta([10.0001, 10.0002], [9.0, 9.0001], resolution=100 / 1970)
    assert d.degenerate and not d.significant
    w = unpaired_delta([10.0, 12.0, 11.0], [9.0, 9.0, 9.0])  # one side constant: Welch df = n - 1 of the other
    assert w.p == pytest.approx(2 * scipy_stats.t.sf(2.0 / (1 / math.sqrt(3)), 2))


# --- item 3: the cross-regime answer --------------------------------------------------------------------------

SIG_UP, SIG_DOWN = from_interval(3.0, 1.0, 5.0), from_interval(-3.0, -5.0, -1.0)
NONE = from_interval(0.5, -1.5, 2.5)
BENCHES = ["diving48", "imagenet100", "ssv2"]


def cross(*cells: Delta) -> CrossRegime:
    return CrossRegime("mixed", "ucf101", "baseline", ["baseline"], BENCHES,
                       {("baseline", b): d for b, d in zip(BENCHES, cells)}, "holm", 3)


@pytest.mark.parametrize("cells, expected", [
    ((SIG_UP, SIG_UP, SIG_UP), "Yes for the Baseline: mixed pretraining beats ucf101 on every shared benchmark "
                               "(Diving-48, IN-100, SSv2)."),
    ((SIG_DOWN, SIG_DOWN, SIG_DOWN), "No for the Baseline: mixed pretraining is worse than ucf101 on every shared "
                                     "benchmark (Diving-48, IN-100, SSv2)."),
    ((NONE, SIG_UP, NONE), "For the Baseline, mixed pretraining is better than ucf101 on IN-100; no detectable "
                           "difference on Diving-48, SSv2."),
    ((SIG_DOWN, NONE, NONE), "For the Baseline, mixed pretraining is worse than ucf101 on Diving-48; no detectable "
                             "difference on IN-100, SSv2."),
    ((SIG_DOWN, SIG_UP, NONE), "Not uniformly for the Baseline: mixed pretraining is better on IN-100; worse on "
                               "Diving-48; no detectable difference on SSv2 (vs ucf101, significant effects of "
                               "opposite sign)."),
    ((NONE, NONE, NONE), "No detectable difference for the Baseline: no mixed - ucf101 difference is significant "
                         "(Diving-48, IN-100, SSv2; 3 paired seed(s))."),
])
def test_each_answer_says_what_the_intervals_show(cells, expected):
    text = answer(cross(*cells))
    assert text.startswith(expected)
    assert "Not uniformly" not in text or (SIG_UP in cells and SIG_DOWN in cells)
    assert "every 2nd frame" in text and "Only Diving-48 is out of domain for both" in text  # the confounds


def test_one_raw_exclusion_that_the_adjustment_removes_is_no_detectable_difference():
    raw_only = from_interval(1.0, 0.1, 1.9, p_adjusted=0.12)  # interval excludes 0, not significant after Holm
    assert raw_only.excludes_zero and not raw_only.significant
    assert answer(cross(NONE, raw_only, NONE)).startswith("No detectable difference for the Baseline")


# --- item 4: released vs corrected ----------------------------------------------------------------------------


def correction(released: Delta | None, corrected: Delta | None, difference: Delta | None) -> Correction:
    return Correction("mixed", "hw_ld", "hw_ld_released", "imagenet100", Cell({}, delta=released),
                      Cell({}, delta=corrected), difference)


def test_issue_case_released_gain_corrected_unclear_difference_unclear_is_not_determined():
    c = correction(from_interval(2.0, 1.75, 2.25), from_interval(1.67, -1.9, 5.3), from_interval(-0.33, -4.1, 3.5))
    text = verdict(c)
    assert text.startswith("the correction's effect is not determined")
    assert "does not survive" not in text


def test_issue_case_released_significantly_worse_corrected_significantly_better():
    c = correction(from_interval(-3.0, -3.25, -2.75), from_interval(2.0, 1.0, 3.0), from_interval(5.0, 4.0, 6.0))
    assert verdict(c) == ("the released variant was significantly worse than the baseline and the corrected one "
                          "significantly better than the baseline; the correction raised the result significantly "
                          "(corrected − released > 0)")


UP, DOWN, ZERO = from_interval(2.0, 1.0, 3.0), from_interval(-2.0, -3.0, -1.0), from_interval(0.3, -1.0, 1.6)


@pytest.mark.parametrize("released, corrected, difference, expected", [
    (UP, UP, ZERO, "the gain holds: significantly better than the baseline both as released and corrected; "
                   "corrected − released is not significant"),
    (DOWN, DOWN, ZERO, "the loss holds: significantly worse than the baseline both as released and corrected; "
                       "corrected − released is not significant"),
    (ZERO, ZERO, ZERO, "no gain to test: neither gain is significant; corrected − released is not significant"),
    (UP, ZERO, DOWN, "the released gain does not survive: significantly better than the baseline as released, not "
                     "significantly different from the baseline corrected; the correction lowered the result "
                     "significantly (corrected − released < 0)"),
    (UP, ZERO, ZERO, "the correction's effect is not determined"),
    (ZERO, UP, ZERO, "the correction's effect is not determined"),
    (ZERO, DOWN, ZERO, "the correction's effect is not determined"),
    (DOWN, ZERO, ZERO, "the correction's effect is not determined"),
    (ZERO, UP, UP, "the released variant was not significantly different from the baseline and the corrected one "
                   "significantly better than the baseline; the correction raised the result significantly"),
    (UP, DOWN, DOWN, "the released variant was significantly better than the baseline and the corrected one "
                     "significantly worse than the baseline; the correction lowered the result significantly"),
    (UP, DOWN, ZERO, "the released variant was significantly better than the baseline and the corrected one "
                     "significantly worse than the baseline; corrected − released is not significant"),
    (UP, UP, None, "the gain holds: significantly better than the baseline both as released and corrected; "
                   "corrected − released has no shared seed"),
    (None, UP, ZERO, "no same-seed baseline comparison for both"),
])
def test_every_verdict_branch(released, corrected, difference, expected):
    assert verdict(correction(released, corrected, difference)).startswith(expected)
