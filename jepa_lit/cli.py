"""The ``jepa-lit`` command: a LightningCLI for pretraining, frozen-encoder probes, and the ``data`` tools.

    jepa-lit fit --config experiments/smoke.yaml
    jepa-lit fit --config experiments/base.yaml --print_config
    jepa-lit validate | test | predict --config ... --ckpt_path RUN/checkpoints/last.ckpt
    jepa-lit test --probe ssv2 --ckpt_path RUN/checkpoints/last.ckpt [--data.root DIR] [--config experiments/probes/ssv2.yaml]

Configs stack: a YAML may name others under ``config:`` (read first, then overridden by the file's own
keys), and later ``--config`` flags and ``--key value`` flags override earlier ones.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path
from dataclasses import dataclass
from typing import Callable, Literal, Optional

from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from jepa_lit.config import check_class_paths, check_config_values, config_files, expand_config_stack, load_yaml
from jepa_lit.distributed import close_process_group
from jepa_lit.errors import CheckpointError, ConfigError, run_command
from jepa_lit.module import JEPAModule


def typo_hints(message: str, parser) -> list[str]:
    """``did you mean`` lines for the mistakes jsonargparse reports without a suggestion: an argument a
    class does not take (``Option 'x' is not accepted`` under ``Problem with given class_path 'C'``), a
    class a module does not have, a value outside a Literal's choices, an unknown subcommand, and an
    unknown ``--key``."""
    import importlib
    import inspect
    import re

    from jepa_lit.hints import nearest

    hints, class_path = [], None
    for line in message.splitlines():
        found = re.search(r"Problem with given class_path '([^']+)'", line)
        if found:
            class_path = found.group(1)
        found = re.search(r"Option '([^']+)' is not accepted", line)
        if found and class_path:
            module_name, _, name = class_path.rpartition(".")
            try:
                params = [p for p in inspect.signature(getattr(importlib.import_module(module_name), name)).parameters
                          if p not in ("self", "args", "kwargs")]
            except (ImportError, AttributeError, TypeError, ValueError):
                continue
            near = nearest(found.group(1), params)
            hints.append(f"{name} takes no argument {found.group(1)!r}" + (f"; did you mean {near!r}?" if near else "")
                         + f" (it takes: {', '.join(params)})")
        found = re.search(r"module '([^']+)' has no attribute '([^']+)'", line)
        if found:
            module_name, name = found.groups()
            try:
                module = importlib.import_module(module_name)
            except ImportError:
                continue
            names = getattr(module, "__all__", None) or [n for n in dir(module) if n[:1].isupper()]
            near = nearest(name, names)
            hints.append(f"{module_name} has no {name}" + (f"; did you mean {module_name}.{near}?" if near else
                                                             f" (it has: {', '.join(sorted(names))})"))
    given = re.search(r"Given value: (\S+)\s*$", message)  # a value outside a Literal's choices
    choices_of: dict[str, list[str]] = {}
    for line in message.splitlines():
        choices = re.search(r"Literal\[([^\]]*)\]", line)
        value = re.search(r"Got value: (\S+)", line) or given
        if choices and value:
            choices_of.setdefault(value.group(1), []).extend(re.findall(r"'([^']*)'", choices.group(1)))
    for value, choices in choices_of.items():
        near = nearest(value, choices)
        if near:
            hints.append(f"{value!r} is not one of the accepted values; did you mean {near!r}?")
    found = re.search(r"invalid choice: '([^']+)' \(choose from ([^)]*)\)", message)
    if found:
        near = nearest(found.group(1), re.findall(r"'([^']+)'", found.group(2)))
        if near:
            hints.append(f"did you mean {near!r}?")
    found = re.search(r"does not accept option '([^']+)'|unrecognized arguments: --?([^\s=]+)", message)
    if found:
        key = found.group(1) or found.group(2)
        near = nearest(key, parser_keys(parser))
        if near:
            hints.append(f"unknown key {key!r}; did you mean {near!r} (--{near})?")
    return list(dict.fromkeys(hints))


def parser_keys(parser) -> set[str]:
    """Every dotted key a parser (and its subcommands' parsers) accepts."""
    keys = set()
    for action in getattr(parser, "_actions", []):
        if getattr(action, "dest", None) not in (None, "help", "==SUPPRESS=="):
            keys.add(action.dest)
        for sub in (getattr(action, "_name_parser_map", None) or {}).values():
            keys |= parser_keys(sub)
    return keys


class JepaArgumentParser(LightningArgumentParser):
    """LightningCLI's parser; its errors end with the nearest valid name of a mistyped key or class."""

    def error(self, message: str, ex: Optional[Exception] = None):
        # Nested parsers raise instead of exiting and their message ends up inside the outer one: hint once.
        hints = typo_hints(message, self) if self.exit_on_error else []
        return super().error(message + "".join(f"\nhint: {h}" for h in hints), ex)


# Values of --ckpt_path that Lightning resolves itself rather than reading a file.
SPECIAL_CKPT_PATHS = ("last", "best", "hpc", "registry")


class JepaCLI(LightningCLI):
    def parse_arguments(self, parser, args) -> None:
        """The run's YAML is its configuration: checkpoint hyperparameters are not merged back into it.
        (LightningCLI would, right after parsing, and fail: JEPAModule's saved hyperparameters leave out
        the injected encoder, mask sampler and objectives.) So ``ckpt_path`` is held back from the parsed
        config until ``before_instantiate_classes``; model weights still come from ``--ckpt_path``."""
        super().parse_arguments(parser, args)
        subcommand = self.config.get("subcommand")
        self._held_ckpt_path = self.config[subcommand].get("ckpt_path") if subcommand else None
        if self._held_ckpt_path is not None:
            self.config[subcommand].ckpt_path = None

    def before_instantiate_classes(self) -> None:
        if getattr(self, "_held_ckpt_path", None) is not None:
            self.config[self.subcommand].ckpt_path = self._held_ckpt_path
        config = self.config.get(self.subcommand) if self.subcommand else None
        if self.subcommand == "fit" and self.config.fit.get("ckpt_path") == "last":
            resolve_last_checkpoint(self.config.fit)
        elif config is not None:
            ckpt = config.get("ckpt_path")
            if ckpt and str(ckpt).split(":")[0] not in SPECIAL_CKPT_PATHS and not Path(ckpt).is_file():
                from jepa_lit.checkpointing.metadata import checkpoint_not_found

                raise CheckpointError(f"--ckpt_path: {checkpoint_not_found(ckpt)}")
        if config is not None:
            check_ckpt_file(config.get("ckpt_path"))
            check_data_values(config.get("data"))
            check_config_values(config.as_dict())  # hostile (issue 24, 6): lr 0, NaN weights, an objective twice
        if config is not None:  # hostile (issue 24, 3 and 7): a folder of its own, one writer, writable
            from jepa_lit.run_folder import prepare_run_folder

            prepare_run_folder(config, rank_zero=_is_rank_zero(), fit=self.subcommand == "fit")
        trainer_config = (config if config is not None else self.config).trainer
        resolve_precision_auto(trainer_config)
        cpu_precision_fallback(trainer_config)

    def add_arguments_to_parser(self, parser) -> None:
        allow_precision_auto(parser)

    def instantiate_trainer(self, **kwargs):
        """The configured Trainer plus the SIGTERM callback (a preempted fit leaves a resumable last.ckpt)."""
        from jepa_lit.callbacks.preemption import CheckpointOnSigterm

        trainer = super().instantiate_trainer(**kwargs)
        if not any(isinstance(c, CheckpointOnSigterm) for c in trainer.callbacks):
            trainer.callbacks.append(CheckpointOnSigterm())
        return trainer

    def before_fit(self) -> None:
        """What can be checked in this one process is checked before Lightning launches the other ranks,
        so a bad config or data root gives one message, not one per rank."""
        check_clip_fits_encoder(self.model, self.datamodule)
        setup = getattr(self.datamodule, "setup", None)
        if setup is not None:
            setup("fit")  # indexes the training split (roots, annotation files); kept, not read again

    def after_fit(self) -> None:
        trainer = self.trainer
        log_dir = trainer.log_dir  # a broadcast under DDP: every rank must take part, not only rank 0
        if trainer.is_global_zero:
            lines = [f"run directory:   {log_dir}"]
            checkpoint = getattr(trainer.checkpoint_callback, "last_model_path", "") or getattr(
                trainer.checkpoint_callback, "best_model_path", ""
            )
            if checkpoint:
                lines.append(f"last checkpoint: {checkpoint}")
            if trainer.logger is not None and trainer.logger.save_dir:
                lines.append(f"tensorboard:     tensorboard --logdir {trainer.logger.save_dir}")
            print("\n".join(lines), flush=True)


def check_ckpt_file(ckpt) -> None:
    """A --ckpt_path file must be intact (its integrity record, if any) and what torch.save writes; the
    checkpoint loader checks the rest. Lightning would fail deep inside torch.load, naming no file, or load
    corrupted bytes silently."""
    if not ckpt or str(ckpt).split(":")[0] in SPECIAL_CKPT_PATHS or not Path(ckpt).is_file():
        return
    from jepa_lit.checkpointing.integrity import checkpoint_problem, damaged_message

    problem = checkpoint_problem(ckpt)
    if problem is not None:
        raise CheckpointError(f"--ckpt_path {damaged_message(ckpt, problem)}")


def check_data_values(data) -> None:
    """Sizes that must be positive, named by key, before any dataset or process is built."""
    init = data.get("init_args") if hasattr(data, "get") else None
    if init is None:
        return
    for key in ("batch_size", "num_frames", "crop_size"):
        value = init.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value <= 0:
            raise ConfigError(f"data.init_args.{key}={value}; expected a positive integer")
    workers = init.get("num_workers")
    if isinstance(workers, int) and workers < 0:
        raise ConfigError(f"data.init_args.num_workers={workers}; expected 0 (load in the main process) or more")


def check_clip_fits_encoder(model, datamodule) -> None:
    """data.num_frames a multiple of the encoder's tubelet_size and data.crop_size of its patch_size
    (checked once, before training, instead of failing in the first forward on every rank)."""
    encoder = getattr(model, "encoder", None)
    tubelet, patch = getattr(encoder, "tubelet_size", None), getattr(encoder, "patch_size", None)
    frames, crop = getattr(datamodule, "num_frames", None), getattr(datamodule, "crop_size", None)
    problems = []
    if isinstance(tubelet, int) and isinstance(frames, int) and frames % tubelet:
        problems.append(f"data.init_args.num_frames={frames} is not a multiple of "
                        f"model.init_args.encoder.init_args.tubelet_size={tubelet}")
    if isinstance(patch, int) and isinstance(crop, int) and crop % patch:
        problems.append(f"data.init_args.crop_size={crop} is not a multiple of "
                        f"model.init_args.encoder.init_args.patch_size={patch}")
    if problems:
        raise ConfigError("; ".join(problems) + " (the encoder cuts clips into tubelet x patch x patch pieces)")


def cpu_bf16_units(cpuinfo: str = "/proc/cpuinfo") -> list[str]:
    """The bf16 instruction sets this CPU announces (amx_bf16, avx512_bf16), from /proc/cpuinfo's flags."""
    try:
        with open(cpuinfo) as handle:
            flags = next((line.split(":", 1)[1].split() for line in handle if line.startswith("flags")), [])
    except OSError:
        return []
    return [unit for unit in ("amx_bf16", "avx512_bf16") if unit in flags]


def cpu_precision_fallback(trainer_config, cpuinfo: str = "/proc/cpuinfo") -> None:
    """fp32 on CPU by default: with ``accelerator: auto`` on a machine without a GPU, a mixed precision
    (the study's bf16-mixed) becomes 32-true, because bf16 autocast runs many times slower than fp32 on
    CPUs without bf16 units. A CPU that announces them (amx_bf16 / avx512_bf16) keeps the precision. Naming
    ``accelerator: cpu`` keeps the precision asked for (e.g. to test bf16)."""
    precision = str(trainer_config.get("precision"))
    if trainer_config.get("accelerator") != "auto" or "mixed" not in precision:
        return
    import torch

    if torch.cuda.is_available() or (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        return
    from lightning.pytorch.utilities import rank_zero_warn

    units = cpu_bf16_units(cpuinfo)
    if units and "bf16" in precision:
        rank_zero_warn(f"no GPU: trainer.precision {precision} kept on the CPU (it announces {', '.join(units)})")
        return
    rank_zero_warn(f"no GPU: trainer.precision {precision} -> 32-true (this CPU announces no bf16 units "
                   "(amx_bf16 / avx512_bf16 in /proc/cpuinfo), so autocast would emulate it, many times slower "
                   "than fp32; set trainer.accelerator: cpu to keep the precision asked for)")
    trainer_config.precision = "32-true"


# trainer.precision also takes "auto" (the demo and smoke configs): the CLI replaces it before the Trainer is built.
PRECISION_AUTO = "auto"


def allow_precision_auto(parser) -> None:
    """Let ``trainer.precision`` take "auto" besides Lightning's values (a YAML with it would fail to parse)."""
    from typing import Union

    for action in getattr(parser, "_actions", []):
        if getattr(action, "dest", None) == "trainer.precision" and hasattr(action, "_typehint"):
            action._typehint = Optional[Union[action._typehint, Literal["auto"]]]


def auto_precision(accelerator: str, cpuinfo: str = "/proc/cpuinfo") -> tuple[str, str]:
    """(precision, why) for ``precision: auto``: bf16-mixed where bf16 runs on native units (a CUDA GPU that
    supports it, a CPU that announces amx_bf16 / avx512_bf16), 32-true elsewhere. On CPUs without those
    units autocast emulates bf16 and runs several times slower than fp32 (docs/demo.md has a measurement)."""
    import torch

    gpu = accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available()
    if gpu:
        if torch.cuda.is_bf16_supported():
            return "bf16-mixed", f"the GPU ({torch.cuda.get_device_name()}) supports bf16"
        return "32-true", f"the GPU ({torch.cuda.get_device_name()}) does not support bf16"
    if accelerator in ("auto", "mps") and getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "32-true", "Apple MPS: bf16 autocast is not used there"
    units = cpu_bf16_units(cpuinfo)
    if units:
        return "bf16-mixed", f"no GPU, and this CPU announces bf16 units ({', '.join(units)} in {cpuinfo})"
    return "32-true", (f"no GPU, and this CPU announces no bf16 units (amx_bf16 / avx512_bf16 in {cpuinfo}), so "
                       "bf16 autocast would be emulated, slower than fp32")


def resolve_precision_auto(trainer_config, cpuinfo: str = "/proc/cpuinfo") -> Optional[str]:
    """Replace ``trainer.precision: auto`` by the precision auto_precision picks, print it and why; the
    message, or None when the config asks for a precision itself."""
    if str(trainer_config.get("precision")) != PRECISION_AUTO:
        return None
    precision, why = auto_precision(str(trainer_config.get("accelerator") or "auto"), cpuinfo)
    trainer_config.precision = precision
    message = f"trainer.precision: auto -> {precision} ({why})"
    if _is_rank_zero():  # before the Trainer exists, so Lightning's rank_zero helpers do not know the rank yet
        print(message, flush=True)
    return message


def _is_rank_zero() -> bool:
    import os

    return all(os.environ.get(k, "0") == "0" for k in ("RANK", "LOCAL_RANK", "SLURM_PROCID"))


def resolve_last_checkpoint(config) -> None:
    """``--ckpt_path last``: continue the newest run of this config in its own directory.

    Lightning would look for ``last.ckpt`` in a new logger version's folder; instead take the newest
    ``<save_dir>/<name>/version_*/checkpoints/last.ckpt`` and make the logger reuse that version.
    """
    logger = config.trainer.get("logger")
    init = logger.get("init_args") if hasattr(logger, "get") else None
    if init is None or init.get("save_dir") is None:
        raise ConfigError("--ckpt_path last needs trainer.logger with init_args.save_dir (as in experiments/*.yaml)")
    runs = Path(init.save_dir) / (init.get("name") or "lightning_logs")
    if init.get("version") not in (None, ""):  # a fixed folder (the sweep's seed_S): that one, whatever its name
        named = [runs / str(init.version), runs / f"version_{init.version}"]
        found = [folder / "checkpoints" / "last.ckpt" for folder in named
                 if (folder / "checkpoints" / "last.ckpt").is_file()][:1]
        wanted = f"{runs / str(init.version)}/checkpoints/last.ckpt"
    else:
        found = sorted(runs.glob("version_*/checkpoints/last.ckpt"),
                       key=lambda p: (int(p.parents[1].name.split("_")[-1])
                                      if p.parents[1].name.split("_")[-1].isdigit() else -1, p.stat().st_mtime))
        wanted = f"{runs}/version_*/checkpoints/last.ckpt"
    if not found:
        raise CheckpointError(f"--ckpt_path last: no {wanted} to resume from")
    config.ckpt_path = str(intact_or_newest_intact(found[-1]))
    init.version = found[-1].parents[1].name
    print(f"resuming {config.ckpt_path}", flush=True)


def intact_or_newest_intact(last: Path) -> Path:
    """``last`` when it is intact; else the newest intact checkpoint beside it, with a warning naming both."""
    from jepa_lit.checkpointing.integrity import (checkpoint_problem, damaged_message, is_training_checkpoint,
                                                  newest_intact)

    problem = checkpoint_problem(last)
    if problem is None and not is_training_checkpoint(last):  # hostile (issue 24, 8): an export saved as last.ckpt
        problem = "it is not a training checkpoint (an export, or another torch file)"
    if problem is None:
        return last
    intact = newest_intact(last)
    if intact is None:
        raise CheckpointError(f"--ckpt_path last: {damaged_message(last, problem)}")
    from lightning.pytorch.utilities import rank_zero_warn

    rank_zero_warn(f"--ckpt_path last: {last} is damaged ({problem}); resuming from {intact}, the newest "
                   "intact checkpoint in the same folder, instead")
    return intact


def run_cli(args: Optional[list[str]] = None, run: bool = True) -> JepaCLI:
    args = expand_config_stack(list(sys.argv[1:] if args is None else args))
    check_class_paths(args)
    return JepaCLI(
        JEPAModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        save_config_kwargs={"overwrite": True},
        parser_kwargs={"parser_mode": "yaml"},
        parser_class=JepaArgumentParser,
        args=args,
        run=run,
        auto_configure_optimizers=False,
        # A fixed seed when a config sets none (LightningCLI's default draws one per process): under
        # torchrun / srun every rank must derive the same masks and data order from it.
        seed_everything_default=0,
    )


# ----- jepa-lit test --probe <benchmark> ---------------------------------------------------------
class ProbeCLI(LightningCLI):
    """``jepa-lit test --probe <benchmark> --ckpt_path CKPT``: frozen-encoder evaluation of a pretraining run.

    Design. A probe run is not ``Trainer.test`` of the pretraining model: it loads the frozen eval
    encoder from the checkpoint, extracts (or reads cached) features, fits probe heads and tests
    them, so there are three models and two datasets in play. So ``main`` routes ``test`` with
    ``--probe`` here before LightningCLI could build a JEPAModule, and this CLI parses, in the usual
    LightningCLI way (``--config``, dotted overrides, ``--print_config``):

    - ``--probe``: the benchmark; its protocol (benchmarks.py) gives every default below;
    - ``--ckpt_path``: the pretraining checkpoint (``--encoder official --official_encoder
      '{size: large, interpolate_rope: true}'``: an official V-JEPA 2.1 file instead); ``--encoder
      random_init`` probes the same architecture with fresh weights (a control); ``--output``: the
      results JSON path;
    - ``data``: the benchmark's (pixel) DataModule, e.g. ``--data.root DIR``;
    - ``model``: the ProbeModule (probe type, lr x weight-decay grid, head selection, bootstrap);
    - ``features``: the FeatureDataModule (pooling, probe batch size, cache folder, hold-out);
    - ``trainer``: the probe's Trainer (``max_epochs`` is the probe's epochs); ``seed_everything``.

    It instantiates them without running a subcommand (``run=False``); ``run_probe_cli`` then calls
    ``jepa_lit.eval.evaluate.evaluate_checkpoint``. The benchmark name is read before parsing (from
    ``--probe`` or a ``--config`` file's ``probe:`` key) because the defaults depend on it.
    """

    def __init__(self, benchmark, args: list[str]):
        from jepa_lit.eval.probe_module import ProbeModule

        self.benchmark = benchmark
        super().__init__(
            ProbeModule,
            None,
            subclass_mode_data=True,
            save_config_callback=None,
            parser_kwargs={"parser_mode": "yaml"},
            parser_class=JepaArgumentParser,
            args=args,
            run=False,
            auto_configure_optimizers=False,
        )

    def before_instantiate_classes(self) -> None:
        check_config_values(self.config.as_dict())  # hostile (issue 24, 6): values that parse but cannot work

    def add_arguments_to_parser(self, parser) -> None:
        from jepa_lit.eval.benchmarks import BENCHMARKS
        from jepa_lit.eval.feature_data import FeatureDataModule

        parser.add_argument("--probe", type=Literal[tuple(sorted(BENCHMARKS))], required=True,
                            help="the benchmark: " + ", ".join(sorted(BENCHMARKS)))
        parser.add_argument("--ckpt_path", type=str, required=True, help="the pretraining checkpoint to evaluate")
        parser.add_argument("--encoder", type=Literal["checkpoint", "random_init", "official"], default="checkpoint",
                            help="the checkpoint's eval encoder, the same architecture randomly initialised, or "
                                 "an official V-JEPA 2 / 2.1 checkpoint (architecture from --official_encoder)")
        parser.add_argument("--official_encoder", type=Optional[dict], default=None,
                            help="VisionTransformer arguments for --encoder official, e.g. "
                                 "'{size: large, rope_interleave: false}' for V-JEPA 2 ViT-L, "
                                 "'{size: large, interpolate_rope: true}' for V-JEPA 2.1 ViT-L. RoPE settings "
                                 "are checked against the checkpoint's version (allow_rope_mismatch: true skips "
                                 "that); pretrained_entry: NAME picks the entry (default: ema_encoder, else "
                                 "target_encoder, else encoder)")
        parser.add_argument("--output", type=Optional[str], default=None,
                            help="results JSON path (default: RUN/probes/<benchmark>-<ckpt>-<encoder>-<key>.json)")
        parser.add_class_arguments(FeatureDataModule, "features")
        defaults = self.benchmark.defaults()
        flat = {"probe": self.benchmark.name, "seed_everything": defaults["seed_everything"],
                "data": defaults["data"]}
        for group in ("model", "features", "trainer"):
            flat.update({f"{group}.{k}": v for k, v in defaults[group].items()})
        parser.set_defaults(flat)


def find_probe_name(argv: list[str]) -> Optional[str]:
    """The benchmark named by ``--probe NAME`` / ``--probe=NAME``, else by a ``--config`` file's ``probe:``."""
    name = None
    for i, arg in enumerate(argv):
        if arg == "--probe" and i + 1 < len(argv):
            name = argv[i + 1]
        elif arg.startswith("--probe="):
            name = arg.split("=", 1)[1]
    if name is not None:
        return name
    for path in config_files(expand_config_stack(argv)):  # a probe: key may sit in a stacked parent
        if Path(path).is_file():
            content = load_yaml(path)
            if isinstance(content, dict) and content.get("probe"):
                name = str(content["probe"])
    return name


def run_probe_cli(args: list[str]) -> tuple[dict, Path]:
    """Parse a probe command line (without the leading ``test``) and evaluate; returns (results, JSON path)."""
    from jepa_lit.eval.benchmarks import get_benchmark
    from jepa_lit.eval.evaluate import evaluate_checkpoint

    args = expand_config_stack(args)  # `config: [...]` stacks in probe YAMLs too
    check_class_paths(args)
    name = find_probe_name(args)
    if name is None:
        raise ValueError("jepa-lit test --probe: no benchmark given (--probe NAME)")
    cli = ProbeCLI(get_benchmark(name), args)
    config = cli.config
    if config.probe != name:
        raise ValueError(f"--probe {name!r} on the command line but probe: {config.probe!r} in a config file")
    data_config = config.data.as_dict() if hasattr(config.data, "as_dict") else dict(config.data)
    trainer_config = config.trainer
    extract_kwargs = {"accelerator": trainer_config.accelerator, "precision": trainer_config.precision,
                      "enable_progress_bar": trainer_config.enable_progress_bar is not False}  # unset: on, as Lightning
    return evaluate_checkpoint(
        benchmark=cli.benchmark,
        ckpt_path=config.ckpt_path,
        datamodule=cli.datamodule,
        data_config=data_config,
        model=cli.model,
        features=cli.config_init.features,
        trainer=cli.trainer,
        encoder=config.encoder,
        seed=config.seed_everything if isinstance(config.seed_everything, int) and not isinstance(config.seed_everything, bool) else None,
        output=config.output,
        extract_kwargs=extract_kwargs,
        official_encoder=config.official_encoder,
    )


def data_command(argv: list[str]) -> int:
    from jepa_lit.data.check import main as data_main

    return data_main(argv)


def export_command(argv: list[str]) -> int:
    from jepa_lit.checkpointing.export import export_main

    return export_main(argv)


# Exit status of a fit stopped by SIGTERM after saving a resumable checkpoint: 128 + 15, as a shell reports a
# process killed by the signal, so `fit && test --probe` never probes a half-trained run (docs/distributed.md).
EXIT_SIGTERM = 143


def lightning_command(argv: list[str]) -> int:
    """fit / validate / predict (and test's help): the LightningCLI of JEPAModule; ``argv`` starts with the command."""
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    from jepa_lit.data.records import LayoutError

    try:
        run_cli(argv)
        close_process_group()
    except LayoutError as error:  # a wrong --data.root: the message shows the path, what is near and the tree
        raise LayoutError(f"{error}{root_note(error, 'data.init_args')}") from error
    except SIGTERMException:  # Lightning's loops stop at a batch's end; CheckpointOnSigterm saved last.ckpt
        print(f"jepa-lit {argv[0]}: stopped by SIGTERM; resume with --ckpt_path last (or the run's "
              f"checkpoints/last.ckpt); exit status {EXIT_SIGTERM}", file=sys.stderr, flush=True)
        return EXIT_SIGTERM
    return 0


def test_command(argv: list[str]) -> int:
    """``test --probe <benchmark>``: a frozen-encoder probe. A pretraining model has nothing else to test."""
    if find_probe_name(argv[1:]) is not None:
        try:
            run_probe_cli(argv[1:])
            close_process_group()
        except (ValueError, FileNotFoundError) as error:
            print(f"jepa-lit test --probe: error: {error}{root_note(error, 'data.init_args')}", file=sys.stderr)
            return 2
        return 0
    if any(a in ("-h", "--help") or a.startswith("--print_config") for a in argv):
        return lightning_command(argv)
    from jepa_lit.eval.benchmarks import BENCHMARKS

    print("jepa-lit test: error: name the benchmark to probe the checkpoint on, e.g. "
          "`jepa-lit test --probe synthetic --ckpt_path RUN/checkpoints/last.ckpt`; benchmarks: "
          + ", ".join(sorted(BENCHMARKS)), file=sys.stderr)
    return 2


@dataclass(frozen=True)
class Command:
    run: Callable[[list[str]], int]  # takes the whole command line, the command's name first
    help: str
    exits: bool = False  # ends the process with its status even on success (the tools' own exit codes)


COMMANDS: dict[str, Command] = {
    "fit": Command(lightning_command, "pretrain (LightningCLI; --config FILE, --key value overrides)"),
    "validate": Command(lightning_command, "run the validation loop of a pretraining config / checkpoint"),
    "test": Command(test_command, "frozen-encoder probe: test --probe BENCHMARK --ckpt_path RUN/checkpoints/last.ckpt"),
    "predict": Command(lightning_command, "run the predict loop of a pretraining config / checkpoint"),
    "data": Command(lambda argv: data_command(argv[1:]), "dataset tools: data check ...", exits=True),
    "export": Command(lambda argv: export_command(argv[1:]), "export a checkpoint's encoder in the official layout",
                      exits=True),
}


def usage() -> str:
    return "\n".join(["usage: jepa-lit COMMAND [ARGS]  (jepa-lit COMMAND --help for its arguments)", "", "commands:"]
                     + [f"  {name:9s} {command.help}" for name, command in COMMANDS.items()])


def main(argv: Optional[list[str]] = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    # main passes the command line on as `args` (minus "test" for probes); that is what it is meant for.
    warnings.filterwarnings("ignore", message="LightningCLI's args parameter is intended")
    if not argv or argv[0] in ("-h", "--help"):
        print(usage(), file=sys.stdout if argv else sys.stderr)
        sys.exit(0 if argv else 2)
    command = COMMANDS.get(argv[0])
    if command is None:
        from jepa_lit.hints import nearest

        near = nearest(argv[0], COMMANDS)
        print(usage() + f"\n\njepa-lit: error: unknown command {argv[0]!r}"
              + (f"; did you mean {near!r}?" if near else ""), file=sys.stderr)
        sys.exit(2)
    code = run_command(f"jepa-lit {argv[0]}", command.run, argv)
    if code or command.exits:
        sys.exit(code)


def root_note(error: Exception, key: str) -> str:
    """For a dataset layout error: which config key holds the dataset folder."""
    from jepa_lit.data.records import LayoutError

    if not isinstance(error, LayoutError):
        return ""
    return (f"\n(the dataset folder is {key}.root in a config file, --data.root on the command line; "
            "see docs/datasets.md)")


if __name__ == "__main__":
    main()
