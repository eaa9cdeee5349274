"""Config files as jepa-lit reads them: ``config:`` stacks, merging, class paths.

Used by the CLI, the study tooling and the tests, so that all three see a config the same way. Layer 1:
imports nothing from jepa_lit but the hint helpers, and neither torch nor Lightning.
"""

from __future__ import annotations

import copy
import difflib
import importlib
import os
from pathlib import Path
from typing import Any, Iterator

import yaml

from jepa_lit.errors import ConfigError


def load_yaml(path: str | os.PathLike) -> Any:
    """A YAML file's content; a syntax error names the file and the line (a ConfigError)."""
    try:
        return yaml.safe_load(Path(path).read_text())
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ConfigError(f"{path}{where}: not valid YAML ({problem})") from None


def expand_config_stack(args: list[str]) -> list[str]:
    """Put the files a YAML names under ``config:`` (paths relative to it, recursively) before it as
    ``--config`` flags, so they are read first and the file's own keys override them (jsonargparse
    itself ignores a ``config:`` list inside a config file)."""

    def parents(path: str, chain: tuple[str, ...] = ()) -> list[str]:
        here = os.path.realpath(path)
        if here in chain:  # a stack that includes itself would recurse until Python gives up
            loop = [*chain[chain.index(here):], here]
            raise ConfigError(f"{path}: config: stack includes itself: " + " -> ".join(loop)
                              + "; expected each file to name only its parents")
        content = load_yaml(path) or {}
        if not isinstance(content, dict):
            raise ConfigError(f"{path}: expected a mapping of config keys, got {type(content).__name__}")
        names = content.get("config") or []
        names = [names] if isinstance(names, str) else names
        base = os.path.dirname(path)
        for name in names:  # a parent that is not there: name the file that lists it
            if not os.path.isfile(os.path.join(base, str(name))):
                from jepa_lit.hints import path_hint

                hint = path_hint(os.path.join(base, str(name)), suffixes=(".yaml", ".yml"))
                raise ConfigError(f"{path}: config: names {name!r}, but {os.path.join(base, str(name))} is not "
                                  "a file (parents are read relative to the file that names them)"
                                  + (f"\n{hint}" if hint else ""))
        return [f for name in names
                for f in [*parents(os.path.join(base, name), (*chain, here)), os.path.join(base, name)]]

    expanded, i = [], 0
    while i < len(args):
        flag, path = args[i], None
        if flag in ("--config", "-c") and i + 1 < len(args):
            path, i = args[i + 1], i + 1
        elif flag.startswith("--config="):
            path = flag.split("=", 1)[1]
        if path is not None and os.path.isfile(path):
            expanded += [x for parent in parents(path) for x in ("--config", parent)]
        expanded += [flag] if path is None else ["--config", path]
        i += 1
    return expanded


def config_files(args: list[str]) -> list[str]:
    """The files given with ``--config FILE``, ``-c FILE`` or ``--config=FILE``, in order."""
    files = [args[i + 1] for i, a in enumerate(args[:-1]) if a in ("--config", "-c")]
    return files + [a.split("=", 1)[1] for a in args if a.startswith("--config=")]


def stack_of(path: str | os.PathLike) -> list[str]:
    """The files a config is read from, parents first, the file itself last."""
    return config_files(expand_config_stack(["--config", str(path)]))


def deep_merge(base: Any, over: Any) -> Any:
    """``over`` merged into a copy of ``base`` as LightningCLI stacks configs: dicts recursively, anything
    else replaced (lists too), and a ``class_path`` naming another class replaces the whole entry."""
    if isinstance(base, dict) and isinstance(over, dict):
        if "class_path" in base and "class_path" in over and base["class_path"] != over["class_path"]:
            return copy.deepcopy(over)
        merged = copy.deepcopy(base)
        for key, value in over.items():
            merged[key] = deep_merge(merged[key], value) if key in merged else copy.deepcopy(value)
        return merged
    return copy.deepcopy(over)


def merge_stack(contents: list[Any]) -> dict[str, Any]:
    """Config contents merged in order, their ``config:`` lists left out (already expanded)."""
    merged: dict[str, Any] = {}
    for data in contents:
        merged = deep_merge(merged, {k: v for k, v in (data or {}).items() if k != "config"})
    return merged


# The clip size is one fact, the data's: the encoder's num_frames / img_size (the clip its sin-cos table is
# built for, recorded in checkpoints) follow data.init_args.num_frames / crop_size and are not set apart.
# The CLI links these keys (LightningCLI's link_arguments); link_clip_size does the same on merged YAML.
CLIP_SIZE_LINKS = (("data.init_args.num_frames", "model.init_args.encoder.init_args.num_frames"),
                   ("data.init_args.crop_size", "model.init_args.encoder.init_args.img_size"))


def link_clip_size(merged: dict[str, Any]) -> dict[str, Any]:
    """A merged config with the encoder's clip keys set from the data's, as the CLI links them (each data key
    the config sets; the encoder's own default otherwise)."""
    for source, target in CLIP_SIZE_LINKS:
        node: Any = merged
        for key in source.split("."):
            node = node.get(key) if isinstance(node, dict) else None
        encoder = ((merged.get("model") or {}).get("init_args") or {}).get("encoder")
        if node is None or not isinstance(encoder, dict):
            continue
        encoder.setdefault("init_args", {})[target.rpartition(".")[2]] = node
    return merged


def encoder_clip_size_given(args: list[str]) -> list[tuple[str, str, Any]]:
    """(where, target key, value) for each encoder clip key (a CLIP_SIZE_LINKS target) that a ``--config`` file
    or a ``--key value`` flag of ``args`` sets itself: the link overrides it, so a value that disagrees with
    the data's would otherwise be dropped without a word (check_encoder_clip_size)."""
    given = []
    for i, arg in enumerate(args):
        key, _, value = arg.partition("=")
        if not value and i + 1 < len(args):
            value = args[i + 1]
        if key == "--config" and value and os.path.isfile(value):
            content = load_yaml(value)
            for _, target in CLIP_SIZE_LINKS:
                node: Any = content
                for part in target.split("."):
                    node = node.get(part) if isinstance(node, dict) else None
                if node is not None:
                    given.append((value, target, node))
        for _, target in CLIP_SIZE_LINKS:
            name = target.rpartition(".")[2]
            if key.startswith("--model.") and key.endswith((f"encoder.init_args.{name}", f"encoder.{name}")):
                given.append((key, target, yaml.safe_load(value) if value else value))
    return given


def check_encoder_clip_size(given: list[tuple[str, str, Any]], data: Any) -> None:
    """A ConfigError for an encoder clip key set apart from the data's value it is linked to (``data``: the
    parsed data section, with ``init_args``); the same value (a run's config saved before 0.4) is accepted."""
    sources = {target: source for source, target in CLIP_SIZE_LINKS}
    init_args = data.get("init_args") if data is not None else None
    for where, target, value in given:
        source = sources[target]
        linked = init_args.get(source.rpartition(".")[2]) if init_args is not None else None
        if linked is not None and value != linked:
            raise ConfigError(f"{where}: {target}={value!r}, but the encoder's clip size is the data's: {source} is "
                              f"{linked!r}. Set {source} instead (the encoder follows it).")


def import_class(class_path: str) -> Any:
    """The object a dotted ``module.Name`` path names."""
    module, _, name = class_path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def class_paths(node: Any) -> Iterator[str]:
    """Every ``class_path`` value in a config's content, depth first."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "class_path" and isinstance(value, str):
                yield value
            else:
                yield from class_paths(value)
    elif isinstance(node, list):
        for value in node:
            yield from class_paths(value)


def unknown_class_path(class_path: str) -> str | None:
    """None when a jepa_lit class path exists; otherwise what is wrong and the nearest valid one."""
    module_name, _, name = class_path.rpartition(".")
    try:
        if hasattr(importlib.import_module(module_name), name):
            return None
        choices = [f"{module_name}.{n}" for n in getattr(importlib.import_module(module_name), "__all__", [])]
    except ImportError:
        choices = []
    nearest = difflib.get_close_matches(class_path, choices, n=1)
    hint = f"; did you mean {nearest[0]}?" if nearest else ""
    listing = f" Valid: {', '.join(sorted(choices))}." if choices else ""
    return f"names {class_path}, which jepa-lit does not have{hint}{listing}"


def check_class_paths(args: list[str]) -> None:
    """Fail early and clearly on a jepa_lit class path that does not exist in a config file, listing
    the valid ones of its kind and the nearest match (jsonargparse's own message is long and vague)."""
    for path in config_files(args):
        if not os.path.isfile(path):
            continue
        for class_path in class_paths(load_yaml(path) or {}):
            if class_path.startswith("jepa_lit."):
                problem = unknown_class_path(class_path)
                if problem is not None:
                    raise ConfigError(f"{path} {problem}")


# ----- values that parse but cannot work ---------------------------------------------------------------------
# Checked on the parsed config (every command, every key at any depth), before anything is built: a learning
# rate of 0 divides by zero in the schedule, a negative one or a NaN weight fails at the first step.
POSITIVE_KEYS = ("lr",)  # > 0
NON_NEGATIVE_KEYS = ("start_lr", "final_lr", "weight", "weight_decay", "final_weight_decay", "warmup_steps",
                     "context_loss_weight")  # >= 0
POSITIVE_LIST_KEYS = ("lrs",)  # every item > 0
NON_NEGATIVE_LIST_KEYS = ("weight_decays",)


def value_problems(node: Any, key: str = "") -> Iterator[str]:
    """``key=value; expected ...`` for each value that cannot work, depth first (keys dotted, list items
    ``[i]``)."""
    import math

    name = key.rsplit(".", 1)[-1]
    if isinstance(node, dict):
        for k, v in node.items():
            yield from value_problems(v, f"{key}.{k}" if key else str(k))
        return
    if isinstance(node, list):
        if name == "objectives":
            yield from duplicate_objectives(node, key)
        for i, v in enumerate(node):
            if name in POSITIVE_LIST_KEYS + NON_NEGATIVE_LIST_KEYS and _is_number(v):
                if math.isfinite(v) and (v > 0 or (name in NON_NEGATIVE_LIST_KEYS and v == 0)):
                    continue
                wanted = "positive" if name in POSITIVE_LIST_KEYS else "0 or more"
                yield f"{key}[{i}]={v!r}; expected a finite number, {wanted}"
            else:
                yield from value_problems(v, f"{key}[{i}]")
        return
    if not _is_number(node):
        return
    if not math.isfinite(node):
        yield f"{key}={node!r}; expected a finite number"
    elif name in POSITIVE_KEYS and node <= 0:
        yield f"{key}={node!r}; expected a positive number (a learning rate of 0 or less cannot train)"
    elif name in NON_NEGATIVE_KEYS and node < 0:
        yield f"{key}={node!r}; expected 0 or more"


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def duplicate_objectives(items: list, key: str) -> Iterator[str]:
    """The same objective class listed twice: its terms would share one name (and the module refuses it)."""
    seen: dict[str, int] = {}
    for i, item in enumerate(items):
        class_path = item.get("class_path") if isinstance(item, dict) else None
        if class_path in seen:
            yield (f"{key}[{i}] is {class_path} again (also {key}[{seen[class_path]}]); expected each objective "
                   "once (set its weight instead)")
        elif class_path:
            seen[class_path] = i


def check_config_values(config: Any, where: str = "") -> None:
    """Raise one ConfigError listing every value of a parsed config that cannot work (exit status 2)."""
    problems = list(dict.fromkeys(value_problems(config)))
    if problems:
        raise ConfigError((f"{where}: " if where else "") + "; ".join(problems))
