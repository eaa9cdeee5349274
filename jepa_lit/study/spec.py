"""The sweep spec (experiments/sweep.yaml) as typed dataclasses, with a scale's overrides applied.

Every value is checked where it is read; an error names the file and the key, e.g.
``sweep.yaml: scales.smoke.seeds: expected a list of ints, got 'x'``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from jepa_lit.config import deep_merge, load_yaml


RANDOM_INIT = "random_init"  # the pseudo-variant of every regime: its baseline's architecture, never trained


class SpecError(ValueError):
    """A sweep spec that cannot be used; the message names the file and the key."""


@dataclass
class RegimeSpec:
    config: str  # the experiment file of a variant, relative to the spec, with {variant} / {regime}
    variants: list[str]
    reference: Optional[str] = None  # the released numbers shown beside its rows (released.json)
    probes: list[str] = field(default_factory=list)
    # merged over its runs' configs after the scale's fit: lets two regimes share variant files but not their data
    fit: dict[str, Any] = field(default_factory=dict)


@dataclass
class SlurmSpec:
    """The sbatch settings shared by every run; nodes and tasks per node come from each run's config."""

    cpus_per_task: int = 8
    signal_seconds: int = 300  # SIGTERM to the fits this long before the time limit: last.ckpt is saved in time
    requeue: bool = True  # requeue a task whose fit stopped on that signal, or was preempted
    mem: Any = 0
    time: str = "24:00:00"
    partition: Optional[str] = None
    account: Optional[str] = None
    max_parallel: Optional[int] = None
    extra: list[str] = field(default_factory=list)


@dataclass
class ReportSpec:
    appearance: str = "imagenet100"  # x axis of the trade-off plots
    motion: list[str] = field(default_factory=lambda: ["ssv2", "diving48", "synthetic"])  # their y axes
    cross_regime: list[str] = field(default_factory=lambda: ["mixed", "ucf101"])  # [A, B]: A - B, same variant and seed
    multiplicity: str = "holm"  # holm (family-wise) | bh (Benjamini-Hochberg): the adjustment over each table's tests
    header: str = ""  # a note printed under the report's title (e.g. what a scale's numbers do not mean)


@dataclass
class SweepSpec:
    name: str
    scale: str
    spec_path: str  # absolute
    regimes: dict[str, RegimeSpec]
    output: str = "runs/sweep"
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    baseline: str = "baseline"
    keep_feature_cache: bool = True
    random_init: bool = True  # add the random_init pseudo-variant (untrained encoder, probes only) to every regime
    probes: dict[str, str] = field(default_factory=dict)  # benchmark -> probe config, relative to the spec
    report: ReportSpec = field(default_factory=ReportSpec)
    report_given: dict[str, Any] = field(default_factory=dict)  # report: as written (recorded in sweep.json)
    slurm: SlurmSpec = field(default_factory=SlurmSpec)
    jobs: int = 1
    env: dict[str, str] = field(default_factory=dict)
    fit: dict[str, Any] = field(default_factory=dict)  # merged over every run's config
    probe: dict[str, Any] = field(default_factory=dict)  # benchmark or "all" -> merged over its probe config

    @property
    def spec_dir(self) -> Path:
        return Path(self.spec_path).parent

    @property
    def root(self) -> Path:
        """``<output>/<scale>``: where the runs of this scale live."""
        return Path(self.output).resolve() / self.scale


TOP_KEYS = {"name", "output", "seeds", "baseline", "keep_feature_cache", "random_init", "regimes", "probes", "report",
            "slurm", "jobs", "env", "fit", "probe", "scales"}
SCALE_KEYS = TOP_KEYS - {"scales", "name"}
# a scale sets the entries it names (report too: a scale's header must not reset the spec's plot axes)
MERGED_BY_ENTRY = ("probes", "slurm", "env", "report")
MERGED_DEEP = ("fit", "probe")  # a scale's value is merged over the spec's


def _describe(value: Any) -> str:
    return repr(value) if not isinstance(value, (dict, list)) else type(value).__name__


class _Checker:
    """Typed reads of the raw spec; ``where`` maps a top-level key to the key path that last set it."""

    def __init__(self, file: Path):
        self.file = file
        self.where: dict[str, str] = {}

    def fail(self, key: str, message: str) -> SpecError:
        return SpecError(f"{self.file.name}: {key}: {message}")

    def key(self, name: str, sub: str = "") -> str:
        return self.where.get(name, name) + (f".{sub}" if sub else "")

    def mapping(self, value: Any, key: str) -> dict:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.fail(key, f"expected a mapping, got {_describe(value)}")
        return value

    def string(self, value: Any, key: str, optional: bool = False) -> Optional[str]:
        if value is None and optional:
            return None
        if not isinstance(value, str) or not value:
            raise self.fail(key, f"expected a non-empty string, got {_describe(value)}")
        return value

    def integer(self, value: Any, key: str, minimum: Optional[int] = None, optional: bool = False) -> Optional[int]:
        if value is None and optional:
            return None
        if not isinstance(value, int) or isinstance(value, bool) or (minimum is not None and value < minimum):
            bound = f" >= {minimum}" if minimum is not None else ""
            raise self.fail(key, f"expected an int{bound}, got {_describe(value)}")
        return value

    def strings(self, value: Any, key: str) -> list[str]:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.fail(key, f"expected a list of strings, got {_describe(value)}")
        return value


def load_spec(path: str | os.PathLike, scale: str = "full") -> SweepSpec:
    """The spec with ``scales[scale]`` applied; errors name the file and the key."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"sweep spec {path} not found")
    raw = load_yaml(path) or {}
    check = _Checker(path)
    if not isinstance(raw, dict):
        raise SpecError(f"{path.name}: expected a mapping of {sorted(TOP_KEYS)}, got {_describe(raw)}")
    unknown = set(raw) - TOP_KEYS
    if unknown:
        raise SpecError(f"{path.name}: unknown key(s) {sorted(unknown)}; expected some of {sorted(TOP_KEYS)}")
    scales = check.mapping(raw.pop("scales", None), "scales") or {"full": {}}
    if scale not in scales:
        raise SpecError(f"{path.name}: scales: no scale {scale!r} (it has {', '.join(scales)})")
    over = check.mapping(scales[scale], f"scales.{scale}")
    unknown = set(over) - SCALE_KEYS
    if unknown:
        raise SpecError(f"{path.name}: scales.{scale}: unknown key(s) {sorted(unknown)}; "
                        f"expected some of {sorted(SCALE_KEYS)}")
    for key, value in over.items():
        check.where[key] = f"scales.{scale}.{key}"
        if key in MERGED_BY_ENTRY:
            raw[key] = {**check.mapping(raw.get(key), key), **check.mapping(value, check.key(key))}
        elif key in MERGED_DEEP:
            raw[key] = deep_merge(check.mapping(raw.get(key), key), check.mapping(value, check.key(key)))
        else:
            raw[key] = value
    return _build(raw, scale, path, check)


def _build(raw: dict[str, Any], scale: str, path: Path, check: _Checker) -> SweepSpec:
    seeds = raw.get("seeds", [0, 1, 2])
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        raise check.fail(check.key("seeds"), f"expected a non-empty list of ints, got {_describe(seeds)}")
    if len(set(seeds)) != len(seeds):
        raise check.fail(check.key("seeds"), f"{seeds} repeats a seed")
    baseline = check.string(raw.get("baseline", "baseline"), check.key("baseline"))
    probes = {str(k): check.string(v, check.key("probes", str(k)))
              for k, v in check.mapping(raw.get("probes"), check.key("probes")).items()}
    regimes_raw = check.mapping(raw.get("regimes"), check.key("regimes"))
    if not regimes_raw:
        raise check.fail(check.key("regimes"), f"scale {scale!r} has no regimes")
    regimes = {str(name): _regime(body, check.key("regimes", str(name)), baseline, probes, check)
               for name, body in regimes_raw.items()}
    slurm_raw = check.mapping(raw.get("slurm"), check.key("slurm"))
    unknown = set(slurm_raw) - set(SlurmSpec.__dataclass_fields__)
    if unknown:
        raise check.fail(check.key("slurm"), f"unknown key(s) {sorted(unknown)}; "
                         f"expected some of {sorted(SlurmSpec.__dataclass_fields__)}")
    slurm = SlurmSpec(**slurm_raw)
    for key in ("cpus_per_task", "signal_seconds"):
        check.integer(getattr(slurm, key), check.key("slurm", key), minimum=0)
    check.integer(slurm.max_parallel, check.key("slurm", "max_parallel"), minimum=1, optional=True)
    if not isinstance(slurm.requeue, bool):
        raise check.fail(check.key("slurm", "requeue"), f"expected true or false, got {slurm.requeue!r}")
    slurm.extra = check.strings(slurm.extra or [], check.key("slurm", "extra"))
    report_raw = check.mapping(raw.get("report"), check.key("report"))
    unknown = set(report_raw) - set(ReportSpec.__dataclass_fields__)
    if unknown:
        raise check.fail(check.key("report"), f"unknown key(s) {sorted(unknown)}; "
                         f"expected some of {sorted(ReportSpec.__dataclass_fields__)}")
    report = ReportSpec(**report_raw)
    check.string(report.appearance, check.key("report", "appearance"))
    check.strings(report.motion, check.key("report", "motion"))
    cross = check.strings(report.cross_regime, check.key("report", "cross_regime"))
    if not isinstance(report.header, str):
        raise check.fail(check.key("report", "header"), f"expected a string, got {_describe(report.header)}")
    if report.multiplicity not in ("holm", "bh"):
        raise check.fail(check.key("report", "multiplicity"), f"expected holm or bh, got {report.multiplicity!r}")
    if len(cross) != 2 or cross[0] == cross[1]:
        raise check.fail(check.key("report", "cross_regime"), f"expected two different regimes [A, B] (the "
                         f"table shows A - B), got {cross}")
    keep = raw.get("keep_feature_cache", True)
    if not isinstance(keep, bool):
        raise check.fail(check.key("keep_feature_cache"), f"expected true or false, got {_describe(keep)}")
    random_init = raw.get("random_init", True)
    if not isinstance(random_init, bool):
        raise check.fail(check.key("random_init"), f"expected true or false, got {_describe(random_init)}")
    return SweepSpec(
        name=check.string(raw.get("name", path.stem), "name"), scale=scale, spec_path=str(path.resolve()),
        regimes=regimes, output=check.string(raw.get("output", "runs/sweep"), check.key("output")), seeds=seeds,
        baseline=baseline, keep_feature_cache=keep, random_init=random_init, probes=probes, report=report, report_given=report_raw,
        slurm=slurm, jobs=check.integer(raw.get("jobs", 1), check.key("jobs"), minimum=1),
        env={str(k): str(v) for k, v in check.mapping(raw.get("env"), check.key("env")).items()},
        fit=check.mapping(raw.get("fit"), check.key("fit")), probe=check.mapping(raw.get("probe"), check.key("probe")))


def _regime(body: Any, key: str, baseline: str, probes: dict[str, str], check: _Checker) -> RegimeSpec:
    body = check.mapping(body, key)
    unknown = set(body) - set(RegimeSpec.__dataclass_fields__)
    if unknown:
        raise check.fail(key, f"unknown key(s) {sorted(unknown)}; expected {sorted(RegimeSpec.__dataclass_fields__)}")
    for name in ("config", "variants"):
        if not body.get(name):
            raise check.fail(f"{key}.{name}", "is missing")
    regime = RegimeSpec(config=check.string(body["config"], f"{key}.config"),
                        variants=check.strings(body["variants"], f"{key}.variants"),
                        reference=check.string(body.get("reference"), f"{key}.reference", optional=True),
                        probes=check.strings(body.get("probes") or [], f"{key}.probes"),
                        fit=check.mapping(body.get("fit"), f"{key}.fit"))
    if RANDOM_INIT in regime.variants:
        raise check.fail(f"{key}.variants", f"names {RANDOM_INIT!r}, the pseudo-variant the sweep adds to every "
                         "regime itself (top-level random_init: false leaves it out)")
    if baseline not in regime.variants:
        raise check.fail(f"{key}.variants", f"lacks the baseline {baseline!r}: every variant is compared with "
                         "the baseline of the same seed")
    for bench in regime.probes:
        if bench not in probes:
            raise check.fail(f"{key}.probes", f"names {bench!r}, which has no probe config under probes:")
    return regime
