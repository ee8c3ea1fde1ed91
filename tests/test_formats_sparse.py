"""csr, csc, coo: artifact layout, narrowest index dtypes, the checks on pointers and indices, and that
the three layouts hold the same entries (csc is csr of the transpose, coo csr's rows spelled out)."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest

import nncompress.formats as formats
from nncompress.errors import InputError
from nncompress.formats import base
from nncompress.formats.sparse import COO, CSC, CSR, SparseFormat

U8, U16, U32 = np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.uint32)
W3 = np.array([[1, 0, 2], [0, 0, 0], [0, 3, 4]], np.float32)
CLASSES: dict[str, type[SparseFormat]] = {"csr": CSR, "csc": CSC, "coo": COO}

# The stored arrays of W3, in artifact order: the layout each format promises.
W3_ARRAYS: dict[str, dict[str, list[float]]] = {
    "csr": {"values": [1, 2, 3, 4], "col_idx": [0, 2, 1, 2], "row_ptr": [0, 2, 2, 4]},
    "csc": {"values": [1, 3, 2, 4], "row_idx": [0, 2, 0, 2], "col_ptr": [0, 1, 2, 4]},
    "coo": {"values": [1, 2, 3, 4], "row_idx": [0, 0, 2, 2], "col_idx": [0, 2, 1, 2]},
}


def test_public_names_and_registry() -> None:
    assert (formats.CSR, formats.CSC, formats.COO) == (CSR, CSC, COO)
    for name, cls in CLASSES.items():
        assert formats.FORMATS[name] is cls and cls.name == name


@pytest.mark.parametrize("name", list(CLASSES))
def test_artifact_layout(name: str) -> None:
    fmt = CLASSES[name].encode(W3)
    arrays = fmt.arrays()
    assert list(arrays) == list(W3_ARRAYS[name])  # names and their order
    assert {k: a.tolist() for k, a in arrays.items()} == W3_ARRAYS[name]
    assert arrays["values"].dtype == np.float32
    assert all(a.dtype == U8 for k, a in arrays.items() if k != "values")
    assert fmt.meta() == {"shape": [3, 3], "nnz": 4}
    # the attributes the native wrapper and tests read are the stored arrays themselves
    assert all(getattr(fmt, k) is a for k, a in arrays.items())


def _one(shape: tuple[int, int], *cells: tuple[int, int]) -> np.ndarray:
    w = np.zeros(shape, np.float32)
    for r, c in cells:
        w[r, c] = 1
    return w


# (format, matrix, dtypes of its two index arrays, nbytes): an index holds its dimension - 1 (not its
# largest value), a pointer holds nnz, each in the narrowest unsigned dtype.
DTYPE_CASES = [
    ("csr", np.eye(200, 256), (U8, U8), 200 * 4 + 200 + 201),
    ("csr", np.eye(300, 257), (U16, U16), 257 * 4 + 257 * 2 + 301 * 2),
    ("csr", np.ones((2, 70000)), (U32, U32), 140000 * 8 + 3 * 4),
    ("csr", _one((2, 300), (0, 0)), (U16, U8), 4 + 2 + 3),
    ("csc", np.eye(256, 200), (U8, U8), 200 * 4 + 200 + 201),
    ("csc", np.eye(257, 300), (U16, U16), 257 * 4 + 257 * 2 + 301 * 2),
    ("csc", np.ones((70000, 2)), (U32, U32), 140000 * 8 + 3 * 4),
    ("csc", np.eye(300, 2), (U16, U8), 2 * 4 + 2 * 2 + 3),
    ("coo", np.eye(256, 256), (U8, U8), 256 * 6),
    ("coo", _one((300, 4), (0, 3), (299, 1)), (U16, U8), 2 * 4 + 2 * 2 + 2),
    ("coo", _one((4, 300), (0, 0)), (U8, U16), 4 + 1 + 2),
    ("coo", _one((70000, 2), (69999, 1)), (U32, U8), 4 + 4 + 1),
]


@pytest.mark.parametrize(("name", "w", "dtypes", "nbytes"), DTYPE_CASES)
def test_index_dtypes_are_the_narrowest(
    name: str, w: np.ndarray, dtypes: tuple[np.dtype[Any], np.dtype[Any]], nbytes: int
) -> None:
    fmt = CLASSES[name].encode(w)
    assert tuple(a.dtype for a in fmt.index_arrays()) == dtypes
    assert fmt.nbytes == nbytes


def test_coo_entries_are_row_major() -> None:
    w = _one((300, 4), (299, 1), (0, 3))
    w[0, 3], w[299, 1] = 1.5, -2
    a = COO.encode(w).arrays()
    assert a["row_idx"].tolist() == [0, 299] and a["col_idx"].tolist() == [3, 1]
    assert a["values"].tolist() == [1.5, -2]


def _arrays(name: str, **changes: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    fmt = CLASSES[name].encode(W3)
    arrays: dict[str, Any] = dict(fmt.arrays())
    meta: dict[str, Any] = dict(fmt.meta())
    for key, value in changes.items():
        assert key in arrays or key in meta, key  # a misspelt key would test something else
        (arrays if key in arrays else meta)[key] = value
    return arrays, meta


def u8(*v: int) -> np.ndarray:
    return np.array(v, np.uint8)


CORRUPTIONS = [
    ("csr", {"col_idx": u8(0, 2, 1, 3)}, "array col_idx holds 3, not below 3"),
    ("csr", {"col_idx": u8(2, 0, 1, 2)}, "col_idx is not strictly increasing within a segment"),
    ("csr", {"col_idx": u8(0, 0, 1, 2)}, "col_idx is not strictly increasing within a segment"),
    ("csr", {"row_ptr": u8(0, 2, 1, 4)}, "row_ptr is not monotone"),
    ("csr", {"row_ptr": u8(0, 2, 2, 5)}, "row_ptr must run from 0 to 4"),
    ("csr", {"row_ptr": u8(0, 2, 4)}, "row_ptr has 3 entries, expected 4"),
    ("csr", {"row_ptr": np.array([0, 2, 2, 4], np.int64)}, "row_ptr must be a 1-D unsigned"),
    ("csr", {"values": np.ones(3, np.float32)}, "values has shape"),
    ("csr", {"values": np.ones(4, np.float64)}, "values must be float32"),
    ("csr", {"nnz": 10}, "meta nnz=10 is not an integer in"),
    ("csc", {"row_idx": u8(0, 3, 0, 2)}, "array row_idx holds 3, not below 3"),
    ("csc", {"row_idx": u8(0, 2, 2, 0)}, "row_idx is not strictly increasing within a segment"),
    ("csc", {"col_ptr": u8(0, 3, 2, 4)}, "col_ptr is not monotone"),
    ("csc", {"col_ptr": u8(1, 1, 2, 4)}, "col_ptr must run from 0 to 4"),
    ("csc", {"shape": [3, 4]}, "col_ptr has 4 entries, expected 5"),
    ("coo", {"row_idx": u8(0, 0, 3, 2)}, "array row_idx holds 3, not below 3"),
    ("coo", {"col_idx": u8(0, 2, 1, 9)}, "array col_idx holds 9, not below 3"),
    ("coo", {"col_idx": u8(0, 2, 2, 1)}, "strictly increasing row-major"),
    ("coo", {"row_idx": u8(0, 0, 2, 2), "col_idx": u8(0, 0, 1, 2)}, "strictly increasing row-major"),
    ("coo", {"row_idx": u8(0, 0, 2)}, "row_idx has 3 entries, expected 4"),
]


@pytest.mark.parametrize(("name", "changes", "match"), CORRUPTIONS)
def test_corruption_is_an_input_error(name: str, changes: dict[str, object], match: str) -> None:
    arrays, meta = _arrays(name, **changes)
    with pytest.raises(InputError, match=f"^{name} tensor: .*{match}"):
        CLASSES[name].from_arrays(arrays, meta)


@pytest.mark.parametrize(("name", "key"), [("csr", "col_idx"), ("csc", "row_idx")])
def test_a_segment_may_restart_at_a_lower_index(name: str, key: str) -> None:
    arrays, meta = _arrays(name)
    idx = arrays[key].tolist()
    assert any(b < a for a, b in itertools.pairwise(idx))  # the next row (column) starts below this one's end
    np.testing.assert_array_equal(CLASSES[name].from_arrays(arrays, meta).to_dense(), W3)


def _sparse(shape: tuple[int, int], seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    w = rng.standard_normal(shape).astype(np.float32)
    w[rng.random(shape) < 0.7] = 0
    w[1], w[:, 2] = 0, 0  # an empty row and an empty column
    return w


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_three_layouts_hold_the_same_entries(seed: int) -> None:
    w = _sparse((9, 13), seed)
    csr, csc, coo = CSR.encode(w), CSC.encode(w), COO.encode(w)
    t = CSR.encode(np.ascontiguousarray(w.T))
    np.testing.assert_array_equal(csc.values, t.values)
    np.testing.assert_array_equal(csc.row_idx, t.col_idx)
    np.testing.assert_array_equal(csc.col_ptr, t.row_ptr)
    np.testing.assert_array_equal(coo.values, csr.values)
    np.testing.assert_array_equal(coo.col_idx, csr.col_idx)
    np.testing.assert_array_equal(coo.row_idx, np.repeat(np.arange(9), np.diff(csr.row_ptr.astype(int))))
    for fmt in (csr, csc, coo):
        rows, cols = fmt.coordinates()
        np.testing.assert_array_equal(fmt.values, w[rows, cols])
        assert fmt.values.size == np.count_nonzero(w)


@pytest.mark.parametrize("name", list(CLASSES))
def test_dot_over_several_batch_chunks(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    w = _sparse((9, 13), 3)
    fmt = CLASSES[name].encode(w)
    monkeypatch.setattr(base, "_BATCH_ELEMS", 2 * fmt.values.size)  # chunks of 2 rows of x
    x = np.random.default_rng(4).standard_normal((7, 13)).astype(np.float32)
    ref = x.astype(np.float64) @ w.T.astype(np.float64)
    np.testing.assert_allclose(fmt.dot(x), ref, rtol=1e-5, atol=1e-6)
