"""Native C kernels against the numpy references: every format, batch 1 and 8, naive == optimized, corruption."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from nncompress.errors import InputError
from nncompress.formats import FORMATS
from nncompress.formats.base import Format
from nncompress.formats.coo import COO
from nncompress.formats.csc import CSC
from nncompress.formats.cser import CSER
from nncompress.formats.csr import CSR
from nncompress.formats.ham import HuffmanMatrix
from nncompress.formats.im import IndexMap
from nncompress.formats.sham import SparseHuffmanMatrix
from nncompress.native import NATIVE_FORMATS, available, native_dot

from .test_formats_ham import quantized
from .test_formats_sham import wide_gaps

pytestmark = pytest.mark.skipif(not available(), reason="the native extension is not built")


def _empty_lines() -> np.ndarray:
    w = quantized((23, 41), 7, 0.5, 3)
    w[[0, 5, 22]] = 0
    w[:, [0, 17, 40]] = 0
    return w


def _bit_offsets_ham() -> np.ndarray:
    # As in test_formats_ham: rows of 33 bits, so row starts run through every offset mod 32.
    w = np.full((64, 32), 5.0, np.float32)
    w[:, 31] = np.where(np.arange(64) % 2, 1.0, 2.0)
    return w


def _long_codes() -> np.ndarray:
    # Fibonacci counts make the deepest Huffman tree: codes of up to 20 bits, past the 11-bit table.
    fib = [1, 1]
    while len(fib) < 21:
        fib.append(fib[-1] + fib[-2])
    symbols = np.repeat(np.arange(21), fib)
    symbols = np.concatenate([symbols, np.full(96 * 300 - symbols.size, 20)])
    np.random.default_rng(3).shuffle(symbols)
    return (symbols.astype(np.float32) - 10.0).reshape(96, 300)


MATRICES: dict[str, Callable[[], np.ndarray]] = {
    "sparse": lambda: quantized((40, 57), 9, 0.8, 0),
    "dense_k5": lambda: quantized((13, 29), 5, 0.0, 1),
    "empty_rows_cols": _empty_lines,
    "all_zero": lambda: np.zeros((7, 11), np.float32),
    "k1": lambda: np.full((5, 9), 0.75, np.float32),
    "one_by_one": lambda: np.array([[1.5]], np.float32),
    "row": lambda: quantized((1, 97), 6, 0.3, 2),
    "column": lambda: quantized((97, 1), 6, 0.3, 4),
    "wide_gaps": lambda: wide_gaps(2),
    "bit_offsets_ham": _bit_offsets_ham,
    "bit_offsets_sham": lambda: quantized((300, 70), 20, 0.85, 5),
    "long_codes": _long_codes,
    "float_values": lambda: (
        np.random.default_rng(6).standard_normal((17, 33)) * (np.random.default_rng(7).random((17, 33)) < 0.3)
    ).astype(np.float32),
}
CODEBOOK_FORMATS = {"im", "cser", "ham", "sham"}  # want few distinct values


def _encodings(name: str, w: np.ndarray) -> list[Format]:
    if name == "sham":
        return [SparseHuffmanMatrix.encode(w, gap_coder=c) for c in ("huffman", "expgolomb")]
    return [FORMATS[name].encode(w)]


@pytest.mark.parametrize("case", sorted(MATRICES))
@pytest.mark.parametrize("name", sorted(NATIVE_FORMATS))
def test_native_matches_the_reference(name: str, case: str) -> None:
    w = MATRICES[case]()
    rng = np.random.default_rng(11)
    x8 = rng.standard_normal((8, w.shape[1])).astype(np.float32)
    for fmt in _encodings(name, w):
        for x in (x8[0], x8):
            want = fmt.dot(x)
            got = native_dot(fmt, x)
            assert got.shape == want.shape and got.dtype == np.float32
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
            np.testing.assert_array_equal(native_dot(fmt, x, naive=True), got)
            np.testing.assert_array_equal(native_dot(fmt, x, threads=3), got)


def test_the_cases_reach_what_they_claim() -> None:
    ham = HuffmanMatrix.encode(_bit_offsets_ham())
    assert set((ham.row_bits[:-1].astype(np.int64) % 32).tolist()) == set(range(32))
    sham = SparseHuffmanMatrix.encode(MATRICES["bit_offsets_sham"]())
    starts = sham.row_bits[:-1].astype(np.int64)[np.diff(sham.row_bits.astype(np.int64)) > 0]
    assert set((starts % 32).tolist()) == set(range(32))
    assert int(HuffmanMatrix.encode(_long_codes()).code_len.max()) > 11  # the second-level decode path
    wide = SparseHuffmanMatrix.encode(wide_gaps(2), gap_coder="huffman")
    assert wide.gap["escape_bits"] > 0


def _bump(a: np.ndarray, i: int, by: int) -> np.ndarray:
    out = a.astype(np.int64)
    out[i] += by
    return out.astype(a.dtype)


W = quantized((9, 40), 6, 0.6, 8)
CORRUPTIONS: dict[str, Callable[[], Format]] = {
    "csr_col_past_in": lambda: (
        lambda f: CSR(f.shape, f.values, _bump(f.col_idx.astype(np.uint32), -1, 40), f.row_ptr)
    )(CSR.encode(W)),
    "csr_ptr_past_end": lambda: (lambda f: CSR(f.shape, f.values, f.col_idx, _bump(f.row_ptr, -1, 3)))(
        CSR.encode(W)
    ),
    "csr_ptr_backwards": lambda: (lambda f: CSR(f.shape, f.values, f.col_idx, _bump(f.row_ptr, 3, -50)))(
        CSR.encode(W)
    ),
    "csr_truncated_index": lambda: (lambda f: CSR(f.shape, f.values, f.col_idx[:-1], f.row_ptr))(
        CSR.encode(W)
    ),
    "csc_row_past_out": lambda: (
        lambda f: CSC(f.shape, f.values, _bump(f.row_idx.astype(np.uint16), 0, 9), f.col_ptr)
    )(CSC.encode(W)),
    "coo_col_past_in": lambda: (
        lambda f: COO(f.shape, f.values, f.row_idx, _bump(f.col_idx.astype(np.uint16), 2, 200))
    )(COO.encode(W)),
    "im_truncated_stream": lambda: (lambda f: IndexMap(f.shape, f.codebook, f.stream[:-3]))(
        IndexMap.encode(W)
    ),
    "im_index_past_k": lambda: IndexMap(
        (1, 1), np.zeros(3, np.float32), np.array([0xFFFFFFFF, 0], np.uint32)
    ),
    "cser_w_idx_zero": lambda: (
        lambda f: CSER(f.shape, f.omega, f.col_idx, np.zeros_like(f.w_idx), f.w_ptr, f.row_ptr)
    )(CSER.encode(W)),
    "cser_col_past_in": lambda: (
        lambda f: CSER(
            f.shape, f.omega, _bump(f.col_idx.astype(np.uint16), 1, 99), f.w_idx, f.w_ptr, f.row_ptr
        )
    )(CSER.encode(W)),
    "ham_truncated_stream": lambda: (
        lambda f: HuffmanMatrix(f.shape, f.codebook, f.code_len, f.stream[:2], f.row_bits, f.code)
    )(HuffmanMatrix.encode(W)),
    "ham_row_bits_past_end": lambda: (
        lambda f: HuffmanMatrix(
            f.shape, f.codebook, f.code_len, f.stream, _bump(f.row_bits.astype(np.uint32), -1, 64), f.code
        )
    )(HuffmanMatrix.encode(W)),
    "ham_row_ends_elsewhere": lambda: (
        lambda f: HuffmanMatrix(f.shape, f.codebook, f.code_len, f.stream, _bump(f.row_bits, 3, 1), f.code)
    )(HuffmanMatrix.encode(W)),
    "sham_truncated_stream": lambda: (
        lambda f: SparseHuffmanMatrix(
            f.shape,
            f.codebook,
            f.value_len,
            f.stream[:3],
            f.row_bits,
            f.nnz,
            f.gap,
            (f.value_code, f.gap_code),
        )
    )(SparseHuffmanMatrix.encode(W)),
    "sham_row_bits_shifted": lambda: (
        lambda f: SparseHuffmanMatrix(
            f.shape,
            f.codebook,
            f.value_len,
            f.stream,
            _bump(f.row_bits, 4, 1),
            f.nnz,
            f.gap,
            (f.value_code, f.gap_code),
        )
    )(SparseHuffmanMatrix.encode(W, gap_coder="expgolomb")),
}


@pytest.mark.parametrize("case", sorted(CORRUPTIONS))
@pytest.mark.parametrize("naive", [False, True])
def test_corrupt_arrays_are_input_errors(case: str, naive: bool) -> None:
    fmt = CORRUPTIONS[case]()
    x = np.ones(fmt.shape[1], np.float32)
    with pytest.raises(InputError, match="native kernel status"):
        native_dot(fmt, x, naive=naive)


@pytest.mark.parametrize("coder", ["huffman", "expgolomb"])
def test_flipped_stream_bits_never_crash(coder: str) -> None:
    """Random bit flips either decode to something or raise InputError; naive and optimized agree."""
    rng = np.random.default_rng(21)
    sham = SparseHuffmanMatrix.encode(quantized((30, 64), 12, 0.7, 9), gap_coder=coder)
    ham = HuffmanMatrix.encode(quantized((30, 64), 12, 0.2, 10))
    x = rng.standard_normal((3, 64)).astype(np.float32)
    for _ in range(150):
        for f in (sham, ham):
            stream = f.stream.copy()
            for _ in range(int(rng.integers(1, 4))):
                stream[rng.integers(0, stream.size)] ^= np.uint32(1 << int(rng.integers(0, 32)))
            if isinstance(f, SparseHuffmanMatrix):
                bad: Format = SparseHuffmanMatrix(
                    f.shape,
                    f.codebook,
                    f.value_len,
                    stream,
                    f.row_bits,
                    f.nnz,
                    f.gap,
                    (f.value_code, f.gap_code),
                )
            else:
                bad = HuffmanMatrix(f.shape, f.codebook, f.code_len, stream, f.row_bits, f.code)
            results = []
            for naive in (False, True):
                try:
                    results.append(native_dot(bad, x, naive=naive))
                except InputError:
                    results.append(None)
            if results[0] is None or results[1] is None:
                assert results[0] is None and results[1] is None
            else:
                np.testing.assert_array_equal(results[0], results[1])
