"""``did you mean`` hints for the mistakes jsonargparse reports without a suggestion, and the parser that
appends them to its errors (used by the fit and probe CLIs)."""

from __future__ import annotations

from typing import Optional

from lightning.pytorch.cli import LightningArgumentParser

from jepa_lit.library_seams import parser_actions, subcommand_parsers


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
    for action in parser_actions(parser):
        if getattr(action, "dest", None) not in (None, "help", "==SUPPRESS=="):
            keys.add(action.dest)
        for sub in subcommand_parsers(action):
            keys |= parser_keys(sub)
    return keys


class JepaArgumentParser(LightningArgumentParser):
    """LightningCLI's parser; its errors end with the nearest valid name of a mistyped key or class."""

    def error(self, message: str, ex: Optional[Exception] = None):
        # Nested parsers raise instead of exiting and their message ends up inside the outer one: hint once.
        hints = typo_hints(message, self) if self.exit_on_error else []
        return super().error(message + "".join(f"\nhint: {h}" for h in hints), ex)

