"""torch.export archives (.pt2) -> the IR: read by `pt2` (never by torch.export.load) and converted
from the program's JSON, node by node."""

from __future__ import annotations

import io
import operator
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from nncompress.io.torch.archive import NUMPY_OF, TorchZip
from nncompress.io.torch.aten import emit_op, is_tensor_type
from nncompress.io.torch.builder import UNKNOWN, Args, Builder, Dim, Ref, Unconvertible, finish, outputs_of
from nncompress.io.torch.pt2 import dtype_of, open_pt2, sym_name
from nncompress.io.torch.sniff import Kind
from nncompress.io.torch.source import Source
from nncompress.io.torch.weights import guess_roles, notes_of, to_numpy
from nncompress.ir import Graph, IRError, ModelMeta, ValueInfo, Weight

__all__ = ["load_export"]


def load_export(p: Path, kind: Kind, *, trust_pickle: bool) -> Graph:
    """A .pt2 archive read by `pt2` (never by torch.export.load) and converted from its JSON."""
    pt2 = open_pt2(p, trusted=trust_pickle)
    arrays: dict[str, np.ndarray] = {}
    skipped: list[str] = []
    with TorchZip.open(p) as z:
        by_record: dict[str, list[str]] = {}
        for fqn, st in pt2.tensors.items():
            if st.dtype not in NUMPY_OF:
                skipped.append(fqn)
            else:
                by_record.setdefault(st.record, []).append(fqn)
        for fqns in by_record.values():  # each record read once, views of it made, bytes dropped
            cache: dict[str, bytes] = {}
            for fqn in fqns:
                arrays[fqn] = z.array(pt2.tensors[fqn], f"tensor {fqn!r}", cache=cache)
        for fqn, member in pt2.pickled.items():  # only with --trust-pickle: the user vouched for them
            import torch

            t = torch.load(io.BytesIO(z.read(member)), map_location="cpu", weights_only=False)
            arr = to_numpy(t) if isinstance(t, torch.Tensor) else None
            if arr is None:
                skipped.append(fqn)
            else:
                arrays[fqn] = arr
    order = [k for k in pt2.tensors if k in arrays] + [k for k in pt2.pickled if k in arrays]
    weights = {k: Weight(name=k, value=arrays[k], source=k) for k in order}
    guess_roles(weights)
    src = Source(
        kind="torch-export",
        path=str(p),
        trusted=trust_pickle,
        tensors=[k for k in order if k in pt2.tensors],
        extra_files=pt2.extra_files,
    )
    meta = ModelMeta(
        format="torch-export", producer="pytorch", producer_version=pt2.torch_version, path=str(p)
    )
    notes = notes_of(sum(st.dtype == "bfloat16" for st in pt2.tensors.values()), skipped)
    b = Builder(weights, set(weights))
    try:
        outputs = _convert_program(b, pt2.program)
        meta.notes = notes
        meta.extra["input_shapes"] = {vi.name: list(vi.shape or ()) for vi in b.inputs}
        return finish(b, outputs, meta, p.stem, src, dtypes_known=True)
    except (Unconvertible, IRError) as e:
        meta.notes = [f"graph not converted ({e}); weights only: fidelity is measured on weights", *notes]
        g = Graph(weights=weights, has_graph=False, meta=meta, name=p.stem, source=src)
        g.validate()
        return g


_PT2_SCHEMAS: dict[str, Any] = {}


def _op_schema(target: str) -> Any:
    """The registered schema of ``torch.ops.ns.op.overload``: a look-up, nothing is called."""
    import torch

    if target not in _PT2_SCHEMAS:
        _, _, ns, op, overload = target.split(".")
        try:
            _PT2_SCHEMAS[target] = torch._C._get_schema(
                f"{ns}::{op}", "" if overload == "default" else overload
            )
        except RuntimeError:
            _PT2_SCHEMAS[target] = None
    return _PT2_SCHEMAS[target]


class _Program:
    """Reads a torch.export program's JSON (torch/_export/serde/schema.py) into the builder."""

    def __init__(self, b: Builder, program: Mapping[str, Any]) -> None:
        self.b = b
        try:
            gm = program["graph_module"]
            self.graph, self.sig = gm["graph"], gm["signature"]
            self.meta = self.graph.get("tensor_values", {})
        except (KeyError, TypeError):
            raise Unconvertible("the program has no graph or signature") from None
        if not isinstance(self.meta, dict):
            raise Unconvertible("the program's tensor_values is not an object")
        self.env: dict[str, Any] = {}

    def tensor_info(self, name: str) -> tuple[tuple[int | str | None, ...] | None, str | None]:
        tm = self.meta.get(name)
        if not isinstance(tm, dict) or not isinstance(tm.get("sizes"), list):
            return None, None
        shape: list[int | str | None] = []
        for s in tm["sizes"]:
            if isinstance(s, dict) and type(s.get("as_int")) is int:
                shape.append(s["as_int"])
            elif isinstance(s, dict) and isinstance(s.get("as_expr"), dict):
                shape.append(sym_name(str(s["as_expr"].get("expr_str", ""))))
            else:
                shape.append(None)
        return tuple(shape), dtype_of(tm.get("dtype"))

    def arg(self, a: Any) -> Any:
        if not isinstance(a, dict) or len(a) != 1:
            raise Unconvertible("malformed argument")
        ((k, v),) = a.items()
        if k == "as_none":
            return None
        if k == "as_tensor":
            return self.env.get(_name(v), UNKNOWN)
        if k == "as_tensors":
            return [self.env.get(_name(t), UNKNOWN) for t in _list(v)]
        if k == "as_optional_tensor":
            return self.arg(v)
        if k == "as_optional_tensors":
            return [self.arg(t) for t in _list(v)]
        if k in ("as_int", "as_bool", "as_string", "as_ints", "as_bools", "as_strings", "as_int_lists"):
            return v
        if k in ("as_float", "as_floats", "as_float_lists"):
            return _floats(v)
        if k in ("as_sym_int", "as_sym_bool", "as_sym_float"):
            return self.sym(v)
        if k in ("as_sym_ints", "as_sym_bools", "as_sym_floats"):
            return [self.sym(x) for x in _list(v)]
        if k == "as_scalar_type":
            return f"torch.{dtype_of(v) or 'unknown'}"  # what ops_tensor reads from str(torch.dtype)
        if k in ("as_memory_format", "as_layout", "as_device"):
            return f"{k[3:]}:{v}"
        if k == "as_complex" and isinstance(v, dict):
            return complex(_floats(v.get("real", 0)), _floats(v.get("imag", 0)))
        raise Unconvertible(f"unsupported program argument {k}")

    def sym(self, v: Any) -> Any:
        if not isinstance(v, dict) or len(v) != 1:
            raise Unconvertible("malformed symbolic argument")
        ((k, x),) = v.items()
        if k == "as_name":
            return self.env.get(str(x), UNKNOWN)
        return _floats(x) if k == "as_float" else x

    def run(self) -> list[ValueInfo]:
        b = self.b
        for spec in _list(self.sig.get("input_specs")):
            kind, body = _one(spec)
            if kind in ("parameter", "buffer", "tensor_constant"):
                target = body.get(f"{kind}_name")
                if target not in b.weights:
                    raise Unconvertible(f"{kind} {target!r} has no readable tensor")
                self.env[_name(body.get("arg"))] = Ref(target)
            elif kind == "user_input":
                arg = body.get("arg")
                akind, aval = _one(arg)
                if akind != "as_tensor":
                    raise Unconvertible(f"a program input of kind {akind}")
                node_name = _name(aval)
                shape, dt = self.tensor_info(node_name)
                name = b.fresh(node_name)
                b.inputs.append(ValueInfo(name=name, shape=shape, dtype=dt or "float32"))
                b.rank[name], b.dtype[name] = (len(shape) if shape is not None else 0), dt or "float32"
                self.env[node_name] = Ref(name)
            elif kind == "constant_input":
                self.env[str(body.get("name"))] = self.arg(body.get("value"))
            else:
                raise Unconvertible(f"unsupported program input kind {kind}")
        for node in _list(self.graph.get("nodes")):
            if not isinstance(node, dict):
                raise Unconvertible("malformed node")
            self.node(node)
        vals, info = [], []
        for spec in _list(self.sig.get("output_specs")):
            kind, body = _one(spec)
            if kind != "user_output":
                continue  # buffer mutations, tokens: not model outputs
            akind, aval = _one(body.get("arg"))
            if akind != "as_tensor":
                raise Unconvertible("the model returns something other than tensors")
            vals.append(self.env.get(_name(aval), UNKNOWN))
            info.append(self.tensor_info(_name(aval)))
        if not vals:
            raise Unconvertible("the program has no output")
        return outputs_of(b, vals, info)

    def node(self, node: dict[str, Any]) -> None:
        target = str(node.get("target", ""))
        inputs = {na.get("name"): na.get("arg") for na in _list(node.get("inputs")) if isinstance(na, dict)}
        outs = _list(node.get("outputs"))
        if not target.startswith("torch.ops."):
            self.scalar(target, inputs, outs)
            return
        schema = _op_schema(target)
        if schema is None:
            raise Unconvertible(f"unknown operator {target}")
        full = schema.name
        if full == "aten::sym_size":
            x, d = self.arg(inputs.get("self")), self.arg(inputs.get("dim"))
            val = Dim(x.name, int(d)) if isinstance(x, Ref) and isinstance(d, int) else UNKNOWN
            self.bind_sym(outs, val)
            return
        names = [a.name for a in schema.arguments]
        vals = [
            self.arg(inputs[a.name])
            if a.name in inputs
            else (a.default_value if a.has_default_value() else None)
            for a in schema.arguments
        ]
        tensor_outs = [o for o in outs if isinstance(o, dict) and ("as_tensor" in o or "as_tensors" in o)]
        if not tensor_outs:
            self.bind_sym(outs, UNKNOWN)  # assertions, or a scalar the converter does not follow
            return
        if len(outs) == 1 and "as_tensors" in outs[0]:
            names_out = [_name(t) for t in _list(outs[0]["as_tensors"])]
        else:
            names_out = [_name(o["as_tensor"]) if "as_tensor" in o else "" for o in outs]
        tensor_inputs = [is_tensor_type(a.type) or "Tensor" in str(a.type) for a in schema.arguments]
        base = str(node.get("name") or (names_out[0] if names_out else "v"))
        res = emit_op(self.b, full, Args(names, vals), base, len(names_out), tensor_inputs)
        results = list(res) if isinstance(res, tuple) else [res]
        for out_name, r in zip(names_out, results, strict=False):
            if not out_name:
                continue
            self.env[out_name] = r
            if isinstance(r, Ref):
                shape, dt = self.tensor_info(out_name)
                if shape is not None:
                    self.b.rank[r.name] = len(shape)
                if dt:
                    self.b.dtype[r.name] = dt

    def scalar(self, target: str, inputs: dict[Any, Any], outs: list[Any]) -> None:
        """Python arithmetic on sizes (``_operator.mul`` of two sym ints): folded where known."""
        args = [self.arg(a) for a in inputs.values()]
        fn = _SYM_FNS.get(target)
        val: Any = UNKNOWN
        if fn is not None and all(isinstance(v, (int, float, bool)) for v in args):
            try:
                val = fn(*args)
            except (ArithmeticError, TypeError, ValueError):
                val = UNKNOWN
        elif any(isinstance(o, dict) and ("as_tensor" in o or "as_tensors" in o) for o in outs):
            raise Unconvertible(f"unsupported call {target}")
        self.bind_sym(outs, val)

    def bind_sym(self, outs: list[Any], val: Any) -> None:
        for o in outs:
            if isinstance(o, dict) and len(o) == 1:
                ((_, v),) = o.items()
                if isinstance(v, dict) and isinstance(v.get("as_name"), str):
                    self.env[v["as_name"]] = val


_SYM_FNS: dict[str, Callable[..., Any]] = {
    "_operator.add": operator.add,
    "_operator.sub": operator.sub,
    "_operator.mul": operator.mul,
    "_operator.floordiv": operator.floordiv,
    "_operator.truediv": operator.truediv,
    "_operator.mod": operator.mod,
    "_operator.neg": operator.neg,
    "_operator.eq": operator.eq,
    "_operator.ne": operator.ne,
    "_operator.lt": operator.lt,
    "_operator.le": operator.le,
    "_operator.gt": operator.gt,
    "_operator.ge": operator.ge,
    "torch.sym_max": max,
    "torch.sym_min": min,
    "torch.sym_int": int,
    "torch.sym_float": float,
}


def _name(v: Any) -> str:
    if not isinstance(v, dict) or not isinstance(v.get("name"), str):
        raise Unconvertible("malformed tensor argument")
    return str(v["name"])


def _list(v: Any) -> list[Any]:
    if v is None:
        return []
    if not isinstance(v, list):
        raise Unconvertible("malformed program: a list was expected")
    return v


def _one(v: Any) -> tuple[str, Any]:
    if not isinstance(v, dict) or len(v) != 1:
        raise Unconvertible("malformed program entry")
    ((k, x),) = v.items()
    return str(k), x if isinstance(x, dict) else {"value": x}


def _floats(v: Any) -> Any:
    """torch writes non-finite floats as the strings "Infinity", "-Infinity" and "NaN"."""
    if isinstance(v, list):
        return [_floats(x) for x in v]
    if isinstance(v, str) and v in ("Infinity", "-Infinity", "NaN"):
        return float(v)
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return float(v)
    raise Unconvertible("malformed float argument")


def _convert_program(b: Builder, program: Mapping[str, Any]) -> list[ValueInfo]:
    return _Program(b, program).run()
