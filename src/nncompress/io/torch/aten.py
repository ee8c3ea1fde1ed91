"""aten ops -> IR: the table of mappers (`ops_nn`, `ops_tensor`) and the dispatch that carries an op
without a mapper, or one its mapper declines, as ``aten::name`` in domain ``torch``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from nncompress.io.torch.builder import Args, Builder, Dim, NotMapped, Ref, Unconvertible
from nncompress.io.torch.ops_nn import NN_OPS
from nncompress.io.torch.ops_tensor import TENSOR_OPS

__all__ = ["OPS", "emit_op", "flat_refs", "is_tensor_type"]

OPS: dict[str, Callable[[Builder, Args, str], Any]] = {**NN_OPS, **TENSOR_OPS}


def is_tensor_type(t: Any) -> bool:
    import torch

    if isinstance(t, torch._C.TensorType):
        return True
    if isinstance(t, torch._C.OptionalType):
        return is_tensor_type(t.getElementType())
    return False


def _attr_value(v: Any) -> Any:
    """A non-tensor argument of a carried op, in plain Python (what writers and inspect show)."""
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    if isinstance(v, (list, tuple)):
        return [_attr_value(x) for x in v]
    if isinstance(v, Dim):
        return f"size({v.of},{v.dim})"
    return str(v)


def flat_refs(v: Any) -> Iterator[Any]:
    if isinstance(v, (list, tuple)):
        for x in v:
            yield from flat_refs(x)
    else:
        yield v


def emit_op(b: Builder, full: str, a: Args, base: str, n_out: int, tensor_inputs: list[bool]) -> Any:
    """Map one aten op; an unmapped one is carried as ``aten::name`` in domain ``torch``."""
    name = full.split("::", 1)[-1]
    fn = OPS.get(name)
    if fn is None and name.endswith("_") and not name.endswith("__"):
        fn = OPS.get(name[:-1])  # in-place variants compute the same values
    if fn is not None:
        try:
            return fn(b, a, base)
        except NotMapped:
            pass
    ins: list[str] = []
    attrs: dict[str, Any] = {}
    for i, (n, v) in enumerate(zip(a.names, a.values, strict=False)):
        is_t = tensor_inputs[i] if i < len(tensor_inputs) else False
        if isinstance(v, Ref) or (isinstance(v, (list, tuple)) and v and all(isinstance(x, Ref) for x in v)):
            ins.extend(x.name for x in flat_refs(v))
        elif is_t and v is not None:
            raise Unconvertible(f"{full} reads a tensor the converter could not follow")
        else:
            attrs[n or f"arg{i}"] = _attr_value(v)
    b.unknown_ops[full] = b.unknown_ops.get(full, 0) + 1
    outs = b.emit(full, ins, base, attrs=attrs, n_out=max(n_out, 1), domain="torch")
    return outs[0] if n_out <= 1 else tuple(outs)
