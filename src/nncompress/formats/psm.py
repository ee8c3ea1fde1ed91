"""``psm``: a product of sparse matrices (PSM-nets, Giffon et al. 2021), ``W ~ S_1 S_2 ... S_Q``.

The factors have shapes (out, k), (k, k), ..., (k, in) with k = min(out, in) (one factor (out, in) when
Q = 1). They are fitted (PALM or pyfaust, within a parameter budget) by `nncompress.passes.psm`.

Arrays, for each factor i = 0..Q-1, a CSR matrix: ``values{i}`` float32 (nnz_i,), ``col_idx{i}`` and
``row_ptr{i}`` in the narrowest unsigned dtypes. Meta: ``shape``, ``inner`` (k), ``nnz`` (list per factor).
``dot`` applies the factors right to left as sparse products; the product is never formed densely.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from nncompress.errors import InputError
from nncompress.formats._lowparam import csr_dense, csr_matmul_t, load_csr
from nncompress.formats.base import (
    Format,
    as_input,
    as_output,
    check_keys,
    float_array,
    meta_int,
    meta_shape,
)


def factor_shapes(shape: tuple[int, int], q: int) -> list[tuple[int, int]]:
    """The shapes of Q factors whose product is (out, in)."""
    if q == 1:
        return [shape]
    k = min(shape)
    return [(shape[0], k)] + [(k, k)] * (q - 2) + [(k, shape[1])]


class PSM(Format):
    """A product of CSR sparse factors."""

    name = "psm"

    def __init__(
        self, shape: tuple[int, int], inner: int, factors: list[tuple[np.ndarray, np.ndarray, np.ndarray]]
    ) -> None:
        super().__init__(shape)
        self.inner, self.factors = inner, factors
        self._int = [(v.astype(np.float64), c.astype(np.int64), p.astype(np.int64)) for v, c, p in factors]

    @property
    def parameters(self) -> int:
        """Stored float count (index arrays not included)."""
        return int(sum(v.size for v, _, _ in self.factors))

    def _shapes(self) -> list[tuple[int, int]]:
        return factor_shapes(self.shape, len(self.factors))

    def to_dense(self) -> np.ndarray:
        out = np.eye(self.shape[0])
        for sh, (v, c, p) in zip(self._shapes(), self._int, strict=True):
            out = out @ csr_dense(sh, v, c, p)
        return out.astype(np.float32)

    def dot(self, x: np.ndarray) -> np.ndarray:
        xb, single = as_input(x, self)
        for v, c, p in reversed(self._int):
            xb = csr_matmul_t(xb, v, c, p)
        return as_output(xb, single)

    def arrays(self) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for i, (v, c, p) in enumerate(self.factors):
            out |= {f"values{i}": v, f"col_idx{i}": c, f"row_ptr{i}": p}
        return out

    def meta(self) -> dict[str, Any]:
        return {
            "shape": list(self.shape),
            "inner": self.inner,
            "nnz": [int(v.size) for v, _, _ in self.factors],
        }

    @classmethod
    def _from_arrays(cls, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> PSM:
        nnz = meta.get("nnz")
        if not isinstance(nnz, list) or not 1 <= len(nnz) <= 64:
            raise InputError(f"meta nnz={nnz!r} is not a list of 1 to 64 counts")
        names = {f"{k}{i}" for i in range(len(nnz)) for k in ("values", "col_idx", "row_ptr")}
        check_keys(arrays, meta, names, {"shape", "inner", "nnz"})
        shape = meta_shape(meta)
        inner = meta_int(meta, "inner", min(shape), min(shape))
        factors = []
        for i, sh in enumerate(factor_shapes(shape, len(nnz))):
            n = meta_int({f"nnz[{i}]": nnz[i]}, f"nnz[{i}]", 0, sh[0] * sh[1])
            values = float_array(arrays, f"values{i}", (n,), finite=True)
            load_csr(arrays, str(i), sh, n)
            factors.append((values, arrays[f"col_idx{i}"], arrays[f"row_ptr{i}"]))
        return cls(shape, inner, factors)
