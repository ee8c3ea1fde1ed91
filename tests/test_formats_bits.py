"""Bit streams: the documented MSB-first order, word straddling, the guard word and its checks."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nncompress.errors import InputError
from nncompress.formats import _bits


def as_text(words: np.ndarray) -> str:
    """The stream as '0'/'1' characters in the documented order (word by word, MSB first)."""
    return "".join(f"{int(w):032b}" for w in words)


def test_bit_order_is_msb_first_within_uint32_words() -> None:
    words, nbits = _bits.pack(np.array([1, 0b101, 0xABCDEF]), np.array([1, 3, 24]))
    assert nbits == 28 and words.dtype == np.uint32 and words.size == 2
    assert words[0] == 0b1101_1010_1011_1100_1101_1110_1111_0000  # 1 | 101 | ABCDEF | 0000 padding
    assert words[1] == 0  # the guard word


def test_a_code_straddling_two_words() -> None:
    words, nbits = _bits.pack(np.array([0, 0xFFF]), np.array([26, 12]))  # bits 26..37
    assert nbits == 38 and words.size == 3
    assert words[0] == 0x3F and words[1] == 0x3F << 26
    assert _bits.peek(words, np.array([26]), 12)[0] == 0xFFF


@settings(max_examples=80, deadline=None)
@given(st.lists(st.integers(0, 32), max_size=300), st.integers(0, 2**32 - 1))
def test_pack_matches_a_bit_by_bit_writer_and_peek_reads_it_back(lengths: list[int], seed: int) -> None:
    rng = np.random.default_rng(seed)
    lens = np.array(lengths, dtype=np.int64)
    codes = rng.integers(0, 2**32, size=lens.size, dtype=np.uint64) & (
        (np.uint64(1) << lens.astype(np.uint64)) - 1
    )
    words, nbits = _bits.pack(codes, lens)
    expected = "".join(format(int(c), f"0{n}b") if n else "" for c, n in zip(codes, lens, strict=True))
    assert nbits == len(expected) and words.size == _bits.stream_words(nbits)
    text = as_text(words)
    assert text[:nbits] == expected and set(text[nbits:]) <= {"0"}
    starts = np.cumsum(lens) - lens
    some = lens > 0
    np.testing.assert_array_equal(_bits.peek(words, starts[some], lens[some]), codes[some])
    _bits.check_stream(words, nbits, "s")


def test_pack_in_chunks_joins_words_across_chunk_edges(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(1)
    lens = rng.integers(0, 33, 500)
    codes = rng.integers(0, 2**32, 500, dtype=np.uint64) & ((np.uint64(1) << lens.astype(np.uint64)) - 1)
    whole = _bits.pack(codes, lens)[0]
    monkeypatch.setattr(_bits, "_CHUNK", 7)
    np.testing.assert_array_equal(_bits.pack(codes, lens)[0], whole)


def test_pack_rejects_codes_wider_than_their_length() -> None:
    with pytest.raises(ValueError):
        _bits.pack(np.array([4]), np.array([2]))
    with pytest.raises(ValueError):
        _bits.pack(np.array([1]), np.array([33]))


def test_empty_stream_is_one_guard_word() -> None:
    words, nbits = _bits.pack(np.array([], np.uint64), np.array([], np.int64))
    assert nbits == 0 and words.tolist() == [0]


@pytest.mark.parametrize(
    ("words", "nbits", "match"),
    [
        (np.zeros(2, np.uint32), 40, "words for 40 bits"),  # truncated
        (np.zeros(4, np.uint32), 40, "words for 40 bits"),  # too long
        (np.array([0, 0x00800000, 0], np.uint32), 40, "not zero"),  # bit 40 set, past the end
        (np.array([0, 0, 1], np.uint32), 40, "not zero"),  # guard word not zero
        (np.zeros(3, np.int32), 40, "uint32"),
        (np.zeros((3, 1), np.uint32), 40, "uint32"),
    ],
)
def test_check_stream_rejects(words: np.ndarray, nbits: int, match: str) -> None:
    with pytest.raises(InputError, match=match):
        _bits.check_stream(words, nbits, "array stream")


def test_check_stream_accepts_a_full_last_word() -> None:
    words, nbits = _bits.pack(np.array([0xFFFFFFFF, 0xFFFFFFFF]), np.array([32, 32]))
    assert nbits == 64 and _bits.check_stream(words, nbits, "s").size == 3


@settings(max_examples=80, deadline=None)
@given(st.lists(st.lists(st.integers(0, 32), max_size=12), max_size=6), st.integers(0, 2**16))
def test_concat_equals_packing_everything_at_once(part_lengths: list[list[int]], seed: int) -> None:
    rng = np.random.default_rng(seed)
    parts, codes_all, lens_all = [], [], []
    for lens in part_lengths:
        ln = np.array(lens, dtype=np.int64)
        codes = rng.integers(0, 2**32, ln.size, dtype=np.uint64) & (
            (np.uint64(1) << ln.astype(np.uint64)) - np.uint64(1)
        )
        parts.append(_bits.pack(codes, ln))
        codes_all.append(codes)
        lens_all.append(ln)
    want = _bits.pack(
        np.concatenate(codes_all) if codes_all else np.zeros(0, np.uint64),
        np.concatenate(lens_all) if lens_all else np.zeros(0, np.int64),
    )
    got = _bits.concat(parts)
    assert got[1] == want[1]
    np.testing.assert_array_equal(got[0], want[0])
    _bits.check_stream(got[0], got[1], "joined")
