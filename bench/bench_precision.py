"""Step time of a config's model and data in fp32 and bf16-mixed on this machine's CPU (or GPU).

`precision: auto` picks bf16-mixed where bf16 runs on native units and 32-true elsewhere (jepa_lit.precision);
this measures whether that pays for a given config: the config's model and DataModule (its callbacks, such
as the demo's online probes, are left out) train for ``--steps`` steps per precision, passes interleaved,
and each training batch (forward, backward, optimizer, EMA) is timed by a callback.

    python bench/bench_precision.py --config experiments/demo.yaml            # the demo model
    python bench/bench_precision.py --config experiments/smoke.yaml --threads 1 --passes 3
"""

from __future__ import annotations

import argparse
import statistics
import time

import sys
from pathlib import Path

import lightning as L
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench_step.py, next to this file
import bench_step  # noqa: E402

from jepa_lit.cli import run_cli  # noqa: E402
from jepa_lit.precision import cpu_bf16_units  # noqa: E402


class BatchTimer(L.Callback):
    """Wall seconds of every training batch."""

    def __init__(self):
        self.seconds: list[float] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.seconds.append(time.perf_counter() - self.start)


def time_steps(config: str, precision: str, steps: int, accelerator: str) -> list[float]:
    cli = run_cli(["--config", config, "--trainer.precision", "32-true"], run=False)  # model and data only
    timer = BatchTimer()
    trainer = L.Trainer(max_steps=steps, accelerator=accelerator, devices=1, precision=precision, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        limit_val_batches=0, callbacks=[timer])
    trainer.fit(cli.model, cli.datamodule)
    return timer.seconds



def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="experiments/demo.yaml")
    parser.add_argument("--steps", type=int, default=20, help="steps per pass (the first 3 are warm-up, not counted)")
    parser.add_argument("--passes", type=int, default=2, help="interleaved passes per precision")
    parser.add_argument("--precisions", nargs="+", default=["32-true", "bf16-mixed"])
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--accelerator", default="cpu")
    args = parser.parse_args()
    if args.steps < 4:
        parser.error("--steps must be at least 4 (3 warm-up steps are dropped)")
    if args.threads:
        torch.set_num_threads(args.threads)
    seconds = {precision: [] for precision in args.precisions}
    for _ in range(args.passes):
        for precision in args.precisions:
            seconds[precision].extend(time_steps(args.config, precision, args.steps, args.accelerator)[3:])
    units = ", ".join(cpu_bf16_units()) or "none"
    print(f"\n{args.config}: {bench_step.cpu_model()}, {torch.get_num_threads()} threads, "
          f"CPU bf16 units: {units}")
    print(f"{'precision':<12} {'median s/step':>14} {'min s/step':>11} {'steps':>6}")
    reference = statistics.median(seconds[args.precisions[0]])
    for precision, values in seconds.items():
        median = statistics.median(values)
        print(f"{precision:<12} {median:>14.3f} {min(values):>11.3f} {len(values):>6}   "
              f"x{reference / median:.2f} vs {args.precisions[0]}")


if __name__ == "__main__":
    main()
