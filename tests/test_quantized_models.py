"""Already-quantized models: their integer weights are stored losslessly, Huffman-coded (ham).

ONNX graphs quantized by onnxruntime (dynamic: MatMulInteger/ConvInteger; static: QDQ) and a torch
state_dict holding int8 tensors compress with ``--method sham`` and nothing else; the integers come
back bit-exact with their dtype, and the decompressed graph gives onnxruntime's outputs exactly.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from nncompress.errors import InputError
from nncompress.formats import ham
from nncompress.formats.ham import HuffmanMatrix
from nncompress.formats.shaped import Shaped
from nncompress.pipeline import LOSSLESS_INT, compress_graph, graph_from_artifact, plan_from

from .conftest import run_cli

X_SHAPE = (1, 1, 16, 16)


def heavy_tailed(rng: np.random.Generator, shape: tuple[int, ...], scale: float) -> np.ndarray:
    """Weights with the heavy tails of trained ones (Student t, 5 degrees of freedom).

    Per-tensor int8 quantization scales to the largest magnitude, so the integers of such weights
    crowd near zero: about 4.5 bits of entropy, where Gaussian weights carry about 7.
    """
    return (rng.standard_t(5, shape) * scale).astype(np.float32)


def float_model(path: Path) -> None:
    """Conv(+bias) -> Relu -> MaxPool -> Flatten -> MatMul -> Add -> Relu -> MatMul -> Add; the
    2048x128 MatMul weight is most of the file."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    inits = {
        "C": heavy_tailed(rng, (32, 1, 3, 3), 0.2),
        "Cb": heavy_tailed(rng, (32,), 0.05),
        "W0": heavy_tailed(rng, (32 * 8 * 8, 128), 0.02),
        "b0": heavy_tailed(rng, (128,), 0.05),
        "W1": heavy_tailed(rng, (128, 10), 0.1),
        "b1": heavy_tailed(rng, (10,), 0.05),
    }
    nodes = [
        helper.make_node("Conv", ["x", "C", "Cb"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Flatten", ["p"], ["f"]),
        helper.make_node("MatMul", ["f", "W0"], ["h"]),
        helper.make_node("Add", ["h", "b0"], ["hb"]),
        helper.make_node("Relu", ["hb"], ["hr"]),
        helper.make_node("MatMul", ["hr", "W1"], ["z"]),
        helper.make_node("Add", ["z", "b1"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "small",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(X_SHAPE))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])],
        [numpy_helper.from_array(a, n) for n, a in inits.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def inputs(seed: int, n: int) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [{"x": rng.normal(size=X_SHAPE).astype(np.float32)} for _ in range(n)]


def quantized(kind: str, tmp: Path) -> Path:
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )

    src, out = tmp / "float.onnx", tmp / f"{kind}.onnx"
    float_model(src)
    if kind == "dynamic":
        quantize_dynamic(str(src), str(out), weight_type=QuantType.QInt8)
        return out

    class Reader(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self.batches = iter(inputs(1, 8))

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.batches, None)

    quantize_static(str(src), str(out), Reader(), quant_format=QuantFormat.QDQ)
    return out


def initializers(path: Path) -> dict[str, np.ndarray]:
    import onnx
    from onnx import numpy_helper

    return {t.name: numpy_helper.to_array(t) for t in onnx.load(str(path)).graph.initializer}


def outputs(path: Path) -> list[np.ndarray]:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return [sess.run(None, feed)[0] for feed in inputs(2, 4)]


def compress_cli(src: Path, art: Path) -> dict[str, Any]:
    res = run_cli("compress", str(src), "--method", "sham", "-o", str(art), "--json")
    assert res.returncode == 0, res.stderr
    report: dict[str, Any] = json.loads(res.stdout)
    return report


@pytest.mark.parametrize("kind", ["dynamic", "static-qdq"])
def test_quantized_onnx_compresses_losslessly_and_runs(kind: str, tmp_path: Path) -> None:
    src = quantized(kind, tmp_path)
    before = initializers(src)
    big = {n for n, a in before.items() if a.dtype == np.int8 and a.size >= 1024}
    assert big, "the quantizer made no int8 weight to compress"
    art = tmp_path / "m.nnc"
    r = compress_cli(src, art)
    assert r["totals"]["ratio"] >= 1.5, r["totals"]
    rows = {row["weight"]: row for row in r["layers"]}
    for n in big:  # the IR may name a transposed weight after its initializer
        row = rows.get(n) or next(v for k, v in rows.items() if n in k)
        assert row["rel_error"] == 0.0
        if before[n].size >= 65536:  # the weight that makes the file
            assert row["format"] == LOSSLESS_INT and row["ratio"] > 1.5, row
        else:  # a small one is coded only where its codebook and offsets cost less than they save
            assert row["format"] == LOSSLESS_INT or (row["format"] == "array" and row["ratio"] == 1.0), row
    assert r["fidelity"]["rel_error_max"] == 0.0  # measured in onnxruntime on the rebuilt bytes

    out = tmp_path / "back.onnx"
    res = run_cli("decompress", str(art), "-o", str(out))
    assert res.returncode == 0, res.stderr
    after = initializers(out)
    assert list(after) == list(before)
    for n, a in before.items():  # every initializer, int8 weights included, bit-exact
        assert after[n].dtype == a.dtype and after[n].shape == a.shape, n
        assert after[n].tobytes() == a.tobytes(), n
    for y0, y1 in zip(outputs(src), outputs(out), strict=True):
        np.testing.assert_array_equal(y0, y1)


def int8_weights(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    w = heavy_tailed(rng, shape, 1.0)
    return np.round(w / np.abs(w).max() * 127).astype(np.int8)


def test_torch_state_dict_with_int8_tensors(tmp_path: Path) -> None:
    import torch

    rng = np.random.default_rng(3)
    sd = {
        "fc.weight": torch.from_numpy(int8_weights(rng, (256, 256))),
        "conv.weight": torch.from_numpy(int8_weights(rng, (64, 32, 3, 3))),
        "fc.scale": torch.tensor(0.01),
        "fc.bias": torch.from_numpy(rng.integers(-(2**20), 2**20, 256).astype(np.int32)),
        "small": torch.from_numpy(int8_weights(rng, (16, 16))),  # under 1,024 entries: raw
        "ids": torch.arange(1024, dtype=torch.int64),  # int64 indices: never coded
    }
    src, art, out = tmp_path / "q.pt", tmp_path / "q.nnc", tmp_path / "back.pt"
    torch.save(sd, str(src))
    r = compress_cli(src, art)
    rows = {row["weight"]: row for row in r["layers"]}
    assert rows["fc.weight"]["format"] == rows["conv.weight"]["format"] == LOSSLESS_INT
    assert rows["fc.weight"]["ratio"] > 1.3
    assert "small" not in rows and "ids" not in rows
    assert r["totals"]["ratio"] >= 1.3
    res = run_cli("decompress", str(art), "-o", str(out))
    assert res.returncode == 0, res.stderr
    back = torch.load(str(out), weights_only=True)
    assert list(back) == list(sd)
    for k, t in sd.items():
        assert back[k].dtype == t.dtype and back[k].shape == t.shape, k
        assert back[k].numpy().tobytes() == t.numpy().tobytes(), k


def graph_of(tmp: Path, tensors: dict[str, np.ndarray]) -> Any:
    import torch

    from nncompress.io import load

    p = tmp / "w.pt"
    torch.save({k: torch.from_numpy(v) for k, v in tensors.items()}, str(p))
    return load(p)


def test_which_integer_tensors_are_coded(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    t = {
        "i8": int8_weights(rng, (64, 64)),
        "u8": (int8_weights(rng, (64, 64)).astype(np.int16) + 128).astype(np.uint8),
        "i16": (int8_weights(rng, (64, 64)).astype(np.int16) * 200),
        "i32_24bit": int8_weights(rng, (64, 64)).astype(np.int32) * (1 << 16),
        "i32_wide": int8_weights(rng, (64, 64)).astype(np.int32) * (1 << 24),  # beyond float32's integers
        "i8_uniform": rng.integers(-128, 128, (64, 64)).astype(np.int8),  # 8 bits of entropy: no saving
        "i64": int8_weights(rng, (64, 64)).astype(np.int64),
        "flags": rng.random((64, 64)) < 0.1,
    }
    g = graph_of(tmp_path, t)
    _, entries, rows = compress_graph(g, plan_from("sham", None, None))
    fmt = {e.name: e.format for e in entries}
    assert {n: fmt[n] for n in ("i8", "u8", "i16", "i32_24bit")} == dict.fromkeys(
        ("i8", "u8", "i16", "i32_24bit"), LOSSLESS_INT
    )
    assert fmt["i32_wide"] == fmt["i8_uniform"] == fmt["i64"] == fmt["flags"] == "array"
    assert {row["weight"] for row in rows} == {"i8", "u8", "i16", "i32_24bit", "i32_wide", "i8_uniform"}
    for e in entries:
        if e.format == LOSSLESS_INT:
            f = HuffmanMatrix.from_arrays(e.arrays, e.meta)
            back = Shaped(f, e.shape, dtype=np.dtype(e.dtype)).to_dense()
            assert back.dtype == t[e.name].dtype and back.tobytes() == t[e.name].tobytes(), e.name


def test_an_exclude_rule_keeps_integers_raw(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    g = graph_of(tmp_path, {"a": int8_weights(rng, (64, 64)), "b": int8_weights(rng, (64, 64))})
    recipe = tmp_path / "r.toml"
    recipe.write_text('[[rule]]\nmethod = "sham"\n\n[[rule]]\nmatch = "b"\nexclude = true\n')
    _, entries, _ = compress_graph(g, plan_from(None, None, recipe))
    assert {e.name: e.format for e in entries} == {"a": LOSSLESS_INT, "b": "array"}


def test_int16_with_every_value_and_blocked_encoding(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(6)
    w = rng.permutation(np.arange(-(2**15), 2**15)).reshape(256, 256).astype(np.float32)
    w[:100] = np.round(rng.normal(0, 50, (100, 256)))  # a skewed part, so codes differ in length
    want = HuffmanMatrix.encode(w)
    monkeypatch.setattr(ham, "_BLOCK", 1000)  # several row blocks, joined at bit granularity
    got = HuffmanMatrix.encode_rows(w.shape, lambda r0, r1: w[r0:r1])
    assert got.meta() == want.meta()
    for k, a in want.arrays().items():
        assert got.arrays()[k].dtype == a.dtype, k
        np.testing.assert_array_equal(got.arrays()[k], a)
    np.testing.assert_array_equal(got.to_dense(), w)


def test_a_codebook_that_is_not_the_dtype_is_refused(tmp_path: Path) -> None:
    import torch

    from nncompress.artifact import read_artifact, write_artifact

    rng = np.random.default_rng(7)
    src, art = tmp_path / "q.pt", tmp_path / "q.nnc"
    torch.save({"w": torch.from_numpy(int8_weights(rng, (64, 64)))}, str(src))
    compress_cli(src, art)
    assert graph_from_artifact(art).weights["w"].array.dtype == np.int8
    for i, shift in enumerate([0.5, -1000.0]):  # not an integer; not an int8 (still increasing)
        (tmp_path / f"s{i}").mkdir()
        a = read_artifact(art, skeleton_dir=tmp_path / f"s{i}")
        (t,) = [t for t in a.tensors if t.name == "w"]
        cb = t.arrays["codebook"].copy()
        cb[0] += shift
        t.arrays = {**t.arrays, "codebook": cb}
        bad = tmp_path / f"bad{i}.nnc"
        write_artifact(a, bad)
        with pytest.raises(InputError, match="not int8 integers"):
            graph_from_artifact(bad)
        res = run_cli("decompress", str(bad), "-o", str(tmp_path / f"bad{i}.pt"))
        assert res.returncode == 3 and "not int8 integers" in res.stderr, res.stderr
