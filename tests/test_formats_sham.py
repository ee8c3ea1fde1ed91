"""sham: the documented layout read back independently, both gap coders, word boundaries, entropy, corruption."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nncompress.errors import InputError, UsageError
from nncompress.formats.sham import SparseHuffmanMatrix

from .conftest import canonical_codes, quantized, wide_gaps


def read_sham(
    arrays: dict[str, Any], meta: dict[str, Any], spans: list[tuple[int, int]] | None = None
) -> np.ndarray:
    """Decode sham arrays with nothing but the module docstring; ``spans`` collects (start, end) of every code."""
    shape = (int(meta["shape"][0]), int(meta["shape"][1]))
    bits = "".join(f"{int(w):032b}" for w in arrays["stream"])
    values = canonical_codes([int(n) for n in arrays["value_len"]]) if arrays["value_len"].size else {}
    gaps = canonical_codes([int(n) for n in arrays["gap_len"]]) if "gap_len" in arrays else {}

    def prefix(p: int, table: dict[str, int]) -> tuple[int, int]:
        q = p + 1
        while bits[p:q] not in table:
            q += 1
        if spans is not None:
            spans.append((p, q))
        return table[bits[p:q]], q

    out = np.zeros(shape, np.float32)
    for r in range(shape[0]):
        p, end, col = int(arrays["row_bits"][r]), int(arrays["row_bits"][r + 1]), -1
        while p < end:
            if meta["gap_coder"] == "huffman":
                gap, p = prefix(p, gaps)
                if gap == meta["gap_escape"] and meta["escape_bits"]:
                    n = int(meta["escape_bits"])
                    gap, p = gap + int(bits[p : p + n], 2), p + n
            else:
                m = int(meta["gap_order"])
                zeros = len(bits[p:]) - len(bits[p:].lstrip("0"))
                n = zeros + m + 1
                gap, p = int(bits[p + zeros : p + zeros + n], 2) - 2**m, p + zeros + n
            col += gap + 1
            v, p = prefix(p, values)
            out[r, col] = arrays["codebook"][v]
        assert p == end
    return out


@pytest.mark.parametrize("coder", ["huffman", "expgolomb"])
@pytest.mark.parametrize("case", ["sparse", "dense", "wide"])
def test_the_documented_layout_decodes_independently(coder: str, case: str) -> None:
    w = {
        "sparse": quantized((12, 50), 9, 0.8, 0),
        "dense": quantized((5, 40), 3, 0.0, 1),
        "wide": wide_gaps(2),
    }[case]
    fmt = SparseHuffmanMatrix.encode(w, gap_coder=coder)
    meta = fmt.meta()
    assert meta["gap_coder"] == coder and meta["nnz"] == np.count_nonzero(w)
    np.testing.assert_array_equal(read_sham(fmt.arrays(), meta), w)
    np.testing.assert_array_equal(fmt.to_dense(), w)
    if case == "wide" and coder == "huffman":
        assert meta["gap_escape"] < 3000 and meta["escape_bits"] > 0


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(1, 40), st.integers(1, 200), st.sampled_from([0.3, 0.9, 0.99]), st.integers(0, 2**32 - 1))
def test_both_gap_coders_round_trip_and_auto_picks_the_smaller(
    rows: int, cols: int, sparsity: float, seed: int
) -> None:
    w = quantized((rows, cols), 7, sparsity, seed)
    sizes = {}
    for coder in ("huffman", "expgolomb", "auto"):
        fmt = SparseHuffmanMatrix.encode(w, gap_coder=coder)
        again = SparseHuffmanMatrix.from_arrays(fmt.arrays(), json.loads(json.dumps(fmt.meta())))
        np.testing.assert_array_equal(again.to_dense(), w)
        sizes[coder] = fmt.nbytes
    # the choice is made on exact bits; the stream is rounded up to whole words
    assert sizes["auto"] <= min(sizes["huffman"], sizes["expgolomb"]) + 4


def test_rows_start_at_every_bit_offset_and_codes_straddle_words() -> None:
    w = quantized((300, 70), 20, 0.85, 5)
    fmt = SparseHuffmanMatrix.encode(w)
    starts = fmt.row_bits[:-1].astype(np.int64)
    assert set((starts[np.diff(fmt.row_bits.astype(np.int64)) > 0] % 32).tolist()) == set(range(32))
    spans: list[tuple[int, int]] = []
    np.testing.assert_array_equal(read_sham(fmt.arrays(), fmt.meta(), spans), w)
    assert any(a // 32 != (b - 1) // 32 and b - a >= 5 for a, b in spans)  # long codes cross word edges
    np.testing.assert_array_equal(fmt.to_dense(), w)


def test_payload_is_within_5_percent_of_the_entropy() -> None:
    # Coding gaps then values of an i.i.d. 90%-sparse matrix is a chain-rule split of the entries'
    # entropy, and both Huffman codes are near their entropies here: sham reaches 1.05 * n * H.
    w = quantized((300, 300), 31, 0.9, 1)
    fmt = SparseHuffmanMatrix.encode(w)
    _, counts = np.unique(w, return_counts=True)
    p = counts / w.size
    entropy_bits = w.size * float(-(p * np.log2(p)).sum())
    assert fmt.meta()["nbits"] <= 1.05 * entropy_bits
    meta = fmt.meta()
    gap_table = meta["gap_escape"] + 1 if meta["gap_coder"] == "huffman" else 0
    tables = 4 * meta["k"] + meta["k"] + gap_table  # codebook, value and gap code lengths
    assert fmt.row_bits.dtype == np.uint32  # offsets reach nbits > 2**16
    assert fmt.nbytes == tables + 4 * (meta["nbits"] // 32 + 2) + 4 * 301  # + stream and offsets


def test_all_zero_and_single_value_matrices() -> None:
    zero = SparseHuffmanMatrix.encode(np.zeros((100, 100), np.float32))
    assert zero.nbytes == 4 + 101 and zero.meta()["k"] == 0  # the guard word and 101 uint8 offsets
    one = SparseHuffmanMatrix.encode(np.eye(20, dtype=np.float32))
    assert one.value_len.tolist() == [1]
    np.testing.assert_array_equal(one.to_dense(), np.eye(20))


def test_unknown_gap_coder_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="gap_coder"):
        SparseHuffmanMatrix.encode(np.eye(3, dtype=np.float32), gap_coder="rice")


def _corrupt(coder: str = "huffman", **changes: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    fmt = SparseHuffmanMatrix.encode(quantized((10, 40), 6, 0.6, 2), gap_coder=coder)
    arrays: dict[str, Any] = dict(fmt.arrays())
    meta: dict[str, Any] = dict(fmt.meta())
    for key, value in changes.items():
        if key in arrays:
            arrays[key] = value(arrays[key].copy()) if callable(value) else value
        else:
            meta[key] = value
    return arrays, meta


def _set(a: np.ndarray, i: int, value: int) -> np.ndarray:
    a[i] = value
    return a


@pytest.mark.parametrize(
    ("coder", "changes", "match"),
    [
        ("huffman", {"stream": lambda s: s[:-2]}, "words for"),
        ("huffman", {"row_bits": lambda r: _set(r, 10, int(r[10]) + 3)}, "must run from 0"),
        ("huffman", {"row_bits": lambda r: _set(r, 4, int(r[6]) + 1)}, "not monotone"),
        ("huffman", {"nnz": 5}, "meta says nnz=5"),
        ("huffman", {"gap_len": lambda g: _set(g, 0, int(g[0]) + 1)}, "Kraft"),
        ("huffman", {"value_len": lambda v: _set(v, 0, 0)}, "Kraft"),
        ("huffman", {"gap_coder": "rice"}, "gap_coder"),
        ("huffman", {"gap_escape": 0}, "gap_escape"),
        ("expgolomb", {"gap_len": np.zeros(3, np.uint8)}, "differ from the expected"),
        ("expgolomb", {"shape": [10, 39]}, "column past 38"),
        (
            "expgolomb",
            {"stream": lambda s: np.where(np.arange(s.size) < s.size - 1, 0, s).astype(np.uint32)},
            "exp-Golomb",
        ),
    ],
)
def test_corruption_is_an_input_error(coder: str, changes: dict[str, object], match: str) -> None:
    arrays, meta = _corrupt(coder, **changes)
    with pytest.raises(InputError, match=match):
        SparseHuffmanMatrix.from_arrays(arrays, meta)


@pytest.mark.parametrize("block", [1, 29, 64, 1000])
@pytest.mark.parametrize("coder", ["auto", "huffman", "expgolomb"])
def test_encoding_in_row_blocks_gives_the_same_bytes(
    monkeypatch: pytest.MonkeyPatch, block: int, coder: str
) -> None:
    import nncompress.formats.sham as sham

    w = quantized((61, 37), 9, 0.7, 8)
    w[[3, 40]] = 0  # empty rows inside and across blocks
    whole = SparseHuffmanMatrix.encode(w, gap_coder=coder)
    monkeypatch.setattr(sham, "_BLOCK", block)
    parts = SparseHuffmanMatrix.encode(w, gap_coder=coder)
    assert parts.meta() == whole.meta()
    for k, a in whole.arrays().items():
        np.testing.assert_array_equal(parts.arrays()[k], a)


def test_encode_rows_reads_rows_on_demand_and_checks_them(monkeypatch: pytest.MonkeyPatch) -> None:
    # What compress feeds it: rows made on demand, read once to count and once to code.
    import nncompress.formats.sham as sham

    w = quantized((61, 37), 9, 0.7, 8)
    monkeypatch.setattr(sham, "_BLOCK", 29)
    asked: list[tuple[int, int]] = []

    def rows(r0: int, r1: int) -> np.ndarray:
        asked.append((r0, r1))
        return w[r0:r1].astype(np.float64)  # any real dtype: rows are taken as float32

    got = SparseHuffmanMatrix.encode_rows(w.shape, rows)
    want = SparseHuffmanMatrix.encode(w)
    assert got.meta() == want.meta()
    for k, a in want.arrays().items():
        np.testing.assert_array_equal(got.arrays()[k], a)
    assert sorted(set(asked)) == [(r, min(r + 1, 61)) for r in range(61)] and len(asked) == 2 * 61
    with pytest.raises(ValueError, match="gave shape"):
        SparseHuffmanMatrix.encode_rows((61, 37), lambda r0, r1: w[r0 : r1 + 1])
    bad = w.copy()
    bad[30, 3] = np.nan
    with pytest.raises(UsageError, match="finite"):
        SparseHuffmanMatrix.encode_rows(bad.shape, lambda r0, r1: bad[r0:r1])
