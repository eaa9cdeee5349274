"""A run folder (``save_dir/name/version``) has one writer at a time, and a new run never writes into an
existing run's folder.

Layer 1 (imports jepa_lit.errors and jepa_lit.atomic). ``prepare_run_folder`` is called by ``jepa-lit fit`` before anything
is built, with the parsed config: the folders it writes must be writable (``check_fit_outputs_writable``;
a read-only checkpoints folder would otherwise lose the run's work at the first save), and
``claim_run_folder``:

- a new run (no ``--ckpt_path``) gets a folder of its own: with ``version`` unset, the next free
  ``version_N``, created at once (``mkdir`` fails for a folder another fit took a moment before); with a
  numbered ``version`` (``1``, ``version_1``: a run's saved config.yaml run again) whose folder already
  holds a run, the next free ``version_N`` instead, with a note; a named one (``seed_0``) that holds a run
  is refused, naming it;
- any fit then holds an ``flock`` on ``RUN/.lock`` (the sweep's lock file, study/lock.py) for as long as
  the process lives: a second fit of the same folder (two ``--ckpt_path last`` resumes) is refused,
  naming the holder. The kernel drops the lock when the process ends, so no stale lock is left.

A fit started by the sweep inherits the sweep's lock on its run (``JEPA_LIT_RUN_LOCK_FD``) and writes into
the run's fixed folder, which the sweep manages; it is left alone here. Under DDP, rank 0 decides and the
other ranks (started by Lightning with rank 0's environment) take its version from ``JEPA_LIT_RUN_VERSION``.
"""

from __future__ import annotations

import datetime
import fcntl
import json
import os
import re
import socket
from pathlib import Path
from typing import Any, Optional

from jepa_lit.atomic import check_writable
from jepa_lit.errors import ConfigError, JepaLitError

LOCK_FILE = ".lock"
SWEEP_LOCK_VARIABLE = "JEPA_LIT_RUN_LOCK_FD"  # set by the sweep (study/lock.py) for the commands it starts
VERSION_VARIABLE = "JEPA_LIT_RUN_VERSION"  # rank 0's folder, for the ranks Lightning starts after it
_held: dict[str, int] = {}  # folder -> the locked file descriptor, kept open while the process lives


class RunFolderBusy(JepaLitError):
    """Another process writes into the run folder; the message names it."""


def holds_a_run(folder: Path) -> bool:
    """Whether a fit already wrote into ``folder`` (its config.yaml, a checkpoint, or TensorBoard events)."""
    if not folder.is_dir():
        return False
    checkpoints = folder / "checkpoints"
    return ((folder / "config.yaml").is_file() or any(folder.glob("events.out.tfevents*"))
            or (checkpoints.is_dir() and any(p.suffix == ".ckpt" for p in checkpoints.iterdir())))


def version_folder(version: Any) -> str:
    """The folder name TensorBoardLogger / CSVLogger give a version: ``version_N`` for a number, else as is."""
    return f"version_{version}" if isinstance(version, int) else str(version)


def version_number(version: Any) -> Optional[int]:
    """N for a numbered version (``3``, ``"3"``, ``"version_3"``); None for a named one."""
    if isinstance(version, int) and not isinstance(version, bool):
        return version
    found = re.fullmatch(r"(?:version_)?(\d+)", str(version))
    return int(found.group(1)) if found else None


def take_fresh_version(runs: Path) -> int:
    """The next free version_N under ``runs``, created now, so a fit starting at the same moment takes another."""
    runs.mkdir(parents=True, exist_ok=True)
    taken = [version_number(p.name) for p in runs.iterdir() if p.name.startswith("version_")]
    number = max([n for n in taken if n is not None], default=-1) + 1
    while True:
        try:
            (runs / f"version_{number}").mkdir()
            return number
        except FileExistsError:
            number += 1


def lock_run_folder(folder: Path) -> None:
    """Hold an flock on ``folder/.lock`` until the process ends; RunFolderBusy naming the holder if another
    process has it."""
    folder.mkdir(parents=True, exist_ok=True)
    key = str(folder.resolve())
    if key in _held:
        return
    path = folder / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        try:
            holder = json.loads(path.read_text() or "{}")
        except (OSError, ValueError):
            holder = {}
        raise RunFolderBusy(
            f"{folder} is in use: another jepa-lit process writes into it ({holder.get('host', '?')} pid "
            f"{holder.get('pid', '?')}, since {holder.get('since', '?')}); a run folder has one writer at a time. "
            "Wait for it to end (or stop it), then resume with --ckpt_path last") from None
    os.ftruncate(fd, 0)
    since = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    os.pwrite(fd, json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "since": since}).encode(), 0)
    _held[key] = fd


def claim_run_folder(config: Any, rank_zero: bool = True, announce=print, resume: Optional[bool] = None) -> Optional[Path]:
    """For ``jepa-lit fit``: give a new run a folder of its own and lock the run's folder (see the module's
    docstring). ``config`` is the parsed fit config (``trainer.logger.init_args`` with ``save_dir``, ``name``,
    ``version``; ``ckpt_path``). ``resume``: whether the command continues the run in its folder (default:
    a ``ckpt_path`` is given; validate / test / predict pass False: they never write into a run's folder).
    Returns the folder, or None when there is no logger folder to claim."""
    if os.environ.get(SWEEP_LOCK_VARIABLE):
        return None  # the sweep holds its run's lock and manages its fixed folder
    logger = config.trainer.get("logger") if hasattr(config.trainer, "get") else None
    init = logger.get("init_args") if hasattr(logger, "get") else None
    if init is None or init.get("save_dir") in (None, ""):
        return None
    runs = Path(init.save_dir) / (init.get("name") or "lightning_logs")
    if not rank_zero:
        if os.environ.get(VERSION_VARIABLE):
            init.version = os.environ[VERSION_VARIABLE]
        return None
    version = init.get("version")
    resuming = config.get("ckpt_path") not in (None, "") if resume is None else resume
    if version in (None, ""):
        if resuming:  # Lightning resumes into a new version folder of its own choosing: nothing to protect
            return None
        init.version = take_fresh_version(runs)
    elif not resuming and holds_a_run(runs / version_folder(version)):
        taken = runs / version_folder(version)
        if version_number(version) is None:
            raise ConfigError(f"trainer.logger.init_args.version={version!r}: {taken} already holds a run "
                              "(config.yaml, checkpoints or events); a new run never writes into it. Resume it "
                              "with --ckpt_path last, or set another version (null: the next free version_N)")
        init.version = take_fresh_version(runs)
        announce(f"{taken} already holds a run: this new run writes to {runs / version_folder(init.version)} "
                 "(resume the old one with --ckpt_path last)")
    folder = runs / version_folder(init.version)
    lock_run_folder(folder)
    os.environ[VERSION_VARIABLE] = version_folder(init.version)
    return folder


def check_fit_outputs_writable(config: Any) -> None:
    """The runs folder, ``trainer.default_root_dir`` and any checkpoint callback's ``dirpath`` must be writable
    (NotWritable naming the path, exit 2)."""
    logger = config.trainer.get("logger") if hasattr(config.trainer, "get") else None
    init = logger.get("init_args") if hasattr(logger, "get") else None
    if init is not None and init.get("save_dir"):
        check_writable(Path(init.save_dir) / (init.get("name") or "lightning_logs"), "runs folder")
    if config.trainer.get("default_root_dir"):
        check_writable(Path(config.trainer.default_root_dir), "trainer.default_root_dir")
    for callback in config.trainer.get("callbacks") or []:
        dirpath = (callback.get("init_args") or {}).get("dirpath") if hasattr(callback, "get") else None
        if dirpath:
            check_writable(Path(dirpath) / "last.ckpt", "checkpoints folder")


def prepare_run_folder(config: Any, rank_zero: bool = True, fit: bool = True) -> Optional[Path]:
    """The commands' one call (``fit``; ``validate`` / ``test`` / ``predict`` with ``fit=False``, which write
    logs and a config.yaml into a folder of their own, never into a run's): outputs writable, the folder
    claimed and locked, and its checkpoints folder writable (a resumed run's may have been made read-only).
    Returns the folder."""
    check_fit_outputs_writable(config)
    folder = claim_run_folder(config, rank_zero=rank_zero, resume=None if fit else False)
    if folder is not None:
        check_writable(folder / "checkpoints" / "last.ckpt", "checkpoints folder")
    return folder
