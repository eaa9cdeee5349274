"""What the tool says back: the nearest valid choice for a mistyped name or path, and durations (ETAs)."""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Iterable, Optional, Sequence


def nearest(name: str, choices: Iterable[str], cutoff: float = 0.6) -> Optional[str]:
    """The choice closest to ``name`` (difflib's ratio, at least ``cutoff``), or None."""
    found = difflib.get_close_matches(name, list(choices), n=1, cutoff=cutoff)
    return found[0] if found else None


def path_hint(path: str, suffixes: Optional[Sequence[str]] = None, limit: int = 8) -> str:
    """What exists near a path that does not: the first missing component's nearest sibling (``did you
    mean ...?``), and when the parent folder exists, the entries in it (only ``suffixes`` files if given).
    An empty string when nothing useful can be said."""
    target = Path(os.path.expanduser(path))
    parts, existing = [], target
    while not existing.exists() and existing != existing.parent:
        parts.append(existing.name)
        existing = existing.parent
    if not parts or not existing.is_dir():
        return ""
    missing = parts[-1]  # the first component (from the top) that is not there
    entries = sorted(p.name for p in existing.iterdir() if not p.name.startswith("."))
    if len(parts) == 1 and suffixes:  # the folder exists: its sub-folders and the files that fit
        entries = [e for e in entries if e.endswith(tuple(suffixes)) or (existing / e).is_dir()]
    lines = []
    near = nearest(missing, entries)
    if near is not None:
        lines.append(f"did you mean {existing / near}{os.sep.join([''] + parts[-2::-1])}?")
    if existing == existing.parent:  # the file system's root: a listing would not help
        return "\n".join(lines)
    if entries:
        shown = ", ".join(entries[:limit]) + (f", ... ({len(entries)} in all)" if len(entries) > limit else "")
        lines.append(f"{existing} holds: {shown}")
    else:
        kinds = f"{'/'.join(suffixes)} files or folders" if suffixes and len(parts) == 1 else "entries"
        lines.append(f"{existing} holds no {kinds}")
    return "\n".join(lines)


def format_duration(seconds: float) -> str:
    """3m02s, 1h05m, 12s."""
    seconds = int(round(max(0.0, seconds)))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"
