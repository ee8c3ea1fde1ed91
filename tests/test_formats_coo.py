"""coo: row-major coordinates, narrowest index dtypes, order and range checks."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from nncompress.errors import InputError
from nncompress.formats.coo import COO


def test_layout_and_dtypes() -> None:
    w = np.zeros((300, 4), np.float32)
    w[[0, 299], [3, 1]] = [1.5, -2]
    fmt = COO.encode(w)
    a = fmt.arrays()
    assert a["row_idx"].tolist() == [0, 299] and a["col_idx"].tolist() == [3, 1]
    assert a["row_idx"].dtype == np.uint16 and a["col_idx"].dtype == np.uint8
    assert fmt.nbytes == 2 * 4 + 2 * 2 + 2


def _arrays(**changes: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    fmt = COO.encode(np.array([[1, 0, 2], [0, 0, 0], [0, 3, 4]], np.float32))
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
        ({"row_idx": u8(0, 0, 3, 2)}, "not below 3"),
        ({"col_idx": u8(0, 2, 1, 9)}, "not below 3"),
        ({"col_idx": u8(0, 2, 2, 1)}, "strictly increasing row-major"),
        ({"row_idx": u8(0, 0, 2, 2), "col_idx": u8(0, 0, 1, 2)}, "strictly increasing row-major"),
        ({"row_idx": u8(0, 0, 2)}, "row_idx has 3 entries"),
    ],
)
def test_corruption_is_an_input_error(changes: dict[str, object], match: str) -> None:
    arrays, meta = _arrays(**changes)
    with pytest.raises(InputError, match=match):
        COO.from_arrays(arrays, meta)
