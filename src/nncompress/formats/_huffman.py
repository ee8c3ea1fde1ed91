"""Canonical, length-limited Huffman codes: construction, vectorised encoding and a reference decoder.

Code lengths come from package-merge (Larmore & Hirschberg 1990), optimal under a length limit
(`MAX_CODE_LEN` = 24 bits, so a decoder needs at most a 24-bit peek). A code is stored as one
``uint8`` length per symbol and nothing else; the decoder rebuilds the codes canonically:

- length 0 means the symbol does not occur; occurring symbols have lengths 1..24;
- symbols are ranked by (length, symbol index); codes of each length are consecutive integers,
  and ``first[1] = 0``, ``first[L + 1] = (first[L] + count[L]) << 1`` (as in DEFLATE, RFC 1951 3.2.2);
- a code with two or more symbols is complete (Kraft sum exactly 1); a one-symbol code has length
  1 (the bit ``0``; a ``1`` there is a corrupt stream), so every coded symbol takes at least a bit.

Codes are written MSB-first into the bit streams of `_bits`.
Decoding (`CanonicalCode.decode`) peeks ``max_len`` bits ``v`` at each position and finds the
smallest ``L`` with ``v < limit[L] = (first[L] + count[L]) << (max_len - L)``; the symbol is
``sorted_symbols[offset[L] + (v >> (max_len - L)) - first[L]]``.
"""

from __future__ import annotations

import numpy as np

from nncompress.errors import InputError
from nncompress.formats import _bits

MAX_CODE_LEN = 24


def code_lengths(counts: np.ndarray, limit: int = MAX_CODE_LEN) -> np.ndarray:
    """Optimal code lengths (uint8, 0 for absent symbols) for ``counts`` with no code longer than ``limit``."""
    counts = np.asarray(counts, dtype=np.int64)
    lengths = np.zeros(counts.size, dtype=np.uint8)
    present = np.flatnonzero(counts > 0)
    m = present.size
    if m == 0:
        return lengths
    if m == 1:
        lengths[present] = 1
        return lengths
    if m > 1 << limit:
        raise ValueError(f"{m} symbols cannot have codes of at most {limit} bits")
    order = present[np.argsort(counts[present], kind="stable")]
    leaves = counts[order]  # ascending
    keep = 2 * m - 2  # package-merge selects 2m - 2 items from the last list; lists never need more
    # Level lists from the deepest (length `limit`) up: each merges the leaves with the pairs of the
    # list below. Only prefixes are ever selected, so we record, per level, how many of its first
    # items are leaves (the lightest leaves, as both inputs are sorted and the merge is stable).
    is_pkg_levels = [np.zeros(min(m, keep), dtype=bool)]
    items = leaves[:keep]
    for _ in range(limit - 1):
        pairs = items[: items.size // 2 * 2].reshape(-1, 2).sum(axis=1)
        merged = np.concatenate([leaves, pairs])
        flags = np.concatenate([np.zeros(m, dtype=bool), np.ones(pairs.size, dtype=bool)])
        idx = np.argsort(merged, kind="stable")[:keep]
        items, is_pkg = merged[idx], flags[idx]
        is_pkg_levels.append(is_pkg)
    # Walk back down: a leaf's code length is the number of levels where it is selected.
    depth = np.zeros(m, dtype=np.int64)
    take = keep
    for is_pkg in reversed(is_pkg_levels):
        n_pkg = int(np.count_nonzero(is_pkg[:take]))
        depth[: take - n_pkg] += 1
        take = 2 * n_pkg
    lengths[order] = depth
    return lengths


def _reject(what: str, why: str) -> InputError:
    return InputError(f"{what}: invalid Huffman code table ({why})")


class CanonicalCode:
    """A canonical prefix code rebuilt from its code lengths (validated: bad tables raise InputError)."""

    def __init__(self, lengths: np.ndarray, what: str = "code") -> None:
        lengths = np.asarray(lengths)
        if lengths.ndim != 1 or lengths.dtype.kind not in "ui":
            raise _reject(what, f"lengths must be a 1-D integer array, got {lengths.dtype} {lengths.shape}")
        if lengths.size and (lengths.min() < 0 or lengths.max() > MAX_CODE_LEN):
            raise _reject(what, f"a code length is outside 0..{MAX_CODE_LEN}")
        self.lengths = lengths.astype(np.int64)
        self.what = what
        present = np.flatnonzero(self.lengths)
        self.n_present = int(present.size)
        if self.n_present == 0:
            self.max_len = 0
            self.codes = np.zeros(lengths.size, dtype=np.uint64)
            return
        kraft = int(np.sum(np.left_shift(1, MAX_CODE_LEN - self.lengths[present])))
        if self.n_present == 1:
            if self.lengths[present[0]] != 1:
                raise _reject(what, "a one-symbol code must have length 1")
        elif kraft != 1 << MAX_CODE_LEN:
            relation = "over-subscribed" if kraft > 1 << MAX_CODE_LEN else "incomplete"
            raise _reject(what, f"the lengths violate Kraft's equality ({relation})")
        self.max_len = int(self.lengths.max())
        count = np.bincount(self.lengths[present], minlength=self.max_len + 1)
        first = np.zeros(self.max_len + 1, dtype=np.int64)
        for n in range(1, self.max_len + 1):
            first[n] = (first[n - 1] + count[n - 1]) << 1
        self._sorted = present[np.lexsort((present, self.lengths[present]))]
        offset = np.concatenate([[0], np.cumsum(count)])[:-1]  # rank of the first symbol of each length
        self._first, self._count, self._offset = first, count, offset
        lens = np.arange(1, self.max_len + 1)
        self._limit = (first[1:] + count[1:]) << (self.max_len - lens)
        ranks = np.empty(lengths.size, dtype=np.int64)
        ranks[self._sorted] = np.arange(self.n_present)
        codes = np.zeros(lengths.size, dtype=np.int64)
        L = self.lengths[present]
        codes[present] = first[L] + ranks[present] - offset[L]
        self.codes = codes.astype(np.uint64)

    @classmethod
    def from_counts(cls, counts: np.ndarray, limit: int = MAX_CODE_LEN) -> CanonicalCode:
        """The optimal length-limited code for these symbol counts."""
        return cls(code_lengths(counts, limit))

    def encode(self, symbols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(codes, lengths) of each symbol, ready for `_bits.pack`."""
        symbols = np.asarray(symbols, dtype=np.int64)
        return self.codes[symbols], self.lengths[symbols]

    def decode(self, words: np.ndarray, pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Decode one symbol at each bit position; return (symbols, code lengths). Corrupt bits raise InputError."""
        if self.max_len == 0:
            raise InputError(f"{self.what}: the stream holds codes but the code table is empty")
        v = _bits.peek(words, pos, self.max_len).astype(np.int64)
        li = np.searchsorted(self._limit, v, side="right")
        if np.any(li >= self.max_len):
            raise InputError(f"{self.what}: the bit stream holds a bit pattern that is no code")
        length = li + 1
        rank = self._offset[length] + (v >> (self.max_len - length)) - self._first[length]
        return self._sorted[rank], length

    def cost_bits(self, counts: np.ndarray) -> int:
        """Total bits of coding symbols with these counts."""
        return int(np.dot(np.asarray(counts, dtype=np.int64), self.lengths))
