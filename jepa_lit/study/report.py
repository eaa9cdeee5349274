"""Tables and plots of a sweep, in the study's layout, with same-seed comparisons and intervals.

    python -m jepa_lit.study report runs/sweep/full [--out DIR] [--allow-mismatch] [--no-plots]
    make report [SCALE=smoke]

Reads the run registry (``<root>/**/run.json``, registry.py's RunRecord, written by the sweep) and each
run's probe results JSON, and writes to ``<root>/report/`` (or ``--out``):

- ``report.md``: per regime, rows = variants, columns = benchmarks: top-1 mean +- std over seeds, then
  the delta against the baseline **of the same seed**, averaged over seeds, with a 95% paired-t
  interval and its p, raw and adjusted over the table (Holm by default, ``--multiplicity bh``; bold = significant
  after adjustment; stats.py; no interval from one seed), then the released number (released.json) as a
  reference column; then the probe settings of each benchmark and every run's own result with its
  bootstrap interval over test clips (render.py). The spec's ``report.header``, when set, is a blockquote
  under the title.
  Each table has a Random init row (the untrained control). Under a regime's table, for each variant
  ``V`` beside ``V_released``: released vs corrected objective (corrections.py); after the tables, the
  cross-regime table ``A - B`` per variant, benchmark and seed with a computed answer (cross_regime.py).
- ``table_<regime>.csv`` (the same table, one number a column) and ``runs.csv`` (one row per run x benchmark);
  ``corrections_<regime>.csv``, ``cross_regime.csv`` and ``cross_regime_<A>_<B>.png``.
- ``heatmap_<regime>.png`` and ``tradeoff_<regime>_<motion>.png``; ``tensorboard/``: one HParams entry
  per run (plots.py).

It refuses what the study's release mixed (checks.py): results of one benchmark whose probe settings
differ, a variant result without a baseline result of the same seed and regime, and seeds of one
variant pretrained with different configs. ``--allow-mismatch`` tabulates them anyway, marked, and
lists each mismatch under the table; deltas without a same-seed baseline are then unpaired (difference
of the means, Welch interval). Runs that no longer match the sweep's spec are tabulated but marked ※,
listed, and warned about on stderr.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path
from typing import Any, Optional

from jepa_lit.atomic import check_writable, write_text
from jepa_lit.study.checks import Refused, collect, find_mismatches, find_stale
from jepa_lit.study.corrections import build_corrections
from jepa_lit.study.cross_regime import build_cross_regime
from jepa_lit.study.plots import cross_regime_plot, heatmap, tensorboard_hparams, tradeoff
from jepa_lit.study.registry import SWEEP_ADVICE, RecordError, load_records, read_json
from jepa_lit.study.render import markdown, stale_warning, write_csvs
from jepa_lit.study.spec import ReportSpec
from jepa_lit.study.tables import build_tables


def make_report(root: str | Path, out: Optional[str | Path] = None, allow_mismatch: bool = False,
                plots: bool = True, appearance: Optional[str] = None, motion: Optional[list[str]] = None,
                multiplicity: Optional[str] = None) -> dict[str, Any]:
    """Write the report; returns {"markdown", "files", "tables", "problems", "stale", "warnings", "skipped"}.
    Raises Refused on mismatches unless ``allow_mismatch``, and FileNotFoundError when there is nothing to
    report. Stale runs (``find_stale``) are tabulated, marked, and named in ``warnings``."""
    root = Path(root)
    out = Path(out) if out else root / "report"
    if not root.is_dir():  # a typo in the folder: say what is near
        from jepa_lit.hints import path_hint

        hint = path_hint(str(root))
        raise FileNotFoundError(f"sweep folder not found: {root}" + (f"\n{hint}" if hint else ""))
    check_writable(out / "report.md", "report --out")  # hostile (issue 24, 7): before the work, naming it
    records = load_records(root)
    if not records:
        raise FileNotFoundError(f"no run registry (run.json) under {root}; run the sweep first")
    sweep_file = root / "sweep.json"
    sweep = read_json(sweep_file, SWEEP_ADVICE, RecordError) if sweep_file.is_file() else {}
    if not isinstance(sweep, dict):
        raise RecordError(f"{sweep_file}: expected a JSON object, got {type(sweep).__name__}; {SWEEP_ADVICE}")
    settings = sweep.get("report") or {}
    defaults = ReportSpec()  # a sweep.json without report settings: the spec's defaults
    appearance = appearance or settings.get("appearance", defaults.appearance)
    motion = motion or settings.get("motion", defaults.motion)
    multiplicity = multiplicity or settings.get("multiplicity", defaults.multiplicity)
    dup = [k for k, n in Counter(r.run_id for r in records).items() if n > 1]
    if dup:
        raise Refused(f"{root}: runs registered twice: {', '.join(dup)} (two sweeps in one folder?)")
    missing: list[str] = []
    results = collect(records, missing)
    if not results:
        raise FileNotFoundError(f"{root}: {len(records)} runs registered, none done with probe results yet"
                                + "".join(f"\n  {line}" for line in missing))
    problems = find_mismatches(results, records)
    if problems and not allow_mismatch:
        raise Refused(f"report refused: {len(problems)} mismatch(es); pass --allow-mismatch to tabulate them "
                      "anyway, marked:\n" + "\n".join(f"  - {p['kind']}: {p['message']}" for p in problems))
    stale, notes = find_stale(records, sweep)
    tables = build_tables(results, problems, sweep, stale, multiplicity)
    corrections = {table.regime: build_corrections(table) for table in tables}
    cross = build_cross_regime(tables, *settings.get("cross_regime", ["mixed", "ucf101"]), multiplicity=multiplicity)
    out.mkdir(parents=True, exist_ok=True)
    text = markdown(tables, problems, records, results, root, stale, sweep, notes, corrections, cross)
    files = [out / "report.md"]
    write_text(files[0], text, integrity=True)
    files += write_csvs(tables, results, out, stale, corrections, cross)
    warnings = ([stale_warning(stale, sweep)] if stale else []) + notes + missing
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
        if cross is not None and cross.benchmarks:
            files.append(cross_regime_plot(cross, out / f"cross_regime_{cross.a}_{cross.b}.png"))
        files.append(tensorboard_hparams(records, results, out / "tensorboard"))
    return {"markdown": text, "files": files, "tables": tables, "problems": problems, "skipped": skipped,
            "stale": stale, "warnings": warnings, "corrections": corrections, "cross_regime": cross}


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jepa_lit.study report", description=__doc__.split("\n\n")[0])
    parser.add_argument("root", nargs="?", default="runs/sweep/full", help="the sweep's folder (<output>/<scale>)")
    parser.add_argument("--out", default=None, help="where to write (default ROOT/report)")
    parser.add_argument("--allow-mismatch", action="store_true",
                        help="tabulate results with different probe settings or without a same-seed baseline, marked")
    parser.add_argument("--no-plots", action="store_true", help="tables only (no PNG, no TensorBoard)")
    parser.add_argument("--appearance", default=None, help="x axis of the trade-off plots (default imagenet100)")
    parser.add_argument("--motion", default=None, help="comma-separated y axes of the trade-off plots")
    parser.add_argument("--multiplicity", choices=["holm", "bh"], default=None,
                        help="adjustment over each table's tests: holm (family-wise, default) or bh (false discovery rate)")
    args = parser.parse_args(argv)
    try:
        report = make_report(args.root, args.out, args.allow_mismatch, not args.no_plots, args.appearance,
                             args.motion.split(",") if args.motion else None, args.multiplicity)
    except (Refused, FileNotFoundError) as error:  # nothing (yet) to tabulate side by side: not bad input
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
