"""One content hash for configs and descriptions: sweep run identity, feature-cache keys, probe
comparison keys. The same JSON (keys sorted, anything else as str) always gives the same digest. Files a
config names (list files, annotation files) are hashed by content (``files_named``)."""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any


def json_sha256(value: Any) -> str:
    """Hex SHA-256 of ``value`` as canonical JSON."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def files_named(value: Any) -> dict[str, str]:
    """{path: SHA-256 of its content} of every string in ``value`` (a config, nested dicts and lists) that
    names an existing file, e.g. ``data.test_list``. A result that depends on a list file then depends on
    what the file holds, not on its name: edit the list and the cache key or the sweep's hash moves."""
    found: dict[str, str] = {}

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for item in node.values():
                walk(item)
        elif isinstance(node, (list, tuple)):
            for item in node:
                walk(item)
        elif isinstance(node, str) and 0 < len(node) < 4096 and "\n" not in node and os.path.isfile(node):
            found[node] = file_sha256(node)

    walk(value)
    return dict(sorted(found.items()))


def file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
