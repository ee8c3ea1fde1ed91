"""The numpy reference executor: runs a `Graph` on data with ONNX semantics (ops: docs/ir.md).

It is the yardstick for fidelity figures, so it favours clarity and exactness over speed, but
convolutions and pools go through im2col (one strided view and one matmul) so that a small CNN
runs on a few thousand images in seconds. Float math runs in float32, or in float64 when a graph
input is declared float64; floating weights are cast to that dtype once per run.

This module is the run loop: inputs, batching, value lifetimes, subgraphs and the compressed Dense
path; the ops themselves are in `nncompress.ir.ops`, one module per family.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from nncompress.errors import InputError, UnsupportedError
from nncompress.ir.graph import Graph, Node, ValueInfo
from nncompress.ir.ops import OPS, Arr, Attrs, Ins, OpFn, Result

__all__ = ["run"]


Observer = Callable[[Node, list[Arr | None]], None]


def run(
    graph: Graph,
    inputs: Arr | dict[str, Arr],
    *,
    batch_size: int | None = 256,
    observe: Observer | None = None,
) -> list[np.ndarray]:
    """Run ``graph`` on ``inputs`` and return its outputs in ``graph.outputs`` order. ``observe``,
    if given, sees each node and its inputs before the node runs (a calibration's statistics of
    what layers are fed); a batch the run retries at another size is seen again."""
    if not graph.has_graph:
        raise UnsupportedError(
            "this is a weights-only file: there is no graph to run",
            path=graph.meta.path or None,
            hint="load the full model file (architecture and weights) to measure fidelity",
        )
    feeds = _prepare_inputs(graph, inputs)
    floats = [v.dtype for v in feeds.values() if np.issubdtype(v.dtype, np.floating)]
    dtype = np.dtype(np.float64) if np.dtype(np.float64) in floats else np.dtype(np.float32)
    runner = _Runner(graph, dtype, observe)
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
    def __init__(self, graph: Graph, dtype: np.dtype[Any], observe: Observer | None = None) -> None:
        self.graph, self.dtype, self.observe = graph, dtype, observe
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
        if plain and node.op == "Dense" and self.observe is None:
            y = self.compressed_dense(node, scope)
            if y is not None:
                return (y,)
        ins = [scope.get(i, node) if i else None for i in node.inputs]
        if self.observe is not None:
            self.observe(node, ins)
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
