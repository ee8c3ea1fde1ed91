"""`nncompress bench MODEL_OR_ART`: time real compressed-domain products against dense and CSR baselines.

The options are parsed here and the report printed; `nncompress.bench` measures (every figure in the
same run on the same layer and inputs: the native kernel on the compressed bytes, numpy dense and
scipy CSR of the same matrix, medians over ``--repeat`` runs after warm-up with their interquartile
range, or the numpy reference ``dot()`` of each format when the native extension is not built).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from nncompress.bench import DEFAULT_PREPARE
from nncompress.cli._common import (
    QUIET_HELP,
    Col,
    console,
    emit_json,
    human_bytes,
    print_table,
    progress,
    shape_str,
)
from nncompress.timing import WARMUP

app = typer.Typer()


def _ints(spec: str, what: str) -> list[int]:
    from nncompress.errors import UsageError

    try:
        vals = [int(v) for v in spec.split(",") if v.strip()]
    except ValueError:
        raise UsageError(f"{what} must be comma-separated integers, got {spec!r}") from None
    if not vals or any(v < 1 for v in vals):
        raise UsageError(f"{what} must be positive integers, got {spec!r}")
    return vals


@app.command("bench")
def bench_cmd(
    model: Annotated[Path, typer.Argument(help="A model file or a .nnc artifact.", show_default=False)],
    batch: Annotated[str, typer.Option(help="Batch sizes, comma-separated.")] = "1,8",
    threads: Annotated[int, typer.Option(help="Threads of the native kernels.")] = 1,
    repeat: Annotated[
        int, typer.Option(help=f"Timed runs per measurement (after {WARMUP} warm-up runs).")
    ] = 20,
    formats: Annotated[
        str | None,
        typer.Option(help="Encode each layer in each of these formats and compare (e.g. ham,sham,csr)."),
    ] = None,
    prepare: Annotated[
        str,
        typer.Option(
            # the default written with spaces after its commas (a pipeline allows them), so that help
            # wraps it instead of cutting it at 80 columns
            help="Passes run on a plain model before --formats encode it (one matrix for all). Default: "
            + ", ".join(DEFAULT_PREPARE.split(",")),
            show_default=False,
        ),
    ] = DEFAULT_PREPARE,
    min_size: Annotated[int, typer.Option(help="Skip layers with fewer weights than this.")] = 4096,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help=QUIET_HELP)] = False,
) -> None:
    """Per layer: bytes, psi, and the median time of the compressed product vs numpy dense and scipy CSR.

    Examples (the second after the compress example):
    nncompress bench examples/models/lenet300.onnx --formats ham,sham,csr
    nncompress bench lenet300.nnc --batch 1,64
    """
    from nncompress.bench import bench

    with progress(quiet=quiet or json_out) as prog:
        report = bench(
            model,
            _ints(batch, "--batch"),
            threads=threads,
            repeat=repeat,
            formats=[f.strip() for f in formats.split(",")] if formats else [],
            prepare=prepare,
            min_size=min_size,
            on_note=None if quiet else lambda note: console.print(f"note: {note}"),
            progress=prog,
        )
    if json_out:
        emit_json(report)
    elif not quiet:
        _render(report)


# Layer, format and batch say which row it is; times are in ms, said once in the header.
_KEYS = (Col("layer", name=True, key=True), Col("format", key=True), Col("batch", right=True, key=True))
_SHAPE, _KERNEL = Col("shape"), Col("kernel")
_FIGURES = tuple(
    Col(h, right=True)
    for h in (
        "bytes",
        "psi",
        "time\nms",
        "±iqr\nms",
        "dense\nms",
        "csr\nms",
        "vs\ndense",
        "vs\ncsr",
        "max\nerr",
    )
)
# The skipped tensors a note names for each reason before it says how many more (--json lists all).
NAMES_SHOWN = 8


def _render(r: dict[str, Any], out: Console | None = None) -> None:
    """The report for a person: one row per layer, format and batch; the run; what was left out."""
    out = out or console
    kernels = sorted({row["kernel"] for row in r["rows"]})
    one_kernel = len(kernels) == 1  # then said once below the table, not on every row
    cols = [*_KEYS, _SHAPE, *([] if one_kernel else [_KERNEL]), *_FIGURES]
    rows = []
    for row in r["rows"]:
        cells = [row["layer"], row["format"], str(row["batch"]), shape_str(row["shape"])]
        cells += [] if one_kernel else [row["kernel"]]
        cells += [human_bytes(row["bytes"]), f"{row['psi']:.3f}"]
        cells += [f"{row[k] * 1e3:.3f}" for k in ("time_s", "iqr_s", "dense_s", "csr_s")]
        cells += [f"{row['vs_dense']:.2f}x", f"{row['vs_csr']:.2f}x", f"{row['max_abs_err']:.1e}"]
        rows.append(cells)
    print_table(cols, rows, out)
    kernel = f", {kernels[0]} kernels" if one_kernel else ""
    out.print(
        f"{r['model']}: median of {r['repeat']} runs after {WARMUP} warm-ups, {r['threads']} thread(s)"
        f"{kernel}; 'vs' columns are time ratios (below 1 is faster than the baseline)"
    )
    if r["skipped"]:
        out.print(f"note: left out {_skipped(r['skipped'])}")


def _skipped(skipped: list[dict[str, Any]]) -> str:
    """The tensors bench did not time, grouped by reason: "a, b: reason; c: other reason"."""
    by_reason: dict[str, list[str]] = {}
    for s in skipped:
        by_reason.setdefault(s["reason"], []).append(s["layer"])
    parts = []
    for reason, names in by_reason.items():
        more = len(names) - NAMES_SHOWN
        shown = ", ".join(names[:NAMES_SHOWN]) + (f" and {more} more" if more > 0 else "")
        parts.append(f"{shown}: {reason}")
    return "; ".join(parts)
