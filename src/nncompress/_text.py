"""Text for people that both the library and the CLI write: byte sizes, and an exception as one line.

Library modules may not import the CLI (typer and rich come with it), so these live here and the CLI
re-exports them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

__all__ = ["IEC_UNITS", "error_line", "human_bytes", "plain"]

IEC_UNITS = ("B", "KiB", "MiB", "GiB")

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def human_bytes(n: float, units: Sequence[str] = IEC_UNITS) -> str:
    """``n`` bytes in the largest of ``units`` (successive powers of 1024) it reaches, the last at
    most: "512 B", "1.5 KiB". Other unit names are for text that must keep its old spelling."""
    for unit in units:
        if abs(n) < 1024 or unit == units[-1]:
            return f"{n:.0f} {unit}" if unit == units[0] else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} {units[-1]}"


def plain(s: str) -> str:
    """``s`` without terminal colour codes (torch colours some of its error messages)."""
    return _ANSI.sub("", s)


def error_line(e: BaseException) -> str:
    """An exception as one short line: its type and its message's first line, cut at 160 characters."""
    s = plain(str(e)).strip()
    first = s.splitlines()[0] if s else ""
    first = " ".join(first.split())
    if len(first) > 160:
        first = first[:157] + "..."
    return f"{type(e).__name__}: {first}" if first else type(e).__name__
