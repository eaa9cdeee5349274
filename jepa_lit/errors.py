"""jepa-lit's own error types, and the one top-level handler that turns them into a short message.

Layer 1: imports nothing from jepa_lit, nor torch or Lightning. An error of these types has a known cause;
its message names the file, key or value and what was expected, so the commands print it without a stack
and exit with its ``exit_code``: 2 (bad input), 1 for a run that failed (e.g. too many skipped steps). ``--traceback`` on any command line, or ``JEPA_LIT_TRACEBACK=1``,
shows the stack as well (for debugging). Exit statuses: docs/distributed.md.
"""

from __future__ import annotations

import os
import sys
import traceback
from typing import Callable

BAD_INPUT = 2  # exit status of a run refused for its input (config, data, checkpoint, registry)
TRACEBACK_FLAG = "--traceback"
TRACEBACK_VARIABLE = "JEPA_LIT_TRACEBACK"


class JepaLitError(Exception):
    """An error with a known cause; the message says what is wrong and what was expected."""

    exit_code = 2  # bad input; a subclass for a failed run (not its input) says 1


class ConfigError(JepaLitError, ValueError):
    """A config file or value that cannot be used (YAML syntax, a missing parent, a value out of range)."""


class DataError(JepaLitError, ValueError):
    """A dataset file or folder that cannot be used (layout, annotation lists, annotation JSON)."""


class CheckpointError(JepaLitError, ValueError):
    """A file given as a checkpoint that is not one, or not this kind of run's."""


class RegistryError(JepaLitError, ValueError):
    """A sweep's run.json, sweep.json or probe results JSON that cannot be read."""


def wants_traceback(argv: list[str]) -> bool:
    """Whether ``--traceback`` is on the command line or JEPA_LIT_TRACEBACK is set (not 0 / empty)."""
    return TRACEBACK_FLAG in argv or os.environ.get(TRACEBACK_VARIABLE, "") not in ("", "0")


def without_traceback_flag(argv: list[str]) -> list[str]:
    return [a for a in argv if a != TRACEBACK_FLAG]


def short_message(error: BaseException) -> str:
    """The error's message; one raised in a DataLoader worker comes back as "Caught X in DataLoader worker
    process N. Original Traceback ...: X: message": its last line's message, without the worker's stack."""
    text = str(error)
    if "Original Traceback" not in text:
        return text
    last = [line for line in text.splitlines() if line.strip()][-1]
    head, colon, message = last.partition(": ")  # "jepa_lit.data.decode.BadInputError: a.mp4: zero-byte file"
    return message if colon and head.rsplit(".", 1)[-1] == type(error).__name__ else last


def run_command(prog: str, command: Callable[[list[str]], int], argv: list[str]) -> int:
    """``command(argv)`` with ``--traceback`` taken off; a JepaLitError becomes ``prog: error: message`` on
    stderr and exit status 2, with the stack only when asked for."""
    show = wants_traceback(argv)
    if show:
        os.environ[TRACEBACK_VARIABLE] = "1"  # subprocesses (DDP ranks, the sweep's fits) show it too
    try:
        return command(without_traceback_flag(argv))
    except JepaLitError as error:
        if show:
            traceback.print_exc()
        print(f"{prog}: error: {short_message(error)}", file=sys.stderr)
        if not show:
            print(f"({TRACEBACK_FLAG} or {TRACEBACK_VARIABLE}=1 shows where it was raised)", file=sys.stderr)
        return error.exit_code
