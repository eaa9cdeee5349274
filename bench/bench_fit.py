"""End-to-end `jepa-lit fit` throughput on the fixture datasets, next to the bench step's time for the same
model and batch without data, so that a loader (or anything else in the fit) that holds the step back shows
up as their ratio.

The fit is the study's baseline config of each regime (experiments/<regime>_baseline.yaml), run through the
CLI (jepa_lit.cli.run_cli, what `jepa-lit fit` runs) on a fixture tree (jepa_lit.data.fixtures: tiny
official-layout datasets with real encoded videos, 64x48 px), with the data workers as the configs set them
and only these changes: the model of bench_step.py's tiny112 preset (ViT-tiny, 16 frames x 112 px, the
study's predictor), batch 2, the dense context loss from the first step (as in the bench step), one CPU
process with ``--threads`` threads, ``--precision``, no progress bar. What still differs from the bench step:
the fit draws new masks every step (the bench step reuses one mask step's), and it runs the configs' callbacks.
The fixture epochs are made longer than the run, so that no epoch boundary (the loader's restart) falls in
the timed steps: the UCF-101 regime reads a list file that repeats the fixture's training videos, the mixed
regime draws ``samples_per_epoch`` clips.

Timed per step after ``--warmup`` steps, from Lightning's batch hooks: the step interval (batch start to
the next batch start: what the fit takes per step), the compute (batch start to batch end: forward,
backward, optimizer, EMA, callbacks) and the data wait (batch end to the next batch start: the loader).
The bench step (bench_step.train_step, tiny112, one fixed mask step) is timed in the same process after
the fits.

    python bench/bench_fit.py                              # UCF-101 and mixed regimes, fp32, 2 threads
    python bench/bench_fit.py --regimes mixed --steps 10
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import lightning as L
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench_step.py, next to this file
import bench_step  # noqa: E402

from jepa_lit.cli import run_cli  # noqa: E402
from jepa_lit.data.datasets import DATASETS  # noqa: E402

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"
PRESET = "tiny112"
REGIMES = {"ucf101": ("ucf101",), "mixed": ("ucf101", "ssv2", "imagenet100")}  # regime -> datasets it reads
PRECISIONS = bench_step.LIGHTNING_PRECISIONS


class FitTimer(L.Callback):
    """perf_counter at every training batch's start and end (the callback is named in the fit's config)."""

    def __init__(self):
        self.starts: list[float] = []
        self.ends: list[float] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.starts.append(time.perf_counter())

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.ends.append(time.perf_counter())


def step_times(starts: list[float], ends: list[float], warmup: int, batch: int) -> dict:
    """Per-step figures from the batch hooks' times, leaving out the first ``warmup`` steps. Only steps
    followed by another batch start have an interval, so the last step counts in the compute alone."""
    if len(starts) != len(ends) or len(starts) < warmup + 2:
        raise ValueError(f"{len(starts)} batch starts and {len(ends)} ends: need at least warmup + 2 = {warmup + 2}")
    starts, ends = starts[warmup:], ends[warmup:]
    intervals = [b - a for a, b in zip(starts, starts[1:])]
    waits = [b - a for a, b in zip(ends, starts[1:])]
    computes = [b - a for a, b in zip(starts, ends)]
    span = starts[-1] - starts[0]
    return {"timed_steps": len(intervals), "step_s": statistics.median(intervals), "step_s_mean": span / len(intervals),
            "compute_s": statistics.median(computes), "data_wait_s": statistics.median(waits),
            "data_wait_share": sum(waits) / span, "clips_per_s": batch * len(intervals) / span}


def ucf101_repeated_list(root: Path, repeats: int) -> Path:
    """A V-JEPA list file (path, 0-based label) that lists the fixture's training videos ``repeats`` times."""
    lines = []
    for line in (root / "ucfTrainTestlist" / "trainlist01.txt").read_text().splitlines():
        if line.strip():
            path, label = line.rsplit(" ", 1)
            lines.append(f"UCF-101/{path} {int(label) - 1}")
    out = root / "train_repeated.txt"
    out.write_text("\n".join(lines * repeats) + "\n")
    return out


def fit_arguments(regime: str, data_root: Path, run_dir: Path, args) -> list[str]:
    """`jepa-lit fit` arguments: the regime's baseline config with the tiny112 model, on the fixture tree."""
    spec = bench_step.PRESETS[PRESET]
    clips = spec["batch"] * (args.warmup + args.steps + 4)  # the epoch outlasts the run
    encoder = "--model.init_args.encoder.init_args."
    fit = ["fit", "--config", str(EXPERIMENTS / f"{regime}_baseline.yaml"),
           f"{encoder}size={spec['size']}", "--data.init_args.num_frames=16",
           f"--data.init_args.crop_size={spec['img_size']}",  # the encoder's clip size follows the data's
           f"--data.init_args.batch_size={spec['batch']}",
           "--trainer.accelerator=cpu", "--trainer.devices=1", "--trainer.strategy=auto",
           f"--trainer.precision={args.precision}", f"--trainer.max_steps={args.warmup + args.steps + 1}",
           f"--trainer.default_root_dir={run_dir}", f"--trainer.logger.init_args.save_dir={run_dir}",
           # the dense context loss from the first step, as in the bench step (the study's ramp starts half way)
           "--model.init_args.context_loss_start=0.0", "--model.init_args.context_loss_end=0.0",
           "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false",
           '--trainer.callbacks+={"class_path": "bench_fit.FitTimer"}']
    if regime == "ucf101":
        repeats = -(-clips // 6)  # the fixture has 6 training videos
        fit += [f"--data.init_args.root={data_root / 'ucf101'}",
                f"--data.init_args.train_list={ucf101_repeated_list(data_root / 'ucf101', repeats)}"]
    else:
        fit += [f"--data.init_args.root={data_root}", f"--data.init_args.samples_per_epoch={clips}"]
    return fit


def run_fit(regime: str, data_root: Path, args) -> dict:
    with tempfile.TemporaryDirectory() as run_dir:
        started = time.perf_counter()
        cli = run_cli(fit_arguments(regime, data_root, Path(run_dir), args))
        wall = time.perf_counter() - started
    timer = next(c for c in cli.trainer.callbacks if type(c).__name__ == "FitTimer")
    batch = cli.datamodule.batch_size
    result = step_times(timer.starts, timer.ends, args.warmup, batch)
    result.update(regime=regime, config=f"experiments/{regime}_baseline.yaml", workers=cli.datamodule.num_workers,
                  batch=batch, fit_wall_s=wall, steps_run=cli.trainer.global_step)
    return result


def bench_step_time(args) -> dict:
    """bench_step.py's step for the same preset and precision, no data, median after warm-up."""
    torch.manual_seed(0)
    spec = bench_step.PRESETS[PRESET]
    module = bench_step.build(PRESET, checkpointing=False, compile_model=False).train()
    optimizer = module.configure_optimizers()["optimizer"]
    clip = torch.randn(spec["batch"], 3, 16, spec["img_size"], spec["img_size"])
    precision = PRECISIONS[args.precision]
    times = [bench_step.train_step(module, optimizer, clip, 0, precision)["step"]
             for _ in range(args.bench_warmup + args.bench_steps)][args.bench_warmup:]
    return {"preset": PRESET, "batch": spec["batch"], "median_s": statistics.median(times), "step_s": times}


def print_table(doc: dict) -> None:
    bench = doc["bench_step"]
    print(f"{doc['cpu']}, {doc['threads']} threads, {doc['precision']}, torch {doc['torch']}; load average "
          f"{doc['load_average'][0]:.2f} / {doc['load_average'][1]:.2f} (1 / 5 min) at start; tiny112 model, batch "
          f"{bench['batch']}; median over {doc['fits'][0]['timed_steps']} step intervals after {doc['warmup']} warm-up")
    print(f"{'regime':<9}{'workers':>8}{'fit s/step':>12}{'compute s':>11}{'data wait s':>13}{'wait share':>12}"
          f"{'clips/s':>9}{'bench step s':>14}{'fit / bench':>13}{'fit wall s':>12}")
    for r in doc["fits"]:
        print(f"{r['regime']:<9}{r['workers']:>8}{r['step_s']:>12.3f}{r['compute_s']:>11.3f}{r['data_wait_s']:>13.3f}"
              f"{r['data_wait_share']:>12.2f}{r['clips_per_s']:>9.2f}{bench['median_s']:>14.3f}"
              f"{r['step_s'] / bench['median_s']:>13.2f}{r['fit_wall_s']:>12.1f}")



def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--regimes", nargs="+", choices=list(REGIMES), default=list(REGIMES))
    parser.add_argument("--precision", choices=["32-true", "bf16-mixed"], default="32-true")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=3, help="fit steps left out (the first runs the callbacks)")
    parser.add_argument("--steps", type=int, default=12, help="timed fit step intervals")
    parser.add_argument("--bench-warmup", type=int, default=2)
    parser.add_argument("--bench-steps", type=int, default=5)
    parser.add_argument("--data-root", help="an existing fixture tree (default: built in a temporary folder)")
    parser.add_argument("--json", default="bench/results/fit.json")
    args = parser.parse_args(argv)
    if args.warmup < 0 or args.steps < 1 or args.bench_steps < 1 or args.bench_warmup < 0:
        parser.error("--steps and --bench-steps must be at least 1, the warm-ups at least 0")
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    # run_cli gets its arguments from here, not from this script's command line (jepa-lit's main does the same).
    warnings.filterwarnings("ignore", message="LightningCLI's args parameter is intended")
    torch.set_num_threads(args.threads)
    load = os.getloadavg()
    started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    with tempfile.TemporaryDirectory() as tmp:
        data_root = Path(args.data_root or tmp)
        if args.data_root is None:
            for name in sorted({d for regime in args.regimes for d in REGIMES[regime]}):
                DATASETS[name].make_fixture(data_root / name, broken=False)
        fits = [run_fit(regime, data_root, args) for regime in args.regimes]
    doc = {"measured_at": started, "cpu": bench_step.cpu_model(), "threads": args.threads, "precision": args.precision,
           "torch": torch.__version__, "load_average": load, "warmup": args.warmup, "fits": fits,
           "bench_step": bench_step_time(args)}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(doc, indent=2))
    print_table(doc)
    print(f"written {args.json}")


if __name__ == "__main__":
    main()
