"""The places where jepa-lit reaches into a library's private attributes, because no public API does the job.

Each access is one function here, and tests/test_library_seams.py asserts, on the installed versions, that
the attribute is still there with the expected type: an upgrade that moves it fails that test by name
instead of silently turning a feature off. Each function also raises (naming the library and its version)
when the attribute is gone, rather than doing nothing.

- argparse / jsonargparse: a parser's actions (``_actions``), a subcommand action's parsers
  (``_name_parser_map``) and a typed argument's type (jsonargparse's ``ActionTypeHint._typehint``): argparse
  has no public way to list or retype arguments once added.
- torch: ``torch._functorch.config.donated_buffer``, which compiled backwards use to free saved buffers early;
  torch offers no public switch.
"""

from __future__ import annotations

from typing import Any, Iterator


class LibraryChanged(RuntimeError):
    """A private attribute jepa-lit relies on is not where this code expects it (a library upgrade)."""


def _version(module_name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(module_name)
    except PackageNotFoundError:
        return "unknown"


def parser_actions(parser) -> list:
    """An argparse (jsonargparse) parser's actions, in the order they were added."""
    actions = getattr(parser, "_actions", None)
    if not isinstance(actions, list):
        raise LibraryChanged(f"argparse parsers have no _actions list (jsonargparse {_version('jsonargparse')}): "
                             "update jepa_lit/library_seams.py")
    return actions


def subcommand_parsers(action) -> Iterator[Any]:
    """The parsers of a subcommands action (``fit``, ``validate``, ...); none for any other action."""
    import argparse

    if not isinstance(action, argparse._SubParsersAction):
        return iter(())
    parsers = getattr(action, "_name_parser_map", None)
    if not isinstance(parsers, dict):
        raise LibraryChanged("argparse subcommand actions have no _name_parser_map: update jepa_lit/library_seams.py")
    return iter(parsers.values())


def widen_argument_type(parser, dest: str, widen) -> None:
    """Replace the type of the typed argument ``dest`` by ``widen(old_type)`` (jsonargparse's
    ActionTypeHint keeps it in ``_typehint`` and reads it at every parse)."""
    found = [a for a in parser_actions(parser) if getattr(a, "dest", None) == dest]
    if not found:
        raise ValueError(f"the parser has no argument {dest!r}")
    action = found[0]
    if not hasattr(action, "_typehint"):
        raise LibraryChanged(f"{dest}: a {type(action).__name__} without _typehint (jsonargparse "
                             f"{_version('jsonargparse')}); update jepa_lit/library_seams.py")
    action._typehint = widen(action._typehint)


def keep_compiled_backward_buffers() -> None:
    """Compiled backwards free (donate) their saved buffers, which refuses a second backward through the
    graph (retain_graph=True); this turns that off for the process."""
    import torch

    config = getattr(getattr(torch, "_functorch", None), "config", None)
    if not isinstance(getattr(config, "donated_buffer", None), bool):
        raise LibraryChanged(f"torch {torch.__version__} has no bool torch._functorch.config.donated_buffer; "
                             "update jepa_lit/library_seams.py")
    config.donated_buffer = False
