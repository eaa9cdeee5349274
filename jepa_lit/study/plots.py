"""The report's figures: a delta heatmap and appearance-vs-motion trade-off plots per regime, and one
TensorBoard HParams entry per run."""

from __future__ import annotations

import io
import math
import shutil
from collections import defaultdict
from pathlib import Path

from jepa_lit.atomic import write_bytes
from jepa_lit.study.checks import Result
from jepa_lit.study.cross_regime import CrossRegime
from jepa_lit.study.registry import RunRecord
from jepa_lit.study.tables import BENCH_TITLES, NAMES, Table


def save_figure(fig, path: Path) -> None:
    """The figure as a PNG, written whole or not at all (rendered in memory, then jepa_lit.atomic)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format=Path(path).suffix.lstrip(".") or "png", dpi=120)
    write_bytes(path, buffer.getvalue(), integrity=True)


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
                    fontweight="bold" if d is not None and d.significant else "normal")
    fig.colorbar(image, ax=ax, label="Δ top-1 (points)")
    ax.set_title(f"{table.regime}: Δ vs {NAMES.get(table.baseline, table.baseline)} (mean over seeds, 95% paired-t)",
                 fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)
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
    save_figure(fig, path)
    plt.close(fig)
    return path


def cross_regime_plot(cross: CrossRegime, path: Path) -> Path:
    """A - B per benchmark (x) and variant (one marker each, side by side), error bars = 95% intervals."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(1.6 * len(cross.benchmarks) + 3.5, 4.5))
    ax.axhline(0, color="grey", lw=0.8)
    width = 0.8 / max(len(cross.variants), 1)
    for i, variant in enumerate(cross.variants):
        xs, ys, lo, hi = [], [], [], []
        for j, bench in enumerate(cross.benchmarks):
            d = cross.deltas[(variant, bench)]
            if d is None:
                continue
            xs.append(j - 0.4 + width * (i + 0.5))
            ys.append(d.mean)
            lo.append(d.mean - d.lo if d.lo is not None else 0.0)
            hi.append(d.hi - d.mean if d.hi is not None else 0.0)
        ax.errorbar(xs, ys, yerr=[lo, hi], fmt="o", capsize=3, ms=5, label=NAMES.get(variant, variant))
    ax.set_xticks(range(len(cross.benchmarks)), [BENCH_TITLES.get(b, b) for b in cross.benchmarks])
    ax.set_ylabel(f"{cross.a} − {cross.b} top-1 (points)")
    ax.set_title(f"{cross.a} − {cross.b}, same variant and seed (mean, 95% paired-t interval)", fontsize=9)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)
    return path


def tensorboard_hparams(records: list[RunRecord], results: list[Result], out: Path) -> Path:
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
    for record in records:
        metrics = {f"top1/{b}": math.nan for b in benches} | {f"delta/{b}": math.nan for b in benches}
        metrics.update(mine.get(record.run_id, {}))
        hparams = {"regime": record.regime, "variant": record.variant, "seed": record.seed,
                   "scale": str(record.scale), "status": str(record.status),
                   "config_hash": str(record.config_hash), "git_commit": str(record.package.git_commit)[:12]}
        writer = SummaryWriter(log_dir=str(out / record.run_id))
        writer.add_hparams(hparams, metrics, run_name=".")
        writer.close()
    return out

