"""`nncompress.torch.graph.to_torch`: every graph as a torch module, against the numpy executor.

Outputs must equal the executor's within 1e-4 relative (max error over max magnitude) op by op, on
every example model and on real files built here (TorchScript, traced, torch.export, ONNX), as loaded
and compressed with sham, lowrank and psm; and the module must train and be deterministic.
"""

from __future__ import annotations

import subprocess
import sys
import warnings
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
import torch
import torch.nn.functional as F
from onnx import TensorProto, helper, numpy_helper
from torch import nn

import nncompress
from nncompress.errors import InputError, UsageError
from nncompress.ir import Graph, Node, ValueInfo, Weight
from nncompress.ir.interpreter import run
from nncompress.ir.ops import OPS as EXECUTOR_OPS
from nncompress.pipeline.engine import compress_graph
from nncompress.pipeline.recipe import PRESETS as RECIPES
from nncompress.pipeline.recipe import plan_from
from nncompress.torch.graph import OPS, GraphModule, to_torch

from .conftest import DATA, MODELS, tiny_model

# sham and lowrank as their presets' pipelines; psm with a short solve (its fit is not what is tested)
PRESETS = {"sham": RECIPES["sham"], "lowrank": RECIPES["lowrank"], "psm": "psm:iterations=3"}


def _compressed(g: Graph, preset: str) -> Graph:
    g2 = compress_graph(g, plan_from(None, PRESETS[preset], None))[0]
    assert any(w.is_compressed for w in g2.weights.values())
    return g2


def _outputs(m: GraphModule, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    with torch.no_grad():
        y = m(feeds)
    return [t.numpy() for t in (y if isinstance(y, tuple) else (y,))]


def assert_like_executor(g: Graph, feeds: dict[str, np.ndarray], rel: float = 1e-4, **kw: Any) -> GraphModule:
    """The module of ``g`` answers ``feeds`` as the executor does (floats within ``rel`` of the
    largest magnitude, everything else exactly)."""
    want = run(g, feeds)
    m = to_torch(g, **kw)
    got = _outputs(m, feeds)
    assert len(got) == len(want)
    for o, w in zip(got, want, strict=True):
        assert o.shape == w.shape
        if np.issubdtype(w.dtype, np.floating):
            assert np.issubdtype(o.dtype, np.floating)
            scale = max(float(np.max(np.abs(w), initial=0.0)), 1e-6)
            assert float(np.max(np.abs(o - w), initial=0.0)) <= rel * scale
        else:
            assert o.dtype == w.dtype
            assert np.array_equal(o, w)
    return m


# -- op by op ---------------------------------------------------------------------------------------


def _one_node(
    op: str, shape: tuple[int, ...], attrs: dict[str, Any], args: tuple[Any, ...], outputs: int, dtype: str
) -> Graph:
    """One node reading x then ``args`` (arrays become const weights, None is omitted, "x" is x)."""
    if not any(isinstance(a, str) for a in args):
        args = ("x", *args)
    names, weights = [], {}
    for i, a in enumerate(args):
        if isinstance(a, str) or a is None:
            names.append(a or "")
        else:
            names.append(f"w{i}")
            weights[f"w{i}"] = Weight(f"w{i}", np.asarray(a), role="const", op=op)
    outs = [f"y{i}" for i in range(outputs)]
    return Graph(
        nodes=[Node("n", op, names, outs, attrs=attrs)],
        inputs=[ValueInfo("x", (None, *shape[1:]), dtype)],
        outputs=[ValueInfo(o) for o in outs],
        weights=weights,
    )


def _data(shape: tuple[int, ...], kind: str) -> np.ndarray:
    x = np.random.default_rng(0).normal(size=shape)
    if kind == "pos":
        return (np.abs(x) + 0.1).astype(np.float32)
    if kind == "int":
        return np.round(x * 10).astype(np.int64)
    if kind == "bool":
        return x > 0
    if kind == "round":
        return np.round(x * 2).astype(np.float32)
    return x.astype(np.float32)


def W(*shape: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def C(op: str, shape: tuple[int, ...], attrs: dict[str, Any] | None = None, *args: Any, **kw: Any) -> Any:
    """One case; kw: kind (input data), outputs, dtype, id."""
    return pytest.param(op, shape, attrs or {}, args, kw, id=kw.pop("id", op))


I64 = np.int64
CASES = [
    C("Conv", (2, 3, 8, 8), {}, W(4, 3, 3, 3), W(4)),
    C("Conv", (2, 3, 8, 7), {"pads": [1, 0, 2, 1], "strides": [2, 1]}, W(4, 3, 3, 2), id="conv-asym-pads"),
    C("Conv", (2, 3, 11, 11), {"dilations": [2, 2], "strides": [2, 2]}, W(4, 3, 3, 3), W(4), id="conv-dil"),
    C("Conv", (2, 4, 7, 7), {"group": 2, "pads": [1, 1, 1, 1]}, W(6, 2, 3, 3), W(6), id="conv-groups"),
    C("Conv", (1, 2, 7, 9), {"auto_pad": "SAME_UPPER", "strides": [2, 2]}, W(3, 2, 4, 4), id="conv-same-k4"),
    C("Conv", (1, 2, 7, 9), {"auto_pad": "SAME_LOWER", "strides": [1, 2]}, W(3, 2, 4, 2), id="conv-same-lower"),
    C("Conv", (2, 4, 10), {"group": 4, "auto_pad": "SAME_UPPER"}, W(8, 1, 5), id="conv1d-depthwise"),
    C("Conv", (1, 2, 5, 5, 4), {"pads": [1, 0, 1, 1, 0, 1]}, W(3, 2, 3, 2, 2), id="conv3d"),
    C("ConvTranspose", (2, 4, 5, 5), {"strides": [2, 2], "pads": [1, 1, 0, 0], "output_padding": [1, 1]}, W(4, 3, 3, 3), W(3)),
    C("ConvTranspose", (2, 4, 5, 6), {"group": 2, "dilations": [2, 1]}, W(4, 2, 3, 2), W(4), id="convT-groups"),
    C("ConvTranspose", (2, 3, 7), {"strides": [3], "pads": [2, 1]}, W(3, 2, 4), id="convT1d"),
    C("ConvTranspose", (1, 2, 5, 5), {"strides": [2, 2], "auto_pad": "SAME_UPPER"}, W(2, 3, 3, 3), id="convT-same"),
    C("ConvTranspose", (1, 2, 5), {"strides": [2], "output_shape": [12]}, W(2, 3, 4), id="convT-outshape"),
    C("ConvTranspose", (1, 2, 4), {"strides": [2], "output_padding": [3], "dilations": [2]}, W(2, 3, 3), id="convT-big-outpad"),
    C("Dense", (3, 5), {}, W(4, 5), W(4)),
    C("Dense", (2, 3, 5), {}, W(4, 5), id="dense-3d"),
    C("MatMul", (2, 3, 5), {}, W(5, 4)),
    C("Gemm", (3, 5), {"transB": 1, "alpha": 0.5, "beta": 2.0}, W(4, 5), W(4)),
    C("Gemm", (5, 3), {"transA": 1}, W(5, 4), W(3, 4), id="gemm-transA"),
    C("BatchNormalization", (2, 3, 4, 4), {"epsilon": 1e-3}, W(3), W(3), W(3), np.abs(W(3)) + 0.5),
    *[C(op, (2, 3, 4)) for op in ("Relu", "Sigmoid", "Tanh", "Exp", "Abs", "Neg", "Identity", "Floor", "Ceil")],
    *[C(op, (2, 3, 4)) for op in ("Erf", "Softplus", "Softsign", "Selu", "HardSwish", "Elu", "Gelu")],
    *[C(op, (2, 3, 4), None, kind="pos") for op in ("Log", "Sqrt", "Reciprocal")],
    C("LeakyRelu", (2, 3, 4), {"alpha": 0.1}),
    C("Elu", (2, 3, 4), {"alpha": 0.5}, id="elu-alpha"),
    C("Selu", (2, 3, 4), {"alpha": 1.5, "gamma": 1.1}, id="selu-attrs"),
    C("Gelu", (2, 3, 4), {"approximate": "tanh"}, id="gelu-tanh"),
    C("PRelu", (2, 3, 4, 4), {}, W(3, 1, 1)),
    C("Clip", (2, 3, 4), {}, np.float32(-0.5), np.float32(0.7)),
    C("Clip", (2, 3, 4), {}, None, np.float32(0.7), id="clip-max-only"),
    C("Clip", (2, 3, 4), {"min": -0.2, "max": 0.3}, id="clip-attrs"),
    C("HardSigmoid", (2, 3, 4), {"alpha": 0.3, "beta": 0.4}),
    C("Softmax", (2, 3, 4), {"axis": 1}),
    C("LogSoftmax", (2, 3, 4), {}),
    C("Softmax", (2, 3, 4, 2), {"axis": 1, "coerce_2d": 1}, id="softmax-coerce2d"),
    C("Dropout", (2, 3), {}, outputs=2),
    C("MaxPool", (1, 2, 8, 8), {"kernel_shape": [3, 3], "strides": [2, 2], "ceil_mode": 1}),
    C("MaxPool", (1, 2, 9, 8), {"kernel_shape": [3, 2], "strides": [2, 2], "pads": [1, 0, 1, 1], "ceil_mode": 1}, id="maxpool-ceil-pads"),
    C("MaxPool", (1, 2, 9, 9), {"kernel_shape": [2, 2], "dilations": [2, 2]}, id="maxpool-dil"),
    C("MaxPool", (1, 2, 4, 4), {"kernel_shape": [2, 2], "strides": [3, 3], "pads": [1, 1, 1, 1], "ceil_mode": 1}, id="maxpool-ceil-drop"),
    C("MaxPool", (1, 2, 7, 9), {"kernel_shape": [3, 3], "strides": [2, 2], "auto_pad": "SAME_UPPER"}, id="maxpool-same"),
    C("MaxPool", (2, 3, 11), {"kernel_shape": [3], "strides": [2], "pads": [1, 1]}, id="maxpool1d"),
    C("AveragePool", (1, 2, 4, 4), {"kernel_shape": [2, 2], "strides": [3, 3], "pads": [1, 1, 1, 1], "ceil_mode": 1, "count_include_pad": 1}),
    C("AveragePool", (1, 2, 9, 9), {"kernel_shape": [2, 3], "dilations": [2, 2], "pads": [1, 1, 0, 2]}, id="avgpool-dil"),
    C("AveragePool", (1, 2, 7, 7), {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}, id="avgpool-excl-pad"),
    C("AveragePool", (1, 2, 8, 8), {"kernel_shape": [3, 3], "strides": [2, 2], "ceil_mode": 1}, id="avgpool-ceil"),
    C("AveragePool", (2, 3, 10), {"kernel_shape": [4], "strides": [3], "auto_pad": "SAME_UPPER"}, id="avgpool1d-same"),
    C("GlobalAveragePool", (2, 3, 4, 5)),
    C("GlobalMaxPool", (2, 3, 7)),
    C("Flatten", (2, 3, 4, 5), {"axis": 2}),
    C("Flatten", (2, 3, 4), {"axis": -1}, id="flatten-neg"),
    C("Reshape", (2, 3, 4), {}, np.array([0, 2, -1, 3], I64)),
    C("Transpose", (2, 3, 4), {"perm": [2, 0, 1]}),
    C("Transpose", (2, 3, 4), {}, id="transpose-reverse"),
    C("Squeeze", (2, 1, 4, 1), {}, np.array([1, -1], I64)),
    C("Squeeze", (2, 1, 4, 1), {}, id="squeeze-all"),
    C("Unsqueeze", (2, 3), {}, np.array([1, -1], I64)),
    C("Unsqueeze", (2, 3), {"axes": [0, 3]}, id="unsqueeze-attr"),
    C("Concat", (2, 3, 4), {"axis": 1}, W(2, 2, 4)),
    C("Add", (2, 3, 4), {}, W(4)),
    C("Sub", (2, 3, 4), {}, W(3, 1)),
    C("Mul", (2, 3, 4), {}, W(1, 3, 4)),
    C("Div", (2, 3, 4), {}, np.abs(W(4)) + 0.5),
    C("Div", (2, 5), {}, np.array([3, -3, 4, -7, 2], I64), dtype="int64", kind="int", id="div-int"),
    C("Pow", (2, 3, 4), {}, W(4), kind="pos"),
    C("Gather", (2, 5, 3), {"axis": 1}, np.array([[0, -1], [2, 4]], I64)),
    C("Gather", (6, 3), {}, np.array(-2, I64), id="gather-scalar"),
    C("Gather", (6,), {}, np.array(4, I64), id="gather-scalar-of-vector"),
    C("Shape", (2, 3, 4, 5), {"start": 1, "end": -1}),
    C("Cast", (2, 3), {"to": TensorProto.INT64}, kind="round"),
    C("Cast", (2, 3), {"to": TensorProto.DOUBLE}, id="cast-double"),
    C("Cast", (2, 3), {"to": TensorProto.BOOL}, kind="round", id="cast-bool"),
    C("ReduceMean", (2, 3, 4), {"keepdims": 0}, np.array([1, -1], I64)),
    C("ReduceMean", (2, 3, 4), {}, id="reducemean-all"),
    C("ReduceSum", (2, 3, 4), {}, np.array([2], I64)),
    C("ReduceSum", (2, 3, 4), {"noop_with_empty_axes": 1}, id="reducesum-noop"),
    C("ReduceMax", (2, 3, 4), {"axes": [1], "keepdims": 0}),
    C("ReduceMin", (2, 3, 4), {"axes": [0, 2]}),
    C("Max", (2, 3), {}, W(3), W(2, 1, seed=2)),
    C("Min", (2, 3), {}, W(3), W(2, 1, seed=2)),
    C("Sum", (2, 3), {}, W(3), W(2, 1, seed=2)),
    C("Mean", (2, 3), {}, W(3), W(2, 1, seed=2)),
    C("Where", (2, 3), {}, np.array([True, False, True]), "x", W(2, 3)),
    *[C(op, (2, 6), {}, np.array([0, 1, -1, 2, 0, 1], np.float32), kind="round") for op in ("Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual")],
    *[C(op, (2, 6), {}, np.array([0, 1, 0, 1, 1, 0], bool), dtype="bool", kind="bool") for op in ("And", "Or")],
    C("Not", (2, 6), {}, dtype="bool", kind="bool"),
    C("Expand", (2, 1, 3), {}, np.array([4, 1], I64)),
    C("Tile", (2, 3), {}, np.array([2, 3], I64)),
    C("Slice", (4, 6, 5), {}, np.array([1, -2], I64), np.array([100, 0], I64), np.array([1, 2], I64), np.array([2, -1], I64)),
    C("Slice", (4, 6), {}, np.array([-1], I64), np.array([-100], I64), np.array([1], I64), np.array([-2], I64), id="slice-rev"),
    C("Slice", (4, 6), {"starts": [1, -3], "ends": [3, 100], "axes": [0, 1]}, id="slice-attrs"),
    C("Pad", (2, 3, 4), {}, np.array([0, 1, 2, 0, 2, -1], I64), np.float32(0.5)),
    C("Pad", (2, 3, 4), {"mode": "reflect"}, np.array([0, 0, 5, 0, 1, 6], I64), id="pad-reflect-long"),
    C("Pad", (2, 3, 4), {"mode": "edge"}, np.array([0, 1, 0, 0, 1, 2], I64), id="pad-edge"),
    C("Pad", (2, 3, 4), {"mode": "wrap"}, np.array([0, 2, 1, 0, 1, 3], I64), id="pad-wrap"),
    C("Pad", (2, 3), {"pads": [0, 1, 1, 2], "value": 0.25}, id="pad-attrs"),
    C("Split", (2, 6, 3), {"axis": 1}, np.array([1, 2, 3], I64), outputs=3),
    C("Split", (2, 7), {"axis": 1}, outputs=3, id="split-by-outputs"),
    C("Split", (2, 7), {"axis": 1, "num_outputs": 3}, outputs=3, id="split-num-outputs"),
]  # fmt: skip


@pytest.mark.parametrize(("op", "shape", "attrs", "args", "kw"), CASES)
def test_op_like_executor(
    op: str, shape: tuple[int, ...], attrs: dict[str, Any], args: tuple[Any, ...], kw: dict[str, Any]
) -> None:
    g = _one_node(op, shape, attrs, args, kw.get("outputs", 1), kw.get("dtype", "float32"))
    assert_like_executor(g, {"x": _data(shape, kw.get("kind", "normal"))})


def test_every_executor_op_has_a_torch_twin_and_a_case() -> None:
    assert set(EXECUTOR_OPS) <= set(OPS)
    tested = {p.values[0] for p in CASES} | {"Constant"}  # Constant: test_constant_and_if below
    assert set(EXECUTOR_OPS) <= tested


def _if_graph() -> Graph:
    then_g = Graph(
        nodes=[
            Node("c", "Constant", [], ["k"], attrs={"value": W(3)}),
            Node("t", "Dense", ["x", "w"], ["t0"]),
            Node("a", "Add", ["t0", "k"], ["r"]),
        ],
        outputs=[ValueInfo("r")],
        weights={"w": Weight("w", W(3, 3), role="kernel", op="Dense")},
    )
    else_g = Graph(nodes=[Node("m", "Mul", ["x", "s"], ["r"])], outputs=[ValueInfo("r")])
    return Graph(
        nodes=[
            Node("if", "If", ["cond"], ["r"], attrs={"then_branch": then_g, "else_branch": else_g}),
            Node("relu", "Relu", ["r"], ["y"]),
        ],
        inputs=[ValueInfo("x", (None, 3)), ValueInfo("cond", (), "bool")],
        outputs=[ValueInfo("y")],
        weights={"s": Weight("s", W(3, seed=3), role="other")},
    )


@pytest.mark.parametrize("cond", [True, False])
def test_constant_and_if(cond: bool) -> None:
    m = assert_like_executor(_if_graph(), {"x": _data((4, 3), "normal"), "cond": np.array(cond)})
    # the branch's own weight is a parameter of the module, and the outer one is too
    assert {n for n, _ in m.named_parameters()} == {"body.params.s", "body.branches.0_then_branch.params.w"}


# -- example models, as loaded and compressed ----------------------------------------------------------

# the shipped examples (examples/make_vgg16.py's vgg16.onnx is built on demand, not shipped)
EXAMPLES = [f"lenet300{e}" for e in (".h5", ".keras", ".onnx", ".pt")] + [
    f"vggmini{e}" for e in (".h5", ".onnx", ".pt")
]


@cache
def _digits() -> np.ndarray:
    with np.load(DATA / "mnist_test.npz") as d:
        return d["x"][:32]


@cache
def _example(name: str) -> Graph:
    return nncompress.load(MODELS / name)


@cache
def _compressed_example(name: str, preset: str) -> Graph:
    return _compressed(_example(name), preset)


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_as_loaded(name: str) -> None:
    g = _example(name)
    m = assert_like_executor(g, {g.inputs[0].name: _digits()})
    assert sum(p.numel() for p in m.parameters()) > 100_000  # every kernel and bias trains


@pytest.mark.parametrize("preset", sorted(PRESETS))
@pytest.mark.parametrize("name", ["lenet300.onnx", "vggmini.h5"])  # ONNX; Keras (channels-last)
def test_example_compressed(name: str, preset: str) -> None:
    g = _compressed_example(name, preset)
    m = assert_like_executor(g, {g.inputs[0].name: _digits()})
    assert len(m.body.compressed) == sum(w.is_compressed for w in g.weights.values())


def test_compressed_slots_are_their_format_modules_and_train() -> None:
    from nncompress.torch import CompressedWeight

    g = _compressed_example("vggmini.h5", "sham")
    m = to_torch(g)
    mods = list(m.body.compressed.values())
    assert mods and all(isinstance(c, CompressedWeight) for c in mods)
    x = torch.from_numpy(_digits())
    F.cross_entropy(m(x), torch.arange(32) % 10).backward()
    for c in mods:  # the convs reach their values through dense(), the Dense layers through matmul
        grads = [p.grad for p in c.parameters()]
        assert grads and all(gr is not None and bool(torch.isfinite(gr).all()) for gr in grads)
        assert any(float(gr.abs().sum()) > 0 for gr in grads if gr is not None)


# -- real files built here: TorchScript, traced, torch.export, ONNX --------------------------------------


class _CNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4 * 4 * 4, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(torch.relu(self.bn(self.conv(x))), 2)
        return torch.softmax(self.fc(x.view(x.size(0), -1)), dim=-1)


class _Emb(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(10, 6)
        self.fc = nn.Linear(6, 3)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.fc(F.gelu(self.embed(ids).mean(dim=1)))


def _torch_file(kind: str, name: str, tmp: Path) -> tuple[Path, np.ndarray]:
    torch.manual_seed(0)
    model = (_CNN() if name == "cnn" else _Emb()).eval()
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, nn.BatchNorm2d):  # statistics that matter
                mod.running_mean.uniform_(-1, 1)
                mod.running_var.uniform_(0.5, 2)
    x = torch.randn(2, 3, 8, 8) if name == "cnn" else torch.randint(0, 10, (2, 5))
    path = tmp / f"{name}_{kind}.pt"
    if kind == "script":
        torch.jit.save(torch.jit.script(model), str(path))
    elif kind == "trace":
        torch.jit.save(torch.jit.trace(model, x), str(path))
    else:
        path = path.with_suffix(".pt2")
        torch.export.save(torch.export.export(model, (x,)), str(path))
    return path, x.numpy()


def _onnx_file(tmp: Path) -> tuple[Path, np.ndarray]:
    """Conv, BN, pools, Flatten, Gemm, Softmax at opset 13, as a hand-written exporter writes them."""
    rng = np.random.default_rng(0)

    def init(name: str, *shape: int) -> TensorProto:
        return numpy_helper.from_array((rng.normal(size=shape) * 0.5).astype(np.float32), name)

    nodes = [
        helper.make_node("Conv", ["x", "k1", "c1"], ["h1"], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["h1", "g", "be", "mu", "var"], ["h2"], epsilon=1e-3),
        helper.make_node("Relu", ["h2"], ["h3"]),
        helper.make_node("AveragePool", ["h3"], ["h4"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["h4", "k2"], ["h5"], group=2),
        helper.make_node("GlobalMaxPool", ["h5"], ["h6"]),
        helper.make_node("Flatten", ["h6"], ["h7"]),
        helper.make_node("Gemm", ["h7", "w", "b"], ["h8"], transB=1),
        helper.make_node("Softmax", ["h8"], ["y"], axis=-1),
    ]
    var = numpy_helper.from_array(rng.uniform(0.5, 2, size=4).astype(np.float32), "var")
    inits = [init("k1", 4, 3, 3, 3), init("c1", 4), init("g", 4), init("be", 4), init("mu", 4), var]
    inits += [init("k2", 6, 2, 3, 3), init("w", 5, 6), init("b", 5)]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 5])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    path = tmp / "cnn.onnx"
    onnx.save_model(model, str(path))
    return path, rng.normal(size=(3, 3, 8, 8)).astype(np.float32)


def _torch_onnx_file(tmp: Path) -> tuple[Path, np.ndarray]:
    """torch.onnx's own export of the CNN (Shape/Gather/Reshape arithmetic for the flatten)."""
    torch.manual_seed(0)
    model, x = _CNN().eval(), torch.randn(3, 3, 8, 8)
    path = tmp / "torch_cnn.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model, (x,), str(path), dynamo=False, input_names=["x"], dynamic_axes={"x": {0: "N"}}
        )
    return path, x.numpy()


FILES = ["script-cnn", "trace-cnn", "export-cnn", "script-emb", "onnx-cnn", "torch-onnx-cnn"]


@pytest.fixture(scope="module")
def real_file(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """``case -> (graph, input)``, each file written and loaded once for the module."""
    done: dict[str, tuple[Graph, np.ndarray]] = {}

    def get(case: str) -> tuple[Graph, np.ndarray]:
        if case not in done:
            tmp = tmp_path_factory.mktemp(case)
            kind, name = case.rsplit("-", 1)
            with warnings.catch_warnings():
                warnings.simplefilter(
                    "ignore", DeprecationWarning
                )  # torch.jit's: TorchScript files still exist
                if kind == "onnx":
                    path, x = _onnx_file(tmp)
                elif kind == "torch-onnx":
                    path, x = _torch_onnx_file(tmp)
                else:
                    path, x = _torch_file(kind, name, tmp)
            done[case] = nncompress.load(path), x
        return done[case]

    return get


@pytest.mark.parametrize("preset", [None, "sham"])
@pytest.mark.parametrize("case", FILES)
def test_real_files(case: str, preset: str | None, real_file: Any) -> None:
    g, x = real_file(case)
    if preset is not None:
        g = _compressed(g, preset)
    assert_like_executor(g, {g.inputs[0].name: x})


# -- inputs, outputs, dtype, training, determinism, refusals ------------------------------------------------


def test_inputs_positional_by_name_and_two_outputs() -> None:
    g = tiny_model()
    x, ids = _data((4, 3, 5, 5), "normal"), np.array([1, 7, 49, 0])
    m = assert_like_executor(g, {"x": x, "ids": ids})
    a, b = m(torch.from_numpy(x), torch.from_numpy(ids)), m(x, ids=ids)
    assert isinstance(a, tuple) and len(a) == 2
    assert all(torch.equal(p, q) for p, q in zip(a, b, strict=True))
    assert m.input_names == ["x", "ids"] and m.output_names == ["y", "e"]
    with pytest.raises(InputError, match="missing \\['ids'\\]"):
        m(x)
    with pytest.raises(InputError, match="unknown \\['z'\\]"):
        m(x, ids, z=x)


def test_flat_digits_fit_a_declared_image_input() -> None:
    g = _example("vggmini.pt")  # declares (batch, 1, 28, 28)
    y = to_torch(g)(_digits())
    assert tuple(y.shape) == (32, 10)


def test_float64_is_closer_to_a_float64_executor_run() -> None:
    g = nncompress.load(MODELS / "vggmini.onnx")  # its own: an input declaration is changed below
    x = _digits().astype(np.float64)
    g.inputs[0].dtype = "float64"  # the executor runs in float64 when an input is declared so
    want = run(g, {g.inputs[0].name: x})[0]
    m = to_torch(g, dtype="float64")
    assert all(p.dtype == torch.float64 for p in m.parameters())
    got = m(x).detach().numpy()
    assert got.dtype == np.float64
    assert np.max(np.abs(got - want)) <= 1e-10 * np.max(np.abs(want))


def test_gradients_reach_every_parameter_and_a_step_trains() -> None:
    g = tiny_model(channels=16)
    m = to_torch(g)
    x, ids = torch.from_numpy(_data((8, 3, 5, 5), "normal")), torch.tensor([1, 2, 3, 4])
    y, e = m(x, ids)
    loss = F.cross_entropy(y, torch.arange(8) % 4) + e.square().sum()
    loss.backward()
    named = dict(m.named_parameters())
    assert {k.rsplit(".", 1)[1] for k in named} == {
        "conv_w",
        "conv_b",
        "fc1_w",
        "fc1_b",
        "bn_g",
        "bn_b",
        "fc2_w",
        "fc2_b",
        "emb_table",
    }
    assert all(p.grad is not None and float(p.grad.abs().sum()) > 0 for p in named.values())
    assert (
        m.weight("bn.m") is m.body.consts.bn_m and not m.weight("bn.m").requires_grad
    )  # statistics stay fixed
    opt = torch.optim.SGD(m.parameters(), lr=0.1)
    before = F.cross_entropy(y, torch.arange(8) % 4).item()
    opt.step()
    with torch.no_grad():
        assert F.cross_entropy(m(x, ids)[0], torch.arange(8) % 4).item() < before


def test_deterministic_and_same_in_train_mode() -> None:
    g = _compressed_example("lenet300.onnx", "psm")
    x = torch.from_numpy(_digits())
    runs = []
    for train in (False, True):
        m = to_torch(g).train(train)
        y = m(x)
        y.square().sum().backward()
        runs.append(
            (
                y.detach().numpy().tobytes(),
                [p.grad.numpy().tobytes() for p in m.parameters() if p.grad is not None],
            )
        )
    assert runs[0] == runs[1]


@pytest.mark.parametrize(
    ("domain", "op", "shown"), [("com.microsoft", "QGemm", "com.microsoft:QGemm"), ("", "CumSum", "CumSum")]
)
def test_op_the_executor_does_not_run_is_a_usage_error(domain: str, op: str, shown: str) -> None:
    g = Graph(
        nodes=[Node("n1", op, ["x"], ["y"], domain=domain)],
        inputs=[ValueInfo("x", (None, 3))],
        outputs=[ValueInfo("y")],
    )
    with pytest.raises(UsageError, match=f"op {shown} \\(node n1\\)"):
        to_torch(g)


def test_a_shape_mismatch_is_an_input_error_naming_the_node() -> None:
    g = _one_node("Dense", (3, 5), {}, (W(4, 5),), 1, "float32")
    g.inputs[0].shape = None  # nothing declared: the mismatch shows inside the graph
    with pytest.raises(InputError, match="node 'n' \\(Dense\\) failed"):
        to_torch(g)(np.zeros((2, 6), np.float32))


def test_import_nncompress_does_not_import_torch() -> None:
    code = "import sys, nncompress; nncompress.load; assert 'torch' not in sys.modules and 'nncompress.torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_weight_names_that_are_not_attribute_names() -> None:
    names = ["training", "fc.w", "0.weight", "0_weight"]  # an nn.Module attribute, dots, a clash once cleaned
    ws = {n: Weight(n, W(3, 3, seed=i), role="kernel", op="Dense") for i, n in enumerate(names)}
    nodes = [Node(f"d{i}", "Dense", [f"h{i}", n], [f"h{i + 1}"]) for i, n in enumerate(names)]
    nodes.append(Node("c", "Constant", [], ["k"], attrs={"value": W(3, seed=9)}))
    nodes.append(Node("a", "Add", [f"h{len(names)}", "k"], ["y"]))
    g = Graph(nodes=nodes, inputs=[ValueInfo("h0", (None, 3))], outputs=[ValueInfo("y")], weights=ws)
    m = assert_like_executor(g, {"h0": _data((4, 3), "normal")})
    assert len(list(m.parameters())) == 4
    assert all(isinstance(m.weight(n), nn.Parameter) for n in names)


def test_weights_only_graph_is_refused() -> None:
    from nncompress.errors import UnsupportedError

    g = tiny_model()
    g.has_graph, g.nodes = False, []
    with pytest.raises(UnsupportedError, match="weights-only"):
        to_torch(g)
