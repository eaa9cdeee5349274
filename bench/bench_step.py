"""Benchmark one full JEPA training step of the study's base recipe and hold it to the hardware.

One step = targets from the EMA encoder, context encoder + predictor for both mask generators,
prediction and dense context losses, backward, AdamW, EMA update; fp32 on ``--threads`` CPU threads by
default, or ``--device cuda --precision bf16-mixed`` (forward and losses under torch.autocast).

Every counted, warm-up and timed step uses the masks of one mask step (``--mask-step``), so the FLOPs
counted are exactly the work timed (the block sizes and positions, hence the token counts, differ from
step to step). Reported per preset: median / min / max step time after warm-up and a per-phase
breakdown; the step's FLOPs (torch.utils.flop_counter for everything but attention, plus
scaled_dot_product_attention by formula: the counter misses it on CPU and counts the flash kernel's
recomputation on CUDA); the achieved GFLOP/s and its ratio to this device's GEMM peak (a 2048^3 matmul in
the step's precision: fp32, or bf16 for bf16-mixed) measured in the same process, alternating with the
steps, because the peak drifts on a shared machine; the peak memory of the preset's own warm-up and timed
steps (CPU: each preset runs in its own process, as memory freed by one preset stays with the allocator and
would count towards the next, and the process's RSS high-water mark VmHWM is reset through
/proc/self/clear_refs before the warm-up, or, where the kernel cannot, is the process's lifetime peak;
CUDA: torch.cuda.max_memory_allocated, reset per preset); the clips/s the step consumes and, from the data benchmark's latest JSON
(bench/bench_data.py, bench/results/data.json), the clips/s one loader worker decodes. A table is
printed and a JSON written.

    python bench/bench_step.py                       # tiny112 and small224 on the CPU, fp32
    python bench/bench_step.py --presets tiny112 --steps 10 --json bench/results/step.json
    python bench/bench_step.py --device cuda --precision bf16-mixed     # tiny112, small224 and base224
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import gc
import json
import math
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from jepa_lit.masks import MultiBlock3D
from jepa_lit.models import VisionTransformer
from jepa_lit.models.blocks import Attention
from jepa_lit.module import JEPAModule

PRESETS = {  # the study's predictor (8 x 256, 8 heads) for all; 16 frames
    "tiny112": dict(size="tiny", img_size=112, batch=2),
    "small224": dict(size="small", img_size=224, batch=2),
    "base224": dict(size="base", img_size=224, batch=2),
}
DEFAULT_PRESETS = {"cpu": ["tiny112", "small224"], "cuda": ["tiny112", "small224", "base224"]}
PRECISIONS = {"fp32": torch.float32, "bf16-mixed": torch.bfloat16}  # the GEMM peak's dtype
LIGHTNING_PRECISIONS = {"32-true": "fp32", "fp32": "fp32", "bf16-mixed": "bf16-mixed"}  # Lightning's name -> ours
DATA_JSON = "bench/results/data.json"


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


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def autocast(device: torch.device, precision: str):
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=PRECISIONS[precision])


def forward_loss(module, clip, step, precision):
    with autocast(clip.device, precision):
        outputs = module.forward_step(clip, step=step)
        loss = torch.stack(list(module.loss_terms(outputs).values())).sum()
    return outputs, loss


def tokens(outputs) -> dict[str, list[float]]:
    """Mean context / target tokens per clip, per mask generator (over its cut groups)."""
    batch = outputs.clip.shape[0]
    return {"context": [sum(g.masks.context.numel() for g in groups) / batch for groups in outputs.generators],
            "target": [sum(g.masks.target.numel() for g in groups) / batch for groups in outputs.generators]}


def train_step(module, optimizer, clip, step, precision) -> dict:
    device = clip.device
    synchronize(device)
    start = time.perf_counter()
    outputs, loss = forward_loss(module, clip, step, precision)
    synchronize(device)
    t_forward = time.perf_counter()
    loss.backward()
    synchronize(device)
    t_backward = time.perf_counter()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    module.update_target(module.ema_momentum)
    synchronize(device)
    end = time.perf_counter()
    return {"forward": t_forward - start, "backward": t_backward - t_forward, "optimizer+ema": end - t_backward,
            "step": end - start, "tokens": tokens(outputs)}


def count_flops(module, clip, step, precision) -> dict:
    """FLOPs of one step's forward and backward with the masks of ``step``, in one untimed pass.

    torch.utils.flop_counter counts every op but attention; scaled_dot_product_attention is added by
    formula, 4 B H Nq Nk d per forward call (QK^T and AV) and 8 B H Nq Nk d per backward (dQ, dK, dV, dP),
    the backward counted when the gradient reaches the attention's output. Whatever the counter attributed
    to attention kernels (the flash / efficient kernels on CUDA, which include the backward's recomputation
    of QK^T) is taken out, so CPU and CUDA count the same model FLOPs. A recomputed forward (activation
    checkpointing) is counted, by the counter and by the formula alike."""
    calls: list[float] = []

    def record(attention, inputs, output):
        batch, length, width = inputs[0].shape
        per_pass = 4.0 * batch * attention.num_heads * length * length * (width // attention.num_heads)
        calls.append(per_pass)
        if output.requires_grad:
            output.register_hook(lambda grad: calls.append(2.0 * per_pass))

    handles = [m.register_forward_hook(record) for m in module.modules() if isinstance(m, Attention)]
    try:
        with FlopCounterMode(display=False) as counter:
            outputs, loss = forward_loss(module, clip, step, precision)
            loss.backward()
    finally:
        for handle in handles:
            handle.remove()
        module.zero_grad(set_to_none=True)
    counted = float(counter.get_total_flops())
    counted_attention = float(sum(n for op, n in counter.get_flop_counts().get("Global", {}).items()
                                  if "attention" in str(op)))
    return {"counter": counted - counted_attention, "counter_attention_replaced": counted_attention,
            "attention": sum(calls), "tokens": tokens(outputs)}


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, for the benchmarks' headers ("unknown CPU" where unreadable)."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return "unknown CPU"
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "unknown CPU")


def gemm_gflops(device: torch.device, dtype: torch.dtype, size: int = 2048) -> float:
    """GFLOP/s of a size^3 matmul. CPU: one matmul, as the step is timed (wall clock, no synchronisation).
    CUDA: one untimed matmul, then 20 between synchronisations (one 2048^3 bf16 matmul takes tens of us)."""
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    repeats = 1
    if device.type == "cuda":
        torch.matmul(a, b)
        repeats = 20
    synchronize(device)
    start = time.perf_counter()
    for _ in range(repeats):
        torch.matmul(a, b)
    synchronize(device)
    return 2.0 * size**3 * repeats / (time.perf_counter() - start) / 1e9


# ----- peak memory -------------------------------------------------------------------------------------
def _vm_hwm_mib() -> float:
    match = re.search(r"^VmHWM:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.MULTILINE)
    if match is None:
        raise OSError("no VmHWM in /proc/self/status")
    return int(match.group(1)) / 1024


def _reset_vm_hwm() -> None:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the peak RSS to the current RSS (Linux >= 4.0)


def vm_hwm_resettable() -> bool:
    """Whether this kernel resets VmHWM: touch 64 MiB, free it, reset, and check that the peak came down."""
    try:
        buffer = torch.ones(16 * 2**20)
        del buffer
        before = _vm_hwm_mib()
        _reset_vm_hwm()
        return _vm_hwm_mib() < before - 32
    except OSError:
        return False


class PeakMemory:
    """The peak memory of what runs between ``reset()`` and ``read()``, in MiB."""

    def __init__(self, device: torch.device, hwm_resettable: bool):
        self.device = device
        if device.type == "cuda":
            self.source = "torch.cuda.max_memory_allocated, reset per preset"
        elif hwm_resettable:
            self.source = ("peak RSS (VmHWM) of the preset's own process over its warm-up and timed steps "
                           "(reset via /proc/self/clear_refs)")
        else:
            self.source = ("peak RSS (ru_maxrss) of the preset's own process over its whole life "
                           "(this kernel cannot reset VmHWM)")
        self.hwm_resettable = hwm_resettable

    def reset(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        elif self.hwm_resettable:
            _reset_vm_hwm()

    def read(self) -> float:
        if self.device.type == "cuda":
            return torch.cuda.max_memory_allocated(self.device) / 2**20
        if self.hwm_resettable:
            return _vm_hwm_mib()
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ----- one preset ----------------------------------------------------------------------------------------
def run(preset: str, args, device: torch.device, memory: PeakMemory) -> dict:
    torch.manual_seed(0)
    spec = PRESETS[preset]
    batch = args.batch or spec["batch"]
    module = build(preset, args.checkpointing, args.compile).to(device).train()
    optimizer = module.configure_optimizers()["optimizer"]
    clip = torch.randn(batch, 3, 16, spec["img_size"], spec["img_size"], device=device)
    count = count_flops(module, clip, args.mask_step, args.precision)
    flops = count["counter"] + count["attention"]
    gemm_dtype = PRECISIONS[args.precision]

    memory.reset()
    for _ in range(args.warmup):
        train_step(module, optimizer, clip, args.mask_step, args.precision)
    gemm_gflops(device, gemm_dtype)
    steps, peaks = [], []
    for _ in range(args.steps):
        steps.append(train_step(module, optimizer, clip, args.mask_step, args.precision))
        peaks.append(gemm_gflops(device, gemm_dtype))  # alternate: each step is compared with the peak of its moment
    peak_memory = memory.read()
    for s in steps:  # the masks are a pure function of (seed, step): a mismatch would be a bug here
        if s["tokens"] != count["tokens"]:
            raise RuntimeError(f"timed step's tokens {s['tokens']} differ from the counted step's {count['tokens']}")

    times = [s["step"] for s in steps]
    ratios = [flops / t / 1e9 / p for t, p in zip(times, peaks)]
    median = statistics.median(times)
    result = {
        "preset": preset, "encoder": f"vit_{spec['size']}", "batch": batch, "frames": 16, "px": spec["img_size"],
        "device": str(device), "precision": args.precision, "threads": args.threads,
        "checkpointing": args.checkpointing, "compile": args.compile,
        "warmup_steps": args.warmup, "timed_steps": args.steps, "mask_step": args.mask_step,
        "median_s": median, "min_s": min(times), "max_s": max(times), "step_s": times,
        "phases_median_s": {k: statistics.median(s[k] for s in steps) for k in ("forward", "backward", "optimizer+ema")},
        "gflop": flops / 1e9, "gflop_counter_only": count["counter"] / 1e9, "gflop_attention": count["attention"] / 1e9,
        "gflop_counter_attention_replaced": count["counter_attention_replaced"] / 1e9,
        "achieved_gflops": flops / median / 1e9,
        "gemm_dtype": str(gemm_dtype).replace("torch.", ""),
        "gemm_peak_gflops_median": statistics.median(peaks), "gemm_peak_gflops": peaks,
        "fraction_of_peak_median": statistics.median(ratios),
        "fraction_of_peak_range": [min(ratios), max(ratios)],
        "peak_memory_mib": peak_memory, "peak_memory_source": memory.source,
        "step_clips_per_s": batch / median,
        "tokens": count["tokens"],
        "params_m": {"encoder": sum(p.numel() for p in module.encoder.parameters()) / 1e6,
                     "predictor": sum(p.numel() for p in module.predictor.parameters()) / 1e6},
    }
    del module, optimizer, clip
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return result


def run_isolated(preset: str) -> dict:
    """Run one preset in a child process (same arguments), so that its peak RSS is its own: memory a
    previous preset freed stays with the allocator (glibc keeps it), and would count towards the next."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "step.json"
        subprocess.run([sys.executable, __file__, *sys.argv[1:], "--presets", preset, "--json", str(out), "--child"],
                       check=True)
        return json.loads(out.read_text())["presets"][0]


# ----- the data pipeline's figure ------------------------------------------------------------------------
def data_pipeline(path: str) -> dict | None:
    """The headline of the data benchmark's latest JSON (bench/bench_data.py), or None if there is none."""
    try:
        data = json.loads(Path(path).read_text())
        pipeline = data["pipeline"]
    except (OSError, ValueError, KeyError):
        return None
    video = data.get("video", {})
    return {"source": path, "measured_at": data.get("measured_at"), "method": pipeline["method"],
            "clips_per_s_per_worker": pipeline["clips_per_s"], "quick": data.get("quick"),
            "video": f"{video.get('width')}x{video.get('height')}, {video.get('frames')} frames, "
                     f"{video.get('formats')}", "crop_px": data.get("crop_px")}


def print_table(doc: dict) -> None:
    results, data = doc["presets"], doc["data_pipeline"]
    print(f"device {doc['device']}, {doc['precision']}, {doc['threads']} threads, torch {doc['torch']}; "
          f"load average {doc['load_average_1m']:.2f} at start; median of {results[0]['timed_steps']} steps after "
          f"{results[0]['warmup_steps']} warm-up; every counted, warm-up and timed step uses the masks of mask "
          f"step {doc['mask_step']}")
    header = (f"{'preset':<10}{'median s':>10}{'min s':>8}{'max s':>8}{'GFLOP':>9}{'GFLOP/s':>9}{'GEMM peak':>11}"
              f"{'of peak':>9}{'peak MiB':>10}{'clips/s':>9}{'workers':>9}")
    print(header)
    for r in results:
        workers = f"{math.ceil(r['step_clips_per_s'] / data['clips_per_s_per_worker'])}" if data else "-"
        print(f"{r['preset']:<10}{r['median_s']:>10.3f}{r['min_s']:>8.3f}{r['max_s']:>8.3f}{r['gflop']:>9.1f}"
              f"{r['achieved_gflops']:>9.1f}{r['gemm_peak_gflops_median']:>11.1f}{r['fraction_of_peak_median']:>9.2f}"
              f"{r['peak_memory_mib']:>10.0f}{r['step_clips_per_s']:>9.2f}{workers:>9}")
        lo, hi = r["fraction_of_peak_range"]
        print("          phases: " + ", ".join(f"{k} {v:.3f} s" for k, v in r["phases_median_s"].items())
              + f"; of peak {lo:.2f}-{hi:.2f}; FLOPs: counter {r['gflop_counter_only']:.1f} + attention "
              f"{r['gflop_attention']:.1f} GFLOP; tokens context {r['tokens']['context']} target {r['tokens']['target']}")
    print(f"GEMM peak: a 2048^3 {results[0]['gemm_dtype']} matmul after every timed step, median; "
          f"peak MiB: {results[0]['peak_memory_source']}; clips/s: batch / median step time")
    if data:
        print(f"workers: loader workers needed at the data pipeline's {data['clips_per_s_per_worker']:.1f} clips/s per "
              f"worker ({data['method']}, {data['crop_px']} px crops of {data['video']}"
              f"{', --quick' if data['quick'] else ''}; from {data['source']}, measured {data['measured_at']})")
    else:
        print(f"workers: no data benchmark figure ({doc['data_json']} missing or unreadable; "
              "run `make bench-data` or bench/bench_data.py)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", choices=sorted(PRESETS),
                        help="default: tiny112 small224 on the CPU, and base224 too on CUDA")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--precision", choices=sorted(PRECISIONS), default="fp32",
                        help="bf16-mixed: forward and losses under torch.autocast(bfloat16), GEMM peak in bf16")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=None, help="clips per step (default: the preset's, 2)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--mask-step", type=int, default=0,
                        help="the mask step whose masks every counted, warm-up and timed step uses")
    parser.add_argument("--checkpointing", action="store_true", help="activation checkpointing")
    parser.add_argument("--compile", action="store_true", help="torch.compile the encoder and predictor")
    parser.add_argument("--json", default="bench/results/step.json")
    parser.add_argument("--data-json", default=DATA_JSON, help="the data benchmark's JSON, read for its clips/s")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error(f"--device cuda: no CUDA device is available to this torch ({torch.__version__}, "
                     f"built with CUDA {torch.version.cuda})")
    if args.precision == "bf16-mixed" and args.device == "cuda" and not torch.cuda.is_bf16_supported():
        parser.error("--precision bf16-mixed: this GPU does not support bfloat16")
    presets = args.presets or DEFAULT_PRESETS[args.device]
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    load_average = os.getloadavg()[0]
    started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")

    hwm_resettable = device.type == "cpu" and vm_hwm_resettable()
    if device.type == "cpu" and len(presets) > 1 and not args.child:  # one process per preset: see run_isolated
        results = [run_isolated(preset) for preset in presets]
    else:
        memory = PeakMemory(device, hwm_resettable)
        results = [run(preset, args, device, memory) for preset in presets]

    doc = {
        "measured_at": started, "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "precision": args.precision, "threads": args.threads, "torch": torch.__version__,
        "float32_matmul_precision": torch.get_float32_matmul_precision(), "mask_step": args.mask_step,
        "load_average_1m": load_average, "presets": results, "data_json": args.data_json,
        "data_pipeline": None if args.child else data_pipeline(args.data_json),
    }
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(doc, indent=2))
    if not args.child:
        print_table(doc)
        print(f"written {args.json}")


if __name__ == "__main__":
    main()
