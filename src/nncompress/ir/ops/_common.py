"""What every op module shares: the signature of an op and the reading of int-list arguments.

An op is a function ``(ins, attrs) -> array or tuple of arrays``: ``ins`` are the node's input arrays
in order (None where an optional input is omitted), ``attrs`` its attributes as the IR stores them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

Arr = np.ndarray
Ins = list[Any]  # the node's input arrays, None where an optional input is omitted
Attrs = dict[str, Any]
Result = Arr | tuple[Arr, ...]
OpFn = Callable[[Ins, Attrs], Result]


def arg(ins: Ins, i: int, a: Attrs, key: str) -> list[int] | None:
    """An int list given as input ``i`` (newer opsets) or as attribute ``key`` (older ones)."""
    if len(ins) > i and ins[i] is not None:
        return [int(v) for v in np.asarray(ins[i]).reshape(-1)]
    v = a.get(key)
    return None if v is None else [int(i) for i in np.asarray(v).reshape(-1)]
