"""``csc``: compressed sparse columns, float32 values and the narrowest unsigned index dtypes.

Arrays (nnz stored entries, column-major, rows strictly increasing within a column):

- ``values``  float32 (nnz,)
- ``row_idx`` uint8/16/32 (nnz,): row of each value, the narrowest dtype holding ``out - 1``
- ``col_ptr`` uint8/16/32/64 (in + 1,): column ``c`` is ``col_ptr[c]:col_ptr[c+1]``, the narrowest dtype holding nnz

Meta: ``shape``, ``nnz``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from nncompress.formats.base import (
    Format,
    as_input,
    as_matrix,
    as_output,
    as_uint,
    batch_chunks,
    check_keys,
    check_ptr,
    float_array,
    meta_int,
    meta_shape,
    segment_ids,
    take_params,
    uint_array,
)
from nncompress.formats.csr import check_sorted_segments


class CSC(Format):
    """Compressed sparse columns."""

    name = "csc"

    def __init__(
        self, shape: tuple[int, int], values: np.ndarray, row_idx: np.ndarray, col_ptr: np.ndarray
    ) -> None:
        super().__init__(shape)
        self.values, self.row_idx, self.col_ptr = values, row_idx, col_ptr

    @classmethod
    def encode(cls, w: np.ndarray, **params: Any) -> CSC:
        take_params(cls.name, params)
        a = as_matrix(w, cls.name)
        cols, rows = np.nonzero(a.T)
        ptr = np.concatenate([[0], np.cumsum(np.bincount(cols, minlength=a.shape[1]))])
        return cls(a.shape, a[rows, cols], as_uint(rows, a.shape[0] - 1), as_uint(ptr, rows.size))

    def _cols(self) -> np.ndarray:
        return segment_ids(self.col_ptr)

    def to_dense(self) -> np.ndarray:
        out = np.zeros(self.shape, dtype=np.float32)
        out[self.row_idx, self._cols()] = self.values
        return out

    def dot(self, x: np.ndarray) -> np.ndarray:
        xb, single = as_input(x, self)
        y = np.zeros((xb.shape[0], self.shape[0]))
        cols, vals = self._cols(), self.values.astype(np.float64)
        for sl in batch_chunks(xb, self.values.size):
            # Column by column: y[:, row] += x[:, col] * value for each stored entry.
            np.add.at(y[sl].T, self.row_idx, (xb[sl][:, cols] * vals).T)
        return as_output(y, single)

    def arrays(self) -> dict[str, np.ndarray]:
        return {"values": self.values, "row_idx": self.row_idx, "col_ptr": self.col_ptr}

    def meta(self) -> dict[str, Any]:
        return {"shape": list(self.shape), "nnz": int(self.values.size)}

    @classmethod
    def _from_arrays(cls, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> CSC:
        check_keys(arrays, meta, {"values", "row_idx", "col_ptr"}, {"shape", "nnz"})
        shape = meta_shape(meta)
        nnz = meta_int(meta, "nnz", 0, shape[0] * shape[1])
        values = float_array(arrays, "values", (nnz,))
        rows = uint_array(arrays, "row_idx", nnz, below=shape[0])
        ptr = uint_array(arrays, "col_ptr", shape[1] + 1)
        check_ptr(ptr, nnz, "col_ptr")
        check_sorted_segments(rows, ptr, "row_idx")
        return cls(shape, values, arrays["row_idx"], arrays["col_ptr"])
