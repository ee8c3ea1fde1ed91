"""``coo``: coordinate list, float32 values and the narrowest unsigned index dtypes.

Arrays (nnz stored entries in row-major order, no cell twice):

- ``values``  float32 (nnz,)
- ``row_idx`` uint8/16/32 (nnz,): the narrowest dtype holding ``out - 1``
- ``col_idx`` uint8/16/32 (nnz,): the narrowest dtype holding ``in - 1``

Meta: ``shape``, ``nnz``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from nncompress.errors import InputError
from nncompress.formats.base import (
    Format,
    as_input,
    as_matrix,
    as_output,
    as_uint,
    batch_chunks,
    check_keys,
    float_array,
    meta_int,
    meta_shape,
    take_params,
    uint_array,
)


class COO(Format):
    """Coordinate list."""

    name = "coo"

    def __init__(
        self, shape: tuple[int, int], values: np.ndarray, row_idx: np.ndarray, col_idx: np.ndarray
    ) -> None:
        super().__init__(shape)
        self.values, self.row_idx, self.col_idx = values, row_idx, col_idx

    @classmethod
    def encode(cls, w: np.ndarray, **params: Any) -> COO:
        take_params(cls.name, params)
        a = as_matrix(w, cls.name)
        rows, cols = np.nonzero(a)
        return cls(a.shape, a[rows, cols], as_uint(rows, a.shape[0] - 1), as_uint(cols, a.shape[1] - 1))

    def to_dense(self) -> np.ndarray:
        out = np.zeros(self.shape, dtype=np.float32)
        out[self.row_idx, self.col_idx] = self.values
        return out

    def dot(self, x: np.ndarray) -> np.ndarray:
        xb, single = as_input(x, self)
        y = np.zeros((xb.shape[0], self.shape[0]))
        vals = self.values.astype(np.float64)
        for sl in batch_chunks(xb, self.values.size):
            np.add.at(y[sl].T, self.row_idx, (xb[sl][:, self.col_idx] * vals).T)
        return as_output(y, single)

    def arrays(self) -> dict[str, np.ndarray]:
        return {"values": self.values, "row_idx": self.row_idx, "col_idx": self.col_idx}

    def meta(self) -> dict[str, Any]:
        return {"shape": list(self.shape), "nnz": int(self.values.size)}

    @classmethod
    def _from_arrays(cls, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> COO:
        check_keys(arrays, meta, {"values", "row_idx", "col_idx"}, {"shape", "nnz"})
        shape = meta_shape(meta)
        nnz = meta_int(meta, "nnz", 0, shape[0] * shape[1])
        values = float_array(arrays, "values", (nnz,))
        rows = uint_array(arrays, "row_idx", nnz, below=shape[0])
        cols = uint_array(arrays, "col_idx", nnz, below=shape[1])
        if np.any(np.diff(rows * shape[1] + cols) <= 0):
            raise InputError("entries are not in strictly increasing row-major order")
        return cls(shape, values, arrays["row_idx"], arrays["col_idx"])
