"""JSON from files nncompress does not trust: bounded depth, finite numbers, one clean error.

``json.loads`` recurses once per nesting level (a few thousand ``[`` raise RecursionError) and
accepts ``NaN``, ``Infinity`` and ``1e999``, which turn into floats no shape, offset or option
should ever be. Every manifest, config and program read from a file goes through `loads`.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import numpy as np

__all__ = ["MAX_DEPTH", "JSONError", "loads"]

MAX_DEPTH = 200  # Keras configs nest about 10 deep, torch.export programs about 15
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)


class JSONError(ValueError):
    """The text is not JSON nncompress accepts; the message says why in a few words."""


def _finite(text: str) -> float:
    v = float(text)
    if not math.isfinite(v):
        raise JSONError(f"number {text[:20]} is out of range")
    return v


def _constant(name: str) -> Any:
    raise JSONError(f"{name} is not a number JSON allows")


def depth(data: bytes) -> int:
    """The deepest nesting of objects and arrays in ``data`` (strings skipped)."""
    bare = np.frombuffer(_STRING.sub(b'""', data), dtype=np.uint8)
    if bare.size == 0:
        return 0
    step = np.isin(bare, (ord("{"), ord("["))).astype(np.int64) - np.isin(bare, (ord("}"), ord("]")))
    return int(np.cumsum(step).max(initial=0))


def loads(data: bytes | str, *, max_depth: int = MAX_DEPTH) -> Any:
    """Parse ``data``, refusing deep nesting, NaN/Infinity and out-of-range numbers (JSONError)."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else bytes(data)
    d = depth(raw)
    if d > max_depth:
        raise JSONError(f"nested {d} levels deep (at most {max_depth})")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise JSONError("not UTF-8 text") from None
    try:
        return json.loads(text, parse_constant=_constant, parse_float=_finite)
    except JSONError:
        raise
    except (ValueError, RecursionError) as e:
        raise JSONError(str(e).splitlines()[0][:120] if str(e) else type(e).__name__) from None
