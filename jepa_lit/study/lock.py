"""``<run>/.lock``: one process works on a run at a time."""

from __future__ import annotations

import json
import os
import socket
from typing import Any, Optional

from jepa_lit.study.registry import now
from jepa_lit.study.runs import Run


class RunLock:
    """``<run>/.lock`` created exclusively; a lock left by a dead process on this host is taken over."""

    def __init__(self, run: Run):
        self.path = run.run_dir / ".lock"
        self.held = False

    def acquire(self) -> Optional[str]:
        """None when acquired; otherwise who holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        me = {"host": socket.gethostname(), "pid": os.getpid(), "since": now()}
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                try:
                    holder = json.loads(self.path.read_text())
                except (OSError, ValueError):
                    holder = {}
                if holder.get("host") == me["host"] and not alive(holder.get("pid")):
                    self.path.unlink(missing_ok=True)  # stale: its process is gone
                    continue
                return (f"locked by {holder.get('host')} pid {holder.get('pid')} since {holder.get('since')} "
                        f"(delete {self.path} if that process is gone)")
            with os.fdopen(fd, "w") as handle:
                json.dump(me, handle)
            self.held = True
            return None
        return f"could not lock {self.path}"

    def release(self) -> None:
        if self.held:
            self.path.unlink(missing_ok=True)
            self.held = False


def alive(pid: Any) -> bool:
    if not isinstance(pid, int):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True  # PermissionError included: the process exists
