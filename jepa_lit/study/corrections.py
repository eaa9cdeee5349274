"""Released vs corrected objectives: a variant ``V_released`` (the objective as the study's release
computed it) beside ``V`` (the corrected one) in one regime.

Per benchmark: both means, the corrected minus the released paired by seed with its 95% interval (what
the release's defect cost), and each one's gain over the same-seed baseline, with a computed sentence
on whether the released gain survives the correction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from jepa_lit.study.stats import Delta, paired_delta
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


def _positive(delta: Optional[Delta]) -> bool:
    return delta is not None and delta.excludes_zero and delta.mean > 0


def _negative(delta: Optional[Delta]) -> bool:
    return delta is not None and delta.excludes_zero and delta.mean < 0


def verdict(c: Correction) -> str:
    """Whether the released objective's gain over the baseline survives the correction, from the intervals."""
    released, corrected = c.gain_released, c.gain_corrected
    if released is None or corrected is None:
        return "no same-seed baseline comparison for both"
    if _positive(corrected):
        return "the gain holds with the corrected objective" + ("" if _positive(released) else
                                                                 " (as released it was not distinguishable from 0)")
    if _negative(corrected):
        return "corrected, the objective is worse than the baseline"
    if _positive(released):
        return "the released gain does not survive: the corrected gain's interval includes 0"
    return "no gain to test: neither gain's interval excludes 0"


def build_corrections(table: Table) -> list[Correction]:
    """Every (V_released, V) pair of a regime's table, per benchmark, released variants in table order."""
    found = []
    for released_variant in table.variants:
        variant = released_variant[: -len(RELEASED_SUFFIX)] if released_variant.endswith(RELEASED_SUFFIX) else None
        if variant is None or variant not in table.variants:
            continue
        for bench in table.benchmarks:
            released, corrected = table.cells[(released_variant, bench)], table.cells[(variant, bench)]
            shared = set(released.values) & set(corrected.values)
            difference = paired_delta(corrected.values, released.values) if shared else None
            found.append(Correction(table.regime, variant, released_variant, bench, released, corrected, difference))
    return found
