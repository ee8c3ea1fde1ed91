"""ONNX loader and writers: real models (torch exports, onnx.helper graphs, onnxruntime quantization)
round-trip bitwise through onnxruntime, and the executor agrees with onnxruntime on them."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from nncompress.errors import InputError, OutputError, UnsupportedError
from nncompress.io.onnx import load_onnx, save_onnx
from nncompress.ir import Graph, ModelMeta, Node, ValueInfo, Weight
from nncompress.ir.interpreter import run

RNG = np.random.default_rng(0)
F32 = TensorProto.FLOAT


def _ort(path: Path, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def _close(a: np.ndarray, b: np.ndarray) -> None:
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def _init(name: str, shape: tuple[int, ...], scale: float = 0.5) -> TensorProto:
    return numpy_helper.from_array((RNG.normal(size=shape) * scale).astype(np.float32), name)


def _save(model: onnx.ModelProto, path: Path) -> Path:
    onnx.checker.check_model(model)
    onnx.save_model(model, str(path))
    return path


def _model(nodes, inputs, outputs, inits, opset: int = 17) -> onnx.ModelProto:  # type: ignore[no-untyped-def]
    g = helper.make_graph(nodes, "g", inputs, outputs, inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    return m


# -- fixtures: each returns (model path, feeds) ---------------------------------------------------------


def _torch_export(module, x, path: Path) -> Path:  # type: ignore[no-untyped-def]
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module.eval(),
            (x,),
            str(path),
            dynamo=False,
            input_names=["x"],
            output_names=["y"],
            dynamic_axes={"x": {0: "N"}},
        )
    return path


def torch_mlp(tmp: Path) -> tuple[Path, dict[str, np.ndarray]]:
    import torch

    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    x = torch.randn(5, 6)
    return _torch_export(m, x, tmp / "torch_mlp.onnx"), {"x": x.numpy()}


def torch_cnn(tmp: Path) -> tuple[Path, dict[str, np.ndarray]]:
    import torch

    torch.manual_seed(1)
    m = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(4, 6, 3, groups=2),
        torch.nn.Flatten(),
        torch.nn.Linear(6 * 2 * 2, 10),
        torch.nn.BatchNorm1d(10),
        torch.nn.Tanh(),
        torch.nn.Linear(10, 3),
        torch.nn.Softmax(dim=-1),
    )
    m.eval()
    with torch.no_grad():  # non-trivial running statistics
        m[6].running_mean.uniform_(-0.5, 0.5)
        m[6].running_var.uniform_(0.5, 2.0)
    x = torch.randn(4, 3, 8, 8)
    return _torch_export(m, x, tmp / "torch_cnn.onnx"), {"x": x.numpy()}


def helper_mlp(tmp: Path) -> tuple[Path, dict[str, np.ndarray]]:
    """MatMul + Add (weight (in, out)), then a Gemm with transB=0."""
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["h"], name="fc1"),
        helper.make_node("Add", ["h", "b1"], ["h1"], name="fc1_bias"),
        helper.make_node("Relu", ["h1"], ["a"], name="act"),
        helper.make_node("Gemm", ["a", "w2", "b2"], ["y"], name="fc2"),
    ]
    inits = [_init("w1", (6, 12)), _init("b1", (12,)), _init("w2", (12, 4)), _init("b2", (4,))]
    m = _model(
        nodes,
        [helper.make_tensor_value_info("x", F32, ["N", 6])],
        [helper.make_tensor_value_info("y", F32, ["N", 4])],
        inits,
    )
    return _save(m, tmp / "helper_mlp.onnx"), {"x": RNG.normal(size=(7, 6)).astype(np.float32)}


def helper_cnn(tmp: Path) -> tuple[Path, dict[str, np.ndarray]]:
    """Conv, BatchNormalization, pools, Flatten, Gemm(transB=1), Softmax at opset 13."""
    nodes = [
        helper.make_node("Conv", ["x", "k1", "c1"], ["h1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node(
            "BatchNormalization", ["h1", "g", "be", "mu", "var"], ["h2"], name="bn", epsilon=1e-3
        ),
        helper.make_node("Relu", ["h2"], ["h3"], name="relu"),
        helper.make_node("MaxPool", ["h3"], ["h4"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["h4", "k2"], ["h5"], name="conv2", group=2, strides=[1, 1]),
        helper.make_node("GlobalAveragePool", ["h5"], ["h6"], name="gap"),
        helper.make_node("Flatten", ["h6"], ["h7"], name="flat"),
        helper.make_node("Gemm", ["h7", "w", "b"], ["h8"], name="fc", transB=1),
        helper.make_node("Softmax", ["h8"], ["y"], name="softmax", axis=-1),
    ]
    var = numpy_helper.from_array(RNG.uniform(0.5, 2, size=4).astype(np.float32), "var")
    inits = [
        _init("k1", (4, 3, 3, 3)),
        _init("c1", (4,)),
        _init("g", (4,)),
        _init("be", (4,)),
        _init("mu", (4,)),
        var,
        _init("k2", (6, 2, 3, 3)),
        _init("w", (5, 6)),
        _init("b", (5,)),
    ]
    m = _model(
        nodes,
        [helper.make_tensor_value_info("x", F32, ["N", 3, 8, 8])],
        [helper.make_tensor_value_info("y", F32, ["N", 5])],
        inits,
        opset=13,
    )
    return _save(m, tmp / "helper_cnn.onnx"), {"x": RNG.normal(size=(3, 3, 8, 8)).astype(np.float32)}


BUILDERS = [torch_mlp, torch_cnn, helper_mlp, helper_cnn]


# -- round trips -------------------------------------------------------------------------------------


@pytest.mark.parametrize("build", BUILDERS, ids=lambda b: b.__name__)
def test_roundtrip_bitwise_and_executor(tmp_path: Path, build: Callable) -> None:  # type: ignore[type-arg]
    src, feeds = build(tmp_path)
    ref = _ort(src, feeds)
    g = load_onnx(src)
    assert g.meta.format == "onnx" and g.meta.extra["opset_imports"][""] >= 13
    for a, b in zip(_ort(save_onnx(g, tmp_path / "out.onnx"), feeds), ref, strict=True):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    _close(run(g, feeds)[0], ref[0])
    # the same IR exported node by node (not patched) runs the same
    g.meta.format = "torch-export"
    exported = save_onnx(g, tmp_path / "exported.onnx")
    _close(_ort(exported, feeds)[0], ref[0])
    assert {n.op_type for n in onnx.load(str(exported)).graph.node} & {"Gemm", "MatMul"}


def test_torch_parameter_paths_name_layers(tmp_path: Path) -> None:
    g = load_onnx(torch_cnn(tmp_path)[0])
    w = g.weights
    assert (w["0.weight"].role, w["0.weight"].op, w["0.weight"].layer) == ("kernel", "Conv", "0")
    assert (w["0.bias"].role, w["5.weight"].op, w["5.weight"].layer) == ("bias", "Dense", "5")
    assert w["5.weight"].shape == (10, 24) and w["5.weight"].layout == []
    assert [w[f"6.{k}"].role for k in ("weight", "bias", "running_mean", "running_var")] == [
        "bn_gamma",
        "bn_beta",
        "bn_mean",
        "bn_var",
    ]
    assert {n.layer for n in g.nodes if n.op in ("Conv", "Dense")} == {"0", "3", "5", "8"}


def test_matmul_and_gemm_transb0_become_dense_out_in(tmp_path: Path) -> None:
    src, _ = helper_mlp(tmp_path)
    g = load_onnx(src)
    assert [n.op for n in g.nodes] == ["Dense", "Add", "Relu", "Dense"]
    w1, b1, w2 = g.weights["w1"], g.weights["b1"], g.weights["w2"]
    assert w1.shape == (12, 6) and w1.source_shape == (6, 12) and w1.layout == [("transpose", (1, 0))]
    assert (w1.role, w1.op, b1.role, b1.op, b1.layer) == ("kernel", "Dense", "bias", "Dense", w1.layer)
    assert w2.shape == (4, 12) and w2.role == "kernel"
    np.testing.assert_array_equal(
        w1.to_source(), numpy_helper.to_array(onnx.load(str(src)).graph.initializer[0])
    )


def test_shared_weight_keeps_matmul(tmp_path: Path) -> None:
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["h"], name="a"),
        helper.make_node("MatMul", ["h", "w"], ["y"], name="b"),
    ]
    m = _model(
        nodes,
        [helper.make_tensor_value_info("x", F32, ["N", 5])],
        [helper.make_tensor_value_info("y", F32, ["N", 5])],
        [_init("w", (5, 5))],
    )
    src = _save(m, tmp_path / "shared.onnx")
    g = load_onnx(src)
    assert [n.op for n in g.nodes] == ["MatMul", "MatMul"] and g.weights["w"].layout == []
    assert g.weights["w"].role == "other"
    x = {"x": RNG.normal(size=(2, 5)).astype(np.float32)}
    _close(run(g, x)[0], _ort(src, x)[0])


# -- where weights live ------------------------------------------------------------------------------


def _constants_model(tmp: Path) -> Path:
    w = (RNG.normal(size=(4, 6)) * 0.5).astype(np.float32)
    nodes = [
        helper.make_node("Constant", [], ["W"], name="W_const", value=numpy_helper.from_array(w)),
        helper.make_node("Constant", [], ["B"], name="B_const", value_floats=[0.1, -0.2, 0.3, 0.0]),
        helper.make_node("Constant", [], ["S"], name="S_const", value_ints=[-1, 2, 2]),
        helper.make_node("Constant", [], ["lo"], name="lo_const", value_float=-0.5),
        helper.make_node("Gemm", ["x", "W", "B"], ["h"], name="fc", transB=1),
        helper.make_node("Clip", ["h", "lo", ""], ["c"], name="clip"),
        helper.make_node("Reshape", ["c", "S"], ["y"], name="reshape"),
    ]
    m = _model(
        nodes,
        [helper.make_tensor_value_info("x", F32, ["N", 6])],
        [helper.make_tensor_value_info("y", F32, ["N", 2, 2])],
        [],
    )
    return _save(m, tmp / "constants.onnx")


def test_constant_nodes_are_weights_and_are_patched(tmp_path: Path) -> None:
    src = _constants_model(tmp_path)
    feeds = {"x": RNG.normal(size=(3, 6)).astype(np.float32)}
    g = load_onnx(src)
    assert [n.op for n in g.nodes] == ["Dense", "Clip", "Reshape"]
    w = g.weights
    assert (w["W"].role, w["B"].role, w["S"].role, w["lo"].role) == ("kernel", "bias", "const", "const")
    assert w["W"].source.startswith("const:") and w["S"].dtype == np.int64 and w["lo"].shape == ()
    _close(run(g, feeds)[0], _ort(src, feeds)[0])
    for x in g.weights.values():
        if np.issubdtype(x.dtype, np.floating):
            x.value = np.asarray(x.array * 0.5)
    out = save_onnx(g, tmp_path / "halved.onnx")
    _close(_ort(out, feeds)[0], run(g, feeds)[0])
    kept = onnx.load(str(out)).graph
    assert [n.op_type for n in kept.node] == [n.op_type for n in onnx.load(str(src)).graph.node]
    assert list(kept.node[1].attribute[0].floats) == pytest.approx([0.05, -0.1, 0.15, 0.0])


def _if_model(tmp: Path) -> Path:
    """Both branches hold a weight named "c" (a Constant, an initializer) and read x from outside."""
    then_g = helper.make_graph(
        [
            helper.make_node(
                "Constant", [], ["c"], value=numpy_helper.from_array(np.full(3, 0.25, np.float32))
            ),
            helper.make_node("MatMul", ["x", "w"], ["t0"]),
            helper.make_node("Add", ["t0", "c"], ["t"]),
        ],
        "then",
        [],
        [helper.make_tensor_value_info("t", F32, ["N", 3])],
    )
    else_g = helper.make_graph(
        [helper.make_node("Mul", ["x", "c"], ["e"])],
        "else",
        [],
        [helper.make_tensor_value_info("e", F32, ["N", 3])],
        [_init("c", (3,))],
    )
    nodes = [
        helper.make_node("If", ["cond"], ["r"], name="branch", then_branch=then_g, else_branch=else_g),
        helper.make_node("Relu", ["r"], ["y"], name="relu"),
    ]
    m = _model(
        nodes,
        [
            helper.make_tensor_value_info("x", F32, ["N", 3]),
            helper.make_tensor_value_info("cond", TensorProto.BOOL, []),
        ],
        [helper.make_tensor_value_info("y", F32, ["N", 3])],
        [_init("w", (3, 3))],
    )
    return _save(m, tmp / "if.onnx")


def test_if_branch_weights_are_hoisted_and_patched(tmp_path: Path) -> None:
    src = _if_model(tmp_path)
    g = load_onnx(src)
    then_g, else_g = g.nodes[0].attrs["then_branch"], g.nodes[0].attrs["else_branch"]
    assert isinstance(then_g, Graph) and not then_g.weights and not else_g.weights
    assert then_g.nodes[0].op == "Dense" and g.weights["w"].layout == [("transpose", (1, 0))]
    c_then, c_else = then_g.nodes[1].inputs[1], else_g.nodes[0].inputs[1]
    assert c_then != c_else and {c_then, c_else} <= set(g.weights)
    assert len({w.source for w in g.weights.values()}) == 3
    x = RNG.normal(size=(2, 3)).astype(np.float32)
    feeds = [{"x": x, "cond": np.array(c)} for c in (True, False)]
    for f in feeds:
        _close(run(g, f)[0], _ort(src, f)[0])
    for w in g.weights.values():
        w.value = np.asarray(w.array * 0.5)
    out = save_onnx(g, tmp_path / "if_halved.onnx")
    for f in feeds:
        _close(_ort(out, f)[0], run(g, f)[0])
    assert not np.allclose(_ort(out, feeds[1])[0], _ort(src, feeds[1])[0])


def test_weights_that_are_outputs_export(tmp_path: Path) -> None:
    """A branch returning a Constant, a branch returning an outer value, a Constant graph output."""

    def const(name: str, v: list[float]) -> onnx.NodeProto:
        return helper.make_node(
            "Constant", [], [name], value=numpy_helper.from_array(np.array(v, np.float32))
        )

    then_g = helper.make_graph([const("o", [1, 2])], "t", [], [helper.make_tensor_value_info("o", F32, [2])])
    else_g = helper.make_graph([], "e", [], [helper.make_tensor_value_info("x", F32, [2])])
    nodes = [
        helper.make_node("If", ["cond"], ["r"], then_branch=then_g, else_branch=else_g),
        const("k", [5, 6]),
    ]
    ins = [
        helper.make_tensor_value_info("cond", TensorProto.BOOL, []),
        helper.make_tensor_value_info("x", F32, [2]),
    ]
    outs = [helper.make_tensor_value_info("r", F32, [2]), helper.make_tensor_value_info("k", F32, [2])]
    src = tmp_path / "outs.onnx"
    onnx.save_model(_model(nodes, ins, outs, []), str(src))  # onnxruntime runs it; onnx.checker would not
    g = load_onnx(src)
    for w in g.weights.values():
        w.value = w.array * 2
    g.meta.format = "keras"
    out = save_onnx(g, tmp_path / "exported.onnx")
    for cond in (True, False):
        feeds = {"cond": np.array(cond), "x": np.array([7, 8], np.float32)}
        for a, b in zip(_ort(out, feeds), run(g, feeds), strict=True):
            np.testing.assert_array_equal(a, b)


def test_external_data_is_read_and_written_inline(tmp_path: Path) -> None:
    src, feeds = torch_cnn(tmp_path)
    ext_dir = tmp_path / "ext"
    ext_dir.mkdir()
    ext = ext_dir / "model.onnx"
    onnx.save_model(
        onnx.load(str(src)), str(ext), save_as_external_data=True, location="model.data", size_threshold=0
    )
    assert (ext_dir / "model.data").stat().st_size > 1000
    g = load_onnx(ext)
    np.testing.assert_array_equal(g.weights["0.weight"].array, load_onnx(src).weights["0.weight"].array)
    out = save_onnx(g, tmp_path / "inline.onnx")
    assert not (tmp_path / "inline.onnx.data").exists()
    np.testing.assert_array_equal(_ort(out, feeds)[0], _ort(src, feeds)[0])
    (ext_dir / "model.data").unlink()
    with pytest.raises(InputError, match=r"model\.data.*missing") as e:
        load_onnx(ext)
    assert str(ext) in str(e.value)


# -- opsets ------------------------------------------------------------------------------------------


def _opset_model(tmp: Path, opset: int) -> Path:
    """Softmax on a 3-D tensor, Unsqueeze/Squeeze/ReduceSum axes and Clip bounds as this opset says."""
    inits = [_init("w", (6, 6)), _init("b", (6,))]
    nodes = [helper.make_node("Gemm", ["x", "w", "b"], ["h"], name="fc", transB=1)]

    def axes(op: str, x: str, y: str, ax: list[int], new: bool, **kw: int) -> None:
        if new:
            inits.append(numpy_helper.from_array(np.array(ax, np.int64), f"{y}_axes"))
            nodes.append(helper.make_node(op, [x, f"{y}_axes"], [y], name=y, **kw))
        else:
            nodes.append(helper.make_node(op, [x], [y], name=y, axes=ax, **kw))

    axes("Unsqueeze", "h", "u", [1], opset >= 13)
    nodes.append(helper.make_node("Reshape", ["u", "shape"], ["r"], name="reshape"))
    inits.append(numpy_helper.from_array(np.array([0, 2, 3], np.int64), "shape"))
    nodes.append(helper.make_node("Softmax", ["r"], ["s"], name="softmax", axis=1))
    if opset >= 11:
        inits += [
            numpy_helper.from_array(np.float32(0.05), "lo"),
            numpy_helper.from_array(np.float32(0.4), "hi"),
        ]
        nodes.append(helper.make_node("Clip", ["s", "lo", "hi"], ["c"], name="clip"))
    else:
        nodes.append(helper.make_node("Clip", ["s"], ["c"], name="clip", min=0.05, max=0.4))
    axes("ReduceSum", "c", "rs", [2], opset >= 13, keepdims=1)
    axes("Squeeze", "rs", "y", [2], opset >= 13)
    m = _model(
        nodes,
        [helper.make_tensor_value_info("x", F32, ["N", 6])],
        [helper.make_tensor_value_info("y", F32, ["N", 2])],
        inits,
        opset=opset,
    )
    return _save(m, tmp / f"opset{opset}.onnx")


@pytest.mark.parametrize("opset", [10, 11, 13, 17])
def test_opset_versions(tmp_path: Path, opset: int) -> None:
    src = _opset_model(tmp_path, opset)
    feeds = {"x": RNG.normal(size=(3, 6)).astype(np.float32)}
    ref = _ort(src, feeds)[0]
    g = load_onnx(src)
    soft = next(n for n in g.nodes if n.op == "Softmax")
    assert soft.attrs.get("coerce_2d", 0) == (1 if opset < 13 else 0)
    _close(run(g, feeds)[0], ref)
    np.testing.assert_array_equal(_ort(save_onnx(g, tmp_path / "patched.onnx"), feeds)[0], ref)
    g.meta.format = "keras"
    exported = save_onnx(g, tmp_path / "exported.onnx")
    assert onnx.load(str(exported)).opset_import[0].version == opset
    _close(_ort(exported, feeds)[0], ref)


# -- custom domains and quantized weights --------------------------------------------------------------


def test_quantized_com_microsoft_graph_round_trips(tmp_path: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    src, feeds = torch_mlp(tmp_path)
    quant = tmp_path / "quant.onnx"
    quantize_dynamic(str(src), str(quant), weight_type=QuantType.QInt8)
    fused = tmp_path / "fused.onnx"  # onnxruntime's own fusion writes com.microsoft ops
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    so.optimized_model_filepath = str(fused)
    ort.InferenceSession(str(quant), so, providers=["CPUExecutionProvider"])
    g = load_onnx(fused)
    ms = [n for n in g.nodes if n.domain == "com.microsoft"]
    assert ms and {n.op for n in ms} == {"DynamicQuantizeMatMul"}
    int8 = [w for w in g.weights.values() if w.dtype == np.int8 and w.size > 16]
    assert len(int8) == 2 and all(w.role == "buffer" for w in int8)
    assert any("com.microsoft" in note for note in g.meta.notes)
    ref = _ort(fused, feeds)[0]
    np.testing.assert_array_equal(_ort(save_onnx(g, tmp_path / "out.onnx"), feeds)[0], ref)
    before = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(fused)).graph.initializer}
    after = {
        t.name: numpy_helper.to_array(t) for t in onnx.load(str(tmp_path / "out.onnx")).graph.initializer
    }
    assert before.keys() == after.keys()
    for k in before:
        assert before[k].dtype == after[k].dtype and np.array_equal(before[k], after[k])
    g.meta.format = "keras"
    np.testing.assert_array_equal(_ort(save_onnx(g, tmp_path / "exported.onnx"), feeds)[0], ref)


# -- replaced weights ----------------------------------------------------------------------------------


class _Halved:
    """A stand-in compressed slot: anything with shape, dtype and to_dense()."""

    def __init__(self, a: np.ndarray) -> None:
        self.a = a

    @property
    def shape(self) -> tuple[int, ...]:
        return self.a.shape

    @property
    def dtype(self) -> np.dtype:  # type: ignore[type-arg]
        return self.a.dtype

    def to_dense(self) -> np.ndarray:
        return self.a * np.float32(0.5)


@pytest.mark.parametrize("build", BUILDERS, ids=lambda b: b.__name__)
def test_replaced_kernels_reach_the_file(tmp_path: Path, build: Callable) -> None:  # type: ignore[type-arg]
    src, feeds = build(tmp_path)
    g = load_onnx(src)
    kernels = g.select(roles=("kernel",))
    assert kernels
    for w in kernels:
        w.value = _Halved(w.array)
    out = save_onnx(g, tmp_path / "halved.onnx")
    got = _ort(out, feeds)[0]
    _close(got, run(g, feeds)[0])
    assert not np.allclose(got, _ort(src, feeds)[0])


def test_float16_weight_keeps_its_dtype(tmp_path: Path) -> None:
    w16 = numpy_helper.from_array((RNG.normal(size=(3, 5))).astype(np.float16), "w16")
    nodes = [
        helper.make_node("Cast", ["w16"], ["w32"], name="cast", to=F32),
        helper.make_node("MatMul", ["x", "w32"], ["y"], name="mm"),
    ]
    m = _model(
        nodes,
        [helper.make_tensor_value_info("x", F32, ["N", 3])],
        [helper.make_tensor_value_info("y", F32, ["N", 5])],
        [w16],
    )
    src = _save(m, tmp_path / "fp16.onnx")
    g = load_onnx(src)
    w = g.weights["w16"]
    assert w.dtype == np.float16 and w.op == "Cast"
    w.value = w.array.astype(np.float32) * 2  # a pass may hand back float32
    out = save_onnx(g, tmp_path / "out.onnx")
    t = onnx.load(str(out)).graph.initializer[0]
    assert t.data_type == TensorProto.FLOAT16
    np.testing.assert_array_equal(numpy_helper.to_array(t), numpy_helper.to_array(w16) * 2)


def test_changed_structure_is_exported_not_patched(tmp_path: Path) -> None:
    src, feeds = helper_mlp(tmp_path)
    g = load_onnx(src)
    g.nodes[2].op = "Sigmoid"  # a pass swapped the activation: patching the file would lose it
    out = save_onnx(g, tmp_path / "out.onnx")
    assert "Sigmoid" in {n.op_type for n in onnx.load(str(out)).graph.node}
    _close(_ort(out, feeds)[0], run(g, feeds)[0])


# -- export from a hand-built IR ---------------------------------------------------------------------


def _hand_graph() -> Graph:
    r = np.random.default_rng(3)

    def wt(name: str, shape: tuple[int, ...], role: str, op: str, scale: float = 0.4) -> Weight:
        return Weight(name, (r.normal(size=shape) * scale).astype(np.float32), layer=name, role=role, op=op)

    ws = [
        wt("k", (4, 3, 3, 3), "kernel", "Conv"),
        wt("kb", (4,), "bias", "Conv"),
        wt("g", (4,), "bn_gamma", "BatchNormalization"),
        wt("be", (4,), "bn_beta", "BatchNormalization"),
        wt("mu", (4,), "bn_mean", "BatchNormalization"),
        Weight("var", r.uniform(0.5, 2, 4).astype(np.float32), role="bn_var", op="BatchNormalization"),
        wt("d1", (6, 64), "kernel", "Dense"),
        wt("d1b", (6,), "bias", "Dense"),
        wt("d2", (5, 16), "kernel", "Dense"),
        wt("d2b", (5,), "bias", "Dense"),
        wt("d3", (3, 6), "kernel", "Dense"),
        Weight("shape", np.array([0, 4, 16], np.int64), role="const", op="Reshape"),
    ]
    nodes = [
        Node("conv", "Conv", ["x", "k", "kb"], ["c"], {"pads": [1, 1, 1, 1], "strides": (1, 1)}),
        Node("bn", "BatchNormalization", ["c", "g", "be", "mu", "var"], ["b"], {"epsilon": 1e-3}),
        Node("relu", "Relu", ["b"], ["r"]),
        Node("pool", "MaxPool", ["r"], ["p"], {"kernel_shape": [2, 2], "strides": [2, 2]}),
        Node("flat", "Flatten", ["p"], ["f"], {"axis": 1}),
        Node("fc1", "Dense", ["f", "d1", "d1b"], ["h1"]),
        Node("gelu", "Gelu", ["h1"], ["h2"]),
        Node("fc3", "Dense", ["h2", "d3"], ["h3"]),
        Node("soft", "Softmax", ["h3"], ["y1"], {"axis": -1}),
        # a 3-D Dense (MatMul + Add) and list arguments in attribute form
        Node("reshape", "Reshape", ["f", "shape"], ["t"]),
        Node("fc2", "Dense", ["t", "d2", "d2b"], ["u"]),
        Node("soft2", "Softmax", ["u"], ["u2"], {"axis": 1, "coerce_2d": 1}),
        Node("sum", "ReduceSum", ["u2"], ["s"], {"axes": [1], "keepdims": 1}),
        Node("clip", "Clip", ["s"], ["cl"], {"min": 0.0, "max": 0.9}),
        Node("sq", "Squeeze", ["cl"], ["y2"], {"axes": [1]}),
    ]
    return Graph(
        nodes=nodes,
        inputs=[ValueInfo("x", ("N", 3, 8, 8))],
        outputs=[ValueInfo("y1", ("N", 3)), ValueInfo("y2", ("N", 5))],
        weights={w.name: w for w in ws},
        meta=ModelMeta(format="keras"),
    )


def test_export_hand_built_ir(tmp_path: Path) -> None:
    g = _hand_graph()
    g.validate()
    out = save_onnx(g, tmp_path / "hand.onnx")
    m = onnx.load(str(out))
    assert m.opset_import[0].version == 17
    ops = [n.op_type for n in m.graph.node]
    assert "Gemm" in ops and "MatMul" in ops and "Erf" in ops and "Dense" not in ops
    x = np.random.default_rng(4).normal(size=(2, 3, 8, 8)).astype(np.float32)
    for a, b in zip(_ort(out, {"x": x}), run(g, x), strict=True):
        _close(a, b)
    # and what was written reads back to the same function
    back = load_onnx(out)
    for a, b in zip(run(back, x), run(g, x), strict=True):
        _close(a, b)


def test_export_refusals(tmp_path: Path) -> None:
    g = _hand_graph()
    g.nodes[2] = Node("lam", "Lambda", ["b"], ["r"], {"function": "lambda x: x"}, domain="keras")
    with pytest.raises(UnsupportedError, match="Lambda"):
        save_onnx(g, tmp_path / "lambda.onnx")
    assert not (tmp_path / "lambda.onnx").exists()
    weights_only = Graph(weights={"w": Weight("w", np.zeros((2, 2), np.float32))}, has_graph=False)
    with pytest.raises(OutputError, match="has no graph; cannot write ONNX"):
        save_onnx(weights_only, tmp_path / "w.onnx")
    out = save_onnx(_hand_graph(), tmp_path / "once.onnx")
    with pytest.raises(OutputError, match="exists"):
        save_onnx(_hand_graph(), out)
    save_onnx(_hand_graph(), out, force=True)


def test_refuses_to_overwrite_its_input(tmp_path: Path) -> None:
    src, _ = helper_mlp(tmp_path)
    with pytest.raises(OutputError, match="input"):
        save_onnx(load_onnx(src), src, force=True)


# -- bad files ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["empty", "truncated", "text", "no_graph"])
def test_bad_files_raise_one_line_input_error(tmp_path: Path, kind: str) -> None:
    p = tmp_path / f"{kind}.onnx"
    if kind == "empty":
        p.write_bytes(b"")
    elif kind == "truncated":
        full = helper_cnn(tmp_path)[0].read_bytes()
        p.write_bytes(full[: len(full) // 2])
    elif kind == "text":
        p.write_text("this is not a model\nreally, it is a text file\n")
    else:
        m = onnx.ModelProto(ir_version=8)
        m.opset_import.append(helper.make_opsetid("", 17))
        p.write_bytes(m.SerializeToString())
    with pytest.raises(InputError) as e:
        load_onnx(p)
    msg = str(e.value)
    assert str(p) in msg and "\n" not in msg


def test_gemm_whose_bias_is_an_identity_of_another_initializer_is_dense(tmp_path: Path) -> None:
    """torch's exporter merges equal initializers (all-zero biases) through Identity nodes."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w1, w2 = (rng.normal(size=(4, 4)).astype(np.float32) for _ in range(2))
    nodes = [
        helper.make_node("Identity", ["b1"], ["b2"]),
        helper.make_node("Gemm", ["x", "w1", "b1"], ["h"], transB=1),
        helper.make_node("Gemm", ["h", "w2", "b2"], ["y"], transB=1),
    ]
    inits = [
        numpy_helper.from_array(a, n) for a, n in ((w1, "w1"), (w2, "w2"), (np.zeros(4, np.float32), "b1"))
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 4])],
        inits,
    )
    p = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), p)
    from nncompress.io import load
    from nncompress.ir.interpreter import run

    g = load(p)
    assert g.weights["w2"].role == "kernel" and g.weights["w2"].op == "Dense"
    x = rng.normal(size=(3, 4)).astype(np.float32)
    np.testing.assert_allclose(run(g, x)[0], (x @ w1.T) @ w2.T, rtol=1e-5)
