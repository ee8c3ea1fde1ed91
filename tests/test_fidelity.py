"""fidelity: the inputs of a fidelity run, how many samples and what batch size it uses."""

from __future__ import annotations

import numpy as np
import pytest

import nncompress.fidelity as fidelity
from nncompress.fidelity import plan_samples, random_data, time_one
from nncompress.io import load

from .conftest import MODELS


def test_an_asked_count_is_kept() -> None:
    # a model at 5 s a sample: a default count would be cut to MIN_SAMPLES, an asked one is not
    assert plan_samples(5.0, 100, explicit=True) == (100, 1, None)


def test_a_slow_model_gets_fewer_samples_and_small_batches_by_default() -> None:
    n, batch, note = plan_samples(fidelity.RUN_BUDGET_S / 20, 256, explicit=False)
    assert n == 20 and batch == int(fidelity.BATCH_BUDGET_S * 20 / fidelity.RUN_BUDGET_S)
    assert note is not None and "first 20 of 256 samples" in note and "--samples 256" in note
    assert plan_samples(1000.0, 256, explicit=False)[:2] == (fidelity.MIN_SAMPLES, 1)


def test_a_fast_model_keeps_the_default() -> None:
    g = load(MODELS / "lenet300.onnx")
    t1 = time_one(g, random_data(g, 1, 0).x)
    assert 0 < t1 < fidelity.RUN_BUDGET_S / fidelity.DEFAULT_SAMPLES  # lenet300: far under 40 ms
    assert plan_samples(t1, 256, explicit=False) == (256, fidelity.DEFAULT_SAMPLES, None)


@pytest.mark.parametrize("n", [1, 5, 40])
def test_random_inputs_do_not_depend_on_how_many_follow(n: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """compress times the first sample, then draws the count it chose: the same rows as one draw."""
    g = load(MODELS / "lenet300.onnx")
    monkeypatch.setattr(fidelity, "DRAW_FLOATS", 3 * 784)  # drawn 3 rows at a time
    whole = np.random.default_rng(3).standard_normal((40, 784)).astype(np.float32)
    np.testing.assert_array_equal(random_data(g, n, 3).x.reshape(n, -1), whole[:n])
