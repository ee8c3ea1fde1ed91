"""`nncompress compress MODEL -o OUT.nnc`: a truly smaller file, with an honest report."""

from __future__ import annotations

import concurrent.futures
import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from nncompress.cli._common import MAX_MEMORY_HELP, console, emit_json, human_bytes, set_max_memory, shape_str

app = typer.Typer()


def gzip_baseline(path: Path) -> int:
    """Bytes of ``gzip -9`` of the input: what a user gets for free."""
    import zlib

    c = zlib.compressobj(9, zlib.DEFLATED, 31)
    n = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            n += len(c.compress(chunk))
    return n + len(c.flush())


@app.command("compress")
def compress_cmd(
    model: Annotated[
        Path, typer.Argument(help="Model file: .h5, .keras, .pt/.pt2, .onnx.", show_default=False)
    ],
    out: Annotated[
        Path | None, typer.Option("-o", "--output", help="Output .nnc path (default: MODEL.nnc).")
    ] = None,
    method: Annotated[
        str | None,
        typer.Option(
            "--method",
            "-m",
            help="Preset: prune, csr, quantize, im, ham, sham, cser, lowrank, sss, dct, psm.",
        ),
    ] = None,
    pipeline: Annotated[
        str | None,
        typer.Option(help='Explicit steps, e.g. "prune:sparsity=0.9,quantize:method=kmeans:k=32,sham".'),
    ] = None,
    budget: Annotated[
        float | None,
        typer.Option(help="Share of the original parameters for lowrank, sss, dct, psm (e.g. 0.1)."),
    ] = None,
    recipe: Annotated[
        Path | None, typer.Option(help="TOML recipe: [[rule]] tables matching layers (docs/recipes.md).")
    ] = None,
    data: Annotated[
        Path | None,
        typer.Option(
            help=".npz with one array per input, keyed by name (x for a one-input model), y the labels."
        ),
    ] = None,
    input_shape: Annotated[
        list[str] | None,
        typer.Option(
            "--input-shape",
            help="Shape of an input's dynamic dims for random inputs: NAME=1x3x224x224 (repeatable; a bare "
            "1x3x224x224 for a one-input model). Default: what the file says, else 32 (said in a note).",
        ),
    ] = None,
    samples: Annotated[
        int | None,
        typer.Option(
            help="Samples used for fidelity. Default: the first 1000 of --data, else 64 seeded random inputs."
        ),
    ] = None,
    max_drop: Annotated[
        float | None,
        typer.Option(
            help="Gate: max accuracy drop in points (with labels) or top-1 disagreement in % (without)."
        ),
    ] = None,
    min_ratio: Annotated[float | None, typer.Option(help="Gate: min file-size ratio input/output.")] = None,
    dry_run: Annotated[bool, typer.Option(help="Print the per-layer plan; write nothing.")] = False,
    force: Annotated[bool, typer.Option(help="Overwrite an existing output.")] = False,
    keep_failed: Annotated[bool, typer.Option(help="Write the artifact even when a gate fails.")] = False,
    seed: Annotated[int, typer.Option(help="Seed of every random choice.")] = 0,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress or table on stderr.")] = False,
    trust_pickle: Annotated[bool, typer.Option(help="Allow unpickling a .pt you trust.")] = False,
    keep_training_state: Annotated[
        bool,
        typer.Option(
            help="Keep optimizer state, schedulers and step counters (left out of the artifact by default)."
        ),
    ] = False,
    max_memory: Annotated[str | None, typer.Option(help=MAX_MEMORY_HELP)] = None,
) -> None:
    """Compress MODEL into a .nnc artifact and report sizes and fidelity."""
    set_max_memory(max_memory)
    from nncompress.artifact import write_artifact
    from nncompress.compress import build_artifact, compress_graph, plan_from
    from nncompress.errors import GateError, NNCError, UnsupportedError, UsageError
    from nncompress.fidelity import Reference, compressed, reference
    from nncompress.inputs import parse_input_shapes, signatures
    from nncompress.io import load
    from nncompress.io._atomic import atomic_path, check_output

    if samples is not None and samples < 1:
        raise UsageError(f"--samples must be at least 1, got {samples}")
    for name, v in (("--max-drop", max_drop), ("--min-ratio", min_ratio)):
        if v is not None and v < 0:
            raise UsageError(f"{name} must be >= 0, got {v}")
    plan = plan_from(method, pipeline, recipe, budget)
    target = out or model.with_suffix(".nnc")
    if target.suffix != ".nnc":
        raise UsageError(f"the output must end in .nnc, got {target}", hint="Use decompress to write a model")
    if not dry_run:
        check_output(target, force=force, inputs=(model,))
    shapes = parse_input_shapes(input_shape)
    graph = load(model, trust_pickle=trust_pickle)
    if keep_training_state:
        graph.meta.extra["keep_training_state"] = True
    # gzip -9 of a large file takes as long as compressing it; zlib releases the GIL, so it runs beside.
    gz = concurrent.futures.ThreadPoolExecutor(1) if not dry_run else None
    gz_size = gz.submit(gzip_baseline, model) if gz else None
    # The original's outputs come first, so that compress can drop each original weight once it
    # is encoded: the model is never held twice. A model nothing here can run still compresses.
    if not dry_run:
        ref = reference(graph, data_path=data, samples=samples, seed=seed, shapes=shapes)
    else:  # nothing runs, but the input shapes are checked and shown
        ref = Reference(reason="dry run")
        with contextlib.suppress(UnsupportedError):
            specs, ref.notes = signatures(graph, shapes) if graph.has_graph else ([], [])
            ref.inputs = [s.as_dict() for s in specs]
    try:
        with _progress(len(graph.weights), enabled=not quiet and not json_out) as step:
            g2, entries, rows = compress_graph(graph, plan, seed=seed, on_weight=step, release=not dry_run)
    except NNCError as e:
        if e.path is None:  # a pass's refusal (NaN weights...) names the weight; the line names the file
            e.path = str(model)
        raise
    in_bytes = model.stat().st_size
    report: dict[str, Any] = {
        "schema": "nncompress.compress/1",
        "input": str(model),
        "output": None if dry_run else str(target),
        "recipe": plan.origin,
        "seed": seed,
        "layers": rows,
    }
    if ref.inputs:
        report["inputs"] = ref.inputs
    notes: list[str] = list(graph.meta.notes) + ref.notes
    if dry_run:
        est = sum(e.payload_bytes for e in entries)
        report["totals"] = {"input_bytes": in_bytes, "estimated_payload_bytes": est}
        report["dry_run"] = True
        _finish(report, json_out, quiet, notes)
        return
    art = build_artifact(graph, entries, plan, seed)
    fid, unmeasured = compressed(ref, g2)
    if unmeasured:
        notes.append(f"fidelity not measured: {unmeasured}")
    with atomic_path(target) as tmp:
        out_bytes = write_artifact(art, tmp)
        report["totals"] = {
            "input_bytes": in_bytes,
            "output_bytes": out_bytes,
            "ratio": in_bytes / out_bytes,
            "gzip9_input_bytes": gz_size.result() if gz_size else gzip_baseline(model),
            "payload_bytes": sum(e.payload_bytes for e in entries),
            "skeleton_member_bytes": art.skeleton_size,
        }
        report["fidelity"] = fid
        report["fidelity_not_measured"] = unmeasured
        failed = _gates(report, fid, max_drop, min_ratio, unmeasured)
        report["gates"] = failed
        if failed and not keep_failed:
            tmp.unlink()
            report["output"] = None
            notes.append("gate failed: nothing written (pass --keep-failed to keep the artifact)")
            _finish(report, json_out, quiet, notes)
            raise GateError("; ".join(failed), path=str(model), hint="Relax the recipe or the gate")
    _finish(report, json_out, quiet, notes)
    if failed:
        raise GateError("; ".join(failed) + " (artifact kept: --keep-failed)", path=str(model))


@contextlib.contextmanager
def _progress(total: int, *, enabled: bool) -> Iterator[Callable[[str], None]]:
    """A per-weight progress bar on stderr, only on a terminal and without --quiet/--json."""
    if not enabled or not console.is_terminal:
        yield lambda name: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    cols = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*cols, console=console, transient=True) as prog:
        task = prog.add_task("compressing", total=total)

        def step(name: str) -> None:
            prog.update(task, advance=1, description=f"encoding {name}")

        yield step


def _gates(
    report: dict[str, Any],
    fid: dict[str, Any] | None,
    max_drop: float | None,
    min_ratio: float | None,
    unmeasured: str | None = None,
) -> list[str]:
    failed = []
    ratio = report["totals"]["ratio"]
    if min_ratio is not None and ratio < min_ratio:
        failed.append(f"size ratio {ratio:.2f}x is below --min-ratio {min_ratio:g}")
    if max_drop is not None and fid is None:
        failed.append(f"--max-drop {max_drop:g} cannot be checked: fidelity was not measured ({unmeasured})")
    if max_drop is not None and fid is not None:
        if "accuracy_drop" in fid:
            drop = 100 * fid["accuracy_drop"]
            what = "accuracy drop"
        else:
            drop = 100 * (1 - fid["top1_agreement"])
            what = "top-1 disagreement"
        if drop > max_drop:
            failed.append(f"{what} {drop:.2f} points exceeds --max-drop {max_drop:g}")
    return failed


def fidelity_line(fid: dict[str, Any]) -> str:
    """One line of fidelity figures for a person."""
    lo, hi = fid["top1_agreement_ci95"]
    line = (
        f"fidelity in {fid['runtime']} on {fid['data']} ({fid['samples']} samples): top-1 agreement "
        f"{fid['top1_agreement']:.1%} (95 % {lo:.1%}-{hi:.1%}), relative output error mean "
        f"{_num(fid['rel_error_mean'])} max {_num(fid['rel_error_max'])}"
    )
    if "accuracy_before" in fid:
        lo, hi = fid["accuracy_drop_ci95"]
        line += (
            f", accuracy {fid['accuracy_before']:.1%} -> {fid['accuracy_after']:.1%} "
            f"(drop {100 * fid['accuracy_drop']:.2f} points, 95 % {100 * lo:.2f} to {100 * hi:.2f})"
        )
    return line


def _num(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.4f}"


def _finish(report: dict[str, Any], json_out: bool, quiet: bool, notes: list[str]) -> None:
    report["notes"] = notes
    if json_out:
        emit_json(report)
    if quiet or json_out:
        return
    t = Table(header_style="bold")
    for col in (
        "layer",
        "op",
        "shape",
        "format",
        "before",
        "after",
        "ratio",
        "bits/w",
        "sparsity",
        "rel err",
    ):
        t.add_column(col, justify="left" if col in ("layer", "op", "shape", "format") else "right")
    for r in report["layers"]:
        t.add_row(
            r["layer"],
            r["op"],
            shape_str(r["shape"]),
            r["format"],
            human_bytes(r["bytes_before"]),
            human_bytes(r["bytes_after"]),
            f"{r['ratio']:.1f}x",
            f"{r['bits_per_weight']:.2f}",
            f"{r['sparsity']:.1%}",
            f"{r['rel_error']:.3f}",
        )
    console.print(t)
    tot = report["totals"]
    if report.get("dry_run"):
        console.print(
            f"dry run: {human_bytes(tot['input_bytes'])} in, about {human_bytes(tot['estimated_payload_bytes'])} "
            "of tensor payload out (plus the container and skeleton); nothing written"
        )
    else:
        console.print(
            f"file: {human_bytes(tot['input_bytes'])} -> {human_bytes(tot['output_bytes'])} on disk, "
            f"[bold]{tot['ratio']:.2f}x[/] smaller (gzip -9 of the input: {human_bytes(tot['gzip9_input_bytes'])})"
        )
    fid = report.get("fidelity")
    if fid:
        console.print(fidelity_line(fid))
    for n in report["notes"]:
        console.print(f"note: {n}")
    if report.get("output"):
        console.print(f"wrote {report['output']}")
