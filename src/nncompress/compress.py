"""Compress a loaded model into a `.nnc` artifact, and rebuild a model from one.

``compress()`` runs the pass pipeline (prune, quantize...) on the selected weights, encodes each of
them in the chosen format (csr, im, ham, sham...), keeps every other tensor as it is, and stores a
skeleton of the source file (all weights zeroed) so that ``decompress()`` can rebuild a runnable
model in the source format with the writers of io/.
"""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nncompress._tempfiles import temp_dir
from nncompress.artifact import Artifact, TensorEntry, read_artifact
from nncompress.errors import InputError, UsageError
from nncompress.formats import FORMATS, LOSSY, Format, load_format
from nncompress.ir import Graph, Weight
from nncompress.passes import PASSES, default_select, parse_pipeline, run_pipeline
from nncompress.passes._infra import (
    MIN_ELEMENTS,
    Source,
    pipeline_blocks,
    pipeline_per_weight,
    rel_error,
)

# Preset -> (pass pipeline, storage format). The sHAM preset is Marinò et al.'s: prune, share, code.
# Pruning is global (one magnitude threshold): with no retraining, a per-layer 80 % cut ruins small
# first convolutions (vggmini.onnx: 96.5 % -> 19 % accuracy) where a global one costs < 1 point.
_PRUNE = "prune:sparsity=0.8:scope=global"
_SHARE = "quantize:method=kmeans:k=32"
PRESETS: dict[str, tuple[str, str]] = {
    "prune": (_PRUNE, "csr"),
    "csr": (_PRUNE, "csr"),
    "quantize": (_SHARE, "im"),
    "im": (_SHARE, "im"),
    "ham": (_SHARE, "ham"),
    "sham": (f"{_PRUNE},{_SHARE}", "sham"),
    "cser": (f"{_PRUNE},{_SHARE}", "cser"),
    # structured approximations at a parameter budget (--budget, default 0.1; psm 0.2)
    "lowrank": ("", "lowrank"),
    "sss": ("", "sss"),
    "dct": ("", "dct"),
    "psm": ("", "psm"),
}
# Smallest side a structured format is used on: a bias seen as (1, n), or a 3x3 first conv, would
# cost more than it saves (rank 1 of a tiny matrix is over any budget).
MIN_STRUCTURED_SIDE = 16
RAW = "array"  # storage of a tensor kept as it is (biases, BatchNorm statistics, int buffers)
ALIAS = "alias"  # a tensor identical to an earlier one (tied weights), stored once: meta {"of": name}
# Integer weights (an already-quantized graph's int8 kernels) are stored losslessly, whatever the
# recipe: pruning and k-means are for floats, and a quantized model's integers are its weights.
# `ham` codes every entry over a codebook of the exact distinct values; its float32 codebook holds
# every integer of up to 24 bits exactly, so the decoded values are the original integers.
LOSSLESS_INT = "ham"
_INT_DTYPES = frozenset(np.dtype(t) for t in (np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32))
_EXACT_INT = 1 << 24  # float32 represents every integer in [-2**24, 2**24]
# ham decodes the rows of a block in lockstep, one column per step (tens of microseconds each): a
# matrix wider than this (a long 1-D integer table) would take minutes to decode, so it stays raw.
MAX_LOSSLESS_COLS = 1 << 16


class Shaped:
    """A 2-D format seen with the weight's own shape (conv kernels are stored as (out, rest))."""

    def __init__(
        self,
        fmt: Format,
        shape: tuple[int, ...],
        dense: np.ndarray | None = None,
        dtype: np.dtype[Any] | None = None,
    ) -> None:
        self.fmt = fmt
        self._shape = tuple(shape)
        # An integer weight stored losslessly decodes to its own dtype (formats hold float32).
        self._dtype = np.dtype(np.float32) if dtype is None else np.dtype(dtype)
        # compress() already holds the exact dense array it encoded (formats are lossless, which
        # their tests check); keeping it spares a full decode when fidelity is measured.
        self._dense = dense
        self._bound: Callable[[np.ndarray], np.ndarray] | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        return self._shape

    @property
    def dtype(self) -> np.dtype[Any]:
        return self._dtype

    def to_dense(self) -> np.ndarray:
        if self._dense is not None:
            return self._dense
        return self.fmt.to_dense().reshape(self._shape).astype(self._dtype, copy=False)

    def dot(self, x: np.ndarray) -> np.ndarray | None:
        """``x @ W.T`` by the format's native kernel, for the executor; None where there is none
        (or the dense copy is at hand), and the executor decodes instead."""
        from nncompress import native

        if self._dense is not None or len(self._shape) != 2 or not native.supports(self.fmt.name):
            return None
        if self._dtype.kind != "f":  # integer arithmetic (MatMulInteger) is the executor's, on the values
            return None
        if self._bound is None:  # the arrays are converted once, not on every batch
            self._bound = native.bind(self.fmt)
        return self._bound(x)


@dataclass
class Recipe:
    """What to do: the pass steps and the storage format, and where they came from."""

    passes: str
    format: str
    origin: dict[str, Any] = field(default_factory=dict)
    format_params: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        d = {"passes": self.passes, "format": self.format, **self.origin}
        if self.format_params:
            d["format_params"] = self.format_params
        return d


def _value(raw: str) -> Any:
    for conv in (int, float):
        try:
            return conv(raw)
        except ValueError:
            pass
    return raw


def _format_step(step: str) -> tuple[str, dict[str, Any]]:
    """``lowrank:budget=0.05`` -> ("lowrank", {"budget": 0.05})."""
    name, *tokens = (t.strip() for t in step.split(":"))
    params: dict[str, Any] = {}
    for tok in tokens:
        key, eq, raw = (x.strip() for x in tok.partition("="))
        if not eq or not key or not raw:
            raise UsageError(f"bad option {tok!r} in storage step {step!r}: expected key=value")
        params[key] = _value(raw)
    return name, params


def recipe_from(method: str | None, pipeline: str | None, budget: float | None = None) -> Recipe:
    """A recipe from ``--method PRESET`` or ``--pipeline "prune:...,quantize:...,sham"``.

    ``budget`` (share of the original parameters) goes to a structured storage format
    (lowrank, sss, dct, psm) unless its step sets one.
    """
    r = _recipe_from(method, pipeline)
    if budget is not None:
        if not 0 < budget <= 1:
            raise UsageError(f"--budget must be in (0, 1], got {budget}")
        if r.format not in LOSSY:
            raise UsageError(
                f"--budget applies to the structured formats ({', '.join(LOSSY)}), not {r.format!r}",
                hint="Use sparsity= or k= options of the passes instead",
            )
        r.format_params.setdefault("budget", budget)
    _check_format_params(r)
    return r


def _check_format_params(r: Recipe) -> None:
    """Fail before any work on an unknown or bad storage option (encode validates its params)."""
    if r.format_params:
        probe = np.eye(MIN_STRUCTURED_SIDE, dtype=np.float32)
        FORMATS[r.format].encode(probe, **r.format_params)


def _recipe_from(method: str | None, pipeline: str | None) -> Recipe:
    if method and pipeline:
        raise UsageError("give --method or --pipeline, not both")
    if pipeline is None:
        name = method or "sham"
        if name not in PRESETS:
            raise UsageError(f"unknown method {name!r}", hint=f"Valid methods: {', '.join(PRESETS)}")
        passes, fmt = PRESETS[name]
        return Recipe(passes, fmt, {"method": name})
    steps = [s.strip() for s in pipeline.split(",") if s.strip()]
    fmt, fparams = "dense", dict[str, Any]()
    if steps and steps[-1].split(":")[0].strip() in FORMATS:
        fmt, fparams = _format_step(steps.pop())
    for s in steps:
        word = s.split(":")[0]
        if word not in PASSES:
            raise UsageError(
                f"unknown step {word!r} in --pipeline",
                hint=f"Passes: {', '.join(PASSES)}; a final storage format: {', '.join(FORMATS)}",
            )
    passes = ",".join(steps)
    if passes:
        parse_pipeline(passes)  # validate now, before any work
    return Recipe(passes, fmt, {"pipeline": pipeline}, fparams)


@dataclass
class Rule:
    """Weights a recipe applies to: a glob and/or regex on the weight or layer name, an op type."""

    recipe: Recipe | None  # None with exclude
    match: str | None = None
    regex: str | None = None
    op: str | None = None
    exclude: bool = False

    def matches(self, w: Weight) -> bool:
        names = (w.name, w.layer)
        if self.match is not None and not any(fnmatch.fnmatchcase(n, self.match) for n in names):
            return False
        if self.regex is not None and not any(re.search(self.regex, n) for n in names):
            return False
        return self.op is None or w.op == self.op


@dataclass
class Plan:
    """Ordered rules; for each weight the last matching rule wins."""

    rules: list[Rule]
    origin: dict[str, Any]

    def lossless_for(self, w: Weight) -> bool:
        """Whether ``w`` is an integer weight to store losslessly coded (see `LOSSLESS_INT`).

        Integer tensors of at least MIN_ELEMENTS entries (int8/16/32 and unsigned; never int64
        shapes and indices, nor bool) that a rule covers; an ``exclude`` rule keeps them raw.
        """
        if w.dtype not in _INT_DTYPES or w.size < MIN_ELEMENTS:
            return False
        chosen = False
        for r in self.rules:
            if r.matches(w):
                chosen = not r.exclude
        return chosen

    def recipe_for(self, w: Weight) -> Recipe | None:
        if not default_select(w):
            return None  # biases, BatchNorm statistics, constants and int tensors stay as they are
        chosen: Recipe | None = None
        for r in self.rules:
            if r.matches(w):
                chosen = None if r.exclude else r.recipe
        return chosen


def plan_from(
    method: str | None,
    pipeline: str | None,
    recipe_file: str | os.PathLike[str] | None,
    budget: float | None = None,
) -> Plan:
    """The plan of ``--method``, ``--pipeline`` or ``--recipe FILE.toml`` (one of them)."""
    if recipe_file is not None:
        if method or pipeline or budget is not None:
            raise UsageError("give --recipe alone, without --method, --pipeline or --budget")
        return plan_from_toml(recipe_file)
    r = recipe_from(method, pipeline, budget)
    return Plan([Rule(r)], r.as_dict())


_RULE_KEYS = {"match", "regex", "op", "method", "pipeline", "budget", "exclude"}


def plan_from_toml(path: str | os.PathLike[str]) -> Plan:
    """Read a recipe file: ``[[rule]]`` tables with match/regex/op and method/pipeline or exclude."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]

    p = Path(path)
    try:
        doc = tomllib.loads(p.read_text())
    except FileNotFoundError:
        raise InputError("no such recipe file", path=str(p)) from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise InputError(f"not a readable TOML recipe ({e})", path=str(p)) from None
    raw = doc.get("rule")
    if not isinstance(raw, list) or not raw:
        raise InputError(
            "a recipe needs at least one [[rule]] table", path=str(p), hint="See docs/recipes.md"
        )
    rules = []
    for i, t in enumerate(raw, 1):
        bad = set(t) - _RULE_KEYS
        if bad:
            raise InputError(
                f"rule {i} has unknown keys {sorted(bad)}",
                path=str(p),
                hint=f"Keys: {', '.join(sorted(_RULE_KEYS))}",
            )
        if "regex" in t:
            try:
                re.compile(t["regex"])
            except re.error as e:
                raise InputError(f"rule {i}: bad regex {t['regex']!r} ({e})", path=str(p)) from None
        exclude = bool(t.get("exclude", False))
        try:
            recipe = None if exclude else recipe_from(t.get("method"), t.get("pipeline"), t.get("budget"))
        except UsageError as e:
            raise InputError(f"rule {i}: {e.detail}", path=str(p), hint=e.hint) from None
        rules.append(Rule(recipe, t.get("match"), t.get("regex"), t.get("op"), exclude))
    return Plan(rules, {"recipe_file": p.name, "rule": raw})


def _matrix(w: np.ndarray) -> np.ndarray:
    return w.reshape(1, -1) if w.ndim == 1 else w.reshape(w.shape[0], -1)


def _encode(w: np.ndarray, fmt: str, params: dict[str, Any]) -> Format:
    return FORMATS[fmt].encode(np.ascontiguousarray(_matrix(w), dtype=np.float32), **params)


def compress_graph(
    graph: Graph,
    plan: Plan,
    *,
    seed: int = 0,
    on_weight: Callable[[str], None] | None = None,
    release: bool = False,
) -> tuple[Graph, list[TensorEntry], list[dict[str, Any]]]:
    """Run the plan; return the graph with encoded slots, the tensors to store, per-weight rows.

    ``release`` drops each original array from ``graph`` once its weight is done: the slot becomes
    a zero-stride view of zeros with the same shape and dtype (no memory), which is all the
    skeleton needs. A caller that needs the originals afterwards (fidelity) runs them first; the
    model is then never held twice, which is what keeps the peak memory of a VGG16 under twice
    its size.
    """
    assigned = {n: r for n, w in graph.weights.items() if (r := plan.recipe_for(w)) is not None}
    lossless = {n for n, w in graph.weights.items() if n not in assigned and plan.lossless_for(w)}
    groups: dict[str, list[str]] = {}
    for n, r in assigned.items():
        groups.setdefault(r.passes, []).append(n)
    g2 = graph.copy()
    # Where every step can run one weight at a time, the pipeline runs inside the encoding loop
    # below, so that only one weight's pruned and quantized copies exist at once (peak memory near
    # the model's size, not twice it); where every step can also run on pieces of a weight, the
    # encoder reads the pipeline's output rows as it makes them and no copy of the weight exists
    # at all. Otherwise the pipeline runs over the whole group first.
    streamed: dict[str, Callable[[Weight], np.ndarray]] = {}
    pieced: dict[str, Callable[[Weight], Source]] = {}
    for i, (passes, names) in enumerate(groups.items()):
        if passes:
            members = frozenset(names)

            def in_group(w: Weight, m: frozenset[str] = members) -> bool:
                return w.name in m

            blocks = pipeline_blocks(graph, passes, seed=seed + i, select=in_group)
            one = (
                pipeline_per_weight(graph, passes, seed=seed + i, select=in_group) if blocks is None else None
            )
            if blocks is not None:
                pieced.update(dict.fromkeys(names, blocks))
            elif one is not None:
                streamed.update(dict.fromkeys(names, one))
            else:
                g2, _ = run_pipeline(g2, passes, seed=seed + i, select=in_group, detailed=False)
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
        recipe = assigned.get(name)
        params = recipe.format_params if recipe else {}
        if on_weight is not None:
            on_weight(name)
        if name in twins:  # the same values as an earlier tensor: stored once, the same model value
            w.value = g2.weights[twins[name]].value
            entries.append(TensorEntry(name, ALIAS, src.shape, str(src.dtype), {"of": twins[name]}, {}))
            if release:
                src.value = np.broadcast_to(np.zeros((), dtype=src.dtype), src.shape)
            continue
        if name in lossless:
            rows.append(_lossless(src, w, entries))
            if release:
                src.value = np.broadcast_to(np.zeros((), dtype=src.dtype), src.shape)
            continue
        chosen = recipe.format if recipe is not None and w.size > 0 else RAW
        source = pieced[name](src) if name in pieced else None
        one = streamed.get(name)
        # The pipeline's output: made whole, or (source only) read in rows by the encoder.
        base: np.ndarray | None = None
        if source is None:
            base = one(src) if one is not None else w.array
        elif chosen == RAW or chosen in LOSSY:
            base = source(0, src.size).reshape(src.shape)
        dense = base
        if chosen in LOSSY and min(_matrix_shape(src.shape)) < MIN_STRUCTURED_SIDE:
            chosen = RAW
        if chosen != RAW:
            if dense is not None:
                f = _encode(dense, chosen, params)
            else:
                assert source is not None
                f = _encode_rows(source, src.shape, chosen, params)
            if chosen in LOSSY:
                dense = f.to_dense().reshape(src.shape)  # the approximation is what the model gets
            if f.nbytes >= src.array.nbytes:
                chosen = RAW  # the format would not save bytes on this tensor: keep it as it is
        if chosen == RAW:
            if base is None and source is not None:
                base = dense = source(0, src.size).reshape(src.shape)
            assert base is not None
            stored = base.astype(src.dtype, copy=False)
            w.value = stored
            entries.append(TensorEntry(name, RAW, src.shape, str(src.dtype), {}, {"values": stored}))
            payload = stored.nbytes
        else:
            # A streamed weight's dense copy is dropped once its row is made: fidelity decodes it
            # again, one layer at a time.
            keep = dense if (one is None and source is None) or chosen in LOSSY else None
            w.value = Shaped(f, src.shape, keep)
            entries.append(TensorEntry(name, chosen, src.shape, str(src.dtype), f.meta(), f.arrays()))
            payload = f.nbytes
        if recipe is not None:
            k = f.meta().get("k") if chosen != RAW else None
            after = dense if dense is not None else source
            assert after is not None
            rows.append(_row(src, after, chosen, payload, k))
            del after  # a source holds the original: it must go before the release below
        del base, dense, source
        if release:
            src.value = np.broadcast_to(np.zeros((), dtype=src.dtype), src.shape)
    return g2, entries, rows


def _twins(graph: Graph, assigned: dict[str, Recipe], lossless: set[str]) -> dict[str, str]:
    """Weights byte-identical to an earlier one with the same recipe (tied embeddings and heads,
    tensors two state_dict names share), mapped to that first one: an artifact stores them once."""
    import hashlib

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
    m = _matrix_shape(src.shape)
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
        return _row(src, a, RAW, stored.nbytes, None)
    # No dense copy is kept: the original may be released, and fidelity decodes it again.
    w.value = Shaped(f, src.shape, None, src.dtype)
    entries.append(TensorEntry(src.name, LOSSLESS_INT, src.shape, str(src.dtype), f.meta(), f.arrays()))
    return _row(src, a, LOSSLESS_INT, f.nbytes, f.meta()["k"])


def _matrix_shape(shape: tuple[int, ...]) -> tuple[int, int]:
    """The 2-D shape a format stores a weight of ``shape`` as (see `_matrix`)."""
    if len(shape) == 1:
        return 1, int(shape[0])
    return int(shape[0]), int(np.prod(shape[1:], dtype=np.int64))


def _encode_rows(source: Source, shape: tuple[int, ...], fmt: str, params: dict[str, Any]) -> Format:
    m = _matrix_shape(shape)
    return FORMATS[fmt].encode_rows(
        m, lambda r0, r1: source(r0 * m[1], r1 * m[1]).reshape(r1 - r0, m[1]), **params
    )


def _row(src: Weight, after: np.ndarray | Source, fmt: str, payload: int, k: int | None) -> dict[str, Any]:
    """The report row of one weight; ``after`` is what the model gets, whole or as a source of pieces."""
    before = src.array
    # a codebook format knows its distinct values; sorting 100 M weights to count them costs seconds
    known = fmt in ("ham", "im", "sham") and k is not None
    nonzero, uniques = [0], list[np.ndarray]()

    def seen(piece: np.ndarray) -> None:
        nonzero[0] += int(np.count_nonzero(piece))
        if not known:
            uniques.append(np.unique(piece))

    err = rel_error(before, after, seen=seen)  # one pass: a source's pieces are made again each time
    zeros = src.size - nonzero[0]
    if fmt in ("ham", "im") and k is not None:  # codebook of every value, zero included
        distinct = int(k)
    elif fmt == "sham" and k is not None:  # codebook of the nonzero values
        distinct = int(k) + (1 if zeros else 0)
    else:
        distinct = int(np.unique(np.concatenate(uniques or [np.zeros(0)])).size)
    return {
        "weight": src.name,
        "layer": src.layer,
        "op": src.op,
        "shape": list(src.shape),
        "format": fmt,
        "bytes_before": int(before.nbytes),
        "bytes_after": int(payload),
        "ratio": before.nbytes / payload if payload else float("inf"),
        "bits_per_weight": 8.0 * payload / max(1, src.size),
        "sparsity": zeros / max(1, src.size),
        "distinct": distinct,
        "rel_error": err,
    }


def skeleton_file(graph: Graph, name: str) -> Path:
    """The source file with every weight zeroed, written by the source format's own writer.

    It stays on disk (a temp dir removed at exit) and is streamed into the artifact: held as bytes, a
    zeroed VGG16 would add its full size to the peak memory of compress.
    """
    from nncompress.io import save

    z = graph.copy()
    for w in z.weights.values():
        w.value = np.zeros(w.shape, dtype=w.dtype)  # calloc'd pages: no memory until written
    return save(z, temp_dir("skel") / name)


def build_artifact(graph: Graph, entries: list[TensorEntry], plan: Plan, seed: int) -> Artifact:
    src_name = Path(graph.meta.path).name or f"model.{graph.meta.format}"
    return Artifact(
        source_format=graph.meta.format,
        source_name=src_name,
        recipe=plan.origin,
        seed=seed,
        tensors=entries,
        skeleton=skeleton_file(graph, src_name),
        skeleton_name=src_name,
    )


def _int_target(t: TensorEntry, f: Format, dtype: np.dtype[Any], path: str | os.PathLike[str]) -> Any:
    """The integer dtype a coded tensor decodes to (its skeleton slot's), or None for a float one.

    Only `LOSSLESS_INT` holds integers, and its codebook must hold integers of that dtype: a value
    cast from a corrupt codebook would be silently wrong.
    """
    if dtype.kind not in "iu":
        return None
    if dtype not in _INT_DTYPES or not isinstance(f, FORMATS[LOSSLESS_INT]):
        raise InputError(f"tensor {t.name!r} of {dtype} is stored as {t.format!r}", path=str(path))
    cb = f.arrays()["codebook"].astype(np.float64)
    info = np.iinfo(dtype)
    if np.any(cb != np.rint(cb)) or np.any(cb < info.min) or np.any(cb > info.max):
        raise InputError(
            f"tensor {t.name!r}: codebook holds values that are not {dtype} integers", path=str(path)
        )
    return dtype


def graph_from_artifact(path: str | os.PathLike[str]) -> Graph:
    """Rebuild the IR from a `.nnc`: the skeleton's graph with the stored tensors in its slots."""
    from nncompress.io import load

    # The writers re-read the skeleton to patch it, so it must outlive this call; it goes from the
    # zip to that file without passing through memory.
    d = temp_dir("art")
    art = read_artifact(path, skeleton_dir=d)
    if not art.skeleton_name:
        raise InputError("artifact has no skeleton to rebuild a model from", path=str(path))
    assert isinstance(art.skeleton, Path)
    g = load(art.skeleton)
    # compress decided what the artifact holds (training state included or not): rebuilding drops nothing
    g.meta.extra["keep_training_state"] = True
    done: set[str] = set()
    for t in art.tensors:
        w = g.weights.get(t.name)
        if w is None or w.shape != t.shape:
            raise InputError(f"tensor {t.name!r} does not match the skeleton's weights", path=str(path))
        if t.format == ALIAS:
            of = t.meta.get("of")
            if of not in done or g.weights[of].shape != t.shape:
                raise InputError(
                    f"tensor {t.name!r} is an alias of no earlier tensor of its shape", path=str(path)
                )
            w.value = g.weights[of].value
        elif t.format == RAW:
            a = t.arrays.get("values")
            if a is None or a.shape != t.shape:
                raise InputError(f"tensor {t.name!r} has no values of shape {t.shape}", path=str(path))
            w.value = a
        else:
            f = load_format(t.format, t.arrays, t.meta, path=str(path))
            rows = t.shape[0] if len(t.shape) > 1 else 1
            if f.shape != (rows, int(np.prod(t.shape)) // max(rows, 1)):
                raise InputError(
                    f"tensor {t.name!r}: stored shape {f.shape} does not fit {t.shape}", path=str(path)
                )
            w.value = Shaped(f, t.shape, dtype=_int_target(t, f, w.dtype, path))
        done.add(t.name)
    g.meta.extra["artifact"] = {
        "path": str(path),
        "recipe": art.recipe,
        "seed": art.seed,
        "source": art.source_name,
        "bytes": Path(path).stat().st_size,
    }
    return g
