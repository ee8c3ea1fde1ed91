"""dct: sparse DCT / DST / DFT coefficients (DCTPass) within a budget, dot in the transform domain."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import scipy.fft

from nncompress.errors import InputError, UsageError
from nncompress.formats.dct import DCT
from nncompress.passes.dct import DCTPass

from .conftest import check_lossy_contract


def fit(w: np.ndarray, **options: Any) -> DCT:
    return DCTPass.fit(w, DCTPass.Options(**options))


def few_frequencies(kernel: str, shape: tuple[int, int], k: int, seed: int) -> np.ndarray:
    """A matrix whose transform has exactly k nonzero coefficients."""
    rng = np.random.default_rng(seed)
    c = np.zeros(shape)
    c.flat[rng.choice(c.size, k, replace=False)] = rng.standard_normal(k) * 3
    inv = scipy.fft.idctn if kernel == "dct" else scipy.fft.idstn
    return inv(c, norm="ortho").astype(np.float32)


@pytest.mark.parametrize("kernel", ["dct", "dst"])
def test_a_matrix_with_few_frequencies_is_recovered(kernel: str) -> None:
    w = few_frequencies(kernel, (24, 40), 30, 3)
    fmt = fit(w, kernel=kernel, budget=0.05)  # 48 floats allowed, 30 needed
    assert fmt.parameters <= 48
    np.testing.assert_allclose(fmt.to_dense(), w, atol=1e-5)
    check_lossy_contract(fmt)


def test_dft_recovers_a_few_sinusoids() -> None:
    i, j = np.meshgrid(np.arange(16), np.arange(20), indexing="ij")
    w = (np.cos(2 * np.pi * (3 * i / 16 + 2 * j / 20)) + 0.5 * np.sin(2 * np.pi * 5 * j / 20)).astype(
        np.float32
    )
    fmt = fit(w, kernel="dft", budget=0.05)
    np.testing.assert_allclose(fmt.to_dense(), w, atol=1e-5)
    check_lossy_contract(fmt)


@pytest.mark.parametrize("kernel", ["dct", "dst", "dft"])
@pytest.mark.parametrize("shape", [(17, 31), (32, 32), (1, 9), (9, 1)])
@pytest.mark.parametrize("budget", [0.02, 0.1, 0.5])
def test_budget_and_contract(kernel: str, shape: tuple[int, int], budget: float) -> None:
    w = np.random.default_rng(4).standard_normal(shape).astype(np.float32)
    fmt = fit(w, kernel=kernel, budget=budget)
    assert fmt.parameters <= budget * w.size
    check_lossy_contract(fmt)


def test_more_budget_lowers_the_error() -> None:
    w = np.cumsum(np.random.default_rng(5).standard_normal((32, 48)), axis=1).astype(
        np.float32
    )  # smooth rows
    errs = [np.linalg.norm(fit(w, budget=b).to_dense() - w) for b in (0.05, 0.2, 0.5, 1.0)]
    assert errs[0] > errs[1] > errs[2] > errs[3] and errs[3] < 1e-4 * np.linalg.norm(w)


def test_index_dtypes_are_the_narrowest_and_counted() -> None:
    fmt = fit(np.random.default_rng(6).standard_normal((300, 200)).astype(np.float32), budget=0.1)
    a = fmt.arrays()
    assert a["col_idx"].dtype == np.uint8 and a["row_ptr"].dtype == np.uint16
    assert fmt.nbytes == 6000 * 4 + 6000 + 301 * 2


def test_empty_matrix_and_bad_parameters() -> None:
    check_lossy_contract(fit(np.zeros((0, 5), np.float32)))
    for bad in ({"kernel": "haar"}, {"budget": 0.0}, {"budget": 1.01}):
        with pytest.raises(UsageError):
            fit(np.ones((4, 4), np.float32), **bad)
    with pytest.raises(TypeError):  # the pipeline parser names unknown options; Options takes none
        fit(np.ones((4, 4), np.float32), bogus=1)


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"kernel": "haar"}, "kernel"),
        ({"values": np.ones((5, 2), np.float32)}, "values has shape"),
        ({"col_idx": np.array([0, 9, 1, 2, 3], np.uint8)}, "not below 8"),
        ({"row_ptr": np.array([0, 1, 2, 3, 4, 6, 5], np.uint8)}, "monotone|run from"),
        ({"nnz": 99}, "not an integer"),
    ],
)
def test_corruption_is_an_input_error(changes: dict[str, Any], match: str) -> None:
    fmt = fit(np.random.default_rng(0).standard_normal((6, 8)).astype(np.float32), budget=0.11)
    assert fmt.parameters == 5
    arrays: dict[str, Any] = dict(fmt.arrays())
    meta: dict[str, Any] = dict(fmt.meta())
    for key, value in changes.items():
        (arrays if key in arrays else meta)[key] = value
    with pytest.raises(InputError, match=match):
        DCT.from_arrays(arrays, meta)
