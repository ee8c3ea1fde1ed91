"""A preset under a fidelity budget: keep its settings where they hold, search per tensor where not.

`budgeted` is what compress runs for ``--method PRESET`` (not for ``--pipeline`` or ``--recipe``,
whose settings are used as written):

- with the default budget and a preset that has fixed settings, the preset runs as it always did;
  only when its fidelity misses the budget are tensors backed off (each to a milder value of the
  knob, or kept as they are) by the search, never pushed further than the preset;
- with ``--max-drop``/``--max-error``, or for ``smallest`` (no fixed setting), every tensor's value
  is searched over the knob's whole range for the smallest file that keeps the budget.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from nncompress.artifact import TensorEntry
from nncompress.fidelity import Reference, compressed
from nncompress.ir import Graph
from nncompress.passes.rdoq import RDOQ
from nncompress.pipeline.budget import Budget
from nncompress.pipeline.engine import compress_graph
from nncompress.pipeline.knobs import KNOBS, Knob
from nncompress.pipeline.recipe import Plan
from nncompress.pipeline.search import KEEP, Found, plan_of, polish, search
from nncompress.progress import SILENT, Progress

Measured = tuple[dict[str, Any] | None, str | None]  # `fidelity.compressed`'s answer
# The plan used, the report's "budget" record, `compress_graph`'s results, and the fidelity of that
# graph where it was measured here already (None: the caller measures it)
Outcome = tuple[Plan, dict[str, Any], Graph, list[TensorEntry], list[dict[str, Any]], Measured | None]


def tuned_knob(plan: Plan) -> Knob | None:
    """The knob of a plan made from ``--method PRESET`` alone (no ``--budget`` setting), else None."""
    name = plan.origin.get("method")
    if name in KNOBS and len(plan.rules) == 1 and "format_params" not in plan.origin:
        return KNOBS[name]
    return None


def budgeted(
    graph: Graph,
    plan: Plan,
    knob: Knob,
    budget: Budget,
    ref: Reference,
    seed: int,
    progress: Progress = SILENT,
) -> Outcome:
    """Compress ``graph`` by the preset of ``plan`` under ``budget`` (see `Outcome`; the "budget"
    record carries a "note" for the notes). ``progress`` hears each phase: encoding, the check of
    the preset's settings, the search's, the final encoding."""
    info: dict[str, Any] = {"budget": budget.as_dict(), "option": knob.option, "preset_value": knob.preset}
    if not ref.measured:
        g2, entries, rows = compress_graph(graph, plan, seed=seed, progress=progress, release=True)
        info.update(searched=False, note=f"budget ({budget.describe()}) not applied: {ref.reason}")
        return plan, info, g2, entries, rows, None
    values = knob.values
    missed = ""
    if budget.source == "default" and knob.preset is not None:
        g2, entries, rows = compress_graph(graph, plan, seed=seed, progress=progress, release=False)
        measured = compressed(ref, g2, progress=progress, label="preset check")
        fid = measured[0]
        if budget.holds(fid):
            info.update(
                searched=False, note=f"default budget ({budget.describe()}) kept at the preset's settings"
            )
            return plan, info, g2, entries, rows, measured
        missed = budget.measured(fid) if fid is not None else "not measured"
        values = knob.up_to_preset()
    found = search(graph, knob, budget, ref, values=values, seed=seed, progress=progress)
    evaluations = found.evaluations
    if knob.preset is None:
        # each variant's search where its data exists, the smallest payload that keeps the budget
        # kept (the first on a tie)
        for template in knob.variants:
            if not _available(template, graph):
                continue
            alt = dataclasses.replace(knob, template=template)
            other = search(graph, alt, budget, ref, values=values, seed=seed, progress=progress)
            evaluations += other.evaluations
            if budget.holds(other.fidelity) and _payload(other) < _payload(found):
                found, knob = other, alt
    found.evaluations = evaluations
    found = polish(graph, knob, budget, ref, found, seed=seed, progress=progress)
    method = plan.origin["method"]
    origin = {
        "method": method,
        "budget": budget.as_dict(),
        "allocation": {n: "kept" if v is KEEP else knob.template.format(v) for n, v in found.values.items()},
    }
    plan = plan_of(found, origin)
    g2, entries, rows = compress_graph(graph, plan, seed=seed, progress=progress, release=True)
    sc = found.scan
    info.update(
        searched=True,
        values=found.values,
        evaluations=found.evaluations,
        candidates=found.members,
        sensitivity_samples=sc.samples,
        sensitivity_runtime=sc.runtime,
        template=knob.template,
        note=_note(found, knob, budget, missed)
        + ("" if ref.data is None or not ref.data.random else _RANDOM),
    )
    return plan, info, g2, entries, rows, None


def _available(template: str, graph: Graph) -> bool:
    """Whether the data-driven statistics a variant's rdoq step reads were measured."""
    from nncompress.passes import parse_pipeline

    steps = parse_pipeline(template.format(1).split(",")[0])
    needs = [k for _, o in steps if isinstance(o, RDOQ.Options) for k in o.statistics()]
    return all(k in graph.meta.extra for k in needs)


def _payload(found: Found) -> int:
    """The payload bytes of a search's answer, as its scan measured (or estimated) them."""
    return sum(next(s.bytes for s in t.settings if s.value == found.values[t.name]) for t in found.scan.table)


# Random inputs sit far from any real sample: a classifier's answers on them are near ties, so they
# change sooner than on real data and the budget holds the model tighter than it needs.
_RANDOM = " (measured on seeded random inputs, which change answers sooner than real data: --data gives the budget real samples)"


def _note(found: Found, knob: Knob, budget: Budget, missed: str) -> str:
    def show(v: Any) -> str:
        return (
            "kept as is"
            if v is KEEP
            else f"{knob.option} {v:g}"
            if isinstance(v, float)
            else f"{knob.option} {v}"
        )

    sc = found.scan
    kept = all(v is KEEP for v in found.values.values())
    if kept:  # nothing could change without breaking the budget: say it plainly first
        head = (
            f"the budget ({budget.describe()}) holds only with every selected tensor kept as it is: "
            "nothing is compressed (pass --data for real samples, or a looser --max-drop/--max-error); "
        )
    else:
        head = ""
    how = (
        f"{found.evaluations} whole-model checks of {found.members} candidate allocations; sensitivity on "
        f"{sc.samples} samples in the {sc.runtime}"
    )
    if missed:
        changed = found.changed(knob.preset)
        what = ", ".join(f"{n} {show(found.values[n])}" for n in changed[:4]) + (
            ", ..." if len(changed) > 4 else ""
        )
        return head + (
            f"default budget ({budget.describe()}) missed at the preset's settings ({missed}): backed off "
            f"{len(changed)} of {len(found.values)} tensors ({what}; {how})"
        )
    what = ", ".join(f"{n} {show(v)}" for n, v in list(found.values.items())[:4])
    more = ", ..." if len(found.values) > 4 else ""
    return head + (
        f"budget {budget.describe()} ({budget.source}): {knob.option} chosen per tensor ({what}{more}; {how})"
    )
