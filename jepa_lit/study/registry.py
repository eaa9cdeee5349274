"""The run registry: one ``run.json`` per run, a ``RunRecord`` that the sweep writes and the report reads.

The JSON keeps the layout of schema ``jepa_lit.sweep_run/1``; keys a later version adds are kept in
``extra`` and written back, so an older reader never drops them.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import subprocess
import threading
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Optional

import jepa_lit
from jepa_lit import atomic
from jepa_lit.errors import RegistryError
from jepa_lit.eval.probe_result import ProbeResult
from jepa_lit.study.runs import FIT_OVERRIDES, RECORD_FILE, Run

SCHEMA = "jepa_lit.sweep_run/1"
# What to do about a damaged file, said in its error.
RECORD_ADVICE = "delete it and rerun the sweep (the run resumes from the files in its folder)"
RESULTS_ADVICE = "delete it and rerun the sweep to probe again"
SWEEP_ADVICE = "rerun the sweep to write it again"
REPO = Path(jepa_lit.__file__).resolve().parents[1]


class RecordError(RegistryError):
    """A run.json that cannot be read; the message names the file and the key."""


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


@dataclass
class PackageInfo:
    name: str = "jepa-lit"
    version: Optional[str] = None
    git_commit: Optional[str] = None
    git_dirty: Optional[bool] = None


@dataclass
class ProbeMetrics:
    """One benchmark's result of a run, copied from its probe results JSON."""

    top1: float
    comparison_key: str
    top1_ci95: Optional[list[float]] = None
    top5: Optional[float] = None
    mean_class_acc: Optional[float] = None
    num_test_clips: Optional[int] = None
    epochs: Optional[int] = None
    checkpoint_step: Optional[int] = None
    encoder: Optional[str] = None
    results: Optional[str] = None  # the results JSON, relative to the run directory


@dataclass
class RunRecord:
    run_id: str
    regime: str
    variant: str
    seed: int
    schema: str = SCHEMA
    sweep: Optional[str] = None
    scale: Optional[str] = None
    baseline: str = "baseline"
    is_baseline: Optional[bool] = None
    reference: Optional[str] = None
    config: Optional[str] = None
    config_stack: list[str] = field(default_factory=list)
    config_hash: Optional[str] = None
    scale_hash: Optional[str] = None
    overrides: Optional[str] = None
    package: PackageInfo = field(default_factory=PackageInfo)
    status: str = "pending"  # pending | running | pretrained | done | failed | interrupted
    error: Optional[str] = None
    attempts: list[dict[str, Any]] = field(default_factory=list)  # a log of each try, free-form
    pretraining: Optional[dict[str, Any]] = None  # {complete, checkpoint, global_step, max_steps, wall_time_s}
    probes: dict[str, dict[str, Any]] = field(default_factory=dict)  # benchmark -> {config, overrides, ...}
    metrics: dict[str, ProbeMetrics] = field(default_factory=dict)
    created: Optional[str] = None
    updated: Optional[str] = None
    host: Optional[str] = None  # of the process running it, while it runs
    pid: Optional[int] = None
    extra: dict[str, Any] = field(default_factory=dict)  # keys this version does not know, kept
    directory: Optional[Path] = None  # where it was read from; not written

    @property
    def baseline_run(self) -> bool:
        return self.variant == self.baseline

    @property
    def pretrained(self) -> bool:
        return bool((self.pretraining or {}).get("complete"))

    @classmethod
    def new(cls, run: Run, package: Optional[PackageInfo] = None) -> "RunRecord":
        """The record of a run not yet started (``package``: jepa-lit's version and commit, read once per sweep)."""
        return cls(
            run_id=run.run_id, sweep=run.sweep, scale=run.scale, regime=run.regime, variant=run.variant,
            seed=run.seed, baseline=run.baseline, is_baseline=run.variant == run.baseline, reference=run.reference,
            config=run.config, config_stack=run.config_stack, config_hash=run.config_hash,
            scale_hash=run.scale_hash, overrides=FIT_OVERRIDES,
            package=PackageInfo(**asdict(package)) if package is not None else package_info(),
            probes={p.benchmark: {"config": p.config, "overrides": p.overrides, "probe_hash": p.hash[:16],
                                  "results": f"probes/{p.output_name}"} for p in run.probes},
            created=now(), updated=now())

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("extra", "directory")}
        data["package"] = asdict(self.package)
        data["metrics"] = {b: asdict(m) for b, m in self.metrics.items()}
        for key in ("host", "pid"):  # only while (or once) a process ran it, as before
            if data[key] is None:
                del data[key]
        return {**data, **self.extra}

    @classmethod
    def from_dict(cls, data: Any, source: str | os.PathLike = RECORD_FILE) -> "RunRecord":
        if not isinstance(data, dict):
            raise RecordError(f"{source}: expected a JSON object, got {type(data).__name__}")
        known = {f.name for f in fields(cls)} - {"extra", "directory"}
        values = {k: v for k, v in data.items() if k in known}
        for key in ("run_id", "regime", "variant", "seed"):
            if key not in values:
                raise RecordError(f"{source}: {key}: missing")
        if not isinstance(values["seed"], int):
            raise RecordError(f"{source}: seed: expected an int, got {values['seed']!r}")
        try:
            values["package"] = PackageInfo(**{k: v for k, v in (values.get("package") or {}).items()
                                               if k in PackageInfo.__dataclass_fields__})
            values["metrics"] = {b: ProbeMetrics(**{k: v for k, v in m.items() if k in ProbeMetrics.__dataclass_fields__})
                                 for b, m in (values.get("metrics") or {}).items()}
        except (TypeError, AttributeError) as error:
            raise RecordError(f"{source}: metrics or package: {error}") from None
        values["attempts"] = values.get("attempts") or []
        values["probes"] = values.get("probes") or {}
        values["config_stack"] = values.get("config_stack") or []
        return cls(**values, extra={k: v for k, v in data.items() if k not in known})


def write_json(path: Path, data: Any) -> None:
    """Atomically (jepa_lit.atomic: temporary file + fsync + rename): a reader never sees half a file; with
    its integrity record (``<file>.sha256.json``), which ``read_json`` checks."""
    atomic.write_json(path, data, integrity=True)


def read_json(path: Path, advice: str, error_type: type[RegistryError] = RegistryError) -> Any:
    """The JSON at ``path`` after its integrity check; ``error_type`` naming the file, what is wrong and
    ``advice`` when it is damaged or not JSON (a file without a record is read, with one note)."""
    text = atomic.read_checked_text(path, advice, error_type)
    try:
        return json.loads(text)
    except ValueError as error:
        raise error_type(f"{path}: not valid JSON ({error}); {advice}") from None


def write_record(path: Path, record: RunRecord) -> None:
    write_json(path, record.to_dict())


def read_record(path: Path) -> Optional[RunRecord]:
    """The record at ``path``; None when there is none; RecordError naming the file when it is broken."""
    if not path.is_file():
        return None
    data = read_json(path, RECORD_ADVICE, RecordError)
    record = RunRecord.from_dict(data, path)
    record.directory = path.parent
    return record


def read_results(path: Path) -> ProbeResult:
    """A probe results JSON, typed; a RegistryError naming the file and the key when it is not one."""
    return ProbeResult.from_dict(read_json(path, RESULTS_ADVICE), path, RESULTS_ADVICE)


def load_records(root: Path) -> list[RunRecord]:
    """Every sweep run.json under root (runs moved aside by --rerun-changed left out)."""
    records = []
    for path in sorted(root.rglob(RECORD_FILE)):
        if any(".replaced-" in part for part in path.parts):
            continue
        data = read_json(path, RECORD_ADVICE, RecordError)
        if isinstance(data, dict) and str(data.get("schema", "")).startswith("jepa_lit.sweep_run/"):
            record = RunRecord.from_dict(data, path)
            record.directory = path.parent
            records.append(record)
    return records


_GIT: Optional[dict[str, Any]] = None
_GIT_LOCK = threading.Lock()  # runs start on several threads (--jobs): ask git once


def package_info() -> PackageInfo:
    """jepa-lit's version and, when it runs from a git checkout, the commit and whether it has local changes."""
    global _GIT
    with _GIT_LOCK:
        if _GIT is None:
            found: dict[str, Any] = {"commit": None, "dirty": None}
            if (REPO / ".git").exists():
                try:
                    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True,
                                            text=True, timeout=20)
                    status = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
                                            capture_output=True, text=True, timeout=20)
                    if commit.returncode == 0:
                        found = {"commit": commit.stdout.strip(), "dirty": bool(status.stdout.strip())}
                except (OSError, subprocess.SubprocessError):
                    pass
            _GIT = found
    return PackageInfo(version=jepa_lit.__version__, git_commit=_GIT["commit"], git_dirty=_GIT["dirty"])
