"""The report's tables: per regime, variants x benchmarks, each cell the seeds' values, the same-seed
delta against the baseline with its interval, and the released number."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from jepa_lit.eval.benchmarks import BENCHMARKS
from jepa_lit.study.checks import Result
from jepa_lit.study.released import released
from jepa_lit.study.stats import Delta, adjust, mean_std, paired_delta, unpaired_delta

BENCH_ORDER = sorted(BENCHMARKS)
BENCH_TITLES = {name: benchmark.short_title for name, benchmark in BENCHMARKS.items()}  # column headings
NAMES = {  # the study's names for the variants (paper tables 7.1 / 7.2)
    "baseline": "Baseline", "mg": "MG", "amg": "AMG", "hw": "HW", "delta": "Delta", "fwm": "FWM", "ld": "LD",
    "fwm_ld": "FWM-LD", "hw_ld": "HW-LD", "fwm_hw_ld": "FWM-HW-LD", "combo": "Combo", "spectral": "Spectral",
    "ltc": "LTC", "ac": "AC", "ac_hw": "AC-HW", "fac": "FAC", "kinematic_l1": "Kin-L1 1.0",
    "kinematic_l1_0_1": "Kin-L1 0.1", "kinematic_huber": "Kin-Huber", "kinematic_accel": "Kin-Accel",
    "kinematic_split": "Kin-Split", "kinematic_anneal": "Kin-Anneal", "sigreg": "SIGReg",
    "sigreg_no_ema": "SIGReg-noEMA", "hamiltonian": "Hamiltonian", "velgate": "VelGate", "future": "Future",
    "motion_future": "Motion-Future", "hw_ld_released": "HW-LD (released)",
    "fwm_hw_ld_released": "FWM-HW-LD (released)", "kinematic": "Kinematic 1.0", "random_init": "Random init",
}



@dataclass
class Cell:
    values: dict[int, float]  # seed -> top-1
    mean: Optional[float] = None
    std: Optional[float] = None
    delta: Optional[Delta] = None
    released: Optional[float] = None
    released_mark: str = ""
    paper_delta: Optional[float] = None  # released minus the paper's reference baseline (released.json paper_baseline)
    paper_baseline: Optional[float] = None  # the baseline row: the paper's reference baseline (seed 42)
    flagged: bool = False  # tabulated despite a mismatch (--allow-mismatch)
    stale: bool = False  # a run of the cell (or of its same-seed baseline, for the delta) is stale
    stale_delta: bool = False


@dataclass
class Table:
    regime: str
    reference: Optional[str]
    baseline: str
    variants: list[str]
    benchmarks: list[str]
    cells: dict[tuple[str, str], Cell]  # (variant, benchmark)
    seeds: dict[str, list[int]]  # variant -> seeds with a result
    scale: str
    settings: dict[str, dict[str, Any]]  # benchmark -> a summary of its probe settings
    multiplicity: str = "holm"  # the rule adjusting the table's family of variant-vs-baseline tests (stats.RULES)
    family_size: int = 0  # the tests in that family: every Δ cell of the table with a p-value, all benchmarks


def _order(items: list[str], preferred: list[str]) -> list[str]:
    """``items`` in the order of ``preferred`` (first occurrence), the others after, sorted."""
    return [x for x in dict.fromkeys(preferred) if x in items] + sorted(x for x in items if x not in preferred)


def resolution(rows: list[Result], bench: str) -> Optional[float]:
    """One test clip in top-1 points (100 / test clips; the smallest test set of the benchmark's results)."""
    counts = [r.record.metrics[bench].num_test_clips for r in rows if r.benchmark == bench]
    counts = [c for c in counts if c]
    return 100.0 / min(counts) if counts else None


def build_tables(results: list[Result], problems: list[dict[str, Any]], sweep: Optional[dict[str, Any]] = None,
                 stale: Optional[dict[tuple[str, str], str]] = None, multiplicity: str = "holm") -> list[Table]:
    """The regimes' tables; each table's Δ cells are one family, adjusted by ``multiplicity`` (holm | bh)."""
    flagged = {cell for p in problems for cell in p["cells"]}
    stale_cells = {(r.regime, r.variant, r.benchmark) for r in results if (r.run_id, r.benchmark) in (stale or {})}
    sweep_regimes = (sweep or {}).get("regimes") or {}
    tables = []
    for regime in _order(sorted({r.regime for r in results}), list(sweep_regimes)):
        rows = [r for r in results if r.regime == regime]
        baseline = rows[0].record.baseline
        conf = sweep_regimes.get(regime) or {}
        variants = _order(sorted({r.variant for r in rows}), [baseline, *(conf.get("variants") or [])])
        benchmarks = _order(sorted({r.benchmark for r in rows}), list(conf.get("probes") or BENCH_ORDER))
        reference = rows[0].record.reference
        cells, seeds = {}, {}
        for variant in variants:
            seeds[variant] = sorted({r.seed for r in rows if r.variant == variant})
            for bench in benchmarks:
                step = resolution(rows, bench)
                values = {r.seed: r.top1 for r in rows if r.variant == variant and r.benchmark == bench}
                cell = Cell(values, flagged=(regime, variant, bench) in flagged,
                            stale=(regime, variant, bench) in stale_cells)
                cell.stale_delta = cell.stale or (regime, baseline, bench) in stale_cells
                if values:
                    cell.mean, cell.std = mean_std(list(values.values()))
                    base = {r.seed: r.top1 for r in rows if r.is_baseline and r.benchmark == bench}
                    if variant != baseline and base:
                        paired = set(values) <= set(base)
                        cell.delta = (paired_delta(values, base, resolution=step) if paired
                                      else unpaired_delta(list(values.values()), list(base.values()), resolution=step))
                if variant == baseline:  # the paper's own reference baseline, beside the seed-239 Released row
                    cell.paper_baseline = released().paper_baseline_number(reference, bench)
                number = released().number(reference, variant, bench)
                if number is not None:
                    cell.released = number
                    cell.released_mark = released().mark(reference, variant, bench)
                    cell.paper_delta = released().paper_delta(reference, variant, bench)
                cells[(variant, bench)] = cell
        settings = {}
        for bench in benchmarks:
            first = next((r for r in rows if r.benchmark == bench and r.settings is not None), None)
            s = first.settings if first else {}
            settings[bench] = {"probe": (s.get("probe") or {}).get("probe"), "epochs": s.get("epochs"),
                               "batch_size": s.get("batch_size"), "pooling": s.get("pooling"),
                               "data": s.get("data_class", "").rsplit(".", 1)[-1],
                               "keys": sorted({r.key[:8] for r in rows if r.benchmark == bench}),
                               "test_clips": sorted({r.record.metrics[bench].num_test_clips for r in rows
                                                     if r.benchmark == bench} - {None})}
        family = adjust([c.delta for c in cells.values()], multiplicity)
        tables.append(Table(regime, reference, baseline, variants, benchmarks, cells, seeds,
                            rows[0].record.scale or "?", settings, multiplicity, family))
    return tables

