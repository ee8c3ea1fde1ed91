"""Native C kernels against the numpy references: every format, batch 1 and 8, naive == optimized, corruption.

The codebook and sparse formats run over the shared MATRICES; the structured ones (lowrank, psm, sss, dct)
have encodings of their own (STRUCTURED_CASES) that reach their parameters' corners, and are compared at a
looser tolerance since their intermediates and FFT rounding differ from numpy's.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from nncompress.errors import InputError
from nncompress.formats import FORMATS
from nncompress.formats.base import Format
from nncompress.formats.cser import CSER
from nncompress.formats.dct import DCT
from nncompress.formats.ham import HuffmanMatrix
from nncompress.formats.im import IndexMap
from nncompress.formats.lowrank import LowRank
from nncompress.formats.psm import PSM
from nncompress.formats.sham import SparseHuffmanMatrix
from nncompress.formats.sparse import COO, CSC, CSR
from nncompress.formats.sss import SSS
from nncompress.native import NATIVE_FORMATS, available, bind, native_dot
from nncompress.passes.dct import DCTPass
from nncompress.passes.lowrank import LowRankPass
from nncompress.passes.psm import PSMPass
from nncompress.passes.sss import SSSPass

from .conftest import quantized, wide_gaps

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


def _sparse_long_codes() -> np.ndarray:
    # Most entries zero (the 1-bit code: ham's batch-1 lanes) and the rest with codes past the table.
    w = _long_codes()
    w[np.random.default_rng(4).random(w.shape) < 0.7] = 0.0
    return w


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
    "sparse_long_codes": _sparse_long_codes,
    "runs_past_32": lambda: quantized((50, 333), 9, 0.97, 12),  # zero runs longer than a peek
    # 200 values: sham's batch-1 lane table keeps 8 bits for the value and 4 for the column step, so
    # most gaps here are too wide for it and take the general path
    "many_values_wide_steps": lambda: quantized((40, 600), 200, 0.93, 13),
    "float_values": lambda: (
        np.random.default_rng(6).standard_normal((17, 33)) * (np.random.default_rng(7).random((17, 33)) < 0.3)
    ).astype(np.float32),
}
CODEBOOK_FORMATS = {"im", "cser", "ham", "sham"}  # want few distinct values
STRUCTURED = {"lowrank", "psm", "sss", "dct"}  # own encodings below


def _encodings(name: str, w: np.ndarray) -> list[Format]:
    if name == "sham":
        return [SparseHuffmanMatrix.encode(w, gap_coder=c) for c in ("huffman", "expgolomb")]
    return [FORMATS[name].encode(w)]


@pytest.mark.parametrize("case", sorted(MATRICES))
@pytest.mark.parametrize("name", sorted(set(NATIVE_FORMATS) - STRUCTURED))
def test_native_matches_the_reference(name: str, case: str) -> None:
    w = MATRICES[case]()
    rng = np.random.default_rng(11)
    x8 = rng.standard_normal((8, w.shape[1])).astype(np.float32)
    x11 = rng.standard_normal((11, w.shape[1])).astype(np.float32)  # a full chunk of 8, then 3
    for fmt in _encodings(name, w):
        for x in (x8[0], x8, x11):
            want = fmt.dot(x)
            got = native_dot(fmt, x)
            assert got.shape == want.shape and got.dtype == np.float32
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
            np.testing.assert_array_equal(native_dot(fmt, x, naive=True), got)
            np.testing.assert_array_equal(native_dot(fmt, x, threads=3), got)


def _fit(step: Any, w: np.ndarray, **options: Any) -> Any:
    """The structured format ``step`` (a pass class) fits to ``w``."""
    return step.fit(w, step.Options(**options))


def _normal(shape: tuple[int, int], seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _structured_cases() -> dict[str, Callable[[], Format]]:
    cases: dict[str, Callable[[], Format]] = {}
    shapes = ((23, 41), (41, 23), (16, 16), (1, 17), (17, 1), (1, 1), (0, 5), (5, 0))
    for q in (1, 2, 3):
        for sh in shapes:
            cases[f"psm_q{q}_{sh[0]}x{sh[1]}"] = lambda q=q, sh=sh: _fit(
                PSMPass, _normal(sh, q), factors=q, iterations=3
            )
        cases[f"psm_q{q}_all_zero"] = lambda q=q: _fit(PSMPass, np.zeros((6, 9), np.float32), factors=q)
    # (shape, blocks, state): uneven array_split on both sides, blocks=1, state 0, full state, vectors
    for sh, n, d in [
        ((24, 24), 4, 3),
        ((20, 33), 5, 0),
        ((13, 7), 7, 7),
        ((9, 16), 2, 9),
        ((23, 41), 6, 2),
        ((41, 23), 6, 23),
        ((64, 48), 8, 5),
        ((30, 30), 1, 0),
        ((10, 12), 1, 4),
        ((1, 1), 1, 1),
        ((1, 9), 1, 1),
        ((9, 1), 1, 1),
    ]:
        cases[f"sss_{sh[0]}x{sh[1]}_n{n}_d{d}"] = lambda sh=sh, n=n, d=d: _fit(
            SSSPass, _normal(sh, n + d), blocks=n, state=d
        )
    cases["sss_budget"] = lambda: _fit(SSSPass, _normal((37, 50), 3), budget=0.3)
    for sh in ((0, 5), (5, 0)):
        cases[f"sss_{sh[0]}x{sh[1]}"] = lambda sh=sh: _fit(SSSPass, np.zeros(sh, np.float32))
    # dct: power-of-two, even, odd and prime lengths on either side, vectors, 1x1, nothing kept
    for kernel in ("dct", "dst", "dft"):
        for sh in (
            (16, 32),
            (7, 13),
            (10, 100),
            (12, 9),
            (31, 64),
            (2, 3),
            (1, 17),
            (17, 1),
            (1, 1),
            (0, 5),
            (5, 0),
        ):
            cases[f"{kernel}_{sh[0]}x{sh[1]}"] = lambda kernel=kernel, sh=sh: _fit(
                DCTPass, _normal(sh, 5), kernel=kernel, budget=0.3
            )
        cases[f"{kernel}_full"] = lambda kernel=kernel: _fit(
            DCTPass, _normal((20, 21), 6), kernel=kernel, budget=1.0
        )
        cases[f"{kernel}_all_zero"] = lambda kernel=kernel: _fit(
            DCTPass, np.zeros((7, 11), np.float32), kernel=kernel
        )
    for sh, rank in [((23, 41), None), ((23, 41), 23), ((1, 9), None), ((9, 1), None), ((0, 5), None)]:
        cases[f"lowrank_{sh[0]}x{sh[1]}_r{rank}"] = lambda sh=sh, rank=rank: _fit(
            LowRankPass, _normal(sh, 7), rank=rank
        )
    cases["lowrank_all_zero"] = lambda: _fit(LowRankPass, np.zeros((6, 9), np.float32))
    return cases


STRUCTURED_CASES = _structured_cases()


def test_bound_calls_outlive_their_format() -> None:
    """bind() converts a format's arrays once; the callable must keep them alive on its own (a cast
    pointer does not), batch 1 and 8, every format."""
    rng = np.random.default_rng(13)
    makers: list[Callable[[], Format]] = [
        lambda n=name: _encodings(n, MATRICES["empty_rows_cols"]())[-1]
        for name in sorted(set(NATIVE_FORMATS) - STRUCTURED)
    ] + list(STRUCTURED_CASES.values())
    bound = []
    for make in makers:
        fmt = make()
        x = rng.standard_normal((8, fmt.shape[1])).astype(np.float32)
        bound.append((bind(fmt), fmt.name, x, native_dot(fmt, x[0]), native_dot(fmt, x)))
        del fmt
    # one collection for all: with the frameworks loaded a full collection takes seconds
    gc.collect()
    churn = [np.full(n, -7.0, np.float32) for n in (64, 1000, 4096, 100000)]  # reuse freed memory
    for dot, name, x, want1, want8 in bound:
        np.testing.assert_array_equal(dot(x[0]), want1, err_msg=name)
        np.testing.assert_array_equal(dot(x), want8, err_msg=name)
    del churn


def test_every_native_format_is_tested() -> None:
    assert {
        c.split("_")[0].replace("dst", "dct").replace("dft", "dct") for c in STRUCTURED_CASES
    } == STRUCTURED
    assert set(NATIVE_FORMATS) == set(FORMATS)


@pytest.mark.parametrize("case", sorted(STRUCTURED_CASES))
def test_structured_native_matches_the_reference(case: str) -> None:
    fmt = STRUCTURED_CASES[case]()
    x8 = np.random.default_rng(12).standard_normal((8, fmt.shape[1])).astype(np.float32)
    for x in (x8[0], x8):
        want = fmt.dot(x)
        for kw in ({}, {"naive": True}, {"threads": 3}):
            got = native_dot(fmt, x, **kw)
            assert got.shape == want.shape and got.dtype == np.float32, kw
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5, err_msg=str(kw))


def test_structured_cases_reach_their_corners() -> None:
    dct = [STRUCTURED_CASES[c]() for c in ("dct_all_zero", "dct_full", "dft_full")]
    assert all(isinstance(f, DCT) for f in dct)
    assert [f.values.shape for f in dct] == [(0,), (20 * 21,), (20 * 21 // 2, 2)]  # type: ignore[attr-defined]
    sss = STRUCTURED_CASES["sss_23x41_n6_d2"]()
    assert isinstance(sss, SSS) and len(set(sss._rs.tolist())) == 2 and len(set(sss._cs.tolist())) == 2
    budget = STRUCTURED_CASES["sss_budget"]()
    assert isinstance(budget, SSS) and budget.blocks > 1 and budget.state > 0
    psm = STRUCTURED_CASES["psm_q3_23x41"]()
    assert isinstance(psm, PSM) and len(psm.factors) == 3 and all(v.size for v, _, _ in psm.factors)


def test_the_cases_reach_what_they_claim() -> None:
    ham = HuffmanMatrix.encode(_bit_offsets_ham())
    assert set((ham.row_bits[:-1].astype(np.int64) % 32).tolist()) == set(range(32))
    sham = SparseHuffmanMatrix.encode(MATRICES["bit_offsets_sham"]())
    starts = sham.row_bits[:-1].astype(np.int64)[np.diff(sham.row_bits.astype(np.int64)) > 0]
    assert set((starts % 32).tolist()) == set(range(32))
    assert int(HuffmanMatrix.encode(_long_codes()).code_len.max()) > 11  # the second-level decode path
    lanes = HuffmanMatrix.encode(_sparse_long_codes())  # zero has the 1-bit code, others are long
    assert int(lanes.code_len[np.flatnonzero(lanes.codebook == 0)[0]]) == 1 and int(lanes.code_len.max()) > 11
    wide = SparseHuffmanMatrix.encode(wide_gaps(2), gap_coder="huffman")
    assert wide.gap["escape_bits"] > 0
    many = MATRICES["many_values_wide_steps"]()
    steps = np.diff(np.flatnonzero(np.concatenate([np.ones((many.shape[0], 1)), many], axis=1)))
    assert 128 < len(np.unique(many)) <= 256 and np.mean(steps > 15) > 0.3


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


def _psm_factor(i: int, **arrays: np.ndarray) -> PSM:
    """A 2-factor PSM of W (9, 40) whose factor i has some arrays replaced."""
    f = _fit(PSMPass, W, factors=2, iterations=2)
    factors = list(f.factors)
    v, c, p = factors[i]
    factors[i] = (arrays.get("values", v), arrays.get("col_idx", c), arrays.get("row_ptr", p))
    return PSM(f.shape, f.inner, factors)


def _sss(blocks_by: int = 0, state_by: int = 0, **stages: np.ndarray) -> SSS:
    f = _fit(SSSPass, _normal((20, 33), 1), blocks=4, state=3)
    return SSS(f.shape, f.blocks + blocks_by, f.state + state_by, f.stages | stages)


def _dct(kernel: str, **arrays: np.ndarray) -> DCT:
    f = _fit(DCTPass, W, kernel=kernel, budget=0.5)
    a = f.arrays() | arrays
    return DCT(f.shape, kernel, a["values"], a["col_idx"], a["row_ptr"])


LR = _fit(LowRankPass, W)
S0 = _fit(SSSPass, _normal((20, 33), 1), blocks=4, state=3).stages
D0 = _fit(DCTPass, W, budget=0.5)
F0 = _fit(DCTPass, W, kernel="dft", budget=0.5)
P0 = _fit(PSMPass, W, factors=2, iterations=2).factors
CORRUPTIONS |= {
    "psm_col_past_inner": lambda: _psm_factor(0, col_idx=_bump(P0[0][1].astype(np.uint16), -1, 9)),
    "psm_col_past_in": lambda: _psm_factor(1, col_idx=_bump(P0[1][1].astype(np.uint16), 0, 40)),
    "psm_ptr_backwards": lambda: _psm_factor(
        1, row_ptr=_bump(P0[1][2].astype(np.uint32), 3, -int(P0[1][2][3]))
    ),
    "psm_ptr_short": lambda: _psm_factor(0, row_ptr=P0[0][2][:-1]),
    "psm_truncated_values": lambda: _psm_factor(1, values=P0[1][0][:-1]),
    "psm_no_factors": lambda: PSM(W.shape, 9, []),
    "sss_truncated_cl": lambda: _sss(cl=S0["cl"][:-1]),
    "sss_wide_bl": lambda: _sss(bl=np.zeros((3, S0["bl"].shape[1] + 1), np.float32)),
    "sss_extra_al": lambda: _sss(al=np.zeros((3, 3, 3), np.float32)),
    "sss_short_bu": lambda: _sss(bu=S0["bu"][:, :-1]),
    "sss_truncated_d": lambda: _sss(d=S0["d"][:-1]),
    "sss_state_off": lambda: _sss(state_by=1),
    "sss_blocks_off": lambda: _sss(blocks_by=1),
    "sss_blocks_past_min": lambda: _sss(blocks_by=30),
    "dct_col_past_grid": lambda: _dct("dct", col_idx=_bump(D0.col_idx.astype(np.uint16), -1, 40)),
    "dct_ptr_backwards": lambda: _dct(
        "dst", row_ptr=_bump(D0.row_ptr.astype(np.uint32), 3, -int(D0.row_ptr[3]))
    ),
    "dct_ptr_past_end": lambda: _dct("dct", row_ptr=_bump(D0.row_ptr.astype(np.uint32), -1, 1)),
    "dct_truncated_values": lambda: _dct("dct", values=D0.values[:-1]),
    "dft_col_past_half_spectrum": lambda: _dct("dft", col_idx=_bump(F0.col_idx.astype(np.uint16), -1, 21)),
    "dft_real_values_only": lambda: _dct("dft", values=np.ascontiguousarray(F0.values[:, 0])),
    "lowrank_rank_mismatch": lambda: LowRank(LR.shape, LR.a, LR.b[:-1]),
    "lowrank_truncated_a": lambda: LowRank(LR.shape, LR.a[:-1], LR.b),
}


def test_the_structured_corruptions_reach_the_kernel() -> None:
    assert int(P0[0][1].max()) < 9 and int(F0.col_idx.max()) <= 20  # so the bumps land just out of range
    assert D0.values.size and F0.values.size and all(v.size for v, _, _ in P0)
    assert int(D0.row_ptr[2]) > 0 and int(P0[1][2][2]) > 0  # so zeroing row_ptr[3] makes it decrease


@pytest.mark.parametrize(
    "fmt",
    [
        _sss(cl=S0["cl"].astype(np.float64)),
        _dct("dct", values=D0.values.astype(np.float64)),
        _dct("dft", values=F0.values.astype(np.float16)),
        LowRank(LR.shape, LR.a, LR.b.astype(np.float64)),
        _psm_factor(0, col_idx=P0[0][1].astype(np.int64)),
    ],
    ids=["sss", "dct", "dft", "lowrank", "psm"],
)
def test_structured_wrong_dtypes_are_input_errors(fmt: Format) -> None:
    with pytest.raises(InputError):
        native_dot(fmt, np.ones(fmt.shape[1], np.float32))


def test_unknown_dct_kernel_is_an_input_error() -> None:
    bad = DCT(D0.shape, "haar", D0.values, D0.col_idx, D0.row_ptr)
    with pytest.raises(InputError, match="haar"):
        native_dot(bad, np.ones(D0.shape[1], np.float32))


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
