"""Failure classes seen on real files, each on a fixture built here: compress with no option but
--method, decompress, load in the file's own framework and compare with the original there.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from nncompress.pipeline.recipe import PRESETS

from .conftest import run_cli


def _through(src: Path, tmp: Path) -> tuple[Path, dict[str, object]]:
    art, out = tmp / "m.nnc", tmp / f"back{src.suffix}"
    # the sham preset's own settings: these random-weight models answer random inputs near ties,
    # where the default fidelity budget would keep every weight as it is
    res = run_cli("compress", str(src), "--pipeline", PRESETS["sham"], "-o", str(art), "--json")
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    res = run_cli("decompress", str(art), "-o", str(out))
    assert res.returncode == 0, res.stderr
    return out, report


def test_float16_onnx(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    w1 = rng.standard_normal((64, 128)).astype(np.float16)
    w2 = rng.standard_normal((128, 10)).astype(np.float16)
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "w1"], ["h"]),
            helper.make_node("Relu", ["h"], ["r"]),
            helper.make_node("MatMul", ["r", "w2"], ["y"]),
        ],
        "half",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT16, ["batch", 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT16, ["batch", 10])],
        [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2")],
    )
    src = tmp_path / "half.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(src))
    out, report = _through(src, tmp_path)
    assert report["totals"]["ratio"] >= 2.0  # type: ignore[index]
    back = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(out)).graph.initializer}
    assert back["w1"].dtype == np.float16 and back["w1"].shape == w1.shape
    import onnxruntime as ort

    x = rng.standard_normal((4, 64)).astype(np.float16)
    (y,) = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).run(None, {"x": x})
    assert y.dtype == np.float16 and y.shape == (4, 10) and np.isfinite(y).all()


def test_bin_extension_state_dict(tmp_path: Path) -> None:
    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10))
    src = tmp_path / "pytorch_model.bin"
    torch.save(m.state_dict(), str(src))
    out, report = _through(src, tmp_path)
    assert report["totals"]["ratio"] >= 2.0  # type: ignore[index]
    back = torch.load(str(out), weights_only=True)
    assert list(back) == list(m.state_dict())
    m.load_state_dict(back)
    assert m(torch.randn(2, 64)).shape == (2, 10)


@pytest.mark.filterwarnings("ignore")
def test_keras_lstm(tmp_path: Path) -> None:
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((20, 40)), keras.layers.LSTM(96), keras.layers.Dense(16, activation="softmax")]
    )
    src = tmp_path / "speaker.keras"
    model.save(src)
    out, report = _through(src, tmp_path)
    from nncompress.io import load

    roles = {w.name: w.role for w in load(src).weights.values()}
    assert sorted(roles.values()) == ["bias", "bias", "kernel", "kernel", "recurrent"], roles
    rows = {r["weight"]: r for r in report["layers"]}  # type: ignore[attr-defined]
    recurrent = [k for k, role in roles.items() if role == "recurrent"]
    assert all(rows[k]["format"] == "sham" for k in recurrent)
    assert report["totals"]["ratio"] >= 2.0  # type: ignore[index]
    back = keras.models.load_model(out)
    x = np.random.default_rng(0).standard_normal((3, 20, 40)).astype(np.float32)
    y = back.predict(x, verbose=0)
    assert y.shape == (3, 16) and np.allclose(y.sum(axis=1), 1, atol=1e-5)


def test_tied_tensors_are_stored_once(tmp_path: Path) -> None:
    """An LM head tied to its embedding (one storage under two names) costs its bytes once, and the
    two stay equal after decompress."""
    torch.manual_seed(0)
    emb = torch.nn.Embedding(500, 64)
    head = torch.nn.Linear(64, 500, bias=False)
    head.weight = emb.weight
    sd = {"embed.weight": emb.weight, "lm_head.weight": head.weight, "proj.weight": torch.randn(64, 64)}
    src = tmp_path / "tied.pt"
    torch.save(sd, str(src))
    untied = tmp_path / "untied.pt"
    torch.save({k: v.clone() for k, v in sd.items()} | {"lm_head.weight": torch.randn(500, 64)}, str(untied))
    out, report = _through(src, tmp_path)
    assert any("stored once (lm_head.weight = embed.weight)" in n for n in report["notes"])  # type: ignore[attr-defined]
    back = torch.load(str(out), weights_only=True)
    assert torch.equal(back["embed.weight"], back["lm_head.weight"])
    assert not torch.equal(back["embed.weight"], sd["embed.weight"])  # compressed
    res = run_cli("compress", str(untied), "--method", "sham", "-o", str(tmp_path / "u.nnc"), "--json")
    assert res.returncode == 0, res.stderr
    tied_bytes = report["totals"]["output_bytes"]  # type: ignore[index]
    assert tied_bytes < 0.7 * json.loads(res.stdout)["totals"]["output_bytes"]
