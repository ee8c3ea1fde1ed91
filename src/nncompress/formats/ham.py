"""``ham``: every entry (zeros included) Huffman-coded over the codebook, rows bit-packed back to back.

Arrays:

- ``codebook`` float32 (k,): np.unique of the matrix, strictly increasing
- ``code_len`` uint8 (k,): canonical Huffman code length of each codebook entry (`_huffman`: codes
  are rebuilt from these lengths alone; at most 24 bits; a one-entry codebook has the 1-bit code ``0``)
- ``stream``   uint32: the codes of all entries, row-major, MSB-first (bit order of `_bits`, one
  zero guard word at the end)
- ``row_bits`` uint8/16/32/64 (out + 1,): row r's codes are stream bits ``row_bits[r]:row_bits[r+1]``,
  so any row can be decoded without the rows before it; ``row_bits[out]`` = nbits

Meta: ``shape``, ``k``, ``nbits``. Every array is counted in ``nbytes``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from nncompress.errors import InputError
from nncompress.formats import _bits
from nncompress.formats._huffman import MAX_CODE_LEN, CanonicalCode
from nncompress.formats.base import (
    MAX_CODEBOOK,
    Format,
    Rows,
    as_input,
    as_matrix,
    as_output,
    as_uint,
    check_keys,
    check_ptr,
    check_sorted_codebook,
    codebook_of,
    float_array,
    meta_int,
    meta_shape,
    row_blocks,
    take_params,
    uint_array,
)

_BLOCK = 1 << 22  # entries decoded at once


def code_len_array(arrays: Mapping[str, Any], key: str, k: int) -> np.ndarray:
    """A uint8 code-length table of k entries."""
    a = arrays[key]
    if not isinstance(a, np.ndarray) or a.dtype != np.uint8 or a.shape != (k,):
        got = f"{a.dtype} {a.shape}" if isinstance(a, np.ndarray) else type(a).__name__
        raise InputError(f"array {key} must be uint8 of shape ({k},), got {got}")
    return a


class HuffmanMatrix(Format):
    """Canonical Huffman code of every entry, with per-row bit offsets."""

    name = "ham"

    def __init__(
        self,
        shape: tuple[int, int],
        codebook: np.ndarray,
        code_len: np.ndarray,
        stream: np.ndarray,
        row_bits: np.ndarray,
        code: CanonicalCode | None = None,
    ) -> None:
        super().__init__(shape)
        self.codebook, self.code_len, self.stream, self.row_bits = codebook, code_len, stream, row_bits
        self.code = code or CanonicalCode(code_len, "array code_len")

    @classmethod
    def encode(cls, w: np.ndarray, **params: Any) -> HuffmanMatrix:
        take_params(cls.name, params)
        a = as_matrix(w, cls.name, finite=True)
        cb = codebook_of(a, cls.name)
        if cb.size == 0:
            cb = np.zeros(1, dtype=np.float32)
        idx = np.searchsorted(cb, a.ravel())
        code = CanonicalCode.from_counts(np.bincount(idx, minlength=cb.size))
        codes, lens = code.encode(idx)
        stream, nbits = _bits.pack(codes, lens)
        row_bits = np.concatenate([[0], np.cumsum(lens.reshape(a.shape).sum(axis=1))])
        return cls(a.shape, cb, code.lengths.astype(np.uint8), stream, as_uint(row_bits, nbits), code)

    @classmethod
    def encode_rows(cls, shape: tuple[int, int], rows: Rows, **params: Any) -> HuffmanMatrix:
        """`encode` from row blocks, each read twice (to count the values, then to code them).

        The same arrays as `encode` of the whole matrix, with temporaries of one block: the
        per-entry index, code and length arrays of a 25M-entry int8 embedding would take 600 MB.
        """
        take_params(cls.name, params)
        n_rows, n_cols = int(shape[0]), int(shape[1])
        block, blocks = row_blocks(shape, rows, cls.name, _BLOCK)
        cb = np.zeros(0, np.float32)
        counts = np.zeros(0, np.int64)
        for r0, r1 in blocks:
            u, c = np.unique(block(r0, r1), return_counts=True)
            cb, inv = np.unique(np.concatenate([cb, u.astype(np.float32)]), return_inverse=True)
            if cb.size > MAX_CODEBOOK:
                codebook_of(cb, cls.name)  # raises its one-line UsageError
            counts = np.bincount(inv, weights=np.concatenate([counts, c]), minlength=cb.size).astype(np.int64)
        if cb.size == 0:  # an empty matrix: `encode`'s one-entry codebook
            cb, counts = np.zeros(1, dtype=np.float32), np.zeros(1, np.int64)
        code = CanonicalCode.from_counts(counts)
        parts: list[tuple[np.ndarray, int]] = []
        row_bits = np.zeros(n_rows + 1, dtype=np.int64)
        for r0, r1 in blocks:
            b = block(r0, r1)
            codes, lens = code.encode(np.searchsorted(cb, b.ravel()))
            parts.append(_bits.pack(codes, lens))
            row_bits[r0 + 1 : r1 + 1] = row_bits[r0] + np.cumsum(lens.reshape(b.shape).sum(axis=1))
        stream, nbits = _bits.concat(parts) if len(parts) != 1 else parts[0]
        if not parts:
            stream, nbits = _bits.pack(np.zeros(0, np.uint64), np.zeros(0, np.int64))
        return cls(
            (n_rows, n_cols), cb, code.lengths.astype(np.uint8), stream, as_uint(row_bits, nbits), code
        )

    def _rows(self, r0: int, r1: int) -> np.ndarray:
        """Codebook indices of rows r0..r1-1, decoding all of them in lockstep from their own offsets."""
        pos = self.row_bits[r0:r1].astype(np.int64)
        out = np.empty((r1 - r0, self.shape[1]), dtype=np.int64)
        for j in range(self.shape[1]):
            out[:, j], length = self.code.decode(self.stream, pos)
            pos += length
        bad = np.flatnonzero(pos != self.row_bits[r0 + 1 : r1 + 1])
        if bad.size:
            raise InputError(f"row {r0 + int(bad[0])} does not end at its recorded bit offset")
        return out

    def _blocks(self) -> list[tuple[int, int]]:
        step = max(1, _BLOCK // max(self.shape[1], 1))
        return [(r, min(r + step, self.shape[0])) for r in range(0, self.shape[0], step)]

    def to_dense(self) -> np.ndarray:
        out = np.empty(self.shape, dtype=np.float32)
        for r0, r1 in self._blocks():
            out[r0:r1] = self.codebook[self._rows(r0, r1)]
        return out

    def dot(self, x: np.ndarray) -> np.ndarray:
        xb, single = as_input(x, self)
        y = np.zeros((xb.shape[0], self.shape[0]))
        cb = self.codebook.astype(np.float64)
        for r0, r1 in self._blocks():
            y[:, r0:r1] = xb @ cb[self._rows(r0, r1)].T
        return as_output(y, single)

    def arrays(self) -> dict[str, np.ndarray]:
        return {
            "codebook": self.codebook,
            "code_len": self.code_len,
            "stream": self.stream,
            "row_bits": self.row_bits,
        }

    def meta(self) -> dict[str, Any]:
        return {"shape": list(self.shape), "k": int(self.codebook.size), "nbits": int(self.row_bits[-1])}

    @classmethod
    def _from_arrays(cls, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> HuffmanMatrix:
        check_keys(arrays, meta, {"codebook", "code_len", "stream", "row_bits"}, {"shape", "k", "nbits"})
        shape = meta_shape(meta)
        k = meta_int(meta, "k", 1, MAX_CODEBOOK)
        nbits = meta_int(meta, "nbits")
        cb = float_array(arrays, "codebook", (k,))
        check_sorted_codebook(cb, "codebook")
        code = CanonicalCode(code_len_array(arrays, "code_len", k), "array code_len")
        stream = _bits.check_stream(arrays["stream"], nbits, "array stream")
        row_bits = uint_array(arrays, "row_bits", shape[0] + 1)
        check_ptr(row_bits, nbits, "row_bits")
        per_row = np.diff(row_bits)
        if np.any(per_row < shape[1]) or np.any(per_row > MAX_CODE_LEN * shape[1]):
            raise InputError(
                f"array row_bits gives a row fewer than {shape[1]} or more than {MAX_CODE_LEN * shape[1]} bits"
            )
        fmt = cls(shape, cb, arrays["code_len"], stream, arrays["row_bits"], code)
        for r0, r1 in fmt._blocks():
            fmt._rows(r0, r1)  # every code decodes and every row ends where recorded
        return fmt
