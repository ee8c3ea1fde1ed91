"""`nncompress compress MODEL -o OUT.nnc`: a truly smaller file, with an honest report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from nncompress.cli._common import (
    MAX_MEMORY_HELP,
    Col,
    console,
    emit_json,
    fidelity_line,
    finetune_line,
    human_bytes,
    print_table,
    progress,
    set_max_memory,
    shape_str,
)

app = typer.Typer()


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
            help="Preset: prune, csr, quantize, im, ham, sham, cser, lowrank, sss, dct, psm, smallest "
            "('nncompress methods' lists their pipelines). "
            "A preset keeps a fidelity budget (--max-drop, --max-error; default: top-1 agreement >= 99 % "
            "and relative output error <= 5 %), backing off tensors that break it.",
        ),
    ] = None,
    pipeline: Annotated[
        str | None,
        typer.Option(
            help='Explicit steps, e.g. "prune:sparsity=0.9, quantize:method=kmeans:k=32, sham" (every pass, '
            "format and option: 'nncompress methods')."
        ),
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
            help="Samples used for fidelity. Default: the first 1000 of --data, else 64 seeded random inputs (fewer above 16 M parameters: 64 x 16 M / parameters, at least 8)."
        ),
    ] = None,
    max_drop: Annotated[
        float | None,
        typer.Option(
            help="Budget and gate: max accuracy drop in points (with labels) or top-1 disagreement in % "
            "(without). With --method, each tensor's setting is searched for the smallest file that keeps it."
        ),
    ] = None,
    max_error: Annotated[
        float | None,
        typer.Option(
            help="Budget and gate: max mean relative output error (e.g. 0.02), searched like --max-drop."
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
    finetune: Annotated[
        Path | None,
        typer.Option(
            help="Fine-tune the compressed model on this .npz (like --data; y labels optional) by "
            "distillation from the original, masks, supports and codebook assignments kept."
        ),
    ] = None,
    epochs: Annotated[int, typer.Option(help="Fine-tuning epochs (with --finetune).")] = 3,
    lr: Annotated[float, typer.Option(help="Fine-tuning learning rate, Adam (with --finetune).")] = 1e-3,
    batch_size: Annotated[int, typer.Option(help="Fine-tuning rows per step (with --finetune).")] = 64,
) -> None:
    r"""Compress MODEL into a .nnc artifact and report sizes and fidelity.

    Examples (from the repository root, where git ignores what they write):
    nncompress compress examples/models/lenet300.onnx -o lenet300.nnc \
      --method sham --data examples/data/mnist_test.npz
    nncompress compress examples/models/lenet300.h5 -o lenet300_h5.nnc \
      --pipeline "prune:sparsity=0.7:scope=global,quantize:k=32,sham" \
      --data examples/data/mnist_test.npz
    """
    set_max_memory(max_memory)
    from nncompress.errors import GateError, UsageError
    from nncompress.inputs import parse_input_shapes
    from nncompress.io._atomic import check_output
    from nncompress.pipeline import compress, plan_from, save

    if samples is not None and samples < 1:
        raise UsageError(f"--samples must be at least 1, got {samples}")
    for name, v in (("--max-drop", max_drop), ("--min-ratio", min_ratio), ("--max-error", max_error)):
        if v is not None and v < 0:
            raise UsageError(f"{name} must be >= 0, got {v}")
    plan = plan_from(method, pipeline, recipe, budget)
    target = out or model.with_suffix(".nnc")
    if target.suffix != ".nnc":
        raise UsageError(f"the output must end in .nnc, got {target}", hint="Use decompress to write a model")
    if not dry_run:
        check_output(target, force=force, inputs=(model,))
    shapes = parse_input_shapes(input_shape)
    train = None
    if finetune is not None:
        from nncompress.finetune import TrainOptions

        train = TrainOptions(str(finetune), epochs=epochs, lr=lr, batch_size=batch_size, seed=seed)
        train.check()
    with progress(quiet=quiet or json_out) as prog:
        result = compress(
            model,
            plan=plan,
            data=data,
            samples=samples,
            input_shapes=shapes,
            seed=seed,
            dry_run=dry_run,
            keep_training_state=keep_training_state,
            max_drop=max_drop,
            max_error=max_error,
            trust_pickle=trust_pickle,
            finetune=train,
            progress=prog,
        )
        report = result.report
        failed = [] if dry_run else result.gates(max_drop=max_drop, min_ratio=min_ratio, max_error=max_error)
        if not dry_run and (keep_failed or not failed):
            save(result, target, force=force, progress=prog)
    if dry_run:
        _finish(report, json_out, quiet)
        return
    if failed and not keep_failed:
        report["notes"].append("gate failed: nothing written (pass --keep-failed to keep the artifact)")
        _finish(report, json_out, quiet)
        raise GateError("; ".join(failed), path=str(model), hint="Relax the recipe or the gate")
    _finish(report, json_out, quiet)
    if failed:
        raise GateError("; ".join(failed) + " (artifact kept: --keep-failed)", path=str(model))


def _finish(report: dict[str, Any], json_out: bool, quiet: bool) -> None:
    if json_out:
        emit_json(report)
    if quiet or json_out:
        return
    render(report)


# The per-layer table: the layer says which row it is; sparsity is the share of exact zeros.
LAYER_COLUMNS = (
    Col("layer", name=True, key=True),
    Col("op"),
    Col("shape"),
    Col("format"),
    Col("before", right=True),
    Col("after", right=True),
    Col("ratio", right=True),
    Col("bits/w", right=True),
    Col("sparsity", right=True),
    Col("rel\nerr", right=True),
)


def render(report: dict[str, Any], out: Console | None = None) -> None:
    """The report for a person: the per-layer table, sizes, fidelity, notes (on stderr by default)."""
    out = out or console
    rows = [
        [
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
        ]
        for r in report["layers"]
    ]
    print_table(LAYER_COLUMNS, rows, out)
    tot = report["totals"]
    if report.get("dry_run"):
        out.print(
            f"dry run: {human_bytes(tot['input_bytes'])} in, about {human_bytes(tot['estimated_payload_bytes'])} "
            "of tensor payload out (plus the container and skeleton); nothing written"
        )
    else:
        out.print(
            f"file: {human_bytes(tot['input_bytes'])} -> {human_bytes(tot['output_bytes'])} on disk, "
            f"[bold]{tot['ratio']:.2f}x[/] smaller (gzip -9 of the input: {human_bytes(tot['gzip9_input_bytes'])})"
        )
    fid = report.get("fidelity")
    if report.get("finetune"):
        out.print(finetune_line(report["finetune"]))
    if fid:
        out.print(fidelity_line(fid))
    for n in report["notes"]:
        out.print(f"note: {n}")
    if report.get("output"):
        out.print(f"wrote {report['output']}")
