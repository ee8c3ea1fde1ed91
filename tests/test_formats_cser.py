"""cser: the paper's arrays on a worked example, the implicit most frequent value, corruption."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from nncompress.errors import InputError
from nncompress.formats.cser import CSER


def test_arrays_of_a_small_example() -> None:
    w = np.array(
        [
            [0, 3, 0, 2, 3, 0],
            [0, 0, 0, 0, 0, 0],
            [4, 0, 4, 4, 0, 2],
        ],
        np.float32,
    )
    fmt = CSER.encode(w)
    a = fmt.arrays()
    assert a["omega"].tolist() == [0, 2, 3, 4]  # implicit zero first, then the others increasing
    assert a["w_idx"].tolist() == [1, 2, 1, 3]  # row 0: value 2, value 3; row 2: value 2, value 4
    assert a["w_ptr"].tolist() == [0, 1, 3, 4, 7]
    assert a["col_idx"].tolist() == [3, 1, 4, 5, 0, 2, 3]
    assert a["row_ptr"].tolist() == [0, 2, 2, 4]
    assert all(v.dtype == np.uint8 for k, v in a.items() if k != "omega")
    assert fmt.meta() == {"shape": [3, 6], "k": 4, "nnz": 7, "groups": 4}
    assert fmt.nbytes == 4 * 4 + 7 + 4 + 5 + 4
    x = np.arange(1, 7, dtype=np.float32)
    np.testing.assert_allclose(fmt.dot(x), w @ x)


def test_the_most_frequent_value_is_implicit_even_when_it_is_not_zero() -> None:
    rng = np.random.default_rng(0)
    w = rng.choice(np.array([-1.0, 0.0, 0.5, 2.0], np.float32), p=[0.1, 0.1, 0.7, 0.1], size=(20, 30))
    fmt = CSER.encode(w)
    assert fmt.omega[0] == 0.5 and fmt.meta()["nnz"] == np.count_nonzero(w != 0.5)
    np.testing.assert_array_equal(fmt.to_dense(), w)
    x = rng.standard_normal((4, 30)).astype(np.float32)
    np.testing.assert_allclose(
        fmt.dot(x), x.astype(np.float64) @ w.T.astype(np.float64), rtol=1e-5, atol=1e-6
    )


def test_zero_wins_a_tie_for_most_frequent() -> None:
    w = np.array([[0, 0, 1, 1]], np.float32)
    assert CSER.encode(w).omega.tolist() == [0, 1]


def test_index_dtypes_widen_with_the_matrix() -> None:
    w = np.zeros((2, 300), np.float32)
    w[0, 299] = 1
    w[1, np.arange(0, 300, 2)] = np.arange(150, dtype=np.float32) * 0.5 + 2  # 150 groups in a row
    a = CSER.encode(w).arrays()
    assert a["col_idx"].dtype == np.uint16 and a["w_idx"].dtype == np.uint8
    assert a["w_ptr"].dtype == np.uint8 and a["row_ptr"].dtype == np.uint8


def _arrays(**changes: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    w = np.array([[0, 3, 0, 2, 3, 0], [0, 0, 0, 0, 0, 0], [4, 0, 4, 4, 0, 2]], np.float32)
    fmt = CSER.encode(w)
    arrays: dict[str, Any] = dict(fmt.arrays())
    meta: dict[str, Any] = dict(fmt.meta())
    for key, value in changes.items():
        (arrays if key in arrays else meta)[key] = value
    return arrays, meta


def u8(*v: int) -> np.ndarray:
    return np.array(v, np.uint8)


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"w_idx": u8(1, 2, 1, 4)}, "not below 4"),  # value index past the codebook
        ({"w_idx": u8(1, 2, 0, 3)}, "implicit value"),
        ({"w_idx": u8(2, 1, 1, 3)}, "w_idx is not strictly increasing"),
        ({"col_idx": u8(3, 1, 4, 5, 0, 2, 6)}, "not below 6"),  # column past the matrix
        ({"col_idx": u8(3, 1, 3, 5, 0, 2, 3)}, "stores a cell twice"),
        ({"col_idx": u8(3, 4, 1, 5, 0, 2, 3)}, "col_idx is not strictly increasing"),
        ({"w_ptr": u8(0, 1, 1, 4, 7)}, "w_ptr is not strictly increasing"),  # an empty group
        ({"w_ptr": u8(0, 1, 3, 4, 8)}, "w_ptr must run from 0 to 7"),
        ({"row_ptr": u8(0, 2, 1, 4)}, "row_ptr is not monotone"),
        ({"row_ptr": u8(0, 2, 2)}, "row_ptr has 3 entries"),
        ({"groups": 5}, "w_idx has 4 entries"),
        ({"omega": np.array([0, 3, 2, 4], np.float32)}, "strictly increasing"),
        ({"omega": np.array([np.nan, 2, 3, 4], np.float32)}, "NaN"),
    ],
)
def test_corruption_is_an_input_error(changes: dict[str, object], match: str) -> None:
    arrays, meta = _arrays(**changes)
    with pytest.raises(InputError, match=match):
        CSER.from_arrays(arrays, meta)
