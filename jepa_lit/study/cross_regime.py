"""One regime against another: for each variant run in both (baseline, MG, the random_init control, ...)
and each benchmark probed in both, regime A minus regime B, paired by seed, with its 95% interval.

With A = mixed and B = ucf101 this answers the study's question: does adding SSv2 and ImageNet-100 to
UCF-101 pretraining improve robustness across the benchmarks? ``answer`` states what the intervals say.
The random_init row is a check: both regimes build the same untrained encoder from a seed, so its
difference is 0 when the architectures and probes match.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from jepa_lit.study.spec import RANDOM_INIT
from jepa_lit.study.stats import Delta, paired_delta
from jepa_lit.study.tables import BENCH_TITLES, NAMES, Table

QUESTIONS = {("mixed", "ucf101"): "Does adding SSv2 and ImageNet-100 to UCF-101 pretraining improve robustness "
                                  "across the benchmarks?"}


@dataclass
class CrossRegime:
    a: str  # the table shows a - b
    b: str
    baseline: str
    variants: list[str]  # run in both regimes, A's order, the random_init control last
    benchmarks: list[str]  # probed in both
    deltas: dict[tuple[str, str], Optional[Delta]]  # (variant, benchmark) -> A - B paired by seed

    @property
    def question(self) -> Optional[str]:
        return QUESTIONS.get((self.a, self.b))


def build_cross_regime(tables: list[Table], a: str, b: str) -> Optional[CrossRegime]:
    """A - B for every variant and benchmark the two regimes' tables share; None without both tables."""
    by_regime = {t.regime: t for t in tables}
    if a not in by_regime or b not in by_regime:
        return None
    ta, tb = by_regime[a], by_regime[b]
    variants = [v for v in ta.variants if v in tb.variants]
    variants = [v for v in variants if v != RANDOM_INIT] + [v for v in variants if v == RANDOM_INIT]
    benchmarks = [x for x in ta.benchmarks if x in tb.benchmarks]
    deltas = {}
    for variant in variants:
        for bench in benchmarks:
            va, vb = ta.cells[(variant, bench)].values, tb.cells[(variant, bench)].values
            deltas[(variant, bench)] = paired_delta(va, vb) if set(va) & set(vb) else None
    return CrossRegime(a, b, ta.baseline, variants, benchmarks, deltas)


def _side(delta: Optional[Delta]) -> int:
    """+1: the interval is above 0; -1: below; 0: it includes 0, is degenerate, or there is none."""
    if delta is None or not delta.excludes_zero:
        return 0
    return 1 if delta.mean > 0 else -1


def answer(cross: CrossRegime) -> str:
    """The answer the intervals give, in one or two sentences (computed, never fixed text)."""
    a, b = cross.a, cross.b
    base = NAMES.get(cross.baseline, cross.baseline)
    if not cross.benchmarks or cross.baseline not in cross.variants:
        return f"Not answerable yet: the {a} and {b} regimes share no benchmark with a {base} result."

    def title(bench: str) -> str:
        return BENCH_TITLES.get(bench, bench)

    sides = {x: _side(cross.deltas[(cross.baseline, x)]) for x in cross.benchmarks}
    better = [title(x) for x, s in sides.items() if s > 0]
    worse = [title(x) for x, s in sides.items() if s < 0]
    unclear = [title(x) for x, s in sides.items() if s == 0]
    if better and not worse and not unclear:
        text = f"Yes for the {base}: {a} pretraining beats {b} on every shared benchmark ({', '.join(better)})."
    elif worse and not better and not unclear:
        text = f"No for the {base}: {a} pretraining is worse than {b} on every shared benchmark ({', '.join(worse)})."
    elif better or worse:
        parts = [f"better on {', '.join(better)}" if better else "", f"worse on {', '.join(worse)}" if worse else "",
                 f"inconclusive on {', '.join(unclear)}" if unclear else ""]
        text = f"Not uniformly for the {base}: {a} pretraining is " + "; ".join(p for p in parts if p) + f" (vs {b})."
    else:
        n = min((d.n for d in (cross.deltas[(cross.baseline, x)] for x in cross.benchmarks) if d is not None), default=0)
        text = (f"Inconclusive for the {base}: no {a} - {b} interval excludes 0 "
                f"({', '.join(unclear)}; {n} paired seed(s)).")
    trained = [v for v in cross.variants if v not in (cross.baseline, RANDOM_INIT)]
    if trained:
        signs = [_side(cross.deltas[(v, x)]) for v in trained for x in cross.benchmarks]
        text += (f" Over the other variants run in both ({', '.join(NAMES.get(v, v) for v in trained)}): "
                 f"{signs.count(1)} of {len(signs)} variant-benchmark differences favour {a}, {signs.count(-1)} "
                 f"favour {b}, {signs.count(0)} are inconclusive.")
    return text
