"""The end of ``make demo``: one picture and one sentence from a demo run.

    python -m jepa_lit.demo RUN_DIR CHECKPOINT.json RANDOM_INIT.json

reads the run's TensorBoard scalars (the online probes' top-1 over pretraining steps, step 0 being the
encoder as initialised, and the training loss terms) and the two test results of ``jepa-lit test --probe``
(the pretrained encoder and its random-init control on the benchmark's held-out test clips), then

- writes ``RUN_DIR/demo.png``: probe accuracy over steps with the random-init level and its 95% interval as
  a band, the test results at the last step, and the loss terms below (also added to TensorBoard as
  ``demo/probe_accuracy``);
- prints the results table, the PNG's path, and one sentence saying what the run showed, with its numbers.

What the demo measures and why: docs/demo.md.
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

Curve = list[tuple[int, float]]  # (global step, value)

PROBE_PREFIX = "online_probe/"
LOSS_PREFIX = "train/"
# Logged under train/ but not loss terms.
NOT_LOSS_TERMS = ("lr", "wd", "ema", "momentum", "grad", "weight")


def read_scalars(log_dir: str | Path) -> dict[str, Curve]:
    """Every scalar of the TensorBoard event files in ``log_dir`` as {tag: [(step, value), ...]} (sorted by step)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    files = sorted(Path(log_dir).glob("events.out.tfevents.*"))
    if not files:
        raise FileNotFoundError(f"{log_dir}: no TensorBoard event file (events.out.tfevents.*); expected a run "
                                "directory written by jepa-lit fit (runs/<name>/version_N)")
    scalars: dict[str, dict[int, float]] = {}
    for path in files:
        events = EventAccumulator(str(path), size_guidance={"scalars": 0})
        events.Reload()
        for tag in events.Tags()["scalars"]:
            scalars.setdefault(tag, {}).update({e.step: e.value for e in events.Scalars(tag)})
    return {tag: sorted(points.items()) for tag, points in scalars.items()}


def probe_curves(scalars: dict[str, Curve]) -> dict[str, Curve]:
    """{probe name: top-1 curve} from the online probes' ``online_probe/<name>/top1`` scalars."""
    return {tag[len(PROBE_PREFIX):-len("/top1")]: curve for tag, curve in scalars.items()
            if tag.startswith(PROBE_PREFIX) and tag.endswith("/top1")}


def loss_curves(scalars: dict[str, Curve]) -> dict[str, Curve]:
    """{term: curve} of the training loss terms (``train/<term>``)."""
    return {tag[len(LOSS_PREFIX):]: curve for tag, curve in scalars.items()
            if tag.startswith(LOSS_PREFIX) and not any(word in tag[len(LOSS_PREFIX):] for word in NOT_LOSS_TERMS)}


def wilson_interval(top1: float, count: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval (in %) of an accuracy of ``top1`` % measured on ``count`` clips."""
    if count < 1:
        raise ValueError(f"wilson_interval: count={count}; expected at least one clip")
    p = top1 / 100.0
    centre = (p + z * z / (2 * count)) / (1 + z * z / count)
    half = z * math.sqrt(p * (1 - p) / count + z * z / (4 * count * count)) / (1 + z * z / count)
    return 100.0 * max(0.0, centre - half), 100.0 * min(1.0, centre + half)


def test_result(results: dict) -> tuple[float, float, float]:
    """(top-1, CI low, CI high) in % from a probe results JSON."""
    metrics = results["metrics"]
    low, high = metrics.get("top1_ci95") or (metrics["top1"], metrics["top1"])
    return float(metrics["top1"]), float(low), float(high)


@dataclass(frozen=True)
class PairedTest:
    """Pretrained vs random init on the same test clips: the difference of their top-1 with a paired bootstrap
    interval over clips, and exact McNemar on the clips only one of them got right."""

    num_clips: int
    difference: float  # pretrained - random init, top-1 points
    low: float
    high: float
    only_pretrained: int  # clips the pretrained encoder's probe got right and the control's wrong
    only_random: int
    p: float  # exact two-sided McNemar: binomial(only_pretrained; only_pretrained + only_random, 1/2)


def correct_per_clip(results: dict) -> Optional[np.ndarray]:
    """The selected head's per-clip correctness (``metrics.test_correct``, "1"/"0" per test clip in the test
    set's order) as bools; None for results written before it was recorded."""
    text = results.get("metrics", {}).get("test_correct")
    return None if not text else np.frombuffer(text.encode("ascii"), dtype=np.uint8) == ord("1")


def paired_test(pretrained: np.ndarray, random_init: np.ndarray, samples: int = 2000, seed: int = 0) -> PairedTest:
    """Exact McNemar and a percentile paired bootstrap (resampling clips) of pretrained - random init top-1."""
    from scipy.stats import binomtest

    if pretrained.shape != random_init.shape or pretrained.ndim != 1 or not len(pretrained):
        raise ValueError(f"paired_test: per-clip correctness of {pretrained.shape} and {random_init.shape} clips; "
                         "expected the same test clips for both (one flag each)")
    diff = pretrained.astype(np.float64) - random_init.astype(np.float64)
    n = len(diff)
    draws = np.random.default_rng(seed).integers(0, n, size=(samples, n))
    means = 100.0 * diff[draws].mean(axis=1)
    only_p, only_r = int((pretrained & ~random_init).sum()), int((random_init & ~pretrained).sum())
    p = binomtest(only_p, only_p + only_r, 0.5).pvalue if only_p + only_r else 1.0
    low, high = np.percentile(means, [2.5, 97.5])
    return PairedTest(n, 100.0 * float(diff.mean()), float(low), float(high), only_p, only_r, float(p))


def summary_sentence(probe: str, random_init: tuple[float, float, float], pretrained: tuple[float, float, float],
                     num_clips: int, paired: Optional[PairedTest] = None) -> str:
    """One sentence saying what the run showed. Both encoders are scored on the same clips, so the comparison
    is paired (``paired``): pretraining counts as a gain when exact McNemar on the clips only one of them got
    right gives p < 0.05 and the pretrained encoder is ahead. Results without per-clip correctness (written
    before it was recorded) fall back to the pretrained interval against the control's top-1, and say so."""
    (r, r_low, r_high), (p, p_low, p_high) = random_init, pretrained
    numbers = (f"{r:.1f}% (random init, 95% CI {r_low:.1f}-{r_high:.1f}) and {p:.1f}% (pretrained, "
               f"95% CI {p_low:.1f}-{p_high:.1f})")
    where = f"{probe} accuracy on {num_clips} held-out test clips"
    if paired is not None:
        test = (f"paired over the same {paired.num_clips} clips: {paired.difference:+.1f} points, 95% CI "
                f"{paired.low:+.1f} to {paired.high:+.1f} (paired bootstrap); {paired.only_pretrained} clips right "
                f"only with pretraining, {paired.only_random} only at random init, exact McNemar p = {paired.p:.3g}")
        if paired.p < 0.05 and paired.difference > 0:
            return f"Pretraining raised {where} from {r:.1f}% (random init) to {p:.1f}% ({test})."
        if paired.p < 0.05:
            return f"Pretraining lowered {where} from {r:.1f}% (random init) to {p:.1f}% ({test})."
        return f"Pretraining made no detectable difference to {where}: {r:.1f}% (random init) and {p:.1f}% ({test})."
    unpaired = " (unpaired: these results hold no per-clip correctness; rerun the probes for a paired test)"
    if p_low > r:
        return f"Pretraining raised {where} from {r:.1f}% (random init, 95% CI {r_low:.1f}-{r_high:.1f}) to " \
               f"{p:.1f}% (95% CI {p_low:.1f}-{p_high:.1f}){unpaired}."
    if p > r:
        return f"Pretraining did not clearly raise {where}: {numbers}; the pretrained encoder's interval " \
               f"reaches below the random-init level{unpaired}."
    return f"Pretraining did not raise {where}: {numbers}{unpaired}."


def write_demo_plot(path: str | Path, curves: dict[str, Curve], losses: dict[str, Curve], val_clips: int,
                    test: Optional[dict[str, tuple[float, float, float]]] = None, test_probe: str = "") -> Path:
    """The demo's figure: top, each online probe's top-1 over steps, its step-0 value (the random-init
    control) as a dashed line in a band (the 95% Wilson interval on ``val_clips`` clips), and ``test``
    ({"random init" | "pretrained": (top-1, low, high)}) as error bars at the last step; bottom, the loss terms."""
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt

    from jepa_lit.atomic import atomic_write

    if not curves:
        raise ValueError("write_demo_plot: no online probe curve (online_probe/<name>/top1 scalars); the demo "
                         "config's OnlineProbe callbacks write them")
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(8, 7.5), sharex=True, height_ratios=[3, 2])
    last_step = max(step for curve in [*curves.values(), *losses.values()] for step, _ in curve)
    for i, (name, curve) in enumerate(sorted(curves.items())):
        colour = f"C{i}"
        steps, values = zip(*curve)
        top.plot(steps, values, "o-", color=colour, label=f"{name}: pretrained encoder")
        if curve[0][0] == 0:
            low, high = wilson_interval(curve[0][1], val_clips)
            top.axhline(curve[0][1], color=colour, linestyle="--", linewidth=1,
                        label=f"{name}: random init (step 0), 95% interval")
            top.axhspan(low, high, color=colour, alpha=0.12)
    for j, (label, (value, low, high)) in enumerate(sorted((test or {}).items())):
        top.errorbar([last_step * (1.02 + 0.03 * j)], [value], yerr=[[value - low], [high - value]], fmt="s",
                     color="k" if label == "pretrained" else "0.55", capsize=4,
                     label=f"test clips, {test_probe}: {label} {value:.1f}% [{low:.1f}, {high:.1f}]")
    top.axhline(100.0 / 8, color="0.6", linewidth=0.8, linestyle=":", label="chance (8 directions)")
    top.set_ylabel(f"probe top-1 (%), {val_clips} validation clips")
    top.set_title("Direction of the moving disc from frozen features, over pretraining")
    top.legend(fontsize=7, loc="best")
    top.grid(alpha=0.3)
    for name, curve in sorted(losses.items()):
        steps, values = zip(*curve)
        bottom.plot(steps, values, label=name, linewidth=1)
    bottom.set_xlabel("pretraining step")
    bottom.set_ylabel("training loss terms")
    if losses:
        bottom.legend(fontsize=7, loc="best")
    bottom.grid(alpha=0.3)
    figure.tight_layout()
    path = Path(path)
    atomic_write(path, lambda handle: figure.savefig(handle, format="png", dpi=110), kind="binary")
    plt.close(figure)
    return path


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m jepa_lit.demo RUN_DIR CHECKPOINT.json RANDOM_INIT.json``."""
    from jepa_lit.eval.results import compare

    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 3:
        print("usage: python -m jepa_lit.demo RUN_DIR CHECKPOINT.json RANDOM_INIT.json", file=sys.stderr)
        return 2
    run_dir, checkpoint_json, random_json = Path(args[0]), Path(args[1]), Path(args[2])
    pretrained_results, random_results = (json.loads(p.read_text()) for p in (checkpoint_json, random_json))
    scalars = read_scalars(run_dir)
    curves = probe_curves(scalars)
    val_clips = online_probe_clips(run_dir)
    probe = f"{pretrained_results['probe']['probe']} probe ({pretrained_results['features']['pooling']} features)"
    test = {"random init": test_result(random_results), "pretrained": test_result(pretrained_results)}
    png = write_demo_plot(run_dir / "demo.png", curves, loss_curves(scalars), val_clips, test, probe)
    add_figure_to_tensorboard(run_dir, png)
    print(compare([pretrained_results, random_results]))
    print(f"\nfigure: {png}")
    num_test = int(pretrained_results["metrics"].get("num_test_clips") or pretrained_results.get("data", {}).get(
        "num_test", 0) or 40)
    ours, control = correct_per_clip(pretrained_results), correct_per_clip(random_results)
    paired = paired_test(ours, control) if ours is not None and control is not None and len(ours) == len(control) else None
    print(summary_sentence(probe, test["random init"], test["pretrained"], num_test, paired))
    return 0


def online_probe_clips(run_dir: Path) -> int:
    """The number of clips the online probes score (their datamodule's validation split), from the run's config."""
    import yaml

    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    for callback in config.get("trainer", {}).get("callbacks") or []:
        if str(callback.get("class_path", "")).endswith("OnlineProbe"):
            data = callback["init_args"]["datamodule"]["init_args"]
            num_clips, fraction = int(data.get("num_clips", 200)), float(data.get("val_fraction", 0.2))
            return int(round(num_clips * fraction))
    raise ValueError(f"{run_dir / 'config.yaml'}: no OnlineProbe callback under trainer.callbacks; the demo "
                     "plots its curves (experiments/demo.yaml)")


def add_figure_to_tensorboard(run_dir: Path, png: Path) -> None:
    """The PNG as TensorBoard image ``demo/probe_accuracy`` in the run's own log directory."""
    import numpy as np
    from PIL import Image
    from torch.utils.tensorboard import SummaryWriter

    image = np.asarray(Image.open(png).convert("RGB"))
    with SummaryWriter(log_dir=str(run_dir)) as writer:
        writer.add_image("demo/probe_accuracy", image, dataformats="HWC")


if __name__ == "__main__":
    raise SystemExit(main())
