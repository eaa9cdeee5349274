"""The study as one resumable sweep: every variant of each regime and its baseline, over seeds.

    python -m jepa_lit.study sweep experiments/sweep.yaml [--scale smoke] [--jobs N] [--dry-run | --list]
    python -m jepa_lit.study sweep experiments/sweep.yaml --launcher slurm [--no-submit]
    make sweep [SCALE=smoke]

A sweep spec (experiments/sweep.yaml, read by spec.py) names regimes, their variants (an experiment
file each, e.g. ``mixed_{variant}.yaml``), seeds, the probes of each regime and scales. runs.py turns it
into runs, one per (regime, variant, seed), each with a fixed directory
``<output>/<scale>/<regime>/<variant>/seed_<s>/`` holding its config, checkpoints, TensorBoard logs,
probe results and ``run.json`` (registry.py's RunRecord), which the report reads.

A run is ``jepa-lit fit --config <variant>.yaml --config <run>/sweep_fit.yaml`` (the second file: the
scale's overrides, the seed and the run's logger directory), then for each probe of its regime
``jepa-lit test --probe <benchmark> --config <probe config> --config <run>/probes/<benchmark>.sweep.yaml
--ckpt_path <run>/checkpoints/last.ckpt`` (executor.py).

Resuming is driven by the files, not by the recorded status (plan.py): a run whose ``run.json`` says
done and whose probe results exist is skipped; a run with a ``last.ckpt`` short of ``max_steps`` is
resumed from it (``fit --ckpt_path last``: from the newest intact checkpoint when last.ckpt is damaged);
a pretrained run missing a probe result gets only that probe. A run whose config changed since it
started (its config hash differs) is refused, not mixed: ``--rerun-changed`` moves the old directory
aside and starts again. A run whose last two attempts failed the same way is recorded failed with the
reason and left alone (``--retry-failed`` tries it again), so a rerun never repeats a failure forever.
"""

from __future__ import annotations

import argparse
import re
import shlex
import signal
import sys
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Optional

from jepa_lit.hints import format_duration, nearest
from jepa_lit.errors import RegistryError
from jepa_lit.atomic import check_writable
from jepa_lit.study.registry import RunRecord, now, package_info, write_json, write_record
from jepa_lit.study.runs import Run, expand
from jepa_lit.study.spec import SweepSpec, load_spec

DEFAULT_SPEC = Path(__file__).resolve().parents[2] / "experiments" / "sweep.yaml"
EXIT_INTERRUPTED = 143  # every run that did not finish was stopped by SIGTERM (a SLURM task then requeues itself)


def sweep_summary(spec: SweepSpec) -> dict[str, Any]:
    """``<output>/<scale>/sweep.json``: what the report needs beyond the runs (row and column order, plot axes)."""
    return {"name": spec.name, "scale": spec.scale, "spec": spec.spec_path, "seeds": spec.seeds,
            "baseline": spec.baseline, "regimes": {name: asdict(r) for name, r in spec.regimes.items()},
            "report": spec.report_given, "written": now()}


def register_pending(runs: list[Run]) -> None:
    """A registry record for every run not yet started, so the report can say what is missing."""
    for run in runs:
        if not run.registry_path.is_file():
            write_record(run.registry_path, RunRecord.new(run))


def did_you_mean(name: str, runs: list[Run], limit: int = 4) -> str:
    """``; did you mean X?`` for the nearest run id, then a few valid ids."""
    ids = [run.run_id for run in runs]
    near = nearest(name, ids, cutoff=0.5)
    shown = ", ".join(ids[:limit]) + (f", ... ({len(ids)} in all)" if len(ids) > limit else "")
    return (f"; did you mean {near!r}?" if near else "") + f"\nrun ids (regime/variant/seed_S): {shown}"


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m jepa_lit.study sweep", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("spec", nargs="?", default=str(DEFAULT_SPEC), help="the sweep spec YAML")
    parser.add_argument("--scale", default="full", help="a scale of the spec (full, smoke, ...)")
    parser.add_argument("--launcher", choices=["local", "slurm"], default="local")
    parser.add_argument("--jobs", type=int, default=None, help="local: runs at a time (default: the spec's jobs, else 1)")
    parser.add_argument("--gpu-groups", default=None,
                        help='local: CUDA_VISIBLE_DEVICES of each concurrent run, ";"-separated, e.g. "0,1,2,3;4,5,6,7"')
    parser.add_argument("--only", default=None, help="only the runs whose id (regime/variant/seed_S) matches this regex")
    parser.add_argument("--index", type=int, default=None, help="only run number INDEX of the expansion")
    parser.add_argument("--run-id", default=None, help="only the run with exactly this id (regime/variant/seed_S); "
                        "what each SLURM array task runs")
    parser.add_argument("--fit-prefix", default="", help="a command put before each pretraining (e.g. 'srun')")
    parser.add_argument("--dry-run", action="store_true", help="list the runs and what each would do; run nothing")
    parser.add_argument("--list", action="store_true", help="print the selected run ids, one a line; run nothing")
    parser.add_argument("--retry-failed", action="store_true",
                        help="try again the runs whose last two attempts failed the same way (left alone otherwise)")
    parser.add_argument("--rerun-changed", action="store_true",
                        help="runs whose config changed: move the old directory aside and start again")
    parser.add_argument("--no-submit", action="store_true", help="slurm: write the sbatch script, do not submit it")
    return parser


class SelectionError(ValueError):
    """--index / --run-id / --only that select nothing."""


def select(runs: list[Run], spec: SweepSpec, index: Optional[int], run_id: Optional[str],
           only: Optional[str]) -> list[Run]:
    """The runs the command line asks for (all by default)."""
    if index is not None:
        if not 0 <= index < len(runs):
            raise SelectionError(f"--index {index} outside 0-{len(runs) - 1}")
        runs = [runs[index]]
    if run_id is not None:
        chosen = [r for r in runs if r.run_id == run_id]
        if not chosen:
            raise SelectionError(f"--run-id {run_id!r} is not a run of {spec.spec_path} at scale "
                                 f"{spec.scale!r}{did_you_mean(run_id, runs)}")
        runs = chosen
    if only:
        try:
            pattern = re.compile(only)
        except re.error as error:
            raise SelectionError(f"--only {only!r} is not a regular expression: {error}") from None
        matched = [r for r in runs if pattern.search(r.run_id)]
        if not matched:  # a typo would otherwise "finish" a sweep of nothing
            raise SelectionError(f"--only {only!r} matches none of the {len(runs)} runs{did_you_mean(only, runs)}")
        runs = matched
    return runs


def main(argv: Optional[list[str]] = None) -> int:
    args = parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        spec = load_spec(args.spec, args.scale)
        runs = select(expand(spec), spec, args.index, args.run_id, args.only)
    except (ValueError, FileNotFoundError) as error:
        print(f"sweep: error: {error}", file=sys.stderr)
        return 2
    if args.list:
        print("\n".join(run.run_id for run in runs))
        return 0
    root = spec.root
    print(f"sweep {spec.name!r}, scale {spec.scale!r}: {len(runs)} runs in {root}")
    if args.dry_run:
        from jepa_lit.study.plan import plan, recipe_line

        shown = set()
        for run in runs:  # each regime's recipe once, from its first pretraining run
            if run.pretrain and run.regime not in shown:
                shown.add(run.regime)
                print(f"regime {recipe_line(run)}")  # unindented: the run lines below are "  i  run_id  action"
        try:
            for i, run in enumerate(runs):
                print(f"  {i:3d}  {run.run_id:40s} {plan(run, retry_failed=args.retry_failed)[1]}")
        except RegistryError as error:
            print(f"sweep: error: {error}", file=sys.stderr)
            return 2
        return 0
    check_writable(root / "sweep.json", "sweep output")  # hostile (issue 24, 7): before any run starts
    if args.launcher == "slurm":
        from jepa_lit.study.launchers import submit_slurm

        write_json(root / "sweep.json", sweep_summary(spec))
        register_pending(runs)
        try:
            submit_slurm(runs, spec, submit=not args.no_submit)
        except ValueError as error:  # a run whose config gives no task layout
            print(f"sweep: error: {error}", file=sys.stderr)
            return 2
        except RuntimeError as error:
            print(f"sweep: error: {error}", file=sys.stderr)
            return 1
        return 0
    return run_here(runs, spec, args)


def progress_line(total: int, finished: int, skipped: int, durations: list[float], elapsed: float, jobs: int) -> str:
    """The line printed after each finished run, e.g. ``[sweep] 12/48 runs finished (3 skipped as complete),
    36 left, elapsed 14:05, ETA 21 min (mean 1m10s per run over 9 runs, 2 jobs)``. ``durations``: the wall times
    of the runs that did work in this invocation (a run skipped as complete takes no time, so it would pull the
    mean down). ETA = their mean x runs left / jobs, with no more jobs than runs left (one run left: its time)."""
    left = total - finished
    minutes, seconds = divmod(int(elapsed), 60)
    clock = f"{minutes // 60}:{minutes % 60:02d}:{seconds:02d}" if minutes >= 60 else f"{minutes}:{seconds:02d}"
    line = f"[sweep] {finished}/{total} runs finished ({skipped} skipped as complete), {left} left, elapsed {clock}"
    if not left:
        return line
    if not durations:
        return line + ", ETA after the first run that does work"
    mean = sum(durations) / len(durations)
    eta = mean * left / max(1, min(jobs, left))
    shown = f"{eta / 3600:.1f} h" if eta >= 7200 else f"{round(eta / 60)} min" if eta >= 60 else "<1 min"
    return line + (f", ETA {shown} (mean {format_duration(mean)} per run over {len(durations)} "
                   f"run{'s' * (len(durations) != 1)}, {jobs} job{'s' * (jobs != 1)})")


def stop_on_signal(signum, frame) -> None:
    """Ctrl-C or SIGTERM to the sweep: no run starts any more, the running commands get SIGTERM (a fit saves
    last.ckpt and exits 143), their runs are recorded ``interrupted``, and the sweep ends with status 130."""
    from jepa_lit.study.executor import stop_children

    stop_children(signal.SIGTERM)
    raise KeyboardInterrupt


def run_here(runs: list[Run], spec: SweepSpec, args: argparse.Namespace) -> int:
    """The local launcher with a progress line per finished run; the exit status of the sweep."""
    from jepa_lit.study.executor import Executor
    from jepa_lit.study.launchers import run_local

    write_json(spec.root / "sweep.json", sweep_summary(spec))
    lock = threading.Lock()

    def echo(message: str) -> None:
        with lock:
            print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)

    # The version and git commit, read once before any run starts (every run's record carries them).
    executor = Executor(fit_prefix=shlex.split(args.fit_prefix), rerun_changed=args.rerun_changed,
                        retry_failed=args.retry_failed, echo=echo,
                        package=package_info())
    register_pending(runs)
    start = time.perf_counter()
    groups = [g.strip() for g in args.gpu_groups.split(";")] if args.gpu_groups else None
    jobs = len(groups) if groups else args.jobs or spec.jobs  # run_local runs one per GPU group
    finished, skipped, durations = [0], [0], []  # durations: wall times of the runs that did work

    def tracked(run: Run, gpus: Optional[str] = None) -> str:
        """The executor, then a progress line: runs finished out of all, and an ETA from the runs that worked."""
        began = time.perf_counter()
        status = executor(run, gpus)
        with lock:
            finished[0] += 1
            if run.run_id in executor.executed:  # its commands ran (done, failed or interrupted)
                durations.append(time.perf_counter() - began)
            elif status == "done":  # done without running anything: skipped as complete
                skipped[0] += 1
            line = progress_line(len(runs), finished[0], skipped[0], durations, time.perf_counter() - start, jobs)
        echo(line)
        return status

    previous = {}
    if threading.current_thread() is threading.main_thread():  # signal handlers can only be set there
        previous = {signum: signal.signal(signum, stop_on_signal) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        statuses = run_local(runs, tracked, jobs=jobs, gpu_groups=groups)
    except KeyboardInterrupt:
        print(f"sweep interrupted after {time.perf_counter() - start:.0f} s; run it again to resume", file=sys.stderr)
        return 130
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    counts = {s: list(statuses.values()).count(s) for s in sorted(set(statuses.values()))}
    print(f"sweep finished in {time.perf_counter() - start:.0f} s: " + ", ".join(f"{n} {s}" for s, n in counts.items()))
    if set(statuses.values()) - {"done"}:
        for run_id, status in statuses.items():
            if status != "done":
                print(f"  {run_id}: {status}")
        # Only runs stopped by SIGTERM (their fits saved last.ckpt): 143, so that a SLURM task requeues itself.
        return EXIT_INTERRUPTED if set(statuses.values()) - {"done"} == {"interrupted"} else 1
    print(f"report: python -m jepa_lit.study report {spec.root}")
    return 0
