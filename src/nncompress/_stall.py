"""A deadline on library calls that can loop forever on a corrupt file (libhdf5 reading a damaged
attribute or object header: seen once in the hostile-files fuzz run, a read that never returned).

Such a call holds the GIL inside C, so nothing in Python can stop it; `guard` arms the native
watchdog (`nncompress.native.watchdog`), which, past the deadline, prints the usual one error line
naming the file and ends the process with the input-error exit code (3). Only the CLI enables it
(`enable`): a library must not end its caller's process. The deadline is STALL_SECONDS plus a
second per 2 MB of the file (a legitimate read, even from a slow network disk, takes well
under that), or NNCOMPRESS_STALL_SECONDS when set.

The same watchdog bounds a model run (`running`): a graph can loop forever (an ONNX Loop with a
trip count of 2^62 and a condition that stays true, a TorchScript `while True`), and neither
onnxruntime, torch nor the interpreter can be stopped from Python. Its deadline is RUN_SECONDS
plus RUN_SECONDS_PER_SAMPLE a sample of the call (a VGG16 forward pass of 64 samples takes about
a minute on 2 cores), or NNCOMPRESS_RUN_SECONDS when set; past it the process ends with exit 5.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from nncompress.errors import InputError, NNCError, UnsupportedError

STALL_SECONDS = 60.0
BYTES_PER_SECOND = 2 << 20  # a slow network disk; a 1 GB file gets 9 minutes
RUN_SECONDS = 300.0
RUN_SECONDS_PER_SAMPLE = 5.0

_enabled = False
_depth = 0  # nested guards: the outermost one's deadline holds


def enable() -> None:
    global _enabled
    _enabled = True


def enabled() -> bool:
    """Whether the CLI owns this process (and may end it, or change its limits)."""
    return _enabled


def _seconds(var: str, default: float) -> float:
    """``default``, or the positive number of seconds in environment variable ``var``."""
    with contextlib.suppress(ValueError):
        if float(os.environ.get(var, "")) > 0:
            return float(os.environ[var])
    return default


def deadline(file_size: int) -> float:
    return _seconds("NNCOMPRESS_STALL_SECONDS", STALL_SECONDS + file_size / BYTES_PER_SECOND)


@contextlib.contextmanager
def guard(what: str, path: str | None, file_size: int) -> Iterator[None]:
    """Run the body under the watchdog, when the CLI enabled it."""
    seconds = deadline(file_size)
    err = InputError(
        f"{what} did not finish in {seconds:g} s: libhdf5 is looping on a corrupt structure",
        path=path,
        hint="The file is damaged; re-export or re-download it",
    )
    with _armed(err, seconds):
        yield


def run_deadline(samples: int) -> float:
    return _seconds("NNCOMPRESS_RUN_SECONDS", RUN_SECONDS + RUN_SECONDS_PER_SAMPLE * samples)


@contextlib.contextmanager
def running(runtime: str, path: str | None, samples: int) -> Iterator[None]:
    """One run of the model in ``runtime`` on ``samples`` samples (0: building the runtime's
    session, which inlines and optimizes the graph), under the watchdog when the CLI enabled it."""
    seconds = run_deadline(samples)
    on = f"on {samples} sample{'s' if samples != 1 else ''}" if samples else "building its session"
    err = UnsupportedError(
        f"running the model in {runtime} did not finish in {seconds:g} s {on} (a loop that never ends?)",
        path=path,
        hint="If the model is this slow, raise the limit with NNCOMPRESS_RUN_SECONDS",
    )
    with _armed(err, seconds):
        yield


@contextlib.contextmanager
def _armed(err: NNCError, seconds: float) -> Iterator[None]:
    global _depth
    if not _enabled:
        yield
        return
    from nncompress.native import watchdog

    armed = False
    if _depth == 0:
        armed = watchdog.arm(f"nncompress: error: {err.one_line()}\n", seconds, err.exit_code)
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        if armed:
            watchdog.disarm()
