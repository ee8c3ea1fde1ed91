"""The MNIST splits shipped in examples/data/: what fine-tuning and evaluation read on a fresh clone."""

from __future__ import annotations

import numpy as np

from .conftest import DATA


def test_train_split_shapes_dtypes_and_disjoint_from_test() -> None:
    with np.load(DATA / "mnist_train.npz") as tr, np.load(DATA / "mnist_test.npz") as te:
        assert sorted(tr.files) == sorted(te.files) == ["x", "y"]
        x, y = tr["x"], tr["y"]
        assert x.dtype == np.float32 and x.shape == (4000, 784)
        assert y.dtype == np.int64 and y.shape == (4000,)
        assert 0.0 <= x.min() and x.max() <= 1.0 and set(np.unique(y)) == set(range(10))
        # 8-bit pixels scaled by 1/255, as train_examples.py writes them
        assert np.allclose(x * 255, np.round(x * 255), atol=1e-3)
        train_rows = {r.tobytes() for r in x}
        assert len(train_rows) == 4000
        assert not train_rows & {r.tobytes() for r in te["x"]}
