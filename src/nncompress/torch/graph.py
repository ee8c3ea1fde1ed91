"""Any loaded nncompress graph as a PyTorch module: ``to_torch(graph)``, op for op like the executor.

The module runs the IR's nodes in order with the semantics of the numpy reference executor
(`nncompress.ir.interpreter`, ops in `nncompress.ir.ops`: ONNX semantics, the IR's weight layout),
so its outputs are the executor's to float rounding, and it is differentiable:

- a plain float weight is an ``nn.Parameter``; a non-float one, a ``const``/``buffer`` one and the
  batch-norm statistics are buffers (fixed, as torch keeps running statistics);
- a compressed slot is the `CompressedWeight` of its format (`nncompress.torch.from_format`):
  Dense, and Gemm where the weight is already (out, in) (``transB``), multiply on the compressed data
  (``matmul``), every other use decodes it (``dense()``, differentiable in the format's values).

It always computes the executor's inference form: Dropout is the identity and BatchNormalization
uses its stored statistics in ``train()`` mode too, so fine-tuning through it is deterministic and
the result still is the graph the executor runs. Float math is in ``dtype`` (float32 by default):
float weights and float inputs are cast to it once.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch  # noqa: TID253 (this package is the torch one; nothing outside it imports it eagerly)
import torch.nn.functional as F  # noqa: TID253
from torch import Tensor, nn  # noqa: TID253

from nncompress.errors import InputError, UnsupportedError, UsageError
from nncompress.ir.graph import Graph, Node, ValueInfo
from nncompress.ir.interpreter import _dead_after  # the executor's value lifetimes, shared
from nncompress.ir.ops._window import ints, out_sizes, pads
from nncompress.ir.ops.linear import _transpose_pads
from nncompress.ir.ops.shape import _ONNX_DTYPES
from nncompress.torch._base import CompressedWeight, from_format

__all__ = ["GraphModule", "to_torch"]

# Float weights that are statistics or bookkeeping rather than something a gradient should move.
_FIXED_ROLES = frozenset({"const", "buffer", "bn_mean", "bn_var"})

Ins = list[Any]  # a node's input tensors, None where an optional input is omitted
TorchOp = Callable[[Ins, dict[str, Any]], "Tensor | tuple[Tensor, ...]"]


def to_torch(graph: Graph, *, dtype: torch.dtype | str = torch.float32) -> GraphModule:
    """An ``nn.Module`` computing ``graph``: ``module(x)``, ``module(x1, x2)`` or
    ``module({"name": x})`` (graph input order; numpy arrays are accepted) returns the output
    tensor, or a tuple of them in ``graph.outputs`` order when the graph has several."""
    return GraphModule(graph, dtype=dtype)


def _torch_dtype(dtype: torch.dtype | str) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        out = dtype
    else:
        out = getattr(torch, str(dtype), None)  # type: ignore[assignment]
        if not isinstance(out, torch.dtype):
            raise UsageError(f"unknown dtype {dtype!r}", hint="use float32, float64 or float16")
    if not out.is_floating_point:
        raise UsageError(f"dtype must be a floating type, got {out}")
    return out


def _np_to_torch_dtype(dt: np.dtype[Any]) -> torch.dtype:
    return torch.from_numpy(np.zeros(0, dt)).dtype


# -- the module --------------------------------------------------------------------------------------


class GraphModule(nn.Module):
    """A graph of the IR as a module (see the module docstring); build it with `to_torch`."""

    def __init__(self, graph: Graph, *, dtype: torch.dtype | str = torch.float32) -> None:
        super().__init__()
        path = graph.meta.path or None
        if not graph.has_graph:
            raise UnsupportedError(
                "this is a weights-only file: there is no graph to turn into a module",
                path=path,
                hint="load the full model file (architecture and weights)",
            )
        self.dtype = _torch_dtype(dtype)
        self.path = path
        self.inputs: list[ValueInfo] = [v for v in graph.inputs if v.name not in graph.weights]
        self.input_names = [v.name for v in self.inputs]
        self.output_names = [v.name for v in graph.outputs]
        self._declared = {v.name: v for v in graph.inputs}
        self.body = _Body(graph, self.dtype, path)

    def forward(self, *args: Any, **kwargs: Any) -> Tensor | tuple[Tensor, ...]:
        outs = self.body.run(self._feeds(args, kwargs), None)
        return outs[0] if len(outs) == 1 else tuple(outs)

    def weight(self, name: str) -> Tensor | nn.Module:
        """What holds the IR weight ``name`` (of the top graph): a parameter, a buffer or the
        `CompressedWeight` of a compressed slot; to read the trained values back."""
        return self.body.slot(name)

    def _feeds(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Tensor]:
        if len(args) == 1 and isinstance(args[0], Mapping):
            kwargs = {**args[0], **kwargs}
            args = ()
        if len(args) > len(self.inputs):
            raise InputError(
                f"{len(args)} inputs given, the model has {len(self.inputs)} ({', '.join(self.input_names)})",
                path=self.path,
            )
        given = dict(zip(self.input_names, args, strict=False))
        twice = sorted(set(given) & set(kwargs))
        unknown = sorted(set(kwargs) - set(self._declared))
        given.update(kwargs)
        missing = [n for n in self.input_names if n not in given]
        if twice or unknown or missing:
            raise InputError(
                f"inputs do not match the model: missing {missing}, unknown {unknown}, given twice {twice}",
                path=self.path,
                hint=f"the model's inputs are {self.input_names}",
            )
        return {k: self._fit(v, self._declared[k]) for k, v in given.items()}

    def _fit(self, a: Any, vi: ValueInfo) -> Tensor:
        """The executor's input rule: cast to the declared type (floats to ``dtype``) and reshape
        flat samples, e.g. (N, 784) data for an (N, 1, 28, 28) input."""
        t = a if isinstance(a, Tensor) else torch.as_tensor(np.asarray(a))
        try:
            want = np.dtype(vi.dtype)
            target = self.dtype if np.issubdtype(want, np.floating) else _np_to_torch_dtype(want)
        except (TypeError, ValueError) as e:
            raise InputError(f"input {vi.name!r} has an unknown type {vi.dtype!r}", path=self.path) from e
        t = t.to(target)
        shape = vi.shape
        if not shape or t.ndim == 0:
            return t
        sample = tuple(shape[1:])
        if all(isinstance(d, int) for d in sample):
            if tuple(t.shape[1:]) == sample:
                return t
            if math.prod(t.shape[1:]) == math.prod(sample):  # type: ignore[arg-type]
                return t.reshape(t.shape[0], *sample)  # type: ignore[arg-type]
        elif t.ndim == len(shape) and all(
            not isinstance(d, int) or d == s for d, s in zip(sample, t.shape[1:], strict=True)
        ):
            return t
        raise InputError(
            f"input {vi.name!r} has shape {tuple(t.shape)}, the model expects {tuple(shape)} (axis 0 is the batch)",
            path=self.path,
            hint="reshape the data to the model's input shape",
        )


def _safe_keys() -> Callable[[str], str]:
    """Module attribute names for weight names (no dots, unique)."""
    seen: set[str] = set()

    def key(name: str) -> str:
        base = re.sub(r"\W", "_", name) or "w"
        base = f"w_{base}" if base[0].isdigit() else base
        k, i = base, 1
        # a name nn.Module already has (``training``, ``to``...) cannot be an attribute of the holders
        while k in seen or hasattr(nn.ParameterDict, k) or hasattr(nn.ModuleDict, k):
            i += 1
            k = f"{base}_{i}"
        seen.add(k)
        return k

    return key


class _Body(nn.Module):
    """One graph level: its weights (parameters, buffers, compressed modules), nodes and branches."""

    def __init__(self, graph: Graph, dtype: torch.dtype, path: str | None) -> None:
        super().__init__()
        self.nodes: list[Node] = list(graph.nodes)
        self.outputs = [v.name for v in graph.outputs]
        self.path = path
        self.params = nn.ParameterDict()
        self.consts = nn.Module()  # a holder of buffers
        self.node_consts = nn.Module()  # Constant nodes' values, apart: any weight name may be taken
        self.compressed = nn.ModuleDict()
        self.branches = nn.ModuleDict()
        self._where: dict[str, tuple[str, str]] = {}
        key = _safe_keys()
        for name, w in graph.weights.items():
            k = key(name)
            if w.is_compressed:
                self.compressed[k] = from_format(w.value)  # type: ignore[arg-type]
                self._where[name] = ("compressed", k)
                continue
            a = np.asarray(w.value)
            t = torch.from_numpy(
                np.array(a, dtype=a.dtype.newbyteorder("="), copy=True)
            )  # torch: native order
            if t.is_floating_point():
                t = t.to(dtype)
            if t.is_floating_point() and w.role not in _FIXED_ROLES:
                self.params[k] = nn.Parameter(t)
                self._where[name] = ("params", k)
            else:
                self.consts.register_buffer(k, t)
                self._where[name] = ("consts", k)
        for i, node in enumerate(self.nodes):
            self._check(node)
            if node.op == "Constant":
                self.node_consts.register_buffer(f"node{i}", _constant(node.attrs, dtype))
            for branch in ("then_branch", "else_branch"):
                sub = node.attrs.get(branch) if node.op == "If" else None
                if isinstance(sub, Graph):
                    self.branches[f"{i}_{branch}"] = _Body(sub, dtype, path)
        self._dead = _dead_after(graph)

    def _check(self, node: Node) -> None:
        plain = node.domain in ("", "ai.onnx")
        if not plain or (node.op not in OPS and node.op not in ("If", "Constant")):
            op = f"{node.domain}:{node.op}" if node.domain else node.op
            raise UsageError(
                f"cannot turn op {op} (node {node.name}) into torch: the reference executor does not run it",
                path=self.path,
            )
        if node.op == "Cast" and int(node.attrs.get("to", 0)) not in _ONNX_DTYPES:
            raise UsageError(
                f"node {node.name}: Cast to ONNX data type {node.attrs.get('to')} is not supported"
            )

    def slot(self, name: str) -> Any:
        kind, k = self._where[name]
        if kind == "params":
            return self.params[k]
        if kind == "compressed":
            return self.compressed[k]
        return getattr(self.consts, k)

    def run(self, values: dict[str, Tensor], parent: _Scope | None) -> list[Tensor]:
        scope = _Scope(self, parent, values)
        for i, node in enumerate(self.nodes):
            outs = self._node(i, node, scope)
            if any(node.outputs[len(outs) :]):
                raise UnsupportedError(
                    f"node {node.name}: {node.op} output {node.outputs[len(outs)]!r} is not computed",
                    path=self.path,
                )
            for name, val in zip(node.outputs, outs, strict=False):
                if name:
                    values[name] = val
            for name in self._dead[i]:
                values.pop(name, None)
        return [scope.get(n, "<output>") for n in self.outputs]

    def _node(self, i: int, node: Node, scope: _Scope) -> Sequence[Tensor]:
        if node.op == "Constant":
            return (getattr(self.node_consts, f"node{i}"),)
        if node.op == "If":
            cond = scope.get(node.inputs[0], node.name)
            key = "then_branch" if bool(cond.reshape(-1)[0]) else "else_branch"
            if f"{i}_{key}" not in self.branches:
                raise InputError(f"node {node.name!r} (If) has no {key} graph", path=self.path)
            branch: _Body = self.branches[f"{i}_{key}"]  # type: ignore[assignment]
            return branch.run({}, scope)
        attrs = node.attrs
        if node.op == "Split" and "num_outputs" not in attrs:  # opset < 18: as many parts as outputs
            attrs = {**attrs, "num_outputs": len(node.outputs)}
        try:
            product = self._compressed_product(node, scope)
            if product is not None:
                return (product,)
            ins = [scope.get(n, node.name) if n else None for n in node.inputs]
            y = OPS[node.op](ins, attrs)
        except (UnsupportedError, InputError, UsageError) as e:  # a compressed product's own checks too
            raise type(e)(f"node {node.name}: {e.detail}", path=self.path, hint=e.hint) from e
        except KeyError as e:
            raise InputError(
                f"node {node.name!r} ({node.op}) lacks attribute {e}",
                path=self.path,
                hint="the model file is inconsistent; re-export it",
            ) from e
        except (RuntimeError, ValueError, IndexError, TypeError) as e:
            raise InputError(
                f"node {node.name!r} ({node.op}) failed: {' '.join(str(e).split())}",
                path=self.path,
                hint="check the input data's shape and the model file",
            ) from e
        return y if isinstance(y, tuple) else (y,)

    def _compressed_product(self, node: Node, scope: _Scope) -> Tensor | None:
        """Dense, and Gemm with an (out, in) weight, multiply on a compressed slot's own data."""
        if node.op not in ("Dense", "Gemm") or len(node.inputs) < 2:
            return None
        if node.op == "Gemm" and (node.attrs.get("transA", 0) or not node.attrs.get("transB", 0)):
            return None  # A @ B with B (in, out): not the (out, in) product the formats compute
        mod = scope.compressed(node.inputs[1])
        if mod is None:
            return None
        x = scope.get(node.inputs[0], node.name)
        y = mod.matmul(x.to(_param_dtype(mod, x.dtype))).to(x.dtype)
        b = scope.get(node.inputs[2], node.name) if len(node.inputs) > 2 and node.inputs[2] else None
        if node.op == "Gemm":
            y = float(node.attrs.get("alpha", 1.0)) * y
            return y if b is None else y + float(node.attrs.get("beta", 1.0)) * b.to(y.dtype)
        return y if b is None else y + b.to(y.dtype)


def _param_dtype(mod: nn.Module, default: torch.dtype) -> torch.dtype:
    for t in [*mod.parameters(), *mod.buffers()]:
        if t.is_floating_point():
            return t.dtype
    return default


class _Scope:
    """The values of one run of one graph level; names fall through to weights, then the outer level."""

    def __init__(self, body: _Body, parent: _Scope | None, values: dict[str, Tensor]) -> None:
        self.body, self.parent, self.values = body, parent, values
        self.decoded: dict[str, Tensor] = {}  # a compressed weight is decoded once per run

    def get(self, name: str, node: str) -> Tensor:
        if name in self.values:
            return self.values[name]
        where = self.body._where.get(name)
        if where is not None:
            if where[0] != "compressed":
                return self.body.slot(name)  # type: ignore[no-any-return]
            if name not in self.decoded:
                self.decoded[name] = self.body.slot(name).dense()
            return self.decoded[name]
        if self.parent is not None:
            return self.parent.get(name, node)
        raise InputError(
            f"node {node!r} reads {name!r}, which nothing produces",
            path=self.body.path,
            hint="the model file is inconsistent; re-export it",
        )

    def compressed(self, name: str) -> CompressedWeight | None:
        """The compressed module of weight ``name`` if that is what the name means here."""
        if name in self.values:
            return None
        where = self.body._where.get(name)
        if where is not None:
            return self.body.slot(name) if where[0] == "compressed" else None  # type: ignore[no-any-return]
        return self.parent.compressed(name) if self.parent is not None else None


# -- the ops: one small function each, the executor's semantics in torch ------------------------------


def _ints(ins: Ins, i: int, a: dict[str, Any], key: str) -> list[int] | None:
    """An int list given as input ``i`` (newer opsets) or as attribute ``key`` (older ones)."""
    if len(ins) > i and ins[i] is not None:
        return [int(v) for v in ins[i].reshape(-1).tolist()]
    v = a.get(key)
    return None if v is None else [int(x) for x in np.asarray(v).reshape(-1)]


def _text(v: Any, default: str) -> str:
    v = default if v is None else v
    return v.decode() if isinstance(v, bytes) else str(v)


def _as(w: Tensor, x: Tensor) -> Tensor:
    return w.to(x.dtype)


def _promote(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    t = torch.result_type(a, b)
    return a.to(t), b.to(t)


def _dense(ins: Ins, a: dict[str, Any]) -> Tensor:
    x = ins[0]
    b = ins[2] if len(ins) > 2 else None
    return F.linear(x, _as(ins[1], x), None if b is None else _as(b, x))


def _matmul(ins: Ins, a: dict[str, Any]) -> Tensor:
    return torch.matmul(*_promote(ins[0], ins[1]))


def _gemm(ins: Ins, a: dict[str, Any]) -> Tensor:
    A = ins[0].T if a.get("transA", 0) else ins[0]
    B = ins[1].T if a.get("transB", 0) else ins[1]
    y = float(a.get("alpha", 1.0)) * (A @ _as(B, A))
    if len(ins) > 2 and ins[2] is not None:
        y = y + float(a.get("beta", 1.0)) * ins[2]
    return y.to(A.dtype)


def _pad_spatial(x: Tensor, pb: Sequence[int], pe: Sequence[int], value: float) -> Tensor:
    """``x`` padded with ``value`` on its last ``len(pb)`` axes (F.pad lists the last axis first)."""
    if not any(pb) and not any(pe):
        return x
    widths = [w for b, e in zip(reversed(pb), reversed(pe), strict=True) for w in (b, e)]
    return F.pad(x, widths, value=value)


_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
_MAX_POOL = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}
_CONV_T = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}


def _bias(y: Tensor, b: Tensor | None) -> Tensor:
    return y if b is None else y + _as(b, y).reshape(-1, *[1] * (y.ndim - 2))


def _conv(ins: Ins, a: dict[str, Any]) -> Tensor:
    x, w = ins[0], _as(ins[1], ins[0])
    kern = list(w.shape[2:])
    if len(kern) not in _CONV:
        raise UnsupportedError(f"Conv over {len(kern)} spatial axes has no torch counterpart")
    pb, pe, s, d = pads(a, list(x.shape[2:]), kern)
    y = _CONV[len(kern)](_pad_spatial(x, pb, pe, 0.0), w, None, s, 0, d, int(a.get("group", 1)))
    return _bias(y, ins[2] if len(ins) > 2 else None)


def _conv_transpose(ins: Ins, a: dict[str, Any]) -> Tensor:
    x, w = ins[0], _as(ins[1], ins[0])
    kern, size = list(w.shape[2:]), list(x.shape[2:])
    nk = len(kern)
    if nk not in _CONV_T:
        raise UnsupportedError(f"ConvTranspose over {nk} spatial axes has no torch counterpart")
    s, d, opad = ints(a, "strides", nk, 1), ints(a, "dilations", nk, 1), ints(a, "output_padding", nk, 0)
    full = [
        (i - 1) * si + (k - 1) * di + 1 + op for i, si, k, di, op in zip(size, s, kern, d, opad, strict=True)
    ]
    pb, pe = _transpose_pads(a, size, s, full)
    # the whole output, output_padding as zeros at the end (torch would want it below the stride),
    # then the executor's crop
    y = _CONV_T[nk](x, w, None, s, 0, 0, int(a.get("group", 1)), d)
    y = _pad_spatial(y, [0] * nk, opad, 0.0)
    crop = (slice(None), slice(None), *(slice(b, f - e) for b, e, f in zip(pb, pe, full, strict=True)))
    return _bias(y[crop], ins[2] if len(ins) > 2 else None)


def _windows(
    xp: Tensor, kern: Sequence[int], s: Sequence[int], d: Sequence[int], out: Sequence[int]
) -> Tensor:
    """A strided view (N, C, *out, *kern) of every window of the padded input (as the executor's)."""
    n = len(kern)
    v = xp
    for i, (k, si, di) in enumerate(zip(kern, s, d, strict=True)):
        v = v.unfold(2 + i, (k - 1) * di + 1, si)
    key = (slice(None), slice(None), *(slice(0, o) for o in out), *(slice(None, None, di) for di in d))
    return v[key] if n else v


def _pool_geometry(x: Tensor, a: dict[str, Any]) -> tuple[list[int], ...]:
    kern = [int(k) for k in a["kernel_shape"]]
    size = list(x.shape[2:])
    geo = pb, pe, s, d = pads(a, size, kern)
    out = out_sizes(size, geo, kern, bool(a.get("ceil_mode", 0)))
    extra = [
        max(0, (o - 1) * si + (k - 1) * di + 1 - (i + b + e))
        for o, si, k, di, i, b, e in zip(out, s, kern, d, size, pb, pe, strict=True)
    ]
    return kern, pb, pe, s, d, out, extra


def _max_pool(ins: Ins, a: dict[str, Any]) -> Tensor:
    x = ins[0]
    kern, pb, pe, s, d, out, extra = _pool_geometry(x, a)
    low = -math.inf if x.is_floating_point() else torch.iinfo(x.dtype).min
    xp = _pad_spatial(x, pb, [e + x_ for e, x_ in zip(pe, extra, strict=True)], low)
    if x.is_floating_point() and len(kern) in _MAX_POOL:
        # torch's pooling kernel on the same padded input: a reduction over the strided view of
        # windows is several times slower, and its backward fills a zero tensor every step
        y = _MAX_POOL[len(kern)](xp, kern, s, 0, d)
        key = (slice(None), slice(None), *(slice(0, o) for o in out))
        return y[key]
    return torch.amax(_windows(xp, kern, s, d, out), dim=tuple(range(-len(kern), 0)))


def _avg_pool(ins: Ins, a: dict[str, Any]) -> Tensor:
    x = ins[0]
    kern, pb, pe, s, d, out, extra = _pool_geometry(x, a)
    ends = [e + x_ for e, x_ in zip(pe, extra, strict=True)]
    axes = tuple(range(-len(kern), 0))
    total = _windows(_pad_spatial(x, pb, ends, 0.0), kern, s, d, out).sum(dim=axes)
    # the divisor counts real cells, plus the explicit pads when count_include_pad, never the ceil overrun
    ones = torch.ones((1, 1, *x.shape[2:]), dtype=x.dtype, device=x.device)
    if a.get("count_include_pad", 0):
        mask = _pad_spatial(_pad_spatial(ones, pb, pe, 1.0), [0] * len(kern), extra, 0.0)
    else:
        mask = _pad_spatial(ones, pb, ends, 0.0)
    count = _windows(mask, kern, s, d, out).sum(dim=axes)
    return (total / count).to(x.dtype)


def _global(reduce: Callable[..., Tensor]) -> TorchOp:
    return lambda ins, a: reduce(ins[0], dim=tuple(range(2, ins[0].ndim)), keepdim=True)


def _batch_norm(ins: Ins, a: dict[str, Any]) -> Tensor:
    x, scale, bias, mean, var = ins[:5]
    shape = (1, -1, *[1] * (x.ndim - 2))
    k = _as(scale / torch.sqrt(var + float(a.get("epsilon", 1e-5))), x)
    return (x - _as(mean, x).reshape(shape)) * k.reshape(shape) + _as(bias, x).reshape(shape)


def _softmax(ins: Ins, a: dict[str, Any], log: bool = False) -> Tensor:
    x = ins[0]
    if a.get("coerce_2d", 0):  # opset < 13: flatten to 2-D at axis, normalise over the whole tail
        axis = int(a.get("axis", 1)) % max(x.ndim, 1)
        flat = x.reshape(math.prod(x.shape[:axis]), -1)
        return _softmax([flat], {"axis": 1}, log).reshape(x.shape)
    axis = int(a.get("axis", -1))
    return torch.log_softmax(x, dim=axis) if log else torch.softmax(x, dim=axis)


def _unary(fn: Callable[[Tensor], Tensor]) -> TorchOp:
    return lambda ins, a: fn(ins[0])


def _binary(fn: Callable[[Tensor, Tensor], Tensor]) -> TorchOp:
    return lambda ins, a: fn(ins[0], ins[1])


def _variadic(fn: Callable[[Tensor, Tensor], Tensor]) -> TorchOp:
    return lambda ins, a: functools.reduce(
        lambda p, q: fn(*_promote(p, q)), [i for i in ins if i is not None]
    )


def _mean(ins: Ins, a: dict[str, Any]) -> Tensor:
    xs = [i for i in ins if i is not None]
    t = functools.reduce(torch.promote_types, [x.dtype for x in xs])
    return torch.stack(torch.broadcast_tensors(*[x.to(t) for x in xs])).mean(dim=0)


def _gelu(ins: Ins, a: dict[str, Any]) -> Tensor:
    return F.gelu(ins[0], approximate="tanh" if _text(a.get("approximate"), "none") == "tanh" else "none")


def _elu(ins: Ins, a: dict[str, Any]) -> Tensor:
    # F.elu, not a where over exp(x): exp overflows for large x and its NaN gradient would leak
    return F.elu(ins[0], float(a.get("alpha", 1.0)))


def _selu(ins: Ins, a: dict[str, Any]) -> Tensor:
    alpha = float(a.get("alpha", 1.67326319217681884765625))
    gamma = float(a.get("gamma", 1.05070102214813232421875))
    return gamma * _elu(ins, {"alpha": alpha})


def _clip(ins: Ins, a: dict[str, Any]) -> Tensor:
    x = ins[0]
    lo = ins[1] if len(ins) > 1 and ins[1] is not None else a.get("min")
    hi = ins[2] if len(ins) > 2 and ins[2] is not None else a.get("max")
    if lo is not None:
        x = torch.maximum(x, torch.as_tensor(lo).to(x))
    if hi is not None:
        x = torch.minimum(x, torch.as_tensor(hi).to(x))
    return x


def _div(ins: Ins, a: dict[str, Any]) -> Tensor:
    x, y = ins[0], ins[1]
    if not x.is_floating_point() and not y.is_floating_point() and x.dtype != torch.bool:
        return torch.div(x, y, rounding_mode="trunc")  # C truncation, as ONNX
    return torch.div(*_promote(x, y))


def _where(ins: Ins, a: dict[str, Any]) -> Tensor:
    return torch.where(ins[0].to(torch.bool), *_promote(ins[1], ins[2]))


def _reshape(ins: Ins, a: dict[str, Any]) -> Tensor:
    x, shape = ins[0], _ints(ins, 1, a, "shape") or []
    if not a.get("allowzero", 0):
        shape = [x.shape[i] if v == 0 else v for i, v in enumerate(shape)]
    return x.reshape(shape)


def _flatten(ins: Ins, a: dict[str, Any]) -> Tensor:
    x = ins[0]
    axis = int(a.get("axis", 1))
    axis = axis + x.ndim if axis < 0 else axis
    return x.reshape(math.prod(x.shape[:axis]), math.prod(x.shape[axis:]))


def _squeeze(ins: Ins, a: dict[str, Any]) -> Tensor:
    axes = _ints(ins, 1, a, "axes")
    return ins[0].squeeze() if axes is None else ins[0].squeeze(tuple(axes))


def _unsqueeze(ins: Ins, a: dict[str, Any]) -> Tensor:
    x, axes = ins[0], _ints(ins, 1, a, "axes") or []
    rank = x.ndim + len(axes)
    for ax in sorted(ax % rank for ax in axes):
        x = x.unsqueeze(ax)
    return x


def _transpose(ins: Ins, a: dict[str, Any]) -> Tensor:
    perm = a.get("perm")
    x = ins[0]
    return x.permute(*reversed(range(x.ndim)) if perm is None else [int(p) for p in perm])


def _gather(ins: Ins, a: dict[str, Any]) -> Tensor:
    x, idx = ins[0], ins[1].to(torch.int64)
    axis = int(a.get("axis", 0)) % x.ndim
    idx = torch.where(idx < 0, idx + x.shape[axis], idx)  # np.take counts negative indices from the end
    y = x.index_select(axis, idx.reshape(-1))
    return y.reshape((*x.shape[:axis], *idx.shape, *x.shape[axis + 1 :]))


def _shape(ins: Ins, a: dict[str, Any]) -> Tensor:
    start, end = int(a.get("start", 0)), a.get("end")
    return torch.tensor(list(ins[0].shape[start : None if end is None else int(end)]), dtype=torch.int64)


def _cast(ins: Ins, a: dict[str, Any]) -> Tensor:
    to = int(a["to"])
    if to not in _ONNX_DTYPES:
        raise UnsupportedError(f"Cast to ONNX data type {to} is not supported")
    return ins[0].to(_np_to_torch_dtype(np.dtype(_ONNX_DTYPES[to])))


def _constant(a: dict[str, Any], dtype: torch.dtype) -> Tensor:
    """A Constant node's value, as the executor reads it; a float one in the module's dtype."""
    for k, dt in (("value", None), ("value_float", np.float32), ("value_floats", np.float32)):
        if k in a:
            t = torch.from_numpy(np.array(a[k], dt))
            return t.to(dtype) if t.is_floating_point() else t
    for k in ("value_int", "value_ints"):
        if k in a:
            return torch.from_numpy(np.array(a[k], np.int64))
    raise UsageError(
        "a Constant node has no value attribute", hint="the model file is inconsistent; re-export it"
    )


def _expand(ins: Ins, a: dict[str, Any]) -> Tensor:
    shape = torch.broadcast_shapes(tuple(ins[0].shape), tuple(int(v) for v in ins[1].tolist()))
    return ins[0].expand(shape).clone()


def _tile(ins: Ins, a: dict[str, Any]) -> Tensor:
    x, reps = ins[0], [int(v) for v in ins[1].reshape(-1).tolist()]
    return x.repeat([1] * (x.ndim - len(reps)) + reps)  # np.tile pads the repeats with ones in front


def _slice(ins: Ins, a: dict[str, Any]) -> Tensor:
    x = ins[0]
    starts, ends = _ints(ins, 1, a, "starts") or [], _ints(ins, 2, a, "ends") or []
    axes = _ints(ins, 3, a, "axes") or list(range(len(starts)))
    steps = _ints(ins, 4, a, "steps") or [1] * len(starts)
    for st, en, ax, sp in zip(starts, ends, axes, steps, strict=True):
        ax %= x.ndim
        # Python's slice clamping matches ONNX's; torch has no negative step, so index those
        idx = range(*slice(st, en, sp).indices(x.shape[ax]))
        if sp > 0:
            x = x[(slice(None),) * ax + (slice(idx.start, idx.stop, idx.step),)]
        else:
            x = x.index_select(ax, torch.tensor(list(idx), dtype=torch.int64, device=x.device))
    return x


def _pad_index(n: int, b: int, e: int, mode: str) -> list[int]:
    """Source positions of the padded axis, as np.pad's edge, reflect and wrap modes take them."""
    out = []
    for i in range(-b, n + e):
        if mode == "edge":
            out.append(min(max(i, 0), n - 1))
        elif mode == "wrap":
            out.append(i % n)
        else:  # reflect, without repeating the edge, bouncing as often as the pad needs
            period = 2 * (n - 1)
            j = i % period if period else 0
            out.append(period - j if j >= n else j)
    return out


def _pad(ins: Ins, a: dict[str, Any]) -> Tensor:
    x, widths = ins[0], _ints(ins, 1, a, "pads") or []
    mode = _text(a.get("mode"), "constant")
    value = ins[2] if len(ins) > 2 and ins[2] is not None else a.get("value", 0)
    axes = _ints(ins, 3, a, "axes") or list(range(x.ndim))
    k = len(axes)
    begin, end = [0] * x.ndim, [0] * x.ndim
    for i, ax in enumerate(axes):
        begin[ax % x.ndim], end[ax % x.ndim] = widths[i], widths[i + k]
    grow = [(max(b, 0), max(e, 0)) for b, e in zip(begin, end, strict=True)]
    if mode == "constant":
        v = value.item() if isinstance(value, Tensor) else float(np.asarray(value))
        y = F.pad(x, [w for b, e in reversed(grow) for w in (b, e)], value=v) if any(map(any, grow)) else x
    elif mode in ("edge", "reflect", "wrap"):
        y = x
        for ax, (b, e) in enumerate(grow):
            if b or e:
                src = torch.tensor(_pad_index(x.shape[ax], b, e, mode), dtype=torch.int64, device=x.device)
                y = y.index_select(ax, src)
    else:
        raise ValueError(f"unknown Pad mode {mode!r}")
    crop = tuple(
        slice(-min(b, 0), y.shape[i] + min(e, 0)) for i, (b, e) in enumerate(zip(begin, end, strict=True))
    )
    return y[crop]  # negative pads crop


def _split(ins: Ins, a: dict[str, Any]) -> tuple[Tensor, ...]:
    x, axis = ins[0], int(a.get("axis", 0))
    sizes = _ints(ins, 1, a, "split")
    if not sizes:
        n = int(a["num_outputs"])
        chunk = -(-x.shape[axis] // n)
        sizes = [min(chunk, x.shape[axis] - i * chunk) for i in range(n)]
    return tuple(torch.split(x, sizes, dim=axis))


def _reduce(fn: Callable[..., Tensor]) -> TorchOp:
    def op(ins: Ins, a: dict[str, Any]) -> Tensor:
        x, axes = ins[0], _ints(ins, 1, a, "axes")
        if not axes and a.get("noop_with_empty_axes", 0):
            return x
        dims = tuple(axes) if axes else tuple(range(x.ndim))
        if fn in (torch.mean,) and not x.is_floating_point():
            x = x.to(torch.float64)  # numpy's mean of integers is a float64
        return fn(x, dim=dims, keepdim=bool(a.get("keepdims", 1))) if dims else x

    return op


OPS: dict[str, TorchOp] = {
    # linear
    "Dense": _dense,
    "MatMul": _matmul,
    "Gemm": _gemm,
    "Conv": _conv,
    "ConvTranspose": _conv_transpose,
    # norm
    "BatchNormalization": _batch_norm,
    "Softmax": _softmax,
    "LogSoftmax": functools.partial(_softmax, log=True),
    # element-wise
    "Relu": _unary(torch.relu),
    "Sigmoid": _unary(torch.sigmoid),
    "Tanh": _unary(torch.tanh),
    "Exp": _unary(torch.exp),
    "Log": _unary(torch.log),
    "Sqrt": _unary(torch.sqrt),
    "Abs": _unary(torch.abs),
    "Neg": _unary(torch.neg),
    "Reciprocal": _unary(torch.reciprocal),
    "Floor": _unary(torch.floor),
    "Ceil": _unary(torch.ceil),
    "Not": _unary(torch.logical_not),
    "Erf": _unary(torch.erf),
    "Softplus": _unary(lambda x: torch.logaddexp(x, torch.zeros_like(x))),
    "Softsign": _unary(lambda x: x / (1 + torch.abs(x))),
    "Identity": _unary(lambda x: x),
    "Dropout": lambda ins, a: (ins[0], torch.ones(ins[0].shape, dtype=torch.bool, device=ins[0].device)),
    "LeakyRelu": lambda ins, a: torch.where(ins[0] >= 0, ins[0], float(a.get("alpha", 0.01)) * ins[0]),
    "PRelu": lambda ins, a: torch.where(ins[0] >= 0, ins[0], _as(ins[1], ins[0]) * ins[0]),
    "Elu": _elu,
    "Selu": _selu,
    "Gelu": _gelu,
    "Clip": _clip,
    "HardSigmoid": lambda ins, a: torch.clamp(
        float(a.get("alpha", 0.2)) * ins[0] + float(a.get("beta", 0.5)), 0, 1
    ),
    "HardSwish": lambda ins, a: ins[0] * torch.clamp(ins[0] / 6 + 0.5, 0, 1),
    "Add": _binary(torch.add),
    "Sub": _binary(torch.sub),
    "Mul": _binary(torch.mul),
    "Div": _div,
    "Pow": lambda ins, a: torch.pow(ins[0], ins[1]).to(ins[0].dtype),
    "Min": _variadic(torch.minimum),
    "Max": _variadic(torch.maximum),
    "Sum": _variadic(torch.add),
    "Mean": _mean,
    "Where": _where,
    "Equal": _binary(torch.eq),
    "Less": _binary(torch.lt),
    "LessOrEqual": _binary(torch.le),
    "Greater": _binary(torch.gt),
    "GreaterOrEqual": _binary(torch.ge),
    "And": _binary(torch.logical_and),
    "Or": _binary(torch.logical_or),
    # pools
    "MaxPool": _max_pool,
    "AveragePool": _avg_pool,
    "GlobalAveragePool": _global(torch.mean),
    "GlobalMaxPool": _global(torch.amax),
    # shapes and data movement
    "Flatten": _flatten,
    "Reshape": _reshape,
    "Transpose": _transpose,
    "Squeeze": _squeeze,
    "Unsqueeze": _unsqueeze,
    "Concat": lambda ins, a: torch.cat([i for i in ins if i is not None], dim=int(a.get("axis", 0))),
    "Gather": _gather,
    "Shape": _shape,
    "Cast": _cast,
    "Constant": lambda ins, a: _constant(a, torch.float32),  # the module serves its own, precomputed
    "Expand": _expand,
    "Tile": _tile,
    "Slice": _slice,
    "Pad": _pad,
    "Split": _split,
    # reductions
    "ReduceMean": _reduce(torch.mean),
    "ReduceSum": _reduce(torch.sum),
    "ReduceMax": _reduce(torch.amax),
    "ReduceMin": _reduce(torch.amin),
}
