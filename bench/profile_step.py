"""Profile the bench step (bench/bench_step.py) with torch.profiler: which ops take the step's CPU time.

The presets, the module, the masks (one mask step for every step) and the step itself are
bench_step.py's; this script only wraps a few steps after warm-up in torch.profiler and ranks the ops by
self CPU time (time in the op itself, not in the ops it calls), per step. Every op falls in one of three
classes: GEMM (mm / addmm / bmm / baddbmm: the matrix units' work), attention
(scaled_dot_product_attention's fused kernels, which are mostly GEMMs too) and everything else (layer
norms, GELU, copies, casts, gathers, the optimizer and EMA loops, ...). A Markdown table per preset and
precision is printed and written to ``--output``.

    python bench/profile_step.py                                    # tiny112, fp32 and bf16-mixed
    python bench/profile_step.py --presets tiny112 small224 --precision 32-true --steps 2

The profiler adds a few microseconds per op (a step has thousands), so the profiled step is slower than
bench_step.py's; the unprofiled time of the warm-up steps is printed next to it.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import os
import statistics
import sys
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench_step.py, next to this file
import bench_step  # noqa: E402

from jepa_lit.precision import cpu_bf16_units  # noqa: E402

PRECISIONS = bench_step.LIGHTNING_PRECISIONS
GEMM_OPS = {"aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::addbmm", "aten::_addmm_activation"}


def op_class(name: str) -> str:
    """'gemm', 'attention' or 'other' for a profiler op name."""
    if name in GEMM_OPS:
        return "gemm"
    if "scaled_dot_product" in name or "flash_attention" in name:
        return "attention"
    return "other"


def summarise(ops: list[tuple[str, int, float]], steps: int, step_s: float, top: int) -> dict:
    """``ops``: (name, calls, self CPU seconds) over ``steps`` profiled steps of ``step_s`` seconds each
    (wall clock). Returns the ``top`` ops by self time, per step and as a share of the step, and each op
    class's share; 'outside ops' is the step's time in no op at all (Python between the ops)."""
    ranked = sorted(ops, key=lambda op: op[2], reverse=True)
    rows = [{"op": name, "calls": calls / steps, "self_ms": 1e3 * seconds / steps,
             "share": seconds / steps / step_s, "class": op_class(name)}
            for name, calls, seconds in ranked[:top]]
    shares = {"gemm": 0.0, "attention": 0.0, "other": 0.0}
    for name, _, seconds in ops:
        shares[op_class(name)] += seconds / steps / step_s
    shares["outside ops"] = 1.0 - sum(shares.values())
    return {"rows": rows, "shares": shares, "ops_per_step": sum(op[1] for op in ops) / steps}


def markdown(title: str, summary: dict) -> str:
    lines = [f"**{title}**", "", "| op | calls / step | self ms / step | % of step | class |",
             "|---|---:|---:|---:|---|"]
    for row in summary["rows"]:
        lines.append(f"| `{row['op']}` | {row['calls']:.0f} | {row['self_ms']:.1f} | {100 * row['share']:.1f} "
                     f"| {row['class']} |")
    shares = summary["shares"]
    lines += ["", "Self time by class, % of step: " + ", ".join(f"{k} {100 * v:.1f}" for k, v in shares.items())
              + f"; {summary['ops_per_step']:.0f} op calls per step.", ""]
    return "\n".join(lines)


def profile_preset(preset: str, precision: str, args) -> dict:
    torch.manual_seed(0)
    spec = bench_step.PRESETS[preset]
    device = torch.device("cpu")
    module = bench_step.build(preset, checkpointing=False, compile_model=False).to(device).train()
    optimizer = module.configure_optimizers()["optimizer"]
    clip = torch.randn(spec["batch"], 3, 16, spec["img_size"], spec["img_size"], device=device)
    warm = [bench_step.train_step(module, optimizer, clip, args.mask_step, precision)["step"]
            for _ in range(args.warmup)]
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        timed = [bench_step.train_step(module, optimizer, clip, args.mask_step, precision)["step"]
                 for _ in range(args.steps)]
    step_s = statistics.mean(timed)
    ops = [(e.key, e.count, e.self_cpu_time_total / 1e6) for e in prof.key_averages()]
    summary = summarise(ops, args.steps, step_s, args.top)
    summary.update(preset=preset, precision=precision, profiled_step_s=step_s,
                   unprofiled_step_s=statistics.median(warm[1:] or warm))
    del module, optimizer, clip, prof
    gc.collect()
    return summary



def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", choices=sorted(bench_step.PRESETS), default=["tiny112"])
    parser.add_argument("--precision", nargs="+", choices=list(PRECISIONS), default=["32-true", "bf16-mixed"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=2, help="unprofiled steps first (the first is the slowest)")
    parser.add_argument("--steps", type=int, default=3, help="profiled steps")
    parser.add_argument("--top", type=int, default=15, help="ops listed per table")
    parser.add_argument("--mask-step", type=int, default=0, help="the mask step every step uses")
    parser.add_argument("--output", default="bench/results/profile.md")
    args = parser.parse_args(argv)
    if args.warmup < 1 or args.steps < 1:
        parser.error("--warmup and --steps must be at least 1")
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    load = os.getloadavg()
    header = (f"{bench_step.cpu_model()} (bf16 units: {', '.join(cpu_bf16_units()) or 'none'}), {args.threads} threads, "
              f"torch {torch.__version__}; load average {load[0]:.2f} / {load[1]:.2f} (1 / 5 min) at start, "
              f"{started}; {args.warmup} warm-up + {args.steps} profiled steps, masks of mask step {args.mask_step}")
    command = "python bench/profile_step.py " + " ".join(sys.argv[1:] if argv is None else argv)
    sections = [f"Command: `{command.strip()}`", "", header, ""]
    print("\n".join(sections), flush=True)
    for preset in args.presets:
        for name in args.precision:
            summary = profile_preset(preset, PRECISIONS[name], args)
            title = (f"{preset}, {name}: {summary['profiled_step_s']:.3f} s per profiled step "
                     f"({summary['unprofiled_step_s']:.3f} s unprofiled)")
            text = markdown(title, summary)
            print(text, flush=True)
            sections.append(text)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text("\n".join(sections))
    print(f"written {args.output}")


if __name__ == "__main__":
    main()
