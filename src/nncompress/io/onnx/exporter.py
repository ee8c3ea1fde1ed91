"""IR -> a new ONNX model, node by node: for graphs from other formats, and for ONNX graphs whose
structure a pass changed (those cannot be patched into their file).

IR-only ops and attributes are lowered to the target opset (``Dense`` to Gemm or MatMul, ``Gelu``
before opset 20, ``coerce_2d`` softmax), and list arguments move between attribute and input form
as that opset wants.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from nncompress.errors import UnsupportedError
from nncompress.io.onnx.normalize import graphs
from nncompress.io.onnx.source import Source
from nncompress.io.onnx.writer import EXTERNAL_ABOVE, save_model
from nncompress.ir import Graph, Node, ValueInfo, Weight
from nncompress.ir.names import Names

__all__ = ["EXPORT_OPSET", "write_exported"]

EXPORT_OPSET = 17
_IR_ONLY_ATTRS = ("coerce_2d",)
# Domains that mean something to ONNX runtimes; ops of any other domain (keras, torch) have no
# ONNX meaning unless the source file declared the domain itself.
_ONNX_DOMAINS = (
    "ai.onnx.ml",
    "ai.onnx.training",
    "ai.onnx.preview",
    "ai.onnx.preview.training",
    "ai.onnx.contrib",
    "com.microsoft",
    "com.microsoft.experimental",
    "com.microsoft.nchwc",
    "org.pytorch.aten",
)
_DEFAULT_DOMAIN_VERSION = {"ai.onnx.ml": 3}
_REDUCE_OPS = (
    "ReduceMean",
    "ReduceMax",
    "ReduceMin",
    "ReduceProd",
    "ReduceL1",
    "ReduceL2",
    "ReduceLogSum",
    "ReduceLogSumExp",
    "ReduceSumSquare",
)


def write_exported(graph: Graph, src: Source | None, out: Path, force: bool) -> Path:
    """Build a new ONNX model from the IR and write it (checked by onnx.checker)."""
    # a graph read from ONNX keeps its opset, so that ops the loader left alone mean the same
    found = graph.meta.extra.get("opset_imports")
    opsets = {str(k): int(v) for k, v in found.items()} if isinstance(found, dict) else {}
    opset = int(opsets.get("", EXPORT_OPSET))
    functions = src.functions if src is not None else []
    # pass 1 (weights as typed inputs) tells which Dense inputs are 2-D: those become Gemm
    skeleton = _Exporter(graph, opset, opsets, set(), functions).model(skeleton=True)
    gemm_ok, out_types = _infer(skeleton)
    ex = _Exporter(graph, opset, opsets, gemm_ok, functions, out_types)
    model = ex.model(skeleton=False)
    big = ex.nbytes > EXTERNAL_ABOVE
    if not big:
        _check(model, None, out)
    return save_model(model, out, big=big, force=force, check=lambda tmp: _check(None, tmp, out))


def _check(model: Any, tmp: Path | None, out: Path) -> None:
    import onnx

    try:
        onnx.checker.check_model(model if tmp is None else str(tmp))
    except Exception as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UnsupportedError(
            f"the graph cannot be written as a valid ONNX model: {first}",
            path=str(out),
            hint="Write it in the format it came from",
        ) from e


def _infer(skeleton: Any) -> tuple[set[str], dict[str, Any]]:
    """Shape inference on the skeleton: the Dense nodes with 2-D inputs, the graph outputs' types."""
    import onnx

    try:
        inferred = onnx.shape_inference.infer_shapes(skeleton)
    except Exception:  # custom ops or odd shapes: keep the always-valid MatMul form
        return set(), {}
    ranks: dict[str, int] = {}

    def collect(gp: Any) -> None:
        for vi in [*gp.input, *gp.value_info, *gp.output]:
            tt = vi.type.tensor_type
            if vi.type.HasField("tensor_type") and tt.HasField("shape"):
                ranks[vi.name] = len(tt.shape.dim)
        for n in gp.node:
            for a in n.attribute:
                if a.HasField("g"):
                    collect(a.g)
                for sg in a.graphs:
                    collect(sg)

    collect(inferred.graph)
    keys = {e.key: e.value for e in skeleton.metadata_props}
    gemm_ok = {k[len("dense:") :] for k, x in keys.items() if k.startswith("dense:") and ranks.get(x) == 2}
    return gemm_ok, {vi.name: vi.type for vi in inferred.graph.output}


class _Exporter:
    """IR -> ModelProto. All weights become top-level initializers (subgraphs read them by name)."""

    def __init__(
        self,
        graph: Graph,
        opset: int,
        opsets: dict[str, int],
        gemm_ok: set[str],
        functions: list[bytes],
        out_types: dict[str, Any] | None = None,
    ) -> None:
        self.g, self.opset, self.gemm_ok, self.functions = graph, opset, gemm_ok, functions
        self.out_types = out_types or {}
        self.origin_opsets = opsets
        self.weights: dict[str, Weight] = {}
        for sg in graphs(graph):
            for k, wt in sg.weights.items():
                if k in self.weights and self.weights[k] is not wt:
                    raise UnsupportedError(
                        f"two subgraphs define different weights named {k!r}", path=graph.meta.path or None
                    )
                self.weights[k] = wt
        self.names = Names(self.weights)
        for sg in graphs(graph):
            self.names.update(v.name for v in [*sg.inputs, *sg.outputs])
            for n in sg.nodes:
                self.names.update(n.outputs)
                self.names.add(n.name)
        self.forms = self._weight_forms()
        self.extra_inits: list[tuple[str, np.ndarray]] = []
        self.domains: dict[str, int] = {}
        self.dense_x: dict[str, str] = {}
        self.node_names = Names(repeat=True)
        self.nbytes = 0
        self.skeleton = False

    def _weight_forms(self) -> dict[tuple[str, str], str]:
        """Initializer name of each weight in the plain and the transposed (MatMul) form."""
        plain: set[str] = set()
        trans: set[str] = set()
        for sg in graphs(self.g):
            for n in sg.nodes:
                for idx, i in enumerate(n.inputs):
                    if i not in self.weights:
                        continue
                    if n.op == "Dense" and not n.domain and idx == 1 and n.outputs[0] not in self.gemm_ok:
                        trans.add(i)
                    else:
                        plain.add(i)
            plain.update(v.name for v in sg.outputs if v.name in self.weights)
        forms = {}
        top_out = {v.name for v in self.g.outputs}
        for k in self.weights:
            if k in plain or k not in trans:
                # a weight that is itself a graph output is written under another name plus an Identity
                forms[(k, "plain")] = self.names.fresh(f"{k}_value") if k in top_out else k
            if k in trans:
                forms[(k, "T")] = self.names.fresh(f"{k}_T") if k in plain else k
        return forms

    # -- model and graphs ------------------------------------------------------------------------

    def model(self, *, skeleton: bool) -> Any:
        from onnx import FunctionProto, helper

        self.skeleton = skeleton
        gp = self.graph(self.g, top=True)
        for (k, form), name in self.forms.items():
            arr = self.weights[k].array
            arr = np.ascontiguousarray(arr.T) if form == "T" else arr
            self._initializer(gp, name, arr)
        for name, arr in self.extra_inits:
            self._initializer(gp, name, arr)
        opsets = {"": self.opset}
        for d in self.domains:
            opsets[d] = int(self.origin_opsets.get(d, _DEFAULT_DOMAIN_VERSION.get(d, 1)))
        funcs = []
        for b in self.functions:
            f = FunctionProto()
            f.ParseFromString(b)
            funcs.append(f)
            opsets.setdefault(f.domain, int(self.origin_opsets.get(f.domain, 1)))
        ids = [helper.make_opsetid(d, v) for d, v in opsets.items()]
        m = helper.make_model(gp, opset_imports=ids, producer_name="nncompress", functions=funcs)
        m.ir_version = helper.find_min_ir_version_for(ids, True)
        if skeleton:
            helper.set_model_props(m, {f"dense:{k}": x for k, x in self.dense_x.items()})
        return m

    def _initializer(self, gp: Any, name: str, arr: np.ndarray) -> None:
        from onnx import helper, numpy_helper

        if self.skeleton:  # shapes only: weights enter as typed inputs
            gp.input.append(helper.make_tensor_value_info(name, _elem(arr.dtype.name), arr.shape))
        else:
            self.nbytes += arr.nbytes
            gp.initializer.append(numpy_helper.from_array(np.asarray(arr), name))

    def graph(self, g: Graph, *, top: bool) -> Any:
        from onnx import helper

        nodes: list[Any] = []
        for n in g.nodes:
            self.node(n, nodes)
        ins = [_vi_proto(v) for v in g.inputs if v.name not in self.weights]
        outs = [_vi_proto(v) for v in g.outputs]
        produced = {o for n in g.nodes for o in n.outputs}
        for v, o in zip(g.outputs, outs, strict=True):
            # ONNX wants a subgraph's outputs computed inside it, and no initializer as an output
            if v.name in produced or (top and v.name not in self.weights):
                continue
            feed = self.forms[(v.name, "plain")] if v.name in self.weights else v.name
            o.name = v.name if top else self.names.fresh(f"{v.name}_out")
            nodes.append(
                helper.make_node("Identity", [feed], [o.name], name=self.names.fresh(f"{o.name}_identity"))
            )
        if top:  # ONNX wants a shape on every graph output: take the inferred one where the IR has none
            for v, o in zip(g.outputs, outs, strict=True):
                if v.shape is None and v.name in self.out_types:
                    o.type.CopyFrom(self.out_types[v.name])
        return helper.make_graph(nodes, g.name or "model", ins, outs)

    # -- nodes -----------------------------------------------------------------------------------

    def _const(self, base: str, arr: np.ndarray) -> str:
        name = self.names.fresh(base)
        self.extra_inits.append((name, np.asarray(arr)))
        return name

    def _unsupported(self, n: Node, why: str) -> UnsupportedError:
        op = f"{n.domain}:{n.op}" if n.domain else n.op
        return UnsupportedError(
            f"node {n.name!r} ({op}) {why}",
            path=self.g.meta.path or None,
            hint="Write the model in the format it came from",
        )

    def node(self, n: Node, sink: list[Any]) -> None:
        op, dom = n.op, n.domain
        if dom in ("", "ai.onnx"):
            dom = ""
            if op == "Dense":
                return self._dense(n, sink)
            if op == "Gelu" and self.opset < 20:
                return self._gelu(n, sink)
            if op in ("Softmax", "LogSoftmax", "Hardmax"):
                return self._softmax(n, sink)
        attrs, inputs = dict(n.attrs), list(n.inputs)
        if dom == "":
            attrs, inputs = self._adapt(n, attrs, inputs)
        sink.append(self._make(n, op, inputs, list(n.outputs), attrs, dom))

    def _make(
        self, n: Node, op: str, inputs: list[str], outputs: list[str], attrs: dict[str, Any], dom: str
    ) -> Any:
        import onnx
        from onnx import helper

        schema = None
        if dom in ("", "ai.onnx.ml"):
            version = (
                self.opset if dom == "" else int(self.origin_opsets.get(dom, _DEFAULT_DOMAIN_VERSION[dom]))
            )
            try:
                schema = onnx.defs.get_schema(op, version, dom)
            except Exception:
                if not any(f.name == op for f in self._function_protos()):
                    raise self._unsupported(n, f"has no ONNX opset-{version} equivalent") from None
        elif dom not in _ONNX_DOMAINS and dom not in self.origin_opsets:
            raise self._unsupported(n, f"belongs to domain {dom!r}, which has no ONNX meaning")
        if dom:
            self.domains[dom] = 1
        while inputs and not inputs[-1]:
            inputs.pop()
        node = helper.make_node(op, inputs, outputs, name=self.node_names.fresh(n.name))
        if dom:
            node.domain = dom
        for k, v in attrs.items():
            if v is None or k in _IR_ONLY_ATTRS:
                continue
            node.attribute.append(self._attr(n, k, v, schema))
        return node

    def _function_protos(self) -> list[Any]:
        from onnx import FunctionProto

        out = []
        for b in self.functions:
            f = FunctionProto()
            f.ParseFromString(b)
            out.append(f)
        return out

    def _attr(self, n: Node, key: str, v: Any, schema: Any) -> Any:
        from onnx import AttributeProto as A
        from onnx import helper, numpy_helper

        if isinstance(v, A):
            a = A()
            a.CopyFrom(v)
            a.name = key
            return a
        if isinstance(v, Graph):
            return helper.make_attribute(key, self.graph(v, top=False))
        if isinstance(v, list) and v and all(isinstance(x, Graph) for x in v):
            return helper.make_attribute(key, [self.graph(x, top=False) for x in v])
        want = None
        if schema is not None and key in schema.attributes:
            want = int(schema.attributes[key].type)
        if isinstance(v, np.ndarray) and want not in (A.INTS, A.FLOATS, A.STRINGS, A.INT, A.FLOAT):
            return helper.make_attribute(key, numpy_helper.from_array(v))
        if isinstance(v, np.ndarray):
            v = v.tolist()
        if isinstance(v, np.generic):
            v = v.item()
        if isinstance(v, tuple):
            v = list(v)
        try:
            if want == A.INT:
                return helper.make_attribute(key, int(v), attr_type=A.INT)
            if want == A.FLOAT:
                return helper.make_attribute(key, float(v), attr_type=A.FLOAT)
            if want == A.STRING:
                return helper.make_attribute(key, v, attr_type=A.STRING)
            if want == A.INTS:
                return helper.make_attribute(key, [int(x) for x in v], attr_type=A.INTS)
            if want == A.FLOATS:
                return helper.make_attribute(key, [float(x) for x in v], attr_type=A.FLOATS)
            if want == A.STRINGS:
                return helper.make_attribute(key, list(v), attr_type=A.STRINGS)
            if isinstance(v, bool):
                return helper.make_attribute(key, int(v))
            if isinstance(v, list) and not v:
                return helper.make_attribute(key, [], attr_type=A.INTS)
            if isinstance(v, list) and all(isinstance(x, np.ndarray) for x in v):
                return helper.make_attribute(key, [numpy_helper.from_array(x) for x in v])
            if isinstance(v, list):
                v = [x.item() if isinstance(x, np.generic) else x for x in v]
            return helper.make_attribute(key, v)
        except (TypeError, ValueError) as e:
            raise self._unsupported(n, f"has attribute {key}={v!r} that ONNX cannot hold ({e})") from e

    def _weight_input(self, n: Node, name: str) -> str:
        if name in self.weights:
            return self.forms[(name, "plain")]
        return name

    def _dense(self, n: Node, sink: list[Any]) -> None:
        x, wname, b = ([*n.inputs, "", ""])[:3]
        y = n.outputs[0]
        self.dense_x[y] = x
        if y in self.gemm_ok and wname in self.weights:
            ins = [x, self.forms[(wname, "plain")], b]
            sink.append(self._make(n, "Gemm", ins, [y], {"transB": 1}, ""))
            return
        if wname in self.weights:
            wt = self.forms[(wname, "T")]
        else:  # a computed kernel: transpose it on the fly
            wt = self.names.fresh(f"{wname}_T")
            sink.append(self._make(n, "Transpose", [wname], [wt], {"perm": [1, 0]}, ""))
        if not b:
            sink.append(self._make(n, "MatMul", [x, wt], [y], {}, ""))
            return
        mm = self.names.fresh(f"{y}_matmul")
        sink.append(self._make(n, "MatMul", [x, wt], [mm], {}, ""))
        sink.append(self._make(n, "Add", [mm, b], [y], {}, ""))

    def _gelu(self, n: Node, sink: list[Any]) -> None:
        # Gelu is opset 20; older opsets get its formula from basic ops
        x, y = n.inputs[0], n.outputs[0]
        f32 = np.float32

        def op(kind: str, *ins: str) -> str:
            o = self.names.fresh(f"{y}_{kind.lower()}")
            sink.append(self._make(n, kind, list(ins), [o], {}, ""))
            return o

        one, half = self._const("one", np.array(1, f32)), self._const("half", np.array(0.5, f32))
        if n.attrs.get("approximate", "none") in ("tanh", b"tanh"):
            x3 = op("Mul", op("Mul", x, x), x)
            inner = op("Add", x, op("Mul", x3, self._const("c", np.array(0.044715, f32))))
            t = op("Tanh", op("Mul", inner, self._const("k", np.array(math.sqrt(2 / math.pi), f32))))
        else:
            t = op("Erf", op("Mul", x, self._const("rsqrt2", np.array(1 / math.sqrt(2), f32))))
        sink.append(self._make(n, "Mul", [op("Mul", x, op("Add", t, one)), half], [y], {}, ""))

    def _softmax(self, n: Node, sink: list[Any]) -> None:
        attrs = {k: v for k, v in n.attrs.items() if k != "coerce_2d"}
        coerce = bool(n.attrs.get("coerce_2d", 0))
        axis = int(attrs.get("axis", 1 if coerce else -1))
        x, y = n.inputs[0], n.outputs[0]
        if self.opset < 13:
            if not coerce and axis != -1:
                raise self._unsupported(
                    n, f"normalises one axis ({axis}), which opset {self.opset} cannot say"
                )
            sink.append(self._make(n, n.op, [x], [y], {"axis": axis}, ""))
            return
        if not coerce:
            sink.append(self._make(n, n.op, [x], [y], {"axis": axis}, ""))
            return
        # opset-13 softmax is over one axis: flatten to 2-D at `axis` first, as older opsets did
        fresh = self.names.fresh
        shape, flat, soft = fresh(f"{y}_shape"), fresh(f"{y}_2d"), fresh(f"{y}_soft")
        sink.append(self._make(n, "Shape", [x], [shape], {}, ""))
        sink.append(self._make(n, "Flatten", [x], [flat], {"axis": axis}, ""))
        sink.append(self._make(n, n.op, [flat], [soft], {"axis": 1}, ""))
        sink.append(self._make(n, "Reshape", [soft, shape], [y], {}, ""))

    def _adapt(self, n: Node, attrs: dict[str, Any], inputs: list[str]) -> tuple[dict[str, Any], list[str]]:
        """Move list arguments between attribute and input form as the target opset wants."""
        op, t = n.op, self.opset
        if op in ("Squeeze", "Unsqueeze") or op == "ReduceSum":
            return self._arg_form(n, attrs, inputs, 1, "axes", t >= 13, np.int64)
        if op in _REDUCE_OPS:
            return self._arg_form(n, attrs, inputs, 1, "axes", t >= 18, np.int64)
        if op == "Split":
            attrs, inputs = self._arg_form(n, attrs, inputs, 1, "split", t >= 13, np.int64)
            if t >= 18 and not (len(inputs) > 1 and inputs[1]) and "num_outputs" not in attrs:
                attrs["num_outputs"] = len(n.outputs)
            return attrs, inputs
        if op == "Clip":
            if t >= 11:
                inputs = [*inputs, "", ""][:3]
                for i, key in ((1, "min"), (2, "max")):
                    if key in attrs:
                        inputs[i] = self._const(f"{n.name}_{key}", np.array(attrs.pop(key), np.float32))
                return attrs, inputs
            for i, key in ((1, "min"), (2, "max")):
                if len(inputs) > i and inputs[i]:
                    attrs[key] = float(self._const_value(n, inputs[i]).reshape(-1)[0])
            return attrs, inputs[:1]
        return attrs, inputs

    def _arg_form(
        self,
        n: Node,
        attrs: dict[str, Any],
        inputs: list[str],
        idx: int,
        key: str,
        as_input: bool,
        dtype: type,
    ) -> tuple[dict[str, Any], list[str]]:
        if as_input and key in attrs:
            v = attrs.pop(key)
            inputs = [*inputs, *[""] * (idx + 1 - len(inputs))]
            inputs[idx] = self._const(f"{n.name}_{key}", np.array(v, dtype).reshape(-1))
        elif not as_input and len(inputs) > idx and inputs[idx]:
            attrs[key] = [int(v) for v in self._const_value(n, inputs[idx]).reshape(-1)]
            inputs = inputs[:idx] + inputs[idx + 1 :]
        return attrs, inputs

    def _const_value(self, n: Node, name: str) -> np.ndarray:
        if name not in self.weights:
            raise self._unsupported(
                n, f"reads {name!r} at run time where opset {self.opset} needs a constant"
            )
        return np.asarray(self.weights[name].array)


def _elem(dtype_name: str) -> int:
    from onnx import TensorProto, helper

    try:
        return int(helper.np_dtype_to_tensor_dtype(np.dtype(dtype_name)))
    except Exception:
        try:
            return int(TensorProto.DataType.Value(dtype_name.upper()))
        except ValueError:
            return 0


def _vi_proto(v: ValueInfo) -> Any:
    from onnx import ValueInfoProto, helper

    elem = _elem(v.dtype) if v.dtype else 0
    if not elem:
        return ValueInfoProto(name=v.name)
    shape = None if v.shape is None else [d if isinstance(d, (int, str)) else None for d in v.shape]
    return helper.make_tensor_value_info(v.name, elem, shape)
