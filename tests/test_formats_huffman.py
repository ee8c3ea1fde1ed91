"""Canonical length-limited Huffman codes: optimality, the length limit, canonical codes, decoding, bad tables."""

from __future__ import annotations

import heapq
import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nncompress.errors import InputError
from nncompress.formats import _bits
from nncompress.formats._huffman import MAX_CODE_LEN, CanonicalCode, code_lengths


def huffman_cost(counts: list[int]) -> int:
    """Total bits of an (unlimited) Huffman code: the sum of all merge weights."""
    heap = [c for c in counts if c > 0]
    if len(heap) == 1:
        return heap[0]  # one symbol still costs a bit
    heapq.heapify(heap)
    total = 0
    while len(heap) > 1:
        merged = heapq.heappop(heap) + heapq.heappop(heap)
        total += merged
        heapq.heappush(heap, merged)
    return total


def kraft(lengths: np.ndarray) -> float:
    return float(sum(2.0 ** -int(n) for n in lengths if n))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 10**6), min_size=1, max_size=200))
def test_lengths_are_optimal_and_complete(counts: list[int]) -> None:
    lengths = code_lengths(np.array(counts))
    assert lengths.dtype == np.uint8
    assert all((n == 0) == (c == 0) for n, c in zip(lengths, counts, strict=True))
    present = sum(c > 0 for c in counts)
    if present >= 2:
        assert kraft(lengths) == 1.0
    assert int(np.dot(lengths.astype(np.int64), counts)) == (huffman_cost(counts) if present else 0)


@pytest.mark.parametrize("limit", [2, 3, 4])
def test_length_limited_lengths_match_a_brute_force_optimum(limit: int) -> None:
    rng = np.random.default_rng(limit)
    for _ in range(20):
        counts = rng.integers(1, 1000, size=int(rng.integers(2, 6))) ** 2
        if counts.size > 2**limit:
            continue
        best = min(
            int(np.dot(ls, counts))
            for ls in itertools.product(range(1, limit + 1), repeat=counts.size)
            if sum(2.0**-n for n in ls) <= 1
        )
        lengths = code_lengths(counts, limit)
        assert lengths.max() <= limit and kraft(lengths) == 1.0
        assert int(np.dot(lengths.astype(np.int64), counts)) == best


def test_the_24_bit_limit_binds_on_fibonacci_counts() -> None:
    fib = [1, 1]
    while len(fib) < 40:
        fib.append(fib[-1] + fib[-2])
    assert code_lengths(np.array(fib), limit=64).max() == 39  # unlimited Huffman would need 39 bits
    lengths = code_lengths(np.array(fib))
    assert lengths.max() == MAX_CODE_LEN and kraft(lengths) == 1.0
    CanonicalCode(lengths)  # a valid table


def test_canonical_codes_follow_deflate() -> None:
    # RFC 1951, 3.2.2: lengths (3, 3, 3, 3, 3, 2, 4, 4) give these codes.
    code = CanonicalCode(np.array([3, 3, 3, 3, 3, 2, 4, 4], np.uint8))
    got = [format(int(c), f"0{n}b") for c, n in zip(code.codes, code.lengths, strict=True)]
    assert got == ["010", "011", "100", "101", "110", "00", "1110", "1111"]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 50), min_size=1, max_size=40), st.integers(0, 2**32 - 1))
def test_encode_then_decode_returns_the_symbols(counts: list[int], seed: int) -> None:
    if not any(counts):
        return
    code = CanonicalCode.from_counts(np.array(counts))
    symbols = np.random.default_rng(seed).permutation(np.repeat(np.arange(len(counts)), counts))
    codes, lens = code.encode(symbols)
    words, _ = _bits.pack(codes, lens)
    pos = np.concatenate([[0], np.cumsum(lens)[:-1]])
    got, got_lens = code.decode(words, pos)
    np.testing.assert_array_equal(got, symbols)
    np.testing.assert_array_equal(got_lens, lens)
    texts = {format(int(code.codes[s]), f"0{code.lengths[s]}b") for s in np.flatnonzero(code.lengths)}
    assert not any(a != b and b.startswith(a) for a in texts for b in texts)  # prefix-free


def test_one_symbol_code_is_the_bit_zero() -> None:
    code = CanonicalCode.from_counts(np.array([0, 5, 0]))
    assert code.lengths.tolist() == [0, 1, 0] and code.codes[1] == 0
    with pytest.raises(InputError, match="no code"):
        code.decode(np.array([0x80000000, 0], np.uint32), np.array([0]))


@pytest.mark.parametrize(
    ("lengths", "match"),
    [
        ([1, 1, 1], "over-subscribed"),
        ([1, 2, 3], "incomplete"),
        ([2], "one-symbol"),
        ([25, 1], "outside"),
        ([[1, 1]], "1-D"),
    ],
)
def test_bad_tables_are_input_errors(lengths: list[int], match: str) -> None:
    with pytest.raises(InputError, match=match):
        CanonicalCode(np.array(lengths, np.uint8))
    with pytest.raises(InputError, match="1-D integer"):
        CanonicalCode(np.array([1.0, 1.0]))


def test_an_empty_table_decodes_nothing() -> None:
    code = CanonicalCode(np.zeros(3, np.uint8))
    with pytest.raises(InputError, match="empty"):
        code.decode(np.zeros(2, np.uint32), np.array([0]))
