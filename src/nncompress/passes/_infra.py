"""The pass contract, the pass manager and the parser of pipeline specs.

A pass takes a graph and its options and returns a new graph plus one stats dict per weight it
changed; it never mutates its input: it works on ``graph.copy()`` and puts new arrays in the weight
slots (the contract of onnx-ir's ``passes/_pass_infra.py`` and torch.fx's ``PassBase``).

A pipeline spec is steps separated by commas, each a pass name followed by ``:key=value`` options:
``prune:sparsity=0.9,quantize:method=kmeans:k=32``. Option types, defaults, choices and ranges
come from each pass's ``Options`` dataclass, so the parser, the checks and the help text agree.
"""

from __future__ import annotations

import contextvars
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np

from nncompress.errors import UsageError
from nncompress.ir import Graph, Weight
from nncompress.options import EXAMPLE, Options, parse_step
from nncompress.options import describe_options as describe_options
from nncompress.summary import value_stats

Select = Callable[[Weight], bool]
Stats = dict[str, Any]
DEFAULT_ROLES = ("kernel", "embedding", "recurrent")
# Any other float tensor of at least this many elements and 2 or more dimensions is a weight worth
# compressing too (attention projections, constant MatMul operands, position tables); 1-D tensors
# are biases and normalization parameters, which stay as they are.
MIN_ELEMENTS = 1024
# A 1-D tensor this large is a flattened weight (e3nn stores its Linear weights so), not a norm's
# scale: LayerNorm widths stay under 16K even in the largest language models.
MIN_FLAT_ELEMENTS = 1 << 16
_KEPT_ROLES = ("bias", "bn_gamma", "bn_beta", "bn_mean", "bn_var", "alpha", "buffer")


def default_select(w: Weight) -> bool:
    """Float kernels, embeddings, recurrent weights, and other float tensors of at least MIN_ELEMENTS
    elements in 2+ dimensions; biases, normalization parameters and small constants stay as they are."""
    if not np.issubdtype(w.dtype, np.floating):
        return False
    if w.role in DEFAULT_ROLES:
        return True
    if w.role in _KEPT_ROLES:
        return False
    return w.size >= (MIN_ELEMENTS if len(w.shape) >= 2 else MIN_FLAT_ELEMENTS)


def selected(graph: Graph, select: Select) -> list[Weight]:
    """The weights a pass works on: float ones that ``select`` accepts, in graph order."""
    return [w for w in graph.weights.values() if np.issubdtype(w.dtype, np.floating) and select(w)]


# Every pass's options derive from the shared schema (passes and storage formats parse alike).
PassOptions = Options


@dataclass
class PassResult:
    """What a pass returns: the new graph and one stats dict per weight it changed."""

    graph: Graph
    stats: list[Stats]


PerWeight = Callable[[Weight, np.ndarray, bool], np.ndarray]
# Entries ``start:stop`` of a weight (C order, flat) as a fresh array the caller may overwrite.
Source = Callable[[int, int], np.ndarray]
# Output entries of one step for a piece of its input starting at flat entry ``start``; it may
# overwrite the piece. It must be a pure function of (piece, start): encoders read twice.
Transform = Callable[[np.ndarray, int], np.ndarray]
PerBlock = Callable[[Weight, Source], Transform]


class Pass(ABC):
    """A compression pass: ``name`` is its CLI word, its module's name and its registry key."""

    name: ClassVar[str]
    Options: ClassVar[type[PassOptions]]

    @abstractmethod
    def __call__(self, graph: Graph, options: Any, *, select: Select, rng: np.random.Generator) -> PassResult:
        """Return a rewritten copy of ``graph``; ``graph`` itself stays untouched."""

    def per_weight(
        self, graph: Graph | None, options: Any, *, select: Select, rng: np.random.Generator
    ) -> PerWeight | None:
        """This step as a function of one weight's array, or None where it needs every result at once.

        Called on the selected weights one at a time, in graph order, the function must give the
        arrays ``__call__`` gives. ``graph`` is the input graph when this is the pipeline's first
        step (a global statistic of the originals, such as one pruning threshold, may be fitted on
        it first) and None after another step, whose outputs do not exist all at once. The
        function's ``owned`` argument says the array is a scratch copy it may overwrite.
        """
        return None

    def per_block(
        self, graph: Graph | None, options: Any, *, select: Select, rng: np.random.Generator
    ) -> PerBlock | None:
        """This step as a fit on one weight's input, read in pieces, then a transform of any piece.

        Called on the selected weights one at a time in graph order, ``fit(w, source)`` may read
        ``source`` (this step's input) as often as it needs, a piece at a time, and returns the
        transform; transforming every piece of the input must give `per_weight`'s array. None where
        that cannot be (a step that draws random numbers per entry). ``graph`` is as in
        `per_weight`. No full-size array of the weight then ever exists.
        """
        return None


CHUNK = 1 << 22  # entries per step of a streaming loop: temporaries stay at tens of MB whatever the layer


def flat_chunks(a: np.ndarray) -> Iterator[np.ndarray]:
    """Consecutive pieces of ``a`` in C order; views (writable into ``a``) when ``a`` is C-contiguous."""
    flat = a.reshape(-1)
    for i in range(0, flat.size, CHUNK):
        yield flat[i : i + CHUNK]


def source_chunks(source: Source, size: int) -> Iterator[np.ndarray]:
    """The whole of ``source`` in the pieces `flat_chunks` gives (same bounds, so same float sums)."""
    for i in range(0, size, CHUNK):
        yield source(i, min(i + CHUNK, size))


def rel_error(
    before: np.ndarray, after: np.ndarray | Source, *, seen: Callable[[np.ndarray], None] | None = None
) -> float:
    """||after - before||_F / ||before||_F in float64, in chunks (no full-size float64 copies).

    ``after`` may be a `Source` of the flat entries rather than an array; ``seen`` gets each
    piece of it, for other figures taken in the same pass (pieces of a source cost a recompute).
    """
    b = before.reshape(-1)
    if callable(after):
        source = after
    else:
        flat = after.reshape(-1)

        def source(start: int, stop: int) -> np.ndarray:
            return flat[start:stop]

    ref = diff = 0.0
    for s in range(0, b.size, CHUNK):
        bc = b[s : s + CHUNK].astype(np.float64)
        piece = source(s, s + bc.size)
        if seen is not None:
            seen(piece)
        d = piece.astype(np.float64) - bc
        ref += float(bc @ bc)
        diff += float(d @ d)
    return float(np.sqrt(diff / ref)) if ref > 0 else float(np.sqrt(diff))


def profile_from_counts(counts: np.ndarray, size: int) -> dict[str, float | int]:
    """`summary.value_stats` of an array of ``size`` entries whose nonzero values occur ``counts`` times.

    For a pass that knows how often each of its (distinct, nonzero) levels was used, so that it
    need not sort its output again.
    """
    c = np.asarray(counts, dtype=np.float64)
    c = c[c > 0]
    zeros = size - float(c.sum())
    full = np.append(c, zeros) if zeros > 0 else c
    p = full / size if size else full
    return {
        "sparsity": zeros / size if size else 0.0,
        "distinct": int(full.size),
        "entropy_bits": float(max(0.0, -(p * np.log2(p)).sum())) if size else 0.0,
    }


# Distinct values and entropy need a sort of every weight, twice per pass: seconds per 100 M weights.
# A caller that reports its own figures (compress) turns them off for the pipeline it runs.
DETAILED_STATS: contextvars.ContextVar[bool] = contextvars.ContextVar("DETAILED_STATS", default=True)
# ids of the arrays an earlier step of the running pipeline made: nobody else holds them, so a step
# that needs no before/after statistics may overwrite them instead of allocating a copy (a second
# VGG16 is 553 MB).
_SCRATCH: contextvars.ContextVar[frozenset[int]] = contextvars.ContextVar("_SCRATCH", default=frozenset())


def may_overwrite(a: np.ndarray) -> bool:
    """Whether a pass may write into ``a``, an array of its input graph (see run_pipeline)."""
    return not DETAILED_STATS.get() and id(a) in _SCRATCH.get()


def weight_stats(
    pass_name: str,
    w: Weight,
    before: np.ndarray,
    after: np.ndarray,
    *,
    after_profile: dict[str, float | int] | None = None,
    **extra: Any,
) -> Stats:
    """Before/after figures of one weight: sparsity, distinct values, entropy and relative error.

    ``after_profile`` (from `profile_from_counts`) saves sorting ``after`` when the pass knows it.
    """
    if not DETAILED_STATS.get():
        return {"pass": pass_name, "weight": w.name, "layer": w.layer, "op": w.op, **extra}
    b = value_stats([before])
    a = after_profile if after_profile is not None else value_stats([after])
    return {
        "pass": pass_name,
        "weight": w.name,
        "layer": w.layer,
        "op": w.op,
        "shape": list(w.shape),
        "params": w.size,
        "sparsity_before": b["sparsity"],
        "sparsity_after": a["sparsity"],
        "distinct_before": b["distinct"],
        "distinct_after": a["distinct"],
        "entropy_before": b["entropy_bits"],
        "entropy_after": a["entropy_bits"],
        "rel_error": rel_error(before, after),
        **extra,
    }


# -- pipeline specs ----------------------------------------------------------------------------


def _registry(registry: Mapping[str, type[Pass]] | None) -> Mapping[str, type[Pass]]:
    if registry is not None:
        return registry
    from nncompress.passes import PASSES  # the registry imports this module: resolve it late

    return PASSES


def parse_pipeline(
    spec: str, registry: Mapping[str, type[Pass]] | None = None
) -> list[tuple[str, PassOptions]]:
    """Parse ``"prune:sparsity=0.9,quantize:method=kmeans:k=32"`` into (pass name, options) steps.

    Any unknown pass, unknown option or bad value raises a one-line UsageError naming the token
    and the valid choices (see `nncompress.options.parse_step`).
    """
    reg = _registry(registry)
    if not spec.strip():
        raise UsageError("the pipeline is empty", hint=f"Give steps like {EXAMPLE}; passes: {', '.join(reg)}")
    return [parse_step(step, reg) for step in spec.split(",")]


def _resolve(
    steps: str | Sequence[tuple[str, PassOptions | None]],
    seed: int,
    registry: Mapping[str, type[Pass]] | None,
) -> list[tuple[type[Pass], PassOptions, np.random.SeedSequence]]:
    """Each step's pass class, its options (defaults where None) and its own seed, spawned from ``seed``."""
    reg = _registry(registry)
    plan = parse_pipeline(steps, reg) if isinstance(steps, str) else list(steps)
    seeds = np.random.SeedSequence(seed).spawn(len(plan))
    out = []
    for i, ((name, opts), ss) in enumerate(zip(plan, seeds, strict=True)):
        cls = reg.get(name)
        if cls is None:
            raise UsageError(f"unknown pass {name!r}", hint=f"Valid passes: {', '.join(reg)}")
        opts = cls.Options() if opts is None else opts
        if not isinstance(opts, cls.Options):
            raise TypeError(f"step {i} ({name}) got {type(opts).__name__}, expected {cls.__name__}.Options")
        out.append((cls, opts, ss))
    return out


def run_pipeline(
    graph: Graph,
    steps: str | Sequence[tuple[str, PassOptions | None]],
    *,
    seed: int = 0,
    select: Select | None = None,
    registry: Mapping[str, type[Pass]] | None = None,
    detailed: bool = True,
) -> tuple[Graph, list[Stats]]:
    """Run the steps in order; same graph, steps and seed give identical arrays.

    ``detailed=False`` skips the per-weight before/after value statistics (sorts of every weight).

    Each step draws from its own generator, spawned from ``seed``, so adding a step does not
    change the random numbers of the others. Stats carry the step's index.
    """
    stats: list[Stats] = []
    given = {id(w.value) for w in graph.weights.values()}
    scratch: frozenset[int] = frozenset()
    for i, (cls, opts, ss) in enumerate(_resolve(steps, seed, registry)):
        token, owned = DETAILED_STATS.set(detailed), _SCRATCH.set(scratch)
        try:
            res = cls()(graph, opts, select=select or default_select, rng=np.random.default_rng(ss))
        finally:
            DETAILED_STATS.reset(token)
            _SCRATCH.reset(owned)
        graph = res.graph
        scratch = frozenset(
            id(w.value)
            for w in graph.weights.values()
            if isinstance(w.value, np.ndarray) and id(w.value) not in given
        )
        stats.extend({"step": i, **s} for s in res.stats)
    return graph, stats


def _step_forms(
    graph: Graph,
    steps: str | Sequence[tuple[str, PassOptions | None]],
    seed: int,
    select: Select | None,
    registry: Mapping[str, type[Pass]] | None,
    form: Literal["per_weight", "per_block"],
) -> Any:
    """Each step's `Pass.per_weight` or `Pass.per_block` (the first step sees ``graph``); None if any declines."""
    out = []
    for i, (cls, opts, ss) in enumerate(_resolve(steps, seed, registry)):
        fn = getattr(cls(), form)(
            graph if i == 0 else None, opts, select=select or default_select, rng=np.random.default_rng(ss)
        )
        if fn is None:
            return None
        out.append(fn)
    return out


def pipeline_per_weight(
    graph: Graph,
    steps: str | Sequence[tuple[str, PassOptions | None]],
    *,
    seed: int = 0,
    select: Select | None = None,
    registry: Mapping[str, type[Pass]] | None = None,
) -> Callable[[Weight], np.ndarray] | None:
    """`run_pipeline` as a function of one weight, or None where a step needs all weights at once.

    Called on the selected weights in graph order it returns the arrays `run_pipeline` would give
    (same steps, seed and generators), while only one weight's intermediate arrays exist at a time:
    what lets compress run a 500 MB model without a second full copy of it.
    """
    fns: list[PerWeight] | None = _step_forms(graph, steps, seed, select, registry, "per_weight")
    if fns is None:
        return None

    def run(w: Weight) -> np.ndarray:
        a, owned = w.array, False
        if np.issubdtype(a.dtype, np.floating):
            for fn in fns:
                b = fn(w, a, owned)
                owned, a = owned or b is not a, b  # a step may hand back its input untouched
        return a

    return run


def pipeline_blocks(
    graph: Graph,
    steps: str | Sequence[tuple[str, PassOptions | None]],
    *,
    seed: int = 0,
    select: Select | None = None,
    registry: Mapping[str, type[Pass]] | None = None,
) -> Callable[[Weight], Source] | None:
    """`pipeline_per_weight` as a source of pieces of each output, or None where a step cannot.

    For each selected weight, in graph order, the steps are fitted one after the other (each
    reading the previous one's output, recomputed piece by piece) and the returned source gives
    any entries of the pipeline's output. Only pieces of a weight ever exist: a 400 MB layer is
    pruned, quantized and encoded with tens of MB beside it.
    """
    fits: list[PerBlock] | None = _step_forms(graph, steps, seed, select, registry, "per_block")
    if fits is None:
        return None

    def run(w: Weight) -> Source:
        flat = w.array.reshape(-1)

        def original(start: int, stop: int) -> np.ndarray:
            return flat[start:stop].copy()

        source: Source = original
        if not np.issubdtype(flat.dtype, np.floating):
            return source
        for fit in fits:
            source = _chain(source, fit(w, source))
        return source

    return run


def _chain(source: Source, transform: Transform) -> Source:
    return lambda start, stop: transform(source(start, stop), start)
