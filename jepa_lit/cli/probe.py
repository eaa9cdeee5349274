"""``jepa-lit test --probe <benchmark>``: ProbeCLI, a frozen-encoder evaluation of a pretraining run."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional

from lightning.pytorch.cli import LightningCLI

from jepa_lit.cli.hints import JepaArgumentParser
from jepa_lit.config import check_class_paths, check_config_values, config_files, expand_config_stack, load_yaml


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
        check_config_values(self.config.as_dict())  # values that parse but cannot work (issue 24)

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


