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
from jepa_lit.study.stats import Delta, adjust, paired_delta
from jepa_lit.study.tables import BENCH_TITLES, NAMES, Table

QUESTIONS = {("mixed", "ucf101"): "Does adding SSv2 and ImageNet-100 to UCF-101 pretraining improve robustness "
                                  "across the benchmarks?"}
# What a difference between the two regimes mixes in besides the pretraining data (experiments/regimes/*.yaml).
CONFOUNDS = {("mixed", "ucf101"): (
    "Confounds this answer carries: the mixed regime reads every 2nd frame (frame_step 2) and UCF-101 every "
    "frame (frame_step 1), so a difference mixes the data with the frame rate; and the SSv2 and ImageNet-100 "
    "probes' training sets are inside the mixed pretraining data, so there mixed pretraining saw the probe's "
    "domain and UCF-101 did not. Only Diving-48 is out of domain for both.")}


@dataclass
class CrossRegime:
    a: str  # the table shows a - b
    b: str
    baseline: str
    variants: list[str]  # run in both regimes, A's order, the random_init control last
    benchmarks: list[str]  # probed in both
    deltas: dict[tuple[str, str], Optional[Delta]]  # (variant, benchmark) -> A - B paired by seed
    multiplicity: str = "holm"  # the rule over the family of every delta of this table (stats.RULES)
    family_size: int = 0

    @property
    def question(self) -> Optional[str]:
        return QUESTIONS.get((self.a, self.b))

    @property
    def confounds(self) -> Optional[str]:
        return CONFOUNDS.get((self.a, self.b))


def build_cross_regime(tables: list[Table], a: str, b: str, multiplicity: str = "holm") -> Optional[CrossRegime]:
    """A - B for every variant and benchmark the two regimes' tables share, adjusted as one family; None
    without both tables."""
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
            clips = [c for t in (ta, tb) for c in t.settings.get(bench, {}).get("test_clips") or []]
            step = 100.0 / min(clips) if clips else None
            va, vb = ta.cells[(variant, bench)].values, tb.cells[(variant, bench)].values
            deltas[(variant, bench)] = paired_delta(va, vb, resolution=step) if set(va) & set(vb) else None
    family = adjust(deltas.values(), multiplicity)
    return CrossRegime(a, b, ta.baseline, variants, benchmarks, deltas, multiplicity, family)


def _side(delta: Optional[Delta]) -> int:
    """+1: significantly above 0 after the family's adjustment; -1: below; 0: not significant, zero spread, or none."""
    return 0 if delta is None else delta.sign


def _list(items: list[str]) -> str:
    return ", ".join(items)


def answer(cross: CrossRegime) -> str:
    """The answer the adjusted tests give, in a few sentences (computed, never fixed text): all shared
    benchmarks significant in one direction; significant in one direction only (the rest: no detectable
    difference); significant in both directions (not uniform); none significant."""
    a, b = cross.a, cross.b
    base = NAMES.get(cross.baseline, cross.baseline)
    if not cross.benchmarks or cross.baseline not in cross.variants:
        return f"Not answerable yet: the {a} and {b} regimes share no benchmark with a {base} result."

    def title(bench: str) -> str:
        return BENCH_TITLES.get(bench, bench)

    sides = {x: _side(cross.deltas[(cross.baseline, x)]) for x in cross.benchmarks}
    better = [title(x) for x, s in sides.items() if s > 0]
    worse = [title(x) for x, s in sides.items() if s < 0]
    none = [title(x) for x, s in sides.items() if s == 0]
    no_difference = f"no detectable difference on {_list(none)}" if none else ""
    if better and worse:
        parts = [f"better on {_list(better)}", f"worse on {_list(worse)}", no_difference]
        text = (f"Not uniformly for the {base}: {a} pretraining is " + "; ".join(p for p in parts if p)
                + f" (vs {b}, significant effects of opposite sign).")
    elif better and not none:
        text = f"Yes for the {base}: {a} pretraining beats {b} on every shared benchmark ({_list(better)})."
    elif worse and not none:
        text = f"No for the {base}: {a} pretraining is worse than {b} on every shared benchmark ({_list(worse)})."
    elif better or worse:
        direction = f"better than {b} on {_list(better)}" if better else f"worse than {b} on {_list(worse)}"
        text = f"For the {base}, {a} pretraining is {direction}; {no_difference}."
    else:
        n = min((d.n for d in (cross.deltas[(cross.baseline, x)] for x in cross.benchmarks) if d is not None), default=0)
        text = (f"No detectable difference for the {base}: no {a} - {b} difference is significant "
                f"({_list(none)}; {n} paired seed(s)).")
    if cross.family_size:
        text += (f" Significance: 95% paired t over seeds, {cross.multiplicity} adjustment over the table's "
                 f"{cross.family_size} tests.")
    trained = [v for v in cross.variants if v not in (cross.baseline, RANDOM_INIT)]
    if trained:
        signs = [_side(cross.deltas[(v, x)]) for v in trained for x in cross.benchmarks]
        text += (f" Over the other variants run in both ({_list([NAMES.get(v, v) for v in trained])}): "
                 f"{signs.count(1)} of {len(signs)} variant-benchmark differences significantly favour {a}, "
                 f"{signs.count(-1)} favour {b}, {signs.count(0)} show no detectable difference.")
    if cross.confounds:
        text += f" {cross.confounds}"
    return text
