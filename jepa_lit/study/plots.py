"""The report's figures: a delta heatmap and appearance-vs-motion trade-off plots per regime, the cross-regime
plot, and one TensorBoard HParams entry per run. Each figure is sized to its rows / variants, titled with
wrapped text, laid out by matplotlib's constrained layout and saved with every label inside the canvas."""

from __future__ import annotations

import io
import math
import shutil
import textwrap
from collections import defaultdict
from pathlib import Path

from jepa_lit.atomic import write_bytes
from jepa_lit.study.checks import Result
from jepa_lit.study.cross_regime import CrossRegime
from jepa_lit.study.registry import RunRecord
from jepa_lit.study.tables import BENCH_TITLES, NAMES, Table

MARKERS = "osD^vP*Xph"  # with the colour cycle: one look per series, up to 100


def save_figure(fig, path: Path) -> None:
    """The figure as a PNG, written whole or not at all (rendered in memory, then jepa_lit.atomic); the
    canvas is grown or trimmed to hold every artist (bbox_inches="tight"), so nothing is cut at an edge."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format=Path(path).suffix.lstrip(".") or "png", dpi=120, bbox_inches="tight", pad_inches=0.1)
    write_bytes(path, buffer.getvalue(), integrity=True)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _figure(width: float, height: float):
    """A figure and its axes under constrained layout (titles, tick labels, colour bar and legend kept apart)."""
    plt = _pyplot()
    return plt.subplots(figsize=(width, height), layout="constrained")


def _title(fig, text: str, fontsize: float = 10) -> None:
    """The figure's title, wrapped to its width (a character is at most about 0.6 em wide)."""
    chars = int(0.9 * fig.get_figwidth() * 72 / (0.6 * fontsize))
    fig.suptitle("\n".join(textwrap.wrap(text, chars)), fontsize=fontsize)


def _save(fig, path: Path) -> Path:
    save_figure(fig, path)
    _pyplot().close(fig)
    return path


def _name(variant: str) -> str:
    return NAMES.get(variant, variant)


def _bench(benchmark: str) -> str:
    return BENCH_TITLES.get(benchmark, benchmark)


def _err(deltas) -> list[list[float]]:
    """Error bar lengths below and above each mean (0 where there is no interval: one seed)."""
    return [[d.mean - d.lo if d.lo is not None else 0.0 for d in deltas],
            [d.hi - d.mean if d.hi is not None else 0.0 for d in deltas]]


def heatmap(table: Table, path: Path) -> Path:
    """Mean same-seed delta per variant (row) x benchmark (column), with the interval in each cell."""
    import numpy as np

    variants = [v for v in table.variants if v != table.baseline]
    deltas = [[table.cells[(v, b)].delta for b in table.benchmarks] for v in variants]
    data = np.array([[np.nan if d is None else d.mean for d in row] for row in deltas], dtype=float)
    limit = float(np.nanmax(np.abs(data))) if np.isfinite(data).any() else 0.0
    limit = limit or 1.0
    fig, ax = _figure(max(2.0 * len(table.benchmarks) + 3.5, 6.5), 0.5 * len(variants) + 2.2)
    image = ax.imshow(np.ma.masked_invalid(data), cmap="RdBu", vmin=-limit, vmax=limit, aspect="auto")
    ax.set_facecolor("#dddddd")
    ax.set_xticks(range(len(table.benchmarks)), [_bench(b) for b in table.benchmarks], fontsize=9)
    ax.set_yticks(range(len(variants)), [_name(v) for v in variants], fontsize=9)
    ax.set_xlabel("benchmark")
    for i, row in enumerate(deltas):
        for j, d in enumerate(row):
            if d is None:
                text = "n/a"
            else:
                text = f"{d.mean:+.1f}\n" + (f"[{d.lo:+.1f}, {d.hi:+.1f}]" if d.lo is not None else "(n=1)")
            dark = d is not None and abs(d.mean) > 0.6 * limit
            ax.text(j, i, text, ha="center", va="center", fontsize=8, color="white" if dark else "black",
                    fontweight="bold" if d is not None and d.significant else "normal")
    base = _name(table.baseline)
    fig.colorbar(image, ax=ax, label=f"Δ top-1 vs {base} (points)")
    _title(fig, f"{table.regime}: Δ top-1 vs the same seed's {base}, mean over seeds [95% paired-t interval]; "
                f"bold = significant after {table.multiplicity} adjustment")
    return _save(fig, path)


def _label_points(ax, points: list[tuple[str, float, float, str]]) -> None:
    """Each point's name beside it, framed in the point's colour and tied to it by a thin line, at the first of
    24 offsets (eight directions, three distances) where it covers no point and no name placed before, else the
    nearest."""
    from matplotlib.text import Text
    from matplotlib.transforms import Bbox

    ax.figure.canvas.draw()  # the layout settled, so the offsets are measured where they will be drawn
    renderer = ax.figure.canvas.get_renderer()
    near = [(5, 5), (5, -12), (-5, 5), (-5, -12), (0, 9), (0, -16), (12, -3), (-12, -3)]
    offsets = [(scale * dx, scale * dy) for scale in (1, 2.2, 3.5) for dx, dy in near]
    placed = [Bbox.from_bounds(px - 3, py - 3, 6, 6) for px, py in ax.transData.transform([p[1:3] for p in points])]
    for name, x, y, color in points:
        for k, (dx, dy) in enumerate(offsets + offsets[:1]):  # the last: nowhere free, beside it over another name
            label = ax.annotate(name, (x, y), xytext=(dx, dy), textcoords="offset points", fontsize=8, zorder=5,
                                ha="left" if dx > 0 else "right" if dx < 0 else "center",
                                bbox=dict(boxstyle="square,pad=0.2", fc="white", ec=color, lw=0.8, alpha=0.8),
                                arrowprops=dict(arrowstyle="-", color=color, lw=0.6))
            label.update_positions(renderer)
            box = Text.get_window_extent(label, renderer).padded(3)  # the name alone (not its line), and a gap
            if k == len(offsets) or not any(box.overlaps(other) for other in placed):
                break
            label.remove()
        placed.append(box)


def tradeoff(table: Table, appearance: str, motion: str, path: Path) -> Path:
    """Appearance delta (x) vs motion delta (y), one point per variant, error bars = the 95% intervals."""
    fig, ax = _figure(8.0, 6.5)
    ax.axhline(0, color="grey", lw=0.8)
    ax.axvline(0, color="grey", lw=0.8)
    ax.plot([0], [0], marker="s", color="black", ls="none")
    points = [(_name(table.baseline), 0.0, 0.0, "black")]
    shown = [v for v in table.variants if v != table.baseline and table.cells[(v, appearance)].delta is not None
             and table.cells[(v, motion)].delta is not None]
    for i, v in enumerate(shown):
        dx, dy = table.cells[(v, appearance)].delta, table.cells[(v, motion)].delta
        ax.errorbar([dx.mean], [dy.mean], xerr=_err([dx]), yerr=_err([dy]), fmt=MARKERS[i // 10 % len(MARKERS)],
                    color=f"C{i % 10}", capsize=3, ms=5)
        points.append((_name(v), dx.mean, dy.mean, f"C{i % 10}"))
    ax.margins(0.12)
    base = _name(table.baseline)
    ax.set_xlabel(f"Δ {_bench(appearance)} top-1 vs {base} (appearance), points")
    ax.set_ylabel(f"Δ {_bench(motion)} top-1 vs {base} (motion), points")
    _title(fig, f"{table.regime}: appearance ({_bench(appearance)}) vs motion ({_bench(motion)}), Δ vs the same "
                "seed's baseline (mean over seeds, 95% paired-t intervals)")
    _label_points(ax, points)
    return _save(fig, path)


def cross_regime_plot(cross: CrossRegime, path: Path) -> Path:
    """A - B per variant (x, one tick each) and benchmark (one marker and colour each, side by side within
    the variant's slot, in the legend), error bars = 95% intervals, a line at 0."""
    slot = max(0.5, 0.2 * len(cross.benchmarks))  # inches per variant
    fig, ax = _figure(max(slot * len(cross.variants) + 3.0, 6.5), 5.5)
    ax.axhline(0, color="black", lw=0.8)
    width = 0.8 / max(len(cross.benchmarks), 1)
    for j, bench in enumerate(cross.benchmarks):
        shown = [(i, cross.deltas[(v, bench)]) for i, v in enumerate(cross.variants)
                 if cross.deltas[(v, bench)] is not None]
        xs = [i - 0.4 + width * (j + 0.5) for i, _ in shown]
        ax.errorbar(xs, [d.mean for _, d in shown], yerr=_err([d for _, d in shown]), fmt=MARKERS[j % len(MARKERS)],
                    color=f"C{j % 10}", ls="none", capsize=3, ms=5, label=_bench(bench))
    ax.set_xticks(range(len(cross.variants)), [_name(v) for v in cross.variants], rotation=40, ha="right",
                  rotation_mode="anchor", fontsize=9)
    ax.set_xticks([i + 0.5 for i in range(len(cross.variants) - 1)], minor=True)
    ax.tick_params(axis="x", which="minor", length=0)
    ax.grid(axis="x", which="minor", color="0.85")
    ax.set_xlim(-0.5, len(cross.variants) - 0.5)
    ax.set_xlabel("variant (run in both regimes)")
    ax.set_ylabel(f"{cross.a} − {cross.b} top-1 (points), 95% CI")
    fig.legend(title="benchmark", loc="outside lower center", ncols=len(cross.benchmarks), fontsize=9)
    _title(fig, f"{cross.a} − {cross.b} per variant and benchmark, paired by seed (mean over seeds, "
                "95% paired-t interval)")
    return _save(fig, path)


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

