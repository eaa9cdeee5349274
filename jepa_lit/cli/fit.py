"""``jepa-lit fit / validate / predict``: JepaCLI, the LightningCLI of JEPAModule, with the checks made before
anything is built (config values, checkpoint files, clip size against the encoder) and ``--ckpt_path last``."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Literal, Optional

from lightning.pytorch.cli import LightningCLI

from jepa_lit.cli.hints import JepaArgumentParser
from jepa_lit.config import (CLIP_SIZE_LINKS, check_class_paths, check_config_values, check_encoder_clip_size,
                             encoder_clip_size_given, expand_config_stack)
from jepa_lit.distributed import is_rank_zero
from jepa_lit.errors import CheckpointError, ConfigError
from jepa_lit.library_seams import widen_argument_type
from jepa_lit.module import JEPAModule
from jepa_lit.precision import cpu_precision_fallback, resolve_precision_auto
from jepa_lit.run_folder import prepare_run_folder

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
        # the link dropped any encoder clip size given apart from the data's: say so when it differed
        parsed = self.config[subcommand] if subcommand else self.config
        check_encoder_clip_size(encoder_clip_size_given(list(args or [])), parsed.get("data"))
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
            check_config_values(config.as_dict())  # lr 0, NaN weights, an objective twice (issue 24)
            # a folder of its own, one writer at a time, outputs writable before the work (issue 24)
            prepare_run_folder(config, rank_zero=is_rank_zero(), fit=self.subcommand == "fit")
        trainer_config = (config if config is not None else self.config).trainer
        resolve_precision_auto(trainer_config)
        cpu_precision_fallback(trainer_config)
        drop_progress_bar_when_disabled(trainer_config)

    def add_arguments_to_parser(self, parser) -> None:
        allow_precision_auto(parser)
        for source, target in CLIP_SIZE_LINKS:  # the encoder's clip size is the data's
            parser.link_arguments(source, target, apply_on="parse")

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
        self.model.check_data_fits(self.datamodule)
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


def allow_precision_auto(parser) -> None:
    """Let ``trainer.precision`` take "auto" besides Lightning's values (a YAML with it would fail to parse)."""
    from typing import Union

    widen_argument_type(parser, "trainer.precision", lambda typehint: Optional[Union[typehint, Literal["auto"]]])


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


def drop_progress_bar_when_disabled(trainer_config) -> None:
    """``--trainer.enable_progress_bar false`` means no bar, also with a config that lists a progress bar among
    its callbacks (base.yaml sets the bar's refresh rate that way); Lightning would refuse the two together."""
    if trainer_config.get("enable_progress_bar") is not False:
        return
    from jsonargparse import Namespace
    from lightning.pytorch.callbacks import ProgressBar

    def is_progress_bar(callback) -> bool:
        if isinstance(callback, (dict, Namespace)):
            module, _, name = str(callback.get("class_path", "")).rpartition(".")
            try:
                callback = getattr(importlib.import_module(module), name)
            except (ImportError, AttributeError, ValueError):
                return False
            return isinstance(callback, type) and issubclass(callback, ProgressBar)
        return isinstance(callback, ProgressBar)

    callbacks = trainer_config.get("callbacks") or []
    callbacks = callbacks if isinstance(callbacks, list) else [callbacks]
    trainer_config.callbacks = [c for c in callbacks if not is_progress_bar(c)]


def intact_or_newest_intact(last: Path) -> Path:
    """``last`` when it is intact; else the newest intact checkpoint beside it, with a warning naming both."""
    from jepa_lit.checkpointing.integrity import (checkpoint_problem, damaged_message, is_training_checkpoint,
                                                  newest_intact)

    problem = checkpoint_problem(last)
    if problem is None and not is_training_checkpoint(last):  # an export saved as last.ckpt
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


