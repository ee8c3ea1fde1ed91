"""The normalisations docs/ir.md asks of a graph read from ONNX: a Gemm or MatMul whose weight is a
constant 2-D tensor used by that node only becomes ``Dense`` (weight turned to (out, in)), and a
Softmax/LogSoftmax of opset < 13 gets ``coerce_2d=1``; then each weight gets its role, op and layer.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import numpy as np

from nncompress.ir import Graph, Node, Weight

__all__ = ["graphs", "normalise"]

_BN_ROLES = ("bn_gamma", "bn_beta", "bn_mean", "bn_var")
_STRONG_ROLES = ("kernel", "bias", *_BN_ROLES, "embedding", "alpha")


def _is_float(dtype: np.dtype[Any]) -> bool:
    return bool(np.issubdtype(dtype, np.floating)) or dtype.name in ("bfloat16",)


def graphs(g: Graph) -> Iterator[Graph]:
    """``g`` and every subgraph in it, depth first."""
    yield g
    for n in g.nodes:
        for sg in n.subgraphs():
            yield from graphs(sg)


def _uses(g: Graph) -> Counter[str]:
    uses: Counter[str] = Counter()
    for sg in graphs(g):
        for n in sg.nodes:
            uses.update(i for i in n.inputs if i)
        uses.update(v.name for v in sg.outputs)
    return uses


_T2D = [("transpose", (1, 0))]


def normalise(g: Graph, opset: int) -> None:
    """Gemm/MatMul -> Dense, Softmax coerce_2d, then roles and layers of the weights."""
    w, uses = g.weights, _uses(g)
    groups: list[tuple[Node, list[tuple[Weight, str]]]] = []
    for sg in graphs(g):
        consumers = sg.consumers()
        for n in sg.nodes:
            if n.domain:
                continue
            if n.op in ("Softmax", "LogSoftmax") and opset < 13:
                n.attrs.setdefault("axis", 1)
                n.attrs["coerce_2d"] = 1
            elif n.op == "Gemm":
                _gemm_to_dense(n, w, uses)
            elif n.op == "MatMul" and _matmul_to_dense(n, w, uses):
                after = consumers.get(n.outputs[0], [])
                if len(after) == 1 and after[0].op == "Add" and not after[0].domain:
                    add = after[0]
                    other = [i for i in add.inputs if i != n.outputs[0]]
                    b = w.get(other[0]) if len(other) == 1 else None
                    if b is not None and b.shape == (w[n.inputs[1]].shape[0],) and uses[b.name] == 1:
                        groups.append((n, [(w[n.inputs[1]], "kernel"), (b, "bias")]))
    _assign_roles(g, groups)


def _gemm_to_dense(n: Node, w: dict[str, Weight], uses: Counter[str]) -> None:
    a = n.attrs
    if len(n.inputs) < 2 or float(a.get("alpha", 1.0)) != 1.0 or int(a.get("transA", 0)) != 0:
        return
    b = w.get(n.inputs[1])
    if b is None or n.inputs[0] in w or len(b.shape) != 2 or not _is_float(b.dtype) or uses[b.name] != 1:
        return
    trans = int(a.get("transB", 0))
    nout = b.shape[0] if trans else b.shape[1]
    c = n.inputs[2] if len(n.inputs) > 2 else ""
    # The bias may be a value rather than a weight: torch's exporter replaces an initializer equal to
    # another (all-zero biases, say) by an Identity of it.
    if c and ((c in w and w[c].shape != (nout,)) or float(a.get("beta", 1.0)) != 1.0):
        return
    n.op, n.attrs = "Dense", {}
    n.inputs = n.inputs[:3] if c else n.inputs[:2]
    if not trans:
        b.value, b.layout = np.ascontiguousarray(np.asarray(b.value).T), list(_T2D)


def _matmul_to_dense(n: Node, w: dict[str, Weight], uses: Counter[str]) -> bool:
    if len(n.inputs) != 2 or n.inputs[0] in w:
        return False
    b = w.get(n.inputs[1])
    if b is None or len(b.shape) != 2 or not _is_float(b.dtype) or uses[b.name] != 1:
        return False
    n.op, n.attrs = "Dense", {}
    b.value, b.layout = np.ascontiguousarray(np.asarray(b.value).T), list(_T2D)
    return True


def _role(n: Node, idx: int, w: Weight) -> tuple[str, str]:
    if not _is_float(w.dtype):
        small = len(w.shape) <= 1 and w.size <= 16
        return ("const" if small else "buffer"), n.op
    if n.domain:
        return "other", n.op
    if n.op in ("Conv", "ConvTranspose", "Dense") and idx in (1, 2):
        return ("kernel" if idx == 1 else "bias"), n.op
    if n.op == "BatchNormalization" and 1 <= idx <= 4:
        return _BN_ROLES[idx - 1], n.op
    if n.op == "PRelu" and idx == 1:
        return "alpha", n.op
    if n.op in ("LSTM", "GRU", "RNN") and idx in (1, 2, 3):
        return ("recurrent" if idx < 3 else "bias"), n.op
    if n.op == "Gather" and idx == 0 and len(w.shape) == 2:
        return "embedding", "Embedding"
    if n.op == "Clip" and idx in (1, 2):
        return "const", n.op
    return "other", n.op


def _param_prefix(name: str) -> str:
    """``fc1.weight`` -> ``fc1``: a framework's parameter path is the friendliest layer name."""
    if "." not in name or any(c in name for c in "/:"):
        return ""
    head, _, tail = name.rpartition(".")
    return head if head and tail.isidentifier() else ""


def _assign_roles(g: Graph, groups: list[tuple[Node, list[tuple[Weight, str]]]]) -> None:
    w = g.weights
    best: dict[str, tuple[int, str, str, Node]] = {}
    for sg in graphs(g):
        for n in sg.nodes:
            group: list[tuple[Weight, str]] = []
            for idx, i in enumerate(n.inputs):
                if i not in w:
                    continue
                role, op = _role(n, idx, w[i])
                rank = 2 if role in _STRONG_ROLES else 1
                if i not in best or rank > best[i][0]:
                    best[i] = (rank, role, op, n)
                if rank == 2:
                    group.append((w[i], role))
            if group:
                groups.append((n, group))
    for wt in w.values():
        if wt.name in best:
            _, wt.role, wt.op, node = best[wt.name]
            wt.layer = _param_prefix(wt.name) or node.layer
        else:
            wt.role = "other" if _is_float(wt.dtype) else ("const" if wt.size <= 16 else "buffer")
            wt.op, wt.layer = "", _param_prefix(wt.name) or wt.name
    # a layer's weights share one name: the kernel's parameter path if it has one (torch exports)
    for n, group in groups:
        prefixes = [_param_prefix(x.name) for x, role in group if role == "kernel"]
        prefixes += [_param_prefix(x.name) for x, _ in group]
        layer = next((p for p in prefixes if p), n.layer)
        n.layer = layer
        for x, role in group:
            x.layer, x.role = layer, role
            x.op = "Embedding" if role == "embedding" else n.op
