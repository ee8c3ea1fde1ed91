"""Shared helpers of the structured formats (lowrank, sss, dct, psm) and of the passes that fit them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from nncompress.formats.base import (
    as_uint,
    check_ptr,
    segment_ids,
    segment_sum,
    uint_array,
)
from nncompress.formats.sparse import check_sorted_segments


def sparse_pattern(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row-major (rows, cols, row_ptr) of the True cells of a 2-D mask; row_ptr is int64."""
    rows, cols = np.nonzero(mask)
    ptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=mask.shape[0]))]).astype(np.int64)
    return rows, cols, ptr


def pack_csr(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(rows, cols, col_idx, row_ptr) of a mask, the index arrays in their narrowest dtypes."""
    rows, cols, ptr = sparse_pattern(mask)
    return rows, cols, as_uint(cols, max(mask.shape[1] - 1, 0)), as_uint(ptr, rows.size)


def load_csr(
    arrays: Mapping[str, Any], suffix: str, shape: tuple[int, int], nnz: int
) -> tuple[np.ndarray, np.ndarray]:
    """Validated (col_idx, row_ptr) as int64 of a CSR pattern stored under ``col_idx``/``row_ptr`` + suffix."""
    cols = uint_array(arrays, "col_idx" + suffix, nnz, below=shape[1])
    ptr = uint_array(arrays, "row_ptr" + suffix, shape[0] + 1)
    check_ptr(ptr, nnz, "row_ptr" + suffix)
    check_sorted_segments(cols, ptr, "col_idx" + suffix)
    return cols, ptr


def csr_matmul_t(x: np.ndarray, values: np.ndarray, cols: np.ndarray, ptr: np.ndarray) -> np.ndarray:
    """``x @ S.T`` for a CSR matrix S (values, cols, ptr) and a batch x (B, in); keeps x's dtype kind."""
    out = np.zeros((x.shape[0], ptr.size - 1), dtype=np.result_type(x, values))
    step = max(1, (1 << 24) // max(values.size, 1))
    for s in range(0, x.shape[0], step):
        out[s : s + step] = segment_sum(x[s : s + step][:, cols] * values, ptr)
    return out


def csr_dense(shape: tuple[int, int], values: np.ndarray, cols: np.ndarray, ptr: np.ndarray) -> np.ndarray:
    """The dense matrix of a CSR pattern (dtype of ``values``)."""
    out = np.zeros(shape, dtype=values.dtype)
    out[segment_ids(ptr), cols] = values
    return out
