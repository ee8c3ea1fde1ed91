"""Per-tensor sensitivity, and the smallest allocation of settings that keeps a fidelity budget.

Sensitivity: for each selected tensor and each value of its preset's knob (`pipeline.knobs`),
the payload bytes (the real encoder's) and the weight error of the tensor alone, and the model's
mean relative output error and top-1 disagreement with only that tensor changed. The model runs on
the first SENS_SAMPLES fidelity inputs, in the reference executor (in process, nothing written),
at MEASURED values spread over the knob's range; the output error at the other values is
interpolated from the measured ones by weight error. Every figure depends only on the model, the
data and the options, never on timing.

Allocation: each tensor's value minimizes bytes + lambda * error**2 (output errors of independent
changes add roughly in quadrature); sweeping lambda gives a family of allocations from the
mildest to the smallest. The family is bisected with the whole model run on all the fidelity
inputs in the runtime the user deploys with (the one compress measures fidelity in), and the
smallest member that keeps the budget wins. A tensor may always stay as it is, so the mildest
member is the original model, which keeps any budget.
"""

from __future__ import annotations

import dataclasses
import math
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nncompress.fidelity import Reference, compressed, figures, same_runtime
from nncompress.inputs import EvalData
from nncompress.ir import Graph
from nncompress.passes._infra import rel_error
from nncompress.passes.rdoq import FISHER, HESSIAN
from nncompress.pipeline.budget import Budget
from nncompress.pipeline.engine import approximate
from nncompress.pipeline.knobs import Knob
from nncompress.pipeline.recipe import Plan, Recipe, Rule
from nncompress.progress import SILENT, Progress
from nncompress.runtime import EXECUTOR, Runtime, RuntimeFailure, onnxruntime_overridable, outputs

SENS_SAMPLES = 64  # model runs of the sensitivity scan use the first this many fidelity inputs
# ... fewer on large models, so that a scan costs about as much as 64 samples of a 2M-parameter
# model (a VGG16's scan runs on 2): a rule of the model's size, never of the time it takes
SCAN_WORK = 64 * 2_000_000
LARGE = 16_000_000  # parameters above which single-tensor refinement is skipped (each check is a full run)
MEASURED = 4  # knob values per tensor where the model is run (the others are interpolated)
SCAN_RUNS = 96  # ... down to 2 a tensor on models with many tensors: about this many runs a scan
REFINE_PER_TENSOR = 3  # whole-model checks per tensor spent pushing single tensors further
# ... and up to REFINE_EXTRA more on a small model: as many as REFINE_WORK parameters' worth of runs
# (lenet300, 266 K parameters: 24 more; a 2 M-parameter model: 12); a rule of size, not of time
REFINE_EXTRA = 24
REFINE_WORK = 24_000_000
STRIKES = 2  # failed moves in a row after which refinement leaves a tensor where it is
# A run's cost grows with the input as well as the parameters: basic-pitch (36 K parameters on
# 43,844 audio samples a row) took ~4 s a whole-model check of 64 rows and over 5 minutes a preset.
# So scans and single-tensor checks are also capped in parameters x input elements per sample (a
# rule of the model and its inputs, never of time): lenet300 (266 K x 784 = 2.1e8) and vggmini
# (1.2e8) stay under both caps; basic-pitch's scan runs on 16 rows and refines with 6 checks.
SCAN_IO_WORK = 64 * 400_000_000
REFINE_IO_WORK = 10_000_000_000
CACHE_BYTES = 1 << 30  # approximations kept in memory; beyond, they are made again when needed
# A tensor above ESTIMATE_ABOVE weights is encoded whole only at the values where the model runs;
# at the others its bytes and weight error are those of ESTIMATE_SAMPLE weights' worth of its rows,
# evenly spread, scaled to its size (VGG16's fc1 is 103 M weights: 23 whole encodings were minutes).
ESTIMATE_ABOVE = 4_000_000
ESTIMATE_SAMPLE = 1_000_000
KEEP = None  # the "value" of a tensor kept as it is


@dataclass
class Setting:
    """One knob value on one tensor (``value`` None: kept as it is)."""

    value: Any
    bytes: int
    weight_error: float  # ||W - W'|| / ||W||
    error: float = 0.0  # mean relative output error with only this tensor changed
    disagreement: float | None = None  # share of samples whose top-1 class changes (measured only)
    measured: bool = False

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class Sensitivity:
    name: str
    layer: str
    shape: tuple[int, ...]
    settings: list[Setting]  # KEEP first, then the knob's values mildest first

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "layer": self.layer,
            "shape": list(self.shape),
            "settings": [s.as_dict() for s in self.settings],
        }


@dataclass
class Scan:
    """A sensitivity scan: the table, and what it ran on."""

    knob: Knob
    table: list[Sensitivity]
    samples: int
    runtime: str
    notes: list[str] = field(default_factory=list)


class Approximations:
    """Each (tensor, value)'s approximation, kept while CACHE_BYTES hold it, least recently used
    first out (the budget's checks reuse the arrays of the check before; on VGG16 the scan's alone
    filled the cache, and each check made its 550 MB again)."""

    def __init__(self, graph: Graph, knob: Knob, seed: int) -> None:
        self.graph, self.knob, self.seed = graph, knob, seed
        self._recipes: dict[Any, Recipe] = {}
        # (tensor, value) -> (array, payload bytes; None where only the passes ran, nothing encoded)
        self._cache: OrderedDict[tuple[str, Any], tuple[np.ndarray, int | None]] = OrderedDict()
        self._held = 0
        # on a model above LARGE parameters, every tensor above ESTIMATE_SAMPLE weights is estimated
        # (VGG16's convolutions of 2.4 M weights encoded whole at 23 steps were a minute)
        large = sum(w.size for w in graph.weights.values()) > LARGE
        self.estimate_above = ESTIMATE_SAMPLE if large else ESTIMATE_ABOVE

    def _cached(self, key: tuple[str, Any]) -> tuple[np.ndarray, int | None] | None:
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
        return hit

    def _keep(self, key: tuple[str, Any], a: np.ndarray, nbytes: int | None) -> None:
        if a.nbytes > CACHE_BYTES:
            return
        old = self._cache.pop(key, None)
        if old is not None:
            self._held -= old[0].nbytes
        while self._cache and self._held + a.nbytes > CACHE_BYTES:
            _, (gone, _) = self._cache.popitem(last=False)
            self._held -= gone.nbytes
        self._cache[key] = (a, nbytes)
        self._held += a.nbytes

    def recipe(self, value: Any) -> Recipe:
        """One Recipe object per value: compress stores tensors identical under the same recipe once."""
        if value not in self._recipes:
            self._recipes[value] = self.knob.recipe(value)
        return self._recipes[value]

    def get(self, name: str, value: Any) -> tuple[np.ndarray, int]:
        """The array the model gets and the payload bytes."""
        key = (name, value)
        hit = self._cached(key)
        if hit is not None and hit[1] is not None:
            return hit[0], hit[1]
        made = approximate(self.graph, name, self.recipe(value), seed=self.seed)
        self._keep(key, *made)
        return made

    def array(self, name: str, value: Any) -> np.ndarray:
        """The array the model gets. Where the recipe ends in an exact storage format, that is the
        passes' output and nothing is encoded (the encoder would only count its bytes)."""
        key = (name, value)
        hit = self._cached(key)
        if hit is not None:
            return hit[0]
        recipe = self.recipe(value)
        if recipe.final.fitted or not recipe.passes:
            return self.get(name, value)[0]
        a = approximate(self.graph, name, recipe, seed=self.seed, encode=False)[0]
        self._keep(key, a, None)
        return a

    def estimated(self, name: str, value: Any) -> bool:
        """Whether `estimate` takes the bytes from a sample of the tensor's rows."""
        w = self.graph.weights[name]
        return w.size > self.estimate_above and w.array.ndim >= 2 and not self.recipe(value).final.fitted

    def measured(self, name: str, value: Any) -> tuple[np.ndarray, int]:
        """The array the model gets and the payload bytes, for a setting the model runs at: a
        tensor whose bytes are estimated is not encoded whole (its passes' output is enough)."""
        if not self.estimated(name, value):
            return self.get(name, value)
        return self.array(name, value), self.estimate(name, value)[0]

    def estimate(self, name: str, value: Any) -> tuple[int, float]:
        """Payload bytes and relative weight error, from a sample of rows for a large tensor."""
        w = self.graph.weights[name]
        orig = w.array
        # a structured fit of some rows says nothing of the whole matrix's: only storage estimates
        if not self.estimated(name, value):
            a, nbytes = self.get(name, value)
            return nbytes, rel_error(orig, a)
        rows = orig.shape[0]
        take = max(2, min(rows, ESTIMATE_SAMPLE * rows // w.size))
        idx = np.unique(np.linspace(0, rows - 1, take).round().astype(np.int64))
        sub = self.graph.copy()
        sub.weights[name].value = np.ascontiguousarray(orig[idx])
        extra = dict(self.graph.meta.extra)
        sens = extra.get(FISHER, {})
        if name in sens:  # rdoq's fisher weighting: the same rows of the sensitivities
            extra[FISHER] = {**sens, name: sens[name][idx]}
        moments = extra.get(HESSIAN, {})
        if name in moments and moments[name].shape[0] > 1:  # rows of a grouped conv mix its groups
            extra[HESSIAN] = {k: v for k, v in moments.items() if k != name}
        sub.meta.extra = extra
        a, nbytes = approximate(sub, name, self.recipe(value), seed=self.seed)
        return round(nbytes * rows / len(idx)), rel_error(orig[idx], a)


def tunable(graph: Graph, knob: Knob) -> list[str]:
    """The weights the knob's recipe applies to (what the preset would compress), in graph order."""
    plan = Plan([Rule(knob.recipe(knob.values[0]))], {})
    return [n for n, w in graph.weights.items() if w.size > 0 and plan.recipe_for(w) is not None]


def _subset(data: EvalData, m: int) -> EvalData:
    if not data.batched() or m >= data.n:
        return data
    step = data.step
    if step:
        m = max(step, m - m % step)
    y = data.y[:m] if data.y is not None and len(data.y) == data.n else data.y
    return dataclasses.replace(data, n=m, y=y)


def io_cost(params: int, data: EvalData) -> int:
    """Parameters times the input elements of one sample (an unbatched input counts whole)."""
    per = sum(
        data.arrays[s.name].size // max(data.n, 1) if s.batch_axis is not None else data.arrays[s.name].size
        for s in data.specs
        if s.name in data.arrays
    )
    return max(params, 1) * max(per, 1)


def _measure_at(values: tuple[Any, ...], k: int) -> set[int]:
    """Indices of the values the model runs at: ``k`` of them, spread evenly, both ends included."""
    n = len(values)
    if n <= k:
        return set(range(n))
    return {round(i * (n - 1) / (k - 1)) for i in range(k)}


def scan(
    graph: Graph,
    knob: Knob,
    ref: Reference,
    *,
    values: tuple[Any, ...] | None = None,
    seed: int = 0,
    approx: Approximations | None = None,
    progress: Progress = SILENT,
) -> Scan:
    """The sensitivity table of every tensor the knob applies to (``ref`` must be measured).
    ``progress`` hears the original's run, then the scan counting weights times values (each
    value of a tensor is one encoding of it, and a model run at the measured ones)."""
    assert ref.data is not None
    values = knob.values if values is None else values
    approx = approx or Approximations(graph, knob, seed)
    names = tunable(graph, knob)
    params = sum(graph.weights[n].size for n in names)
    rows = min(SENS_SAMPLES, SCAN_WORK // max(params, 1), SCAN_IO_WORK // io_cost(params, ref.data))
    data = _subset(ref.data, max(2, rows))
    notes: list[str] = []

    def runner(name: str) -> Callable[[dict[str, np.ndarray]], np.ndarray]:
        """The model's outputs with some weights changed, in runtime ``name``."""

        def run(changes: dict[str, np.ndarray]) -> np.ndarray:
            g = graph.copy()
            for n, a in changes.items():
                g.weights[n].value = a
            rt = same_runtime(name, g)
            try:
                return outputs(rt, data, ref.batch)
            finally:
                rt.close()

        return run

    # onnxruntime, where it is the reference's runtime (an ONNX source), runs convolutions tens of
    # times faster than the executor; else the executor, in process (writing a TorchScript archive
    # for every run costs more than it saves)
    order = [ref.runtime, EXECUTOR] if ref.runtime.startswith("onnxruntime") else [EXECUTOR, ref.runtime]
    failed: RuntimeFailure | None = None
    progress.stage("sensitivity: original's outputs")
    held: tuple[Runtime, Callable[[dict[str, np.ndarray]], None]] | None = None
    for runtime, overridable in ((r, o) for r in dict.fromkeys(order) for o in (True, False)):
        held = (
            onnxruntime_overridable(graph, names)
            if overridable and runtime.startswith("onnxruntime")
            else None
        )
        if overridable and held is None:
            continue
        run = runner(runtime) if held is None else _fed(held, data, ref.batch)
        try:
            base = run({})
            break
        except RuntimeFailure as e:
            failed = e
            if held is not None:
                held[0].close()
    else:
        assert failed is not None
        raise failed
    try:
        return _scan(graph, names, values, approx, base, run, data, runtime, notes, progress)
    finally:
        if held is not None:
            held[0].close()


def _fed(
    held: tuple[Runtime, Callable[[dict[str, np.ndarray]], None]], data: EvalData, batch: int
) -> Callable[[dict[str, np.ndarray]], np.ndarray]:
    """Outputs in one onnxruntime session with the changed weights fed as inputs."""
    rt, feed = held

    def run(changes: dict[str, np.ndarray]) -> np.ndarray:
        feed(changes)
        return outputs(rt, data, batch)

    return run


def _scan(
    graph: Graph,
    names: list[str],
    values: tuple[Any, ...],
    approx: Approximations,
    base: np.ndarray,
    run: Callable[[dict[str, np.ndarray]], np.ndarray],
    data: EvalData,
    runtime: str,
    notes: list[str],
    progress: Progress,
) -> Scan:
    params = sum(graph.weights[n].size for n in names)
    # a large model runs at the two ends of each tensor's range only: each run builds the whole model
    measured = MEASURED if params <= LARGE else 2
    at = _measure_at(values, max(2, min(measured, SCAN_RUNS // max(len(names), 1))))
    table = []
    progress.stage("sensitivity scan", sum(graph.weights[n].size for n in names) * len(values))
    for name in names:
        w = graph.weights[name]
        settings = [Setting(KEEP, int(w.array.nbytes), 0.0, 0.0, 0.0, True)]
        for i, v in enumerate(values):
            if i in at:  # the model runs on it: the whole tensor
                a, nbytes = approx.measured(name, v)
                s = Setting(v, nbytes, rel_error(w.array, a))
            else:
                s = Setting(v, *approx.estimate(name, v))
            if i in at:
                fid = figures(base, run({name: a}), data, runtime)
                s.error = float(fid["rel_error_mean"]) if fid["rel_error_mean"] is not None else math.inf
                s.disagreement = 1.0 - float(fid["top1_agreement"])
                s.measured = True
            settings.append(s)
            progress.advance(w.size)
        _interpolate(settings)
        table.append(Sensitivity(name, w.layer, w.shape, settings))
    return Scan(approx.knob, table, data.n, runtime, notes)


def _interpolate(settings: list[Setting]) -> None:
    """Output error of the unmeasured settings, linear in weight error between measured ones."""
    pts = sorted((s.weight_error, s.error) for s in settings if s.measured and math.isfinite(s.error))
    xs = np.array([p[0] for p in pts])
    ys = np.maximum.accumulate(np.array([p[1] for p in pts]))  # more weight error, no less output error
    for s in settings:
        if s.measured:
            continue
        if len(xs) >= 2 and s.weight_error > xs[-1] and xs[-1] > xs[-2]:  # beyond the last: extend its slope
            slope = (ys[-1] - ys[-2]) / (xs[-1] - xs[-2])
            s.error = float(ys[-1] + slope * (s.weight_error - xs[-1]))
        else:
            s.error = float(np.interp(s.weight_error, xs, ys))


# -- allocation ------------------------------------------------------------------------------------

Allocation = dict[str, int]  # tensor -> index into its settings


def _choose(table: list[Sensitivity], lam: float) -> Allocation:
    out = {}
    for t in table:
        key: list[tuple[float, float, int]]
        if math.isinf(lam):
            key = [(s.error, float(s.bytes), i) for i, s in enumerate(t.settings)]
        else:
            key = [(s.bytes + lam * s.error * s.error, s.error, i) for i, s in enumerate(t.settings)]
        out[t.name] = min(key)[2]
    return out


def family(table: list[Sensitivity]) -> list[Allocation]:
    """Allocations minimizing bytes + lambda * error**2 for every lambda where one changes, mildest
    (largest) first, smallest last; consecutive members differ in few tensors."""
    lams = {0.0, math.inf}
    for t in table:
        for a in t.settings:
            for b in t.settings:
                de = b.error * b.error - a.error * a.error
                if a.bytes > b.bytes and de > 0:
                    slope = (a.bytes - b.bytes) / de
                    lams.update((slope * (1 - 1e-9), slope * (1 + 1e-9)))
    seen: dict[tuple[int, ...], Allocation] = {}
    for lam in sorted(lams):
        alloc = _choose(table, lam)
        seen.setdefault(tuple(alloc.values()), alloc)
    size = {k: sum(t.settings[k[i]].bytes for i, t in enumerate(table)) for k in seen}
    return [seen[k] for k in sorted(seen, key=lambda k: (-size[k], k))]


@dataclass
class Found:
    """The budget search's answer: each tensor's knob value (KEEP: as it is) and how it was found."""

    values: dict[str, Any]
    fidelity: dict[str, Any] | None
    evaluations: int
    members: int
    scan: Scan
    recipe: Callable[[Any], Recipe]  # one Recipe per value, the search's own (tied tensors stay tied)
    approx: Approximations | None = None  # the search's approximations (polish reuses its cache)

    def changed(self, preset: Any) -> list[str]:
        """Tensors whose value is not the preset's own (backed off, or pushed further)."""
        return [n for n, v in self.values.items() if v != preset]


def evaluate(
    graph: Graph,
    ref: Reference,
    arrays: dict[str, np.ndarray],
    *,
    progress: Progress = SILENT,
    label: str = "fidelity check",
) -> dict[str, Any] | None:
    """Fidelity of the model with ``arrays`` in place of its weights, in the reference's runtime on
    all the fidelity inputs (None when it does not run); ``progress`` hears the stage ``label``."""
    g2 = graph.copy()
    for n, a in arrays.items():
        g2.weights[n].value = a
    fid, _ = compressed(ref, g2, progress=progress, label=label)
    return fid


def search(
    graph: Graph,
    knob: Knob,
    budget: Budget,
    ref: Reference,
    *,
    values: tuple[Any, ...] | None = None,
    seed: int = 0,
    progress: Progress = SILENT,
) -> Found:
    """The smallest allocation of ``values`` (default: all the knob's) that keeps ``budget``.
    ``progress`` hears the scan's stages, then one per whole-model check, numbered."""
    approx = Approximations(graph, knob, seed)
    sc = scan(graph, knob, ref, values=values, seed=seed, approx=approx, progress=progress)
    members = family(sc.table)
    by_name = {t.name: t for t in sc.table}

    def values_of(alloc: Allocation) -> dict[str, Any]:
        return {n: by_name[n].settings[i].value for n, i in alloc.items()}

    def fid_of(alloc: Allocation, label: str) -> dict[str, Any] | None:
        # approximations beyond the cache are encoded again here: part of the check's time
        progress.stage(f"{label}: encoding")
        arrays = {n: approx.array(n, v) for n, v in values_of(alloc).items() if v is not KEEP}
        return evaluate(graph, ref, arrays, progress=progress, label=label)

    # the bisection's checks: the smallest member, then halving the interval to the mildest
    checks = 1 + math.ceil(math.log2(max(1, len(members) - 1)))

    def bisecting(i: int) -> str:
        return f"search check {i} (at most {checks})"

    evals = 0
    lo, lo_fid = 0, None  # the mildest member: every tensor as it is, the original model
    hi = len(members) - 1
    fid = fid_of(members[hi], bisecting(1))
    evals += 1
    if budget.holds(fid):
        lo, lo_fid = hi, fid
    else:
        while hi - lo > 1:
            mid = (lo + hi) // 2
            fid = fid_of(members[mid], bisecting(evals + 1))
            evals += 1
            if budget.holds(fid):
                lo, lo_fid = mid, fid
            else:
                hi = mid
    params = sum(graph.weights[t.name].size for t in sc.table)
    extra = min(REFINE_EXTRA, REFINE_WORK // max(params, 1))
    limit = REFINE_PER_TENSOR * len(sc.table) + extra if params <= LARGE else 0
    if ref.data is not None:
        limit = min(limit, REFINE_IO_WORK // io_cost(params, ref.data))
    alloc, fid, more = _refine(sc.table, members[lo], lo_fid, budget, fid_of, limit)
    return Found(values_of(alloc), fid, evals + more, len(members), sc, approx.recipe, approx)


def _refine(
    table: list[Sensitivity],
    alloc: Allocation,
    fid: dict[str, Any] | None,
    budget: Budget,
    fid_of: Callable[[Allocation, str], dict[str, Any] | None],
    limit: int,
) -> tuple[Allocation, dict[str, Any] | None, int]:
    """Push single tensors further while the whole model keeps the budget.

    The family moves every tensor by one lambda; the real budget (accuracy on the data, top-1
    agreement) is not the squared output error the family trades, so single moves it did not
    consider often still hold. Moves are tried best predicted bytes-per-error first. Accuracy on a
    sample set is not monotone in a setting (lenet300: its last layer one step coarser lost 1.2
    points, two steps 0.5), so after a failed move a tensor tries the setting after it, and stops
    at its STRIKES-th failure in a row. At most ``limit`` whole-model checks.
    """
    alloc = dict(alloc)
    strikes: dict[str, int] = {}
    evals = 0
    while evals < limit:
        moves = []
        for t in table:
            k = strikes.get(t.name, 0)
            if k >= STRIKES:
                continue
            cur = t.settings[alloc[t.name]]
            # the settings with fewer bytes, least extra error first; past k failed ones
            nxt = sorted((s.error, -s.bytes, i) for i, s in enumerate(t.settings) if s.bytes < cur.bytes)
            if len(nxt) <= k:
                continue
            err, neg, i = nxt[k]
            gain = cur.bytes + neg
            moves.append((-(gain / max(err * err - cur.error * cur.error, 1e-12)), t.name, i))
        if not moves:
            break
        _, name, i = min(moves)
        trial = {**alloc, name: i}
        f = fid_of(trial, f"refine check {evals + 1} (at most {limit})")
        evals += 1
        if budget.holds(f):
            alloc, fid = trial, f
            strikes[name] = 0
        else:
            strikes[name] = strikes.get(name, 0) + 1
    return alloc, fid, evals


def polish(
    graph: Graph,
    knob: Knob,
    budget: Budget,
    ref: Reference,
    found: Found,
    *,
    seed: int = 0,
    progress: Progress = SILENT,
) -> Found:
    """Each tensor, most bytes first, tried once at ``knob.between`` its value and the next coarser
    one of the grid, kept where the whole model still keeps the budget. The grid is coarse where
    one step moves a large layer's bytes by a tenth (quarter octaves of rdoq's step), and its next
    coarser value already failed or was out of the refinement's reach. Small models only (at most
    LARGE parameters), one whole-model check per tensor."""
    if knob.between is None or found.fidelity is None:
        return found
    table = [t for t in found.scan.table if found.values[t.name] is not KEEP]
    params = sum(graph.weights[t.name].size for t in table)
    if params > LARGE:
        return found
    # the search's own approximations where they are this knob's (its cache spares re-encoding
    # every tensor for the first check)
    approx = found.approx
    if approx is None or approx.graph is not graph or approx.knob != knob or approx.seed != seed:
        approx = Approximations(graph, knob, seed)
    values, evals = dict(found.values), 0
    fid: dict[str, Any] | None = found.fidelity

    def current_bytes(t: Sensitivity) -> int:
        return next(s.bytes for s in t.settings if s.value == found.values[t.name])

    table.sort(key=lambda t: -current_bytes(t))
    if ref.data is not None:  # the refinement's cap on checks of a costly model
        table = table[: REFINE_IO_WORK // io_cost(params, ref.data)]
    for t in table:
        grid = [s.value for s in t.settings]
        i = grid.index(values[t.name])
        if i + 1 >= len(grid):
            continue
        mid = knob.between(values[t.name], grid[i + 1])
        if mid in (values[t.name], grid[i + 1]) or approx.get(t.name, mid)[1] >= current_bytes(t):
            continue
        trial = {**values, t.name: mid}
        progress.stage(f"polish check {evals + 1} (at most {len(table)}): encoding")
        arrays = {n: approx.array(n, v) for n, v in trial.items() if v is not KEEP}
        f = evaluate(
            graph, ref, arrays, progress=progress, label=f"polish check {evals + 1} (at most {len(table)})"
        )
        evals += 1
        if budget.holds(f):
            values, fid = trial, f
    return dataclasses.replace(
        found,
        values=values,
        fidelity=fid,
        evaluations=found.evaluations + evals,
        recipe=approx.recipe,
        approx=approx,
    )


def plan_of(found: Found, origin: dict[str, Any]) -> Plan:
    """The per-tensor plan of a search's answer. A first catch-all rule keeps integer weights coded
    losslessly as under the preset; a kept tensor is excluded."""
    rules = [Rule(found.recipe(found.scan.knob.values[0]))]
    for n, v in found.values.items():
        rules.append(Rule(None, exclude=True, name=n) if v is KEEP else Rule(found.recipe(v), name=n))
    return Plan(rules, origin)
