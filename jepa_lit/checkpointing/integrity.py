"""Checkpoints checked before they are loaded: against their integrity record (``<file>.sha256.json``,
written by AtomicCheckpointIO), and for what torch.save writes. A damaged one raises CorruptCheckpointError
naming the file, what is wrong, and the newest intact checkpoint in the same folder (docs/checkpoints.md).

Each file is hashed once: a resume checks it where ``--ckpt_path`` is resolved, then again in the loader,
and every DDP rank Lightning starts runs the same command line. A file that matched its record is
remembered by its identity (path, device, inode, size, modification and change times, the record's hash)
in this process and in ``JEPA_LIT_VERIFIED_CHECKPOINTS``, which the ranks Lightning starts (and the fits a
sweep starts) inherit; a file changed since (rewritten, replaced, touched) has another identity and is
hashed again.
"""

from __future__ import annotations

import json
import os
import pickle
import zipfile
from pathlib import Path
from typing import Any, Optional, Union

import torch

from jepa_lit.atomic import SIDECAR_SUFFIX, integrity_problem, read_integrity
from jepa_lit.errors import CheckpointError

CHECKPOINT_SUFFIXES = (".ckpt", ".pt", ".pth", ".tar")
VERIFIED_ENV = "JEPA_LIT_VERIFIED_CHECKPOINTS"
_REMEMBERED = 32  # identities kept in the environment variable (a run checks a handful of files)


class CorruptCheckpointError(CheckpointError):
    """A checkpoint file that is truncated, corrupted, or not a checkpoint."""


def file_identity(path: Union[str, Path], record: dict[str, Any]) -> str:
    """What must stay the same for an earlier check of ``path`` against ``record`` to still hold."""
    st = os.stat(path)
    return (f"{os.path.realpath(path)}:{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}:"
            f"{record.get('sha256')}")


def verified_identities() -> list[str]:
    try:
        found = json.loads(os.environ.get(VERIFIED_ENV, "[]"))
    except ValueError:
        return []
    return [str(x) for x in found] if isinstance(found, list) else []


def remember_verified(identity: str) -> None:
    known = [x for x in verified_identities() if x != identity] + [identity]
    os.environ[VERIFIED_ENV] = json.dumps(known[-_REMEMBERED:])


def checkpoint_problem(path: Union[str, Path]) -> Optional[str]:
    """What is wrong with the checkpoint file ``path``; None when it looks intact. A file with an integrity
    record is checked against it (size and SHA-256; the hash once per file, see above); any file must be
    what torch.save writes."""
    path = Path(path)
    record = read_integrity(path)
    identity = file_identity(path, record) if record is not None and path.is_file() else None
    if identity is None or identity not in verified_identities():
        problem = integrity_problem(path)
        if problem is not None:
            return problem
        if identity is not None:
            remember_verified(identity)
    with open(path, "rb") as handle:
        head = handle.read(2)
    if not zipfile.is_zipfile(path) and head[:1] != b"\x80":  # \x80: a pickle's protocol marker (old files)
        if head[:2] == b"PK":
            return "it is a zip archive without its end (truncated)"
        return "it is not a checkpoint (neither the zip archive torch.save writes nor a pickle)"
    return None


def checkpoints_beside(path: Union[str, Path]) -> list[Path]:
    """The checkpoint files in ``path``'s folder, newest first (by modification time)."""
    folder = Path(path).parent
    found = [p for p in folder.iterdir() if p.is_file() and p.suffix in CHECKPOINT_SUFFIXES
             and not p.name.startswith(".") and not p.name.endswith(SIDECAR_SUFFIX)] if folder.is_dir() else []
    return sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)


def newest_intact(path: Union[str, Path]) -> Optional[Path]:
    """The newest training checkpoint beside ``path`` (not ``path`` itself) that passes ``checkpoint_problem``
    (an export or any other torch file saved in the folder does not qualify: a resume could not use it)."""
    for other in checkpoints_beside(path):
        if (other.resolve() != Path(path).resolve() and checkpoint_problem(other) is None
                and is_training_checkpoint(other)):
            return other
    return None


def is_training_checkpoint(path: Union[str, Path]) -> bool:
    """Whether ``path`` holds what a fit saves (Lightning's ``state_dict`` and ``global_step`` entries), not an
    export (``encoder``, ``target_encoder``, ``predictor`` at the top) or another torch file; read
    memory-mapped, so a large file costs little. Files torch cannot read do not qualify."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=False, mmap=True)
    except Exception:  # noqa: BLE001 - a file torch cannot read is no training checkpoint
        return False
    if not isinstance(checkpoint, dict) or "target_encoder" in checkpoint:  # an export's layout
        return False
    return "state_dict" in checkpoint or "global_step" in checkpoint


def damaged_message(path: Union[str, Path], problem: str) -> str:
    intact = newest_intact(path)
    advice = (f"the newest intact checkpoint in the same folder is {intact}: pass it as --ckpt_path "
              "(`--ckpt_path last` falls back to it by itself)" if intact is not None
              else f"no intact checkpoint is left in {Path(path).parent}; start the run again")
    return f"{path}: cannot be used as a checkpoint: {problem}; {advice}"


def check_checkpoint(path: Union[str, Path]) -> None:
    """Raise CorruptCheckpointError (file, problem, the intact alternative) unless ``path`` looks intact."""
    problem = checkpoint_problem(path)
    if problem is not None:
        raise CorruptCheckpointError(damaged_message(path, problem))


def load_checkpoint_file(path: Union[str, Path], **load_kwargs: Any) -> Any:
    """``torch.load(path, **load_kwargs)`` after ``check_checkpoint``; a file torch cannot read (a damaged
    file without an integrity record) raises CorruptCheckpointError naming it, not torch's traceback."""
    check_checkpoint(path)
    try:
        return torch.load(path, **load_kwargs)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError) as error:
        if read_integrity(path) is not None:  # intact bytes that torch cannot read: not a damage problem
            raise
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CorruptCheckpointError(damaged_message(path, f"torch.load could not read it ({first})")) from error
