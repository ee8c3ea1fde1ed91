"""rdoq's fisher weighting: the squared per-sample gradients (nncompress.torch.fisher) and their
use by compress (a note saying where they came from, magnitude weighting where there are none)."""

from __future__ import annotations

import numpy as np
import pytest

from nncompress.api import load
from nncompress.inputs import load_data, signatures
from nncompress.passes.rdoq import FISHER
from nncompress.pipeline.run import compress

from .conftest import DATA, MODELS

pytest.importorskip("torch")

from nncompress.torch.fisher import squared_gradients


@pytest.fixture(scope="module")
def lenet() -> tuple[object, object]:
    g = load(MODELS / "lenet300.onnx")
    specs, _ = signatures(g, {})
    return g, load_data(DATA / "mnist_test.npz", specs, samples=64)


def test_squared_gradients_follow_the_weights_and_vanish_on_dead_pixels(lenet: tuple) -> None:
    """Every float kernel gets a non-negative array of its own shape; the first layer's weights
    on pixels that are 0 in every sample get exactly 0 (their gradient is input x upstream), the
    others mostly not (a hidden unit no sample activates also gives 0)."""
    g, data = lenet
    names = [n for n, w in g.weights.items() if w.array.ndim == 2]
    got = squared_gradients(g, data, names, samples=32)
    assert got is not None
    fis, n = got
    assert n == 32 and set(fis) == set(names)
    for name in names:
        assert fis[name].shape == g.weights[name].shape and (fis[name] >= 0).all()
    first = names[0]
    w = g.weights[first]
    x = np.asarray(data.arrays[data.specs[0].name][:32]).reshape(32, -1)
    dead = (x == 0).all(axis=0)  # MNIST's border pixels
    assert dead.sum() > 50
    # the IR keeps a dense kernel as (out, in) or (in, out): find the input axis by its length
    axis = next(i for i, d in enumerate(w.shape) if d == x.shape[1])
    f = np.moveaxis(fis[first], axis, 0)
    assert (f[dead] == 0).all()
    assert (f[~dead] > 0).mean() > 0.75  # hidden units no sample activates get 0 too


def test_squared_gradients_are_deterministic(lenet: tuple) -> None:
    g, data = lenet
    names = [n for n, w in g.weights.items() if w.array.ndim == 2][:1]
    a, _ = squared_gradients(g, data, names, samples=8)  # type: ignore[misc]
    b, _ = squared_gradients(g, data, names, samples=8)  # type: ignore[misc]
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_compress_with_fisher_weighting_on_data_and_without() -> None:
    """With --data the weighting is the squared gradients (a note with the sample count; levels
    differ from magnitude weighting's); without, magnitude weighting, said in a note."""
    spec = "rdoq:step=1:weighting={},cabac"
    data = DATA / "mnist_test.npz"
    fisher = compress(MODELS / "lenet300.onnx", pipeline=spec.format("fisher"), data=data, samples=200)
    magnitude = compress(MODELS / "lenet300.onnx", pipeline=spec.format("magnitude"), data=data, samples=200)
    assert any("squared gradients on the first 200 samples" in n for n in fisher.notes)
    assert fisher.report["totals"]["payload_bytes"] != magnitude.report["totals"]["payload_bytes"]
    assert fisher.report["fidelity"]["accuracy_after"] > 0.8
    blind = compress(MODELS / "lenet300.onnx", pipeline=spec.format("fisher"), samples=8)
    blind_mag = compress(MODELS / "lenet300.onnx", pipeline=spec.format("magnitude"), samples=8)
    assert any("magnitude weighting used instead (no --data)" in n for n in blind.notes)
    assert blind.report["totals"]["payload_bytes"] == blind_mag.report["totals"]["payload_bytes"]
    assert FISHER not in load(MODELS / "lenet300.onnx").meta.extra
