"""Benchmark one full JEPA training step of the study's base recipe and hold it to the hardware.

One step = targets from the EMA encoder, context encoder + predictor for both mask generators,
prediction and dense context losses, backward, AdamW, EMA update; fp32, ``--threads`` threads.

Reported per preset: median / min / max step time after warm-up and a per-phase breakdown; the step's
FLOPs (torch.utils.flop_counter, plus scaled_dot_product_attention by formula, which the counter misses
on CPU); the achieved GFLOP/s and its ratio to this machine's fp32 GEMM peak (a 2048^3 matmul) measured
in the same process, alternating with the steps, because the peak drifts on a shared machine; the
process's peak memory. A table is printed and a JSON written.

    python bench/bench_step.py                       # tiny112 and small224
    python bench/bench_step.py --presets tiny112 --steps 10 --json bench/results/step.json
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from jepa_lit.masks import MultiBlock3D
from jepa_lit.models import VisionTransformer
from jepa_lit.models.blocks import Attention
from jepa_lit.module import JEPAModule

PRESETS = {  # the study's predictor (8 x 256, 8 heads) for both
    "tiny112": dict(size="tiny", img_size=112, batch=2),
    "small224": dict(size="small", img_size=224, batch=2),
}


def build(preset: str, checkpointing: bool, compile_model: bool) -> JEPAModule:
    spec = PRESETS[preset]
    encoder = VisionTransformer(size=spec["size"], num_frames=16, img_size=spec["img_size"],
                                activation_checkpointing=checkpointing)
    # context_loss_start=0: the dense context loss is computed in every timed step.
    module = JEPAModule(encoder, MultiBlock3D(seed=0), predictor_width=256, predictor_depth=8, predictor_heads=8,
                        context_loss_start=0.0, context_loss_end=0.0)
    if compile_model:
        module.encoder.compile()
        module.predictor.compile()
    return module


def train_step(module, optimizer, clip, step) -> dict[str, float]:
    start = time.perf_counter()
    outputs = module.forward_step(clip, step=step)
    loss = torch.stack(list(module.loss_terms(outputs).values())).sum()
    t_forward = time.perf_counter()
    loss.backward()
    t_backward = time.perf_counter()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    module.update_target(module.ema_momentum)
    end = time.perf_counter()
    return {"forward": t_forward - start, "backward": t_backward - t_forward, "optimizer+ema": end - t_backward,
            "step": end - start, "outputs": outputs}


def attention_flops(module, clip) -> float:
    """FLOPs of every scaled_dot_product_attention call of one step, forward and backward:
    4 B H Nq Nk d forward (QK^T and AV), 8 B H Nq Nk d backward (dQ, dK, dV, dP) where grad is on."""
    calls = []

    def record(attention, inputs, output):
        x = inputs[0]
        batch, tokens, width = x.shape
        head_dim = width // attention.num_heads
        per_pass = 4.0 * batch * attention.num_heads * tokens * tokens * head_dim
        calls.append(per_pass * (3.0 if torch.is_grad_enabled() else 1.0))

    handles = [m.register_forward_hook(record) for m in module.modules() if isinstance(m, Attention)]
    try:
        outputs = module.forward_step(clip, step=0)
        torch.stack(list(module.loss_terms(outputs).values())).sum().backward()
    finally:
        for handle in handles:
            handle.remove()
        module.zero_grad(set_to_none=True)
    return sum(calls)


def counted_flops(module, clip) -> float:
    with FlopCounterMode(display=False) as counter:
        outputs = module.forward_step(clip, step=0)
        torch.stack(list(module.loss_terms(outputs).values())).sum().backward()
    module.zero_grad(set_to_none=True)
    return float(counter.get_total_flops())


def gemm_gflops(size: int = 2048) -> float:
    a, b = torch.randn(size, size), torch.randn(size, size)
    start = time.perf_counter()
    torch.matmul(a, b)
    return 2.0 * size**3 / (time.perf_counter() - start) / 1e9


def run(preset: str, args) -> dict:
    torch.manual_seed(0)
    spec = PRESETS[preset]
    module = build(preset, args.checkpointing, args.compile).train()
    optimizer = module.configure_optimizers()["optimizer"]
    clip = torch.randn(spec["batch"], 3, 16, spec["img_size"], spec["img_size"])
    flops_counter = counted_flops(module, clip)
    flops_attention = attention_flops(module, clip)
    flops = flops_counter + flops_attention
    for i in range(args.warmup):
        train_step(module, optimizer, clip, i)
    gemm_gflops()
    steps, peaks = [], []
    for i in range(args.steps):
        steps.append(train_step(module, optimizer, clip, args.warmup + i))
        peaks.append(gemm_gflops())  # alternate: each step is compared with the peak of its moment
    times = [s["step"] for s in steps]
    ratios = [flops / t / 1e9 / p for t, p in zip(times, peaks)]
    outputs = steps[-1]["outputs"]
    return {
        "preset": preset, "batch": spec["batch"], "frames": 16, "px": spec["img_size"], "threads": args.threads,
        "checkpointing": args.checkpointing, "compile": args.compile,
        "median_s": statistics.median(times), "min_s": min(times), "max_s": max(times),
        "phases_median_s": {k: statistics.median(s[k] for s in steps) for k in ("forward", "backward", "optimizer+ema")},
        "gflop": flops / 1e9, "gflop_counter_only": flops_counter / 1e9, "gflop_attention": flops_attention / 1e9,
        "achieved_gflops": flops / statistics.median(times) / 1e9,
        "gemm_peak_gflops_median": statistics.median(peaks),
        "fraction_of_peak_median": statistics.median(ratios),
        "fraction_of_peak_range": [min(ratios), max(ratios)],
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "tokens": {"context": [g.masks.context.shape[1] for g in outputs.generators],
                   "target": [g.masks.target.shape[1] for g in outputs.generators]},
        "params_m": {"encoder": sum(p.numel() for p in module.encoder.parameters()) / 1e6,
                     "predictor": sum(p.numel() for p in module.predictor.parameters()) / 1e6},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", choices=sorted(PRESETS), default=["tiny112", "small224"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--checkpointing", action="store_true", help="activation checkpointing")
    parser.add_argument("--compile", action="store_true", help="torch.compile the encoder and predictor")
    parser.add_argument("--json", default="bench/results/step.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results = [run(preset, args) for preset in args.presets]
    header = f"{'preset':<10}{'median s':>10}{'min s':>8}{'GFLOP':>9}{'GFLOP/s':>9}{'GEMM peak':>11}{'of peak':>9}{'RSS MiB':>9}"
    print(header)
    for r in results:
        print(f"{r['preset']:<10}{r['median_s']:>10.3f}{r['min_s']:>8.3f}{r['gflop']:>9.1f}{r['achieved_gflops']:>9.1f}"
              f"{r['gemm_peak_gflops_median']:>11.1f}{r['fraction_of_peak_median']:>9.2f}{r['peak_rss_mib']:>9.0f}")
        print("          phases: " + ", ".join(f"{k} {v:.3f} s" for k, v in r["phases_median_s"].items())
              + f"; FLOPs: counter {r['gflop_counter_only']:.1f} + attention {r['gflop_attention']:.1f} GFLOP")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(results, indent=2))
    print(f"written {args.json}")


if __name__ == "__main__":
    main()
