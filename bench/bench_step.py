"""Benchmark one full JEPA training step of the study's base recipe on this machine.

One step = targets from the EMA encoder, context encoder + predictor for both mask generators,
prediction and dense context losses, backward, AdamW, EMA update. fp32, ``--threads`` threads.
Prints the median (and min / max) of ``--steps`` steps after ``--warmup`` warm-up steps, and a breakdown.

    python bench/bench_step.py --preset tiny112          # vit_tiny, 16 x 112 px, batch 2, predictor 8 x 256
    python bench/bench_step.py --preset small224 --steps 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from jepa_lit.masks import MultiBlock3D
from jepa_lit.models import VisionTransformer
from jepa_lit.module import JEPAModule

PRESETS = {
    "tiny112": dict(size="tiny", img_size=112),
    "small224": dict(size="small", img_size=224),
}


def build(preset: str, checkpointing: bool) -> JEPAModule:
    spec = PRESETS[preset]
    encoder = VisionTransformer(size=spec["size"], num_frames=16, img_size=spec["img_size"],
                                activation_checkpointing=checkpointing)
    # context_loss_start=0: the dense context loss is computed in every timed step.
    return JEPAModule(encoder, MultiBlock3D(seed=0), predictor_width=256, predictor_depth=8, predictor_heads=8,
                      context_loss_start=0.0, context_loss_end=0.0)


def run(args) -> dict:
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    module = build(args.preset, args.checkpointing).train()
    optimizer = module.configure_optimizers()["optimizer"]
    size = PRESETS[args.preset]["img_size"]
    clip = torch.randn(args.batch, 3, 16, size, size)
    phases = {"forward": [], "backward": [], "optimizer+ema": [], "step": []}
    for i in range(args.warmup + args.steps):
        start = time.perf_counter()
        outputs = module.forward_step(clip, step=i)
        loss = torch.stack(list(module.loss_terms(outputs).values())).sum()
        t_fwd = time.perf_counter()
        loss.backward()
        t_bwd = time.perf_counter()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        module.update_target(module.ema_momentum)
        end = time.perf_counter()
        if i >= args.warmup:
            phases["forward"].append(t_fwd - start)
            phases["backward"].append(t_bwd - t_fwd)
            phases["optimizer+ema"].append(end - t_bwd)
            phases["step"].append(end - start)
    steps = phases["step"]
    return {
        "preset": args.preset, "batch": args.batch, "threads": args.threads, "checkpointing": args.checkpointing,
        "median_s": statistics.median(steps), "min_s": min(steps), "max_s": max(steps),
        "phases_median_s": {k: statistics.median(v) for k, v in phases.items()},
        "tokens": {"context": [g.masks.context.shape[1] for g in outputs.generators],
                   "target": [g.masks.target.shape[1] for g in outputs.generators]},
        "params_m": {"encoder": sum(p.numel() for p in module.encoder.parameters()) / 1e6,
                     "predictor": sum(p.numel() for p in module.predictor.parameters()) / 1e6},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=sorted(PRESETS), default="tiny112")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--checkpointing", action="store_true", help="activation checkpointing")
    parser.add_argument("--json", help="also write the result here")
    result = run(parser.parse_args())
    print(f"{result['preset']}: median {result['median_s']:.3f} s/step "
          f"(min {result['min_s']:.3f}, max {result['max_s']:.3f}); "
          + ", ".join(f"{k} {v:.3f}" for k, v in result["phases_median_s"].items() if k != "step"))
    print(f"tokens {result['tokens']}, params (M) {result['params_m']}")
    if parser.parse_args().json:
        with open(parser.parse_args().json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
