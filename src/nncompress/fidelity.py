"""How close a compressed model is to its original: run both in the same runtime and compare.

Figures (on the first floating-point output of each model, else the first): top-1 agreement (share of samples whose arg-max class is
unchanged) with a 95 % Wilson interval, mean and max relative output error (per sample
||a - b|| / ||a||), and with labels the accuracy before and after and the drop, with a 95 % interval
for the drop from the paired outcomes (Agresti and Min's adjusted Wald interval for a difference of
paired proportions: 1/2 added to each cell of the before x after correct/wrong table).

The runtime: onnxruntime for ONNX sources (the original from its file, the compressed model from the
file the ONNX writer makes of it), else the reference executor, which is also the fallback. What is
run is fixed by the data and the options (`nncompress.inputs`), never by timing, so the same command
gives the same figures.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nncompress.errors import UnsupportedError
from nncompress.inputs import (
    GUESSES,
    EvalData,
    InputSpec,
    batch_size,
    load_data,
    random_data,
    random_samples,
    signatures,
    with_guess,
)
from nncompress.ir import Graph
from nncompress.progress import SILENT, Progress
from nncompress.runtime import (
    EXECUTOR,
    Runtime,
    RuntimeFailure,
    executor,
    onnx_applies,
    onnxruntime_file,
    onnxruntime_graph,
    outputs,
    torch_applies,
    torchscript_file,
    torchscript_graph,
)

Z95 = 1.959963984540054  # the 97.5 % quantile of the standard normal


@dataclass
class Reference:
    """The original model's outputs, taken before compressing, and how they were computed.

    ``out`` is None when nothing could compute them; ``reason`` then says why.
    """

    data: EvalData | None = None
    out: np.ndarray | None = None
    runtime: str = ""  # EXECUTOR or "onnxruntime X.Y"
    output: str = ""  # the output compared
    batch: int = 1
    reason: str | None = None
    notes: list[str] = field(default_factory=list)
    inputs: list[dict[str, Any]] = field(default_factory=list)

    @property
    def measured(self) -> bool:
        return self.out is not None


def _runtimes(graph: Graph) -> list[tuple[str, Callable[[], Runtime]]]:
    """The runtimes to try on the original, best first."""
    out: list[tuple[str, Callable[[], Runtime]]] = []
    if onnx_applies(graph) and graph.meta.path:
        out.append(("onnxruntime", lambda: onnxruntime_file(graph.meta.path)))
    if torch_applies(graph) and graph.meta.path:
        names = [v.name for v in graph.inputs]
        out.append(("torch", lambda: torchscript_file(graph.meta.path, names)))
    out.append((EXECUTOR, lambda: executor(graph)))
    return out


def same_runtime(name: str, g2: Graph) -> Runtime:
    """The runtime the reference ran in, on the compressed graph (as decompress would write it)."""
    if name == EXECUTOR:
        return executor(g2)
    if name.startswith("torch "):
        return torchscript_graph(g2)
    return onnxruntime_graph(g2)


def reference(
    graph: Graph,
    *,
    data_path: str | os.PathLike[str] | None = None,
    samples: int | None = None,
    seed: int = 0,
    shapes: dict[str | None, tuple[int | None, ...]] | None = None,
    progress: Progress = SILENT,
) -> Reference:
    """Run the original ``graph`` on ``--data`` (or seeded random inputs) in the first runtime that
    can. Errors in the user's data or options raise; a model nothing can run gives a Reference with
    a reason instead. ``progress`` hears a stage per runtime tried, counting samples."""
    if not graph.has_graph:
        return Reference(
            reason="weights-only input: there is no graph to run (fidelity is weight error only)"
        )
    try:
        specs, notes = signatures(graph, shapes)
    except UnsupportedError as e:
        return Reference(reason=e.detail)
    guessing = data_path is None and any(s.guessed for s in specs)
    if data_path is not None:
        data = load_data(data_path, specs, samples=samples)
        notes = [n for n in notes if "guessed" not in n]  # the data's shapes are used
    else:
        params = sum(w.size for w in graph.weights.values())
        data = random_data(specs, samples or random_samples(params), seed, graph.meta.path or None)
    reasons = []
    for kind, make in _runtimes(graph):
        # the stage starts before the runtime does: an onnxruntime session of a large model takes seconds
        progress.stage(f"original's outputs ({kind})", data.n)
        try:
            rt = make()
        except RuntimeFailure as e:
            reasons.append(str(e))
            continue
        try:
            if guessing:
                data, guess_note = _settle_guesses(rt, specs, data.n, seed)
                if guess_note:
                    notes = [n for n in notes if "guessed" not in n] + [guess_note]
            batch = batch_size(data)
            out = outputs(_counted(rt, data, progress), data, batch)
        except RuntimeFailure as e:
            reasons.append(str(e))
            continue
        finally:
            rt.close()
        return Reference(
            data,
            out,
            rt.name,
            rt.output,
            batch,
            None,
            notes + data.notes + [f"{r}: fidelity measured in the {rt.name} instead" for r in reasons],
            [s.as_dict() for s in data.specs],
        )
    return Reference(
        data, None, "", "", 1, "; ".join(reasons), notes + data.notes, [s.as_dict() for s in data.specs]
    )


def _settle_guesses(rt: Runtime, specs: list[InputSpec], n: int, seed: int) -> tuple[EvalData, str | None]:
    """Random data with the first of GUESSES for the guessed dims that the model runs on (one sample
    tried each), and a note saying what was used. RuntimeFailure (the first one's) if none runs."""
    first: RuntimeFailure | None = None
    for g in GUESSES:
        cand = with_guess(specs, g)
        probe = random_data(cand, 1, seed)
        try:
            outputs(rt, probe, 1)
        except RuntimeFailure as e:
            first = first or e
            continue
        data = random_data(cand, n, seed)
        dims = sorted({sym for s in cand for sym in s.guessed.values()})
        txt = ", ".join(f"{s.name} {'x'.join(map(str, s.shape))}" for s in cand if s.guessed)
        return data, (
            f"dims {', '.join(dims)} not known from the file: guessed {g} ({txt}; batch axis shown as 1); "
            "pass --input-shape NAME=... to set them"
        )
    assert first is not None
    raise first


def compressed(
    ref: Reference, g2: Graph, *, progress: Progress = SILENT, label: str = "fidelity check"
) -> tuple[dict[str, Any] | None, str | None]:
    """Fidelity figures of the compressed graph ``g2`` against ``ref``, computed in the same runtime;
    (None, reason) when they cannot be. ``progress`` hears the stage ``label``, counting samples."""
    if ref.out is None or ref.data is None:
        return None, ref.reason
    try:
        # making the runtime decodes every weight (and for onnxruntime writes the model): seconds
        # on a large model, so it is a stage of its own
        progress.stage(f"{label}: building the model")
        rt = same_runtime(ref.runtime, g2)
        progress.stage(label, ref.data.n)
        try:
            b = outputs(_counted(rt, ref.data, progress), ref.data, ref.batch)
        finally:
            rt.close()
    except RuntimeFailure as e:
        return None, f"the compressed model does not run: {e}"
    return figures(ref.out, b, ref.data, ref.runtime, ref.output), None


def wilson(k: int, n: int, z: float = Z95) -> list[float]:
    """The Wilson score interval of a proportion k/n."""
    if n <= 0:
        return [0.0, 1.0]
    p = k / n
    den = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return [max(0.0, mid - half), min(1.0, mid + half)]


def paired_drop_interval(before: np.ndarray, after: np.ndarray, z: float = Z95) -> list[float]:
    """A 95 % interval for mean(before) - mean(after) of paired 0/1 outcomes (Agresti and Min, 2005:
    the Wald interval after adding 1/2 to each of the four cells)."""
    n = len(before)
    n10 = int(np.count_nonzero(before & ~after))  # right before, wrong after
    n01 = int(np.count_nonzero(~before & after))
    m = n + 2.0
    p10, p01 = (n10 + 0.5) / m, (n01 + 0.5) / m
    d = p10 - p01
    se = math.sqrt(max(0.0, (p10 + p01 - d * d) / m))
    return [max(-1.0, d - z * se), min(1.0, d + z * se)]


def _finite(v: float) -> float | None:
    return float(v) if math.isfinite(v) else None


def _counted(rt: Runtime, data: EvalData, progress: Progress) -> Runtime:
    """``rt``, telling ``progress`` how many samples each of its runs computed."""
    if progress is SILENT:
        return rt
    run = rt.fn
    axes = [(s.name, s.batch_axis) for s in data.specs if s.batch_axis is not None]

    def counted(feeds: dict[str, np.ndarray]) -> np.ndarray:
        out = run(feeds)
        # a run on unbatched inputs computes every sample at once
        progress.advance(feeds[axes[0][0]].shape[axes[0][1]] if axes else data.n)
        return out

    rt.fn = counted
    return rt


FIGURE_ROWS = 256  # rows compared at a time: the outputs may be a memory-mapped file


def figures(
    a: np.ndarray, b: np.ndarray, data: EvalData, runtime: str = EXECUTOR, output: str = ""
) -> dict[str, Any]:
    """Fidelity figures of outputs ``b`` against reference outputs ``a`` (rows: samples) of the
    model's ``output``, computed in float64 a few rows at a time."""
    a = a.reshape(len(a), -1)
    b = b.reshape(len(b), -1)
    rel_parts, ta_parts, tb_parts = [], [], []
    for i in range(0, len(a), FIGURE_ROWS):
        ai = np.asarray(a[i : i + FIGURE_ROWS], dtype=np.float64)
        bi = np.asarray(b[i : i + FIGURE_ROWS], dtype=np.float64)
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            diff = np.linalg.norm(ai - bi, axis=1)
            norm = np.linalg.norm(ai, axis=1)
            rel_parts.append(diff / np.maximum(norm, np.finfo(np.float64).tiny))
        ta_parts.append(ai.argmax(axis=1))
        tb_parts.append(bi.argmax(axis=1))
    rel = np.concatenate(rel_parts)
    ta, tb = np.concatenate(ta_parts), np.concatenate(tb_parts)
    agree = ta == tb
    res: dict[str, Any] = {
        "data": data.origin,
        "samples": data.n,
        "runtime": runtime,
        "output": output,
        "output_width": int(a.shape[1]),
        "top1_agreement": float(agree.mean()),
        "top1_agreement_ci95": wilson(int(agree.sum()), len(agree)),
        "rel_error_mean": _finite(float(rel.mean())),
        "rel_error_max": _finite(float(rel.max())),
    }
    if data.y is not None and len(a) == len(data.y):
        y = data.y.reshape(len(data.y), -1).argmax(1) if data.y.ndim > 1 else data.y
        before, after = ta == y, tb == y
        res["accuracy_before"] = float(before.mean())
        res["accuracy_after"] = float(after.mean())
        # from the counts: 0.922 - 0.912 is 0.010000000000000009, which a 1-point budget refused
        res["accuracy_drop"] = (int(before.sum()) - int(after.sum())) / len(before)
        res["accuracy_drop_ci95"] = paired_drop_interval(before, after)
    return res


def run_model(
    graph: Graph, data: EvalData, *, progress: Progress = SILENT, label: str = "running the model"
) -> tuple[np.ndarray, str, str]:
    """The compared output of ``graph`` on ``data`` (rows: samples), the runtime's name and the
    output's name: onnxruntime for an ONNX source (on the file the ONNX writer makes of it), else
    the reference executor. RuntimeFailure when neither can run it. ``progress`` hears the stage
    ``label`` per runtime tried, counting samples."""
    reasons = []
    makers: list[Callable[[], Runtime]] = []
    if onnx_applies(graph):
        makers.append(lambda: onnxruntime_graph(graph))
    if torch_applies(graph):
        makers.append(lambda: torchscript_graph(graph))
    makers.append(lambda: executor(graph))
    for make in makers:
        try:
            progress.stage(label, data.n)  # before make(): preparing a runtime takes seconds
            rt = make()
            try:
                return outputs(_counted(rt, data, progress), data, batch_size(data)), rt.name, rt.output
            finally:
                rt.close()
        except RuntimeFailure as e:
            reasons.append(str(e))
    raise RuntimeFailure("; ".join(reasons))
