"""Runs one sweep run to completion in subprocesses, resuming whatever is already on disk.

Why subprocesses (``python -m jepa_lit.cli``) and not the CLI in this process: Lightning's DDP launcher
starts the other ranks by re-running the current command line, which must be the CLI's, not the
sweep's; under SLURM the pretraining is started with ``srun`` (one task per GPU) while the probe runs as
one process; a crash, an out-of-memory kill or leftover global state (seeds, process groups, CUDA) stays
inside one run; and N runs at a time are N processes. The price is a few seconds of start-up per command.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import socket
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import yaml

from jepa_lit.atomic import write_text
from jepa_lit.config import deep_merge
from jepa_lit.eval.probe_result import ProbeResult
from jepa_lit.precision import cpu_description
from jepa_lit.study.lock import LOCK_FD_VARIABLE, RunLock
from jepa_lit.study.plan import checkpoint_step, plan, resume_checkpoint, target_steps
from jepa_lit.study.registry import (REPO, PackageInfo, ProbeMetrics, RegistryError, RunRecord, now, package_info,
                                     read_record, read_results, write_record)
from jepa_lit.study.runs import FIT_OVERRIDES, Run

Launch = Callable[[list[str], Path, dict[str, str]], int]


# Set when the sweep is told to stop (Ctrl-C, SIGTERM): runs whose commands then end are ``interrupted``, not
# ``failed``, and runs not yet started are left alone.
STOPPING = threading.Event()
# Exit statuses of a command stopped by SIGINT / SIGTERM (the CLI's 143 included): the run was interrupted.
INTERRUPTED_STATUSES = (130, 143, -signal.SIGINT, -signal.SIGTERM)
_children: set[subprocess.Popen] = set()
_children_lock = threading.Lock()


def subprocess_launch(cmd: list[str], log: Path, env: dict[str, str]) -> int:
    """Run a command with its output appended to ``log``; returns its exit status. The run's lock file
    (``LOCK_FD_VARIABLE`` in ``env``) is passed on, so the lock lasts as long as the command."""
    log.parent.mkdir(parents=True, exist_ok=True)
    keep = (int(env[LOCK_FD_VARIABLE]),) if env.get(LOCK_FD_VARIABLE) else ()
    with open(log, "a") as handle:
        handle.write(f"\n===== {now()}  {shlex.join(cmd)}\n")
        handle.flush()
        process = subprocess.Popen(cmd, stdout=handle, stderr=subprocess.STDOUT, env=env, cwd=os.getcwd(),
                                   pass_fds=keep)
        with _children_lock:
            _children.add(process)
        try:
            return process.wait()
        except BaseException:  # the sweep itself is stopping: the command must not train on unwatched
            process.terminate()
            process.wait()
            raise
        finally:
            with _children_lock:
                _children.discard(process)


def stop_children(signum: int = signal.SIGTERM) -> None:
    """Tell every running command to stop (a fit then saves last.ckpt and exits 143)."""
    STOPPING.set()
    with _children_lock:
        for process in _children:
            if process.poll() is None:
                process.send_signal(signum)


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def write_yaml(path: Path, data: dict[str, Any], header: str = "") -> None:
    write_text(path, (header + "\n" if header else "") + yaml.safe_dump(data, sort_keys=False))


def probe_metrics(result: ProbeResult, output_name: str) -> ProbeMetrics:
    """The registry's copy of a probe result's numbers."""
    return ProbeMetrics(
        top1=result.top1, top1_ci95=result.top1_ci95, top5=result.top5, mean_class_acc=result.mean_class_acc,
        num_test_clips=result.num_test_clips, comparison_key=result.comparison_key, epochs=result.epochs,
        checkpoint_step=result.checkpoint_step, encoder=result.encoder, results=f"probes/{output_name}")


@dataclass
class Executor:
    """Runs one sweep run to completion, resuming whatever is already on disk."""

    launch: Launch = subprocess_launch
    python: str = sys.executable
    fit_prefix: list[str] = field(default_factory=list)  # e.g. ["srun"] inside a SLURM allocation
    rerun_changed: bool = False
    retry_failed: bool = False  # try again a run whose last two attempts failed the same way
    echo: Callable[[str], None] = print
    # jepa-lit's version and git commit, read once before runs start (None: read on first use)
    package: Optional[PackageInfo] = None
    # ids of the runs whose commands this executor started: the sweep's ETA times only these (a run skipped as
    # complete, refused or locked takes no time)
    executed: set[str] = field(default_factory=set)

    def environment(self, run: Run, gpus: Optional[str] = None, probe: bool = False,
                    lock: Optional[RunLock] = None) -> dict[str, str]:
        env = {**os.environ, **run.env}
        if lock is not None and lock.fd is not None:
            env[LOCK_FD_VARIABLE] = str(lock.fd)
        env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [env.get("PYTHONPATH")])])
        if gpus is not None:
            env["CUDA_VISIBLE_DEVICES"] = gpus
        if probe:  # a probe is one process: Lightning must not read the allocation's task layout as its own
            env = {k: v for k, v in env.items() if not k.startswith("SLURM_")}
        return env

    def __call__(self, run: Run, gpus: Optional[str] = None) -> str:
        """Returns the run's final status (done, failed, interrupted, changed, locked)."""
        if STOPPING.is_set():
            return "interrupted"
        if plan(run)[0] == "skip":  # no lock needed to leave a finished run alone
            self.echo(f"{run.run_id}: done, skipped")
            return "done"
        lock = RunLock(run)
        held = lock.acquire()
        if held is not None:
            self.echo(f"{run.run_id}: skipped: {held}")
            return "locked"
        try:
            record = read_record(run.registry_path)  # again, under the lock: another sweep may have moved it on
            action, why = plan(run, record, self.retry_failed)
            if action == "failed":  # recorded with the reason, and left alone: a third try would fail again
                record.status, record.error, record.updated = "failed", why, now()
                write_record(run.registry_path, record)
                self.echo(f"{run.run_id}: FAILED: {why}")
                return "failed"
            if action == "skip":
                self.echo(f"{run.run_id}: done, skipped")
                return "done"
            if action in ("changed", "restart"):
                if action == "changed" and not self.rerun_changed:
                    self.echo(f"{run.run_id}: refused: {why}")
                    return "changed"
                lock.release()
                aside = run.run_dir.with_name(f"{run.run_dir.name}.replaced-{time.strftime('%Y%m%d-%H%M%S')}")
                run.run_dir.rename(aside)
                self.echo(f"{run.run_id}: config changed; the old run moved to {aside}" if action == "changed" else
                          f"{run.run_id}: {why}; the old run (its probe results with it) moved to {aside}")
                held = lock.acquire()
                if held is not None:
                    self.echo(f"{run.run_id}: skipped: {held}")
                    return "locked"
                record, action = None, "start"
            self.executed.add(run.run_id)
            return self._execute(run, record, action, gpus, lock)
        except BaseException as error:  # Ctrl-C or a bug: say so in the registry; the files decide the resume
            if lock.held:
                try:
                    current = read_record(run.registry_path) or RunRecord.new(run, self.package)
                except RegistryError:
                    current = RunRecord.new(run, self.package)
                stopped = isinstance(error, KeyboardInterrupt) or STOPPING.is_set()
                current.status = "interrupted" if stopped else "failed"
                current.error, current.updated = f"{type(error).__name__}: {error}", now()
                write_record(run.registry_path, current)
            raise
        finally:
            lock.release()

    def _execute(self, run: Run, previous: Optional[RunRecord], action: str, gpus: Optional[str],
                 lock: Optional[RunLock] = None) -> str:
        if self.package is None:
            self.package = package_info()
        record = RunRecord.new(run, self.package)  # the current config, probes and package; history carried over
        if previous is not None:
            record.attempts, record.created = previous.attempts, previous.created
            if action == "probe":
                record.pretraining = previous.pretraining
        record.status, record.host, record.pid = "running", socket.gethostname(), os.getpid()
        # the environment its commands get (threads, kernels) and the CPU: what else decides its numbers
        attempt = {"started": now(), "action": action, "package": dict(vars(self.package)),
                   "host": socket.gethostname(), "env": dict(run.env), "cpu": cpu_description()}
        record.attempts.append(attempt)
        write_record(run.registry_path, record)
        write_yaml(run.run_dir / FIT_OVERRIDES, run.run_overrides(),
                   f"# written by jepa_lit.study for {run.run_id} (scale {run.scale}); the last --config of its fit")

        def fail(message: str, log: Optional[Path] = None, rc: Optional[int] = None) -> str:
            # A command stopped by Ctrl-C / SIGTERM (or while the sweep stops) was interrupted, not broken.
            status = "interrupted" if STOPPING.is_set() or rc in INTERRUPTED_STATUSES else "failed"
            record.status, record.error, record.updated = status, message, now()
            attempt.update(ended=now(), error=message, status=status)
            write_record(run.registry_path, record)
            self.echo(f"{run.run_id}: {status.upper()}: {message}" + (f"\n{tail(log)}" if log else ""))
            return status

        # 1. pretraining (the random_init control: its architecture file instead)
        if action in ("start", "resume") and not run.pretrain:
            from jepa_lit.study.architecture import write_architecture_checkpoint

            self.echo(f"{run.run_id}: no pretraining (random_init control): writing its architecture")
            try:
                write_architecture_checkpoint(run)
            except (ValueError, TypeError, OSError) as error:
                return fail(f"random_init control: {error}")
            record.pretraining = {"complete": True, "checkpoint": f"checkpoints/{run.checkpoint.name}",
                                  "global_step": 0, "max_steps": 0, "wall_time_s": 0.0, "random_init": True}
            record.status, record.updated = "pretrained", now()
            write_record(run.registry_path, record)
        elif action in ("start", "resume"):
            resumed = resume_checkpoint(run) if action == "resume" else None  # last.ckpt, or the intact one
            resume_step = checkpoint_step(resumed) if resumed is not None else None
            attempt["resumed_from_step"] = resume_step
            self.echo(f"{run.run_id}: pretraining" + (f" (resuming from step {resume_step}, {resumed.name})"
                                                      if resumed is not None else ""))
            log = run.run_dir / "logs" / "fit.log"
            start = time.perf_counter()
            rc = self.launch(self.fit_prefix + run.fit_command(self.python, resume=action == "resume"), log,
                             self.environment(run, gpus, lock=lock))
            attempt.update(fit_rc=rc, fit_wall_s=round(time.perf_counter() - start, 1))
            if rc != 0:
                return fail(f"pretraining exited with status {rc} (log: {log})", log, rc)
            if not run.checkpoint.is_file():
                return fail(f"pretraining wrote no {run.checkpoint} (the config's logger and ModelCheckpoint must "
                            "write into the run directory, with save_last: true)", log)
            step, wanted = checkpoint_step(run.checkpoint), target_steps(run)
            if wanted is not None and (step is None or step < wanted):
                versioned = sorted(p.name for p in run.checkpoint.parent.glob("last-v*.ckpt"))
                return fail(f"pretraining stopped at step {step} of {wanted} (interrupted?); rerun the sweep to resume"
                            + (f"; ModelCheckpoint also wrote {', '.join(versioned)}: last.ckpt did not come from "
                               "this run's ModelCheckpoint" if versioned else ""), log)
            record.pretraining = {"complete": True, "checkpoint": "checkpoints/last.ckpt", "global_step": step,
                                  "max_steps": wanted,  # wall time over every attempt, resumed ones included
                                  "wall_time_s": round(sum(a.get("fit_wall_s", 0) for a in record.attempts), 1)}
            record.status, record.updated = "pretrained", now()
            write_record(run.registry_path, record)

        # 2. probes
        for probe in run.probes:
            output = run.run_dir / "probes" / probe.output_name
            if not output.is_file():
                self.echo(f"{run.run_id}: probe {probe.benchmark}")
                over = deep_merge({"seed_everything": run.seed}, probe.overrides)
                write_yaml(run.run_dir / "probes" / f"{probe.benchmark}.sweep.yaml", over,
                           f"# written by jepa_lit.study for {run.run_id}: merged over {probe.config}")
                log = run.run_dir / "logs" / f"probe-{probe.benchmark}.log"
                rc = self.launch(run.probe_command(probe, self.python), log,
                                 self.environment(run, gpus, probe=True, lock=lock))
                attempt[f"probe_{probe.benchmark}_rc"] = rc
                if rc != 0 or not output.is_file():
                    return fail(f"probe {probe.benchmark} exited with status {rc} (log: {log})", log, rc)
            record.metrics[probe.benchmark] = probe_metrics(read_results(output), probe.output_name)
            write_record(run.registry_path, record)

        if not run.keep_feature_cache:
            shutil.rmtree(run.run_dir / "feature_cache", ignore_errors=True)
        record.status, record.updated = "done", now()
        attempt["ended"] = now()
        write_record(run.registry_path, record)
        self.echo(f"{run.run_id}: done " + ", ".join(
            f"{b} top-1 {m.top1:.2f}" for b, m in record.metrics.items()))
        return "done"
