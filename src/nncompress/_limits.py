"""How much memory a file may make nncompress allocate, checked before anything is allocated.

Every size read from a file (zip members and their compression ratios, tensor shapes, HDF5
dataset shapes, ONNX dims, manifest offsets) is a claim until the bytes are there; a claim above the
budget is refused with exit 3 naming the member or tensor, instead of an allocation failure.

The budget is NNCOMPRESS_MAX_MEMORY (bytes, or with a K/M/G suffix; ``compress --max-memory``
sets it) or, by default, half of the memory available when the process starts.
"""

from __future__ import annotations

import os
import re

from nncompress.errors import InputError, UsageError

__all__ = ["MAX_RATIO", "check_alloc", "memory_budget", "parse_size"]

# An inflated member may be at most this many times its compressed size (plus a megabyte): weights
# deflate 1.1-3x, JSON 5-20x; a "member" inflating 1000x is a bomb.
MAX_RATIO = 1000
_FALLBACK = 4 << 30


def parse_size(text: str) -> int:
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmMgGtT]?)i?[bB]?\s*", text)
    if not m:
        raise UsageError(
            f"bad memory size {text!r}", hint="Give bytes or a number with K, M, G or T, e.g. 2G"
        )
    scale = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}[m.group(2).lower()]
    return int(float(m.group(1)) * scale)


def _available() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return _FALLBACK


def memory_budget() -> int:
    env = os.environ.get("NNCOMPRESS_MAX_MEMORY")
    if env:
        return parse_size(env)
    return max(_available() // 2, 256 << 20)


def check_alloc(nbytes: int, what: str, path: str | os.PathLike[str]) -> None:
    """Refuse, before allocating, ``what`` that would take ``nbytes`` above the memory budget."""
    budget = memory_budget()
    if nbytes > budget:
        raise InputError(
            f"{what} declares {nbytes:,} bytes, above the memory budget of {budget:,}",
            path=str(path),
            hint="If the file is genuine, raise the budget with --max-memory (or NNCOMPRESS_MAX_MEMORY)",
        )
