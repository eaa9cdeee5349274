"""A spec expanded into runs: one per (regime, variant, seed), each with a fixed directory, its
commands, and the hashes that identify what it trains and how it is probed."""

from __future__ import annotations

import copy
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import jepa_lit
from jepa_lit.config import deep_merge, link_clip_size, load_yaml, merge_stack, stack_of
from jepa_lit.hashing import files_named, json_sha256
from jepa_lit.study.spec import RANDOM_INIT, SweepSpec, load_spec

RECORD_FILE = "run.json"  # the run's registry record (registry.py)
ARCHITECTURE_FILE = "architecture.ckpt"  # a random_init run's checkpoint: the encoder's config, no weights
FIT_OVERRIDES = "sweep_fit.yaml"  # the last --config of a run's fit: the scale's overrides, seed, paths


def stable_hash(*parts: Any) -> str:
    return json_sha256(parts)


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
    fit_overrides: dict[str, Any]  # the scale's fit, then its regime's; shared by the seeds of a variant
    probes: list[ProbeSpec]
    config_hash: str  # of the merged config (stack + scale overrides); the seed and the run's paths left out
    scale_hash: str  # the scale's overrides alone (not a regime's fit): equal for every run that may share a table
    keep_feature_cache: bool = True
    env: dict[str, str] = field(default_factory=dict)  # set for its commands (e.g. OMP_NUM_THREADS)
    pretrain: bool = True  # False: the random_init control, probed untrained (``config`` gives the architecture)

    @property
    def run_id(self) -> str:
        return f"{self.regime}/{self.variant}/seed_{self.seed}"

    @property
    def checkpoint(self) -> Path:
        """What the probes read: the pretraining's last checkpoint, or for the random_init control the
        architecture file the executor writes in place of a pretraining (architecture.py)."""
        return self.run_dir / "checkpoints" / ("last.ckpt" if self.pretrain else ARCHITECTURE_FILE)

    @property
    def registry_path(self) -> Path:
        return self.run_dir / RECORD_FILE

    def run_overrides(self) -> dict[str, Any]:
        """The scale's overrides plus this run's seed and fixed directory (``save_dir/name/version``)."""
        own = {"seed_everything": self.seed,
               "trainer": {"default_root_dir": str(self.run_dir),
                           "logger": {"init_args": {"save_dir": str(self.run_dir.parent.parent),
                                                    "name": self.variant, "version": self.run_dir.name}}}}
        return deep_merge(self.fit_overrides, own)

    def fit_command(self, python: str = sys.executable, resume: bool = False) -> list[str]:
        configs = ["--config", self.config, "--config", str(self.run_dir / FIT_OVERRIDES)]
        # `last`: the CLI reads the run's fixed logger folder (run_overrides) and falls back to the newest
        # intact checkpoint there when last.ckpt is damaged
        resume_from = ["--ckpt_path", "last"] if resume else []
        return [python, "-m", "jepa_lit.cli", "fit", *configs, *resume_from]

    def probe_command(self, probe: ProbeSpec, python: str = sys.executable) -> list[str]:
        encoder = [] if self.pretrain else ["--encoder", "random_init"]  # weights drawn from the probe's seed
        return [python, "-m", "jepa_lit.cli", "test", "--probe", probe.benchmark, "--config", probe.config,
                "--config", str(self.run_dir / "probes" / f"{probe.benchmark}.sweep.yaml"),
                "--ckpt_path", str(self.checkpoint), *encoder,
                "--output", str(self.run_dir / "probes" / probe.output_name)]


def merged_config(content: list[Any], fit: dict[str, Any]) -> dict[str, Any]:
    """The stacked YAMLs and the overrides (the scale's fit, then the regime's) merged into the config a run
    trains with (up to the defaults LightningCLI fills in): what the config hash covers, so an edit a run does
    not see (say, a callback list that the scale replaces) leaves its hash alone."""
    return link_clip_size(merge_stack([*content, fit]))  # the encoder's clip size from the data's, as the CLI


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


def scale_hash_of(spec: SweepSpec) -> str:
    """The hash of a scale's fit overrides. The second part (None) once held the sweep's objective head
    width, a key the spec no longer has: keeping its place keeps the hashes of runs made without it."""
    return stable_hash(spec.fit, None)


def expand(spec: SweepSpec | str | os.PathLike, scale: str = "full") -> list[Run]:
    """The runs of a spec (a loaded spec or its path): seed-major, the baseline first in each regime,
    so that partial results already pair every variant with its same-seed baseline; then, with the
    spec's ``random_init``, the regime's random_init control: the baseline's config (its architecture),
    no pretraining, the probes on an encoder initialised from the run's seed."""
    if not isinstance(spec, SweepSpec):
        spec = load_spec(spec, scale)
    root = spec.root
    scale_hash = scale_hash_of(spec)
    yaml_cache: dict[str, Any] = {}

    def load(file: str) -> Any:
        if file not in yaml_cache:
            yaml_cache[file] = load_yaml(file)
        return copy.deepcopy(yaml_cache[file])

    runs = []
    for seed in spec.seeds:
        for regime, body in spec.regimes.items():
            variants = [spec.baseline] + [v for v in body.variants if v != spec.baseline]
            for variant in variants + ([RANDOM_INIT] if spec.random_init else []):
                pretrain = variant != RANDOM_INIT
                source = variant if pretrain else spec.baseline  # the control takes the baseline's architecture
                config = (spec.spec_dir / body.config.format(variant=source, regime=regime)).resolve()
                if not config.is_file():
                    raise FileNotFoundError(f"{spec.spec_path}: regimes.{regime}: variant {variant!r} has no "
                                            f"experiment file {config}")
                stack = stack_of(config)
                # the scale's fit, then the regime's (its own data, say): in sweep_fit.yaml and the config hash
                fit = deep_merge(spec.fit, body.fit)
                merged = merged_config([load(f) for f in stack], fit)
                check_final_checkpoint(config, merged)
                # the control's hash covers its architecture alone: a baseline's new learning rate leaves it be
                encoder = ((merged.get("model") or {}).get("init_args") or {}).get("encoder")
                hashed = merged if pretrain else (RANDOM_INIT, encoder)
                files = files_named(hashed)  # list files the config names, by content (none: the hash as before)
                hashed = (hashed, files) if files else hashed
                runs.append(Run(
                    sweep=spec.name, scale=spec.scale, regime=regime, variant=variant, seed=seed,
                    baseline=spec.baseline, reference=body.reference, config=str(config),
                    config_stack=stack, run_dir=root / regime / variant / f"seed_{seed}", fit_overrides=fit,
                    probes=[probe_spec(spec, bench, load) for bench in body.probes],
                    config_hash=stable_hash(hashed, jepa_lit.BEHAVIOUR_VERSION)[:16],
                    scale_hash=scale_hash[:16], keep_feature_cache=spec.keep_feature_cache, env=dict(spec.env),
                    pretrain=pretrain,
                ))
    return runs


def probe_spec(spec: SweepSpec, bench: str, load) -> ProbeSpec:
    """A benchmark's probe in a spec: its config, the scale's overrides for it, and their hash."""
    probe_config = (spec.spec_dir / spec.probes[bench]).resolve()
    if not probe_config.is_file():
        raise FileNotFoundError(f"{spec.spec_path}: probes.{bench}: {probe_config} not found")
    over = deep_merge(spec.probe.get("all") or {}, spec.probe.get(bench) or {})
    # Every level of the probe config's stack and every file it names, by content: editing a parent's lrs or
    # a test list makes the result stale (a config without parents or files hashes as it always did).
    stack = stack_of(probe_config)
    content = load(str(probe_config)) if len(stack) == 1 else [load(f) for f in stack]
    files = files_named([merge_stack([load(f) for f in stack]), over])
    parts = (bench, content, over, jepa_lit.BEHAVIOUR_VERSION) + ((files,) if files else ())
    probe_hash = stable_hash(*parts)
    return ProbeSpec(bench, str(probe_config), over, probe_hash)
