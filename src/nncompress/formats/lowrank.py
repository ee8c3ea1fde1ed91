"""``lowrank``: W ~ A @ B with float32 factors A (out, r) and B (r, in), a rank-r approximation.

The factors are fitted (a truncated SVD within a parameter budget) by `nncompress.passes.lowrank`.

Arrays: ``a`` float32 (out, r), ``b`` float32 (r, in). Meta: ``shape``, ``rank``.
Parameters stored: ``r * (out + in)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from nncompress.formats.base import (
    Format,
    as_input,
    as_output,
    check_keys,
    float_array,
    meta_int,
    meta_shape,
)


class LowRank(Format):
    """Truncated SVD factors."""

    name = "lowrank"

    def __init__(self, shape: tuple[int, int], a: np.ndarray, b: np.ndarray) -> None:
        super().__init__(shape)
        self.a, self.b = a, b

    @property
    def rank(self) -> int:
        return int(self.b.shape[0])

    @property
    def parameters(self) -> int:
        """Stored float count."""
        return int(self.a.size + self.b.size)

    def to_dense(self) -> np.ndarray:
        return (self.a.astype(np.float64) @ self.b.astype(np.float64)).astype(np.float32)

    def dot(self, x: np.ndarray) -> np.ndarray:
        xb, single = as_input(x, self)
        return as_output((xb @ self.b.T.astype(np.float64)) @ self.a.T.astype(np.float64), single)

    def arrays(self) -> dict[str, np.ndarray]:
        return {"a": self.a, "b": self.b}

    def meta(self) -> dict[str, Any]:
        return {"shape": list(self.shape), "rank": self.rank}

    @classmethod
    def _from_arrays(cls, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> LowRank:
        check_keys(arrays, meta, {"a", "b"}, {"shape", "rank"})
        shape = meta_shape(meta)
        r = meta_int(meta, "rank", 0, min(shape))
        a = float_array(arrays, "a", (shape[0], r), finite=True)
        b = float_array(arrays, "b", (r, shape[1]), finite=True)
        return cls(shape, a, b)
