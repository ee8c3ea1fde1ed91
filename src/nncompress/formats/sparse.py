"""``csr``, ``csc`` and ``coo``: one sparse format in three layouts, float32 values and the narrowest
unsigned index dtypes.

Every layout stores the nnz nonzero entries of W (out, in) once, no cell twice, as three arrays:
``values`` float32 (nnz,) and two index arrays, named by the layout (`SparseFormat.index_keys`):

- ``csr`` (compressed rows, row-major): ``col_idx`` uint8/16/32 (nnz,), the column of each value in
  the narrowest dtype holding ``in - 1``; ``row_ptr`` uint8/16/32/64 (out + 1,), row ``r`` is
  ``row_ptr[r]:row_ptr[r+1]``, the narrowest dtype holding nnz. Columns strictly increase in a row.
- ``csc`` (compressed columns, column-major): the transpose's csr, ``row_idx`` (narrowest for
  ``out - 1``) and ``col_ptr`` (in + 1,). Rows strictly increase in a column.
- ``coo`` (coordinates, row-major): ``row_idx`` (narrowest for ``out - 1``) and ``col_idx``
  (narrowest for ``in - 1``), the (row, col) pairs strictly increasing in row-major order.

Meta: ``shape``, ``nnz``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, TypeVar

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

S = TypeVar("S", bound="SparseFormat")


def check_sorted_segments(idx: np.ndarray, ptr: np.ndarray, key: str) -> None:
    """Indices strictly increase inside each segment ``ptr[i]:ptr[i+1]``."""
    if idx.size < 2:
        return
    inside = np.ones(idx.size - 1, dtype=bool)
    starts = ptr[1:-1]
    inside[starts[(starts > 0) & (starts < idx.size)] - 1] = False  # a segment start may go down
    if np.any(np.diff(idx)[inside] <= 0):
        raise InputError(f"array {key} is not strictly increasing within a segment")


class SparseFormat(Format):
    """The nonzero entries of a matrix and their coordinates, in the layout its subclass names.

    ``axis`` is the compressed axis: 0 (csr) stores a pointer per row and the column of each entry,
    1 (csc) a pointer per column and the row of each entry, None (coo) both coordinates of each
    entry. The two index arrays are attributes named by ``index_keys``, in the order the artifact
    lists them and the native kernel takes them.
    """

    axis: ClassVar[int | None]
    index_keys: ClassVar[tuple[str, str]]

    def __init__(
        self, shape: tuple[int, int], values: np.ndarray, first: np.ndarray, second: np.ndarray
    ) -> None:
        """``first`` and ``second`` are the index arrays named ``index_keys[0]`` and ``index_keys[1]``."""
        super().__init__(shape)
        self.values = values
        for key, a in zip(self.index_keys, (first, second), strict=True):
            setattr(self, key, a)

    def index_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """The two index arrays, in ``index_keys`` order."""
        return getattr(self, self.index_keys[0]), getattr(self, self.index_keys[1])

    def coordinates(self) -> tuple[np.ndarray, np.ndarray]:
        """(row, column) of every stored value."""
        first, second = self.index_arrays()
        if self.axis is None:
            return first, second
        major = segment_ids(second)
        return (major, first) if self.axis == 0 else (first, major)

    @classmethod
    def encode(cls: type[S], w: np.ndarray, **params: Any) -> S:
        take_params(cls.name, params)
        a = as_matrix(w, cls.name)
        if cls.axis == 1:
            cols, rows = np.nonzero(a.T)  # column-major order
        else:
            rows, cols = np.nonzero(a)
        coords = (rows, cols)
        if cls.axis is None:
            index = (as_uint(rows, a.shape[0] - 1), as_uint(cols, a.shape[1] - 1))
        else:
            major, minor = coords[cls.axis], coords[1 - cls.axis]
            ptr = np.concatenate([[0], np.cumsum(np.bincount(major, minlength=a.shape[cls.axis]))])
            index = (as_uint(minor, a.shape[1 - cls.axis] - 1), as_uint(ptr, rows.size))
        return cls(a.shape, a[rows, cols], *index)

    def to_dense(self) -> np.ndarray:
        out = np.zeros(self.shape, dtype=np.float32)
        out[self.coordinates()] = self.values
        return out

    def dot(self, x: np.ndarray) -> np.ndarray:
        xb, single = as_input(x, self)
        y = np.zeros((xb.shape[0], self.shape[0]))
        vals = self.values.astype(np.float64)
        if self.axis == 0:
            cols, ptr = self.index_arrays()
            for sl in batch_chunks(xb, self.values.size):
                y[sl] = segment_sum(xb[sl][:, cols] * vals, ptr)  # a row's entries are contiguous
        else:
            rows, cols = self.coordinates()
            for sl in batch_chunks(xb, self.values.size):
                # Scatter: y[:, row] += x[:, col] * value for each stored entry.
                np.add.at(y[sl].T, rows, (xb[sl][:, cols] * vals).T)
        return as_output(y, single)

    def arrays(self) -> dict[str, np.ndarray]:
        return {"values": self.values, **dict(zip(self.index_keys, self.index_arrays(), strict=True))}

    def meta(self) -> dict[str, Any]:
        return {"shape": list(self.shape), "nnz": int(self.values.size)}

    @classmethod
    def _from_arrays(cls: type[S], arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> S:
        first, second = cls.index_keys
        check_keys(arrays, meta, {"values", first, second}, {"shape", "nnz"})
        shape = meta_shape(meta)
        nnz = meta_int(meta, "nnz", 0, shape[0] * shape[1])
        values = float_array(arrays, "values", (nnz,))
        if cls.axis is None:
            rows = uint_array(arrays, first, nnz, below=shape[0])
            cols = uint_array(arrays, second, nnz, below=shape[1])
            if np.any(np.diff(rows * shape[1] + cols) <= 0):
                raise InputError("entries are not in strictly increasing row-major order")
        else:
            idx = uint_array(arrays, first, nnz, below=shape[1 - cls.axis])
            ptr = uint_array(arrays, second, shape[cls.axis] + 1)
            check_ptr(ptr, nnz, second)
            check_sorted_segments(idx, ptr, first)
        return cls(shape, values, arrays[first], arrays[second])


class CSR(SparseFormat):
    """Compressed sparse rows."""

    name = "csr"
    axis = 0
    index_keys = ("col_idx", "row_ptr")
    col_idx: np.ndarray
    row_ptr: np.ndarray


class CSC(SparseFormat):
    """Compressed sparse columns."""

    name = "csc"
    axis = 1
    index_keys = ("row_idx", "col_ptr")
    row_idx: np.ndarray
    col_ptr: np.ndarray


class COO(SparseFormat):
    """Coordinate list."""

    name = "coo"
    axis = None
    index_keys = ("row_idx", "col_idx")
    row_idx: np.ndarray
    col_idx: np.ndarray
