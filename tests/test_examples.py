"""Every shipped example model: the executor equals its own framework, and load -> save -> reload is exact."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nncompress.io import load, save
from nncompress.ir.interpreter import run

from .conftest import DATA, MODELS

# vgg16* are built on demand by examples/make_vgg16.py for benchmarks, not tests.
EXAMPLES = sorted(
    p.name
    for p in MODELS.iterdir()
    if p.suffix in {".h5", ".keras", ".pt", ".onnx"} and not p.name.startswith("vgg16")
)


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    d = np.load(DATA / "mnist_test.npz")
    return d["x"][:200], d["y"][:200]


def framework_predict(path: Path, x: np.ndarray) -> np.ndarray:
    """The model's output computed by its own framework, on flat digits reshaped as it expects."""
    vgg = path.name.startswith("vggmini")
    if path.suffix == ".onnx":
        import onnxruntime as ort

        s = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return s.run(None, {s.get_inputs()[0].name: x.reshape(-1, 1, 28, 28) if vgg else x})[0]
    if path.suffix == ".pt":
        import torch

        m = torch.jit.load(str(path), map_location="cpu")
        with torch.no_grad():
            return m(torch.from_numpy(x.reshape(-1, 1, 28, 28) if vgg else x)).numpy()
    import keras

    m = keras.models.load_model(str(path), compile=False)
    return np.asarray(m.predict(x.reshape(-1, 28, 28, 1) if vgg else x, verbose=0))


@pytest.mark.parametrize("name", EXAMPLES)
def test_executor_matches_framework(name: str, digits: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = digits
    ref = framework_predict(MODELS / name, x)
    out = run(load(MODELS / name), x)[0]
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-4 * float(np.abs(ref).max()))
    assert (out.argmax(1) == y).mean() > 0.85


@pytest.mark.parametrize("name", EXAMPLES)
def test_round_trip_is_exact(name: str, tmp_path: Path, digits: tuple[np.ndarray, np.ndarray]) -> None:
    x, _ = digits
    g = load(MODELS / name)
    out = save(g, tmp_path / name)
    g2 = load(out)
    assert list(g2.weights) == list(g.weights)
    for k, w in g.weights.items():
        np.testing.assert_array_equal(g2.weights[k].array, w.array)
    np.testing.assert_array_equal(framework_predict(out, x), framework_predict(MODELS / name, x))


@pytest.mark.parametrize("name", ["lenet300.h5", "vggmini.pt", "vggmini.onnx"])
def test_replaced_weights_reach_the_framework(
    name: str, tmp_path: Path, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    x, _ = digits
    g = load(MODELS / name)
    for w in g.select():
        w.value = (w.array * 0.5).astype(w.dtype)
    out = save(g, tmp_path / name)
    ref = framework_predict(out, x)
    np.testing.assert_allclose(run(g, x)[0], ref, rtol=1e-4, atol=1e-4 * float(np.abs(ref).max()))


@pytest.mark.parametrize("name", ["lenet300.h5", "lenet300.pt", "vggmini.h5", "vggmini.pt"])
def test_any_graph_exports_to_onnx(name: str, tmp_path: Path, digits: tuple[np.ndarray, np.ndarray]) -> None:
    x, _ = digits
    g = load(MODELS / name)
    out = save(g, tmp_path / (Path(name).stem + ".onnx"))
    import onnxruntime as ort

    s = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    inp = s.get_inputs()[0]
    shape = [d if isinstance(d, int) else -1 for d in inp.shape]
    ref = s.run(None, {inp.name: x.reshape(shape)})[0]
    np.testing.assert_allclose(run(g, x)[0], ref, rtol=1e-4, atol=1e-4 * float(np.abs(ref).max()))


def test_save_refuses_to_overwrite(tmp_path: Path) -> None:
    from nncompress.errors import OutputError

    g = load(MODELS / "lenet300.onnx")
    target = tmp_path / "x.onnx"
    save(g, target)
    with pytest.raises(OutputError, match="--force"):
        save(g, target)
    save(g, target, force=True)
