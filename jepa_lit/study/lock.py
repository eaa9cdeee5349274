"""``<run>/.lock``: one process works on a run at a time, for as long as any process of it lives.

The lock is an ``flock`` on ``<run>/.lock``. The kernel drops it when the last process holding the open
file goes away, so there is no stale lock to guess about (a pid check would take over the lock of a run
whose fit still trains after the sweep was killed). The sweep passes the locked file to the fit and probe
processes it starts (``LOCK_FD_VARIABLE`` names it for the launcher): killed with ``kill -9``, the sweep
leaves its fit holding the lock, and a rerun skips the run as locked until that fit ends.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
from typing import Optional

from jepa_lit.study.registry import now
from jepa_lit.study.runs import Run

LOCK_FD_VARIABLE = "JEPA_LIT_RUN_LOCK_FD"  # in a launched command's environment: the lock's file descriptor


class RunLock:
    """An exclusive ``flock`` on ``<run>/.lock``; the file says who took it (for the message to others)."""

    def __init__(self, run: Run):
        self.path = run.run_dir / ".lock"
        self.fd: Optional[int] = None

    @property
    def held(self) -> bool:
        return self.fd is not None

    def acquire(self) -> Optional[str]:
        """None when acquired; otherwise who holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            try:
                holder = json.loads(self.path.read_text() or "{}")
            except (OSError, ValueError):
                holder = {}
            return (f"locked by {holder.get('host', '?')} pid {holder.get('pid', '?')} since "
                    f"{holder.get('since', '?')} (or by a fit or probe it started, which still runs)")
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "since": now()}).encode(), 0)
        self.fd = fd
        return None

    def release(self) -> None:
        """Close this process's handle; the lock ends once no started process holds the file either."""
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
