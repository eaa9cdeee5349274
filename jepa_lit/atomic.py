"""Files written whole or not at all, with an integrity record checked on read.

Layer 1 (imports only jepa_lit.errors). Every file jepa-lit writes goes through ``atomic_write``: the bytes
go to a temporary file beside the target, are fsync'ed, and ``os.replace`` puts them in place, so a reader
(or a crash) sees the previous complete file or the new complete one. With ``integrity=True`` the size and
SHA-256 of what was written go to a sidecar ``<file>.sha256.json``; ``integrity_problem`` compares a file
with it, which catches truncation, bytes zeroed or corrupted mid-file, and a file replaced by another.
The sidecar is written right after the file: a crash between the two leaves a mismatch, so the file is
reported damaged (never trusted when it might not be). docs/checkpoints.md describes what the user sees.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterator, Optional, Union

from jepa_lit.errors import JepaLitError

SIDECAR_SUFFIX = ".sha256.json"
SIDECAR_FORMAT = "jepa_lit.integrity/1"
_CHUNK = 1 << 20


class WriteError(JepaLitError):
    """A file that could not be written (disk full, no permission); the previous file, if any, is intact."""

    exit_code = 1  # the run failed; its input was fine


class NotWritable(JepaLitError):
    """An output path that cannot be written, found before the work (exit status 2: choose another path)."""


class WriteRefused(JepaLitError):
    """A write that would replace a file of another kind (a checkpoint by a results JSON, ...): refused
    before anything is written (exit status 2, bad input: the path given)."""


# What a writer declares it writes, and what an existing file is (its integrity record's "kind", or its
# content). A file is replaced only by one of the same kind: `test --probe --output RUN/checkpoints/last.ckpt`
# must never turn a checkpoint into a results JSON.
KIND_NAMES = {"torch": "a checkpoint (a torch.save file)", "json": "a JSON file", "text": "a text file",
              "binary": "a binary file (neither text nor a checkpoint)"}
_SNIFF = 4096


def file_kind(path: Union[str, os.PathLike]) -> tuple[Optional[str], str]:
    """(kind, how it is known) of an existing file: its integrity record's "kind" when it has one, else from
    its first bytes; (None, ...) for an empty file (nothing to lose)."""
    record = read_integrity(path)
    if record is not None and record.get("kind") in KIND_NAMES:
        return record["kind"], f"its integrity record {sidecar_path(path).name} says so"
    with open(path, "rb") as handle:
        head = handle.read(_SNIFF)
    if not head:
        return None, "it is empty"
    if head[:2] == b"PK" or head[:1] == b"\x80":  # the zip archive torch.save writes, or an old pickle
        return "torch", "from its content"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as error:
        if error.start < len(head) - 4:  # not just a character cut at the end of the sniffed bytes
            return "binary", "from its content"
        text = head[:error.start].decode("utf-8")
    return ("json" if text.lstrip()[:1] in ("{", "[") else "text"), "from its content"


def check_replaceable(path: Union[str, os.PathLike], kind: Optional[str]) -> None:
    """Raise WriteRefused when ``path`` exists and is not of ``kind`` (None: no check); a folder at ``path`` too."""
    path = Path(path)
    if kind is None or not path.exists():
        return
    if path.is_dir():
        raise WriteRefused(f"{path} is a folder; this command writes {KIND_NAMES[kind]} there. Choose a file path.")
    existing, how = file_kind(path)
    if existing is not None and existing != kind:
        raise WriteRefused(f"{path} is {KIND_NAMES[existing]} ({how}); this command writes {KIND_NAMES[kind]} and "
                           "replaces a file only with one of the same kind. Choose another path (or move the file "
                           "away first).")


class HashingWriter:
    """A binary file wrapper that counts and hashes what passes through (so a large checkpoint is not read
    back to hash it)."""

    def __init__(self, handle: BinaryIO):
        self.handle, self.sha256, self.size = handle, hashlib.sha256(), 0

    def write(self, data) -> int:
        self.handle.write(data)  # a buffered file writes all of it (or raises)
        self.sha256.update(data)
        self.size += memoryview(data).nbytes
        return memoryview(data).nbytes

    def flush(self) -> None:
        self.handle.flush()


def current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def sidecar_path(path: Union[str, os.PathLike]) -> Path:
    path = Path(path)
    return path.with_name(path.name + SIDECAR_SUFFIX)


def is_disk_full(error: BaseException) -> bool:
    """ENOSPC / EDQUOT anywhere in the error's chain, or torch's text for it (torch.save wraps the OSError
    of the file it writes in a RuntimeError)."""
    seen = error
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if "No space left on device" in str(seen) or "Disk quota exceeded" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def atomic_write(path: Union[str, os.PathLike], write: Callable[[BinaryIO], Any], integrity: bool = False,
                 kind: Optional[str] = None, replace_other_kinds: bool = False) -> Path:
    """``write(f)`` into a temporary file beside ``path``, fsync, rename onto ``path``; the file's mode is a
    normal file's (0666 less the umask; mkstemp's 0600 would hide checkpoints from the group). With
    ``integrity``, the sidecar record follows (with ``kind``). ``kind`` (a KIND_NAMES key): what is written;
    an existing file of another kind is not replaced (WriteRefused) unless ``replace_other_kinds`` (the
    user's explicit consent, e.g. ``export --overwrite``). A full disk raises WriteError naming the
    path; a folder that cannot be written, WriteError naming it."""
    path = Path(path)
    check_replaceable(path, None if replace_other_kinds else kind)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except PermissionError as error:
        raise WriteError(not_writable_message(path, error)) from error
    except OSError as error:
        if is_disk_full(error):
            raise WriteError(f"{path}: no space left on device while writing it; the previous file (if any) "
                             "is unchanged. Free space (or point the run at another disk) and run again.") from error
        raise
    try:
        os.fchmod(handle, 0o666 & ~current_umask())
        with os.fdopen(handle, "wb") as f:
            hashing = HashingWriter(f)
            write(hashing)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except BaseException as error:
        Path(temporary).unlink(missing_ok=True)
        if isinstance(error, Exception) and is_disk_full(error):
            raise WriteError(f"{path}: no space left on device while writing it; the previous file (if any) "
                             "is unchanged. Free space (or point the run at another disk) and run again.") from error
        raise
    if integrity:
        record = {"format": SIDECAR_FORMAT, "file": path.name, "size": hashing.size,
                  "sha256": hashing.sha256.hexdigest(), **({"kind": kind} if kind else {})}
        write_text(sidecar_path(path), json.dumps(record, indent=1) + "\n", kind="json")
    fsync_directory(path.parent)
    return path


def link_with_record(source: Union[str, os.PathLike], path: Union[str, os.PathLike]) -> Path:
    """``path`` as a second name of the complete file ``source`` (a hard link, put in place by rename, so a
    reader sees the old ``path`` or the new one), with ``source``'s integrity record under its own name:
    no byte is written or hashed again. Where hard links are not supported (some network or FUSE file
    systems), a copy written by ``atomic_write`` instead."""
    source, path = Path(source), Path(path)
    record = read_integrity(source)
    kind = file_kind(source)[0]
    check_replaceable(path, kind)  # a second name never replaces a file of another kind either
    temporary = path.with_name(f".{path.name}.{os.getpid()}.link.tmp")
    try:
        temporary.unlink(missing_ok=True)
        os.link(source, temporary)
        os.replace(temporary, path)
    except OSError:
        temporary.unlink(missing_ok=True)
        with open(source, "rb") as handle:
            return atomic_write(path, lambda f: [f.write(c) for c in iter(lambda: handle.read(_CHUNK), b"")],
                                integrity=record is not None, kind=kind)
    if record is not None:
        write_text(sidecar_path(path), json.dumps({**record, "file": path.name}, indent=1) + "\n", kind="json")
    else:
        sidecar_path(path).unlink(missing_ok=True)
    fsync_directory(path.parent)
    return path


def fsync_directory(directory: Path) -> None:
    """Make the renames in ``directory`` durable (not supported everywhere; skipped where it is not)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_text(path: Union[str, os.PathLike], text: str, integrity: bool = False, kind: str = "text") -> Path:
    return atomic_write(path, lambda f: f.write(text.encode()), integrity=integrity, kind=kind)


def write_json(path: Union[str, os.PathLike], data: Any, integrity: bool = False) -> Path:
    """JSON (indent 2, anything else as str, a final newline), written atomically."""
    return write_text(path, json.dumps(data, indent=2, default=str) + "\n", integrity=integrity, kind="json")


def file_sha256(path: Union[str, os.PathLike]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def file_record(path: Union[str, os.PathLike]) -> dict[str, Any]:
    """{"size", "sha256"} of a file as it is now."""
    return {"size": os.path.getsize(path), "sha256": file_sha256(path)}


def record_problem(path: Union[str, os.PathLike], record: dict[str, Any], source: str) -> Optional[str]:
    """What is wrong with ``path`` against ``record`` ({"size", "sha256"}, from ``source``); None if it matches."""
    path = Path(path)
    if not path.is_file():
        return f"it is missing ({source} lists it)"
    size = path.stat().st_size
    if size != record.get("size"):
        return (f"it has {size} bytes, {source} says {record.get('size')} (truncated, or overwritten after it "
                "was written)")
    if file_sha256(path) != record.get("sha256"):
        return f"its content hash differs from {source} (bytes corrupted or changed after it was written)"
    return None


def read_integrity(path: Union[str, os.PathLike]) -> Optional[dict[str, Any]]:
    """The sidecar record of ``path``; None when it has none (a file written before records existed)."""
    sidecar = sidecar_path(path)
    if not sidecar.is_file():
        return None
    try:
        record = json.loads(sidecar.read_text())
    except (ValueError, OSError):
        return {"size": None, "sha256": None}  # an unreadable record: the file cannot be vouched for
    return record if isinstance(record, dict) else {"size": None, "sha256": None}


def integrity_problem(path: Union[str, os.PathLike]) -> Optional[str]:
    """What is wrong with ``path`` against its sidecar; None when it matches or has no sidecar."""
    record = read_integrity(path)
    if record is None:
        return None
    return record_problem(path, record, f"its integrity record {sidecar_path(path).name}")


_unrecorded_noted = False  # files written before integrity records existed: one note per process, not one per file


def read_checked_text(path: Union[str, os.PathLike], advice: str,
                      error_type: type[JepaLitError] = JepaLitError) -> str:
    """The text of ``path`` after its integrity check. A file that fails it raises ``error_type`` naming the
    file, what is wrong and ``advice`` (what to do); a file without a record (written before records
    existed) is read with one warning per process."""
    global _unrecorded_noted
    if not Path(path).is_file():
        return Path(path).read_text()  # the OSError of a missing file (or a folder), as a plain read gives
    problem = integrity_problem(path)
    if problem is not None:
        raise error_type(f"{path}: damaged: {problem}; {advice}")
    if read_integrity(path) is None and not _unrecorded_noted:
        _unrecorded_noted = True
        warnings.warn(f"{path} has no integrity record ({sidecar_path(path).name}; written before jepa-lit "
                      "recorded them): read unchecked (further such files are not reported)", stacklevel=2)
    return Path(path).read_text()


def remove_with_sidecar(path: Union[str, os.PathLike]) -> None:
    Path(path).unlink(missing_ok=True)
    sidecar_path(path).unlink(missing_ok=True)


def write_bytes(path: Union[str, os.PathLike], data: bytes, integrity: bool = False, kind: str = "binary") -> Path:
    return atomic_write(path, lambda f: f.write(data), integrity=integrity, kind=kind)


def not_writable_message(path: Union[str, os.PathLike], error: Optional[OSError] = None) -> str:
    why = f" ({error.strerror})" if error is not None and error.strerror else ""
    return (f"{path}: cannot be written: its folder is not writable{why}; make it writable, or choose another "
            "path")


def check_writable(path: Union[str, os.PathLike], what: str = "output") -> None:
    """Before the work: raise NotWritable naming ``path`` when a file cannot be created there (its nearest
    existing folder is not writable, or a file stands where a folder is needed), so a long run does not
    train and then lose its work at the first save."""
    path = Path(path)
    folder = path if path.is_dir() else path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise NotWritable(f"{what} {path}: cannot be written: {folder} is a file, not a folder")
    problem = None if os.access(folder, os.W_OK | os.X_OK) else "permission denied"
    if problem is None:
        try:  # what a write does: a read-only file system (or an ACL) shows here, whoever runs it
            with tempfile.TemporaryFile(dir=folder):
                pass
        except OSError as error:
            problem = error.strerror or str(error)
    if problem is not None:
        raise NotWritable(f"{what} {path}: cannot be written: {folder} is not writable ({problem}); make it "
                         "writable, or choose another path")


@contextlib.contextmanager
def text_file(path: Union[str, os.PathLike], integrity: bool = False) -> Iterator[io.StringIO]:
    """``with text_file(path) as handle:`` collects the text (e.g. for csv.writer, which ends rows itself)
    and writes it atomically when the block ends without an error."""
    buffer = io.StringIO(newline="")
    yield buffer
    write_text(path, buffer.getvalue(), integrity=integrity)
