"""The format contract, for every registered format: exact round trips, dot, byte accounting, corruption."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nncompress.errors import InputError, UsageError
from nncompress.formats import FORMATS, Format, load_format
from nncompress.formats.base import segment_sum, uint_for
from nncompress.ir import CompressedTensor

CODEBOOK_FORMATS = ("im", "cser", "ham", "sham", "cabac")
# The structured approximations (lowrank, sss, dct, psm) are lossy: tests/test_formats_<name>.py cover them.
LOSSLESS = ["dense", "csr", "csc", "coo", "im", "cser", "ham", "sham", "cabac"]
STRUCTURED = ["lowrank", "sss", "dct", "psm"]  # fitted by their passes


def quantized(shape: tuple[int, int], k: int, sparsity: float, seed: int) -> np.ndarray:
    """A matrix with at most k distinct values, about ``sparsity`` of them zero."""
    rng = np.random.default_rng(seed)
    cb = rng.standard_normal(k).astype(np.float32) * 10.0 ** rng.uniform(-3, 3)
    w = cb[rng.integers(0, k, size=shape)]
    w[rng.random(shape) < sparsity] = 0
    return w


def check_contract(fmt: Format, w: np.ndarray, seed: int = 0) -> None:
    """Every promise of the contract on one encoded matrix."""
    assert isinstance(fmt, CompressedTensor)
    assert fmt.shape == w.shape and fmt.dtype == np.float32
    dense = fmt.to_dense()
    assert dense.dtype == np.float32 and dense.shape == w.shape
    np.testing.assert_array_equal(dense, w)
    arrays, meta = fmt.arrays(), fmt.meta()
    assert all(isinstance(a, np.ndarray) and a.dtype.kind in "uif" for a in arrays.values())
    assert fmt.nbytes == sum(a.nbytes for a in arrays.values())
    meta = json.loads(json.dumps(meta))  # what an artifact gives back
    again = type(fmt).from_arrays(arrays, meta)
    np.testing.assert_array_equal(again.to_dense(), w)
    assert again.nbytes == fmt.nbytes
    rng = np.random.default_rng(seed)
    w64 = w.astype(np.float64)
    for x in (rng.standard_normal(w.shape[1]), rng.standard_normal((3, w.shape[1]))):
        x = x.astype(np.float32)
        y = fmt.dot(x)
        assert y.dtype == np.float32 and y.shape == (*x.shape[:-1], w.shape[0])
        ref = x.astype(np.float64) @ w64.T
        scale = np.abs(x).astype(np.float64) @ np.abs(w64).T  # rounding scales with the terms, not the sum
        # rtol 1e-5 (dot accumulates in float64); the tiny atol only covers exact cancellations
        assert np.all(np.abs(y - ref) <= 1e-5 * np.abs(ref) + 1e-12 * scale)


def test_registry_names_match_classes() -> None:
    # cabac came after the structured formats: appended, so the older ones keep their order
    assert list(FORMATS) == [*LOSSLESS[:-1], *STRUCTURED, "cabac"]
    for name, cls in FORMATS.items():
        assert cls.name == name and issubclass(cls, Format)


@st.composite
def matrices(draw: st.DrawFn) -> np.ndarray:
    shape = (draw(st.integers(0, 60)), draw(st.integers(0, 70)))
    k = draw(st.integers(1, 300))
    sparsity = draw(st.sampled_from([0.0, 0.5, 0.9, 1.0]))
    w = quantized(shape, k, sparsity, draw(st.integers(0, 2**32 - 1)))
    if shape[0] and shape[1] and draw(st.booleans()):  # empty rows and columns
        w[draw(st.integers(0, shape[0] - 1))] = 0
        w[:, draw(st.integers(0, shape[1] - 1))] = 0
    return w


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(matrices())
def test_every_format_round_trips_any_quantized_matrix(w: np.ndarray) -> None:
    for name in LOSSLESS:
        check_contract(FORMATS[name].encode(w), w)


@pytest.mark.parametrize("name", LOSSLESS)
@pytest.mark.parametrize(
    "w",
    [
        np.array([[2.5]], np.float32),
        np.array([[0.0]], np.float32),
        np.zeros((0, 5), np.float32),
        np.zeros((4, 0), np.float32),
        np.zeros((7, 9), np.float32),
        np.full((5, 6), -3.25, np.float32),  # one distinct value, no zero
        np.eye(33, 40, dtype=np.float32) * 7,
        np.arange(12, dtype=np.float32).reshape(3, 4) - 5,  # every entry distinct
    ],
    ids=["1x1", "1x1-zero", "0x5", "4x0", "zeros", "constant", "eye", "distinct"],
)
def test_edge_cases(name: str, w: np.ndarray) -> None:
    check_contract(FORMATS[name].encode(w), w)


@pytest.mark.parametrize("name", LOSSLESS)
def test_large_codebook_with_few_rows(name: str) -> None:
    w = quantized((3, 2000), 1500, 0.3, 7)  # k in the thousands, wide rows
    check_contract(FORMATS[name].encode(w), w)


@pytest.mark.parametrize("name", CODEBOOK_FORMATS)
def test_codebook_formats_refuse_unquantized_matrices(name: str) -> None:
    w = np.arange(2**16 + 1, dtype=np.float32).reshape(1, -1) + 1
    with pytest.raises(UsageError, match="quantize first"):
        FORMATS[name].encode(w)
    with pytest.raises(UsageError, match="NaN"):
        FORMATS[name].encode(np.array([[1.0, np.nan]], np.float32))


@pytest.mark.parametrize("name", LOSSLESS)
def test_bad_encode_and_dot_calls_are_usage_errors(name: str) -> None:
    cls = FORMATS[name]
    with pytest.raises(UsageError, match="2-D"):
        cls.encode(np.zeros((2, 3, 4), np.float32))
    with pytest.raises(UsageError, match="parameter"):
        cls.encode(np.zeros((2, 3), np.float32), bogus=1)
    fmt = cls.encode(np.ones((2, 3), np.float32))
    with pytest.raises(UsageError, match="shape"):
        fmt.dot(np.ones(4, np.float32))


def test_load_format_dispatches_and_names_the_file() -> None:
    w = quantized((5, 6), 4, 0.5, 1)
    fmt = FORMATS["ham"].encode(w)
    np.testing.assert_array_equal(load_format("ham", fmt.arrays(), fmt.meta()).to_dense(), w)
    with pytest.raises(InputError, match="unknown tensor format 'zip'"):
        load_format("zip", {}, {}, path="m.nnc")
    with pytest.raises(InputError, match=r"^m\.nnc: ham tensor: .*Re-create"):
        load_format("ham", {**fmt.arrays(), "stream": fmt.arrays()["stream"][:-1]}, fmt.meta(), path="m.nnc")


def test_helpers() -> None:
    assert [uint_for(v) for v in (0, 255, 256, 65535, 65536, 2**32)] == [
        np.uint8,
        np.uint8,
        np.uint16,
        np.uint16,
        np.uint32,
        np.uint64,
    ]
    v = np.arange(10, dtype=np.float64).reshape(1, -1)
    np.testing.assert_array_equal(segment_sum(v, np.array([0, 0, 3, 3, 10])), [[0, 3, 0, 42]])


# ---- corruption: random damage is an InputError or a valid decode, never another exception ----

_BASES = {
    "sparse": quantized((13, 37), 7, 0.7, 3),
    "wide-gaps": quantized((6, 600), 5, 0.98, 4),  # sham escapes
}


def _mutate(data: st.DataObject, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
    kind = data.draw(st.sampled_from(["flip", "flip", "truncate", "extend", "dtype", "meta"]))
    if kind == "meta" and meta:
        key = data.draw(st.sampled_from(sorted(meta)))
        value = meta[key]
        if isinstance(value, int) and data.draw(st.booleans()):
            meta[key] = value + data.draw(st.sampled_from([-1, 1, 7, -(2**40), 2**40]))
        elif data.draw(st.booleans()):
            del meta[key]
        else:
            meta[key] = data.draw(st.sampled_from([None, "x", 1.5, [1], [1, 2, 3], [-1, 4], True]))
        return
    if not arrays:
        return
    name = data.draw(st.sampled_from(sorted(arrays)))
    a = arrays[name]
    if kind == "flip":
        raw = a.copy().view(np.uint8).reshape(-1)
        if raw.size:
            raw[data.draw(st.integers(0, raw.size - 1))] ^= np.uint8(1 << data.draw(st.integers(0, 7)))
        arrays[name] = raw.view(a.dtype).reshape(a.shape)
    elif kind == "truncate":
        arrays[name] = a.reshape(-1)[: data.draw(st.integers(0, max(a.size - 1, 0)))]
    elif kind == "extend":
        arrays[name] = np.concatenate([a.reshape(-1), a.reshape(-1)[:1] if a.size else np.zeros(1, a.dtype)])
    elif kind == "dtype":
        with np.errstate(invalid="ignore"):  # NaN or Inf to an integer type: garbage is the point
            arrays[name] = a.astype(
                data.draw(st.sampled_from([np.int32, np.uint64, np.float64, np.uint16, np.uint8]))
            )


@pytest.mark.parametrize("base", list(_BASES))
@pytest.mark.parametrize("name", LOSSLESS)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_corruption_is_a_clean_input_error_or_a_valid_decode(
    name: str, base: str, data: st.DataObject
) -> None:
    fmt = FORMATS[name].encode(_BASES[base])
    arrays, meta = dict(fmt.arrays()), json.loads(json.dumps(fmt.meta()))
    for _ in range(data.draw(st.integers(1, 2))):
        _mutate(data, arrays, meta)
    try:
        got = FORMATS[name].from_arrays(arrays, meta)
    except InputError as e:
        assert "unexpected" not in str(e), str(e)  # caught by an explicit check, not the last guard
        assert "\n" not in str(e)
        return
    dense = got.to_dense()
    assert dense.shape == got.shape and dense.dtype == np.float32
    assert got.dot(np.ones(got.shape[1], np.float32)).shape == (got.shape[0],)


@pytest.mark.parametrize("name", LOSSLESS)
def test_encode_rows_equals_encode(name: str) -> None:
    w = quantized((23, 17), 5, 0.6, 3)
    got = FORMATS[name].encode_rows(w.shape, lambda r0, r1: w[r0:r1])
    want = FORMATS[name].encode(w)
    assert got.meta() == want.meta()
    for k, a in want.arrays().items():
        np.testing.assert_array_equal(got.arrays()[k], a)
