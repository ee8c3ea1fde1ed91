"""Bit streams on uint32 words: a vectorised writer and a vectorised peek (the formats' bit order).

Bit order (native kernels read streams exactly this way):

- A stream is a 1-D ``uint32`` array ``words``. Stream bit ``i`` (``i = 0`` first) is bit
  ``31 - i % 32`` of ``words[i // 32]``: bits fill each word from its most significant bit down
  (MSB-first). Byte order inside a word does not matter: a reader loads whole ``uint32`` values
  (the artifact stores them little-endian, ``<u4``).
- A code of length ``L`` with integer value ``c`` written at stream bit ``p`` puts the MSB of ``c``
  at bit ``p`` and its LSB at bit ``p + L - 1``; it straddles two words when ``p % 32 + L > 32``.
- A stream of ``nbits`` bits has exactly ``ceil(nbits / 32) + 1`` words: the extra, all-zero word
  at the end lets a reader always load the two words ``words[p // 32]`` and ``words[p // 32 + 1]``
  and shift a 64-bit window, without a bounds test. Every bit from ``nbits`` on is zero.

Reading up to 32 bits at ``p`` (what `peek` does)::

    window = (uint64(words[p >> 5]) << 32) | words[(p >> 5) + 1]
    value = (window >> (64 - (p & 31) - n)) & ((1 << n) - 1)
"""

from __future__ import annotations

import numpy as np

from nncompress.errors import InputError

WORD_BITS = 32
MAX_ITEM_BITS = 32  # one `pack` item fills at most one word's worth of bits
_CHUNK = 1 << 18  # items packed at once: about eight 8-byte temporaries each


def stream_words(nbits: int) -> int:
    """Number of uint32 words of a stream of ``nbits`` bits, the zero guard word included."""
    return (int(nbits) + WORD_BITS - 1) // WORD_BITS + 1


def pack(codes: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, int]:
    """Concatenate ``codes[i]`` (``lengths[i]`` bits each, 0..32) MSB-first into words; return (words, nbits).

    Vectorised: start bits come from a cumulative sum, and each item lands in at most two words.
    Items of length 0 write nothing (formats use them to keep a fixed number of items per entry).
    """
    codes = np.asarray(codes, dtype=np.uint64).ravel()
    lengths = np.asarray(lengths, dtype=np.int64).ravel()
    if codes.shape != lengths.shape:
        raise ValueError("codes and lengths differ in size")
    if lengths.size and (lengths.min() < 0 or lengths.max() > MAX_ITEM_BITS):
        raise ValueError(f"item lengths must be 0..{MAX_ITEM_BITS}")
    ends = np.cumsum(lengths)
    nbits = int(ends[-1]) if ends.size else 0
    words = np.zeros(stream_words(nbits), dtype=np.uint64)
    for s in range(0, lengths.size, _CHUNK):  # chunks keep the temporaries small
        _pack_into(words, codes[s : s + _CHUNK], lengths[s : s + _CHUNK], ends[s : s + _CHUNK])
    return words.astype(np.uint32), nbits


def concat(parts: list[tuple[np.ndarray, int]]) -> tuple[np.ndarray, int]:
    """Streams (words, nbits) from `pack` joined back to back at bit granularity: one (words, nbits)."""
    total = sum(n for _, n in parts)
    out = np.zeros(stream_words(total) + 1, dtype=np.uint64)  # one spare word for the last spill
    offset = 0
    for words, nbits in parts:
        n = (nbits + WORD_BITS - 1) // WORD_BITS
        if n:
            src = words[:n].astype(np.uint64)
            base, r = offset >> 5, offset & 31
            if r == 0:
                out[base : base + n] |= src
            else:
                out[base : base + n] |= src >> np.uint64(r)
                out[base + 1 : base + n + 1] |= (src << np.uint64(WORD_BITS - r)) & np.uint64(0xFFFFFFFF)
        offset += nbits
    return out[: stream_words(total)].astype(np.uint32), total


def _pack_into(words: np.ndarray, codes: np.ndarray, lengths: np.ndarray, ends: np.ndarray) -> None:
    """OR items (sorted by their end bits) into ``words`` (uint64 holding 32-bit words)."""
    keep = lengths > 0
    if not keep.all():
        codes, lengths, ends = codes[keep], lengths[keep], ends[keep]
    if not lengths.size:
        return
    if np.any(codes >> lengths.astype(np.uint64)):
        raise ValueError("a code has more bits than its length")
    starts = ends - lengths
    word = starts >> 5
    end_in_word = (starts & 31) + lengths  # 1..63: above 32 the code runs into the next word
    left = np.maximum(WORD_BITS - end_in_word, 0).astype(np.uint64)
    right = np.maximum(end_in_word - WORD_BITS, 0).astype(np.uint64)
    first = (codes << left) >> right
    # Items never share bits and start in order: OR-reduce the first parts word by word.
    bounds = np.flatnonzero(np.diff(word, prepend=-1))
    words[word[bounds]] |= np.bitwise_or.reduceat(first, bounds)
    # At most one item per word spills into the next word: its last bits go to the top of that word.
    spill = np.flatnonzero(end_in_word > WORD_BITS)
    words[word[spill] + 1] |= (
        codes[spill] << (2 * WORD_BITS - end_in_word[spill]).astype(np.uint64)
    ) & np.uint64(0xFFFFFFFF)


def peek(words: np.ndarray, pos: np.ndarray, n: int | np.ndarray) -> np.ndarray:
    """Read ``n`` (1..32) bits at each stream bit ``pos`` as unsigned integers (uint64 array).

    Positions past the stream read clipped garbage rather than failing: decoders check that every
    row ends exactly at its recorded offset, which catches any such read.
    """
    pos = np.asarray(pos, dtype=np.int64)
    w = pos >> 5
    hi = np.take(words, w, mode="clip").astype(np.uint64)
    lo = np.take(words, w + 1, mode="clip").astype(np.uint64)
    window = (hi << np.uint64(32)) | lo
    n64 = np.asarray(n, dtype=np.uint64)
    shift = np.uint64(64) - (pos & 31).astype(np.uint64) - n64
    return (window >> shift) & ((np.uint64(1) << n64) - np.uint64(1))


def check_stream(words: object, nbits: int, what: str) -> np.ndarray:
    """Validate a stream's dtype, word count and zero padding; return it as a contiguous uint32 array."""
    if not isinstance(words, np.ndarray) or words.dtype != np.uint32 or words.ndim != 1:
        got = f"{words.dtype} {words.shape}" if isinstance(words, np.ndarray) else type(words).__name__
        raise InputError(f"{what}: expected a 1-D uint32 bit stream, got {got}")
    want = stream_words(nbits)
    if words.size != want:
        raise InputError(f"{what}: {words.size} words for {nbits} bits (expected {want})")
    used = nbits & 31
    tail = int(words[nbits >> 5]) & ((1 << (WORD_BITS - used)) - 1) if used else int(words[nbits >> 5])
    if tail or np.any(words[(nbits >> 5) + 1 :]):
        raise InputError(f"{what}: bits past the end of the stream are not zero")
    return np.ascontiguousarray(words)
