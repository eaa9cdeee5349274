"""What a sample is on disk and how annotation files name them: sample records, the `path label`
list-file reader, annotation JSON, and the layout errors a dataset root gets.

A dataset module (ucf101.py, ssv2.py, ...) reads its official annotation files into a list of
Records with these helpers; clip_dataset.py loads the records, datamodule.py builds the loaders.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Union

from jepa_lit.errors import DataError
from jepa_lit.hints import path_hint

VIDEO, IMAGE = 0, 1  # the "modality" flag of a sample
IMAGE_EXTENSIONS = (".jpeg", ".jpg", ".png", ".bmp", ".webp")


@dataclass(frozen=True, slots=True)
class Record:
    """One sample on disk: a video (optionally a frame range [start_frame, end_frame)) or an image."""

    path: str
    label: int = -1
    start_frame: Optional[int] = None
    end_frame: Optional[int] = None
    modality: int = VIDEO


@dataclass(frozen=True, slots=True)
class IndexProblem:
    """An annotation entry that could not be turned into a Record (e.g. an unknown label)."""

    where: str  # annotation file and line / item
    reason: str


class LayoutError(DataError, FileNotFoundError):
    """A dataset root that is missing or not laid out as expected; the message shows the expected tree."""


def layout_error(dataset: str, root: Union[str, os.PathLike], problem: str, expected_tree: str,
                 hint: str = "") -> LayoutError:
    return LayoutError(
        f"{dataset}: {problem}\n"
        f"  root: {root}\n"
        + "".join(f"  {line}\n" for line in hint.splitlines()) +
        f"Expected layout (the official download, unpacked under the root):\n{expected_tree.rstrip()}"
    )


def require(
    dataset: str, root: Union[str, os.PathLike], paths: Sequence[Union[str, os.PathLike]], expected_tree: str
) -> None:
    """Raise a LayoutError naming the first of `paths` that does not exist (the root itself first)."""
    if not Path(root).is_dir():
        raise layout_error(dataset, root, "root folder not found", expected_tree, path_hint(str(root)))
    for p in paths:
        if not Path(p).exists():
            raise layout_error(dataset, root, f"missing {p}", expected_tree, path_hint(str(p)))


def resolve_dataset_root(root: str, name: str, markers: Sequence[str]) -> str:
    """`root` itself, or root/<name> when root is the folder holding all datasets.

    So `--data.root DIR` works both with DIR = /datasets/ucf101 and DIR = /datasets (which holds
    ucf101/, ssv2/, ...: the layout the mixed regime reads). `markers` are entries found directly in
    the dataset's own folder; when one is in `root`, `root` is the dataset's folder.
    """
    base = Path(root)
    if (base / name).is_dir() and not any((base / m).exists() for m in markers):
        return str(base / name)
    return root


def read_list_file(list_file: Union[str, os.PathLike], root: Optional[Union[str, os.PathLike]] = None,
                   num_classes: Optional[int] = None) -> list[Record]:
    """Read a V-JEPA style list file: one `path label` per line, space delimited, no header.

    The label is the last field (so a path may contain spaces). Relative paths are taken relative to
    `root`, or to the list file's folder when `root` is None. Files ending in an image extension
    become image records (modality 1). With ``num_classes``, each label must be one of them (check_label).
    """
    list_file = Path(list_file)
    if not list_file.is_file():
        raise FileNotFoundError(f"list file not found: {list_file} (expected lines '<path> <label>')")
    base = Path(root) if root is not None else list_file.parent
    records = []
    for n, line in enumerate(list_file.read_text().splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        parts = line.rsplit(" ", 1)
        if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
            raise ValueError(f"{list_file}:{n}: expected '<path> <integer label>', got {line!r}")
        check_label(int(parts[1]), num_classes, f"{list_file}:{n}")
        path = Path(parts[0].strip())
        path = path if path.is_absolute() else base / path
        modality = IMAGE if path.suffix.lower() in IMAGE_EXTENSIONS else VIDEO
        records.append(Record(str(path), int(parts[1]), modality=modality))
    if not records:
        raise ValueError(f"{list_file}: no entries (expected lines '<path> <label>')")
    return records


def load_json(path: Path, expected: Optional[type] = None, shape: str = ""):
    """An annotation file's JSON; a clear error naming the file when it is not valid JSON, or (``expected``:
    dict or list) not the JSON type the dataset's file holds (``shape`` shows what it should look like)."""
    try:
        data = json.loads(Path(path).read_text())
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: not valid JSON ({e}); expected the dataset's annotation file as "
                        "downloaded (see docs/datasets.md)") from e
    if expected is not None and not isinstance(data, expected):
        kinds = {dict: "a JSON object", list: "a JSON list"}
        found = kinds.get(type(data), f"a JSON {type(data).__name__}")
        raise DataError(f"{path}: expected {kinds.get(expected, expected.__name__)}{f' ({shape})' if shape else ''}, "
                        f"got {found}; is it the dataset's annotation file as downloaded (see docs/datasets.md)?")
    return data


def check_label(label: int, num_classes: Optional[int], where: str) -> None:
    """A label must name one of the dataset's classes (0 to num_classes - 1): checked when the index is
    built, not after the features are extracted (an IndexError then, or a probe with the wrong width)."""
    if num_classes and not 0 <= label < num_classes:
        raise DataError(f"{where}: label {label} is outside the dataset's {num_classes} classes; expected 0 to "
                        f"{num_classes - 1} (0-based)")

