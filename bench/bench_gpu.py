"""The GPU check: the study's base step (base224: ViT-B, 16 frames x 224 px, the study's predictor) in
bf16-mixed at the study's per-GPU batch (8: experiments/regimes/{ucf101,mixed}.yaml), one command.

Per variant (torch.compile off / on, activation checkpointing off / on): the first step's time (with
compile: the compilation), median / min / max step time after warm-up, the step's model FLOPs and the MFU
against this GPU's bf16 peak twice, measured (a large bf16 matmul in this process) and from the datasheet
table below by device name; peak memory (torch.cuda.max_memory_allocated over the variant's steps). With
two GPUs or more, also a 2-process DDP step (mp.spawn, nccl, one GPU each, eager, no checkpointing) and its
scaling against the single-GPU step. Without CUDA it says so and exits with code 2.

The step, module, masks and FLOP count are bench_step.py's (every step uses the masks of one mask step, so
the FLOPs counted are the work timed); compile goes through the module's own path (compile_model:
dynamic shapes, as in training). The FLOPs are counted once in eager without checkpointing (model FLOPs),
so the checkpointed variants' MFU leaves out their recomputation.

    python bench/bench_gpu.py                   # all four variants, + DDP when there are 2 GPUs
    python bench/bench_gpu.py --variants eager compile --steps 5 --no-ddp
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import socket
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench_step.py, next to this file
import bench_step  # noqa: E402

PRESET = "base224"
STUDY_BATCH_PER_GPU = 8
NO_CUDA_EXIT_CODE = 2

# Dense (no sparsity) bf16 tensor-core TFLOP/s from the vendors' datasheets, matched against the name
# torch.cuda.get_device_name reports, in this order (the first match wins).
DATASHEET_BF16_TFLOPS = [
    (r"\bH100\b.*\bPCIe\b", "H100 PCIe", 756.0),
    (r"\bH100\b.*\bNVL\b", "H100 NVL", 835.0),
    (r"\bH100\b.*\b(SXM|HBM3)", "H100 SXM", 989.0),
    (r"\bGH200\b", "GH200", 989.0),
    (r"\bH200\b.*\bNVL\b", "H200 NVL", 835.0),
    (r"\bH200\b", "H200 SXM", 989.0),
    (r"\bB200\b", "B200", 2250.0),
    (r"\bA100\b", "A100", 312.0),
    (r"\bA10\b", "A10", 125.0),
    (r"\bL40S\b", "L40S", 362.0),
    (r"\bL40\b", "L40", 181.0),
    (r"\bL4\b", "L4", 121.0),
    (r"\bRTX 4090\b", "GeForce RTX 4090", 165.0),
    (r"\bRTX 6000 Ada\b", "RTX 6000 Ada", 364.0),
    (r"\bRTX A6000\b", "RTX A6000", 155.0),
    (r"\bMI300X\b", "Instinct MI300X", 1307.0),
    (r"\bMI250X\b", "Instinct MI250X", 383.0),
]
VARIANTS = {  # name -> (compile, activation checkpointing)
    "eager": (False, False),
    "eager+ckpt": (False, True),
    "compile": (True, False),
    "compile+ckpt": (True, True),
}


def datasheet_peak(device_name: str) -> tuple[str, float] | None:
    """(datasheet label, dense bf16 TFLOP/s) for a device name, or None for a device not in the table."""
    for pattern, label, tflops in DATASHEET_BF16_TFLOPS:
        if re.search(pattern, device_name, re.IGNORECASE):
            return label, tflops
    return None


def mfu(flops_per_step: float, step_s: float, peak_tflops: float) -> float:
    """Model FLOPs utilisation: achieved FLOP/s over the peak."""
    return flops_per_step / step_s / (peak_tflops * 1e12)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--batch", type=int, default=STUDY_BATCH_PER_GPU, help="clips per GPU (the study's: 8)")
    parser.add_argument("--warmup", type=int, default=3, help="steps before timing (compile: the first compiles)")
    parser.add_argument("--steps", type=int, default=10, help="timed steps")
    parser.add_argument("--mask-step", type=int, default=0, help="the mask step every step uses")
    parser.add_argument("--gemm-size", type=int, default=8192, help="the measured peak's square bf16 matmul")
    parser.add_argument("--no-ddp", action="store_true", help="skip the 2-process DDP step")
    parser.add_argument("--json", default="bench/results/gpu.json")
    args = parser.parse_args(argv)
    if args.batch < 1 or args.warmup < 1 or args.steps < 1:
        parser.error("--batch, --warmup and --steps must be at least 1")
    return args


def no_cuda_message() -> str:
    return (f"bench_gpu.py: no CUDA device is available to this torch ({torch.__version__}, built with CUDA "
            f"{torch.version.cuda}); it measures the base224 step on a GPU. On the CPU use `make bench` "
            "(bench/bench_step.py).")


# ----- one variant on one GPU -----------------------------------------------------------------------------
def random_clip(batch: int, device: torch.device) -> torch.Tensor:
    size = bench_step.PRESETS[PRESET]["img_size"]
    return torch.randn(batch, 3, 16, size, size, device=device)


def build(checkpointing: bool, compile_model: bool, device: torch.device):
    module = bench_step.build(PRESET, checkpointing, compile_model=False).to(device).train()
    if compile_model:  # the training path: JEPAModule.configure_model, dynamic shapes
        # A fresh compiler cache per variant: its first step is its own compilation, and no earlier variant's
        # graphs count towards the recompilation limit (past it, dynamo falls back to eager without failing).
        torch._dynamo.reset()
        module.compile_model = True
        module.configure_model()
    return module


def measure_variant(name: str, args, device: torch.device, flops: float, peaks: dict) -> dict:
    compile_model, checkpointing = VARIANTS[name]
    torch.manual_seed(0)
    module = build(checkpointing, compile_model, device)
    optimizer = module.configure_optimizers()["optimizer"]
    clip = random_clip(args.batch, device)
    torch.cuda.reset_peak_memory_stats(device)
    warm = [bench_step.train_step(module, optimizer, clip, args.mask_step, "bf16-mixed")["step"]
            for _ in range(args.warmup)]
    times = [bench_step.train_step(module, optimizer, clip, args.mask_step, "bf16-mixed")["step"]
             for _ in range(args.steps)]
    median = statistics.median(times)
    result = {"variant": name, "compile": compile_model, "checkpointing": checkpointing,
              "first_step_s": warm[0], "median_s": median, "min_s": min(times), "max_s": max(times),
              "tflops_achieved": flops / median / 1e12,
              "mfu_measured_peak": mfu(flops, median, peaks["measured_tflops"]),
              "mfu_datasheet": mfu(flops, median, peaks["datasheet_tflops"]) if peaks["datasheet_tflops"] else None,
              "peak_memory_gib": torch.cuda.max_memory_allocated(device) / 2**30,
              "clips_per_s": args.batch / median}
    del module, optimizer, clip
    torch.cuda.empty_cache()
    return result


def count_model_flops(args, device: torch.device) -> dict:
    torch.manual_seed(0)
    module = build(checkpointing=False, compile_model=False, device=device)
    clip = random_clip(args.batch, device)
    count = bench_step.count_flops(module, clip, args.mask_step, "bf16-mixed")
    del module, clip
    torch.cuda.empty_cache()
    return count


def measured_peak_tflops(device: torch.device, size: int, repeats: int = 3) -> float:
    """The best of a few timings of bench_step's matmul peak (20 bf16 size^3 matmuls between synchronisations)."""
    return max(bench_step.gemm_gflops(device, torch.bfloat16, size) for _ in range(repeats)) / 1e3


# ----- 2-process DDP ----------------------------------------------------------------------------------------
class StepLoss(torch.nn.Module):
    """The step's loss as a module's forward, so that DistributedDataParallel sees it (it hooks the forward)."""

    def __init__(self, module):
        super().__init__()
        self.module = module

    def forward(self, clip: torch.Tensor, step: int) -> torch.Tensor:
        outputs = self.module.forward_step(clip, step=step)
        return torch.stack(list(self.module.loss_terms(outputs).values())).sum()


def ddp_worker(rank: int, world: int, port: int, args, out: str, device_type: str = "cuda") -> None:
    """One rank: eager base224 step under DDP, timed after warm-up; rank 0 writes the median. (device_type
    "cpu" runs it with gloo, to check the code path on a machine without GPUs.)"""
    cuda = device_type == "cuda"
    device = torch.device("cuda", rank) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if cuda else "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=world)
    try:
        torch.manual_seed(0)
        module = build(checkpointing=False, compile_model=False, device=device)
        step_loss = torch.nn.parallel.DistributedDataParallel(StepLoss(module), device_ids=[rank] if cuda else None)
        optimizer = module.configure_optimizers()["optimizer"]
        clip = random_clip(args.batch, device)
        times = []
        for i in range(args.warmup + args.steps):
            dist.barrier()
            bench_step.synchronize(device)
            start = time.perf_counter()
            with torch.autocast(device_type, dtype=torch.bfloat16):
                loss = step_loss(clip, args.mask_step)
            loss.backward()  # DDP all-reduces the gradients here
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            module.update_target(module.ema_momentum)
            bench_step.synchronize(device)
            if i >= args.warmup:
                times.append(time.perf_counter() - start)
        if rank == 0:
            Path(out).write_text(json.dumps({"world_size": world, "median_s": statistics.median(times),
                                             "min_s": min(times), "max_s": max(times)}))
    finally:
        dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def measure_ddp(args, device_type: str = "cuda") -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = str(Path(tmp) / "ddp.json")
        mp.spawn(ddp_worker, args=(2, free_port(), args, out, device_type), nprocs=2, join=True)
        return json.loads(Path(out).read_text())


# ----- report -------------------------------------------------------------------------------------------------
def print_table(doc: dict) -> None:
    peaks = doc["peaks"]
    sheet = (f"{peaks['datasheet_label']} {peaks['datasheet_tflops']:.0f} TFLOP/s" if peaks["datasheet_tflops"]
             else "not in the datasheet table")
    print(f"{doc['device']} ({doc['device_count']} GPU), torch {doc['torch']}, CUDA {doc['cuda']}; base224 "
          f"bf16-mixed, batch {doc['batch']} per GPU; median of {doc['timed_steps']} steps after "
          f"{doc['warmup_steps']} warm-up; masks of mask step {doc['mask_step']}")
    print(f"model FLOPs per step {doc['gflop']:.0f} GFLOP; bf16 peak measured {peaks['measured_tflops']:.0f} "
          f"TFLOP/s ({doc['gemm_size']}^3 matmul), datasheet: {sheet}")
    print(f"{'variant':<14}{'first s':>9}{'median s':>10}{'min s':>8}{'max s':>8}{'TFLOP/s':>9}"
          f"{'MFU meas':>10}{'MFU sheet':>11}{'peak GiB':>10}{'clips/s':>9}")
    for r in doc["variants"]:
        if "error" in r:
            print(f"{r['variant']:<14}failed: {r['error'].splitlines()[0][:100]}")
            continue
        sheet_mfu = f"{r['mfu_datasheet']:.2f}" if r["mfu_datasheet"] is not None else "-"
        print(f"{r['variant']:<14}{r['first_step_s']:>9.2f}{r['median_s']:>10.3f}{r['min_s']:>8.3f}{r['max_s']:>8.3f}"
              f"{r['tflops_achieved']:>9.1f}{r['mfu_measured_peak']:>10.2f}{sheet_mfu:>11}"
              f"{r['peak_memory_gib']:>10.2f}{r['clips_per_s']:>9.1f}")
    ddp = doc["ddp"]
    if isinstance(ddp, dict):
        print(f"DDP, 2 processes (nccl), eager: median {ddp['median_s']:.3f} s per step "
              f"(min {ddp['min_s']:.3f}, max {ddp['max_s']:.3f}); {ddp['scaling']:.2f} of the single-GPU eager "
              "step's speed per GPU")
    else:
        print(f"DDP: {ddp}")


def main(argv=None) -> None:
    args = parse_args(argv)
    if not torch.cuda.is_available():
        print(no_cuda_message(), file=sys.stderr)
        sys.exit(NO_CUDA_EXIT_CODE)
    if not torch.cuda.is_bf16_supported():
        print(f"bench_gpu.py: {torch.cuda.get_device_name()} does not support bfloat16", file=sys.stderr)
        sys.exit(NO_CUDA_EXIT_CODE)
    device = torch.device("cuda", 0)
    name = torch.cuda.get_device_name(device)
    started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    sheet = datasheet_peak(name)
    count = count_model_flops(args, device)
    flops = count["counter"] + count["attention"]
    peaks = {"measured_tflops": measured_peak_tflops(device, args.gemm_size),
             "datasheet_label": sheet[0] if sheet else None, "datasheet_tflops": sheet[1] if sheet else None}
    results = []
    for variant in args.variants:
        try:
            results.append(measure_variant(variant, args, device, flops, peaks))
            print(f"  {variant}: {results[-1]['median_s']:.3f} s", flush=True)
        except Exception as error:  # e.g. out of memory or a compiler failure: the other variants still run
            traceback.print_exc()
            results.append({"variant": variant, "error": f"{type(error).__name__}: {error}"[:500]})
            torch.cuda.empty_cache()
    peaks["measured_tflops_after"] = measured_peak_tflops(device, args.gemm_size)

    if args.no_ddp:
        ddp = "skipped (--no-ddp)"
    elif torch.cuda.device_count() < 2:
        ddp = f"skipped: {torch.cuda.device_count()} GPU (it needs 2)"
    else:
        try:
            ddp = measure_ddp(args)
            eager = next((r for r in results if r["variant"] == "eager" and "error" not in r), None)
            ddp["scaling"] = eager["median_s"] / ddp["median_s"] if eager else float("nan")
        except Exception as error:
            traceback.print_exc()
            ddp = f"failed: {type(error).__name__}: {error}"[:500]

    doc = {"measured_at": started, "device": name, "device_count": torch.cuda.device_count(),
           "torch": torch.__version__, "cuda": torch.version.cuda, "preset": PRESET, "batch": args.batch,
           "warmup_steps": args.warmup, "timed_steps": args.steps, "mask_step": args.mask_step,
           "gemm_size": args.gemm_size, "gflop": flops / 1e9, "gflop_attention": count["attention"] / 1e9,
           "tokens": count["tokens"], "peaks": peaks, "variants": results, "ddp": ddp}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(doc, indent=2))
    print_table(doc)
    print(f"written {args.json}")


if __name__ == "__main__":
    main()
