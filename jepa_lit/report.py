"""Tables and plots of a sweep, in the study's layout, with same-seed comparisons and intervals.

    python -m jepa_lit.report runs/sweep/full [--out DIR] [--allow-mismatch] [--no-plots]
    make report [SCALE=smoke]

Reads the run registry (``<root>/**/run.json``, written by ``jepa_lit.sweep``) and each run's probe
results JSON, and writes to ``<root>/report/`` (or ``--out``):

- ``report.md``: per regime, rows = variants, columns = benchmarks: top-1 mean +- std over seeds, then
  the delta against the baseline **of the same seed**, averaged over seeds, with a 95% paired-t
  interval (mean of the per-seed differences +- t(0.975, n-1) * sd / sqrt(n); no interval from one
  seed), then the released number (OBJECTIVES.md section 6) as a reference column; then the probe
  settings of each benchmark and every run's own result with its bootstrap interval over test clips.
- ``table_<regime>.csv`` (the same table, one number a column) and ``runs.csv`` (one row per run x benchmark).
- ``heatmap_<regime>.png`` (delta, variant x benchmark) and ``tradeoff_<regime>_<motion>.png``
  (appearance delta vs motion delta, one point per variant, with the intervals as error bars).
- ``tensorboard/``: one HParams entry per run (regime, variant, seed, scale, config hash, commit ->
  top-1 and same-seed delta per benchmark): ``tensorboard --logdir <out>/tensorboard``.

It refuses, naming the runs and the fields, what the study's release did (OBJECTIVES.md section 5):
results of one benchmark whose probe settings differ (``jepa_lit.eval.results.comparison_key``:
e.g. 50 vs 100 probe epochs), a variant result without a baseline result of the same seed and regime,
and seeds of one variant pretrained with different configs (config hash). ``--allow-mismatch``
tabulates them anyway, marked, and lists each mismatch under the table; deltas without a same-seed
baseline are then unpaired (difference of the means, Welch interval).

Runs that no longer match the sweep's spec (it is expanded again from ``sweep.json``: a config hash
that changed, as ``--dry-run``'s "config changed", other probe settings, or a run the spec dropped)
are tabulated but marked ※, listed, and warned about on stderr.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import shutil
import statistics
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Optional

from jepa_lit.eval.benchmarks import BENCHMARKS
from jepa_lit.eval.results import comparison_settings, differences

BENCH_ORDER = sorted(BENCHMARKS)
BENCH_TITLES = {"diving48": "Diving-48", "imagenet100": "IN-100", "ssv2": "SSv2", "synthetic": "Synthetic",
                "ucf101": "UCF-101"}
NAMES = {  # the study's names for the variants (paper tables 7.1 / 7.2)
    "baseline": "Baseline", "mg": "MG", "amg": "AMG", "hw": "HW", "delta": "Delta", "fwm": "FWM", "ld": "LD",
    "fwm_ld": "FWM-LD", "hw_ld": "HW-LD", "fwm_hw_ld": "FWM-HW-LD", "combo": "Combo", "spectral": "Spectral",
    "ltc": "LTC", "ac": "AC", "ac_hw": "AC-HW", "fac": "FAC", "kinematic_l1": "Kin-L1 1.0",
    "kinematic_l1_0_1": "Kin-L1 0.1", "kinematic_huber": "Kin-Huber", "kinematic_accel": "Kin-Accel",
    "kinematic_split": "Kin-Split", "kinematic_anneal": "Kin-Anneal", "sigreg": "SIGReg",
    "sigreg_no_ema": "SIGReg-noEMA", "hamiltonian": "Hamiltonian", "velgate": "VelGate", "future": "Future",
    "motion_future": "Motion-Future",
}


def _released(table: str) -> dict[str, dict[str, float]]:
    rows = {}
    for line in table.strip().splitlines():
        variant, *values = line.split()
        rows[variant] = {b: float(v) for b, v in zip(("diving48", "imagenet100", "ssv2", "synthetic"), values) if v != "-"}
    return rows


# The released numbers (top-1 %, one seed: 239 for every variant), OBJECTIVES.md section 6.
RELEASED: dict[str, dict[str, dict[str, float]]] = {
    # variant       Diving-48 IN-100 SSv2 (synthetic)
    "mixed": _released("""
        baseline        -     21.26  6.62
        mg              -     19.70  6.19
        hw              8.98  18.46  6.30
        delta           7.41  16.76  3.80
        fwm             7.16  26.74  7.00
        ld              6.95  22.80  13.41
        fwm_ld          6.40  14.72  7.63
        hw_ld           7.92  19.78  5.41
        fwm_hw_ld       8.38  30.78  11.60
        amg             5.89  23.54  7.78
        combo           7.16  18.60  5.00
        spectral        5.69  12.62  3.37
        ltc             7.77  11.34  4.32
        ac              8.38  11.70  4.21
        ac_hw           9.39  18.14  4.88
        fac             8.38  8.58   3.08
    """),
    "ucf101": _released("""
        baseline          8.38  12.02  2.07  27.5
        kinematic_l1      5.58  13.64  -     67.5
        kinematic_l1_0_1  5.84  13.66  3.07  72.5
        kinematic_huber   5.99  -      -     -
        kinematic_accel   5.79  13.74  3.18  -
        kinematic_split   5.48  13.58  -     -
        kinematic_anneal  5.63  -      -     -
        sigreg            6.29  -      -     -
        sigreg_no_ema     5.99  -      -     -
        hamiltonian       6.04  -      -     -
        velgate           5.84  -      -     -
        mg                8.68  12.16  3.45  -
        future            7.11  -      -     -
        motion_future     6.45  -      -     -
    """),
}
# Released results the release itself got wrong (OBJECTIVES.md section 5), marked in the reference column;
# a number may carry several marks (FWM-HW-LD's SSv2: 50 probe epochs and a constant LD term).
_ALL_BENCHMARKS = ("diving48", "imagenet100", "ssv2", "synthetic")
_MARKED = [  # (mark, regime, variants, benchmarks)
    ("†", "mixed", ("fwm_ld", "hw_ld", "fwm_hw_ld"), ("diving48", "ssv2")),
    ("¶", "mixed", ("hw_ld", "fwm_hw_ld"), _ALL_BENCHMARKS),
    ("‡", "ucf101", ("kinematic_l1", "kinematic_l1_0_1", "kinematic_huber", "kinematic_accel", "kinematic_split",
                     "kinematic_anneal", "sigreg_no_ema"), _ALL_BENCHMARKS),
]


def _released_marks() -> dict[tuple[str, str, str], str]:
    """(regime, variant, benchmark) -> its marks, in the order of _MARKED."""
    marks: dict[tuple[str, str, str], str] = {}
    for mark, regime, variants, benchmarks in _MARKED:
        for variant in variants:
            for bench in benchmarks:
                marks[(regime, variant, bench)] = marks.get((regime, variant, bench), "") + mark
    return marks


RELEASED_MARKS = _released_marks()
RELEASED_NOTES = {  # a note that starts with a mark is shown only under a table that uses the mark
    "mixed": ["Released mixed baseline: seed 239, the seed of every released variant (the paper's reference "
              "baseline, seed 42, had 8.68 / 24.86 / 8.39; a seed alone moved IN-100 by 3.6 points).",
              "† released Diving-48 / SSv2 probes trained 50 epochs instead of 100.",
              "¶ released HW-LD and FWM-HW-LD computed their hard-weighted LD term under no_grad: a constant whose "
              "head never trained, so those runs were effectively base + HW (+ FWM) (OBJECTIVES.md section 5.1); "
              "jepa-lit's runs of these variants train the term."],
    "ucf101": ["‡ released no-EMA runs were evaluated on their never-updated EMA copy, i.e. random weights."],
}
MARKS = "†‡¶"
STALE = "※"  # a cell with a run whose config is no longer what the spec expands to


class Refused(ValueError):
    """The results cannot be tabulated side by side; the message names the runs and fields."""


# ----- statistics ---------------------------------------------------------------------------------
@lru_cache(maxsize=None)
def t_quantile(p: float, df: float) -> float:
    """The p-quantile of Student's t with ``df`` degrees of freedom (p > 0.5), by bisection on its CDF
    (Simpson's rule on the density); accurate to about 1e-6 for df >= 1."""
    if not 0.5 < p < 1.0 or df <= 0:
        raise ValueError(f"t_quantile: need 0.5 < p < 1 and df > 0, got p={p}, df={df}")
    log_norm = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)

    def cdf(x: float, steps: int = 2000) -> float:
        h = x / steps
        f = [math.exp(log_norm - (df + 1) / 2 * math.log1p((i * h) ** 2 / df)) for i in range(steps + 1)]
        return 0.5 + h / 3 * (f[0] + f[-1] + 4 * sum(f[1:-1:2]) + 2 * sum(f[2:-1:2]))

    lo, hi = 0.0, 1.0
    while cdf(hi) < p:
        lo, hi = hi, hi * 2
    for _ in range(50):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if cdf(mid) < p else (lo, mid)
    return (lo + hi) / 2


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


# ----- reading the registry -----------------------------------------------------------------------
@dataclass
class Result:
    run_id: str
    regime: str
    variant: str
    seed: int
    benchmark: str
    top1: float
    ci95: Optional[list[float]]
    key: str
    settings: Optional[dict[str, Any]]  # comparison_settings of the results JSON (None if it is gone)
    registry: dict[str, Any]

    @property
    def is_baseline(self) -> bool:
        return self.variant == self.registry.get("baseline", "baseline")


def load_registries(root: Path) -> list[dict[str, Any]]:
    """Every run.json under root (runs moved aside by --rerun-changed left out), with its directory."""
    entries = []
    for path in sorted(root.rglob("run.json")):
        if any(".replaced-" in part for part in path.parts):
            continue
        data = json.loads(path.read_text())
        if data.get("schema", "").startswith("jepa_lit.sweep_run/"):
            data["_dir"] = str(path.parent)
            entries.append(data)
    return entries


def collect(registries: list[dict[str, Any]]) -> list[Result]:
    results = []
    for reg in registries:
        if reg.get("status") != "done":
            continue
        for bench, metric in (reg.get("metrics") or {}).items():
            settings = None
            path = Path(reg["_dir"]) / metric.get("results", "")
            if metric.get("results") and path.is_file():
                settings = comparison_settings(json.loads(path.read_text()))
            results.append(Result(reg["run_id"], reg["regime"], reg["variant"], int(reg["seed"]), bench,
                                  float(metric["top1"]), metric.get("top1_ci95"), metric["comparison_key"],
                                  settings, reg))
    return results


def _names(runs: list[str], limit: int = 6) -> str:
    runs = sorted(set(runs))
    return ", ".join(runs[:limit]) + (f" and {len(runs) - limit} more" if len(runs) > limit else "")


def find_mismatches(results: list[Result], registries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What the report refuses: each {"kind", "message", "cells": {(regime, variant, benchmark)}}."""
    problems = []
    # 1. one benchmark, different probe settings
    by_bench = defaultdict(list)
    for r in results:
        by_bench[r.benchmark].append(r)
    for bench, group in sorted(by_bench.items()):
        keys = Counter(r.key for r in group)
        if len(keys) < 2:
            continue
        # the reference: the key of most baseline results, then of most results
        ref_key = max(keys, key=lambda k: (sum(r.key == k and r.is_baseline for r in group), keys[k]))
        ref = [r for r in group if r.key == ref_key]
        ref_settings = next((r.settings for r in ref if r.settings is not None), None)
        for key in sorted(set(keys) - {ref_key}):
            odd = [r for r in group if r.key == key]
            settings = next((r.settings for r in odd if r.settings is not None), None)
            fields = (differences(ref_settings, settings) if ref_settings is not None and settings is not None
                      else ["(results JSONs not found: fields unknown)"])
            problems.append({
                "kind": "probe settings differ",
                "message": (f"{bench}: probe settings differ: {len(odd)} result(s) with comparison key {key[:8]} "
                            f"({_names([r.run_id for r in odd])}) vs {len(ref)} with key {ref_key[:8]} "
                            f"({_names([r.run_id for r in ref])}): " + "; ".join(fields)),
                "cells": {(r.regime, r.variant, bench) for r in odd},
            })
    # 2. a variant result without a baseline result of the same seed
    have = {(r.regime, r.seed, r.benchmark) for r in results if r.is_baseline}
    for r in results:
        if not r.is_baseline and (r.regime, r.seed, r.benchmark) not in have:
            seeds = sorted(s for (g, s, b) in have if g == r.regime and b == r.benchmark)
            problems.append({
                "kind": "no same-seed baseline",
                "message": (f"{r.run_id} ({r.benchmark}): no {r.registry.get('baseline', 'baseline')} result of seed "
                            f"{r.seed} in regime {r.regime} (baseline seeds with a {r.benchmark} result: "
                            f"{', '.join(map(str, seeds)) or 'none'}); a delta against another seed mixes the "
                            "seed's effect into the variant's"),
                "cells": {(r.regime, r.variant, r.benchmark)},
            })
    # 3. seeds of one variant pretrained with different configs; a regime's runs at different scales
    done = [reg for reg in registries if reg.get("status") == "done"]
    groups = defaultdict(list)
    for reg in done:
        groups[(reg["regime"], reg["variant"])].append(reg)
    for (regime, variant), regs in sorted(groups.items()):
        hashes = {reg["config_hash"] for reg in regs}
        if len(hashes) > 1:
            problems.append({
                "kind": "config differs between seeds",
                "message": f"{regime}/{variant}: seeds pretrained with different configs: " + "; ".join(
                    f"{reg['run_id']} config hash {reg['config_hash']}" for reg in sorted(regs, key=lambda g: g["seed"])),
                "cells": {(regime, variant, b) for reg in regs for b in reg.get("metrics") or {}},
            })
    by_regime = defaultdict(list)
    for reg in done:
        by_regime[reg["regime"]].append(reg)
    for regime, regs in sorted(by_regime.items()):
        scales = Counter((reg.get("scale"), reg.get("scale_hash")) for reg in regs)
        if len(scales) > 1:
            problems.append({
                "kind": "scale differs",
                "message": f"{regime}: runs of different scales or scale overrides: " + "; ".join(
                    f"scale {s} ({h}): {_names([reg['run_id'] for reg in regs if (reg.get('scale'), reg.get('scale_hash')) == (s, h)])}"
                    for s, h in scales),
                "cells": {(regime, reg["variant"], b) for reg in regs for b in reg.get("metrics") or {}},
            })
    return problems


def find_stale(registries: list[dict[str, Any]], sweep: dict[str, Any]) -> tuple[dict[tuple[str, str], str], list[str]]:
    """Finished runs whose results no longer match what the sweep's spec (``sweep.json``: spec and scale)
    expands to today: ({(run_id, benchmark): why}, notes). A run is stale when its config hash differs
    (the hash with which ``python -m jepa_lit.sweep --dry-run`` says "config changed"), when a probe's
    settings changed (its results file is not the one the spec now writes), or when the spec no longer
    has the run. Without a spec in sweep.json (registries made by hand) nothing is checked."""
    spec_path, scale = sweep.get("spec"), sweep.get("scale")
    if not spec_path or not scale:
        return {}, []
    from jepa_lit.sweep import expand, load_spec

    try:
        current = {run.run_id: run for run in expand(load_spec(spec_path, scale))}
    except Exception as error:  # noqa: BLE001 - a spec that no longer loads must not stop the report
        return {}, [f"runs not checked against the spec: {spec_path} (scale {scale}) does not expand: {error}"]
    stale = {}
    for reg in registries:
        if reg.get("status") != "done":
            continue
        run, benches = current.get(reg["run_id"]), list(reg.get("metrics") or {})
        if run is None:
            stale.update({(reg["run_id"], b): f"not a run of {spec_path} at scale {scale} any more" for b in benches})
        elif reg.get("config_hash") != run.config_hash:
            stale.update({(reg["run_id"], b): f"config changed since it ran (config hash {reg.get('config_hash')} -> "
                                             f"{run.config_hash})" for b in benches})
        else:
            wanted = {p.benchmark: f"probes/{p.output_name}" for p in run.probes}
            for bench in benches:
                had = reg["metrics"][bench].get("results")
                if bench not in wanted:
                    stale[(reg["run_id"], bench)] = f"{bench} is no longer a probe of regime {reg['regime']}"
                elif had != wanted[bench]:
                    stale[(reg["run_id"], bench)] = (f"{bench} probe settings changed since it ran ({had}; the spec "
                                                     f"now writes {wanted[bench]})")
    return stale, []


# ----- the tables ---------------------------------------------------------------------------------
@dataclass
class Cell:
    values: dict[int, float]  # seed -> top-1
    mean: Optional[float] = None
    std: Optional[float] = None
    delta: Optional[Delta] = None
    released: Optional[float] = None
    released_mark: str = ""
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


def _order(items: list[str], preferred: list[str]) -> list[str]:
    """``items`` in the order of ``preferred`` (first occurrence), the others after, sorted."""
    return [x for x in dict.fromkeys(preferred) if x in items] + sorted(x for x in items if x not in preferred)


def build_tables(results: list[Result], problems: list[dict[str, Any]], sweep: Optional[dict[str, Any]] = None,
                 stale: Optional[dict[tuple[str, str], str]] = None) -> list[Table]:
    flagged = {cell for p in problems for cell in p["cells"]}
    stale_cells = {(r.regime, r.variant, r.benchmark) for r in results if (r.run_id, r.benchmark) in (stale or {})}
    sweep_regimes = (sweep or {}).get("regimes") or {}
    tables = []
    for regime in _order(sorted({r.regime for r in results}), list(sweep_regimes)):
        rows = [r for r in results if r.regime == regime]
        baseline = rows[0].registry.get("baseline", "baseline")
        conf = sweep_regimes.get(regime) or {}
        variants = _order(sorted({r.variant for r in rows}), [baseline, *(conf.get("variants") or [])])
        benchmarks = _order(sorted({r.benchmark for r in rows}), list(conf.get("probes") or BENCH_ORDER))
        reference = rows[0].registry.get("reference")
        cells, seeds = {}, {}
        for variant in variants:
            seeds[variant] = sorted({r.seed for r in rows if r.variant == variant})
            for bench in benchmarks:
                values = {r.seed: r.top1 for r in rows if r.variant == variant and r.benchmark == bench}
                cell = Cell(values, flagged=(regime, variant, bench) in flagged,
                            stale=(regime, variant, bench) in stale_cells)
                cell.stale_delta = cell.stale or (regime, baseline, bench) in stale_cells
                if values:
                    cell.mean, cell.std = mean_std(list(values.values()))
                    base = {r.seed: r.top1 for r in rows if r.is_baseline and r.benchmark == bench}
                    if variant != baseline and base:
                        paired = set(values) <= set(base)
                        cell.delta = (paired_delta(values, base) if paired
                                      else unpaired_delta(list(values.values()), list(base.values())))
                released = RELEASED.get(reference or "", {}).get(variant, {}).get(bench)
                if released is not None:
                    cell.released = released
                    cell.released_mark = RELEASED_MARKS.get((reference, variant, bench), "")
                cells[(variant, bench)] = cell
        settings = {}
        for bench in benchmarks:
            first = next((r for r in rows if r.benchmark == bench and r.settings is not None), None)
            s = first.settings if first else {}
            settings[bench] = {"probe": (s.get("probe") or {}).get("probe"), "epochs": s.get("epochs"),
                               "batch_size": s.get("batch_size"), "pooling": s.get("pooling"),
                               "data": s.get("data_class", "").rsplit(".", 1)[-1],
                               "keys": sorted({r.key[:8] for r in rows if r.benchmark == bench}),
                               "test_clips": sorted({(r.registry["metrics"][bench].get("num_test_clips")) for r in rows
                                                     if r.benchmark == bench} - {None})}
        tables.append(Table(regime, reference, baseline, variants, benchmarks, cells, seeds,
                            rows[0].registry.get("scale", "?"), settings))
    return tables


def _f(x: Optional[float], digits: int = 2, sign: bool = False) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    return f"{x:+.{digits}f}" if sign else f"{x:.{digits}f}"


def fmt_value(cell: Cell) -> str:
    if cell.mean is None:
        return "—"
    text = _f(cell.mean) + (f" ± {_f(cell.std)}" if cell.std is not None else "")
    return text + (" §" if cell.flagged else "") + (f" {STALE}" if cell.stale else "")


def fmt_delta(cell: Cell) -> str:
    d = cell.delta
    if d is None:
        return "—"
    text = _f(d.mean, sign=True) + (f" [{_f(d.lo, sign=True)}, {_f(d.hi, sign=True)}]" if d.lo is not None else " (n=1)")
    if d.excludes_zero:
        text = f"**{text}**"
    elif d.degenerate:
        text += " (sd 0)"
    return (text + (" ‡u" if d.method != "paired-t" else "") + (" §" if cell.flagged else "")
            + (f" {STALE}" if cell.stale_delta else ""))


def fmt_released(cell: Cell) -> str:
    return "—" if cell.released is None else f"{cell.released:.2f}{cell.released_mark}"


def stale_warning(stale: dict[tuple[str, str], str], sweep: dict[str, Any]) -> str:
    """One paragraph: how many runs are stale, and the command that reruns them."""
    runs = sorted({run_id for run_id, _ in stale})
    return (f"{len(runs)} finished run(s) no longer match what {sweep.get('spec')} expands to at scale "
            f"{sweep.get('scale')} ({_names(runs, 4)}): their cells are marked {STALE} and the runs are listed "
            f"under \"Stale runs\". `python -m jepa_lit.sweep {sweep.get('spec')} --scale {sweep.get('scale')} "
            "--rerun-changed` reruns them with the current config.")


def markdown(tables: list[Table], problems: list[dict[str, Any]], registries: list[dict[str, Any]],
             results: list[Result], root: Path, stale: Optional[dict[tuple[str, str], str]] = None,
             sweep: Optional[dict[str, Any]] = None, extra_notes: Optional[list[str]] = None) -> str:
    stale, sweep = stale or {}, sweep or {}
    status = Counter(reg.get("status") for reg in registries)
    commits = Counter((reg.get("package") or {}).get("git_commit") for reg in registries if reg.get("status") == "done")
    scales = sorted({str(reg.get("scale")) for reg in registries})
    lines = [f"# Sweep report: {root}", "",
             f"Runs: {len(registries)} ({', '.join(f'{n} {s}' for s, n in sorted(status.items()))}); "
             f"scale: {', '.join(scales)}; jepa-lit commit(s) of the finished runs: "
             + ", ".join(f"{(c or 'unknown')[:10]} ({n})" for c, n in commits.items()) + ".", "",
             "Top-1 % of the frozen encoder. Cells: mean ± sample std over seeds. "
             "Δ: variant − baseline **of the same seed**, mean over seeds, with a 95% paired-t interval "
             "(t(0.975, n−1)·sd/√n over the per-seed differences; none from one seed; bold when it excludes 0; "
             "\"sd 0\" when every seed gave the same difference, an interval of width 0 that is no evidence). "
             "Released: the study's single-seed number (OBJECTIVES.md section 6), for reference only."]
    if stale:
        lines += ["", f"**Warning.** {stale_warning(stale, sweep)}"]
    for note in extra_notes or []:
        lines += ["", f"Note: {note}"]
    if any(s != "full" for s in scales):
        lines += ["", f"Scale {', '.join(s for s in scales if s != 'full')}: the released numbers come from the "
                  "study's full-scale runs (ViT-B, 30,000 steps, real data) and are shown for orientation, not "
                  "as a comparison."]
    for table in tables:
        titles = [BENCH_TITLES.get(b, b) for b in table.benchmarks]
        lines += ["", f"## Regime {table.regime}" + (f" (released reference: {table.reference} regime)" if table.reference else ""), "",
                  "| Variant | Seeds | " + " | ".join(titles) + " | " + " | ".join(f"Δ {t} [95% CI]" for t in titles)
                  + " | " + " | ".join(f"Released {t}" for t in titles) + " |",
                  "|---|---|" + "---|" * (3 * len(titles))]
        for variant in table.variants:
            cells = [table.cells[(variant, b)] for b in table.benchmarks]
            lines.append(f"| {NAMES.get(variant, variant)} | {', '.join(map(str, table.seeds[variant]))} | "
                         + " | ".join(fmt_value(c) for c in cells) + " | "
                         + " | ".join("—" if variant == table.baseline else fmt_delta(c) for c in cells) + " | "
                         + " | ".join(fmt_released(c) for c in cells) + " |")
        lines += ["", "Probe settings: " + "; ".join(
            f"{BENCH_TITLES.get(b, b)}: {s['probe']} probe on {s['pooling']} features, {s['epochs']} epochs, batch "
            f"{s['batch_size']}, {'/'.join(map(str, s['test_clips']))} test clips ({s['data']}), comparison key "
            f"{'/'.join(s['keys'])}" for b, s in table.settings.items()) + "."]
        notes = RELEASED_NOTES.get(table.reference or "", [])
        used = {mark for c in table.cells.values() for mark in c.released_mark}
        lines += [f"- {n}" for n in notes if n[0] not in MARKS or n[0] in used]
    if any(c.delta is not None and c.delta.method != "paired-t" for t in tables for c in t.cells.values()):
        lines += ["", "‡u: no same-seed baseline for every seed: difference of the means with a Welch interval "
                  "(tabulated because of --allow-mismatch; not a same-seed comparison)."]
    if problems:
        lines += ["", "## Mismatches tabulated anyway (--allow-mismatch), marked §", ""]
        lines += [f"- {p['kind']}: {p['message']}" for p in problems]
    incomplete = [reg for reg in registries if reg.get("status") != "done"]
    if incomplete:
        lines += ["", "## Runs not in the tables", ""]
        lines += [f"- {reg['run_id']}: {reg.get('status')}" + (f" ({reg['error']})" if reg.get("error") else "")
                  for reg in sorted(incomplete, key=lambda g: g["run_id"])]
    if stale:
        lines += ["", f"## Stale runs (marked {STALE})", ""]
        lines += [f"- {run_id}: {why}" for run_id, why in sorted({(r, w) for (r, _), w in stale.items()})]
    lines += ["", "## Every run", "", "| Run | Benchmark | Top-1 | 95% CI (bootstrap over test clips) | Checkpoint step | Config hash |",
              "|---|---|---|---|---|---|"]
    for r in sorted(results, key=lambda r: (r.regime, r.variant, r.seed, r.benchmark)):
        ci = r.ci95 or [None, None]
        step = r.registry["metrics"][r.benchmark].get("checkpoint_step")
        mark = f" {STALE}" if (r.run_id, r.benchmark) in stale else ""
        lines.append(f"| {r.run_id} | {r.benchmark} | {_f(r.top1)} | {_f(ci[0])}–{_f(ci[1])} | {step} | "
                     f"{r.registry.get('config_hash')}{mark} |")
    return "\n".join(lines) + "\n"


def write_csvs(tables: list[Table], results: list[Result], out: Path,
               stale: Optional[dict[tuple[str, str], str]] = None) -> list[Path]:
    stale = stale or {}
    paths = []
    for table in tables:
        path = out / f"table_{table.regime}.csv"
        header = ["variant", "name", "seeds"]
        for b in table.benchmarks:
            header += [f"{b}_mean", f"{b}_std", f"{b}_n", f"{b}_delta", f"{b}_delta_ci_lo", f"{b}_delta_ci_hi",
                       f"{b}_delta_n", f"{b}_delta_method", f"{b}_released", f"{b}_mismatch", f"{b}_stale"]
        with open(path, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(header)
            for variant in table.variants:
                row = [variant, NAMES.get(variant, variant), " ".join(map(str, table.seeds[variant]))]
                for b in table.benchmarks:
                    c = table.cells[(variant, b)]
                    d = c.delta
                    row += [c.mean, c.std, len(c.values), d.mean if d else None, d.lo if d else None,
                            d.hi if d else None, d.n if d else None, d.method if d else None, c.released, int(c.flagged),
                            int(c.stale)]
                writer.writerow(["" if v is None else (round(v, 4) if isinstance(v, float) else v) for v in row])
        paths.append(path)
    path = out / "runs.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["run_id", "regime", "variant", "seed", "benchmark", "top1", "top1_ci_lo", "top1_ci_hi",
                         "comparison_key", "config_hash", "git_commit", "stale"])
        for r in sorted(results, key=lambda r: (r.regime, r.variant, r.seed, r.benchmark)):
            ci = r.ci95 or ["", ""]
            writer.writerow([r.run_id, r.regime, r.variant, r.seed, r.benchmark, r.top1, ci[0], ci[1], r.key,
                             r.registry.get("config_hash"), (r.registry.get("package") or {}).get("git_commit"),
                             stale.get((r.run_id, r.benchmark), "")])
    return paths + [path]


# ----- plots --------------------------------------------------------------------------------------
def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def heatmap(table: Table, path: Path) -> Path:
    """Mean same-seed delta per variant x benchmark, with the interval in each cell."""
    plt = _pyplot()
    import numpy as np

    variants = [v for v in table.variants if v != table.baseline]
    data = np.full((len(variants), len(table.benchmarks)), np.nan)
    for i, v in enumerate(variants):
        for j, b in enumerate(table.benchmarks):
            d = table.cells[(v, b)].delta
            if d is not None:
                data[i, j] = d.mean
    limit = float(np.nanmax(np.abs(data))) if np.isfinite(data).any() else 1.0
    limit = limit or 1.0
    fig, ax = plt.subplots(figsize=(1.9 * len(table.benchmarks) + 2.5, 0.55 * max(len(variants), 1) + 1.6))
    image = ax.imshow(np.ma.masked_invalid(data), cmap="RdBu", vmin=-limit, vmax=limit, aspect="auto")
    ax.set_facecolor("#dddddd")
    ax.set_xticks(range(len(table.benchmarks)), [BENCH_TITLES.get(b, b) for b in table.benchmarks])
    ax.set_yticks(range(len(variants)), [NAMES.get(v, v) for v in variants])
    for i, v in enumerate(variants):
        for j, b in enumerate(table.benchmarks):
            d = table.cells[(v, b)].delta
            if d is None:
                text = "n/a"
            else:
                text = f"{d.mean:+.1f}" + (f"\n[{d.lo:+.1f}, {d.hi:+.1f}]" if d.lo is not None else "\n(n=1)")
            dark = d is not None and abs(d.mean) > 0.6 * limit
            ax.text(j, i, text, ha="center", va="center", fontsize=7, color="white" if dark else "black",
                    fontweight="bold" if d is not None and d.excludes_zero else "normal")
    fig.colorbar(image, ax=ax, label="Δ top-1 (points)")
    ax.set_title(f"{table.regime}: Δ vs {NAMES.get(table.baseline, table.baseline)} (mean over seeds, 95% paired-t)",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def tradeoff(table: Table, appearance: str, motion: str, path: Path) -> Path:
    """Appearance delta (x) vs motion delta (y), one point per variant, error bars = the 95% intervals."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 5))
    ax.axhline(0, color="grey", lw=0.8)
    ax.axvline(0, color="grey", lw=0.8)
    ax.plot([0], [0], marker="s", color="black")
    ax.annotate(NAMES.get(table.baseline, table.baseline), (0, 0), textcoords="offset points", xytext=(4, -10), fontsize=8)
    for v in table.variants:
        dx, dy = table.cells[(v, appearance)].delta, table.cells[(v, motion)].delta
        if v == table.baseline or dx is None or dy is None:
            continue
        xerr = [[dx.mean - dx.lo], [dx.hi - dx.mean]] if dx.lo is not None else None
        yerr = [[dy.mean - dy.lo], [dy.hi - dy.mean]] if dy.lo is not None else None
        ax.errorbar([dx.mean], [dy.mean], xerr=xerr, yerr=yerr, fmt="o", capsize=3, ms=5)
        ax.annotate(NAMES.get(v, v), (dx.mean, dy.mean), textcoords="offset points", xytext=(5, 5), fontsize=8)
    ax.set_xlabel(f"Δ {BENCH_TITLES.get(appearance, appearance)} top-1 (appearance), points")
    ax.set_ylabel(f"Δ {BENCH_TITLES.get(motion, motion)} top-1 (motion), points")
    ax.set_title(f"{table.regime}: trade-off vs same-seed baseline (95% paired-t intervals)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def tensorboard_hparams(registries: list[dict[str, Any]], results: list[Result], out: Path) -> Path:
    """One HParams entry per run: its identity and config -> top-1 and same-seed delta per benchmark."""
    from torch.utils.tensorboard import SummaryWriter

    shutil.rmtree(out, ignore_errors=True)
    base = {(r.regime, r.seed, r.benchmark): r.top1 for r in results if r.is_baseline}
    mine = defaultdict(dict)
    for r in results:
        mine[r.run_id][f"top1/{r.benchmark}"] = r.top1
        if not r.is_baseline and (r.regime, r.seed, r.benchmark) in base:
            mine[r.run_id][f"delta/{r.benchmark}"] = r.top1 - base[(r.regime, r.seed, r.benchmark)]
    benches = sorted({r.benchmark for r in results})
    for reg in registries:
        metrics = {f"top1/{b}": math.nan for b in benches} | {f"delta/{b}": math.nan for b in benches}
        metrics.update(mine.get(reg["run_id"], {}))
        hparams = {"regime": reg["regime"], "variant": reg["variant"], "seed": int(reg["seed"]),
                   "scale": str(reg.get("scale")), "status": str(reg.get("status")),
                   "config_hash": str(reg.get("config_hash")),
                   "git_commit": str((reg.get("package") or {}).get("git_commit"))[:12]}
        writer = SummaryWriter(log_dir=str(out / reg["run_id"]))
        writer.add_hparams(hparams, metrics, run_name=".")
        writer.close()
    return out


# ----- the whole report ---------------------------------------------------------------------------
def make_report(root: str | Path, out: Optional[str | Path] = None, allow_mismatch: bool = False,
                plots: bool = True, appearance: Optional[str] = None, motion: Optional[list[str]] = None) -> dict[str, Any]:
    """Write the report; returns {"markdown", "files", "tables", "problems", "stale", "warnings", "skipped"}.
    Raises Refused on mismatches unless ``allow_mismatch``, and FileNotFoundError when there is nothing to
    report. Stale runs (``find_stale``) are tabulated, marked, and named in ``warnings``."""
    root = Path(root)
    out = Path(out) if out else root / "report"
    if not root.is_dir():  # a typo in the folder: say what is near
        from jepa_lit.hints import path_hint

        hint = path_hint(str(root))
        raise FileNotFoundError(f"sweep folder not found: {root}" + (f"\n{hint}" if hint else ""))
    registries = load_registries(root)
    if not registries:
        raise FileNotFoundError(f"no run registry (run.json) under {root}; run the sweep first")
    sweep_file = root / "sweep.json"
    sweep = json.loads(sweep_file.read_text()) if sweep_file.is_file() else {}
    settings = sweep.get("report") or {}
    appearance = appearance or settings.get("appearance", "imagenet100")
    motion = motion or settings.get("motion", ["ssv2", "diving48", "synthetic"])
    dup = [k for k, n in Counter(reg["run_id"] for reg in registries).items() if n > 1]
    if dup:
        raise Refused(f"{root}: runs registered twice: {', '.join(dup)} (two sweeps in one folder?)")
    results = collect(registries)
    if not results:
        raise FileNotFoundError(f"{root}: {len(registries)} runs registered, none done with probe results yet")
    problems = find_mismatches(results, registries)
    if problems and not allow_mismatch:
        raise Refused(f"report refused: {len(problems)} mismatch(es); pass --allow-mismatch to tabulate them "
                      "anyway, marked:\n" + "\n".join(f"  - {p['kind']}: {p['message']}" for p in problems))
    stale, notes = find_stale(registries, sweep)
    tables = build_tables(results, problems, sweep, stale)
    out.mkdir(parents=True, exist_ok=True)
    text = markdown(tables, problems, registries, results, root, stale, sweep, notes)
    files = [out / "report.md"]
    files[0].write_text(text)
    files += write_csvs(tables, results, out, stale)
    warnings = ([stale_warning(stale, sweep)] if stale else []) + notes
    skipped = []
    if plots:
        for table in tables:
            if any(v != table.baseline for v in table.variants):
                files.append(heatmap(table, out / f"heatmap_{table.regime}.png"))
            for bench in motion:
                if appearance in table.benchmarks and bench in table.benchmarks:
                    files.append(tradeoff(table, appearance, bench, out / f"tradeoff_{table.regime}_{bench}.png"))
            if appearance not in table.benchmarks:
                skipped.append(f"tradeoff_{table.regime}: no {appearance} (appearance) probe in this regime")
        files.append(tensorboard_hparams(registries, results, out / "tensorboard"))
    return {"markdown": text, "files": files, "tables": tables, "problems": problems, "skipped": skipped,
            "stale": stale, "warnings": warnings}


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jepa_lit.report", description=__doc__.split("\n\n")[0])
    parser.add_argument("root", nargs="?", default="runs/sweep/full", help="the sweep's folder (<output>/<scale>)")
    parser.add_argument("--out", default=None, help="where to write (default ROOT/report)")
    parser.add_argument("--allow-mismatch", action="store_true",
                        help="tabulate results with different probe settings or without a same-seed baseline, marked")
    parser.add_argument("--no-plots", action="store_true", help="tables only (no PNG, no TensorBoard)")
    parser.add_argument("--appearance", default=None, help="x axis of the trade-off plots (default imagenet100)")
    parser.add_argument("--motion", default=None, help="comma-separated y axes of the trade-off plots")
    args = parser.parse_args(argv)
    try:
        report = make_report(args.root, args.out, args.allow_mismatch, not args.no_plots, args.appearance,
                             args.motion.split(",") if args.motion else None)
    except (Refused, FileNotFoundError) as error:
        print(f"report: {error}", file=sys.stderr)
        return 1
    print(report["markdown"])
    for note in report["skipped"]:
        print(f"skipped {note}")
    print("written: " + ", ".join(str(f) for f in report["files"]))
    for warning in report["warnings"]:  # last, where a reader of a long report still sees them
        print(f"report: warning: {warning}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
