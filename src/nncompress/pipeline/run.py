"""One compress run, start to finish: load, reference outputs, the plan, the artifact, fidelity, the report.

`compress` returns a `Result` whose artifact waits in a private temp file until `save` moves it
where the user wants it (atomically, never over the input, never over a file without ``force``).
The CLI and the Python API (`nncompress.compress`) both go through here.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import importlib.util
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nncompress._tempfiles import temp_dir
from nncompress.errors import NNCError, UnsupportedError
from nncompress.ir import Graph
from nncompress.pipeline.artifacts import build_artifact
from nncompress.pipeline.budget import Budget
from nncompress.pipeline.engine import compress_graph
from nncompress.pipeline.gates import failed_gates
from nncompress.pipeline.recipe import Plan, plan_from
from nncompress.pipeline.report import SCHEMA, gzip_baseline
from nncompress.pipeline.tuning import budgeted as _budgeted
from nncompress.pipeline.tuning import tuned_knob
from nncompress.progress import SILENT, Progress

if TYPE_CHECKING:
    from collections.abc import Callable

    import numpy as np

    from nncompress.fidelity import Reference
    from nncompress.finetune import TrainOptions
    from nncompress.inputs import EvalData
    from nncompress.pipeline.knobs import Knob


@dataclass
class Result:
    """A compress run: its report (schema ``nncompress.compress/1``), the compressed graph and the
    artifact, in a temp file until `save` (None on a dry run)."""

    report: dict[str, Any]
    graph: Graph
    path: Path | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def fidelity(self) -> dict[str, Any] | None:
        fid: dict[str, Any] | None = self.report.get("fidelity")
        return fid

    @property
    def ratio(self) -> float | None:
        """Input file bytes over artifact bytes (None on a dry run)."""
        r: float | None = self.report.get("totals", {}).get("ratio")
        return r

    @property
    def artifact_bytes(self) -> bytes:
        if self.path is None:
            raise ValueError("a dry run writes no artifact")
        return self.path.read_bytes()

    def gates(
        self, *, max_drop: float | None = None, min_ratio: float | None = None, max_error: float | None = None
    ) -> list[str]:
        """The gates this result fails (see `gates.failed_gates`); recorded in the report."""
        failed = failed_gates(
            self.ratio or 0.0,
            self.fidelity,
            max_drop,
            min_ratio,
            self.report.get("fidelity_not_measured"),
            max_error,
        )
        self.report["gates"] = failed
        return failed


def _rdoq_steps(plan: Plan, knob: Knob | None) -> tuple[list[Any], list[Any]]:
    """The rdoq options of the steps compress runs as written (the user's, or the preset's own),
    and of the search's other templates (tried only where their data exists)."""
    from nncompress.passes import parse_pipeline

    def rdoq(specs: list[str]) -> list[Any]:
        return [opts for spec in specs for name, opts in parse_pipeline(spec) if name == "rdoq"]

    specs = [r.recipe.passes for r in plan.rules if r.recipe is not None and r.recipe.passes]
    if knob is not None:
        specs.append(knob.template.format(knob.values[0]).split(",")[0])
    variants = [] if knob is None else [t.format(knob.values[0]).split(",")[0] for t in knob.variants]
    return rdoq(specs), rdoq(variants)


def _data_statistics(
    graph: Graph, plan: Plan, knob: Knob | None, ref: Reference, progress: Progress
) -> list[str]:
    """What rdoq steps ask of ``--data``: squared gradients for ``weighting=fisher``
    (`passes.rdoq.FISHER`), input second moments for ``compensate`` (`passes.rdoq.HESSIAN`), put
    where the pass reads them; a note for each, saying what they came from or why not."""
    from nncompress.passes.rdoq import FISHER, HESSIAN

    asked, variants = _rdoq_steps(plan, knob)
    real = ref.data is not None and not ref.data.random
    notes = []
    for key, measure in ((FISHER, _fisher), (HESSIAN, _moments)):
        wanted = any(key in o.statistics() for o in asked)
        # a search variant that needs data is simply not tried without it
        if wanted or (real and any(key in o.statistics() for o in variants)):
            notes.append(measure(graph, ref, progress))
    return notes


def _no_data(ref: Reference, torch: bool) -> str | None:
    if ref.data is None or ref.out is None:
        return "the model did not run"
    if ref.data.random:
        return "no --data"
    if torch and importlib.util.find_spec("torch") is None:
        return "torch is not installed"
    return None


def _measure(
    graph: Graph,
    ref: Reference,
    progress: Progress,
    key: str,
    stage: str,
    compute: Callable[[Graph, EvalData, list[str]], tuple[dict[str, np.ndarray], int] | None],
    explain: Callable[[Exception], str | None],
    *,
    torch: bool,
) -> tuple[int | None, str | None]:
    """Run ``compute`` on the float weights and ``--data``, its arrays put in ``graph.meta.extra``
    under ``key``: (samples, None), or (None, why not; None when ``compute`` found nothing to
    measure). ``explain`` words an exception ``compute`` may raise on a model it cannot run (None:
    not one of those, raised again)."""
    why = _no_data(ref, torch=torch)
    if why is not None:
        return None, why
    progress.stage(stage)
    names = [n for n, w in graph.weights.items() if w.dtype.kind == "f" and w.size > 0]
    assert ref.data is not None
    try:
        got = compute(graph, ref.data, names)
    except Exception as e:
        told = explain(e)
        if told is None:
            raise
        return None, told
    if got is None:
        return None, None
    graph.meta.extra[key], n = got
    return n, None


def _fisher(graph: Graph, ref: Reference, progress: Progress) -> str:
    """The squared gradients on ``--data`` in ``graph.meta.extra[FISHER]``, and the note."""
    from nncompress.passes.rdoq import FISHER

    def explain(e: Exception) -> str | None:
        if isinstance(e, NNCError):  # an op the torch translation lacks
            return f"torch cannot run it ({e.detail})"
        if isinstance(e, (RuntimeError, ValueError, TypeError, IndexError)):  # torch's, on a batch of 1
            return f"torch cannot run it one sample at a time ({type(e).__name__})"
        return None

    def compute(g: Graph, data: EvalData, names: list[str]) -> tuple[dict[str, np.ndarray], int] | None:
        from nncompress.torch.fisher import squared_gradients

        return squared_gradients(g, data, names)

    stage = "fisher sensitivity (squared gradients)"
    n, why = _measure(graph, ref, progress, FISHER, stage, compute, explain, torch=True)
    if n is not None:
        return f"rdoq fisher weighting: squared gradients on the first {n} samples of the data"
    return f"rdoq fisher weighting: magnitude weighting used instead ({why or 'the compared output is not class scores'})"


def _moments(graph: Graph, ref: Reference, progress: Progress) -> str:
    """The layers' input second moments on ``--data`` in ``graph.meta.extra[HESSIAN]``, and the note."""
    from nncompress.hessian import input_moments
    from nncompress.passes.rdoq import HESSIAN

    def explain(e: Exception) -> str | None:  # an op the executor lacks
        return f"the reference executor cannot run it ({e.detail})" if isinstance(e, NNCError) else None

    stage = "rdoq compensation: input second moments"
    n, why = _measure(graph, ref, progress, HESSIAN, stage, input_moments, explain, torch=False)
    if n is not None:
        kernels = len(graph.meta.extra[HESSIAN])
        return f"rdoq compensation: input second moments of {kernels} kernels on the first {n} samples of the data"
    return f"rdoq compensation: not applied ({why or 'no Dense or Conv kernel it applies to'})"


def compress(
    model: str | os.PathLike[str] | Graph,
    *,
    method: str | None = None,
    pipeline: str | None = None,
    recipe: str | os.PathLike[str] | None = None,
    budget: float | None = None,
    plan: Plan | None = None,
    data: str | os.PathLike[str] | None = None,
    samples: int | None = None,
    input_shapes: dict[str | None, tuple[int | None, ...]] | None = None,
    seed: int = 0,
    dry_run: bool = False,
    trust_pickle: bool = False,
    keep_training_state: bool = False,
    max_drop: float | None = None,
    max_error: float | None = None,
    finetune: TrainOptions | None = None,
    progress: Progress = SILENT,
) -> Result:
    """Compress ``model`` (a path, or a graph from `nncompress.io.load`) by one recipe.

    The recipe is ``method`` (a preset), ``pipeline`` (steps), ``recipe`` (a TOML file) or a
    ready ``plan``; the default is the sham preset. Fidelity is measured on ``data`` (an .npz)
    or seeded random inputs; ``samples`` caps the count.

    A preset keeps a fidelity budget (`pipeline.budget`): ``max_drop`` (points) and/or
    ``max_error`` (relative output error), else the default one. With a budget given, each
    tensor's setting is searched for the smallest file that keeps it (`pipeline.search`); with the
    default one, the preset's settings are kept where they hold and backed off tensor by tensor
    where they do not. ``pipeline`` and ``recipe`` settings are used as written (``max_drop`` is
    then only a gate).

    ``finetune`` (`nncompress.finetune.TrainOptions`) trains the compressed model by distillation
    from the original on its data: pruned weights before sharing (where the recipe shares), then the
    compressed representation itself, every mask, support and assignment kept.

    ``progress`` (`nncompress.progress`) hears each stage: loading, the reference run, encoding
    (counting weights), the budget's checks and search, the artifact, the fidelity check.
    """
    from nncompress.errors import UsageError
    from nncompress.fidelity import Reference, compressed, reference
    from nncompress.inputs import signatures
    from nncompress.io import load

    if samples is not None and samples < 1:
        raise UsageError(f"--samples must be at least 1, got {samples}")
    plan = plan if plan is not None else plan_from(method, pipeline, recipe, budget)
    if isinstance(model, Graph):
        graph, src = model, Path(model.meta.path)
    else:
        src = Path(model)
        progress.stage(f"loading {src.name}")
        graph = load(src, trust_pickle=trust_pickle)
    if keep_training_state:
        graph.meta.extra["keep_training_state"] = True
    shapes = input_shapes or {}
    # gzip -9 of a large file takes as long as compressing it; zlib releases the GIL, so it runs beside.
    gz = concurrent.futures.ThreadPoolExecutor(1) if not dry_run and src.is_file() else None
    gz_size = gz.submit(gzip_baseline, src) if gz else None
    # The original's outputs come first, so that compress can drop each original weight once it
    # is encoded: the model is never held twice. A model nothing here can run still compresses.
    if not dry_run:
        ref = reference(graph, data_path=data, samples=samples, seed=seed, shapes=shapes, progress=progress)
    else:  # nothing runs, but the input shapes are checked and shown
        ref = Reference(reason="dry run")
        with contextlib.suppress(UnsupportedError):
            specs, ref.notes = signatures(graph, shapes) if graph.has_graph else ([], [])
            ref.inputs = [s.as_dict() for s in specs]
    knob = tuned_knob(plan)
    keep = (Budget.of(max_drop, max_error) or Budget.default()) if knob is not None else None
    data_notes = [] if dry_run else _data_statistics(graph, plan, knob, ref, progress)
    tuning: dict[str, Any] | None = None
    measured = None  # the compressed graph's fidelity, where the budget already measured it
    work, tuned = graph, None  # the graph compressed: the original, or its pruned and retrained copy
    try:
        if finetune is not None and not dry_run:
            from nncompress import finetune as ft

            finetune.check()
            tdata = ft.load_train(graph, finetune.data, shapes=shapes)
            train_data = ft.TrainData(
                tdata,
                ft.teacher_outputs(graph, tdata, batch=max(finetune.batch_size, 256), progress=progress),
            )
            originals = ft.snapshot(graph)
            pretrained = None
            # A fidelity budget judges settings against the original: a pruned and retrained copy
            # already differs from it, so the budget would keep every tensor as that copy (lenet300's
            # sham preset: 1.0x). Under a budget the search decides on the original, then training.
            if knob is None:
                work, pretrained = ft.pretrain_pruned(
                    graph, plan, train_data, finetune, seed=seed, progress=progress
                )
        if knob is not None and keep is not None and not dry_run:
            plan, tuning, g2, entries, rows, measured = _budgeted(work, plan, knob, keep, ref, seed, progress)
        else:
            g2, entries, rows = compress_graph(work, plan, seed=seed, progress=progress, release=not dry_run)
        if finetune is not None and not dry_run:
            before = (
                measured[0]
                if measured is not None
                else compressed(ref, g2, progress=progress, label="fidelity before fine-tuning")[0]
            )
            tuned = ft.train(g2, train_data, finetune, keep_zeros=lambda n: True, progress=progress)
            entries, rows = ft.refresh(entries, rows, g2, originals)
            measured = None  # the trained model is measured again
            tuned["pruned_first"] = pretrained
            tuned["before"] = before
            # what the artifact records: the options, not the timings (artifacts are byte-identical)
            kept = {
                k: v for k, v in tuned.items() if k not in ("seconds", "device", "before", "pruned_first")
            }
            plan = dataclasses.replace(plan, origin={**plan.origin, "finetune": kept})
    except NNCError as e:
        if e.path is None:  # a pass's refusal (NaN weights...) names the weight; the line names the file
            e.path = str(src)
        raise
    in_bytes = src.stat().st_size if src.is_file() else 0
    report: dict[str, Any] = {
        "schema": SCHEMA,
        "input": str(src),
        "output": None,
        "recipe": plan.origin,
        "seed": seed,
        "layers": rows,
    }
    if tuned is not None:
        report["finetune"] = tuned
    if ref.inputs:
        report["inputs"] = ref.inputs
    notes: list[str] = list(graph.meta.notes) + ref.notes + data_notes
    if dry_run:
        est = sum(e.payload_bytes for e in entries)
        report["totals"] = {"input_bytes": in_bytes, "estimated_payload_bytes": est}
        report["dry_run"] = True
        report["notes"] = notes
        return Result(report, g2, None, notes)
    from nncompress.artifact import write_artifact

    progress.stage("building the artifact")  # the skeleton: the model file without its weights
    art = build_artifact(graph, entries, plan, seed)
    fid, unmeasured = measured if measured is not None else compressed(ref, g2, progress=progress)
    if unmeasured:
        notes.append(f"fidelity not measured: {unmeasured}")
    if tuning is not None:
        assert keep is not None
        tuning["held"] = keep.holds(fid)
        report["budget"] = tuning
        notes.append(tuning.pop("note"))
        if fid is not None and not tuning["held"]:
            notes.append(f"budget not kept: {keep.measured(fid)} ({keep.describe()})")
    path = temp_dir("out") / "artifact.nnc"
    progress.stage("writing the artifact")
    out_bytes = write_artifact(art, path)
    if gz_size is not None and not gz_size.done():  # the baseline runs beside: say what is waited for
        progress.stage("gzip -9 of the input (baseline)")
    payload = sum(e.payload_bytes for e in entries)
    report["totals"] = {
        "input_bytes": in_bytes,
        "output_bytes": out_bytes,
        "ratio": in_bytes / out_bytes,
        "gzip9_input_bytes": gz_size.result() if gz_size else 0,
        "payload_bytes": payload,
        "skeleton_member_bytes": art.skeleton_size,
        "skeleton_bytes": art.stored.get(f"skeleton/{art.skeleton_name}", 0),
        "container_bytes": out_bytes - payload,
    }
    report["fidelity"] = fid
    report["fidelity_not_measured"] = unmeasured
    report["gates"] = []
    report["notes"] = notes
    if gz is not None:
        gz.shutdown()
    return Result(report, g2, path, notes)


def save(
    result: Result, out: str | os.PathLike[str], *, force: bool = False, progress: Progress = SILENT
) -> Path:
    """Move the result's artifact to ``out`` (a ``.nnc``): atomically, never over the input, and
    over an existing file only with ``force``. Records the path in the report."""
    from nncompress.errors import UsageError
    from nncompress.io._atomic import atomic_path, check_output

    target = Path(out)
    if result.path is None:
        raise UsageError("a dry run has no artifact to save")
    if target.suffix != ".nnc":
        raise UsageError(f"the output must end in .nnc, got {target}", hint="Use decompress to write a model")
    check_output(target, force=force, inputs=(Path(result.report["input"]),))
    progress.stage(f"saving {target.name}")
    with atomic_path(target) as tmp:
        shutil.copyfile(result.path, tmp)
    result.report["output"] = str(target)
    return target
