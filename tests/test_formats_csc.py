"""csc: column-major storage, narrowest index dtypes, pointer and row checks."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from nncompress.errors import InputError
from nncompress.formats.csc import CSC


def test_layout_is_column_major() -> None:
    w = np.array([[1, 0, 2], [0, 0, 0], [0, 3, 4]], np.float32)
    a = CSC.encode(w).arrays()
    assert a["values"].tolist() == [1, 3, 2, 4]
    assert a["row_idx"].tolist() == [0, 2, 0, 2] and a["col_ptr"].tolist() == [0, 1, 2, 4]
    assert a["row_idx"].dtype == np.uint8 and a["col_ptr"].dtype == np.uint8
    assert CSC.encode(np.eye(300, 2, dtype=np.float32)).arrays()["row_idx"].dtype == np.uint16


def _arrays(**changes: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    fmt = CSC.encode(np.array([[1, 0, 2], [0, 0, 0], [0, 3, 4]], np.float32))
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
        ({"row_idx": u8(0, 3, 0, 2)}, "not below 3"),
        ({"row_idx": u8(0, 2, 2, 0)}, "strictly increasing within a segment"),
        ({"col_ptr": u8(0, 3, 2, 4)}, "not monotone"),
        ({"col_ptr": u8(1, 1, 2, 4)}, "run from 0 to 4"),
        ({"shape": [3, 4]}, "col_ptr has 4 entries"),
    ],
)
def test_corruption_is_an_input_error(changes: dict[str, object], match: str) -> None:
    arrays, meta = _arrays(**changes)
    with pytest.raises(InputError, match=match):
        CSC.from_arrays(arrays, meta)
