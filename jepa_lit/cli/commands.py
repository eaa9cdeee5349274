"""The ``jepa-lit`` command: a table of commands (fit / validate / test --probe / predict / data / export) and main.

    jepa-lit fit --config experiments/smoke.yaml
    jepa-lit fit --config experiments/base.yaml --print_config
    jepa-lit validate | test | predict --config ... --ckpt_path RUN/checkpoints/last.ckpt
    jepa-lit test --probe ssv2 --ckpt_path RUN/checkpoints/last.ckpt [--data.root DIR] [--config experiments/probes/ssv2.yaml]

Configs stack: a YAML may name others under ``config:`` (read first, then overridden by the file's own
keys), and later ``--config`` flags and ``--key value`` flags override earlier ones.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Callable, Optional

from jepa_lit.cli.fit import run_cli
from jepa_lit.cli.noise import silence_dependency_noise
from jepa_lit.cli.probe import find_probe_name, run_probe_cli
from jepa_lit.distributed import close_process_group
from jepa_lit.errors import run_command


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
    silence_dependency_noise()  # Lightning's deprecation and advertisement lines (noise.py); ours still show
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
