"""`make gpu-check`: what a GPU machine can tell about jepa-lit in one command of at most 8 minutes, in one JSON.

For a machine whose python3 already has a CUDA torch (any version, e.g. 2.11) and Lightning, without network:

  install    the packages that image lacks from a folder of wheels (`make gpu-wheels`, prepared beforehand on a
             machine that reaches the package index; bench/gpu_wheels.py) into a folder of their own (--site,
             default .gpu-site/, put first on PYTHONPATH), and jepa-lit itself as an editable install without
             dependencies; torch and every other package of the system stay as they are (checked: the torch
             version before and after)
  tests      the tests whose paths change on a GPU (tests/test_cuda_paths.py: device against CPU)
  fit        20 steps of a study config through `jepa-lit fit` (experiments/mixed_fwm_hw_ld.yaml: ViT-B, 8 clips of
             16 x 224 px, bf16-mixed, FWM-HW-LD) on the fixture datasets, 1 GPU, with Lightning's simple profiler,
             the step times from the batch hooks (bench/bench_fit.py) and the host-device syncs per step
             (torch.cuda.set_sync_debug_mode("warn"): every synchronising CUDA call warns; counted per step from
             one batch start to the next, after 5 warm-up steps, by the Python line that made it)
  bench-gpu  bench/bench_gpu.py (what `make bench-gpu` runs): eager and eager + activation checkpointing first,
             then the compiled variant with the time that is left

Each part runs in its own process with a time limit; a part that fails or runs out of time is recorded as such
and the others still run. Results: bench/results/gpu_check.json (the parts' own JSONs and logs beside it in
bench/results/gpu_check/). Exit code: 0 when every part passed, 1 when one failed, 3 when there is no GPU
(the JSON says so, nothing is installed or run).

    python3 bench/gpu_check.py                      # what `make gpu-check` runs
    python3 bench/gpu_check.py --dry-run            # print the install plan and the parts' commands
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NO_GPU_EXIT_CODE = 3
FAILED_EXIT_CODE = 1
STUDY_CONFIG = "experiments/mixed_fwm_hw_ld.yaml"
CUDA_TESTS = ["tests/test_cuda_paths.py"]
SYNC_WARMUP_STEPS = 5
# Seconds per part; the compiled bench-gpu variant gets what is left of --budget-s.
LIMITS = {"install": 60, "tests": 90, "fit": 150, "bench-gpu eager": 90}


# ----- the plan -------------------------------------------------------------------------------------------
def install_commands(python: str, wheels: Path, site: Path) -> list[list[str]]:
    """The wheels into their own folder (nothing of the system's replaced), then jepa-lit, editable, no deps."""
    return [
        [python, "-m", "pip", "install", "--no-index", "--no-deps", "--no-compile", "--no-cache-dir", "--upgrade",
         "--target", str(site), *sorted(str(p) for p in wheels.glob("*.whl"))],
        [python, "-m", "pip", "install", "--no-index", "--no-deps", "--no-build-isolation", "--no-cache-dir", "-e",
         str(REPO)],
    ]


def part_commands(python: str, out: Path, args) -> dict[str, list[str]]:
    bench_gpu = [python, str(REPO / "bench" / "bench_gpu.py"), "--no-ddp", "--steps", str(args.bench_steps)]
    return {
        "tests": [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", *CUDA_TESTS],
        "fit": [python, str(Path(__file__).resolve()), "--part", "fit", "--steps", str(args.fit_steps),
                "--out", str(out / "fit.json")],
        "bench-gpu eager": [*bench_gpu, "--variants", "eager", "eager+ckpt", "--json", str(out / "gpu_eager.json")],
        "bench-gpu compile": [*bench_gpu, "--variants", "compile", "--json", str(out / "gpu_compile.json")],
    }


def environment(site: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), str(site), env.get("PYTHONPATH", "")) if p)
    env["NO_ALBUMENTATIONS_UPDATE"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    return env


# ----- running a part -------------------------------------------------------------------------------------
def run_part(name: str, command: list[str], limit_s: float, env: dict, log: Path) -> dict:
    """Run one part with a time limit, its output in `log`; rc, seconds, whether it timed out, its last lines."""
    started = time.perf_counter()
    with open(log, "w") as out:
        try:
            rc = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO,
                                timeout=max(1.0, limit_s)).returncode
            timed_out = False
        except subprocess.TimeoutExpired:
            rc, timed_out = None, True
    tail = log.read_text(errors="replace").splitlines()[-15:]
    return {"part": name, "rc": rc, "ok": rc == 0, "timed_out": timed_out, "limit_s": round(limit_s, 1),
            "seconds": round(time.perf_counter() - started, 1), "log": str(log), "tail": tail}


def pytest_counts(lines: list[str]) -> dict:
    """'3 passed, 1 skipped in 4.2s' -> {'passed': 3, 'skipped': 1} (pytest's closing line)."""
    for line in reversed(lines):
        found = re.findall(r"(\d+) (passed|failed|skipped|errors?|deselected|xfailed|xpassed)", line)
        if found:
            return {kind: int(n) for n, kind in found}
    return {}


def read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


# ----- the fit part (its own process) ---------------------------------------------------------------------
def fit_arguments(data_root: Path, run_dir: Path, steps: int, profile_dir: Path) -> list[str]:
    """The study config on one GPU, on the fixture tree, `steps` steps, simple profiler, no validation."""
    return ["fit", "--config", str(REPO / STUDY_CONFIG),
            f"--data.init_args.root={data_root}", f"--data.init_args.samples_per_epoch={8 * (steps + 4)}",
            "--trainer.accelerator=gpu", "--trainer.devices=1", "--trainer.strategy=auto",
            "--trainer.precision=bf16-mixed", f"--trainer.max_steps={steps}", "--trainer.limit_val_batches=0",
            f"--trainer.default_root_dir={run_dir}", f"--trainer.logger.init_args.save_dir={run_dir}",
            "--trainer.enable_progress_bar=false",
            '--trainer.profiler={"class_path": "lightning.pytorch.profilers.SimpleProfiler", "init_args": '
            f'{{"dirpath": "{profile_dir}", "filename": "simple"}}}}',
            '--trainer.callbacks+={"class_path": "bench_fit.FitTimer"}',
            '--trainer.callbacks+={"class_path": "sync_counter.SyncCounter", "init_args": '
            f'{{"warmup": {SYNC_WARMUP_STEPS}}}}}']


def fit_part(steps: int, out: Path, extra_arguments: tuple[str, ...] = ()) -> None:
    """The fit part, in its own process; `extra_arguments` come last and win (the tests' tiny CPU model)."""
    import torch

    sys.path.insert(0, str(REPO / "bench"))
    import bench_fit
    from jepa_lit.cli import run_cli
    from jepa_lit.data.datasets import DATASETS

    warnings.filterwarnings("ignore", message="LightningCLI's args parameter is intended")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for name in ("imagenet100", "ssv2", "ucf101"):
            DATASETS[name].make_fixture(tmp / "data" / name, broken=False)
        started = time.perf_counter()
        cli = run_cli(fit_arguments(tmp / "data", tmp / "run", steps, tmp / "profile") + list(extra_arguments))
        wall = time.perf_counter() - started
        profile = "".join(p.read_text() for p in sorted((tmp / "profile").glob("*.txt")))
    # The report's rows are padded to hundreds of columns: one space between cells, no rule lines.
    profile_rows = [re.sub(r"\s+", " ", line).strip() for line in profile.splitlines() if line.strip("-\n ")]
    timer = next(c for c in cli.trainer.callbacks if type(c).__name__ == "FitTimer")
    counter = next(c for c in cli.trainer.callbacks if type(c).__name__ == "SyncCounter")
    doc = {"config": STUDY_CONFIG, "steps_run": cli.trainer.global_step, "batch": cli.datamodule.batch_size,
           "workers": cli.datamodule.num_workers, "precision": str(cli.trainer.precision), "fit_wall_s": wall,
           "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
           "peak_memory_gib": torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else None,
           "steps": bench_fit.step_times(timer.starts, timer.ends, min(SYNC_WARMUP_STEPS, steps - 2),
                                         cli.datamodule.batch_size),
           # the last window runs to the fit's end, so it also holds the final checkpoint's copies: the median
           "syncs_per_step": counter.per_step,
           "syncs_per_step_median": statistics.median(counter.per_step) if counter.per_step else None,
           "sync_sites": dict(counter.sites.most_common()),
           "sync_warmup_steps": SYNC_WARMUP_STEPS, "simple_profiler": profile_rows[:60]}
    out.write_text(json.dumps(doc, indent=2))
    print(json.dumps({k: doc[k] for k in ("steps_run", "steps", "syncs_per_step")}, indent=1))


# ----- the check ------------------------------------------------------------------------------------------
def no_gpu_reason() -> str | None:
    try:
        import torch
    except ImportError as error:
        return f"this python3 ({sys.executable}) has no torch: {error}"
    if not torch.cuda.is_available():
        return (f"no CUDA device is available to this python3's torch ({torch.__version__}, built with CUDA "
                f"{torch.version.cuda}); gpu-check needs one GPU")
    return None


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--wheels", default=str(REPO / "gpu-wheels"), help="the folder `make gpu-wheels` made")
    parser.add_argument("--site", default=str(REPO / ".gpu-site"), help="where the wheels are installed")
    parser.add_argument("--skip-install", action="store_true", help="the packages are there already")
    parser.add_argument("--budget-s", type=float, default=480, help="the whole check's time (default 8 minutes)")
    parser.add_argument("--fit-steps", type=int, default=20)
    parser.add_argument("--bench-steps", type=int, default=5, help="bench_gpu.py's timed steps per variant")
    parser.add_argument("--json", default=str(REPO / "bench" / "results" / "gpu_check.json"))
    parser.add_argument("--dry-run", action="store_true", help="print the install plan and the commands, run nothing")
    parser.add_argument("--part", choices=["fit"], help=argparse.SUPPRESS)  # a part's own process
    parser.add_argument("--steps", type=int, default=20, help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.fit_steps < SYNC_WARMUP_STEPS + 2:
        parser.error(f"--fit-steps must be at least {SYNC_WARMUP_STEPS + 2} (warm-up + 2 timed steps)")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.part == "fit":
        fit_part(args.steps, Path(args.out))
        return 0
    python, wheels, site, out_json = sys.executable, Path(args.wheels), Path(args.site), Path(args.json)
    out = out_json.with_suffix("")
    plan = [] if args.skip_install else install_commands(python, wheels, site)
    parts = part_commands(python, out, args)
    if args.dry_run:
        for command in plan + list(parts.values()):
            print(" ".join(command))
        return 0

    started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    doc: dict = {"measured_at": started, "python": python, "gpu": False}
    out_json.parent.mkdir(parents=True, exist_ok=True)
    reason = no_gpu_reason()
    if reason:
        doc.update(reason=reason, exit_code=NO_GPU_EXIT_CODE)
        out_json.write_text(json.dumps(doc, indent=2))
        print(f"gpu-check: NO GPU: {reason}. Nothing was installed or run; {out_json} says so. "
              f"Exit code {NO_GPU_EXIT_CODE}.", file=sys.stderr)
        return NO_GPU_EXIT_CODE

    import torch

    doc.update(gpu=True, device=torch.cuda.get_device_name(), device_count=torch.cuda.device_count(),
               torch=torch.__version__, cuda=torch.version.cuda, parts={})
    out.mkdir(parents=True, exist_ok=True)
    deadline = time.perf_counter() + args.budget_s
    env = environment(site)

    def left() -> float:
        return deadline - time.perf_counter()

    if plan:
        if not wheels.is_dir() or not list(wheels.glob("*.whl")):
            doc["parts"]["install"] = {"ok": False, "error": f"no wheels in {wheels}: run `make gpu-wheels` on a "
                                       "machine that reaches the package index, and bring the folder"}
        else:
            steps = [run_part(f"install {i}", c, min(LIMITS["install"], left()), env, out / f"install_{i}.log")
                     for i, c in enumerate(plan)]
            check = subprocess.run([python, "-c", "import torch, av, albumentations, jsonargparse, jepa_lit.cli; "
                                    "print(torch.__version__)"], capture_output=True, text=True, env=env, cwd=REPO)
            torch_after = check.stdout.strip()
            doc["parts"]["install"] = {"ok": all(s["ok"] for s in steps) and check.returncode == 0
                                       and torch_after == torch.__version__, "steps": steps,
                                       "imports": check.returncode == 0, "torch_before": torch.__version__,
                                       "torch_after": torch_after, "import_error": check.stderr[-500:]}
    for name, command in parts.items():
        limit = left() if name == "bench-gpu compile" else min(LIMITS[name], left())
        if limit < 10:
            doc["parts"][name] = {"part": name, "ok": False, "skipped": f"no time left of --budget-s {args.budget_s:g}"}
            continue
        result = run_part(name, command, limit, env, out / f"{name.replace(' ', '_')}.log")
        if name == "tests":
            result["counts"] = pytest_counts(result["tail"])
        elif name == "fit":
            result["result"] = read_json(out / "fit.json")
        else:
            result["result"] = read_json(Path(command[command.index("--json") + 1]))
        doc["parts"][name] = result
        print(f"gpu-check: {name}: {'ok' if result['ok'] else 'FAILED'} in {result['seconds']} s", flush=True)

    failed = [name for name, part in doc["parts"].items() if not part.get("ok")]
    doc.update(failed=failed, exit_code=FAILED_EXIT_CODE if failed else 0)
    out_json.write_text(json.dumps(doc, indent=2))
    print(f"gpu-check: {doc['device']}: {'all parts passed' if not failed else 'failed: ' + ', '.join(failed)}; "
          f"written {out_json}")
    return doc["exit_code"]


if __name__ == "__main__":
    sys.exit(main())
