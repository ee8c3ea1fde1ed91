"""The numpy reference executor: runs a `Graph` on data with ONNX semantics (ops: docs/ir.md).

It is the yardstick for fidelity figures, so it favours clarity and exactness over speed, but
convolutions and pools go through im2col (one strided view and one matmul) so that a small CNN
runs on a few thousand images in seconds. Float math runs in float32, or in float64 when a graph
input is declared float64; floating weights are cast to that dtype once per run.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from nncompress.errors import InputError, UnsupportedError
from nncompress.ir.graph import Graph, Node, ValueInfo

Arr = np.ndarray
Ins = list[Any]  # the node's input arrays, None where an optional input is omitted
Attrs = dict[str, Any]
Result = Arr | tuple[Arr, ...]
OpFn = Callable[[Ins, Attrs], Result]

__all__ = ["run"]


def run(graph: Graph, inputs: Arr | dict[str, Arr], *, batch_size: int | None = 256) -> list[np.ndarray]:
    """Run ``graph`` on ``inputs`` and return its outputs in ``graph.outputs`` order."""
    if not graph.has_graph:
        raise UnsupportedError(
            "this is a weights-only file: there is no graph to run",
            path=graph.meta.path or None,
            hint="load the full model file (architecture and weights) to measure fidelity",
        )
    feeds = _prepare_inputs(graph, inputs)
    floats = [v.dtype for v in feeds.values() if np.issubdtype(v.dtype, np.floating)]
    dtype = np.dtype(np.float64) if np.dtype(np.float64) in floats else np.dtype(np.float32)
    runner = _Runner(graph, dtype)
    n = _batch_len(feeds)
    if not n:
        return runner.run(feeds)
    steps = [n if batch_size is None else max(1, int(batch_size))]
    fixed = _fixed_batch(graph)
    if fixed and fixed != steps[0] and n % fixed == 0:
        steps.append(fixed)  # an export may hard-code its batch (often 1) in a Reshape: fall back to it
    whole = None
    for i, step in enumerate(steps):
        try:
            outs, ok = _batched(runner, feeds, n, step)
        except InputError:
            if i == len(steps) - 1:
                raise
            continue
        if ok:
            return outs
        whole = outs if step >= n else whole
    return whole if whole is not None else runner.run(feeds)  # some output does not follow the batch


# -- inputs and batching ---------------------------------------------------------------------------


def _prepare_inputs(graph: Graph, inputs: Arr | dict[str, Arr]) -> dict[str, Arr]:
    path = graph.meta.path or None
    needed = [v for v in graph.inputs if v.name not in graph.weights]
    if not isinstance(inputs, dict):
        if len(needed) != 1:
            names = ", ".join(v.name for v in needed)
            raise InputError(
                f"the model has {len(needed)} inputs ({names}), but one array was given",
                path=path,
                hint="pass a dict name -> array",
            )
        inputs = {needed[0].name: inputs}
    missing = [v.name for v in needed if v.name not in inputs]
    unknown = sorted(set(inputs) - {v.name for v in graph.inputs})
    if missing or unknown:
        raise InputError(
            f"inputs do not match the model: missing {missing}, unknown {unknown}",
            path=path,
            hint=f"the model's inputs are {[v.name for v in needed]}",
        )
    info = {v.name: v for v in graph.inputs}
    return {k: _fit_input(np.asarray(a), info[k], path) for k, a in inputs.items()}


def _fit_input(a: Arr, vi: ValueInfo, path: str | None) -> Arr:
    try:
        a = a.astype(np.dtype(vi.dtype), copy=False)
    except (TypeError, ValueError) as e:
        raise InputError(f"input {vi.name!r} cannot be cast to {vi.dtype}: {e}", path=path) from e
    want = vi.shape
    if want is None or len(want) == 0 or a.ndim == 0:
        return a
    sample = tuple(want[1:])
    if all(isinstance(d, int) for d in sample):
        per = math.prod(sample)  # type: ignore[arg-type]
        if tuple(a.shape[1:]) == sample:
            return a
        if math.prod(a.shape[1:]) == per:
            return a.reshape((a.shape[0], *sample))  # e.g. flat (N, 784) data for an (N, 1, 28, 28) input
    elif a.ndim == len(want) and all(
        not isinstance(d, int) or d == s for d, s in zip(sample, a.shape[1:], strict=True)
    ):
        return a
    raise InputError(
        f"input {vi.name!r} has shape {a.shape}, the model expects {tuple(want)} (axis 0 is the batch)",
        path=path,
        hint="reshape the data to the model's input shape",
    )


def _batch_len(feeds: dict[str, Arr]) -> int | None:
    """The common axis-0 length of the inputs, or None when they cannot be split together."""
    lens = {a.shape[0] if a.ndim else None for a in feeds.values()}
    return lens.pop() if len(lens) == 1 else None


def _fixed_batch(graph: Graph) -> int | None:
    """The batch size every graph input declares, when it is a fixed number."""
    d0 = {v.shape[0] for v in graph.inputs if v.shape and v.name not in graph.weights}
    b = d0.pop() if len(d0) == 1 else None
    return b if isinstance(b, int) and b > 0 else None


def _batched(runner: _Runner, feeds: dict[str, Arr], n: int, step: int) -> tuple[list[Arr], bool]:
    """The outputs of a run in chunks of ``step``, and whether every output follows axis 0."""
    parts: list[list[Arr]] = []
    for i in range(0, n, step):
        outs = runner.run({k: v[i : i + step] for k, v in feeds.items()})
        if not parts and not all(o.ndim and o.shape[0] == min(step, n) for o in outs):
            return outs, False
        parts.append(outs)
    if len(parts) == 1:
        return parts[0], True
    return [np.concatenate(chunk, axis=0) for chunk in zip(*parts, strict=True)], True


# -- the interpreter -------------------------------------------------------------------------------


def _reads(g: Graph) -> set[str]:
    """Every name that ``g`` or its subgraphs read (an over-approximation of what they take from an
    enclosing scope, which is all that matters: a name is kept at most a little longer)."""
    names = {v.name for v in g.outputs}
    for n in g.all_nodes():
        names.update(i for i in n.inputs if i)
    return names


def _dead_after(g: Graph) -> list[list[str]]:
    """Per node of ``g``, the values that no later node (nor its subgraphs) nor the graph's outputs
    read: dropped once it has run. A VGG16 run kept every activation of the batch until the end,
    its whole forward pass at once (a 224x224x64 map is 12.8 MB per sample)."""
    keep = {v.name for v in g.outputs}
    last: dict[str, int] = {}
    for i, n in enumerate(g.nodes):
        for name in [*n.inputs, *(r for sg in n.subgraphs() for r in _reads(sg))]:
            if name:
                last[name] = i
        for name in n.outputs:
            if name:
                last.setdefault(name, i)  # produced and never read: dead at once
    dead: list[list[str]] = [[] for _ in g.nodes]
    for name, i in last.items():
        if name not in keep:
            dead[i].append(name)
    return dead


class _Scope:
    """Values of one graph level; weights decode lazily, names fall through to the outer scope."""

    def __init__(self, graph: Graph, runner: _Runner, parent: _Scope | None, values: dict[str, Arr]):
        self.graph, self.runner, self.parent, self.values = graph, runner, parent, values

    def get(self, name: str, node: Node) -> Arr:
        if name in self.values:
            return self.values[name]
        if name in self.graph.weights:
            return self.runner.weight(self.graph, name)
        if self.parent is not None:
            return self.parent.get(name, node)
        raise InputError(
            f"node {node.name!r} reads {name!r}, which nothing produces",
            path=self.runner.path,
            hint="the model file is inconsistent; re-export it",
        )


class _Runner:
    def __init__(self, graph: Graph, dtype: np.dtype[Any]) -> None:
        self.graph, self.dtype = graph, dtype
        self.path = graph.meta.path or None
        self.cache: dict[tuple[int, str], Arr] = {}

    def weight(self, g: Graph, name: str) -> Arr:
        key = (id(g), name)
        if key in self.cache:
            return self.cache[key]
        w = g.weights[name]
        a = np.asarray(w.array)
        if np.issubdtype(a.dtype, np.floating):
            a = a.astype(self.dtype, copy=False)
        # A compressed slot is decoded on each use rather than kept: holding every decoded weight
        # of a large model would double the memory a fidelity check needs.
        if isinstance(w.value, np.ndarray) or a.size < (1 << 20):
            self.cache[key] = a
        return a

    def run(self, feeds: dict[str, Arr]) -> list[Arr]:
        return self.run_graph(self.graph, None, dict(feeds))

    def run_graph(self, g: Graph, parent: _Scope | None, values: dict[str, Arr]) -> list[Arr]:
        scope = _Scope(g, self, parent, values)
        dead = _dead_after(g)
        for i, node in enumerate(g.nodes):
            outs = self.run_node(node, scope)
            for name, val in zip(node.outputs, outs, strict=False):
                if name:
                    values[name] = val
            for name in dead[i]:
                values.pop(name, None)
        return [scope.get(v.name, Node("<output>", "", [], [])) for v in g.outputs]

    def run_node(self, node: Node, scope: _Scope) -> Sequence[Arr]:
        plain = node.domain in ("", "ai.onnx")
        fn = OPS.get(node.op) if plain else None
        if fn is None and not (plain and node.op == "If"):
            op = f"{node.domain}:{node.op}" if node.domain else node.op
            raise UnsupportedError(
                f"cannot execute op {op} (node {node.name}); it is kept in written files "
                "but the reference executor does not run it",
                path=self.path,
            )
        if plain and node.op == "Dense":
            y = self.compressed_dense(node, scope)
            if y is not None:
                return (y,)
        ins = [scope.get(i, node) if i else None for i in node.inputs]
        attrs = node.attrs
        if node.op == "Split" and "num_outputs" not in attrs:  # opset < 18: as many parts as outputs
            attrs = {**attrs, "num_outputs": len(node.outputs)}
        out = self.run_if(node, ins, scope) if fn is None else self.call(fn, node, ins, attrs)
        outs = out if isinstance(out, (tuple, list)) else (out,)
        if any(node.outputs[len(outs) :]):
            raise UnsupportedError(
                f"node {node.name}: {node.op} output {node.outputs[len(outs)]!r} is not computed "
                "by the reference executor",
                path=self.path,
            )
        return outs

    def compressed_dense(self, node: Node, scope: _Scope) -> Arr | None:
        """A Dense node whose kernel is compressed with a fast product of its own (``dot``, the
        native kernels): computed on the compressed data, without decoding the matrix (a VGG16's
        first Dense layer is 411 MB dense)."""
        name = node.inputs[1] if len(node.inputs) > 1 else ""
        w = scope.graph.weights.get(name) if name not in scope.values else None
        if w is None or not w.is_compressed or len(w.shape) != 2:
            return None
        dot = getattr(w.value, "dot", None)
        if dot is None:
            return None
        x = scope.get(node.inputs[0], node)
        if x.ndim != 2 or x.shape[1] != w.shape[1] or x.dtype != np.float32:
            return None
        y = dot(x)
        if y is None:
            return None
        b = scope.get(node.inputs[2], node) if len(node.inputs) > 2 and node.inputs[2] else None
        return y if b is None else y + b.astype(y.dtype, copy=False)

    def call(self, fn: OpFn, node: Node, ins: Ins, attrs: Attrs) -> Result:
        """Run one op, turning numpy's complaints into one-line errors that name the node."""
        try:
            return fn(ins, attrs)
        except UnsupportedError as e:
            raise UnsupportedError(f"node {node.name}: {e.detail}", path=self.path, hint=e.hint) from e
        except KeyError as e:
            raise InputError(
                f"node {node.name!r} ({node.op}) lacks attribute {e}",
                path=self.path,
                hint="the model file is inconsistent; re-export it",
            ) from e
        except (ValueError, IndexError) as e:
            raise InputError(
                f"node {node.name!r} ({node.op}) failed: {' '.join(str(e).split())}",
                path=self.path,
                hint="check the input data's shape and the model file",
            ) from e

    def run_if(self, node: Node, ins: Ins, scope: _Scope) -> list[Arr]:
        key = "then_branch" if bool(np.asarray(ins[0]).reshape(-1)[0]) else "else_branch"
        if not isinstance(node.attrs.get(key), Graph):
            raise InputError(f"node {node.name!r} (If) has no {key} graph", path=self.path)
        return self.run_graph(node.attrs[key], scope, {})


# -- geometry shared by Conv, ConvTranspose and the pools ------------------------------------------


def _ints(a: Attrs, key: str, n: int, default: int) -> list[int]:
    v = a.get(key)
    return [int(i) for i in v] if v is not None and len(v) else [default] * n


def _pads(a: Attrs, size: Sequence[int], kern: Sequence[int]) -> tuple[list[int], ...]:
    """(pads_begin, pads_end, strides, dilations) for a window op over spatial ``size``."""
    n = len(size)
    s, d = _ints(a, "strides", n, 1), _ints(a, "dilations", n, 1)
    auto = a.get("auto_pad", "NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else str(auto)
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        total = [
            max((-(-i // si) - 1) * si + (k - 1) * di + 1 - i, 0)
            for i, k, si, di in zip(size, kern, s, d, strict=True)
        ]
        small = [t // 2 for t in total]
        big = [t - t // 2 for t in total]
        return (small, big, s, d) if auto == "SAME_UPPER" else (big, small, s, d)
    if auto == "VALID":
        return [0] * n, [0] * n, s, d
    p = _ints(a, "pads", 2 * n, 0)
    return p[:n], p[n:], s, d


def _out_sizes(size: Sequence[int], geo: tuple[list[int], ...], kern: Sequence[int], ceil: bool) -> list[int]:
    """Output lengths of a window op; ``geo`` is what `_pads` returns."""
    out = []
    for i, pb, pe, s, d, k in zip(size, *geo, kern, strict=True):
        span = i + pb + pe - (k - 1) * d - 1
        o = -(-span // s) + 1 if ceil else span // s + 1
        out.append(o - 1 if ceil and (o - 1) * s >= i + pb else o)  # no window may start in the end pad
    return out


def _pad(x: Arr, pb: Sequence[int], pe: Sequence[int], value: float) -> Arr:
    if not any(pb) and not any(pe):
        return x
    widths = [(0, 0)] * (x.ndim - len(pb)) + list(zip(pb, pe, strict=True))
    return np.pad(x, widths, constant_values=value)


def _windows(xp: Arr, kern: Sequence[int], s: Sequence[int], d: Sequence[int], out: Sequence[int]) -> Arr:
    """A strided view (N, C, *out, *kern) of every window of the padded input."""
    n = len(kern)
    eff = [(k - 1) * di + 1 for k, di in zip(kern, d, strict=True)]
    v = sliding_window_view(xp, eff, axis=tuple(range(2, 2 + n)))
    idx = [slice(0, (o - 1) * si + 1, si) for o, si in zip(out, s, strict=True)]
    key = (slice(None), slice(None), *idx, *(slice(None, None, di) for di in d))
    return v[key]


# -- convolutions ----------------------------------------------------------------------------------


_IM2COL_BYTES = 1 << 26  # above this a conv runs in slices of the batch, then of output rows


def _conv(ins: Ins, a: Attrs) -> Arr:
    x, w = ins[0], ins[1].astype(ins[0].dtype, copy=False)
    g, kern = int(a.get("group", 1)), w.shape[2:]
    geo = pb, pe, s, d = _pads(a, x.shape[2:], kern)
    out = _out_sizes(x.shape[2:], geo, kern, ceil=False)
    n, c, m, nk = x.shape[0], x.shape[1], w.shape[0], len(kern)
    per = math.prod(out) * c * math.prod(kern) * x.dtype.itemsize  # im2col bytes of one sample
    if n > 1 and n * per > _IM2COL_BYTES:
        step = max(1, _IM2COL_BYTES // max(1, per))
        return np.concatenate([_conv([x[i : i + step], *ins[1:]], a) for i in range(0, n, step)])
    xp = _pad(x, pb, pe, 0)
    win = _windows(xp, kern, s, d, out).reshape(n, g, c // g, *out, *kern)
    wm = w.reshape(g, m // g, -1).transpose(0, 2, 1)
    # One sample's im2col can pass the budget too (VGG16's conv2: 115 MB): then bands of output rows.
    band = out[0] if per <= _IM2COL_BYTES else max(1, out[0] * _IM2COL_BYTES // per)
    axes = (1, 0, *range(3, 3 + nk), 2, *range(3 + nk, 3 + 2 * nk))
    ys = []
    for r in range(0, out[0], band):
        part = win[:, :, :, r : r + band]
        sub = (part.shape[3], *out[1:])
        # im2col: rows are (sample, output position), columns (channel, kernel tap), one matmul per group
        cols = part.transpose(axes).reshape(g, n * math.prod(sub), -1)
        y = cols @ wm  # (g, n*P, m/g)
        ys.append(
            y.reshape(g, n, *sub, m // g).transpose(1, 0, 2 + nk, *range(2, 2 + nk)).reshape(n, m, *sub)
        )
    y = ys[0] if len(ys) == 1 else np.concatenate(ys, axis=2)
    return _bias(np.ascontiguousarray(y), ins[2] if len(ins) > 2 else None)


def _bias(y: Arr, b: Arr | None) -> Arr:
    return y if b is None else y + b.astype(y.dtype, copy=False).reshape(-1, *[1] * (y.ndim - 2))


def _conv_transpose(ins: Ins, a: Attrs) -> Arr:
    x, w = ins[0], ins[1].astype(ins[0].dtype, copy=False)
    g, kern, size = int(a.get("group", 1)), w.shape[2:], x.shape[2:]
    n, c, og, nk = x.shape[0], x.shape[1], w.shape[1], len(kern)
    s, d = _ints(a, "strides", nk, 1), _ints(a, "dilations", nk, 1)
    opad = _ints(a, "output_padding", nk, 0)
    full = [
        (i - 1) * si + (k - 1) * di + 1 + op for i, si, k, di, op in zip(size, s, kern, d, opad, strict=True)
    ]
    pb, pe = _transpose_pads(a, size, s, full)
    xg = x.reshape(n, g, c // g, -1).transpose(1, 0, 3, 2)  # (g, n, P, c/g)
    cols = xg @ w.reshape(g, 1, c // g, -1)  # (g, n, P, og*K)
    cols = cols.reshape(g, n, *size, og, *kern)
    cols = (
        np.moveaxis(cols, 2 + nk, 2).transpose(1, 0, *range(2, 3 + 2 * nk)).reshape(n, g * og, *size, *kern)
    )
    buf = np.zeros((n, g * og, *full), x.dtype)
    # col2im: one strided add per kernel tap, never a loop over pixels
    for tap in itertools.product(*(range(k) for k in kern)):
        at = [
            slice(t * di, t * di + (i - 1) * si + 1, si) for t, di, i, si in zip(tap, d, size, s, strict=True)
        ]
        dst, src = (slice(None), slice(None), *at), (Ellipsis, *tap)
        buf[dst] += cols[src]
    crop = (slice(None), slice(None), *(slice(b, f - e) for b, e, f in zip(pb, pe, full, strict=True)))
    return _bias(np.ascontiguousarray(buf[crop]), ins[2] if len(ins) > 2 else None)


def _transpose_pads(
    a: Attrs, size: Sequence[int], s: Sequence[int], full: Sequence[int]
) -> tuple[list[int], list[int]]:
    nk = len(size)
    auto = a.get("auto_pad", "NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else str(auto)
    want = a.get("output_shape")
    if want is None and auto in ("SAME_UPPER", "SAME_LOWER"):
        want = [i * si for i, si in zip(size, s, strict=True)]
    if want is None:
        p = _ints(a, "pads", 2 * nk, 0)
        return p[:nk], p[nk:]
    total = [f - int(o) for f, o in zip(full, list(want)[-nk:], strict=True)]
    half, rest = [t // 2 for t in total], [t - t // 2 for t in total]
    return (half, rest) if auto == "SAME_UPPER" else (rest, half)


# -- pools -----------------------------------------------------------------------------------------


def _pool_geometry(x: Arr, a: Attrs) -> tuple[list[int], ...]:
    kern = [int(k) for k in a["kernel_shape"]]
    ceil = bool(a.get("ceil_mode", 0))
    geo = pb, pe, s, d = _pads(a, x.shape[2:], kern)
    out = _out_sizes(x.shape[2:], geo, kern, ceil)
    # ceil_mode can make the last window run past the end padding: pad that far too
    extra = [
        max(0, (o - 1) * si + (k - 1) * di + 1 - (i + b + e))
        for o, si, k, di, i, b, e in zip(out, s, kern, d, x.shape[2:], pb, pe, strict=True)
    ]
    return kern, pb, pe, s, d, out, extra


def _max_pool(ins: Ins, a: Attrs) -> Arr:
    x = ins[0]
    kern, pb, pe, s, d, out, extra = _pool_geometry(x, a)
    low = -np.inf if np.issubdtype(x.dtype, np.floating) else np.iinfo(x.dtype).min
    xp = _pad(x, pb, [e + x_ for e, x_ in zip(pe, extra, strict=True)], low)
    win = _windows(xp, kern, s, d, out)
    return win.max(axis=tuple(range(-len(kern), 0)))


def _avg_pool(ins: Ins, a: Attrs) -> Arr:
    x = ins[0]
    kern, pb, pe, s, d, out, extra = _pool_geometry(x, a)
    ends = [e + x_ for e, x_ in zip(pe, extra, strict=True)]
    axes = tuple(range(-len(kern), 0))
    total = _windows(_pad(x, pb, ends, 0), kern, s, d, out).sum(axis=axes)
    # the divisor counts real cells, plus the explicit pads when count_include_pad, never the ceil overrun
    ones = np.ones((1, 1, *x.shape[2:]), x.dtype)
    if a.get("count_include_pad", 0):
        ones = _pad(ones, pb, pe, 1)
        mask = _pad(ones, [0] * len(kern), extra, 0)
    else:
        mask = _pad(ones, pb, ends, 0)
    count = _windows(mask, kern, s, d, out).sum(axis=axes)
    return (total / count).astype(x.dtype, copy=False)


def _global(reduce: Callable[..., Arr]) -> OpFn:
    return lambda ins, a: reduce(ins[0], axis=tuple(range(2, ins[0].ndim)), keepdims=True)


# -- dense algebra and normalisation ---------------------------------------------------------------


def _dense(ins: Ins, a: Attrs) -> Arr:
    x = ins[0]
    y = x @ ins[1].astype(x.dtype, copy=False).T
    return y if len(ins) < 3 or ins[2] is None else y + ins[2].astype(x.dtype, copy=False)


def _gemm(ins: Ins, a: Attrs) -> Arr:
    A = ins[0].T if a.get("transA", 0) else ins[0]
    B = ins[1].T if a.get("transB", 0) else ins[1]
    y = float(a.get("alpha", 1.0)) * (A @ B.astype(A.dtype, copy=False))
    if len(ins) > 2 and ins[2] is not None:
        y = y + float(a.get("beta", 1.0)) * ins[2]
    return y.astype(A.dtype, copy=False)


def _batch_norm(ins: Ins, a: Attrs) -> Arr:
    x, scale, bias, mean, var = ins[:5]
    shape = (1, -1, *[1] * (x.ndim - 2))
    k = (scale / np.sqrt(var + float(a.get("epsilon", 1e-5)))).astype(x.dtype, copy=False)
    return (x - mean.reshape(shape)) * k.reshape(shape) + bias.reshape(shape).astype(x.dtype, copy=False)


# -- activations -----------------------------------------------------------------------------------


def _unary(fn: Callable[[Arr], Arr]) -> OpFn:
    return lambda ins, a: fn(ins[0])


def _sigmoid(x: Arr) -> Arr:
    with np.errstate(over="ignore"):
        return 1 / (1 + np.exp(-x))


def _erf(x: Arr) -> Arr:
    from scipy.special import erf  # lazy: keeps `import nncompress` fast

    return erf(x).astype(x.dtype, copy=False)


def _gelu(ins: Ins, a: Attrs) -> Arr:
    x = ins[0]
    if a.get("approximate", "none") in ("tanh", b"tanh"):
        return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))
    return 0.5 * x * (1 + _erf(x / math.sqrt(2)))


def _elu(ins: Ins, a: Attrs) -> Arr:
    x, alpha = ins[0], float(a.get("alpha", 1.0))
    with np.errstate(over="ignore"):
        return np.where(x > 0, x, alpha * (np.exp(x) - 1)).astype(x.dtype, copy=False)


def _selu(ins: Ins, a: Attrs) -> Arr:
    alpha = float(a.get("alpha", 1.67326319217681884765625))
    gamma = float(a.get("gamma", 1.05070102214813232421875))
    return (gamma * _elu(ins, {"alpha": alpha})).astype(ins[0].dtype, copy=False)


def _clip(ins: Ins, a: Attrs) -> Arr:
    x = ins[0]
    lo = ins[1] if len(ins) > 1 and ins[1] is not None else a.get("min")
    hi = ins[2] if len(ins) > 2 and ins[2] is not None else a.get("max")
    if lo is not None:
        x = np.maximum(x, np.asarray(lo, x.dtype))
    if hi is not None:
        x = np.minimum(x, np.asarray(hi, x.dtype))
    return x


def _hard_sigmoid(ins: Ins, a: Attrs) -> Arr:
    x = ins[0]
    return np.clip(float(a.get("alpha", 0.2)) * x + float(a.get("beta", 0.5)), 0, 1).astype(
        x.dtype, copy=False
    )


def _softmax(ins: Ins, a: Attrs, log: bool = False) -> Arr:
    x = ins[0]
    if a.get("coerce_2d", 0):  # opset < 13: flatten to 2-D at axis, normalise over the whole tail
        axis = int(a.get("axis", 1)) % max(x.ndim, 1)
        flat = x.reshape(math.prod(x.shape[:axis]), -1)
        return _softmax([flat], {"axis": 1}, log).reshape(x.shape)
    axis = int(a.get("axis", -1))
    z = x - x.max(axis=axis, keepdims=True)
    if log:
        return z - np.log(np.exp(z).sum(axis=axis, keepdims=True))
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)


# -- shape and data movement -----------------------------------------------------------------------


def _arg(ins: Ins, i: int, a: Attrs, key: str) -> list[int] | None:
    """An int list given as input ``i`` (newer opsets) or as attribute ``key`` (older ones)."""
    if len(ins) > i and ins[i] is not None:
        return [int(v) for v in np.asarray(ins[i]).reshape(-1)]
    v = a.get(key)
    return None if v is None else [int(i) for i in np.asarray(v).reshape(-1)]


def _reshape(ins: Ins, a: Attrs) -> Arr:
    x, shape = ins[0], _arg(ins, 1, a, "shape") or []
    if not a.get("allowzero", 0):
        shape = [x.shape[i] if v == 0 else v for i, v in enumerate(shape)]
    return x.reshape(shape)


def _flatten(ins: Ins, a: Attrs) -> Arr:
    x = ins[0]
    axis = int(a.get("axis", 1))
    axis = axis + x.ndim if axis < 0 else axis
    return x.reshape(math.prod(x.shape[:axis]), math.prod(x.shape[axis:]))


def _squeeze(ins: Ins, a: Attrs) -> Arr:
    axes = _arg(ins, 1, a, "axes")
    return np.squeeze(ins[0], axis=None if axes is None else tuple(axes))


def _unsqueeze(ins: Ins, a: Attrs) -> Arr:
    x, axes = ins[0], _arg(ins, 1, a, "axes") or []
    rank = x.ndim + len(axes)
    return np.expand_dims(x, tuple(sorted(ax % rank for ax in axes)))


def _transpose(ins: Ins, a: Attrs) -> Arr:
    perm = a.get("perm")
    return np.transpose(ins[0], None if perm is None else [int(p) for p in perm])


def _gather(ins: Ins, a: Attrs) -> Arr:
    return np.take(ins[0], ins[1].astype(np.int64, copy=False), axis=int(a.get("axis", 0)))


def _shape(ins: Ins, a: Attrs) -> Arr:
    start, end = int(a.get("start", 0)), a.get("end")
    return np.array(ins[0].shape[start : None if end is None else int(end)], np.int64)


# ONNX TensorProto.DataType values -> numpy (bfloat16 and the float8 types have no numpy dtype)
_ONNX_DTYPES: dict[int, type] = {
    1: np.float32, 2: np.uint8, 3: np.int8, 4: np.uint16, 5: np.int16, 6: np.int32, 7: np.int64,
    9: np.bool_, 10: np.float16, 11: np.float64, 12: np.uint32, 13: np.uint64,
}  # fmt: skip


def _cast(ins: Ins, a: Attrs) -> Arr:
    to = int(a["to"])
    if to not in _ONNX_DTYPES:
        raise UnsupportedError(f"Cast to ONNX data type {to} is not supported by the reference executor")
    return ins[0].astype(_ONNX_DTYPES[to])


def _reduce(fn: Callable[..., Arr]) -> OpFn:
    def op(ins: Ins, a: Attrs) -> Arr:
        axes = _arg(ins, 1, a, "axes")
        if not axes and a.get("noop_with_empty_axes", 0):
            return ins[0]
        return fn(ins[0], axis=tuple(axes) if axes else None, keepdims=bool(a.get("keepdims", 1)))

    return op


def _constant(ins: Ins, a: Attrs) -> Arr:
    for key, dtype in (("value", None), ("value_float", np.float32), ("value_floats", np.float32)):
        if key in a:
            return np.asarray(a[key], dtype)
    for key in ("value_int", "value_ints"):
        if key in a:
            return np.asarray(a[key], np.int64)
    raise ValueError("Constant without a value attribute")


def _dropout(ins: Ins, a: Attrs) -> tuple[Arr, ...]:
    return ins[0], np.ones(ins[0].shape, np.bool_)


def _slice(ins: Ins, a: Attrs) -> Arr:
    x = ins[0]
    starts, ends = _arg(ins, 1, a, "starts") or [], _arg(ins, 2, a, "ends") or []
    axes = _arg(ins, 3, a, "axes") or list(range(len(starts)))
    steps = _arg(ins, 4, a, "steps") or [1] * len(starts)
    idx = [slice(None)] * x.ndim
    # Python's slice clamping matches ONNX's for every sign of start, end and step
    for st, en, ax, sp in zip(starts, ends, axes, steps, strict=True):
        idx[ax % x.ndim] = slice(st, en, sp)
    return x[tuple(idx)]


_PAD_MODES: dict[str, Literal["edge", "reflect", "wrap"]] = {
    "edge": "edge",
    "reflect": "reflect",
    "wrap": "wrap",
}


def _pad_op(ins: Ins, a: Attrs) -> Arr:
    x, pads = ins[0], _arg(ins, 1, a, "pads") or []
    mode = a.get("mode", "constant")
    mode = mode.decode() if isinstance(mode, bytes) else str(mode)
    value = ins[2] if len(ins) > 2 and ins[2] is not None else a.get("value", 0)
    axes = _arg(ins, 3, a, "axes") or list(range(x.ndim))
    k = len(axes)
    begin, end = [0] * x.ndim, [0] * x.ndim
    for i, ax in enumerate(axes):
        begin[ax % x.ndim], end[ax % x.ndim] = pads[i], pads[i + k]
    widths = [(max(b, 0), max(e, 0)) for b, e in zip(begin, end, strict=True)]
    if mode == "constant":
        y = np.pad(x, widths, constant_values=np.asarray(value, x.dtype).item())
    elif mode in _PAD_MODES:
        y = np.pad(x, widths, mode=_PAD_MODES[mode])
    else:
        raise ValueError(f"unknown Pad mode {mode!r}")
    crop = tuple(
        slice(-min(b, 0), y.shape[i] + min(e, 0)) for i, (b, e) in enumerate(zip(begin, end, strict=True))
    )
    return y[crop]  # negative pads crop


def _split(ins: Ins, a: Attrs) -> tuple[Arr, ...]:
    x, axis = ins[0], int(a.get("axis", 0))
    sizes = _arg(ins, 1, a, "split")
    if not sizes:
        n = int(a["num_outputs"])
        chunk = -(-x.shape[axis] // n)
        sizes = [min(chunk, x.shape[axis] - i * chunk) for i in range(n)]
    return tuple(np.split(x, np.cumsum(sizes)[:-1], axis=axis))


def _div(ins: Ins, a: Attrs) -> Arr:
    x, y = ins[0], ins[1]
    if np.issubdtype(x.dtype, np.integer) and np.issubdtype(y.dtype, np.integer):
        q = np.floor_divide(x, y)
        return q + ((np.remainder(x, y) != 0) & ((x < 0) != (y < 0)))  # C truncation, as ONNX
    return x / y


def _binary(fn: Callable[[Arr, Arr], Arr]) -> OpFn:
    return lambda ins, a: fn(ins[0], ins[1])


def _variadic(fn: Callable[[Arr, Arr], Arr]) -> OpFn:
    return lambda ins, a: functools.reduce(fn, [i for i in ins if i is not None])


OPS: dict[str, OpFn] = {
    "Dense": _dense,
    "MatMul": _binary(np.matmul),
    "Gemm": _gemm,
    "Conv": _conv,
    "ConvTranspose": _conv_transpose,
    "BatchNormalization": _batch_norm,
    "Relu": _unary(lambda x: np.maximum(x, 0)),
    "Sigmoid": _unary(_sigmoid),
    "Tanh": _unary(np.tanh),
    "Exp": _unary(np.exp),
    "Log": _unary(np.log),
    "Sqrt": _unary(np.sqrt),
    "Abs": _unary(np.abs),
    "Neg": _unary(np.negative),
    "Reciprocal": _unary(np.reciprocal),
    "Floor": _unary(np.floor),
    "Ceil": _unary(np.ceil),
    "Not": _unary(np.logical_not),
    "Erf": _unary(_erf),
    "Softplus": _unary(lambda x: np.logaddexp(x, 0).astype(x.dtype, copy=False)),
    "Softsign": _unary(lambda x: x / (1 + np.abs(x))),
    "Identity": _unary(lambda x: x),
    "Dropout": _dropout,
    "LeakyRelu": lambda ins, a: np.where(ins[0] >= 0, ins[0], float(a.get("alpha", 0.01)) * ins[0]),
    "PRelu": lambda ins, a: np.where(ins[0] >= 0, ins[0], ins[1].astype(ins[0].dtype, copy=False) * ins[0]),
    "Elu": _elu,
    "Selu": _selu,
    "Gelu": _gelu,
    "Clip": _clip,
    "HardSigmoid": _hard_sigmoid,
    "HardSwish": lambda ins, a: ins[0] * np.clip(ins[0] / 6 + 0.5, 0, 1),
    "Softmax": _softmax,
    "LogSoftmax": functools.partial(_softmax, log=True),
    "MaxPool": _max_pool,
    "AveragePool": _avg_pool,
    "GlobalAveragePool": _global(np.mean),
    "GlobalMaxPool": _global(np.max),
    "Flatten": _flatten,
    "Reshape": _reshape,
    "Transpose": _transpose,
    "Squeeze": _squeeze,
    "Unsqueeze": _unsqueeze,
    "Concat": lambda ins, a: np.concatenate([i for i in ins if i is not None], axis=int(a.get("axis", 0))),
    "Add": _binary(np.add),
    "Sub": _binary(np.subtract),
    "Mul": _binary(np.multiply),
    "Div": _div,
    "Pow": lambda ins, a: np.power(ins[0], ins[1]).astype(ins[0].dtype, copy=False),
    "Min": _variadic(np.minimum),
    "Max": _variadic(np.maximum),
    "Sum": _variadic(np.add),
    "Mean": lambda ins, a: np.mean(np.broadcast_arrays(*[i for i in ins if i is not None]), axis=0),
    "Where": lambda ins, a: np.where(ins[0].astype(bool), ins[1], ins[2]),
    "Equal": _binary(np.equal),
    "Less": _binary(np.less),
    "LessOrEqual": _binary(np.less_equal),
    "Greater": _binary(np.greater),
    "GreaterOrEqual": _binary(np.greater_equal),
    "And": _binary(np.logical_and),
    "Or": _binary(np.logical_or),
    "Gather": _gather,
    "Shape": _shape,
    "Cast": _cast,
    "ReduceMean": _reduce(np.mean),
    "ReduceSum": _reduce(np.sum),
    "ReduceMax": _reduce(np.max),
    "ReduceMin": _reduce(np.min),
    "Constant": _constant,
    "Expand": lambda ins, a: np.broadcast_to(
        ins[0], np.broadcast_shapes(ins[0].shape, tuple(int(v) for v in ins[1]))
    ).copy(),
    "Tile": lambda ins, a: np.tile(ins[0], [int(v) for v in ins[1]]),
    "Slice": _slice,
    "Pad": _pad_op,
    "Split": _split,
}
