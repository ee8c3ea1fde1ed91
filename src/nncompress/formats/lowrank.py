"""``lowrank``: a truncated SVD W ~ A @ B with float32 factors A (out, r) and B (r, in).

``encode(w, budget=0.1, rank=None)`` keeps the largest rank r with ``r * (out + in) <= budget * out * in``
(at least 1, so a matrix too small for the budget still gets rank 1), or exactly ``rank``. The singular
values are split evenly, ``A = U sqrt(S)`` and ``B = sqrt(S) V^T``, so both factors have the same scale.

Arrays: ``a`` float32 (out, r), ``b`` float32 (r, in). Meta: ``shape``, ``rank``.
Parameters stored: ``r * (out + in)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from nncompress.formats._lowparam import check_budget, check_count
from nncompress.formats.base import (
    Format,
    as_input,
    as_matrix,
    as_output,
    check_keys,
    float_array,
    meta_int,
    meta_shape,
    take_params,
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

    @classmethod
    def encode(cls, w: np.ndarray, **params: Any) -> LowRank:
        p = take_params(cls.name, params, budget=0.1, rank=None)
        budget = check_budget(cls.name, p["budget"])
        a = as_matrix(w, cls.name, finite=True)
        out, n_in = a.shape
        full = min(out, n_in)
        if p["rank"] is not None:
            r = min(check_count(cls.name, "rank", p["rank"]), full)
        else:
            r = min(max(1, int(budget * out * n_in // max(out + n_in, 1))), full)
        if r == 0:
            return cls(a.shape, np.zeros((out, 0), np.float32), np.zeros((0, n_in), np.float32))
        u, s, vt = np.linalg.svd(a.astype(np.float64), full_matrices=False)
        root = np.sqrt(s[:r])
        return cls(a.shape, (u[:, :r] * root).astype(np.float32), (root[:, None] * vt[:r]).astype(np.float32))

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
