"""TorchScript archives -> the IR: the archive's tensor records checked without torch, then the
module compiled by torch.jit.load (never run) and its inlined graph walked op by op."""

from __future__ import annotations

import io
import operator
import re
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nncompress._text import error_line
from nncompress.errors import InputError, NNCError
from nncompress.io.torch.archive import ITEMSIZE, NUMPY_OF, Stored, TorchZip
from nncompress.io.torch.aten import emit_op, flat_refs, is_tensor_type
from nncompress.io.torch.builder import (
    UNKNOWN,
    Args,
    Builder,
    Dim,
    Ref,
    Unconvertible,
    UnknownT,
    fallback,
    finish,
    outputs_of,
)
from nncompress.io.torch.sniff import Kind
from nncompress.io.torch.source import Source
from nncompress.io.torch.torchsave import collect_storages
from nncompress.io.torch.unpickle import SafeUnpickler, Storage, iter_refs
from nncompress.io.torch.weights import dtype_notes, guess_roles, to_numpy, weights_from
from nncompress.ir import Graph, IRError, ModelMeta, ValueInfo, Weight

__all__ = ["load_torchscript", "torchscript_tensors"]


@dataclass
class _Mod:
    """A (sub)module reached through prim::GetAttr: its dotted path and the live object."""

    path: str
    obj: Any


# TorchScript's scalar type names -> numpy dtype names
_JIT_SCALAR_NAMES = {
    "Float": "float32",
    "Double": "float64",
    "Half": "float16",
    "BFloat16": "bfloat16",
    "Long": "int64",
    "Int": "int32",
    "Short": "int16",
    "Char": "int8",
    "Byte": "uint8",
    "Bool": "bool",
}


def torchscript_tensors(p: Path) -> tuple[str, Any]:
    """(record folder, data.pkl's module structure), with every tensor record of data.pkl and
    constants.pkl checked against the size its pickle declares: torch.jit.load trusts the declared
    size, and a short record made it read past its buffer (and compress then crash)."""
    with TorchZip.open(p) as z:
        module: Any = None
        for pkl, folder in (("data.pkl", "data"), ("constants.pkl", "constants")):
            if not z.has(pkl):
                continue
            storages: dict[str, Storage] = {}
            try:
                data = z.read(pkl, limit=1 << 30)
                obj = SafeUnpickler(io.BytesIO(data), persistent=collect_storages(storages)).load()
            except NNCError:
                raise
            except Exception as e:
                raise InputError(
                    f"corrupt TorchScript archive: {pkl} is unreadable ({error_line(e)})",
                    path=str(p),
                    hint="Re-save it with torch.jit.save",
                ) from None
            for key, st in storages.items():
                need, record = st.numel * ITEMSIZE.get(st.dtype, 1), f"{folder}/{key}"
                have = z.size(record) if z.has(record) else 0
                if need > have:
                    raise InputError(
                        f"corrupt TorchScript archive: record {record} holds {have} bytes, its tensor "
                        f"declares {need}",
                        path=str(p),
                        hint="Re-save it with torch.jit.save",
                    )
            for name, ref in iter_refs(obj):
                if ref.kind == "strided" and ref.dtype in NUMPY_OF:
                    view = Stored(
                        f"{z.root}/{folder}/{ref.storage.key}", ref.dtype, ref.offset, ref.shape, ref.strides
                    )
                    z.check(view, f"tensor {name!r}")
            if pkl == "data.pkl":
                module = obj
        return z.root, module


def load_torchscript(p: Path, kind: Kind) -> Graph:
    import torch

    torchscript_tensors(p)
    traced = "traced_inputs.pkl" in kind.names
    extra_names = [
        n[len("extra/") :] for n in kind.names if n.startswith("extra/") and len(n) > len("extra/")
    ]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # torch 2.10+ deprecates TorchScript
            m = torch.jit.load(str(p), map_location="cpu", _restore_shapes=traced)
    except Exception as e:
        raise InputError(
            f"corrupt or unreadable TorchScript archive ({error_line(e)})",
            path=str(p),
            hint="Re-save it with torch.jit.save",
        ) from None
    was_training = bool(getattr(m, "training", False))
    m.eval()
    sd = m.state_dict()
    skipped: list[str] = []
    weights = weights_from(sd, skipped)
    guess_roles(weights)
    src = Source(kind="torchscript", path=str(p), tensors=list(weights), extra_files=extra_names)
    meta = ModelMeta(format="torchscript", producer="pytorch", producer_version="", path=str(p))
    meta.extra["archive_version"] = _read_member(p, kind, "version")
    b = Builder(weights, set(weights))
    try:
        outputs = _TorchScript(b, m).run()
        if any(vi.shape for vi in b.inputs):
            meta.extra["input_shapes"] = {vi.name: list(vi.shape or ()) for vi in b.inputs}
        if was_training:
            b.notes.append("saved in training mode; converted in eval mode")
        meta.notes = [*dtype_notes(sd, skipped)]
        src.tensors = [k for k in b.weights if k in b.file_keys]
        return finish(b, outputs, meta, p.stem, src, dtypes_known=traced)
    except (Unconvertible, IRError) as e:
        return fallback(sd, meta, p.stem, src, str(e), skipped)


def _read_member(p: Path, kind: Kind, name: str) -> str:
    try:
        with zipfile.ZipFile(p) as z:
            return z.read(f"{kind.root}/{name}").decode("utf-8", "replace").strip()
    except (KeyError, OSError, zipfile.BadZipFile):
        return ""


_SCHEMAS: dict[str, tuple[list[str], str]] = {}


def _schema_names(schema: str) -> list[str]:
    """Argument names of a TorchScript node's matched schema ('(no schema)' -> [])."""
    import torch

    if schema not in _SCHEMAS:
        try:
            fs = torch._C.parse_schema(schema)
            _SCHEMAS[schema] = ([a.name for a in fs.arguments], fs.name)
        except RuntimeError:
            _SCHEMAS[schema] = ([], "")
    return _SCHEMAS[schema][0]


def _holds_tensors(t: Any) -> bool:
    import torch

    if is_tensor_type(t):
        return True
    if isinstance(t, torch._C.ListType):
        return _holds_tensors(t.getElementType())
    if isinstance(t, torch._C.TupleType):
        return any(_holds_tensors(e) for e in t.elements())
    return False


# scalar ops of TorchScript code (shape checks, None tests, arithmetic on sizes), evaluated on constants
_SCALAR_OPS: dict[str, Callable[..., Any]] = {
    "aten::eq": operator.eq,
    "aten::ne": operator.ne,
    "aten::lt": operator.lt,
    "aten::le": operator.le,
    "aten::gt": operator.gt,
    "aten::ge": operator.ge,
    "aten::add": operator.add,
    "aten::sub": operator.sub,
    "aten::mul": operator.mul,
    "aten::div": operator.truediv,
    "aten::floordiv": operator.floordiv,
    "aten::remainder": operator.mod,
    "aten::neg": operator.neg,
    "aten::__not__": operator.not_,
    "aten::__and__": operator.and_,
    "aten::__or__": operator.or_,
    "aten::len": len,
    "aten::__getitem__": lambda s, i: s[i],
    "aten::Int": int,
    "aten::Float": float,
    "aten::Bool": bool,
    "aten::ScalarImplicit": lambda x: x,
    "prim::min": min,
    "prim::max": max,
    "aten::list": list,
    "aten::__contains__": operator.contains,
}


class _TorchScript:
    """Walks an inlined TorchScript graph, folding constants and control flow known at load time."""

    def __init__(self, b: Builder, module: Any) -> None:
        self.b, self.m = b, module
        self.env: dict[int, Any] = {}

    def val(self, v: Any) -> Any:
        return self.env.get(v.unique(), UNKNOWN)

    def set(self, v: Any, x: Any) -> None:
        self.env[v.unique()] = x

    def run(self) -> list[ValueInfo]:
        import torch

        g = self.m.forward.graph.copy()
        torch._C._jit_pass_inline(g)
        ins = list(g.inputs())
        arg_names = [a.name for a in self.m.forward.schema.arguments]
        self.set(ins[0], _Mod("", self.m))
        for v, name in zip(ins[1:], arg_names[1:], strict=False):
            t = v.type()
            if not isinstance(t, torch._C.TensorType):
                raise Unconvertible(f"forward takes a non-tensor argument {name!r} ({t})")
            sizes = t.sizes()
            dt = _JIT_SCALAR_NAMES.get(t.scalarType() or "", "float32")
            # A trace records its example input's sizes; the example's batch size is no constraint
            # (size(0) in views is converted to 0/-1), so the batch axis is left dynamic.
            shape: tuple[int | str | None, ...] | None = (
                ("batch", *(int(s) for s in sizes[1:])) if sizes else None
            )
            vname = self.b.fresh(name)
            self.b.inputs.append(ValueInfo(name=vname, shape=shape, dtype=dt))
            self.b.dtype[vname] = dt
            if shape is not None:
                self.b.rank[vname] = len(shape)
            self.set(v, Ref(vname))
        self.block(g.nodes())
        results = [self.val(o) for o in g.outputs()]
        flat = list(flat_refs(results))
        return outputs_of(self.b, flat)

    def block(self, nodes: Any) -> None:
        for n in nodes:
            self.node(n)

    def node(self, n: Any) -> None:
        k = n.kind()
        outs = list(n.outputs())
        if k == "prim::Constant":
            self.set(outs[0], self.constant(n))
        elif k == "prim::GetAttr":
            self.set(outs[0], self.getattr(self.val(n.input()), n.s("name")))
        elif k in ("prim::ListConstruct", "prim::TupleConstruct"):
            self.set(outs[0], [self.val(i) for i in n.inputs()])
        elif k in ("prim::ListUnpack", "prim::TupleUnpack"):
            seq = self.val(n.input())
            ok = isinstance(seq, (list, tuple)) and len(seq) == len(outs)
            for i, o in enumerate(outs):
                self.set(o, seq[i] if ok else UNKNOWN)
        elif k in ("prim::TupleIndex", "prim::ListIndex"):
            seq, i = (self.val(x) for x in n.inputs())
            self.set(outs[0], seq[i] if isinstance(seq, (list, tuple)) and isinstance(i, int) else UNKNOWN)
        elif k == "prim::If":
            self.if_node(n)
        elif k == "prim::RaiseException":
            raise Unconvertible("the model raises an exception on its eval path")
        elif k in ("aten::warn", "prim::Print"):
            pass
        elif k == "prim::Loop":
            raise Unconvertible("the model has a loop (prim::Loop)")
        elif k in ("aten::Int", "aten::ScalarImplicit") and isinstance(self.val(n.input()), Dim):
            self.set(outs[0], self.val(n.input()))  # traced code turns sizes into tensors and back
        elif k in ("prim::unchecked_cast", "prim::NumToTensor", "aten::detach_"):
            self.set(outs[0], self.val(n.input()))
        elif k == "prim::Uninitialized":
            self.set(outs[0], UNKNOWN)
        elif k in ("aten::size", "aten::dim", "aten::numel"):
            self.shape_query(n)
        elif any(_holds_tensors(o.type()) for o in outs):
            self.tensor_op(n)
        elif k in ("aten::__is__", "aten::__isnot__"):
            a, c = (self.val(x) for x in n.inputs())
            res: Any = UNKNOWN
            if a is None and c is None:
                res = True
            elif (a is None) != (c is None) and UNKNOWN not in (a, c):
                res = False
            elif a is not UNKNOWN and c is not UNKNOWN and not isinstance(a, (Ref, Dim, _Mod)):
                res = a is c or a == c
            self.set(outs[0], res if k == "aten::__is__" or res is UNKNOWN else not res)
        elif k in _SCALAR_OPS and outs:
            self.set(outs[0], self.scalar(n, _SCALAR_OPS[k]))
        elif k.startswith(("aten::", "prim::")) and not any(is_tensor_type(o.type()) for o in outs):
            for o in outs:  # dtype/device queries, string formatting: values we do not need
                self.set(o, UNKNOWN)
        else:
            raise Unconvertible(f"unsupported TorchScript node {k}")

    def constant(self, n: Any) -> Any:
        import torch

        o = n.output()
        try:
            v = o.toIValue()
        except RuntimeError:
            return UNKNOWN
        if isinstance(v, torch.Tensor):
            arr = to_numpy(v)
            return UNKNOWN if arr is None else self.b.const(f"const.{o.debugName()}", arr)
        if isinstance(v, (bool, int, float, str)) or v is None:
            return v
        if isinstance(v, (list, tuple)):
            return list(v)
        if isinstance(v, (torch.device, torch.dtype)):
            return v
        return UNKNOWN

    def getattr(self, owner: Any, name: str) -> Any:
        import torch

        if not isinstance(owner, _Mod):
            return UNKNOWN
        try:
            attr = getattr(owner.obj, name)
        except Exception:
            return UNKNOWN
        path = f"{owner.path}.{name}" if owner.path else name
        if isinstance(attr, torch.jit.ScriptModule) or isinstance(attr, torch._C.ScriptModule):
            return _Mod(path, attr)
        if isinstance(attr, torch.Tensor):
            if path not in self.b.weights:
                arr = to_numpy(attr)
                if arr is None:
                    raise Unconvertible(f"tensor attribute {path!r} has no numpy dtype")
                self.b.weights[path] = Weight(name=path, value=arr, source=path)
                guess_roles({path: self.b.weights[path]})
                self.b.file_keys.add(path)
                self.b.names.add(path)
                self.b.rank[path] = arr.ndim
                self.b.dtype[path] = str(arr.dtype)
            return Ref(path)
        if attr is None or isinstance(attr, (bool, int, float, str)):
            return attr
        if isinstance(attr, (list, tuple)) and all(isinstance(x, (bool, int, float, str)) for x in attr):
            return list(attr)
        return UNKNOWN

    def if_node(self, n: Any) -> None:
        cond = self.val(n.input())
        outs = list(n.outputs())
        if isinstance(cond, bool) or (isinstance(cond, int) and not isinstance(cond, UnknownT)):
            blocks = list(n.blocks())
            blk = blocks[0] if cond else blocks[1]
            self.block(blk.nodes())
            for o, r in zip(outs, blk.outputs(), strict=True):
                self.set(o, self.val(r))
        elif not any(_holds_tensors(o.type()) for o in outs) and not _has_tensor_ops(n):
            # a run-time check (shape assertions, `a and b` on sizes): nothing the graph computes
            for o in outs:
                self.set(o, UNKNOWN)
        else:
            raise Unconvertible("data-dependent control flow (prim::If)")

    def shape_query(self, n: Any) -> None:
        k = n.kind()
        vals = [self.val(i) for i in n.inputs()]
        x = vals[0]
        out = n.output()
        r = self.b.rank.get(x.name) if isinstance(x, Ref) else None
        if k == "aten::dim":
            self.set(out, r if r is not None else UNKNOWN)
        elif k == "aten::size" and len(vals) > 1 and isinstance(x, Ref) and isinstance(vals[1], int):
            d = vals[1]
            self.set(out, Dim(x.name, d % r if r is not None else d))
        elif k == "aten::size" and len(vals) == 1 and isinstance(x, Ref) and r is not None:
            self.set(out, [Dim(x.name, i) for i in range(r)])
        else:
            self.set(out, UNKNOWN)

    def scalar(self, n: Any, fn: Callable[..., Any]) -> Any:
        vals = [self.val(i) for i in n.inputs()]
        if any(isinstance(v, (UnknownT, Ref, Dim, _Mod)) for v in vals):
            return UNKNOWN
        try:
            return fn(*vals)
        except Exception:
            return UNKNOWN

    def tensor_op(self, n: Any) -> None:
        k = n.kind()
        if not k.startswith("aten::"):
            raise Unconvertible(f"unsupported TorchScript node {k}")
        ins = list(n.inputs())
        vals = [self.val(i) for i in ins]
        names = _schema_names(n.schema())
        a = Args(names, vals)
        outs = list(n.outputs())
        base = outs[0].debugName() if outs else k.split("::")[1]
        base = re.sub(r"\.\d+$", "", base) if not base.isdigit() else k.split("::")[1]
        tensor_inputs = [_holds_tensors(i.type()) for i in ins]
        res = emit_op(self.b, k, a, base, len(outs), tensor_inputs)
        if len(outs) == 1:
            self.set(outs[0], res[0] if isinstance(res, tuple) else res)
        else:
            for i, o in enumerate(outs):
                self.set(o, res[i] if isinstance(res, tuple) and i < len(res) else UNKNOWN)
        op = k.split("::")[1]
        # an in-place op changes its first argument: later reads of it see the result
        if op.endswith("_") and not op.endswith("__") and ins and isinstance(vals[0], Ref) and outs:
            if vals[0].name in self.b.weights:
                raise Unconvertible(f"{k} modifies a weight in place")
            self.set(ins[0], self.val(outs[0]))


def _has_tensor_ops(n: Any) -> bool:
    for blk in n.blocks():
        for inner in blk.nodes():
            if any(_holds_tensors(o.type()) for o in inner.outputs()) or _has_tensor_ops(inner):
                return True
    return False
