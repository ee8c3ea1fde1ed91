"""Temporary folders that go away: at exit, on SIGINT/SIGTERM, and at the next run after a SIGKILL.

Each folder carries the creating process's id in its name (``nnc-skel-<pid>-xxxx``); a later run
removes the folders of processes that no longer exist, which is all a killed run can leave behind.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["pid_alive", "signals_held", "sweep", "temp_dir"]

_OURS = re.compile(r"nnc-[a-z]*-?(\d+)-")


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """SIGINT and SIGTERM wait while a temp file is made and its removal registered: an interrupt
    in between would leave it behind."""
    held = {signal.SIGINT, signal.SIGTERM}
    try:
        old = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    except (AttributeError, ValueError, OSError):  # no pthread_sigmask (Windows)
        yield
        return
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def temp_dir(kind: str) -> Path:
    """A new folder ``nnc-<kind>-<pid>-xxxx`` in the temp directory, removed when the process exits."""
    with signals_held():
        d = tempfile.mkdtemp(prefix=f"nnc-{kind}-{os.getpid()}-")
        atexit.register(shutil.rmtree, d, True)
    return Path(d)


def sweep(folder: str | os.PathLike[str] | None = None) -> int:
    """Remove the folders that runs killed before their exit left in ``folder`` (the temp directory
    by default); return how many went."""
    root = Path(folder or tempfile.gettempdir())
    gone = 0
    try:
        entries = list(root.iterdir())
    except OSError:
        return 0
    for e in entries:
        m = _OURS.match(e.name)
        if m and e.is_dir() and not e.is_symlink() and not pid_alive(int(m.group(1))):
            shutil.rmtree(e, ignore_errors=True)
            gone += 1
    return gone
