"""A deadline on library calls that can loop forever on a corrupt file (libhdf5 reading a damaged
attribute or object header: seen once in the hostile-files fuzz run, a read that never returned).

Such a call holds the GIL inside C, so nothing in Python can stop it; `guard` arms the native
watchdog (`nncompress.native.watchdog`), which, past the deadline, prints the usual one error line
naming the file and ends the process with the input-error exit code (3). Only the CLI enables it
(`enable`): a library must not end its caller's process. The deadline is STALL_SECONDS plus a
second per 2 MB of the file (a legitimate read, even from a slow network disk, takes well
under that), or NNCOMPRESS_STALL_SECONDS when set.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from nncompress.errors import InputError

STALL_SECONDS = 60.0
BYTES_PER_SECOND = 2 << 20  # a slow network disk; a 1 GB file gets 9 minutes

_enabled = False
_depth = 0  # nested guards: the outermost one's deadline holds


def enable() -> None:
    global _enabled
    _enabled = True


def enabled() -> bool:
    """Whether the CLI owns this process (and may end it, or change its limits)."""
    return _enabled


def deadline(file_size: int) -> float:
    env = os.environ.get("NNCOMPRESS_STALL_SECONDS")
    if env:
        with contextlib.suppress(ValueError):
            if float(env) > 0:
                return float(env)
    return STALL_SECONDS + file_size / BYTES_PER_SECOND


@contextlib.contextmanager
def guard(what: str, path: str | None, file_size: int) -> Iterator[None]:
    """Run the body under the watchdog, when the CLI enabled it."""
    global _depth
    if not _enabled:
        yield
        return
    from nncompress.native import watchdog

    armed = False
    if _depth == 0:
        seconds = deadline(file_size)
        err = InputError(
            f"{what} did not finish in {seconds:g} s: libhdf5 is looping on a corrupt structure",
            path=path,
            hint="the file is damaged; re-export or re-download it",
        )
        armed = watchdog.arm(f"nncompress: error: {err.one_line()}\n", seconds, err.exit_code)
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        if armed:
            watchdog.disarm()
