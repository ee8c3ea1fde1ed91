"""dense: the float32 baseline and its checks."""

from __future__ import annotations

import numpy as np
import pytest

from nncompress.errors import InputError
from nncompress.formats.dense import Dense


def test_dense_is_the_matrix_itself() -> None:
    w = np.arange(12, dtype=np.float64).reshape(3, 4)  # encoding stores float32
    fmt = Dense.encode(w)
    assert fmt.arrays()["values"].dtype == np.float32 and fmt.nbytes == 48 and fmt.bits_per_weight == 32.0
    np.testing.assert_array_equal(fmt.to_dense(), w)


@pytest.mark.parametrize(
    ("arrays", "meta", "match"),
    [
        ({"values": np.zeros((3, 4), np.float64)}, {"shape": [3, 4]}, "float32"),
        ({"values": np.zeros(12, np.float32)}, {"shape": [3, 4]}, "shape"),
        ({"values": np.zeros((3, 4), np.float32)}, {"shape": [3, -4]}, "not an integer"),
        ({"values": np.zeros((3, 4), np.float32)}, {"shape": [3, 4], "k": 1}, "meta keys"),
        ({"values": np.zeros((3, 4), np.float32), "x": np.zeros(1)}, {"shape": [3, 4]}, "arrays"),
        ([], {"shape": [3, 4]}, "mappings"),
    ],
)
def test_corruption_is_an_input_error(arrays: object, meta: dict[str, object], match: str) -> None:
    with pytest.raises(InputError, match=match):
        Dense.from_arrays(arrays, meta)  # type: ignore[arg-type]
