"""Where runs execute: here, ``jobs`` at a time (or one per GPU group), or as a SLURM array."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path
from queue import Queue
from typing import Callable, Optional

from jepa_lit.study.runs import Run
from jepa_lit.study.spec import SweepSpec


def run_local(runs: list[Run], executor: Callable[[Run, Optional[str]], str], jobs: int = 1,
              gpu_groups: Optional[list[str]] = None) -> dict[str, str]:
    """Every run, ``jobs`` at a time (one per GPU group when groups are given); returns run_id -> status."""
    statuses: dict[str, str] = {}
    if gpu_groups:
        jobs = len(gpu_groups)
    free: Queue = Queue()  # one worker is the sequential case: runs go in order
    for group in gpu_groups or [None] * max(1, jobs):
        free.put(group)

    def work(run: Run) -> None:
        group = free.get()
        try:
            statuses[run.run_id] = executor(run, group)
        finally:
            free.put(group)

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        for future in [pool.submit(work, run) for run in runs]:
            future.result()
    return statuses


def sbatch_script(runs: list[Run], spec: SweepSpec, python: str = sys.executable) -> str:
    """An sbatch array script: task i runs ``runs[i]``, named by its id in the script (``--run-id``), so a
    task runs the run it was written for whatever the selection (``--only``) or later edits of the spec."""
    slurm = asdict(spec.slurm)
    root = spec.root
    array = f"0-{len(runs) - 1}" + (f"%{slurm['max_parallel']}" if slurm.get("max_parallel") else "")
    lines = ["#!/bin/bash",
             f"#SBATCH --job-name=jepa-{spec.name}-{spec.scale}",
             f"#SBATCH --array={array}",
             f"#SBATCH --nodes={slurm['nodes']}",
             f"#SBATCH --ntasks-per-node={max(1, slurm['gpus_per_node'])}",
             f"#SBATCH --cpus-per-task={slurm['cpus_per_task']}",
             f"#SBATCH --mem={slurm['mem']}",
             f"#SBATCH --time={slurm['time']}",
             f"#SBATCH --output={root}/slurm/%A_%a.out",
             "#SBATCH --open-mode=append"]
    if slurm["gpus_per_node"]:
        lines.append(f"#SBATCH --gres=gpu:{slurm['gpus_per_node']}")
    for key in ("partition", "account"):
        if slurm.get(key):
            lines.append(f"#SBATCH --{key}={slurm[key]}")
    lines += [f"#SBATCH {extra}" for extra in slurm.get("extra") or []]
    lines += ["",
              f"# {len(runs)} runs of sweep {spec.name!r}, scale {spec.scale!r}; task i runs RUNS[i]:",
              *[f"#   {i}: {run.run_id}" for i, run in enumerate(runs)],
              "# Pretraining runs under srun (one task per GPU, as Lightning's SLURM environment expects); the",
              "# probes run in this batch step. A task that ran out of time resumes from last.ckpt when resubmitted.",
              "# Each task selects its run by id (--run-id), not by position: a position would shift with --only",
              "# or with an edit of the spec while the array waits in the queue.",
              "RUNS=(" + " ".join(shlex.quote(run.run_id) for run in runs) + ")",
              "RUN_ID=${RUNS[$SLURM_ARRAY_TASK_ID]}",
              f"cd {shlex.quote(os.getcwd())}",
              "export NO_ALBUMENTATIONS_UPDATE=1",
              f"exec {shlex.quote(python)} -m jepa_lit.study sweep {shlex.quote(spec.spec_path)} --scale {spec.scale} "
              "--run-id \"$RUN_ID\" --fit-prefix 'srun --kill-on-bad-exit=1'",
              ""]
    return "\n".join(lines)


def submit_slurm(runs: list[Run], spec: SweepSpec, submit: bool = True) -> Path:
    script = spec.root / "slurm" / "sweep.sbatch"
    script.parent.mkdir(parents=True, exist_ok=True)
    script.write_text(sbatch_script(runs, spec))
    print(f"sbatch script: {script} ({len(runs)} array tasks)")
    if submit:
        if shutil.which("sbatch") is None:
            raise RuntimeError(f"sbatch not found on this machine; submit {script} from a SLURM login node")
        out = subprocess.run(["sbatch", str(script)], capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError(f"sbatch {script} failed: {out.stderr.strip()}")
        print(out.stdout.strip())
    return script
