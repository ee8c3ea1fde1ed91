"""Run a plan over a graph: the passes, then each selected weight's final step, one weight at a time.

``compress_graph`` returns the graph the model now is (compressed slots hold `Shaped` formats), the
tensors the artifact stores, and one report row per selected weight. Every other tensor is kept as
it is; integer weights are coded losslessly; tensors identical to an earlier one are stored once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import numpy as np

from nncompress.artifact import TensorEntry
from nncompress.errors import UsageError
from nncompress.formats import FORMATS, Format
from nncompress.formats.shaped import Shaped, as_matrix2d, matrix_shape
from nncompress.ir import Graph, Weight
from nncompress.passes import run_pipeline
from nncompress.passes._infra import Source, pipeline_blocks, pipeline_per_weight
from nncompress.pipeline.recipe import Plan, Recipe
from nncompress.pipeline.report import layer_row
from nncompress.progress import SILENT, Progress

RAW = "array"  # storage of a tensor kept as it is (biases, BatchNorm statistics, int buffers)
ALIAS = "alias"  # a tensor identical to an earlier one (tied weights), stored once: meta {"of": name}
# Integer weights (an already-quantized graph's int8 kernels) are stored losslessly, whatever the
# recipe: pruning and k-means are for floats, and a quantized model's integers are its weights.
# `ham` codes every entry over a codebook of the exact distinct values; its float32 codebook holds
# every integer of up to 24 bits exactly, so the decoded values are the original integers.
LOSSLESS_INT = "ham"
_EXACT_INT = 1 << 24  # float32 represents every integer in [-2**24, 2**24]
# ham decodes the rows of a block in lockstep, one column per step (tens of microseconds each): a
# matrix wider than this (a long 1-D integer table) would take minutes to decode, so it stays raw.
MAX_LOSSLESS_COLS = 1 << 16


def _release(w: Weight) -> None:
    """Drop ``w``'s array: a zero-stride view of zeros of its shape and dtype (no memory) is all
    the skeleton needs."""
    w.value = np.broadcast_to(np.zeros((), dtype=w.dtype), w.shape)


def _pipelines(
    graph: Graph, assigned: dict[str, Recipe], seed: int
) -> tuple[Graph, dict[str, Callable[[Weight], np.ndarray]], dict[str, Callable[[Weight], Source]]]:
    """Run or prepare each group of weights' passes (weights sharing a pass spec are one group).

    Where every step can run one weight at a time, the passes run inside the encoding loop, so
    that only one weight's pruned and quantized copies exist at once (peak memory near the model's
    size, not twice it); where every step can also run on pieces of a weight, the encoder reads
    the passes' output rows as it makes them and no copy of the weight exists at all. Otherwise
    the passes run over the whole group here. Returns the graph with the groups run here, the
    per-weight functions (streamed) and the per-weight sources (pieced).
    """
    groups: dict[str, list[str]] = {}
    for n, r in assigned.items():
        groups.setdefault(r.passes, []).append(n)
    g2 = graph.copy()
    streamed: dict[str, Callable[[Weight], np.ndarray]] = {}
    pieced: dict[str, Callable[[Weight], Source]] = {}
    for i, (passes, names) in enumerate(groups.items()):
        if not passes:
            continue
        members = frozenset(names)

        def in_group(w: Weight, m: frozenset[str] = members) -> bool:
            return w.name in m

        blocks = pipeline_blocks(graph, passes, seed=seed + i, select=in_group)
        one = pipeline_per_weight(graph, passes, seed=seed + i, select=in_group) if blocks is None else None
        if blocks is not None:
            pieced.update(dict.fromkeys(names, blocks))
        elif one is not None:
            streamed.update(dict.fromkeys(names, one))
        else:
            g2, _ = run_pipeline(g2, passes, seed=seed + i, select=in_group, detailed=False)
    return g2, streamed, pieced


def compress_graph(
    graph: Graph,
    plan: Plan,
    *,
    seed: int = 0,
    progress: Progress = SILENT,
    release: bool = False,
) -> tuple[Graph, list[TensorEntry], list[dict[str, Any]]]:
    """Run the plan; return the graph with encoded slots, the tensors to store, per-weight rows.

    ``release`` drops each original array from ``graph`` once its weight is done (see `_release`).
    A caller that needs the originals afterwards (fidelity) runs them first; the model is then
    never held twice, which is what keeps the peak memory of a VGG16 under twice its size.
    ``progress`` hears one "encoding" stage counting weights (numbers, not tensors: a VGG16's first
    dense layer is three quarters of the work).
    """
    # the stage covers the passes run whole and the search for tied tensors (hashing every
    # weight) too: both take seconds on a large model
    progress.stage("encoding", sum(w.size for w in graph.weights.values()))
    assigned = {n: r for n, w in graph.weights.items() if (r := plan.recipe_for(w)) is not None}
    lossless = {n for n, w in graph.weights.items() if n not in assigned and plan.lossless_for(w)}
    g2, streamed, pieced = _pipelines(graph, assigned, seed)
    entries: list[TensorEntry] = []
    rows: list[dict[str, Any]] = []
    twins = _twins(graph, assigned, lossless)
    if twins:
        shown = ", ".join(f"{a} = {b}" for a, b in list(twins.items())[:3]) + (
            ", ..." if len(twins) > 3 else ""
        )
        graph.meta.notes.append(f"{len(twins)} tensors identical to an earlier one are stored once ({shown})")
    for name, w in g2.weights.items():  # graph order: what the per-weight steps expect
        src = graph.weights[name]
        told = 0  # what this weight has reported already (a pieced one, row block by row block)

        def rows_done(n: int, size: int = src.size) -> None:
            nonlocal told
            n = min(n, size - told)  # whatever an encoder reads, the bar never runs past the weight
            told += n
            progress.advance(n)

        if name in twins:  # the same values as an earlier tensor: stored once, the same model value
            w.value = g2.weights[twins[name]].value
            entries.append(TensorEntry(name, ALIAS, src.shape, str(src.dtype), {"of": twins[name]}, {}))
        elif name in lossless:
            rows.append(_lossless(src, w, entries))
        else:
            row = _encode_one(
                src, w, assigned.get(name), streamed.get(name), pieced.get(name), entries, rows_done
            )
            if row is not None:
                rows.append(row)
        if release:
            _release(src)
        progress.advance(src.size - told)
    return g2, entries, rows


def _encode_one(
    src: Weight,
    w: Weight,
    recipe: Recipe | None,
    one: Callable[[Weight], np.ndarray] | None,
    piece: Callable[[Weight], Source] | None,
    entries: list[TensorEntry],
    rows_done: Callable[[int], None] | None = None,
) -> dict[str, Any] | None:
    """Store one weight by its recipe's final step (or raw); ``w`` is its slot in the output graph.

    The passes' output comes whole (``base``) or, for a pieced weight, as a source of rows the
    encoder reads as it goes (``rows_done`` hears how many entries each read covered: one layer
    of a VGG16 takes tens of seconds). Returns the report row of a selected weight.
    """
    final = (
        recipe.final if recipe is not None and src.size > 0 and recipe.final.applies_to(src.shape) else None
    )
    source = piece(src) if piece is not None else None
    base: np.ndarray | None = None
    if source is None:
        base = one(src) if one is not None else w.array
    elif final is None or final.fitted:  # a fit, or raw storage, reads the whole matrix
        base = source(0, src.size).reshape(src.shape)
    f: Format | None = None
    after: np.ndarray | Source | None = base if base is not None else source
    if final is not None:
        if base is not None:
            f = final.encode(np.ascontiguousarray(as_matrix2d(base), dtype=np.float32))
        else:
            assert source is not None
            cols = matrix_shape(src.shape)[1]

            def rows(r0: int, r1: int) -> np.ndarray:
                out = source(r0 * cols, r1 * cols).reshape(r1 - r0, cols)
                if rows_done is not None:  # ham and sham read every row twice (statistics, then codes)
                    rows_done((r1 - r0) * cols // 2)
                return out

            f = final.encode_rows(src.shape, rows)
        if f.nbytes >= src.array.nbytes:
            f = None  # the format would not save bytes on this tensor: keep it as it is
        elif final.fitted:
            after = f.to_dense().reshape(src.shape)  # the approximation is what the model gets
    if f is None:
        if base is None:
            assert source is not None
            base = after = source(0, src.size).reshape(src.shape)
        stored = base.astype(src.dtype, copy=False)
        w.value = stored
        entries.append(TensorEntry(src.name, RAW, src.shape, str(src.dtype), {}, {"values": stored}))
        fmt, payload, k = RAW, stored.nbytes, None
    else:
        # A streamed weight's dense copy is dropped once its row is made: fidelity decodes it
        # again, one layer at a time.
        keep = after if (one is None and source is None) or (final is not None and final.fitted) else None
        w.value = Shaped(f, src.shape, keep if isinstance(keep, np.ndarray) else None)
        entries.append(TensorEntry(src.name, f.name, src.shape, str(src.dtype), f.meta(), f.arrays()))
        fmt, payload, k = f.name, f.nbytes, f.meta().get("k")
    if recipe is None:
        return None
    assert after is not None
    return layer_row(src, after, fmt, payload, k)


def _twins(graph: Graph, assigned: dict[str, Recipe], lossless: set[str]) -> dict[str, str]:
    """Weights byte-identical to an earlier one with the same recipe (tied embeddings and heads,
    tensors two state_dict names share), mapped to that first one: an artifact stores them once."""
    first: dict[tuple[Any, ...], str] = {}
    out: dict[str, str] = {}
    for name, w in graph.weights.items():
        if w.is_compressed or w.size < 16:
            continue
        a = np.ascontiguousarray(w.array)
        key = (
            a.shape,
            a.dtype.str,
            id(assigned.get(name)),
            name in lossless,
            hashlib.blake2b(a.data).digest(),
        )
        other = first.setdefault(key, name)
        if other != name and np.array_equal(graph.weights[other].array, a):
            out[name] = other
    return out


def _lossless(src: Weight, w: Weight, entries: list[TensorEntry]) -> dict[str, Any]:
    """Store the integer weight ``src`` as `LOSSLESS_INT` where that saves bytes, else raw; its report row.

    ``w`` is its slot in the output graph; the entry goes to ``entries``.
    """
    a = src.array
    m = matrix_shape(src.shape)
    f: Format | None = None
    exact = a.dtype.itemsize < 4 or (int(a.min()) >= -_EXACT_INT and int(a.max()) <= _EXACT_INT)
    if a.size and m[1] <= MAX_LOSSLESS_COLS and exact:
        flat = a.reshape(-1)
        try:
            f = FORMATS[LOSSLESS_INT].encode_rows(
                m, lambda r0, r1: flat[r0 * m[1] : r1 * m[1]].reshape(r1 - r0, m[1]).astype(np.float32)
            )
        except UsageError:  # more distinct values than a codebook holds (a wide int32 table)
            f = None
        if f is not None and f.nbytes >= a.nbytes:
            f = None  # the format would not save bytes on this tensor: keep it as it is
    if f is None:
        stored = np.ascontiguousarray(a)
        w.value = stored
        entries.append(TensorEntry(src.name, RAW, src.shape, str(src.dtype), {}, {"values": stored}))
        return layer_row(src, a, RAW, stored.nbytes, None)
    # No dense copy is kept: the original may be released, and fidelity decodes it again.
    w.value = Shaped(f, src.shape, None, src.dtype)
    entries.append(TensorEntry(src.name, LOSSLESS_INT, src.shape, str(src.dtype), f.meta(), f.arrays()))
    return layer_row(src, a, LOSSLESS_INT, f.nbytes, f.meta()["k"])


def approximate(
    graph: Graph, name: str, recipe: Recipe, *, seed: int = 0, encode: bool = True
) -> tuple[np.ndarray, int]:
    """What the model gets for weight ``name`` under ``recipe`` alone, and the payload bytes it is
    stored in: the sensitivity and budget searches try settings one tensor at a time with this.

    The same steps as `compress_graph` (a recipe whose format saves nothing on the tensor keeps it
    raw, at its own size); ``graph`` is not changed. Without ``encode``, a recipe ending in an exact
    storage format stops after its passes (what the model gets is their output) and the bytes are 0.
    """
    src = graph.weights[name]

    def only(w: Weight) -> bool:
        return w.name == name

    slot = Weight(name, src.value, src.layer, src.role, src.op)
    if recipe.passes:
        one = pipeline_per_weight(graph, recipe.passes, seed=seed, select=only)
        if one is not None:
            slot.value = one(src)
        else:  # a step needs its whole group at once: here the group is this one weight
            g2, _ = run_pipeline(graph.copy(), recipe.passes, seed=seed, select=only, detailed=False)
            slot.value = g2.weights[name].value
    if not encode and not recipe.final.fitted and isinstance(slot.value, np.ndarray):
        return np.asarray(slot.value, dtype=src.dtype).reshape(src.shape), 0
    entries: list[TensorEntry] = []
    # the passes' output is the slot's value: the encoder keeps it as the dense copy (no decode)
    _encode_one(src, slot, recipe, None, None, entries)
    v = slot.value
    dense = v if isinstance(v, np.ndarray) else v.to_dense()
    return np.asarray(dense, dtype=src.dtype).reshape(src.shape), entries[0].payload_bytes
