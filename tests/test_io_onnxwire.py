"""The ONNX wire-format walk: stripped models parse like the originals, payloads read and splice exactly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from nncompress.io.onnx import load_onnx, save_onnx, wire

DTYPES = [np.float32, np.float16, np.float64, np.int8, np.uint8, np.int64, np.int32, np.bool_]


def _model(tmp: Path, arrays: list[np.ndarray], extra: list[TensorProto] = ()) -> Path:  # type: ignore[assignment]
    inits = [numpy_helper.from_array(a, f"w{i}") for i, a in enumerate(arrays)] + list(extra)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])
    g = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g", [x], [y], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    p = tmp / "m.onnx"
    onnx.save_model(m, str(p))
    return p


def test_strip_leaves_a_model_equal_but_for_the_payloads_and_read_gives_them(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    arrays = [(rng.standard_normal((3, 5)) * 9).astype(dt) for dt in DTYPES] + [np.zeros((0, 4), np.float32)]
    # float_data (not raw_data) and a string tensor stay in the parsed model as they are
    typed = helper.make_tensor("typed", TensorProto.FLOAT, [2], [1.5, -2.0])
    text = helper.make_tensor("text", TensorProto.STRING, [1], [b"hi"])
    p = _model(tmp_path, arrays, [typed, text])
    stripped, raws = wire.strip(p)
    full = onnx.load_model(str(p))
    parsed = onnx.load_model_from_string(stripped)
    assert len(stripped) < 1000 and [r.index for r in raws][:8] == list(range(8))
    for t, mine in zip(full.graph.initializer, parsed.graph.initializer, strict=True):
        want = TensorProto()
        want.CopyFrom(t)
        if any(r.index == list(full.graph.initializer).index(t) for r in raws):
            want.ClearField("raw_data")
        assert mine == want
    assert parsed.graph.node == full.graph.node and parsed.opset_import == full.opset_import
    for r in raws:
        got = wire.read(p, r)
        want_a = numpy_helper.to_array(full.graph.initializer[r.index])
        assert got.dtype == want_a.dtype and got.shape == want_a.shape and r.name == f"w{r.index}"
        np.testing.assert_array_equal(got, want_a)


@pytest.mark.parametrize("cut", [1, 7, 100, -3])
def test_truncated_or_corrupt_bytes_are_a_wire_error(tmp_path: Path, cut: int) -> None:
    p = _model(tmp_path, [np.ones((40, 40), np.float32)])
    data = p.read_bytes()
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(data[:cut])
    with pytest.raises(wire.WireError):
        wire.strip(bad)


def test_splice_replaces_payloads_and_keeps_every_other_byte(tmp_path: Path) -> None:
    a, b = np.arange(12, dtype=np.float32).reshape(3, 4), np.arange(6, dtype=np.int64)
    p = _model(tmp_path, [a, b])
    _, raws = wire.strip(p)
    out = tmp_path / "out.onnx"
    new = -np.arange(12, dtype=np.float64).reshape(4, 3)  # cast to float32; only the entry count must match
    wire.splice(p, out, [(raws[0], lambda: new)])
    assert out.stat().st_size == p.stat().st_size
    m = onnx.load_model(str(out))
    np.testing.assert_array_equal(
        numpy_helper.to_array(m.graph.initializer[0]), new.astype(np.float32).reshape(3, 4)
    )
    np.testing.assert_array_equal(numpy_helper.to_array(m.graph.initializer[1]), b)
    with pytest.raises(ValueError, match="entries"):
        wire.splice(p, out, [(raws[1], lambda: np.zeros(5))])


def test_loader_and_patched_writer_go_through_the_wire_path(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    w = rng.standard_normal((3, 3)).astype(np.float32)
    p = _model(tmp_path, [w])
    g = load_onnx(p)
    np.testing.assert_array_equal(g.weights["w0"].array, w)
    g.weights["w0"].value = w * 2
    out = save_onnx(g, tmp_path / "patched.onnx")
    assert out.stat().st_size == p.stat().st_size  # spliced: same layout, new payload
    np.testing.assert_array_equal(
        numpy_helper.to_array(onnx.load_model(str(out)).graph.initializer[0]), w * 2
    )
