"""Where runs execute: here, ``jobs`` at a time (or one per GPU group), or as SLURM arrays (one per layout)."""

from __future__ import annotations

import copy
import os
import shlex
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from queue import Queue
from typing import Any, Callable, Optional

from jepa_lit.config import load_yaml
from jepa_lit.study.runs import Run, merged_config
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


@dataclass(frozen=True)
class Resources:
    """What one SLURM array task asks for: its run's own layout. Lightning's SLURM environment wants one
    task per device and takes the world size from SLURM_NTASKS (= nodes x tasks per node)."""

    nodes: int
    tasks_per_node: int
    gpus_per_node: int  # 0: a CPU run

    @property
    def name(self) -> str:
        return f"{self.nodes}x{self.tasks_per_node}{'gpu' if self.gpus_per_node else 'cpu'}"


def run_resources(run: Run, load: Callable[[str], Any] = load_yaml) -> Resources:
    """The run's ``trainer.num_nodes`` x ``trainer.devices`` from its merged config (the random_init control
    only probes: one task, one GPU unless the run trains on the CPU)."""
    trainer = merged_config([load(f) for f in run.config_stack], run.fit_overrides).get("trainer") or {}
    on_gpus = str(trainer.get("accelerator", "auto")) != "cpu"
    if not run.pretrain:
        return Resources(1, 1, int(on_gpus))
    layout = {key: trainer.get(key, 1) for key in ("num_nodes", "devices")}
    for key, value in layout.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{run.config}: trainer.{key}: --launcher slurm needs a number (one task per device and "
                             f"node), got {value!r}")
    return Resources(layout["num_nodes"], layout["devices"], layout["devices"] if on_gpus else 0)


def sbatch_script(runs: list[Run], spec: SweepSpec, resources: Resources, python: str = sys.executable) -> str:
    """An sbatch array script for runs of one layout: task i runs ``runs[i]``, named by its id in the script
    (``--run-id``), so a task runs the run it was written for whatever the selection (``--only``) or later
    edits of the spec. ``slurm.signal_seconds`` before the time limit SLURM sends SIGTERM to the fit's tasks:
    they save last.ckpt and exit 143, and the task requeues itself to resume (docs/distributed.md)."""
    slurm = asdict(spec.slurm)
    root = spec.root
    array = f"0-{len(runs) - 1}" + (f"%{slurm['max_parallel']}" if slurm.get("max_parallel") else "")
    lines = ["#!/bin/bash",
             f"#SBATCH --job-name=jepa-{spec.name}-{spec.scale}-{resources.name}",
             f"#SBATCH --array={array}",
             f"#SBATCH --nodes={resources.nodes}",
             f"#SBATCH --ntasks-per-node={resources.tasks_per_node}",
             f"#SBATCH --cpus-per-task={slurm['cpus_per_task']}",
             f"#SBATCH --mem={slurm['mem']}",
             f"#SBATCH --time={slurm['time']}",
             f"#SBATCH --signal=TERM@{slurm['signal_seconds']}",
             f"#SBATCH --output={root}/slurm/%A_%a.out",
             "#SBATCH --open-mode=append"]
    if resources.gpus_per_node:
        lines.append(f"#SBATCH --gres=gpu:{resources.gpus_per_node}")
    if slurm["requeue"]:
        lines.append("#SBATCH --requeue")
    for key in ("partition", "account"):
        if slurm.get(key):
            lines.append(f"#SBATCH --{key}={slurm[key]}")
    lines += [f"#SBATCH {extra}" for extra in slurm.get("extra") or []]
    # srun does not inherit --cpus-per-task on every Slurm version (23.11+ ignores SLURM_CPUS_PER_TASK)
    srun = f"srun --kill-on-bad-exit=1 --cpus-per-task={slurm['cpus_per_task']}"
    requeue = ('if [ "$status" -eq 143 ]; then scontrol requeue "${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}"; fi'
               if slurm["requeue"] else "")
    lines += ["",
              f"# {len(runs)} runs of sweep {spec.name!r}, scale {spec.scale!r}, {resources.nodes} node(s) x "
              f"{resources.tasks_per_node} task(s); task i runs RUNS[i]:",
              *[f"#   {i}: {run.run_id}" for i, run in enumerate(runs)],
              "# Pretraining runs under srun (one task per device, as Lightning's SLURM environment expects); the",
              "# probes run in this batch step. Each task selects its run by id (--run-id), not by position: a",
              "# position would shift with --only or with an edit of the spec while the array waits in the queue.",
              "RUNS=(" + " ".join(shlex.quote(run.run_id) for run in runs) + ")",
              "RUN_ID=${RUNS[$SLURM_ARRAY_TASK_ID]}",
              f"cd {shlex.quote(os.getcwd())}",
              "export NO_ALBUMENTATIONS_UPDATE=1",
              f"{shlex.quote(python)} -m jepa_lit.study sweep {shlex.quote(spec.spec_path)} --scale {spec.scale} "
              f"--run-id \"$RUN_ID\" --fit-prefix {shlex.quote(srun)}",
              "status=$?",
              "# 143: the fit stopped on the SIGTERM sent ahead of the time limit, after saving last.ckpt. Requeued,",
              "# the task resumes it (fit --ckpt_path last). A preempted job is requeued by SLURM itself (--requeue).",
              requeue,
              'exit "$status"',
              ""]
    return "\n".join(lines)


def slurm_arrays(runs: list[Run]) -> dict[Resources, list[Run]]:
    """The runs grouped by layout, in order: one array job each (an array's tasks share one request)."""
    arrays: dict[Resources, list[Run]] = {}
    loaded: dict[str, Any] = {}  # the runs share most of their config files

    def load(file: str) -> Any:
        if file not in loaded:
            loaded[file] = load_yaml(file)
        return copy.deepcopy(loaded[file])

    for run in runs:
        arrays.setdefault(run_resources(run, load), []).append(run)
    return arrays


def submit_slurm(runs: list[Run], spec: SweepSpec, submit: bool = True) -> list[Path]:
    scripts = []
    for resources, group in slurm_arrays(runs).items():
        script = spec.root / "slurm" / f"sweep-{resources.name}.sbatch"
        script.parent.mkdir(parents=True, exist_ok=True)
        script.write_text(sbatch_script(group, spec, resources))
        print(f"sbatch script: {script} ({len(group)} array tasks of {resources.nodes} node(s) x "
              f"{resources.tasks_per_node} task(s))")
        scripts.append(script)
    if submit:
        if shutil.which("sbatch") is None:
            raise RuntimeError(f"sbatch not found on this machine; submit {', '.join(map(str, scripts))} from a "
                               "SLURM login node")
        for script in scripts:
            out = subprocess.run(["sbatch", str(script)], capture_output=True, text=True)
            if out.returncode != 0:
                raise RuntimeError(f"sbatch {script} failed: {out.stderr.strip()}")
            print(out.stdout.strip())
    return scripts
