"""Time one training step of every experiment variant relative to the baseline, at a tiny config.

    python bench/bench_objectives.py                      # the smoke config: ViT-tiny, 8 x 64 px, batch 4
    python bench/bench_objectives.py --img-size 128 --frames 16 --device cuda

A step is what the trainer does: masks, target and context encoders, predictor, base loss and every
objective, backward, AdamW step and EMA update. Each variant takes its mask sampler, objectives and
target mode from experiments/<variant>.yaml (heads resized to the tiny encoder); everything else is the
same for all. Variants are timed round-robin, ``--rounds`` times ``--steps`` steps each, and the median
round is reported, so a noisy machine biases every variant alike. On a shared CPU, ``--clock cpu``
(the default there, with one thread) counts the process's CPU time, which other users' load barely
moves; on a GPU the clock is wall time after a synchronise.
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import time
from pathlib import Path

import torch
import yaml

from jepa_lit.masks import BlockGenerator
from jepa_lit.models import VisionTransformer
from jepa_lit.module import JEPAModule

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"


def build(spec: dict):
    module, name = spec["class_path"].rsplit(".", 1)
    cls = getattr(importlib.import_module(module), name)
    kwargs = dict(spec.get("init_args") or {})
    if "generators" in kwargs:
        kwargs["generators"] = [BlockGenerator(**g) for g in kwargs["generators"]]
    return cls(**kwargs)


def make_module(variant: str, args) -> JEPAModule:
    model = (yaml.safe_load((EXPERIMENTS / f"{variant}.yaml").read_text()).get("model") or {}).get("init_args") or {}
    torch.manual_seed(0)
    encoder = VisionTransformer(size="tiny", num_frames=args.frames, img_size=args.img_size)
    sampler = build(model["mask_sampler"]) if "mask_sampler" in model else None
    objectives = [build(o) for o in model.get("objectives") or []]  # heads sized by the module
    return JEPAModule(encoder, sampler, objectives, predictor_width=96, predictor_depth=4, predictor_heads=4,
                      target_encoder=model.get("target_encoder", "ema")).to(args.device)


class Stepper:
    def __init__(self, module: JEPAModule, clip: torch.Tensor):
        self.module, self.clip, self.step = module, clip, 0
        self.optimizer = torch.optim.AdamW([p for p in module.parameters() if p.requires_grad], lr=1e-4)

    def __call__(self) -> None:
        outputs = self.module.forward_step(self.clip, self.step)
        loss = torch.stack(list(self.module.loss_terms(outputs).values())).sum()
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        if self.module.target_encoder is not None:
            self.module.update_target(0.99925)
        self.step += 1


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", nargs="*", help="config stems (default: every <regime>_<variant>.yaml)")
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--img-size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (0: leave as is)")
    parser.add_argument("--clock", choices=["cpu", "wall"], default=None,
                        help="cpu: process CPU time (default on CPU), wall: elapsed time (default on GPU)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    clock_name = args.clock or ("cpu" if args.device == "cpu" else "wall")
    clock = time.process_time if clock_name == "cpu" else time.perf_counter
    variants = args.variants or sorted(p.stem for p in EXPERIMENTS.glob("*_*.yaml") if p.stem.split("_")[0] in ("mixed", "ucf101"))
    clip = torch.randn(args.batch, 3, args.frames, args.img_size, args.img_size, generator=torch.Generator().manual_seed(0))
    clip = clip.to(args.device)
    steppers = {v: Stepper(make_module(v, args), clip) for v in variants}
    for stepper in steppers.values():  # warm up (allocations, first-call overheads)
        stepper()
    times = {v: [] for v in variants}
    for _ in range(args.rounds):
        for variant, stepper in steppers.items():
            sync(args.device)
            start = clock()
            for _ in range(args.steps):
                stepper()
            sync(args.device)
            times[variant].append((clock() - start) / args.steps)
    medians = {v: statistics.median(t) for v, t in times.items()}
    print(f"device {args.device} ({torch.get_num_threads()} threads, {clock_name} clock), {args.frames} frames x "
          f"{args.img_size} px, batch {args.batch}, ViT-tiny, median of {args.rounds} rounds x {args.steps} steps")
    print("| variant | config | step (ms) | vs the regime's baseline |")
    print("|---|---|---|---|")
    for variant in variants:
        baseline = medians.get(f"{variant.split('_')[0]}_baseline")
        relative = f"{medians[variant] / baseline:.2f}x" if baseline else "-"
        print(f"| {variant} | experiments/{variant}.yaml | {1000 * medians[variant]:.0f} | {relative} |")


if __name__ == "__main__":
    main()
