"""Same-seed deltas and their intervals: mean +- std, paired-t, and Welch's unpaired interval, each with its
two-sided p-value; and the multiplicity adjustments (Holm, Benjamini-Hochberg) over a family of them."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Iterable, Optional

from scipy import stats as _scipy_stats

ALPHA = 0.05  # the level of the intervals (95%) and of "significant" after adjustment
RULES = {"holm": "Holm (family-wise error rate at most 5% per table)",
         "bh": "Benjamini-Hochberg (false discovery rate at most 5% per table)"}
FLOAT_TOLERANCE = 1e-9  # without a known resolution: differences equal up to float rounding


def t_quantile(p: float, df: float) -> float:
    """The p-quantile of Student's t with ``df`` degrees of freedom (p > 0.5)."""
    if not 0.5 < p < 1.0 or df <= 0:
        raise ValueError(f"t_quantile: need 0.5 < p < 1 and df > 0, got p={p}, df={df}")
    return float(_scipy_stats.t.ppf(p, df))


def t_two_sided_p(t: float, df: float) -> float:
    """P(|T| >= |t|) for Student's t with ``df`` degrees of freedom."""
    return float(2.0 * _scipy_stats.t.sf(abs(t), df))


def mean_std(values: list[float]) -> tuple[float, Optional[float]]:
    """Mean and sample standard deviation (n - 1; None for one value)."""
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None


@dataclass
class Delta:
    mean: float
    lo: Optional[float]
    hi: Optional[float]
    n: int
    method: str  # "paired-t" | "unpaired-welch"
    per_seed: dict[int, float] = field(default_factory=dict)
    p: Optional[float] = None  # two-sided p of the same t test as the interval; None without a test
    zero_spread: bool = False  # every seed's difference equal within the metric's resolution / 2
    p_adjusted: Optional[float] = None  # set by ``adjust`` over the delta's family

    @property
    def degenerate(self) -> bool:
        """Every seed gave the same difference (within half the metric's resolution: one test clip's worth of
        top-1): sd 0, an interval of width 0 that says nothing (with a few seeds and a test set of a few dozen
        clips, differences come in steps and coincide; on 1,970 clips stored top-1s differ in the 4th decimal)."""
        return self.zero_spread

    @property
    def excludes_zero(self) -> bool:
        """The shown (unadjusted) 95% interval excludes 0: raw p < 0.05."""
        return self.lo is not None and not self.degenerate and (self.lo > 0 or self.hi < 0)

    @property
    def significant(self) -> bool:
        """Significant at 5% after the family's adjustment (``adjust``); the raw test when none was applied."""
        if self.degenerate or self.p is None:
            return False
        return (self.p_adjusted if self.p_adjusted is not None else self.p) < ALPHA

    @property
    def sign(self) -> int:
        """+1 / -1 when significant above / below 0, else 0."""
        return 0 if not self.significant else (1 if self.mean > 0 else -1)


def spread_tolerance(resolution: Optional[float]) -> float:
    """Half the metric's resolution (``resolution``: one test clip, in top-1 points = 100 / test clips)."""
    return resolution / 2.0 if resolution else FLOAT_TOLERANCE


def paired_delta(variant: dict[int, float], baseline: dict[int, float], level: float = 0.95,
                 resolution: Optional[float] = None) -> Delta:
    """Mean over the shared seeds of (variant - baseline), its paired-t interval and p (df = n - 1).
    ``resolution``: the metric's step (100 / test clips for top-1 %); differences that agree within half of it
    have zero spread (no interval, no test)."""
    seeds = sorted(set(variant) & set(baseline))
    if not seeds:
        raise ValueError("no seed with both a variant and a baseline result")
    diffs = {s: variant[s] - baseline[s] for s in seeds}
    mean, sd = mean_std(list(diffs.values()))
    if sd is None:
        return Delta(mean, None, None, 1, "paired-t", diffs)
    n = len(seeds)
    if max(diffs.values()) - min(diffs.values()) <= spread_tolerance(resolution):
        return Delta(mean, mean, mean, n, "paired-t", diffs, zero_spread=True)
    se = sd / math.sqrt(n)
    half = t_quantile(0.5 + level / 2, n - 1) * se
    return Delta(mean, mean - half, mean + half, n, "paired-t", diffs, p=t_two_sided_p(mean / se, n - 1))


def unpaired_delta(variant: list[float], baseline: list[float], level: float = 0.95,
                   resolution: Optional[float] = None) -> Delta:
    """Difference of the means with a Welch interval and p (no interval unless both sides have two values)."""
    (mv, sv), (mb, sb) = mean_std(variant), mean_std(baseline)
    mean = mv - mb
    if sv is None or sb is None:
        return Delta(mean, None, None, len(variant), "unpaired-welch")
    tolerance = spread_tolerance(resolution)
    if max(variant) - min(variant) <= tolerance and max(baseline) - min(baseline) <= tolerance:
        return Delta(mean, mean, mean, len(variant), "unpaired-welch", zero_spread=True)
    av, ab = sv**2 / len(variant), sb**2 / len(baseline)
    se = math.sqrt(av + ab)
    df = (av + ab) ** 2 / ((av**2 / (len(variant) - 1) if av else 0.0) + (ab**2 / (len(baseline) - 1) if ab else 0.0))
    half = t_quantile(0.5 + level / 2, df) * se
    return Delta(mean, mean - half, mean + half, len(variant), "unpaired-welch", p=t_two_sided_p(mean / se, df))


def holm(pvalues: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values (family-wise error control), in the input order."""
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i])
    adjusted, running = [0.0] * m, 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted


def benjamini_hochberg(pvalues: list[float]) -> list[float]:
    """Benjamini-Hochberg step-up adjusted p-values (false discovery rate control), in the input order."""
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i], reverse=True)
    adjusted, running = [0.0] * m, 1.0
    for k, i in enumerate(order):  # k = 0 is the largest p, of rank m
        running = min(running, pvalues[i] * m / (m - k))
        adjusted[i] = running
    return adjusted


def adjust(deltas: Iterable[Optional[Delta]], rule: str = "holm") -> int:
    """Set ``p_adjusted`` on every delta of one family that has a test; returns the family's size m."""
    if rule not in RULES:
        raise ValueError(f"multiplicity rule {rule!r}; expected one of {', '.join(RULES)}")
    tested = [d for d in deltas if d is not None and d.p is not None]
    adjusted = (holm if rule == "holm" else benjamini_hochberg)([d.p for d in tested])
    for d, p in zip(tested, adjusted):
        d.p_adjusted = p
    return len(tested)
