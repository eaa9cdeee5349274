"""The report as text: report.md (Markdown tables, notes, every run) and the CSVs."""

from __future__ import annotations

import csv
import math
from collections import Counter
from pathlib import Path
from typing import Any, Optional

from jepa_lit.atomic import text_file
from jepa_lit.study.checks import Result, names
from jepa_lit.study.corrections import Correction, verdict
from jepa_lit.study.cross_regime import CrossRegime, answer
from jepa_lit.study.registry import RunRecord
from jepa_lit.study.released import MARKS, released
from jepa_lit.study.stats import RULES, Delta
from jepa_lit.study.tables import BENCH_TITLES, NAMES, Cell, Table

STALE = "※"  # a cell with a run whose config is no longer what the spec expands to


def _f(x: Optional[float], digits: int = 2, sign: bool = False) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    return f"{x:+.{digits}f}" if sign else f"{x:.{digits}f}"


def fmt_value(cell: Cell) -> str:
    if cell.mean is None:
        return "—"
    text = _f(cell.mean) + (f" ± {_f(cell.std)}" if cell.std is not None else "")
    return text + (" §" if cell.flagged else "") + (f" {STALE}" if cell.stale else "")


def fmt_p(p: Optional[float]) -> str:
    return "—" if p is None else (f"{p:.3f}" if p >= 0.001 else "<0.001")


def fmt_interval(d: Optional[Delta]) -> str:
    """A delta with its (unadjusted) 95% interval, raw and adjusted p; bold when significant after the family's
    adjustment, "(sd 0)" when every seed gave the same difference within the metric's resolution."""
    if d is None:
        return "—"
    text = _f(d.mean, sign=True) + (f" [{_f(d.lo, sign=True)}, {_f(d.hi, sign=True)}]" if d.lo is not None else " (n=1)")
    if d.degenerate:
        return text + " (sd 0)"
    if d.p is not None:
        text += f" p {fmt_p(d.p)}" + (f", adj {fmt_p(d.p_adjusted)}" if d.p_adjusted is not None else "")
    return f"**{text}**" if d.significant else text


def chance_sentence(rule: str, m: int) -> str:
    """How many bold cells chance alone would give, in plain words."""
    expected = f"with {m} test(s) at 5%, about 0.05 × {m} = {0.05 * m:.1f} cell(s) would be bold by chance alone without adjustment"
    if rule == "holm":
        return (f"{expected}; with Holm's adjustment the chance that any cell of a family is bold when no variant has "
                "a real effect is at most 5%.")
    return (f"{expected}; with the Benjamini-Hochberg adjustment at most 5% of a family's bold cells are expected "
            "to be false discoveries (some bold cell may still be chance).")


def fmt_delta(cell: Cell) -> str:
    d = cell.delta
    if d is None:
        return "—"
    text = fmt_interval(d)
    return (text + (" ‡u" if d.method != "paired-t" else "") + (" §" if cell.flagged else "")
            + (f" {STALE}" if cell.stale_delta else ""))


def fmt_released(cell: Cell) -> str:
    if cell.released is None:
        return "—" if cell.paper_baseline is None else f"— (paper's baseline, seed 42: {cell.paper_baseline:.2f})"
    paper = f" (paper Δ {cell.paper_delta:+.2f})" if cell.paper_delta is not None else ""
    if cell.paper_baseline is not None:
        paper = f" (paper's baseline, seed 42: {cell.paper_baseline:.2f})"
    return f"{cell.released:.2f}{cell.released_mark}{paper}"


def stale_warning(stale: dict[tuple[str, str], str], sweep: dict[str, Any]) -> str:
    """One paragraph: how many runs are stale, and the command that reruns them."""
    runs = sorted({run_id for run_id, _ in stale})
    return (f"{len(runs)} finished run(s) no longer match what {sweep.get('spec')} expands to at scale "
            f"{sweep.get('scale')} ({names(runs, 4)}): their cells are marked {STALE} and the runs are listed "
            f"under \"Stale runs\". `python -m jepa_lit.study sweep {sweep.get('spec')} --scale {sweep.get('scale')} "
            "--rerun-changed` reruns them with the current config.")


def corrections_markdown(corrections: list[Correction]) -> list[str]:
    """The released-vs-corrected section of one regime (empty without such pairs)."""
    if not corrections:
        return []
    regime = corrections[0].regime
    lines = ["", f"### Released vs corrected objectives ({regime})", "",
             "Released: the objective as the study's release computed it; corrected: as intended. "
             "Cost: corrected − released, paired by seed, 95% paired-t interval, raw and adjusted p "
             f"({len([c for c in corrections if c.difference is not None and c.difference.p is not None])} "
             "tests adjusted as one family, bold when significant). Gains: each against the baseline of the "
             "same seed, as in the table above (adjusted in the table's family). The verdict reads all three.", "",
             "| Objective | Benchmark | Released | Corrected | Corrected − released [95% CI] | "
             "Gain as released | Gain corrected | What the intervals say |", "|---|---|---|---|---|---|---|---|"]
    for c in corrections:
        lines.append(f"| {NAMES.get(c.variant, c.variant)} | {BENCH_TITLES.get(c.benchmark, c.benchmark)} | "
                     f"{fmt_value(c.released)} | {fmt_value(c.corrected)} | {fmt_interval(c.difference)} | "
                     f"{fmt_interval(c.gain_released)} | {fmt_interval(c.gain_corrected)} | {verdict(c)} |")
    return lines


def cross_regime_markdown(cross: Optional[CrossRegime]) -> list[str]:
    """The cross-regime table and the answer its intervals give (empty without both regimes)."""
    if cross is None:
        return []
    titles = [BENCH_TITLES.get(b, b) for b in cross.benchmarks]
    lines = ["", f"## Cross-regime: {cross.a} − {cross.b}", ""]
    if cross.question:
        lines += [f"The study's question: {cross.question}", ""]
    lines += [f"Each cell: {cross.a} − {cross.b} top-1 for the same variant and seed, mean over the shared seeds "
              f"with its 95% paired-t interval, raw and adjusted p (the table's {cross.family_size} tests are one "
              f"family, {cross.multiplicity}; bold when significant after adjustment). Random init: the same untrained encoder "
              "in both regimes, so its difference shows what the probes alone vary (0 when they are deterministic).",
              "", "| Variant | " + " | ".join(titles) + " |", "|---|" + "---|" * len(titles)]
    for variant in cross.variants:
        lines.append(f"| {NAMES.get(variant, variant)} | "
                     + " | ".join(fmt_interval(cross.deltas[(variant, b)]) for b in cross.benchmarks) + " |")
    lines += ["", f"**Answer.** {answer(cross)}"]
    return lines


def markdown(tables: list[Table], problems: list[dict[str, Any]], records: list[RunRecord],
             results: list[Result], root: Path, stale: Optional[dict[tuple[str, str], str]] = None,
             sweep: Optional[dict[str, Any]] = None, extra_notes: Optional[list[str]] = None,
             corrections: Optional[dict[str, list[Correction]]] = None,
             cross: Optional[CrossRegime] = None) -> str:
    stale, sweep = stale or {}, sweep or {}
    rule = tables[0].multiplicity if tables else "holm"
    tests = sum(t.family_size for t in tables)
    status = Counter(r.status for r in records)
    commits = Counter(r.package.git_commit for r in records if r.status == "done")
    scales = sorted({str(r.scale) for r in records})
    header = str((sweep.get("report") or {}).get("header") or "").strip()  # the spec's report.header
    quote = [f"> {line}".rstrip() for line in header.splitlines()] + [""] if header else []
    lines = [f"# Sweep report: {root}", "", *quote,
             f"Runs: {len(records)} ({', '.join(f'{n} {s}' for s, n in sorted(status.items()))}); "
             f"scale: {', '.join(scales)}; jepa-lit commit(s) of the finished runs: "
             + ", ".join(f"{(c or 'unknown')[:10]} ({n})" for c, n in commits.items()) + ".", "",
             "Top-1 % of the frozen encoder. Cells: mean ± sample std over seeds. "
             "Δ: variant − baseline **of the same seed**, mean over seeds, with a 95% paired-t interval "
             "(t(0.975, n−1)·sd/√n over the per-seed differences; none from one seed) and the two-sided p of "
             "the same paired t test (df = n−1), raw and adjusted; \"sd 0\" when every seed gave the same "
             "difference within half a test clip (100 / test clips / 2 points), an interval of width 0 that is "
             "no evidence and no test. "
             f"Multiplicity: {RULES[rule]}; each regime's table is one family (every Δ cell with a p-value, all "
             "benchmarks together), the cross-regime table and each released-vs-corrected section are families "
             "of their own. **Bold** = significant at 5% after the adjustment; the intervals shown are "
             "unadjusted, so an interval that excludes 0 need not be bold. In plain words: "
             + chance_sentence(rule, tests) + " "
             "Released: the study's single-seed number (docs/reproducing.md), for reference only; "
             "\"paper Δ\": that number minus the baseline the paper's deltas are against (mixed: the seed-42 "
             "reference baseline, while the Released baseline row and every released variant are seed 239), the "
             "delta the paper printed (e.g. FWM-HW-LD +5.92 IN-100, +3.21 SSv2). "
             "Random init: the regime baseline's architecture, never trained, probed with weights drawn from the "
             "run's seed; its Δ is minus what the baseline's pretraining adds over an untrained encoder."]
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
        lines += ["", f"Family: {table.family_size} test(s) in this table, {table.multiplicity}-adjusted; "
                  + chance_sentence(table.multiplicity, table.family_size)]
        lines += ["", "Probe settings: " + "; ".join(
            f"{BENCH_TITLES.get(b, b)}: {s['probe']} probe on {s['pooling']} features, {s['epochs']} epochs, batch "
            f"{s['batch_size']}, {'/'.join(map(str, s['test_clips']))} test clips ({s['data']}), comparison key "
            f"{'/'.join(s['keys'])}" for b, s in table.settings.items()) + "."]
        notes = released().notes.get(table.reference or "", [])
        used = {mark for c in table.cells.values() for mark in c.released_mark}
        lines += [f"- {n}" for n in notes if n[0] not in MARKS or n[0] in used]
        lines += corrections_markdown((corrections or {}).get(table.regime, []))
    lines += cross_regime_markdown(cross)
    if any(c.delta is not None and c.delta.method != "paired-t" for t in tables for c in t.cells.values()):
        lines += ["", "‡u: no same-seed baseline for every seed: difference of the means with a Welch interval "
                  "(tabulated because of --allow-mismatch; not a same-seed comparison)."]
    if problems:
        lines += ["", "## Mismatches tabulated anyway (--allow-mismatch), marked §", ""]
        lines += [f"- {p['kind']}: {p['message']}" for p in problems]
    incomplete = [r for r in records if r.status != "done"]
    if incomplete:
        lines += ["", "## Runs not in the tables", ""]
        lines += [f"- {r.run_id}: {r.status}" + (f" ({r.error})" if r.error else "")
                  for r in sorted(incomplete, key=lambda g: g.run_id)]
    if stale:
        lines += ["", f"## Stale runs (marked {STALE})", ""]
        lines += [f"- {run_id}: {why}" for run_id, why in sorted({(r, w) for (r, _), w in stale.items()})]
    lines += ["", "## Every run", "", "| Run | Benchmark | Top-1 | 95% CI (bootstrap over test clips) | Checkpoint step | Config hash |",
              "|---|---|---|---|---|---|"]
    for r in sorted(results, key=lambda r: (r.regime, r.variant, r.seed, r.benchmark)):
        ci = r.ci95 or [None, None]
        step = r.record.metrics[r.benchmark].checkpoint_step
        mark = f" {STALE}" if (r.run_id, r.benchmark) in stale else ""
        lines.append(f"| {r.run_id} | {r.benchmark} | {_f(r.top1)} | {_f(ci[0])}–{_f(ci[1])} | {step} | "
                     f"{r.record.config_hash}{mark} |")
    return "\n".join(lines) + "\n"


def _delta_header(name: str) -> list[str]:
    return [name, f"{name}_ci_lo", f"{name}_ci_hi", f"{name}_n", f"{name}_p", f"{name}_p_adjusted",
            f"{name}_significant"]


def _delta_row(d: Optional[Delta]) -> list[Any]:
    return [d.mean, d.lo, d.hi, d.n, d.p, d.p_adjusted, int(d.significant)] if d is not None else [None] * 7


def _csv_row(row: list[Any]) -> list[Any]:
    return ["" if v is None else (round(v, 4) if isinstance(v, float) else v) for v in row]


def write_csvs(tables: list[Table], results: list[Result], out: Path,
               stale: Optional[dict[tuple[str, str], str]] = None,
               corrections: Optional[dict[str, list[Correction]]] = None,
               cross: Optional[CrossRegime] = None) -> list[Path]:
    stale = stale or {}
    paths = []
    for table in tables:
        path = out / f"table_{table.regime}.csv"
        header = ["variant", "name", "seeds"]
        for b in table.benchmarks:
            header += [f"{b}_mean", f"{b}_std", f"{b}_n", f"{b}_delta", f"{b}_delta_ci_lo", f"{b}_delta_ci_hi",
                       f"{b}_delta_n", f"{b}_delta_method", f"{b}_delta_p", f"{b}_delta_p_adjusted",
                       f"{b}_delta_significant", f"{b}_released", f"{b}_paper_delta", f"{b}_mismatch", f"{b}_stale"]
        with text_file(path, integrity=True) as handle:  # written whole or not at all, with its record
            writer = csv.writer(handle)
            writer.writerow(header)
            for variant in table.variants:
                row = [variant, NAMES.get(variant, variant), " ".join(map(str, table.seeds[variant]))]
                for b in table.benchmarks:
                    c = table.cells[(variant, b)]
                    d = c.delta
                    row += [c.mean, c.std, len(c.values), d.mean if d else None, d.lo if d else None,
                            d.hi if d else None, d.n if d else None, d.method if d else None, d.p if d else None,
                            d.p_adjusted if d else None, int(d.significant) if d else None, c.released,
                            c.paper_delta, int(c.flagged), int(c.stale)]
                writer.writerow(["" if v is None else (round(v, 4) if isinstance(v, float) else v) for v in row])
        paths.append(path)
    for regime, found in (corrections or {}).items():
        if found:
            path = out / f"corrections_{regime}.csv"
            with text_file(path, integrity=True) as handle:  # written whole or not at all, with its record
                writer = csv.writer(handle)
                writer.writerow(["variant", "released_variant", "benchmark", "released_mean", "corrected_mean",
                                 *_delta_header("cost"), *_delta_header("gain_released"),
                                 *_delta_header("gain_corrected"), "verdict"])
                for c in found:
                    writer.writerow(_csv_row([c.variant, c.released_variant, c.benchmark, c.released.mean,
                                              c.corrected.mean, *_delta_row(c.difference), *_delta_row(c.gain_released),
                                              *_delta_row(c.gain_corrected), verdict(c)]))
            paths.append(path)
    if cross is not None:
        path = out / "cross_regime.csv"
        with text_file(path, integrity=True) as handle:  # written whole or not at all, with its record
            writer = csv.writer(handle)
            writer.writerow(["regime_a", "regime_b", "variant", "benchmark", *_delta_header("a_minus_b")])
            for variant in cross.variants:
                for bench in cross.benchmarks:
                    writer.writerow(_csv_row([cross.a, cross.b, variant, bench,
                                              *_delta_row(cross.deltas[(variant, bench)])]))
        paths.append(path)
    path = out / "runs.csv"
    with text_file(path, integrity=True) as handle:  # written whole or not at all, with its record
        writer = csv.writer(handle)
        writer.writerow(["run_id", "regime", "variant", "seed", "benchmark", "top1", "top1_ci_lo", "top1_ci_hi",
                         "comparison_key", "config_hash", "git_commit", "stale"])
        for r in sorted(results, key=lambda r: (r.regime, r.variant, r.seed, r.benchmark)):
            ci = r.ci95 or ["", ""]
            writer.writerow([r.run_id, r.regime, r.variant, r.seed, r.benchmark, r.top1, ci[0], ci[1], r.key,
                             r.record.config_hash, r.record.package.git_commit,
                             stale.get((r.run_id, r.benchmark), "")])
    return paths + [path]

