"""The study's released numbers (released.json, package data) as a typed table."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Optional

RELEASED_FILE = Path(__file__).with_name("released.json")
MARKS = "†‡¶"  # the marks a released number may carry (released.json: marks)


@dataclass(frozen=True)
class Released:
    seed: int
    numbers: dict[str, dict[str, dict[str, float]]]  # regime -> variant -> benchmark -> top-1 %
    marks: dict[tuple[str, str, str], str]  # (regime, variant, benchmark) -> its marks, in file order
    notes: dict[str, list[str]]  # regime -> notes; a note that starts with a mark is shown only where it is used
    # regime -> (seed, benchmark -> top-1): the baseline the paper's printed deltas are against (the mixed
    # regime's reference baseline, seed 42, while every released variant and the Released baseline row are seed 239)
    paper_baseline: dict[str, tuple[int, dict[str, float]]] = field(default_factory=dict)

    def number(self, regime: Optional[str], variant: str, benchmark: str) -> Optional[float]:
        return self.numbers.get(regime or "", {}).get(variant, {}).get(benchmark)

    def paper_delta(self, regime: Optional[str], variant: str, benchmark: str) -> Optional[float]:
        """The delta the paper printed: the released number minus the paper's reference baseline (None where the
        paper has no such baseline or the variant is a baseline)."""
        number = self.number(regime, variant, benchmark)
        seed_numbers = self.paper_baseline.get(regime or "", (0, {}))[1]
        if number is None or variant == "baseline" or benchmark not in seed_numbers:
            return None
        return round(number - seed_numbers[benchmark], 2)

    def paper_baseline_number(self, regime: Optional[str], benchmark: str) -> Optional[float]:
        return self.paper_baseline.get(regime or "", (0, {}))[1].get(benchmark)

    def mark(self, regime: Optional[str], variant: str, benchmark: str) -> str:
        return self.marks.get((regime or "", variant, benchmark), "")


def parse_released(data: dict, source: str = str(RELEASED_FILE)) -> Released:
    """A Released from released.json's content; an error names the file and the key."""
    try:
        numbers = {regime: {variant: {bench: float(v) for bench, v in row.items()} for variant, row in rows.items()}
                   for regime, rows in data["regimes"].items()}
        marks: dict[tuple[str, str, str], str] = {}
        for i, entry in enumerate(data.get("marks", [])):
            if entry["mark"] not in MARKS:
                raise ValueError(f"marks[{i}].mark: expected one of {MARKS}, got {entry['mark']!r}")
            for variant in entry["variants"]:
                for bench in entry["benchmarks"]:
                    key = (entry["regime"], variant, bench)
                    marks[key] = marks.get(key, "") + entry["mark"]
        paper = {regime: (int(entry["seed"]), {b: float(v) for b, v in entry["numbers"].items()})
                 for regime, entry in data.get("paper_baseline", {}).items()}
        return Released(int(data["seed"]), numbers, marks, {k: list(v) for k, v in data.get("notes", {}).items()},
                        paper)
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise ValueError(f"{source}: not a released-numbers file: {error}") from None


@lru_cache(maxsize=1)
def released() -> Released:
    return parse_released(json.loads(RELEASED_FILE.read_text(encoding="utf-8")))
