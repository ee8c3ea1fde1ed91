"""``sham``: sparse Huffman matrix, the nonzero values Huffman-coded and their positions entropy-coded.

Each stored entry is written as [column gap][value code] into one stream, rows back to back. The
column gap of a row's entry is ``col - previous_col - 1`` (``col`` for the row's first entry). Gaps
use whichever of two coders makes the smaller payload for this matrix (meta ``gap_coder``):

- ``"huffman"``: a canonical Huffman code over the gap symbols 0..E-1 plus an escape symbol E
  (meta ``gap_escape`` = E); a gap >= E is the escape code followed by ``gap - E`` in
  ``escape_bits`` raw bits (MSB-first; 0 bits when every escaped gap equals E);
- ``"expgolomb"``: exponential-Golomb code of order ``gap_order`` = m: with ``v = gap + 2**m``,
  ``bit_length(v) - m - 1`` zero bits then ``v`` in ``bit_length(v)`` bits (m = 0 is Elias gamma of gap + 1).

Arrays:

- ``codebook``  float32 (k,): np.unique of the nonzero values, strictly increasing (k = 0 for a zero matrix)
- ``value_len`` uint8 (k,): canonical Huffman code lengths of the values (`_huffman`)
- ``gap_len``   uint8 (E + 1,): canonical Huffman code lengths of the gap symbols (``"huffman"`` only)
- ``stream``    uint32: the entries, row-major, MSB-first (bit order of `_bits`, one zero guard word)
- ``row_bits``  uint8/16/32/64 (out + 1,): row r is stream bits ``row_bits[r]:row_bits[r+1]``;
  a row's entries are read until its end bit (every entry takes at least two bits), so no per-row
  count is stored

Meta: ``shape``, ``k``, ``nnz``, ``nbits``, ``gap_coder`` and its parameters
(``gap_escape``, ``escape_bits`` or ``gap_order``). Every array is counted in ``nbytes``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from nncompress import options as opts
from nncompress.errors import InputError, UsageError
from nncompress.formats import _bits
from nncompress.formats._huffman import CanonicalCode, code_lengths
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
from nncompress.formats.ham import code_len_array

GAP_CODERS = ("huffman", "expgolomb")
MAX_ESCAPE = 4096  # largest gap alphabet tried: its table costs a byte per symbol
MAX_ORDER = 30  # keeps v = gap + 2**m within 32 bits for any gap < 2**31


def _bit_length(v: np.ndarray) -> np.ndarray:
    """bit_length of each non-negative integer below 2**53."""
    return np.where(v > 0, np.frexp(v.astype(np.float64))[1], 0).astype(np.int64)


def _huffman_gap_cost(hist: np.ndarray, escape: int) -> tuple[int, np.ndarray, int]:
    """(payload bits incl. table, gap code lengths, escape bits) of the escape-E Huffman gap coder."""
    counts = np.append(hist[:escape], hist[escape:].sum())
    lengths = code_lengths(counts)
    over = np.flatnonzero(hist[escape:])
    esc_bits = int(over[-1]).bit_length() if over.size else 0
    bits = int(np.dot(counts, lengths)) + int(counts[-1]) * esc_bits + 8 * (escape + 1)
    return bits, lengths, esc_bits


def _expgolomb_cost(hist: np.ndarray, order: int) -> int:
    """Payload bits of the order-m exp-Golomb gap coder."""
    gaps = np.flatnonzero(hist)
    return int(np.dot(hist[gaps], 2 * _bit_length(gaps + (1 << order)) - order - 1))


def _choose_gap_coder(hist: np.ndarray, coder: str) -> dict[str, Any]:
    """The smallest gap coder (and its parameters) for this gap histogram."""
    best: dict[str, Any] = {"bits": None}
    if coder in ("auto", "expgolomb"):
        for m in range(min(max(hist.size - 1, 1).bit_length(), MAX_ORDER) + 1):
            bits = _expgolomb_cost(hist, m)
            if best["bits"] is None or bits < best["bits"]:
                best = {"bits": bits, "gap_coder": "expgolomb", "gap_order": m}
    if coder in ("auto", "huffman"):
        escapes = [1 << i for i in range(13) if 1 << i < hist.size]
        if hist.size <= MAX_ESCAPE:
            escapes.append(hist.size)  # large enough for every gap: no escape
        for e in escapes:
            bits, lengths, esc_bits = _huffman_gap_cost(hist, e)
            if best["bits"] is None or bits < best["bits"]:
                best = {
                    "bits": bits,
                    "gap_coder": "huffman",
                    "gap_escape": e,
                    "escape_bits": esc_bits,
                    "gap_len": lengths,
                }
    return best


_BLOCK = 1 << 20  # matrix entries per encoding block: ~50 MB of temporaries at 20 % density


def _block_entries(sub: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rows within the block, columns, values) of the nonzeros of a block of rows, row-major."""
    rows, cols = np.nonzero(sub)
    return rows, cols, sub[rows, cols]


def _gaps(rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Zeros skipped before each entry since the previous entry of its row (or the row start)."""
    first = np.ones(rows.size, dtype=bool)
    first[1:] = rows[1:] != rows[:-1]
    prev = np.where(first, -1, np.roll(cols, 1))
    return cols - prev - 1


def _items(
    gaps: np.ndarray,
    vidx: np.ndarray,
    gap: dict[str, Any],
    gap_code: CanonicalCode | None,
    value_code: CanonicalCode,
) -> np.ndarray:
    """Per entry 3 items of (code, length): gap code, escape or exp-Golomb suffix, value code."""
    items = np.zeros((gaps.size, 3, 2), dtype=np.uint64)
    if gap_code is not None:
        e = gap["gap_escape"]
        items[:, 0, 0], items[:, 0, 1] = gap_code.encode(np.minimum(gaps, e))
        escaped = gaps >= e
        items[escaped, 1, 0] = gaps[escaped] - e
        items[escaped, 1, 1] = gap["escape_bits"]
    else:
        v = gaps + (1 << gap["gap_order"])
        nb = _bit_length(v)
        items[:, 0, 1] = nb - gap["gap_order"] - 1  # the zero prefix
        items[:, 1, 0], items[:, 1, 1] = v, nb
    items[:, 2, 0], items[:, 2, 1] = value_code.encode(vidx)
    return items


class SparseHuffmanMatrix(Format):
    """Huffman-coded nonzero values with entropy-coded column gaps and per-row bit offsets."""

    name = "sham"

    def __init__(
        self,
        shape: tuple[int, int],
        codebook: np.ndarray,
        value_len: np.ndarray,
        stream: np.ndarray,
        row_bits: np.ndarray,
        nnz: int,
        gap: dict[str, Any],
        codes: tuple[CanonicalCode, CanonicalCode | None] | None = None,
    ) -> None:
        super().__init__(shape)
        self.codebook, self.value_len, self.stream, self.row_bits = codebook, value_len, stream, row_bits
        self.nnz = nnz
        self.gap = gap  # gap_coder and its parameters; "gap_len" for the huffman coder
        if codes is None:
            gap_code = (
                CanonicalCode(gap["gap_len"], "array gap_len") if gap["gap_coder"] == "huffman" else None
            )
            codes = (CanonicalCode(value_len, "array value_len"), gap_code)
        self.value_code, self.gap_code = codes

    @dataclass(frozen=True)
    class Options(opts.Options):
        gap_coder: Literal["auto", "huffman", "expgolomb"] = opts.option(
            "auto", doc="how column gaps are coded: auto takes the smaller payload"
        )

    @classmethod
    def encode(cls, w: np.ndarray, **params: Any) -> SparseHuffmanMatrix:
        """Encode; ``gap_coder`` is "auto" (the smaller), "huffman" or "expgolomb"."""
        a = as_matrix(w, cls.name, finite=True)
        return cls.encode_rows(a.shape, lambda r0, r1: a[r0:r1], **params)

    @classmethod
    def encode_rows(cls, shape: tuple[int, int], rows: Rows, **params: Any) -> SparseHuffmanMatrix:
        """`encode` from row blocks, each read twice (to count values and gaps, then to code)."""
        p = take_params(cls.name, params, gap_coder="auto")
        if p["gap_coder"] not in ("auto", *GAP_CODERS):
            raise UsageError(f"sham gap_coder must be auto, huffman or expgolomb, got {p['gap_coder']!r}")
        n_rows, n_cols = int(shape[0]), int(shape[1])
        # Row blocks of about _BLOCK entries: a pass to count values and gaps (the codes need all of
        # them), a pass to code; the per-entry temporaries of a 25088x4096 layer would take 2 GB.
        block, blocks = row_blocks(shape, rows, cls.name, _BLOCK)
        cb = np.zeros(0, np.float32)
        counts = np.zeros(0, np.int64)
        gap_hist = np.zeros(0, np.int64)
        nnz = 0
        for r0, r1 in blocks:
            rr, cols, vals = _block_entries(block(r0, r1))
            nnz += vals.size
            u, c = np.unique(vals, return_counts=True)
            cb, inv = np.unique(np.concatenate([cb, u.astype(np.float32)]), return_inverse=True)
            if cb.size > MAX_CODEBOOK:
                codebook_of(cb, cls.name)  # raises its one-line UsageError
            counts = np.bincount(inv, weights=np.concatenate([counts, c]), minlength=cb.size).astype(np.int64)
            g = np.bincount(_gaps(rr, cols)) if vals.size else np.zeros(0, np.int64)
            if g.size > gap_hist.size:
                gap_hist = np.concatenate([gap_hist, np.zeros(g.size - gap_hist.size, np.int64)])
            gap_hist[: g.size] += g
        value_code = CanonicalCode.from_counts(counts)
        if nnz:
            gap = _choose_gap_coder(gap_hist, p["gap_coder"])
        else:
            gap = {"gap_coder": "expgolomb", "gap_order": 0}
        gap.pop("bits", None)
        gap_code = CanonicalCode(gap["gap_len"], "gap_len") if gap["gap_coder"] == "huffman" else None
        parts: list[tuple[np.ndarray, int]] = []
        row_bits = np.zeros(n_rows + 1, dtype=np.int64)
        for r0, r1 in blocks:
            rr, cols, vals = _block_entries(block(r0, r1))
            items = _items(_gaps(rr, cols), np.searchsorted(cb, vals), gap, gap_code, value_code)
            parts.append(_bits.pack(items[:, :, 0], items[:, :, 1]))
            entry_bits = items[:, :, 1].sum(axis=1).astype(np.int64)
            row_end = np.cumsum(np.bincount(rr, weights=entry_bits, minlength=r1 - r0)).astype(np.int64)
            row_bits[r0 + 1 : r1 + 1] = row_bits[r0] + row_end
        stream, nbits = _bits.concat(parts) if len(parts) != 1 else parts[0]
        return cls(
            (n_rows, n_cols),
            cb,
            value_code.lengths.astype(np.uint8),
            stream,
            as_uint(row_bits, nbits),
            nnz,
            gap,
            (value_code, gap_code),
        )

    def _decode_gaps(self, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(gaps, bit positions after them) for gap codes starting at ``p``."""
        if self.gap_code is not None:
            g, length = self.gap_code.decode(self.stream, p)
            p = p + length
            esc = np.flatnonzero(g == self.gap["gap_escape"])
            nb = self.gap["escape_bits"]
            if esc.size and nb:
                g[esc] += _bits.peek(self.stream, p[esc], nb).astype(np.int64)
                p[esc] += nb
            return g, p
        m = self.gap["gap_order"]
        zeros = 32 - _bit_length(_bits.peek(self.stream, p, 32))
        if np.any(zeros + m + 1 > 32):
            raise InputError("array stream holds an exp-Golomb code longer than 32 bits")
        nb = zeros + m + 1
        v = _bits.peek(self.stream, p + zeros, nb).astype(np.int64)
        return v - (1 << m), p + zeros + nb

    def _entries(self) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Yield (rows, cols, value indices): the next entry of every unfinished row, all rows in lockstep."""
        pos = self.row_bits[:-1].astype(np.int64)
        end = self.row_bits[1:].astype(np.int64)
        col = np.full(self.shape[0], -1, dtype=np.int64)
        active = np.flatnonzero(pos < end)
        while active.size:
            gaps, p = self._decode_gaps(pos[active])
            c = col[active] + 1 + gaps
            if np.any(c >= self.shape[1]):
                raise InputError(f"array stream gives a column past {self.shape[1] - 1}")
            v, length = self.value_code.decode(self.stream, p)
            p = p + length
            if np.any(p > end[active]):
                raise InputError("array stream: a row runs past its recorded end bit")
            yield active, c, v
            col[active], pos[active] = c, p
            active = active[p < end[active]]

    def to_dense(self) -> np.ndarray:
        out = np.zeros(self.shape, dtype=np.float32)
        for rows, cols, v in self._entries():
            out[rows, cols] = self.codebook[v]
        return out

    def dot(self, x: np.ndarray) -> np.ndarray:
        xb, single = as_input(x, self)
        y = np.zeros((xb.shape[0], self.shape[0]))
        cb = self.codebook.astype(np.float64)
        for rows, cols, v in self._entries():  # rows are distinct within a step
            y[:, rows] += xb[:, cols] * cb[v]
        return as_output(y, single)

    def arrays(self) -> dict[str, np.ndarray]:
        out = {"codebook": self.codebook, "value_len": self.value_len}
        if self.gap["gap_coder"] == "huffman":
            out["gap_len"] = self.gap["gap_len"]
        return {**out, "stream": self.stream, "row_bits": self.row_bits}

    def meta(self) -> dict[str, Any]:
        m: dict[str, Any] = {
            "shape": list(self.shape),
            "k": int(self.codebook.size),
            "nnz": self.nnz,
            "nbits": int(self.row_bits[-1]),
        }
        return {**m, **{key: val for key, val in self.gap.items() if key != "gap_len"}}

    @classmethod
    def _from_arrays(cls, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> SparseHuffmanMatrix:
        coder = meta.get("gap_coder")
        if coder not in GAP_CODERS:
            raise InputError(f"meta gap_coder={coder!r} is not one of {GAP_CODERS}")
        base_arrays, base_meta = (
            {"codebook", "value_len", "stream", "row_bits"},
            {"shape", "k", "nnz", "nbits", "gap_coder"},
        )
        if coder == "huffman":
            check_keys(arrays, meta, base_arrays | {"gap_len"}, base_meta | {"gap_escape", "escape_bits"})
            e = meta_int(meta, "gap_escape", 1, MAX_ESCAPE)
            gap = {
                "gap_coder": coder,
                "gap_escape": e,
                "escape_bits": meta_int(meta, "escape_bits", 0, 31),
                "gap_len": code_len_array(arrays, "gap_len", e + 1),
            }
        else:
            check_keys(arrays, meta, base_arrays, base_meta | {"gap_order"})
            gap = {"gap_coder": coder, "gap_order": meta_int(meta, "gap_order", 0, MAX_ORDER)}
        shape = meta_shape(meta)
        k = meta_int(meta, "k", 0, MAX_CODEBOOK)
        nnz = meta_int(meta, "nnz", 0, shape[0] * shape[1])
        nbits = meta_int(meta, "nbits", 2 * nnz)  # every entry takes at least two bits
        cb = float_array(arrays, "codebook", (k,))
        check_sorted_codebook(cb, "codebook")
        value_len = code_len_array(arrays, "value_len", k)
        stream = _bits.check_stream(arrays["stream"], nbits, "array stream")
        row_bits = uint_array(arrays, "row_bits", shape[0] + 1)
        check_ptr(row_bits, nbits, "row_bits")
        fmt = cls(shape, cb, value_len, stream, arrays["row_bits"], nnz, gap)
        if nnz and fmt.value_code.n_present == 0:
            raise InputError(f"{nnz} entries but an empty value code table")
        n = sum(rows.size for rows, _, _ in fmt._entries())
        if n != nnz:
            raise InputError(f"the stream holds {n} entries, meta says nnz={nnz}")
        return fmt
