"""ham: the documented layout read back independently, word-boundary cases, entropy bound, corruption."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from nncompress.errors import InputError
from nncompress.formats.ham import HuffmanMatrix

from .conftest import canonical_codes, quantized


def read_ham(arrays: dict[str, np.ndarray], shape: tuple[int, int]) -> np.ndarray:
    """Decode ham arrays with nothing but the module docstring: MSB-first words, per-row bit offsets."""
    bits = "".join(f"{int(w):032b}" for w in arrays["stream"])
    table = canonical_codes([int(n) for n in arrays["code_len"]])
    out = np.zeros(shape, np.float32)
    for r in range(shape[0]):
        p = int(arrays["row_bits"][r])
        for c in range(shape[1]):
            q = p + 1
            while bits[p:q] not in table:
                q += 1
            out[r, c] = arrays["codebook"][table[bits[p:q]]]
            p = q
        assert p == int(arrays["row_bits"][r + 1])
    return out


def test_the_documented_layout_decodes_independently() -> None:
    w = quantized((9, 23), 12, 0.6, 0)
    fmt = HuffmanMatrix.encode(w)
    arrays = fmt.arrays()
    assert arrays["code_len"].dtype == np.uint8 and arrays["stream"].dtype == np.uint32
    assert arrays["row_bits"].dtype == np.uint16 and arrays["row_bits"][-1] == fmt.meta()["nbits"]
    np.testing.assert_array_equal(read_ham(arrays, w.shape), w)


def test_rows_start_at_every_bit_offset_and_codes_straddle_words() -> None:
    # Three values give codes of 1, 2 and 2 bits; one 2-bit code per 32-entry row makes every row
    # 33 bits long, so row r starts at bit 33 r: offsets mod 32 run through 0..31.
    w = np.full((64, 32), 5.0, np.float32)
    w[:, 31] = np.where(np.arange(64) % 2, 1.0, 2.0)  # row 0's 2-bit code sits on bits 31 and 32
    fmt = HuffmanMatrix.encode(w)
    lens = dict(zip(fmt.codebook.tolist(), fmt.code_len.tolist(), strict=True))
    assert lens == {1.0: 2, 2.0: 2, 5.0: 1}
    starts = fmt.row_bits[:-1].astype(np.int64)
    assert set((starts % 32).tolist()) == set(range(32))
    entry_len = np.vectorize(lens.get)(w).ravel()
    entry_start = np.cumsum(entry_len) - entry_len
    assert np.any(entry_start % 32 + entry_len > 32)  # a 2-bit code crosses a word boundary
    np.testing.assert_array_equal(fmt.to_dense(), w)
    np.testing.assert_array_equal(HuffmanMatrix.from_arrays(fmt.arrays(), fmt.meta()).to_dense(), w)


def test_long_codes_straddle_words() -> None:
    rng = np.random.default_rng(3)
    values = np.arange(1, 41, dtype=np.float32)
    w = values[np.minimum(rng.geometric(0.5, size=(50, 37)) - 1, 39)]  # skewed: codes up to ~15 bits
    fmt = HuffmanMatrix.encode(w)
    lens = fmt.code_len.astype(np.int64)[np.searchsorted(fmt.codebook, w.ravel())]
    starts = np.cumsum(lens) - lens
    assert np.any((starts % 32 + lens > 32) & (lens >= 8))
    np.testing.assert_array_equal(fmt.to_dense(), w)
    x = rng.standard_normal((2, 37)).astype(np.float32)
    np.testing.assert_allclose(fmt.dot(x), x.astype(np.float64) @ w.T.astype(np.float64), rtol=1e-5)


def test_payload_is_within_the_huffman_bound_of_the_entropy() -> None:
    # 90% zeros, 31 other values. Huffman codes the zero with at least one bit where the entropy
    # asks for 0.15, so the 1.05 * H target is out of reach (measured: about 1.55 * H). What holds
    # for any optimal prefix code with p1 = P(most frequent) >= 1/2 is
    # H <= bits/symbol <= H + 2 - p1 - h(p1): give that symbol 1 bit and code the rest within a
    # bit of their own entropy (h is the binary entropy).
    w = quantized((300, 300), 31, 0.9, 1)
    fmt = HuffmanMatrix.encode(w)
    _, counts = np.unique(w, return_counts=True)
    assert counts.size == 32
    p = counts / w.size
    entropy = float(-(p * np.log2(p)).sum())
    p1 = p.max()
    redundancy = 2 - p1 + p1 * np.log2(p1) + (1 - p1) * np.log2(1 - p1)
    nbits = fmt.meta()["nbits"]
    assert w.size * entropy <= nbits <= w.size * (entropy + redundancy)
    overhead = (
        fmt.codebook.nbytes + fmt.code_len.nbytes + fmt.row_bits.nbytes + 4 * 2
    )  # tables, offsets, tail
    assert fmt.nbytes * 8 <= nbits + 8 * overhead


def _corrupt(**changes: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    fmt = HuffmanMatrix.encode(quantized((10, 20), 6, 0.5, 2))
    arrays: dict[str, Any] = dict(fmt.arrays())
    meta: dict[str, Any] = dict(fmt.meta())
    for key, value in changes.items():
        if key in arrays:
            arrays[key] = value(arrays[key].copy()) if callable(value) else value
        else:
            meta[key] = value
    return arrays, meta


def _bump(a: np.ndarray, i: int, by: int) -> np.ndarray:
    a[i] = int(a[i]) + by
    return a


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"stream": lambda s: s[:-2]}, "words for"),  # truncated stream
        ({"nbits": 10**6}, "words for"),
        ({"row_bits": lambda r: _bump(r, -1, 5)}, "row_bits must run from 0"),  # offset past the end
        ({"row_bits": lambda r: _bump(r, 3, -60)}, "not monotone"),  # offsets go backwards
        ({"row_bits": lambda r: _bump(r, 3, 1)}, "recorded bit offset"),  # a row ends elsewhere
        ({"code_len": lambda c: _bump(c, 0, 1)}, "Kraft"),
        ({"code_len": lambda c: c.astype(np.int64)}, "uint8"),
        ({"codebook": lambda c: c[::-1].copy()}, "strictly increasing"),
        ({"k": 8}, "codebook has shape"),
        ({"shape": [10, 200]}, "fewer than 200"),
    ],
)
def test_corruption_is_an_input_error(changes: dict[str, object], match: str) -> None:
    arrays, meta = _corrupt(**changes)
    with pytest.raises(InputError, match=match):
        HuffmanMatrix.from_arrays(arrays, meta)


def test_a_flipped_stream_bit_never_decodes_silently_into_a_wrong_length() -> None:
    fmt = HuffmanMatrix.encode(quantized((10, 20), 6, 0.5, 2))
    stream = fmt.stream.copy()
    stream[0] ^= np.uint32(1 << 31)  # the first code changes; the row can no longer end on its offset
    arrays = {**fmt.arrays(), "stream": stream}
    try:
        got = HuffmanMatrix.from_arrays(arrays, fmt.meta())
    except InputError:
        return
    assert got.to_dense().shape == fmt.shape  # a same-length code swap is a valid, different decode
