"""Released vs corrected objectives: a variant ``V_released`` (the objective as the study's release
computed it) beside ``V`` (the corrected one) in one regime.

Per benchmark: both means, the corrected minus the released paired by seed with its 95% interval (what
the release's defect cost), and each one's gain over the same-seed baseline, with a computed sentence
on what the three intervals (both gains and the paired difference) say about the correction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from jepa_lit.study.stats import Delta, adjust, paired_delta
from jepa_lit.study.tables import Cell, Table

RELEASED_SUFFIX = "_released"


@dataclass
class Correction:
    regime: str
    variant: str  # the corrected objective, e.g. fwm_hw_ld
    released_variant: str  # the objective as released, e.g. fwm_hw_ld_released
    benchmark: str
    released: Cell
    corrected: Cell
    difference: Optional[Delta]  # corrected - released, paired by seed (None without a shared seed)

    @property
    def gain_released(self) -> Optional[Delta]:
        return self.released.delta

    @property
    def gain_corrected(self) -> Optional[Delta]:
        return self.corrected.delta


GAIN_WORDS = {1: "significantly better than the baseline", 0: "not significantly different from the baseline",
              -1: "significantly worse than the baseline"}


def verdict(c: Correction) -> str:
    """What the intervals say about the correction: each gain over the same-seed baseline (significant after the
    table's adjustment, or not) and the paired corrected − released difference (adjusted over the regime's
    corrections). Branches: the gains' signs (3 x 3, each +1 significant above 0, -1 below, 0 not significant)
    and the difference's sign; "does not survive" only where the released gain was significant, the corrected
    one is not, and the correction lowered the result significantly; "not determined" where the difference is
    not significant and the gains' verdicts differ."""
    released, corrected, difference = c.gain_released, c.gain_corrected, c.difference
    if released is None or corrected is None:
        return "no same-seed baseline comparison for both"
    r, k = released.sign, corrected.sign
    d = difference.sign if difference is not None else 0
    if difference is None:
        change = "corrected − released has no shared seed"
    elif d > 0:
        change = "the correction raised the result significantly (corrected − released > 0)"
    elif d < 0:
        change = "the correction lowered the result significantly (corrected − released < 0)"
    else:
        change = "corrected − released is not significant"
    if r == k:
        if r == 0:
            gains = "no gain to test: neither gain is significant"
        else:
            gains = f"{'the gain holds' if r > 0 else 'the loss holds'}: {GAIN_WORDS[r]} both as released and corrected"
        return f"{gains}; {change}"
    if r > 0 and k == 0 and d < 0:
        return f"the released gain does not survive: {GAIN_WORDS[r]} as released, {GAIN_WORDS[k]} corrected; {change}"
    if d == 0 and 0 in (r, k):
        return (f"the correction's effect is not determined: {GAIN_WORDS[r]} as released, {GAIN_WORDS[k]} "
                "corrected, and corrected − released is not significant, so the two are not shown to differ")
    return f"the released variant was {GAIN_WORDS[r]} and the corrected one {GAIN_WORDS[k]}; {change}"


def build_corrections(table: Table) -> list[Correction]:
    """Every (V_released, V) pair of a regime's table, per benchmark, released variants in table order; the
    corrected − released differences are one family, adjusted with the table's rule (the gains are the table's
    own cells, adjusted in the table's family)."""
    found = []
    for released_variant in table.variants:
        variant = released_variant[: -len(RELEASED_SUFFIX)] if released_variant.endswith(RELEASED_SUFFIX) else None
        if variant is None or variant not in table.variants:
            continue
        for bench in table.benchmarks:
            released, corrected = table.cells[(released_variant, bench)], table.cells[(variant, bench)]
            shared = set(released.values) & set(corrected.values)
            clips = table.settings.get(bench, {}).get("test_clips") or []
            step = 100.0 / min(clips) if clips else None
            difference = paired_delta(corrected.values, released.values, resolution=step) if shared else None
            found.append(Correction(table.regime, variant, released_variant, bench, released, corrected, difference))
    adjust([c.difference for c in found], table.multiplicity)
    return found
