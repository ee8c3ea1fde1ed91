"""The numpy reference executor against onnxruntime, op by op, on the same seeded random data."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from nncompress.errors import InputError, UnsupportedError
from nncompress.ir import Graph, ModelMeta, Node, ValueInfo, Weight
from nncompress.ir.interpreter import run

RNG_SEED = 0
_IR_ONLY_ATTRS = {"coerce_2d"}  # IR markers with no ONNX attribute behind them
_ELEM = {
    "float32": TensorProto.FLOAT,
    "float64": TensorProto.DOUBLE,
    "int64": TensorProto.INT64,
    "bool": TensorProto.BOOL,
    "float16": TensorProto.FLOAT16,
}


# -- IR -> ONNX, the way a writer would: 1:1 except Dense -> MatMul(W.T) + Add ----------------------


def _onnx_graph(g: Graph, top: bool) -> onnx.GraphProto:
    inits = [numpy_helper.from_array(w.array, w.name) for w in g.weights.values()]
    for k in {n.inputs[1] for n in g.nodes if n.op == "Dense"}:
        inits.append(numpy_helper.from_array(np.ascontiguousarray(g.weights[k].array.T), k + "__T"))
    nodes = []
    for n in g.nodes:
        if n.op == "Dense":
            x, w = n.inputs[0], n.inputs[1]
            has_b = len(n.inputs) > 2 and n.inputs[2]
            mm = n.outputs[0] + "__mm" if has_b else n.outputs[0]
            nodes.append(helper.make_node("MatMul", [x, w + "__T"], [mm], name=n.name))
            if has_b:
                nodes.append(helper.make_node("Add", [mm, n.inputs[2]], n.outputs, name=n.name + "_b"))
            continue
        attrs = {k: _onnx_attr(v) for k, v in n.attrs.items() if k not in _IR_ONLY_ATTRS}
        nodes.append(helper.make_node(n.op, n.inputs, n.outputs, name=n.name, domain=n.domain, **attrs))
    ins = [helper.make_tensor_value_info(v.name, _ELEM[v.dtype], v.shape) for v in g.inputs] if top else []
    outs = [helper.make_tensor_value_info(v.name, _ELEM[v.dtype], None) for v in g.outputs]
    return helper.make_graph(nodes, g.name, ins, outs, initializer=inits)


def _onnx_attr(v: Any) -> Any:
    if isinstance(v, Graph):
        return _onnx_graph(v, top=False)
    if isinstance(v, np.ndarray):
        return numpy_helper.from_array(v)
    return v


def ort_run(g: Graph, feeds: dict[str, np.ndarray], opset: int) -> list[np.ndarray]:
    model = helper.make_model(_onnx_graph(g, top=True), opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run([v.name for v in g.outputs], feeds)


# -- building tiny graphs --------------------------------------------------------------------------


def one_node(
    op: str,
    shape: tuple[int, ...],
    attrs: dict[str, Any] | None = None,
    args: tuple[Any, ...] = (),
    *,
    outputs: int = 1,
    dtype: str = "float32",
    out_dtype: str | tuple[str, ...] | None = None,
) -> Graph:
    """A graph of one node; ``args`` are its inputs after x: arrays (weights), None (omitted), or "x"."""
    if not any(isinstance(a, str) for a in args):
        args = ("x", *args)
    names, weights = [], {}
    for i, a in enumerate(args):
        if isinstance(a, str):
            names.append(a)
        elif a is None:
            names.append("")
        else:
            names.append(f"w{i}")
            weights[f"w{i}"] = Weight(f"w{i}", np.asarray(a), role="const", op=op)
    outs = [f"y{i}" for i in range(outputs)]
    out_dtypes = out_dtype if isinstance(out_dtype, tuple) else (out_dtype or dtype,) * outputs
    node = Node("n", op, names, outs, attrs=dict(attrs or {}))
    return Graph(
        nodes=[node],
        inputs=[ValueInfo("x", (None, *shape[1:]), dtype)],
        outputs=[ValueInfo(o, None, t) for o, t in zip(outs, out_dtypes, strict=True)],
        weights=weights,
    )


def data(shape: tuple[int, ...], kind: str = "normal", seed: int = RNG_SEED) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=shape)
    if kind == "pos":
        x = np.abs(x) + 0.1
    elif kind == "int":
        x = np.round(x * 2)
    elif kind == "int64":
        return np.round(x * 10).astype(np.int64)
    elif kind == "bool":
        return x > 0
    return x.astype(np.float32)


def assert_matches(g: Graph, feeds: dict[str, np.ndarray], opset: int = 17, **kw: Any) -> list[np.ndarray]:
    want = ort_run(g, feeds, opset)
    got = run(g, feeds, **kw)
    assert len(got) == len(want)
    for o, r in zip(got, want, strict=True):
        assert o.shape == r.shape
        assert o.dtype == r.dtype
        np.testing.assert_allclose(o, r, rtol=1e-4, atol=1e-5)
    return got


def W(*shape: int, seed: int = 1) -> np.ndarray:  # reads like the math
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def P(op: str, shape: tuple[int, ...], attrs: dict[str, Any] | None = None, *args: Any, **kw: Any) -> Any:
    """One parametrised case; kw: opset, kind (input data), outputs, dtype, out_dtype, id."""
    return pytest.param(op, shape, attrs, args, kw, id=kw.pop("id", op))


I64 = np.int64
CASES = [
    # convolutions
    P("Conv", (2, 3, 8, 8), {}, W(4, 3, 3, 3), W(4), id="conv2d"),
    P("Conv", (2, 3, 8, 7), {"pads": [1, 0, 2, 1], "strides": [2, 1]}, W(4, 3, 3, 2), id="conv-asym-pads"),
    P("Conv", (2, 3, 11, 11), {"dilations": [2, 2], "strides": [2, 2]}, W(4, 3, 3, 3), W(4), id="conv-dil"),
    P("Conv", (2, 4, 7, 7), {"group": 2, "pads": [1, 1, 1, 1]}, W(6, 2, 3, 3), W(6), id="conv-groups"),
    P("Conv", (2, 3, 9, 9), {"group": 3}, W(6, 1, 3, 3), W(6), id="conv-depthwise"),
    P("Conv", (1, 2, 7, 9), {"auto_pad": "SAME_UPPER", "strides": [2, 2]}, W(3, 2, 3, 3), id="conv-same-s2"),
    P("Conv", (1, 2, 7, 9), {"auto_pad": "SAME_UPPER", "strides": [2, 2]}, W(3, 2, 4, 4), id="conv-same-k4"),
    P("Conv", (1, 2, 7, 9), {"auto_pad": "SAME_LOWER", "strides": [1, 2]}, W(3, 2, 4, 2), id="conv-same-lower"),
    P("Conv", (1, 2, 7, 9), {"auto_pad": "VALID", "strides": [2, 3]}, W(3, 2, 3, 3), id="conv-valid"),
    P("Conv", (2, 3, 10), {"strides": [2], "pads": [1, 2], "dilations": [2]}, W(4, 3, 3), W(4), id="conv1d"),
    P("Conv", (2, 4, 10), {"group": 4, "auto_pad": "SAME_UPPER"}, W(8, 1, 5), id="conv1d-depthwise-same"),
    P(
        "Conv",
        (2, 5, 12, 11),
        {"group": 5, "strides": [2, 1], "dilations": [1, 2], "pads": [1, 2, 0, 1]},
        W(5, 1, 3, 3),
        W(5),
        id="conv-depthwise-strided-dilated",
    ),
    P("Conv", (1, 3, 5, 6, 7), {"group": 3, "pads": [1] * 6}, W(3, 1, 3, 2, 3), id="conv3d-depthwise"),
    P(
        "ConvTranspose",
        (2, 4, 5, 5),
        {"strides": [2, 2], "pads": [1, 1, 0, 0], "output_padding": [1, 1]},
        W(4, 3, 3, 3),
        W(3),
        id="convT2d",
    ),
    P("ConvTranspose", (2, 4, 5, 6), {"group": 2, "dilations": [2, 1]}, W(4, 2, 3, 2), W(4), id="convT-groups"),
    P("ConvTranspose", (2, 3, 7), {"strides": [3], "pads": [2, 1]}, W(3, 2, 4), id="convT1d"),
    P("ConvTranspose", (1, 2, 5, 5), {"strides": [2, 2], "auto_pad": "SAME_UPPER"}, W(2, 3, 3, 3), id="convT-same"),
    P("ConvTranspose", (1, 2, 5), {"strides": [2], "output_shape": [12]}, W(2, 3, 4), id="convT-outshape"),
    # dense algebra
    P("Dense", (3, 5), {}, W(4, 5), W(4)),
    P("Dense", (2, 3, 5), {}, W(4, 5), id="dense-3d-nobias"),
    P("MatMul", (2, 3, 5), {}, W(5, 4)),
    P("Gemm", (3, 5), {"transB": 1, "alpha": 0.5, "beta": 2.0}, W(4, 5), W(4)),
    P("BatchNormalization", (2, 3, 4, 4), {"epsilon": 1e-3}, W(3), W(3), W(3), np.abs(W(3)) + 0.5),
    # activations
    *[P(op, (2, 3, 4)) for op in ("Relu", "Sigmoid", "Tanh", "Exp", "Abs", "Neg", "Identity", "Floor")],
    *[P(op, (2, 3, 4)) for op in ("Ceil", "Erf", "Softplus", "Softsign", "Selu", "HardSwish")],
    *[P(op, (2, 3, 4), None, kind="pos") for op in ("Log", "Sqrt", "Reciprocal")],
    P("LeakyRelu", (2, 3, 4), {"alpha": 0.1}),
    P("Elu", (2, 3, 4), {"alpha": 0.5}),
    P("Selu", (2, 3, 4), {"alpha": 1.5, "gamma": 1.1}, id="selu-attrs"),
    P("Gelu", (2, 3, 4), {}, opset=20),
    P("Gelu", (2, 3, 4), {"approximate": "tanh"}, opset=20, id="gelu-tanh"),
    P("PRelu", (2, 3, 4, 4), {}, W(3, 1, 1)),
    P("Clip", (2, 3, 4), {}, np.float32(-0.5), np.float32(0.7), opset=13),
    P("Clip", (2, 3, 4), {}, None, np.float32(0.7), opset=13, id="clip-max-only"),
    P("Clip", (2, 3, 4), {"min": -0.2, "max": 0.3}, opset=6, id="clip-attrs-opset6"),
    P("HardSigmoid", (2, 3, 4), {"alpha": 0.3, "beta": 0.4}),
    P("Softmax", (2, 3, 4), {"axis": 1}, opset=13),
    P("LogSoftmax", (2, 3, 4), {}, opset=13),
    P("Softmax", (2, 3, 4, 2), {"axis": 1, "coerce_2d": 1}, opset=11, id="softmax-coerce2d"),
    P("LogSoftmax", (2, 3, 4), {"axis": 2, "coerce_2d": 1}, opset=11, id="logsoftmax-coerce2d"),
    P("Dropout", (2, 3), {}, outputs=2, out_dtype=("float32", "bool"), id="dropout-mask"),
    # pools
    P("MaxPool", (1, 2, 8, 8), {"kernel_shape": [3, 3], "strides": [2, 2], "ceil_mode": 1}, id="maxpool-ceil"),
    P(
        "MaxPool",
        (1, 2, 9, 8),
        {"kernel_shape": [3, 2], "strides": [2, 2], "pads": [1, 0, 1, 1], "ceil_mode": 1},
        id="maxpool-ceil-pads",
    ),
    P("MaxPool", (1, 2, 9, 9), {"kernel_shape": [2, 2], "dilations": [2, 2]}, id="maxpool-dil"),
    # ceil_mode would start a last window inside the end padding: ONNX drops it
    P("MaxPool", (1, 2, 4, 4), {"kernel_shape": [2, 2], "strides": [3, 3], "pads": [1, 1, 1, 1], "ceil_mode": 1}, id="maxpool-ceil-drop"),
    P("AveragePool", (1, 2, 4, 4), {"kernel_shape": [2, 2], "strides": [3, 3], "pads": [1, 1, 1, 1], "ceil_mode": 1, "count_include_pad": 1}, id="avgpool-ceil-drop"),
    P("AveragePool", (1, 2, 9, 9), {"kernel_shape": [2, 3], "dilations": [2, 2], "pads": [1, 1, 0, 2]}, opset=19, id="avgpool-dil"),
    P("MaxPool", (1, 2, 7, 9), {"kernel_shape": [3, 3], "strides": [2, 2], "auto_pad": "SAME_UPPER"}, id="maxpool-same"),
    P("MaxPool", (2, 3, 11), {"kernel_shape": [3], "strides": [2], "pads": [1, 1]}, id="maxpool1d"),
    P(
        "AveragePool",
        (1, 2, 7, 7),
        {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]},
        id="avgpool-excl-pad",
    ),
    P(
        "AveragePool",
        (1, 2, 7, 7),
        {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1], "count_include_pad": 1},
        id="avgpool-incl-pad",
    ),
    P(
        "AveragePool",
        (1, 2, 8, 8),
        {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 0, 0, 1], "ceil_mode": 1, "count_include_pad": 1},
        id="avgpool-ceil-incl",
    ),
    P("AveragePool", (1, 2, 8, 8), {"kernel_shape": [3, 3], "strides": [2, 2], "ceil_mode": 1}, id="avgpool-ceil"),
    P("AveragePool", (2, 3, 10), {"kernel_shape": [4], "strides": [3], "auto_pad": "SAME_UPPER"}, id="avgpool1d-same"),
    P("GlobalAveragePool", (2, 3, 4, 5)),
    P("GlobalMaxPool", (2, 3, 7)),
    # shapes and data movement
    P("Flatten", (2, 3, 4, 5), {"axis": 2}),
    P("Flatten", (2, 3, 4), {"axis": -1}, id="flatten-neg"),
    P("Reshape", (2, 3, 4), {}, np.array([0, -1], I64)),
    P("Reshape", (2, 3, 4), {}, np.array([0, 2, -1, 3], I64), id="reshape-0-minus1"),
    P("Transpose", (2, 3, 4), {"perm": [2, 0, 1]}),
    P("Squeeze", (2, 1, 4, 1), {}, np.array([1, -1], I64), opset=13),
    P("Squeeze", (2, 1, 4), {"axes": [1]}, opset=11, id="squeeze-attr"),
    P("Unsqueeze", (2, 3), {}, np.array([1, -1], I64), opset=13),
    P("Unsqueeze", (2, 3), {"axes": [0, 3]}, opset=11, id="unsqueeze-attr"),
    P("Concat", (2, 3, 4), {"axis": 1}, W(2, 2, 4)),
    P("Add", (2, 3, 4), {}, W(4)),
    P("Sub", (2, 3, 4), {}, W(3, 1)),
    P("Mul", (2, 3, 4), {}, W(1, 3, 4)),
    P("Div", (2, 3, 4), {}, np.abs(W(4)) + 0.5),
    P("Pow", (2, 3, 4), {}, W(4), kind="pos"),
    P("Div", (2, 5), {}, np.array([3, -3, 4, -7, 2], I64), dtype="int64", kind="int64", id="div-int"),
    P("Gather", (2, 5, 3), {"axis": 1}, np.array([[0, -1], [2, 4]], I64)),
    P("Shape", (2, 3, 4, 5), {"start": 1, "end": -1}, opset=15, out_dtype="int64"),
    P("Cast", (2, 3), {"to": TensorProto.INT64}, out_dtype="int64", kind="int"),
    P("Cast", (2, 3), {"to": TensorProto.DOUBLE}, out_dtype="float64", id="cast-double"),
    P("ReduceMean", (2, 3, 4), {"keepdims": 0}, np.array([1, -1], I64), opset=18),
    P("ReduceMean", (2, 3, 4), {}, opset=18, id="reducemean-all"),
    P("ReduceSum", (2, 3, 4), {}, np.array([2], I64), opset=13),
    P("ReduceSum", (2, 3, 4), {"noop_with_empty_axes": 1}, opset=13, id="reducesum-noop"),
    P("ReduceMax", (2, 3, 4), {"axes": [1], "keepdims": 0}, opset=13),
    P("ReduceMin", (2, 3, 4), {"axes": [0, 2]}, opset=13),
    P("Max", (2, 3), {}, W(3), W(2, 1, seed=2)),
    P("Min", (2, 3), {}, W(3), W(2, 1, seed=2)),
    P("Sum", (2, 3), {}, W(3), W(2, 1, seed=2)),
    P("Mean", (2, 3), {}, W(3), W(2, 1, seed=2)),
    P("Where", (2, 3), {}, np.array([True, False, True]), "x", W(2, 3)),
    *[
        P(op, (2, 6), {}, np.array([0, 1, -1, 2, 0, 1], np.float32), kind="int", out_dtype="bool")
        for op in ("Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual")
    ],
    *[P(op, (2, 6), {}, np.array([0, 1, 0, 1, 1, 0], bool), dtype="bool", kind="bool") for op in ("And", "Or")],
    P("Not", (2, 6), {}, dtype="bool", kind="bool"),
    P("Expand", (2, 1, 3), {}, np.array([4, 1], I64)),
    P("Tile", (2, 3), {}, np.array([2, 3], I64)),
    P("Slice", (4, 6, 5), {}, np.array([1, -2], I64), np.array([100, 0], I64), np.array([1, 2], I64), np.array([2, -1], I64)),
    P("Slice", (4, 6), {}, np.array([-1], I64), np.array([-100], I64), np.array([1], I64), np.array([-2], I64), id="slice-rev"),
    P("Pad", (2, 3, 4), {}, np.array([0, 1, 2, 0, 2, -1], I64), np.float32(0.5), opset=13),
    P("Pad", (2, 3, 4), {"mode": "reflect"}, np.array([0, 0, 2, 0, 1, 1], I64), opset=13, id="pad-reflect"),
    P("Split", (2, 6, 3), {"axis": 1}, np.array([1, 2, 3], I64), outputs=3, opset=13),
    P("Split", (2, 6, 3), {"axis": 1}, outputs=3, opset=13, id="split-even"),
    P("Split", (2, 6, 3), {"axis": 1, "split": [4, 2]}, outputs=2, opset=11, id="split-attr"),
    P("Slice", (4, 6), {"starts": [1, -3], "ends": [3, 100], "axes": [0, 1]}, opset=9, id="slice-attrs"),
    P("Pad", (2, 3), {"pads": [0, 1, 1, 2], "value": 0.25}, opset=10, id="pad-attrs"),
    P("Pad", (2, 3, 4), {"mode": "edge"}, np.array([0, 1, 0, 0, 1, 2], I64), opset=13, id="pad-edge"),
    P("Cast", (2, 3), {"to": TensorProto.FLOAT16}, out_dtype="float16", id="cast-half"),
    P("Split", (2, 7), {"axis": 1, "num_outputs": 3}, outputs=3, opset=18, id="split-num-outputs"),
]  # fmt: skip


@pytest.mark.parametrize(("op", "shape", "attrs", "args", "kw"), CASES)
def test_op_matches_onnxruntime(
    op: str, shape: tuple[int, ...], attrs: dict[str, Any] | None, args: tuple[Any, ...], kw: dict[str, Any]
) -> None:
    kw = dict(kw)
    opset = kw.pop("opset", 17)
    kind = kw.pop("kind", "normal")
    g = one_node(op, shape, attrs, args, **kw)
    assert_matches(g, {"x": data(shape, kind)}, opset)


def test_constant_node() -> None:
    nodes = [
        Node("c", "Constant", [], ["k"], attrs={"value": W(3)}),
        Node("add", "Add", ["x", "k"], ["y"]),
    ]
    g = Graph(nodes=nodes, inputs=[ValueInfo("x", (None, 3))], outputs=[ValueInfo("y")])
    assert_matches(g, {"x": data((4, 3))})


def _if_graph() -> Graph:
    """y = x * w_then if sum(x) > 0 else x - c_else, both branches reading x and w from outside."""
    then = Graph(nodes=[Node("t", "Mul", ["x", "w"], ["ty"])], outputs=[ValueInfo("ty")], name="then")
    other = Graph(
        nodes=[Node("e", "Sub", ["x", "c"], ["ey"]), Node("e2", "Add", ["ey", "w"], ["ey2"])],
        outputs=[ValueInfo("ey2")],
        weights={"c": Weight("c", np.float32(1.5) * np.ones(3, np.float32), role="const")},
        name="else",
    )
    nodes = [
        Node("s", "ReduceSum", ["x"], ["s"], attrs={"keepdims": 0}),
        Node("z", "Constant", [], ["zero"], attrs={"value": np.array(0, np.float32)}),
        Node("gt", "Greater", ["s", "zero"], ["cond"]),
        Node("if", "If", ["cond"], ["y"], attrs={"then_branch": then, "else_branch": other}),
    ]
    return Graph(
        nodes=nodes,
        inputs=[ValueInfo("x", (4, 3))],
        outputs=[ValueInfo("y")],
        weights={"w": Weight("w", W(3), role="const")},
    )


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_if_reads_outer_scope(sign: float) -> None:
    x = np.abs(data((4, 3))) * sign
    got = assert_matches(_if_graph(), {"x": x}, opset=13)
    w = W(3)
    np.testing.assert_allclose(got[0], x * w if sign > 0 else x - 1.5 + w, rtol=1e-6)


def _cnn() -> Graph:
    """A small MNIST-shaped CNN: conv-relu-pool twice, flatten, dense."""
    ws = {
        "k1": Weight("k1", W(8, 1, 3, 3) * 0.3, layer="c1", role="kernel", op="Conv"),
        "b1": Weight("b1", W(8, seed=2) * 0.1, layer="c1", role="bias", op="Conv"),
        "k2": Weight("k2", W(16, 8, 3, 3, seed=3) * 0.2, layer="c2", role="kernel", op="Conv"),
        "b2": Weight("b2", W(16, seed=4) * 0.1, layer="c2", role="bias", op="Conv"),
        "k3": Weight("k3", W(10, 16 * 5 * 5, seed=5) * 0.05, layer="fc", role="kernel", op="Dense"),
        "b3": Weight("b3", W(10, seed=6) * 0.1, layer="fc", role="bias", op="Dense"),
    }
    pool = {"kernel_shape": [2, 2], "strides": [2, 2]}
    nodes = [
        Node("c1", "Conv", ["x", "k1", "b1"], ["h1"]),
        Node("r1", "Relu", ["h1"], ["a1"]),
        Node("p1", "MaxPool", ["a1"], ["q1"], attrs=pool),
        Node("c2", "Conv", ["q1", "k2", "b2"], ["h2"]),
        Node("r2", "Relu", ["h2"], ["a2"]),
        Node("p2", "AveragePool", ["a2"], ["q2"], attrs=pool),
        Node("fl", "Flatten", ["q2"], ["f"]),
        Node("fc", "Dense", ["f", "k3", "b3"], ["logits"]),
        Node("sm", "Softmax", ["logits"], ["y"], attrs={"axis": -1}),
    ]
    return Graph(
        nodes=nodes,
        inputs=[ValueInfo("x", (None, 1, 28, 28))],
        outputs=[ValueInfo("y"), ValueInfo("logits")],
        weights=ws,
    )


def test_small_cnn_on_1000_images_is_fast_and_right() -> None:
    g = _cnn()
    x = np.random.default_rng(0).random((1000, 1, 28, 28), dtype=np.float32)
    t0 = time.perf_counter()
    got = run(g, x)
    elapsed = time.perf_counter() - t0
    want = ort_run(g, {"x": x}, 17)
    for o, r in zip(got, want, strict=True):
        np.testing.assert_allclose(o, r, rtol=1e-4, atol=1e-5)
    assert elapsed < 10, f"1000 images took {elapsed:.1f} s"


def test_batching_equals_whole() -> None:
    g = _cnn()
    x = data((10, 1, 28, 28))
    whole = run(g, x, batch_size=None)
    for a, b in zip(run(g, x, batch_size=3), whole, strict=True):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)  # BLAS blocks differ by batch size


def test_output_not_along_batch_falls_back_to_whole_run() -> None:
    g = one_node("Shape", (10, 3), out_dtype="int64")
    (got,) = run(g, data((10, 3)), batch_size=4)
    np.testing.assert_array_equal(got, [10, 3])


@pytest.mark.parametrize("shape", [[1, 12], [1, -1]])
@pytest.mark.parametrize("batch_size", [None, 2, 256])
def test_fixed_batch_one_graph_is_fed_one_sample_at_a_time(shape: list[int], batch_size: int | None) -> None:
    # an export with batch 1 baked into a Reshape still runs on many samples, whatever the batch size
    g = one_node("Reshape", (1, 3, 4), {}, (np.array(shape, I64),))
    g.inputs[0].shape = (1, 3, 4)
    x = data((6, 3, 4))
    (got,) = run(g, x, batch_size=batch_size)
    np.testing.assert_array_equal(got, x.reshape(6, 12))


def test_flat_inputs_are_reshaped_to_the_declared_shape() -> None:
    g = _cnn()
    x = data((6, 1, 28, 28))
    for a, b in zip(run(g, x.reshape(6, 784)), run(g, x), strict=True):
        np.testing.assert_array_equal(a, b)
    nhwc = one_node("Relu", (None, 28, 28, 1))  # type: ignore[arg-type]
    (got,) = run(nhwc, x.reshape(6, 784))
    assert got.shape == (6, 28, 28, 1)


def test_wrong_input_size_is_an_input_error() -> None:
    g = Graph(nodes=_cnn().nodes, inputs=_cnn().inputs, outputs=_cnn().outputs, weights=_cnn().weights)
    g.meta = ModelMeta(path="cnn.onnx")
    with pytest.raises(InputError, match=r"cnn\.onnx: input 'x' has shape \(6, 785\)") as e:
        run(g, np.zeros((6, 785), np.float32))
    assert "\n" not in str(e.value)


def test_input_names_are_checked() -> None:
    g = one_node("Add", (2, 3), {}, ("x", "x"))
    with pytest.raises(InputError, match="unknown"):
        run(g, {"x": data((2, 3)), "z": data((2, 3))})
    g.inputs.append(ValueInfo("u", (None, 3)))
    with pytest.raises(InputError, match="2 inputs"):
        run(g, data((2, 3)))


def test_inputs_are_cast_and_float64_is_kept() -> None:
    g = one_node("Conv", (2, 3, 6, 6), {}, (W(4, 3, 3, 3).astype(np.float16), W(4)))
    x64 = np.random.default_rng(0).normal(size=(2, 3, 6, 6))
    assert run(g, x64)[0].dtype == np.float32  # float16 weights and float64 data: float32 math
    g.inputs[0].dtype = "float64"
    assert run(g, x64)[0].dtype == np.float64  # a float64 input: float64 math, weights cast up
    g64 = one_node("Dense", (2, 5), {}, (W(4, 5).astype(np.float64), W(4).astype(np.float64)))
    g64.inputs[0].dtype = g64.outputs[0].dtype = "float64"
    (got,) = assert_matches(g64, {"x": x64[:, 0, 0, :5]})
    assert got.dtype == np.float64


class _Counting:
    """A compressed tensor that stores float16 and counts its decodes."""

    def __init__(self, a: np.ndarray) -> None:
        self.half, self.decodes = a.astype(np.float16), 0

    @property
    def shape(self) -> tuple[int, ...]:
        return self.half.shape

    @property
    def dtype(self) -> np.dtype[Any]:
        return np.dtype(np.float32)

    def to_dense(self) -> np.ndarray:
        self.decodes += 1
        return self.half.astype(np.float32)


def test_compressed_weights_are_decoded_once_per_run() -> None:
    g = _cnn()
    slot = _Counting(g.weights["k2"].array)
    g.weights["k2"].value = slot
    x = data((10, 1, 28, 28))
    got = run(g, x, batch_size=2)
    assert slot.decodes == 1
    g.weights["k2"].value = slot.half.astype(np.float32)
    np.testing.assert_allclose(got[0], run(g, x)[0], rtol=1e-6)


@pytest.mark.parametrize(
    ("op", "domain", "shown"),
    [
        ("FusedMatMul", "", "FusedMatMul"),
        ("Gelu", "com.microsoft", "com.microsoft:Gelu"),
        ("Lambda", "keras", "keras:Lambda"),
    ],
)
def test_unknown_op_is_unsupported(op: str, domain: str, shown: str) -> None:
    g = one_node(op, (2, 3))
    g.nodes[0].domain = domain
    g.meta = ModelMeta(path="m.keras")
    with pytest.raises(UnsupportedError, match=f"m.keras: cannot execute op {shown} \\(node n\\)") as e:
        run(g, data((2, 3)))
    assert "\n" not in str(e.value) and "does not run it" in str(e.value)


def test_shape_mismatch_inside_the_graph_is_an_input_error() -> None:
    g = one_node("Dense", (2, 5), {}, (W(4, 6),))
    g.inputs[0].shape = None
    with pytest.raises(InputError, match="node 'n' \\(Dense\\) failed"):
        run(g, data((2, 5)))


def test_a_large_conv_batch_is_convolved_in_slices(monkeypatch: pytest.MonkeyPatch) -> None:
    from nncompress.ir.ops import linear

    rng = np.random.default_rng(0)
    x = rng.standard_normal((7, 4, 9, 9)).astype(np.float32)
    w = rng.standard_normal((6, 2, 3, 3)).astype(np.float32)
    b = rng.standard_normal(6).astype(np.float32)
    attrs = {"pads": [1, 1, 1, 1], "group": 2}
    whole = linear._conv([x, w, b], attrs)
    per_sample = 9 * 9 * 4 * 9 * 4  # im2col bytes of one sample
    monkeypatch.setattr(linear, "_IM2COL_BYTES", 3 * per_sample)  # slices of 3, 3 and 1 samples
    sliced = linear._conv([x, w, b], attrs)
    assert sliced.shape == whole.shape == (7, 6, 9, 9)
    np.testing.assert_allclose(sliced, whole, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("budget_rows", [1, 2, 4])
def test_one_sample_over_the_im2col_budget_runs_in_bands_of_output_rows(
    monkeypatch: pytest.MonkeyPatch, budget_rows: int
) -> None:
    from nncompress.ir.ops import linear

    rng = np.random.default_rng(2)
    x = rng.standard_normal((1, 4, 11, 9)).astype(np.float32)
    w = rng.standard_normal((6, 2, 3, 3)).astype(np.float32)
    attrs = {"pads": [1, 0, 1, 2], "strides": [2, 1], "group": 2}
    whole = linear._conv([x, w], attrs)
    rows, cols = whole.shape[2:]
    per_sample = rows * cols * 4 * 9 * 4
    monkeypatch.setattr(linear, "_IM2COL_BYTES", per_sample * budget_rows // rows)  # bands of budget_rows
    banded = linear._conv([x, w], attrs)
    assert banded.shape == whole.shape == (1, 6, 6, 9)
    np.testing.assert_allclose(banded, whole, rtol=1e-6, atol=1e-6)


def test_intermediate_values_are_freed_once_read_for_the_last_time() -> None:
    """A chain of 12 ops on a 4 MB input: every intermediate is dead once the next op ran, so the
    run holds about two of them at a time, not all twelve."""
    import tracemalloc

    n = 12
    nodes = [Node(f"r{i}", "Relu", [f"v{i}"], [f"v{i + 1}"]) for i in range(n)]
    nodes.append(Node("side", "Neg", ["v3"], ["unused"]))  # an output nothing reads
    g = Graph(nodes=nodes, inputs=[ValueInfo("v0", (1, 1 << 20))], outputs=[ValueInfo(f"v{n}")])
    x = data((1, 1 << 20))
    tracemalloc.start()
    try:
        (y,) = run(g, x)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    np.testing.assert_array_equal(y, np.maximum(x, 0))
    assert peak < 4 * x.nbytes, peak  # all twelve kept would be 12 * 4 MB


def test_the_registry_runs_every_op_docs_ir_md_lists() -> None:
    """The ops live in one module per family (nncompress.ir.ops): none of docs/ir.md's table may fall
    out of the merged registry; If is the interpreter's own."""
    import re
    from pathlib import Path

    from nncompress.ir.ops import OPS

    doc = (Path(__file__).resolve().parents[1] / "docs" / "ir.md").read_text()
    table = [line.split("|")[1] for line in doc.splitlines() if line.startswith("| `")]
    listed = {op for cell in table for op in re.findall(r"`(\w+)`", cell)}
    assert len(listed) > 60
    assert listed - set(OPS) == {"If"}
