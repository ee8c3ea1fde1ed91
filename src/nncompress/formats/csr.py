"""``csr``: compressed sparse rows, float32 values and the narrowest unsigned index dtypes.

Arrays (nnz stored entries, row-major, columns strictly increasing within a row):

- ``values``  float32 (nnz,)
- ``col_idx`` uint8/16/32 (nnz,): column of each value, the narrowest dtype holding ``in - 1``
- ``row_ptr`` uint8/16/32/64 (out + 1,): row ``r`` is ``row_ptr[r]:row_ptr[r+1]``, the narrowest dtype holding nnz

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
    check_ptr,
    float_array,
    meta_int,
    meta_shape,
    segment_ids,
    segment_sum,
    take_params,
    uint_array,
)


def check_sorted_segments(idx: np.ndarray, ptr: np.ndarray, key: str) -> None:
    """Indices strictly increase inside each segment ``ptr[i]:ptr[i+1]``."""
    if idx.size < 2:
        return
    inside = np.ones(idx.size - 1, dtype=bool)
    starts = ptr[1:-1]
    inside[starts[(starts > 0) & (starts < idx.size)] - 1] = False  # a segment start may go down
    if np.any(np.diff(idx)[inside] <= 0):
        raise InputError(f"array {key} is not strictly increasing within a segment")


class CSR(Format):
    """Compressed sparse rows."""

    name = "csr"

    def __init__(
        self, shape: tuple[int, int], values: np.ndarray, col_idx: np.ndarray, row_ptr: np.ndarray
    ) -> None:
        super().__init__(shape)
        self.values, self.col_idx, self.row_ptr = values, col_idx, row_ptr

    @classmethod
    def encode(cls, w: np.ndarray, **params: Any) -> CSR:
        take_params(cls.name, params)
        a = as_matrix(w, cls.name)
        rows, cols = np.nonzero(a)
        ptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=a.shape[0]))])
        return cls(a.shape, a[rows, cols], as_uint(cols, a.shape[1] - 1), as_uint(ptr, rows.size))

    def to_dense(self) -> np.ndarray:
        out = np.zeros(self.shape, dtype=np.float32)
        rows = segment_ids(self.row_ptr)
        out[rows, self.col_idx] = self.values
        return out

    def dot(self, x: np.ndarray) -> np.ndarray:
        xb, single = as_input(x, self)
        y = np.zeros((xb.shape[0], self.shape[0]))
        vals = self.values.astype(np.float64)
        for sl in batch_chunks(xb, self.values.size):
            y[sl] = segment_sum(xb[sl][:, self.col_idx] * vals, self.row_ptr)
        return as_output(y, single)

    def arrays(self) -> dict[str, np.ndarray]:
        return {"values": self.values, "col_idx": self.col_idx, "row_ptr": self.row_ptr}

    def meta(self) -> dict[str, Any]:
        return {"shape": list(self.shape), "nnz": int(self.values.size)}

    @classmethod
    def _from_arrays(cls, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> CSR:
        check_keys(arrays, meta, {"values", "col_idx", "row_ptr"}, {"shape", "nnz"})
        shape = meta_shape(meta)
        nnz = meta_int(meta, "nnz", 0, shape[0] * shape[1])
        values = float_array(arrays, "values", (nnz,))
        cols = uint_array(arrays, "col_idx", nnz, below=shape[1])
        ptr = uint_array(arrays, "row_ptr", shape[0] + 1)
        check_ptr(ptr, nnz, "row_ptr")
        check_sorted_segments(cols, ptr, "col_idx")
        return cls(shape, values, arrays["col_idx"], arrays["row_ptr"])
