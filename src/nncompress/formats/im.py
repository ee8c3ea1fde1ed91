"""``im`` (index map): a float32 codebook and one fixed-width index per entry, bit-packed.

Arrays:

- ``codebook`` float32 (k,): np.unique of the matrix (zero is just another entry), strictly increasing
- ``stream``   uint32: entry (r, c) is the ``bits``-bit index at stream bit ``(r * in + c) * bits``,
  MSB-first, in the bit order of `nncompress.formats._bits` (one zero guard word at the end)

Meta: ``shape``, ``k``, ``bits`` = ceil(log2 k) (0 when k == 1: the stream is just the guard word).
Row r starts at bit ``r * in * bits``; no offsets are stored.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from nncompress.errors import InputError
from nncompress.formats import _bits
from nncompress.formats.base import (
    MAX_CODEBOOK,
    Format,
    as_input,
    as_matrix,
    as_output,
    check_keys,
    check_sorted_codebook,
    codebook_of,
    float_array,
    meta_int,
    meta_shape,
    take_params,
)

_ROWS_PER_CHUNK = 1 << 20  # entries decoded at once by to_dense / dot


def index_bits(k: int) -> int:
    """ceil(log2 k): bits of one index into a k-entry codebook (0 for k <= 1)."""
    return max(int(k) - 1, 0).bit_length()


class IndexMap(Format):
    """Codebook + fixed-width packed indices."""

    name = "im"

    def __init__(self, shape: tuple[int, int], codebook: np.ndarray, stream: np.ndarray) -> None:
        super().__init__(shape)
        self.codebook, self.stream = codebook, stream
        self.bits = index_bits(codebook.size)

    @classmethod
    def encode(cls, w: np.ndarray, **params: Any) -> IndexMap:
        take_params(cls.name, params)
        a = as_matrix(w, cls.name, finite=True)
        cb = codebook_of(a, cls.name)
        if cb.size == 0:
            cb = np.zeros(1, dtype=np.float32)  # an empty matrix still gets a one-entry codebook
        idx = np.searchsorted(cb, a.ravel())
        bits = index_bits(cb.size)
        stream, _ = _bits.pack(idx, np.full(idx.size, bits))
        return cls(a.shape, cb, stream)

    def _indices(self, start: int, stop: int) -> np.ndarray:
        """Codebook indices of the entries start..stop-1 (row-major)."""
        if self.bits == 0:
            return np.zeros(stop - start, dtype=np.int64)
        pos = np.arange(start, stop, dtype=np.int64) * self.bits
        return _bits.peek(self.stream, pos, self.bits).astype(np.int64)

    def _row_blocks(self) -> list[tuple[int, int]]:
        n_out, n_in = self.shape
        step = max(1, _ROWS_PER_CHUNK // max(n_in, 1))
        return [(r, min(r + step, n_out)) for r in range(0, n_out, step)]

    def to_dense(self) -> np.ndarray:
        return self.codebook[self._indices(0, self.size)].reshape(self.shape)

    def dot(self, x: np.ndarray) -> np.ndarray:
        xb, single = as_input(x, self)
        n_in = self.shape[1]
        y = np.zeros((xb.shape[0], self.shape[0]))
        cb = self.codebook.astype(np.float64)
        for r0, r1 in self._row_blocks():
            w_rows = cb[self._indices(r0 * n_in, r1 * n_in)].reshape(r1 - r0, n_in)
            y[:, r0:r1] = xb @ w_rows.T
        return as_output(y, single)

    def arrays(self) -> dict[str, np.ndarray]:
        return {"codebook": self.codebook, "stream": self.stream}

    def meta(self) -> dict[str, Any]:
        return {"shape": list(self.shape), "k": int(self.codebook.size), "bits": self.bits}

    @classmethod
    def _from_arrays(cls, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> IndexMap:
        check_keys(arrays, meta, {"codebook", "stream"}, {"shape", "k", "bits"})
        shape = meta_shape(meta)
        k = meta_int(meta, "k", 1, MAX_CODEBOOK)
        bits = meta_int(meta, "bits", 0, 16)
        if bits != index_bits(k):
            raise InputError(f"meta bits={bits} does not match k={k} (expected {index_bits(k)})")
        cb = float_array(arrays, "codebook", (k,))
        check_sorted_codebook(cb, "codebook")
        stream = _bits.check_stream(arrays["stream"], shape[0] * shape[1] * bits, "array stream")
        fmt = cls(shape, cb, stream)
        if k < 1 << bits:  # with k a power of two every index is valid
            for r0, r1 in fmt._row_blocks():
                idx = fmt._indices(r0 * shape[1], r1 * shape[1])
                if idx.size and int(idx.max()) >= k:
                    raise InputError(f"array stream holds index {int(idx.max())} into a codebook of {k}")
        return fmt
