"""One content hash for configs and descriptions: sweep run identity, feature-cache keys, probe
comparison keys. The same JSON (keys sorted, anything else as str) always gives the same digest."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def json_sha256(value: Any) -> str:
    """Hex SHA-256 of ``value`` as canonical JSON."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()
