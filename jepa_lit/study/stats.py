"""Same-seed deltas and their intervals: mean +- std, paired-t, and Welch's unpaired interval."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Optional

from scipy import stats as _scipy_stats


def t_quantile(p: float, df: float) -> float:
    """The p-quantile of Student's t with ``df`` degrees of freedom (p > 0.5)."""
    if not 0.5 < p < 1.0 or df <= 0:
        raise ValueError(f"t_quantile: need 0.5 < p < 1 and df > 0, got p={p}, df={df}")
    return float(_scipy_stats.t.ppf(p, df))


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

    @property
    def degenerate(self) -> bool:
        """Every seed gave the same difference: sd 0, an interval of width 0 that says nothing (with a
        few seeds and a test set of a few dozen clips, differences come in steps and can coincide)."""
        return self.lo is not None and self.lo == self.hi

    @property
    def excludes_zero(self) -> bool:
        return self.lo is not None and not self.degenerate and (self.lo > 0 or self.hi < 0)


def paired_delta(variant: dict[int, float], baseline: dict[int, float], level: float = 0.95) -> Delta:
    """Mean over the shared seeds of (variant - baseline) and its paired-t interval."""
    seeds = sorted(set(variant) & set(baseline))
    if not seeds:
        raise ValueError("no seed with both a variant and a baseline result")
    diffs = {s: variant[s] - baseline[s] for s in seeds}
    mean, sd = mean_std(list(diffs.values()))
    if sd is None:
        return Delta(mean, None, None, 1, "paired-t", diffs)
    half = t_quantile(0.5 + level / 2, len(seeds) - 1) * sd / math.sqrt(len(seeds))
    return Delta(mean, mean - half, mean + half, len(seeds), "paired-t", diffs)


def unpaired_delta(variant: list[float], baseline: list[float], level: float = 0.95) -> Delta:
    """Difference of the means with a Welch interval (no interval unless both sides have two values)."""
    (mv, sv), (mb, sb) = mean_std(variant), mean_std(baseline)
    mean = mv - mb
    if sv is None or sb is None:
        return Delta(mean, None, None, len(variant), "unpaired-welch")
    av, ab = sv**2 / len(variant), sb**2 / len(baseline)
    se = math.sqrt(av + ab)
    if se == 0:
        return Delta(mean, mean, mean, len(variant), "unpaired-welch")
    df = (av + ab) ** 2 / (av**2 / (len(variant) - 1) + ab**2 / (len(baseline) - 1))
    half = t_quantile(0.5 + level / 2, df) * se
    return Delta(mean, mean - half, mean + half, len(variant), "unpaired-welch")
