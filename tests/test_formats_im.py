"""im: fixed-width indices, the documented layout read back independently, word boundaries, corruption."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from nncompress.errors import InputError
from nncompress.formats import _bits
from nncompress.formats.im import IndexMap, index_bits


def test_index_width_is_ceil_log2_k() -> None:
    ks = [1, 2, 3, 4, 5, 256, 257, 65536]
    assert [index_bits(k) for k in ks] == [0, 1, 2, 2, 3, 8, 9, 16]


def test_rows_start_at_every_bit_offset_and_indices_straddle_words() -> None:
    # k = 5 gives 3-bit indices; 11 columns make 33-bit rows, so row r starts at bit 33 r.
    w = np.arange(40 * 11, dtype=np.float32).reshape(40, 11) % 5
    fmt = IndexMap.encode(w)
    assert fmt.meta() == {"shape": [40, 11], "k": 5, "bits": 3}
    assert {(r * 11 * 3) % 32 for r in range(40)} == set(range(32))
    bits = "".join(f"{int(x):032b}" for x in fmt.stream)
    for r in range(40):
        for c in range(11):
            p = (r * 11 + c) * 3  # the documented position; p % 32 == 30 or 31 straddles two words
            assert fmt.codebook[int(bits[p : p + 3], 2)] == w[r, c]
    assert fmt.nbytes == 5 * 4 + 4 * _bits.stream_words(40 * 11 * 3)
    np.testing.assert_array_equal(IndexMap.from_arrays(fmt.arrays(), fmt.meta()).to_dense(), w)


def test_full_16_bit_codebook() -> None:
    w = np.random.default_rng(0).permutation(2**16).astype(np.float32).reshape(64, 1024)
    fmt = IndexMap.encode(w)
    assert fmt.meta()["bits"] == 16 and fmt.nbytes == 2**16 * 4 + 4 * (2**16 // 2 + 1)
    np.testing.assert_array_equal(fmt.to_dense(), w)


def test_one_value_needs_no_index_bits() -> None:
    fmt = IndexMap.encode(np.full((30, 40), 0.5, np.float32))
    assert fmt.meta()["bits"] == 0 and fmt.nbytes == 4 + 4  # the codebook entry and the guard word
    np.testing.assert_array_equal(fmt.dot(np.ones(40, np.float32)), np.full(30, 20.0))


def _arrays(**changes: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    fmt = IndexMap.encode(np.arange(60, dtype=np.float32).reshape(6, 10) % 5)
    arrays: dict[str, Any] = dict(fmt.arrays())
    meta: dict[str, Any] = dict(fmt.meta())
    for key, value in changes.items():
        (arrays if key in arrays else meta)[key] = value
    return arrays, meta


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"stream": np.array([0xFFFFFFFF] * 5 + [0xFFFFF000, 0], np.uint32)}, "index 7 into a codebook of 5"),
        ({"stream": np.zeros(3, np.uint32)}, "words for 180 bits"),
        ({"bits": 4}, "does not match k=5"),
        ({"k": 4, "bits": 2}, "codebook has shape"),
        ({"codebook": np.array([0, 1, 1, 3, 4], np.float32)}, "strictly increasing"),
        ({"codebook": np.arange(5, dtype=np.float64)}, "float32"),
        ({"shape": [6, 11]}, "words for 198 bits"),
        ({"shape": [6]}, "pair"),
    ],
)
def test_corruption_is_an_input_error(changes: dict[str, object], match: str) -> None:
    arrays, meta = _arrays(**changes)
    with pytest.raises(InputError, match=match):
        IndexMap.from_arrays(arrays, meta)
