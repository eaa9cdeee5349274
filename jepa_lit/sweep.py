"""The study as one resumable sweep: every variant of each regime and its baseline, over seeds.

    python -m jepa_lit.sweep experiments/sweep.yaml [--scale smoke] [--jobs N] [--dry-run]
    python -m jepa_lit.sweep experiments/sweep.yaml --launcher slurm [--no-submit]
    make sweep [SCALE=smoke]

A sweep spec (experiments/sweep.yaml) names regimes, their variants (an experiment file each, e.g.
``mixed_{variant}.yaml``), seeds, the probes of each regime and scales. ``expand`` turns it into runs,
one per (regime, variant, seed), each with a fixed directory ``<output>/<scale>/<regime>/<variant>/seed_<s>/``
that holds its config, checkpoints, TensorBoard logs, probe results and ``run.json``, the run registry
entry (config hash, package version and git commit, seed, status, metrics) that ``jepa_lit.report`` reads.

A run is ``jepa-lit fit --config <variant>.yaml --config <run>/sweep_fit.yaml`` (the second file: the
scale's overrides, the seed and the run's logger directory), then for each probe of its regime
``jepa-lit test --probe <benchmark> --config <probe config> --config <run>/probes/<benchmark>.sweep.yaml
--ckpt_path <run>/checkpoints/last.ckpt``.

Why subprocesses (``python -m jepa_lit.cli``) and not ``run_cli`` in this process: Lightning's DDP
launcher starts the other ranks by re-running the current command line, which must be the CLI's,
not the sweep's; under SLURM the pretraining is started with ``srun`` (one task per GPU) while the
probe runs as one process; a crash, an out-of-memory kill or leftover global state (seeds, process
groups, CUDA) stays inside one run; and N runs at a time are N processes. The price is a few seconds of
start-up per command.

Resuming is driven by the files, not by the recorded status: a run whose ``run.json`` says done and
whose probe results exist is skipped; a run with a ``last.ckpt`` short of ``max_steps`` is resumed from
it (``--ckpt_path``); a pretrained run missing a probe result gets only that probe. A run whose config
changed since it started (its config hash differs) is refused, not mixed: ``--rerun-changed`` moves the
old directory aside and starts again.
"""

from __future__ import annotations

import argparse
import copy
import datetime as _dt
import inspect
import importlib
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from queue import Queue
from typing import Any, Callable, Optional

import yaml

import jepa_lit
from jepa_lit.cli import config_files, expand_config_stack
from jepa_lit.hashing import json_sha256
from jepa_lit.hints import format_duration, nearest

SCHEMA = "jepa_lit.sweep_run/1"
REGISTRY = "run.json"
FIT_OVERRIDES = "sweep_fit.yaml"
REPO = Path(__file__).resolve().parents[1]
SPEC_KEYS = {"name", "output", "seeds", "baseline", "keep_feature_cache", "regimes", "probes", "report", "slurm",
             "jobs", "env", "fit", "probe", "objective_embed_dim", "scales"}
SCALE_KEYS = SPEC_KEYS - {"scales", "name"}
REGIME_KEYS = {"config", "reference", "probes", "variants"}
SLURM_DEFAULTS = {"nodes": 1, "gpus_per_node": 1, "cpus_per_task": 8, "mem": 0, "time": "24:00:00",
                  "partition": None, "account": None, "max_parallel": None, "extra": []}

Launch = Callable[[list[str], Path, dict[str, str]], int]


# ----- the spec ------------------------------------------------------------------------------------
def deep_merge(base: Any, over: Any) -> Any:
    """``over`` merged into a copy of ``base`` as LightningCLI stacks configs: dicts recursively, anything
    else replaced (lists too), and a ``class_path`` naming another class replaces the whole entry."""
    if isinstance(base, dict) and isinstance(over, dict):
        if "class_path" in base and "class_path" in over and base["class_path"] != over["class_path"]:
            return copy.deepcopy(over)
        merged = copy.deepcopy(base)
        for key, value in over.items():
            merged[key] = deep_merge(merged[key], value) if key in merged else copy.deepcopy(value)
        return merged
    return copy.deepcopy(over)


def stable_hash(*parts: Any) -> str:
    return json_sha256(parts)


def load_spec(path: str | os.PathLike, scale: str = "full") -> dict[str, Any]:
    """The spec with ``scales[scale]`` applied; errors name the file and the key."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"sweep spec {path} not found")
    spec = yaml.safe_load(path.read_text()) or {}
    if not isinstance(spec, dict):
        raise ValueError(f"{path}: expected a mapping of {sorted(SPEC_KEYS)}")
    unknown = set(spec) - SPEC_KEYS
    if unknown:
        raise ValueError(f"{path}: unknown key(s) {sorted(unknown)}; expected some of {sorted(SPEC_KEYS)}")
    scales = spec.pop("scales", None) or {"full": {}}
    if scale not in scales:
        raise ValueError(f"{path}: no scale {scale!r} under scales: (it has {', '.join(scales)})")
    over = scales[scale] or {}
    unknown = set(over) - SCALE_KEYS
    if unknown:
        raise ValueError(f"{path}: scales.{scale}: unknown key(s) {sorted(unknown)}; expected some of {sorted(SCALE_KEYS)}")
    for key, value in over.items():
        if key in ("probes", "slurm", "env"):
            spec[key] = {**(spec.get(key) or {}), **value}
        elif key in ("fit", "probe"):
            spec[key] = deep_merge(spec.get(key) or {}, value or {})
        else:
            spec[key] = value
    spec.update(scale=scale, spec_path=str(path.resolve()), spec_dir=str(path.resolve().parent))
    spec.setdefault("name", path.stem)
    spec.setdefault("output", "runs/sweep")
    spec.setdefault("seeds", [0, 1, 2])
    spec.setdefault("baseline", "baseline")
    spec.setdefault("keep_feature_cache", True)
    spec.setdefault("probes", {})
    spec.setdefault("fit", {})
    spec.setdefault("probe", {})
    spec.setdefault("jobs", 1)
    spec["env"] = {str(k): str(v) for k, v in (spec.get("env") or {}).items()}
    if not spec.get("regimes"):
        raise ValueError(f"{path}: scale {scale!r} has no regimes")
    if not isinstance(spec["seeds"], list) or not all(isinstance(s, int) for s in spec["seeds"]) or not spec["seeds"]:
        raise ValueError(f"{path}: seeds: expected a non-empty list of integers, got {spec['seeds']!r}")
    if len(set(spec["seeds"])) != len(spec["seeds"]):
        raise ValueError(f"{path}: seeds: {spec['seeds']} repeats a seed")
    for regime, body in spec["regimes"].items():
        unknown = set(body or {}) - REGIME_KEYS
        if unknown:
            raise ValueError(f"{path}: regimes.{regime}: unknown key(s) {sorted(unknown)}; expected {sorted(REGIME_KEYS)}")
        for key in ("config", "variants"):
            if not (body or {}).get(key):
                raise ValueError(f"{path}: regimes.{regime}.{key} is missing")
        if spec["baseline"] not in body["variants"]:
            raise ValueError(f"{path}: regimes.{regime}.variants lacks the baseline {spec['baseline']!r}: every "
                             "variant is compared with the baseline of the same seed")
        for bench in body.get("probes") or []:
            if bench not in spec["probes"]:
                raise ValueError(f"{path}: regimes.{regime}.probes names {bench!r}, which has no probe config under probes:")
    return spec


# ----- runs ---------------------------------------------------------------------------------------
@dataclass
class ProbeSpec:
    benchmark: str
    config: str  # absolute path of the probe config
    overrides: dict[str, Any]
    hash: str  # of the probe config's content and the overrides (not the seed)

    @property
    def output_name(self) -> str:
        return f"{self.benchmark}-{self.hash[:8]}.json"


@dataclass
class Run:
    sweep: str
    scale: str
    regime: str
    variant: str
    seed: int
    baseline: str
    reference: Optional[str]
    config: str  # absolute path of the variant's experiment file
    config_stack: list[str]
    run_dir: Path
    fit_overrides: dict[str, Any]  # the scale's, shared by the seeds of a variant
    probes: list[ProbeSpec]
    config_hash: str  # of the merged config (stack + scale overrides); the seed and the run's paths left out
    scale_hash: str  # the scale's overrides alone: equal for every run that may share a table
    keep_feature_cache: bool = True
    env: dict[str, str] = field(default_factory=dict)  # set for its commands (e.g. OMP_NUM_THREADS)

    @property
    def run_id(self) -> str:
        return f"{self.regime}/{self.variant}/seed_{self.seed}"

    @property
    def checkpoint(self) -> Path:
        return self.run_dir / "checkpoints" / "last.ckpt"

    @property
    def registry_path(self) -> Path:
        return self.run_dir / REGISTRY

    def run_overrides(self) -> dict[str, Any]:
        """The scale's overrides plus this run's seed and fixed directory (``save_dir/name/version``)."""
        own = {"seed_everything": self.seed,
               "trainer": {"default_root_dir": str(self.run_dir),
                           "logger": {"init_args": {"save_dir": str(self.run_dir.parent.parent),
                                                    "name": self.variant, "version": self.run_dir.name}}}}
        return deep_merge(self.fit_overrides, own)

    def fit_command(self, python: str = sys.executable, resume: bool = False) -> list[str]:
        configs = ["--config", self.config, "--config", str(self.run_dir / FIT_OVERRIDES)]
        resume_from = ["--ckpt_path", str(self.checkpoint)] if resume else []
        return [python, "-m", "jepa_lit.cli", "fit", *configs, *resume_from]

    def probe_command(self, probe: ProbeSpec, python: str = sys.executable) -> list[str]:
        return [python, "-m", "jepa_lit.cli", "test", "--probe", probe.benchmark, "--config", probe.config,
                "--config", str(self.run_dir / "probes" / f"{probe.benchmark}.sweep.yaml"),
                "--ckpt_path", str(self.checkpoint), "--output", str(self.run_dir / "probes" / probe.output_name)]


def _load_yaml(path: str) -> Any:
    return yaml.safe_load(Path(path).read_text())


def _import(class_path: str):
    module, name = class_path.rsplit(".", 1)
    return getattr(importlib.import_module(module), name)


def objectives_of(stack: list[str], load: Callable[[str], Any] = _load_yaml) -> list[dict[str, Any]]:
    """The objectives list a stacked config ends up with (the last file that sets one)."""
    found: list = []
    for file in stack:
        listed = ((load(file) or {}).get("model") or {}).get("init_args", {}).get("objectives")
        if listed is not None:
            found = listed
    return found


def resized_objectives(stack: list[str], embed_dim: int,
                       load: Callable[[str], Any] = _load_yaml) -> Optional[list[dict[str, Any]]]:
    """The stack's objectives with ``embed_dim`` set on those that take it; None when none does."""
    objectives = copy.deepcopy(objectives_of(stack, load))
    changed = False
    for spec in objectives:
        if "embed_dim" in inspect.signature(_import(spec["class_path"])).parameters:
            spec.setdefault("init_args", {})["embed_dim"] = embed_dim
            changed = True
    return objectives if changed else None


def merged_config(content: list[Any], fit: dict[str, Any]) -> dict[str, Any]:
    """The stacked YAMLs and the scale's overrides merged into the config a run trains with (up to the
    defaults LightningCLI fills in): what the config hash covers, so an edit a run does not see (say, a
    callback list that the scale replaces) leaves its hash alone."""
    merged: dict[str, Any] = {}
    for data in [*content, fit]:
        merged = deep_merge(merged, {k: v for k, v in (data or {}).items() if k != "config"})
    return merged


def check_final_checkpoint(config: Path, merged: dict[str, Any]) -> None:
    """Lightning saves ``last.ckpt`` along with ModelCheckpoint's saves and, at the end, only if it never
    saved before: with ``every_n_train_steps: k < max_steps`` the final steps are never written unless k
    divides max_steps, and the probes would read an earlier step. Refuse such a config before it trains
    (jepa_lit.checkpointing.RunCheckpoint, which the shipped configs use, always saves the final step)."""
    trainer = merged.get("trainer") or {}
    steps = trainer.get("max_steps")
    for callback in trainer.get("callbacks") or []:
        if isinstance(callback, dict) and str(callback.get("class_path", "")).endswith("ModelCheckpoint"):
            every = (callback.get("init_args") or {}).get("every_n_train_steps")
            if isinstance(steps, int) and every and steps > every and steps % every:
                raise ValueError(f"{config}: trainer.max_steps {steps} is not a multiple of ModelCheckpoint "
                                 f"every_n_train_steps {every}: last.ckpt would miss the final steps")


def expand(spec: dict[str, Any] | str | os.PathLike, scale: str = "full") -> list[Run]:
    """The runs of a spec (a loaded spec or its path): seed-major, the baseline first in each regime,
    so that partial results already pair every variant with its same-seed baseline."""
    if not isinstance(spec, dict):
        spec = load_spec(spec, scale)
    spec_dir = Path(spec["spec_dir"])
    root = Path(spec["output"]).resolve() / spec["scale"]
    scale_hash = stable_hash(spec["fit"], spec.get("objective_embed_dim"))
    yaml_cache: dict[str, Any] = {}

    def load(file: str) -> Any:
        if file not in yaml_cache:
            yaml_cache[file] = _load_yaml(file)
        return copy.deepcopy(yaml_cache[file])

    runs = []
    for seed in spec["seeds"]:
        for regime, body in spec["regimes"].items():
            variants = [spec["baseline"]] + [v for v in body["variants"] if v != spec["baseline"]]
            for variant in variants:
                config = (spec_dir / body["config"].format(variant=variant, regime=regime)).resolve()
                if not config.is_file():
                    raise FileNotFoundError(f"{spec['spec_path']}: regimes.{regime}: variant {variant!r} has no "
                                            f"experiment file {config}")
                stack = config_files(expand_config_stack(["--config", str(config)]))
                fit = copy.deepcopy(spec["fit"])
                if spec.get("objective_embed_dim"):
                    objectives = resized_objectives(stack, int(spec["objective_embed_dim"]), load)
                    if objectives is not None:
                        fit = deep_merge(fit, {"model": {"init_args": {"objectives": objectives}}})
                merged = merged_config([load(f) for f in stack], fit)
                check_final_checkpoint(config, merged)
                probes = []
                for bench in body.get("probes") or []:
                    probe_config = (spec_dir / spec["probes"][bench]).resolve()
                    if not probe_config.is_file():
                        raise FileNotFoundError(f"{spec['spec_path']}: probes.{bench}: {probe_config} not found")
                    over = deep_merge((spec["probe"] or {}).get("all") or {}, (spec["probe"] or {}).get(bench) or {})
                    probe_hash = stable_hash(bench, load(str(probe_config)), over, jepa_lit.BEHAVIOUR_VERSION)
                    probes.append(ProbeSpec(bench, str(probe_config), over, probe_hash))
                runs.append(Run(
                    sweep=spec["name"], scale=spec["scale"], regime=regime, variant=variant, seed=seed,
                    baseline=spec["baseline"], reference=body.get("reference"), config=str(config),
                    config_stack=stack, run_dir=root / regime / variant / f"seed_{seed}", fit_overrides=fit,
                    probes=probes, config_hash=stable_hash(merged, jepa_lit.BEHAVIOUR_VERSION)[:16],
                    scale_hash=scale_hash[:16],
                    keep_feature_cache=bool(spec["keep_feature_cache"]), env=dict(spec["env"]),
                ))
    return runs


# ----- the registry -------------------------------------------------------------------------------
def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Atomically (temporary file + rename): a reader never sees half a registry entry."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    temporary.write_text(json.dumps(data, indent=2, default=str) + "\n")
    os.replace(temporary, path)


def read_registry(run: Run) -> Optional[dict[str, Any]]:
    if not run.registry_path.is_file():
        return None
    return json.loads(run.registry_path.read_text())


_GIT: Optional[dict[str, Any]] = None


def package_info() -> dict[str, Any]:
    """jepa-lit's version and, when it runs from a git checkout, the commit and whether it has local changes."""
    global _GIT
    if _GIT is None:
        _GIT = {"commit": None, "dirty": None}
        if (REPO / ".git").exists():
            try:
                commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True,
                                        text=True, timeout=20)
                status = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
                                        capture_output=True, text=True, timeout=20)
                if commit.returncode == 0:
                    _GIT = {"commit": commit.stdout.strip(), "dirty": bool(status.stdout.strip())}
            except (OSError, subprocess.SubprocessError):
                pass
    return {"name": "jepa-lit", "version": jepa_lit.__version__, "git_commit": _GIT["commit"],
            "git_dirty": _GIT["dirty"]}


def new_registry(run: Run) -> dict[str, Any]:
    return {
        "schema": SCHEMA, "run_id": run.run_id, "sweep": run.sweep, "scale": run.scale, "regime": run.regime,
        "variant": run.variant, "seed": run.seed, "baseline": run.baseline, "is_baseline": run.variant == run.baseline,
        "reference": run.reference, "config": run.config, "config_stack": run.config_stack,
        "config_hash": run.config_hash, "scale_hash": run.scale_hash, "overrides": FIT_OVERRIDES,
        "package": package_info(), "status": "pending", "error": None, "attempts": [], "pretraining": None,
        "probes": {p.benchmark: {"config": p.config, "overrides": p.overrides, "probe_hash": p.hash[:16],
                                 "results": f"probes/{p.output_name}"} for p in run.probes},
        "metrics": {}, "created": now(), "updated": now(),
    }


# ----- state of a run on disk ---------------------------------------------------------------------
def checkpoint_step(path: Path) -> Optional[int]:
    import torch

    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=False, mmap=True)
    except Exception:  # noqa: BLE001 - a checkpoint we cannot read is as good as none
        return None
    return int(checkpoint.get("global_step", 0)) if isinstance(checkpoint, dict) else None


def target_steps(run: Run) -> Optional[int]:
    """trainer.max_steps from the config LightningCLI saved in the run directory (None if not step-bound)."""
    saved = run.run_dir / "config.yaml"
    if not saved.is_file():
        return None
    steps = ((yaml.safe_load(saved.read_text()) or {}).get("trainer") or {}).get("max_steps")
    return steps if isinstance(steps, int) and steps > 0 else None


def plan(run: Run, registry: Optional[dict[str, Any]] = None) -> tuple[str, str]:
    """(action, description): skip | probe | resume | start | changed."""
    registry = registry if registry is not None else read_registry(run)
    started = run.checkpoint.exists() or (registry is not None and registry.get("attempts"))
    if registry is not None and started and registry.get("config_hash") != run.config_hash:
        return "changed", (f"config changed since the run started (config hash {registry.get('config_hash')} -> "
                           f"{run.config_hash}); --rerun-changed moves {run.run_dir} aside and starts again")
    pretrained = bool(registry and (registry.get("pretraining") or {}).get("complete")) and run.checkpoint.is_file()
    if pretrained:
        missing = [p.benchmark for p in run.probes if not (run.run_dir / "probes" / p.output_name).is_file()]
        if not missing and registry.get("status") == "done":
            return "skip", "done"
        return "probe", "probe " + ", ".join(missing) if missing else "record the probe results"
    if run.checkpoint.is_file():
        return "resume", "resume from its last checkpoint"
    return "start", "start"


class RunLock:
    """``<run>/.lock`` created exclusively; a lock left by a dead process on this host is taken over."""

    def __init__(self, run: Run):
        self.path = run.run_dir / ".lock"
        self.held = False

    def acquire(self) -> Optional[str]:
        """None when acquired; otherwise who holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        me = {"host": socket.gethostname(), "pid": os.getpid(), "since": now()}
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                try:
                    holder = json.loads(self.path.read_text())
                except (OSError, ValueError):
                    holder = {}
                if holder.get("host") == me["host"] and not _alive(holder.get("pid")):
                    self.path.unlink(missing_ok=True)  # stale: its process is gone
                    continue
                return (f"locked by {holder.get('host')} pid {holder.get('pid')} since {holder.get('since')} "
                        f"(delete {self.path} if that process is gone)")
            with os.fdopen(fd, "w") as handle:
                json.dump(me, handle)
            self.held = True
            return None
        return f"could not lock {self.path}"

    def release(self) -> None:
        if self.held:
            self.path.unlink(missing_ok=True)
            self.held = False


def _alive(pid: Any) -> bool:
    if not isinstance(pid, int):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True  # PermissionError included: the process exists


# ----- executing a run ----------------------------------------------------------------------------
def subprocess_launch(cmd: list[str], log: Path, env: dict[str, str]) -> int:
    """Run a command with its output appended to ``log``; returns its exit status."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a") as handle:
        handle.write(f"\n===== {now()}  {shlex.join(cmd)}\n")
        handle.flush()
        return subprocess.run(cmd, stdout=handle, stderr=subprocess.STDOUT, env=env, cwd=os.getcwd()).returncode


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


@dataclass
class Executor:
    """Runs one sweep run to completion, resuming whatever is already on disk."""

    launch: Launch = subprocess_launch
    python: str = sys.executable
    fit_prefix: list[str] = field(default_factory=list)  # e.g. ["srun"] inside a SLURM allocation
    rerun_changed: bool = False
    echo: Callable[[str], None] = print

    def environment(self, run: Run, gpus: Optional[str] = None, probe: bool = False) -> dict[str, str]:
        env = {**os.environ, **run.env}
        env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [env.get("PYTHONPATH")])])
        if gpus is not None:
            env["CUDA_VISIBLE_DEVICES"] = gpus
        if probe:  # a probe is one process: Lightning must not read the allocation's task layout as its own
            env = {k: v for k, v in env.items() if not k.startswith("SLURM_")}
        return env

    def __call__(self, run: Run, gpus: Optional[str] = None) -> str:
        """Returns the run's final status (done, failed, changed, locked)."""
        if plan(run)[0] == "skip":  # no lock needed to leave a finished run alone
            self.echo(f"{run.run_id}: done, skipped")
            return "done"
        lock = RunLock(run)
        held = lock.acquire()
        if held is not None:
            self.echo(f"{run.run_id}: skipped: {held}")
            return "locked"
        try:
            registry = read_registry(run)  # again, under the lock: another sweep may have moved it on
            action, why = plan(run, registry)
            if action == "skip":
                self.echo(f"{run.run_id}: done, skipped")
                return "done"
            if action == "changed":
                if not self.rerun_changed:
                    self.echo(f"{run.run_id}: refused: {why}")
                    return "changed"
                lock.release()
                aside = run.run_dir.with_name(f"{run.run_dir.name}.replaced-{time.strftime('%Y%m%d-%H%M%S')}")
                run.run_dir.rename(aside)
                self.echo(f"{run.run_id}: config changed; the old run moved to {aside}")
                held = lock.acquire()
                if held is not None:
                    self.echo(f"{run.run_id}: skipped: {held}")
                    return "locked"
                registry, action = None, "start"
            return self._execute(run, registry, action, gpus)
        except BaseException as error:  # Ctrl-C or a bug: say so in the registry; the files decide the resume
            if lock.held:
                current = read_registry(run) or new_registry(run)
                current.update(status="interrupted" if isinstance(error, KeyboardInterrupt) else "failed",
                               error=f"{type(error).__name__}: {error}", updated=now())
                write_json(run.registry_path, current)
            raise
        finally:
            lock.release()

    def _execute(self, run: Run, registry: Optional[dict[str, Any]], action: str, gpus: Optional[str]) -> str:
        fresh = new_registry(run)  # the current config, probes and package; history carried over
        if registry is not None:
            fresh.update({k: registry[k] for k in ("attempts", "created") if k in registry})
            if action == "probe":
                fresh["pretraining"] = registry.get("pretraining")
        registry = fresh
        registry.update(status="running", host=socket.gethostname(), pid=os.getpid())
        attempt = {"started": now(), "action": action, "package": package_info(), "host": socket.gethostname()}
        registry["attempts"].append(attempt)
        write_json(run.registry_path, registry)
        write_yaml(run.run_dir / FIT_OVERRIDES, run.run_overrides(),
                   f"# written by jepa_lit.sweep for {run.run_id} (scale {run.scale}); the last --config of its fit")

        def fail(message: str, log: Optional[Path] = None) -> str:
            registry.update(status="failed", error=message, updated=now())
            attempt.update(ended=now(), error=message)
            write_json(run.registry_path, registry)
            self.echo(f"{run.run_id}: FAILED: {message}" + (f"\n{tail(log)}" if log else ""))
            return "failed"

        # 1. pretraining
        if action in ("start", "resume"):
            resume_step = checkpoint_step(run.checkpoint) if action == "resume" else None
            attempt["resumed_from_step"] = resume_step
            self.echo(f"{run.run_id}: pretraining" + (f" (resuming from step {resume_step})" if action == "resume" else ""))
            log = run.run_dir / "logs" / "fit.log"
            start = time.perf_counter()
            rc = self.launch(self.fit_prefix + run.fit_command(self.python, resume=action == "resume"), log,
                             self.environment(run, gpus))
            attempt.update(fit_rc=rc, fit_wall_s=round(time.perf_counter() - start, 1))
            if rc != 0:
                return fail(f"pretraining exited with status {rc} (log: {log})", log)
            if not run.checkpoint.is_file():
                return fail(f"pretraining wrote no {run.checkpoint} (the config's logger and ModelCheckpoint must "
                            "write into the run directory, with save_last: true)", log)
            step, wanted = checkpoint_step(run.checkpoint), target_steps(run)
            if wanted is not None and (step is None or step < wanted):
                versioned = sorted(p.name for p in run.checkpoint.parent.glob("last-v*.ckpt"))
                return fail(f"pretraining stopped at step {step} of {wanted} (interrupted?); rerun the sweep to resume"
                            + (f"; ModelCheckpoint also wrote {', '.join(versioned)}: last.ckpt did not come from "
                               "this run's ModelCheckpoint" if versioned else ""), log)
            registry["pretraining"] = {"complete": True, "checkpoint": "checkpoints/last.ckpt", "global_step": step,
                                       "max_steps": wanted,  # wall time over every attempt, resumed ones included
                                       "wall_time_s": round(sum(a.get("fit_wall_s", 0) for a in registry["attempts"]), 1)}
            registry.update(status="pretrained", updated=now())
            write_json(run.registry_path, registry)

        # 2. probes
        for probe in run.probes:
            output = run.run_dir / "probes" / probe.output_name
            if not output.is_file():
                self.echo(f"{run.run_id}: probe {probe.benchmark}")
                over = deep_merge({"seed_everything": run.seed}, probe.overrides)
                write_yaml(run.run_dir / "probes" / f"{probe.benchmark}.sweep.yaml", over,
                           f"# written by jepa_lit.sweep for {run.run_id}: merged over {probe.config}")
                log = run.run_dir / "logs" / f"probe-{probe.benchmark}.log"
                rc = self.launch(run.probe_command(probe, self.python), log, self.environment(run, gpus, probe=True))
                attempt[f"probe_{probe.benchmark}_rc"] = rc
                if rc != 0 or not output.is_file():
                    return fail(f"probe {probe.benchmark} exited with status {rc} (log: {log})", log)
            results = json.loads(output.read_text())
            metrics = results["metrics"]
            registry["metrics"][probe.benchmark] = {
                "top1": metrics["top1"], "top1_ci95": metrics.get("top1_ci95"), "top5": metrics.get("top5"),
                "mean_class_acc": metrics.get("mean_class_acc"), "num_test_clips": metrics.get("num_test_clips"),
                "comparison_key": results["comparison_key"], "epochs": results["training"]["epochs"],
                "checkpoint_step": results["checkpoint"].get("global_step"),
                "encoder": results["encoder"].get("used"), "results": f"probes/{probe.output_name}",
            }
            write_json(run.registry_path, registry)

        if not run.keep_feature_cache:
            shutil.rmtree(run.run_dir / "feature_cache", ignore_errors=True)
        registry.update(status="done", updated=now())
        attempt["ended"] = now()
        write_json(run.registry_path, registry)
        self.echo(f"{run.run_id}: done " + ", ".join(
            f"{b} top-1 {m['top1']:.2f}" for b, m in registry["metrics"].items()))
        return "done"


def write_yaml(path: Path, data: dict[str, Any], header: str = "") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text((header + "\n" if header else "") + yaml.safe_dump(data, sort_keys=False))


def sweep_summary(spec: dict[str, Any]) -> dict[str, Any]:
    """``<output>/<scale>/sweep.json``: what the report needs beyond the runs (row and column order, plot axes)."""
    return {"name": spec["name"], "scale": spec["scale"], "spec": spec["spec_path"], "seeds": spec["seeds"],
            "baseline": spec["baseline"], "regimes": spec["regimes"], "report": spec.get("report") or {},
            "written": now()}


def register_pending(runs: list[Run]) -> None:
    """A registry entry for every run not yet started, so the report can say what is missing."""
    for run in runs:
        if not run.registry_path.is_file():
            write_json(run.registry_path, new_registry(run))


# ----- launchers ----------------------------------------------------------------------------------
def run_local(runs: list[Run], executor: Executor, jobs: int = 1, gpu_groups: Optional[list[str]] = None) -> dict[str, str]:
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


def sbatch_script(runs: list[Run], spec: dict[str, Any], python: str = sys.executable) -> str:
    """An sbatch array script: task i runs ``runs[i]``, named by its id in the script (``--run-id``), so a
    task runs the run it was written for whatever the selection (``--only``) or later edits of the spec."""
    slurm = {**SLURM_DEFAULTS, **(spec.get("slurm") or {})}
    root = Path(spec["output"]).resolve() / spec["scale"]
    array = f"0-{len(runs) - 1}" + (f"%{slurm['max_parallel']}" if slurm.get("max_parallel") else "")
    lines = ["#!/bin/bash",
             f"#SBATCH --job-name=jepa-{spec['name']}-{spec['scale']}",
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
              f"# {len(runs)} runs of sweep {spec['name']!r}, scale {spec['scale']!r}; task i runs RUNS[i]:",
              *[f"#   {i}: {run.run_id}" for i, run in enumerate(runs)],
              "# Pretraining runs under srun (one task per GPU, as Lightning's SLURM environment expects); the",
              "# probes run in this batch step. A task that ran out of time resumes from last.ckpt when resubmitted.",
              "# Each task selects its run by id (--run-id), not by position: a position would shift with --only",
              "# or with an edit of the spec while the array waits in the queue.",
              "RUNS=(" + " ".join(shlex.quote(run.run_id) for run in runs) + ")",
              "RUN_ID=${RUNS[$SLURM_ARRAY_TASK_ID]}",
              f"cd {shlex.quote(os.getcwd())}",
              "export NO_ALBUMENTATIONS_UPDATE=1",
              f"exec {shlex.quote(python)} -m jepa_lit.sweep {shlex.quote(spec['spec_path'])} --scale {spec['scale']} "
              "--run-id \"$RUN_ID\" --fit-prefix 'srun --kill-on-bad-exit=1'",
              ""]
    return "\n".join(lines)


def submit_slurm(runs: list[Run], spec: dict[str, Any], submit: bool = True) -> Path:
    root = Path(spec["output"]).resolve() / spec["scale"]
    script = root / "slurm" / "sweep.sbatch"
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


# ----- command line -------------------------------------------------------------------------------
def did_you_mean(name: str, runs: list[Run], limit: int = 4) -> str:
    """``; did you mean X?`` for the nearest run id, then a few valid ids."""
    ids = [run.run_id for run in runs]
    near = nearest(name, ids, cutoff=0.5)
    shown = ", ".join(ids[:limit]) + (f", ... ({len(ids)} in all)" if len(ids) > limit else "")
    return (f"; did you mean {near!r}?" if near else "") + f"\nrun ids (regime/variant/seed_S): {shown}"


def main(argv: Optional[list[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m jepa_lit.sweep", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("spec", nargs="?", default=str(REPO / "experiments" / "sweep.yaml"), help="the sweep spec YAML")
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
    parser.add_argument("--rerun-changed", action="store_true",
                        help="runs whose config changed: move the old directory aside and start again")
    parser.add_argument("--no-submit", action="store_true", help="slurm: write the sbatch script, do not submit it")
    args = parser.parse_args(argv)

    try:
        spec = load_spec(args.spec, args.scale)
        runs = expand(spec)
    except (ValueError, FileNotFoundError) as error:
        print(f"sweep: error: {error}", file=sys.stderr)
        return 2
    if args.index is not None:
        if not 0 <= args.index < len(runs):
            print(f"sweep: error: --index {args.index} outside 0-{len(runs) - 1}", file=sys.stderr)
            return 2
        runs = [runs[args.index]]
    if args.run_id is not None:
        chosen = [r for r in runs if r.run_id == args.run_id]
        if not chosen:
            print(f"sweep: error: --run-id {args.run_id!r} is not a run of {spec['spec_path']} at scale "
                  f"{spec['scale']!r}{did_you_mean(args.run_id, runs)}", file=sys.stderr)
            return 2
        runs = chosen
    if args.only:
        try:
            pattern = re.compile(args.only)
        except re.error as error:
            print(f"sweep: error: --only {args.only!r} is not a regular expression: {error}", file=sys.stderr)
            return 2
        matched = [r for r in runs if pattern.search(r.run_id)]
        if not matched:  # a typo would otherwise "finish" a sweep of nothing
            print(f"sweep: error: --only {args.only!r} matches none of the {len(runs)} runs"
                  f"{did_you_mean(args.only, runs)}", file=sys.stderr)
            return 2
        runs = matched
    root = Path(spec["output"]).resolve() / spec["scale"]
    print(f"sweep {spec['name']!r}, scale {spec['scale']!r}: {len(runs)} runs in {root}")
    if args.dry_run:
        for i, run in enumerate(runs):
            print(f"  {i:3d}  {run.run_id:40s} {plan(run)[1]}")
        return 0
    if args.launcher == "slurm":
        write_json(root / "sweep.json", sweep_summary(spec))
        register_pending(runs)
        try:
            submit_slurm(runs, spec, submit=not args.no_submit)
        except RuntimeError as error:
            print(f"sweep: error: {error}", file=sys.stderr)
            return 1
        return 0

    write_json(root / "sweep.json", sweep_summary(spec))
    lock = threading.Lock()

    def echo(message: str) -> None:
        with lock:
            print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)

    executor = Executor(fit_prefix=shlex.split(args.fit_prefix), rerun_changed=args.rerun_changed, echo=echo)
    register_pending(runs)
    start = time.perf_counter()
    groups = [g.strip() for g in args.gpu_groups.split(";")] if args.gpu_groups else None
    finished, worked = [0], [0]  # runs finished; of them, runs that had work to do (skipped ones take no time)

    def tracked(run: Run, gpus: Optional[str] = None) -> str:
        """The executor, then a progress line: runs finished out of all, and an ETA from the runs that worked."""
        began = time.perf_counter()
        status = executor(run, gpus)
        with lock:
            finished[0] += 1
            worked[0] += time.perf_counter() - began > 1.0
            left = len(runs) - finished[0]
            per_run = (time.perf_counter() - start) / worked[0] if worked[0] else None
            eta = f", ETA {format_duration(per_run * left)}" if per_run is not None and left else ""
        echo(f"{finished[0]}/{len(runs)} runs finished ({run.run_id}: {status}){eta}")
        return status

    try:
        statuses = run_local(runs, tracked, jobs=args.jobs or int(spec["jobs"]), gpu_groups=groups)
    except KeyboardInterrupt:
        print(f"sweep interrupted after {time.perf_counter() - start:.0f} s; run it again to resume", file=sys.stderr)
        return 130
    counts = {s: list(statuses.values()).count(s) for s in sorted(set(statuses.values()))}
    print(f"sweep finished in {time.perf_counter() - start:.0f} s: " + ", ".join(f"{n} {s}" for s, n in counts.items()))
    if set(statuses.values()) - {"done"}:
        for run_id, status in statuses.items():
            if status != "done":
                print(f"  {run_id}: {status}")
        return 1
    print(f"report: python -m jepa_lit.report {root}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
