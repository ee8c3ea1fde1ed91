"""The process watchdog in C (native/watchdog.c): a deadline for calls that may never return."""

from __future__ import annotations

from nncompress.native._call import check, ffi, lib, loaded


def arm(message: str, seconds: float, code: int) -> bool:
    """After ``seconds``, unless `disarm` comes first, write ``message`` to stderr and end the
    process with exit ``code``; False where the kernels are not built (nothing is armed)."""
    if not loaded():
        return False
    data = message.encode("utf-8", "replace")[:2048]
    check(lib.nnc_watchdog_arm(ffi.from_buffer(data), len(data), float(seconds), int(code)), "watchdog")
    return True


def disarm() -> None:
    if loaded():
        lib.nnc_watchdog_disarm()
