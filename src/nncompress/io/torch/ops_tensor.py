"""Mappers of the aten ops on tensors: shapes and views, joins, indexing, matrix products, arithmetic,
comparisons and casts. A mapper emits IR nodes or raises `NotMapped` (the op is then carried as is)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from nncompress.io.torch.builder import Args, Builder, Dim, NotMapped, Ref, is_one, to_int, to_ints, to_num

__all__ = ["TENSOR_OPS"]

# TorchScript's ScalarType codes -> dtype names
_SCALAR_TYPES = {
    0: "uint8",
    1: "int8",
    2: "int16",
    3: "int32",
    4: "int64",
    5: "float16",
    6: "float32",
    7: "float64",
    11: "bool",
    15: "bfloat16",
}
# dtype names -> ONNX TensorProto data types (a Cast's ``to``)
_ONNX_TYPES = {
    "float32": 1,
    "uint8": 2,
    "int8": 3,
    "int16": 5,
    "int32": 6,
    "int64": 7,
    "bool": 9,
    "float16": 10,
    "float64": 11,
    "bfloat16": 16,
}


def _torch_dtype_name(d: Any) -> str | None:
    """The dtype a cast's ``dtype`` argument names: a TorchScript ScalarType code, or a torch.dtype
    (whose str is "torch.float32"); None for anything else (the cast then reads as a no-op).

    Not `nncompress.ir.names.dtype_name`: that one also reads numpy spellings ("?" is bool,
    "torch.float" is float64) and has no name for torch dtypes numpy lacks ("torch.qint8"), so casts
    would change target or become no-ops; here a dtype no Cast maps is carried as the aten op.
    """
    if d is None:
        return None
    if isinstance(d, int) and not isinstance(d, bool):
        return _SCALAR_TYPES.get(d)
    s = str(d)
    return s[len("torch.") :] if s.startswith("torch.") else None


def _identity(b: Builder, a: Args, base: str) -> Ref:
    x = a.values[0] if a.values else None
    if not isinstance(x, Ref):
        raise NotMapped("not a tensor")
    return b.one("Identity", [x.name], base)


def _shape_list(b: Builder, x: Ref, dims: Any) -> list[int]:
    if not isinstance(dims, (list, tuple)):
        raise NotMapped("shape is not a list")
    out: list[int | None] = []
    for i, d in enumerate(dims):
        if isinstance(d, (int, np.integer)) and not isinstance(d, bool):
            out.append(int(d))
        elif isinstance(d, Dim) and d.dim == i and (d.of == x.name or i == 0):
            out.append(0)  # ONNX: 0 copies the input's size on this axis (the batch, typically)
        else:
            out.append(None)
    unknown = sum(v is None for v in out)
    if unknown and (unknown > 1 or -1 in out):
        raise NotMapped("shape with several run-time sizes")
    return [-1 if v is None else v for v in out]


def _reshape(b: Builder, x: Ref, shape: list[int], base: str) -> Ref:
    s = b.const(f"{base}.shape", np.asarray(shape, np.int64))
    return b.one("Reshape", [x.name, s.name], base)


def _m_view(b: Builder, a: Args, base: str) -> Ref:
    x = a.t("self", 0)
    return _reshape(b, x, _shape_list(b, x, a.values[1] if len(a.values) > 1 else None), base)


def _m_flatten(b: Builder, a: Args, base: str) -> Ref:
    x = a.t("self", 0)
    start, end = to_int(a.get("start_dim", 1, 0)), to_int(a.get("end_dim", 2, -1))
    r = b.rank.get(x.name)
    if r is not None:
        start = start + r if start < 0 else start
        end = end + r if end < 0 else end
        if end == r - 1:
            end = -1
    if end != -1 or start < 0:
        raise NotMapped("flatten of inner axes")
    if start == 1:
        return b.one("Flatten", [x.name], base, attrs={"axis": 1})
    return _reshape(b, x, [0] * start + [-1], base)


def _m_unsqueeze(b: Builder, a: Args, base: str) -> Ref:
    return b.one("Unsqueeze", [a.t("self", 0).name], base, attrs={"axes": [to_int(a.get("dim", 1))]})


def _m_squeeze(b: Builder, a: Args, base: str) -> Ref:
    x = a.t("self", 0)
    if len(a.values) < 2:
        return b.one("Squeeze", [x.name], base)
    return b.one("Squeeze", [x.name], base, attrs={"axes": to_ints(a.values[1])})


def _m_permute(b: Builder, a: Args, base: str) -> Ref:
    dims = to_ints(a.get("dims", 1))
    perm = [d % len(dims) for d in dims]
    return b.one("Transpose", [a.t("self", 0).name], base, attrs={"perm": perm})


def _m_transpose(b: Builder, a: Args, base: str) -> Ref:
    x = a.t("self", 0)
    r = b.rank.get(x.name)
    if r is None:
        raise NotMapped("transpose of unknown rank")
    d0, d1 = to_int(a.get("dim0", 1)) % r, to_int(a.get("dim1", 2)) % r
    perm = list(range(r))
    perm[d0], perm[d1] = perm[d1], perm[d0]
    return b.one("Transpose", [x.name], base, attrs={"perm": perm})


def _m_t(b: Builder, a: Args, base: str) -> Ref:
    x = a.t("self", 0)
    r = b.rank.get(x.name)
    if r is not None and r < 2:
        return b.one("Identity", [x.name], base)
    return b.one("Transpose", [x.name], base, attrs={"perm": [1, 0]})


def _m_cat(b: Builder, a: Args, base: str) -> Ref:
    ts = a.get("tensors", 0)
    if not isinstance(ts, (list, tuple)) or not ts or not all(isinstance(t, Ref) for t in ts):
        raise NotMapped("cat of unknown tensors")
    return b.one("Concat", [t.name for t in ts], base, attrs={"axis": to_int(a.get("dim", 1, 0))})


def _m_stack(b: Builder, a: Args, base: str) -> Ref:
    ts = a.get("tensors", 0)
    if not isinstance(ts, (list, tuple)) or not ts or not all(isinstance(t, Ref) for t in ts):
        raise NotMapped("stack of unknown tensors")
    dim = to_int(a.get("dim", 1, 0))
    parts = [b.one("Unsqueeze", [t.name], f"{base}.in{i}", attrs={"axes": [dim]}) for i, t in enumerate(ts)]
    return b.one("Concat", [p.name for p in parts], base, attrs={"axis": dim})


def _m_embedding(b: Builder, a: Args, base: str) -> Ref:
    w, ids = a.t("weight", 0), a.t("indices", 1)
    return b.one("Gather", [w.name, ids.name], base, attrs={"axis": 0})


def _m_matmul(b: Builder, a: Args, base: str) -> Ref:
    x = a.t("self", 0)
    y = a.values[1] if len(a.values) > 1 else None
    if not isinstance(y, Ref):
        raise NotMapped("matmul operand")
    return b.one("MatMul", [x.name, y.name], base)


def _m_addmm(b: Builder, a: Args, base: str) -> Ref:
    c, m1, m2 = a.t("self", 0), a.t("mat1", 1), a.t("mat2", 2)
    attrs = {"alpha": to_num(a.get("alpha", 4, 1)), "beta": to_num(a.get("beta", 3, 1))}
    return b.one("Gemm", [m1.name, m2.name, c.name], base, attrs=attrs)


def _binary(op: str) -> Callable[[Builder, Args, str], Ref]:
    def fn(b: Builder, a: Args, base: str) -> Ref:
        x = a.t("self", 0)
        y = a.get("other", 1)
        alpha = a.get("alpha", 2, 1) if op in ("Add", "Sub") else 1
        if op == "Div" and a.get("rounding_mode", 2) is not None:
            raise NotMapped("div with a rounding mode")
        if not is_one(alpha):
            if isinstance(y, Ref):
                y = b.one("Mul", [y.name, b.operand(to_num(alpha), y, base)], f"{base}.alpha")
            else:
                y = to_num(y) * to_num(alpha)
        return b.one(op, [x.name, b.operand(y, x, base)], base)

    return fn


def _compare(op: str, negate: bool = False) -> Callable[[Builder, Args, str], Ref]:
    def fn(b: Builder, a: Args, base: str) -> Ref:
        x = a.t("self", 0)
        y = b.one(op, [x.name, b.operand(a.get("other", 1), x, base)], f"{base}.cmp" if negate else base)
        b.dtype[y.name] = "bool"
        if negate:
            y = b.one("Not", [y.name], base)
            b.dtype[y.name] = "bool"
        return y

    return fn


def _m_where(b: Builder, a: Args, base: str) -> Ref:
    c, x = a.t("condition", 0), a.get("self", 1)
    like = x if isinstance(x, Ref) else None
    y = a.get("other", 2)
    like = like or (y if isinstance(y, Ref) else None)
    return b.one("Where", [c.name, b.operand(x, like, base), b.operand(y, like, base)], base)


def _m_minmax(op: str) -> Callable[[Builder, Args, str], Ref]:
    def fn(b: Builder, a: Args, base: str) -> Ref:
        x = a.t("self", 0)
        return b.one(op, [x.name, b.operand(a.get("other", 1), x, base)], base)

    return fn


def _m_rsqrt(b: Builder, a: Args, base: str) -> Ref:
    r = b.one("Sqrt", [a.t("self", 0).name], f"{base}.sqrt")
    return b.one("Reciprocal", [r.name], base)


def _m_rsub(b: Builder, a: Args, base: str) -> Ref:
    x, y, alpha = a.t("self", 0), a.get("other", 1), a.get("alpha", 2, 1)
    if not is_one(alpha):
        x = b.one("Mul", [x.name, b.operand(to_num(alpha), x, base)], f"{base}.alpha")
    return b.one("Sub", [b.operand(y, x, base), x.name], base)


def _m_pow(b: Builder, a: Args, base: str) -> Ref:
    x = a.t("self", 0)
    return b.one("Pow", [x.name, b.operand(a.get("exponent", 1), x, base)], base)


def _m_to(b: Builder, a: Args, base: str) -> Ref:
    x = a.t("self", 0)
    dt = _torch_dtype_name(a.get("dtype", 1)) if a.has("dtype") else None
    if dt is None:
        return b.one("Identity", [x.name], base)
    if dt not in _ONNX_TYPES:
        raise NotMapped("cast to an unknown dtype")
    y = b.one("Cast", [x.name], base, attrs={"to": _ONNX_TYPES[dt]})
    b.dtype[y.name] = dt
    return y


def _m_slice(b: Builder, a: Args, base: str) -> Ref:
    x = a.t("self", 0)
    dim, start, end, step = a.get("dim", 1, 0), a.get("start", 2), a.get("end", 3), a.get("step", 4, 1)
    start = 0 if start is None else to_int(start)
    end = 2**63 - 1 if end is None else to_int(end)
    consts = [
        b.const(f"{base}.{tag}", np.asarray([v], np.int64)).name
        for tag, v in (("starts", start), ("ends", end), ("axes", to_int(dim)), ("steps", to_int(step)))
    ]
    return b.one("Slice", [x.name, *consts], base)


def _m_select(b: Builder, a: Args, base: str) -> Ref:
    x = a.t("self", 0)
    idx = b.const(f"{base}.index", np.asarray(to_int(a.get("index", 2)), np.int64))
    return b.one("Gather", [x.name, idx.name], base, attrs={"axis": to_int(a.get("dim", 1))})


def _m_constant_pad(b: Builder, a: Args, base: str) -> Ref:
    x = a.t("self", 0)
    pad = to_ints(a.get("pad", 1))
    if len(pad) % 2:
        raise NotMapped("odd pad list")
    k = len(pad) // 2
    pads = b.const(f"{base}.pads", np.asarray(pad[0::2] + pad[1::2], np.int64))
    value = b.const(f"{base}.value", np.asarray(to_num(a.get("value", 2, 0.0)), np.float32))
    axes = b.const(f"{base}.axes", np.asarray([-(i + 1) for i in range(k)], np.int64))
    return b.one("Pad", [x.name, pads.name, value.name, axes.name], base, attrs={"mode": "constant"})


TENSOR_OPS: dict[str, Callable[[Builder, Args, str], Any]] = {
    "flatten": _m_flatten,
    "view": _m_view,
    "reshape": _m_view,
    "_unsafe_view": _m_view,
    "unsqueeze": _m_unsqueeze,
    "squeeze": _m_squeeze,
    "permute": _m_permute,
    "transpose": _m_transpose,
    "t": _m_t,
    "cat": _m_cat,
    "concat": _m_cat,
    "stack": _m_stack,
    "embedding": _m_embedding,
    "matmul": _m_matmul,
    "mm": _m_matmul,
    "bmm": _m_matmul,
    "addmm": _m_addmm,
    "add": _binary("Add"),
    "sub": _binary("Sub"),
    "mul": _binary("Mul"),
    "div": _binary("Div"),
    "rsub": _m_rsub,
    "gt": _compare("Greater"),
    "lt": _compare("Less"),
    "ge": _compare("GreaterOrEqual"),
    "le": _compare("LessOrEqual"),
    "eq": _compare("Equal"),
    "ne": _compare("Equal", negate=True),
    "where": _m_where,
    "minimum": _m_minmax("Min"),
    "maximum": _m_minmax("Max"),
    "rsqrt": _m_rsqrt,
    "pow": _m_pow,
    "to": _m_to,
    "_to_copy": _m_to,
    "type_as": _identity,
    "dropout": _identity,
    "feature_dropout": _identity,
    "alpha_dropout": _identity,
    "feature_alpha_dropout": _identity,
    "clone": _identity,
    "contiguous": _identity,
    "detach": _identity,
    "alias": _identity,
    "lift_fresh_copy": _identity,
    "slice": _m_slice,
    "select": _m_select,
    "constant_pad_nd": _m_constant_pad,
}
