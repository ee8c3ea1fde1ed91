"""csr: narrowest index dtypes and the checks on its pointers and columns."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from nncompress.errors import InputError
from nncompress.formats.csr import CSR


def test_index_dtypes_are_the_narrowest() -> None:
    small = CSR.encode(np.eye(200, 256, dtype=np.float32)).arrays()
    assert small["col_idx"].dtype == np.uint8 and small["row_ptr"].dtype == np.uint8
    wide = CSR.encode(np.eye(300, 257, dtype=np.float32)).arrays()
    assert wide["col_idx"].dtype == np.uint16 and wide["row_ptr"].dtype == np.uint16
    huge = CSR.encode(np.ones((2, 70000), np.float32)).arrays()
    assert huge["col_idx"].dtype == np.uint32 and huge["row_ptr"].dtype == np.uint32
    fmt = CSR.encode(np.eye(200, 256, dtype=np.float32))
    assert fmt.nbytes == 200 * 4 + 200 + 201


def _arrays(**changes: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    w = np.array([[1, 0, 2], [0, 0, 0], [0, 3, 4]], np.float32)
    fmt = CSR.encode(w)
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
        ({"col_idx": u8(0, 2, 1, 3)}, "not below 3"),
        ({"col_idx": u8(2, 0, 1, 2)}, "strictly increasing within a segment"),
        ({"col_idx": u8(0, 0, 1, 2)}, "strictly increasing within a segment"),
        ({"row_ptr": u8(0, 2, 1, 4)}, "not monotone"),
        ({"row_ptr": u8(0, 2, 2, 5)}, "run from 0 to 4"),
        ({"row_ptr": u8(0, 2, 4)}, "has 3 entries"),
        ({"row_ptr": np.array([0, 2, 2, 4], np.int64)}, "unsigned"),
        ({"values": np.ones(3, np.float32)}, "values has shape"),
        ({"nnz": 10}, "not an integer in"),
    ],
)
def test_corruption_is_an_input_error(changes: dict[str, object], match: str) -> None:
    arrays, meta = _arrays(**changes)
    with pytest.raises(InputError, match=match):
        CSR.from_arrays(arrays, meta)


def test_a_row_may_restart_at_a_lower_column() -> None:
    arrays, meta = _arrays()
    np.testing.assert_array_equal(arrays["col_idx"], [0, 2, 1, 2])  # row 2 starts below row 0's end
    np.testing.assert_array_equal(CSR.from_arrays(arrays, meta).to_dense()[2], [0, 3, 4])
