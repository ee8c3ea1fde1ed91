"""``cser``: Compressed Shared Elements Row (Wiedemann, Müller & Samek 2019, "Compact and
computationally efficient representation of deep neural networks", IEEE TNNLS).

Each row lists its entries grouped by shared value: one group per distinct value in the row, so a
dot product sums the inputs of a group first and multiplies once per group. As in the paper, the
most frequent value Ω[0] (0 for a pruned matrix) is implicit: it fills every cell not listed.

Arrays (paper names in brackets; integer arrays in the narrowest unsigned dtype that fits):

- ``omega``   float32 (k,) [Ω]: ``omega[0]`` the implicit value, ``omega[1:]`` the other values, increasing
- ``col_idx`` (nnz,) [colI]: columns of the listed entries, group after group, increasing inside a group
- ``w_idx``   (G,) [wI]: value index (1..k-1) of each group, strictly increasing inside a row
- ``w_ptr``   (G + 1,) [wPtr]: group g is ``col_idx[w_ptr[g]:w_ptr[g+1]]`` (never empty)
- ``row_ptr`` (out + 1,) [rowPtr]: row r owns groups ``row_ptr[r]:row_ptr[r+1]``

Meta: ``shape``, ``k``, ``nnz`` (listed entries), ``groups`` (G).
Reference product, with ``s_g = sum(x[col_idx[w_ptr[g]:w_ptr[g+1]]])`` over the groups g of row r:
``y[r] = omega[0] * sum(x) + sum_g (omega[w_idx[g]] - omega[0]) * s_g``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from nncompress.errors import InputError
from nncompress.formats.base import (
    MAX_CODEBOOK,
    Format,
    as_input,
    as_matrix,
    as_output,
    as_uint,
    batch_chunks,
    check_keys,
    check_ptr,
    check_sorted_codebook,
    check_unique_cells,
    codebook_of,
    float_array,
    meta_int,
    meta_shape,
    segment_ids,
    segment_lengths,
    segment_sum,
    take_params,
    uint_array,
)
from nncompress.formats.sparse import check_sorted_segments


class CSER(Format):
    """Compressed shared elements row."""

    name = "cser"

    def __init__(
        self,
        shape: tuple[int, int],
        omega: np.ndarray,
        col_idx: np.ndarray,
        w_idx: np.ndarray,
        w_ptr: np.ndarray,
        row_ptr: np.ndarray,
    ) -> None:
        super().__init__(shape)
        self.omega, self.col_idx, self.w_idx, self.w_ptr, self.row_ptr = omega, col_idx, w_idx, w_ptr, row_ptr

    @classmethod
    def encode(cls, w: np.ndarray, **params: Any) -> CSER:
        take_params(cls.name, params)
        a = as_matrix(w, cls.name, finite=True)
        values = codebook_of(a, cls.name)
        if values.size == 0:
            values = np.zeros(1, dtype=np.float32)
        counts = np.bincount(np.searchsorted(values, a.ravel()), minlength=values.size)
        # The implicit value: the most frequent one, 0 on a tie (pruned matrices keep their zeros implicit).
        zero = np.searchsorted(values, 0.0)
        mode = int(np.argmax(counts))
        if zero < values.size and values[zero] == 0 and counts[zero] == counts[mode]:
            mode = int(zero)
        omega = np.concatenate([values[mode : mode + 1], np.delete(values, mode)])
        rows, cols = np.nonzero(a != omega[0])
        vidx = np.searchsorted(omega[1:], a[rows, cols]) + 1
        order = np.lexsort((cols, vidx, rows))  # by row, then value, then column
        rows, cols, vidx = rows[order], cols[order], vidx[order]
        new_group = np.ones(rows.size, dtype=bool)
        new_group[1:] = (rows[1:] != rows[:-1]) | (vidx[1:] != vidx[:-1])
        starts = np.flatnonzero(new_group)
        group_rows = rows[starts]
        w_ptr = np.append(starts, rows.size)
        row_ptr = np.concatenate([[0], np.cumsum(np.bincount(group_rows, minlength=a.shape[0]))])
        return cls(
            a.shape,
            omega,
            as_uint(cols, a.shape[1] - 1),
            as_uint(vidx[starts], omega.size - 1),
            as_uint(w_ptr, rows.size),
            as_uint(row_ptr, starts.size),
        )

    def _group_rows(self) -> np.ndarray:
        return segment_ids(self.row_ptr)

    def to_dense(self) -> np.ndarray:
        out = np.full(self.shape, self.omega[0], dtype=np.float32)
        sizes = segment_lengths(self.w_ptr)
        out[np.repeat(self._group_rows(), sizes), self.col_idx] = np.repeat(self.omega[self.w_idx], sizes)
        return out

    def dot(self, x: np.ndarray) -> np.ndarray:
        xb, single = as_input(x, self)
        omega = self.omega.astype(np.float64)
        y = np.zeros((xb.shape[0], self.shape[0]))
        for sl in batch_chunks(xb, self.col_idx.size):
            group_sums = segment_sum(xb[sl][:, self.col_idx], self.w_ptr)  # one sum per group ...
            # ... one product per group; a listed cell replaces the implicit omega[0] that sum(x) counted
            y[sl] = segment_sum(group_sums * (omega[self.w_idx] - omega[0]), self.row_ptr)
        return as_output(y + omega[0] * xb.sum(axis=1, keepdims=True), single)

    def arrays(self) -> dict[str, np.ndarray]:
        return {
            "omega": self.omega,
            "col_idx": self.col_idx,
            "w_idx": self.w_idx,
            "w_ptr": self.w_ptr,
            "row_ptr": self.row_ptr,
        }

    def meta(self) -> dict[str, Any]:
        return {
            "shape": list(self.shape),
            "k": int(self.omega.size),
            "nnz": int(self.col_idx.size),
            "groups": int(self.w_idx.size),
        }

    @classmethod
    def _from_arrays(cls, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> CSER:
        check_keys(
            arrays, meta, {"omega", "col_idx", "w_idx", "w_ptr", "row_ptr"}, {"shape", "k", "nnz", "groups"}
        )
        shape = meta_shape(meta)
        k = meta_int(meta, "k", 1, MAX_CODEBOOK)
        nnz = meta_int(meta, "nnz", 0, shape[0] * shape[1])
        groups = meta_int(meta, "groups", 0, nnz)
        omega = float_array(arrays, "omega", (k,), finite=True)
        check_sorted_codebook(omega[1:], "omega[1:]")
        cols = uint_array(arrays, "col_idx", nnz, below=shape[1])
        widx = uint_array(arrays, "w_idx", groups, below=k)
        if widx.size and widx.min() < 1:
            raise InputError("array w_idx lists the implicit value omega[0]")
        w_ptr = uint_array(arrays, "w_ptr", groups + 1)
        check_ptr(w_ptr, nnz, "w_ptr", strict=True)
        row_ptr = uint_array(arrays, "row_ptr", shape[0] + 1)
        check_ptr(row_ptr, groups, "row_ptr")
        check_sorted_segments(widx, row_ptr, "w_idx")
        check_sorted_segments(cols, w_ptr, "col_idx")
        group_rows = np.repeat(np.arange(shape[0]), np.diff(row_ptr))
        check_unique_cells(np.repeat(group_rows, np.diff(w_ptr)), cols, shape[1], "col_idx")
        return cls(shape, omega, arrays["col_idx"], arrays["w_idx"], arrays["w_ptr"], arrays["row_ptr"])
