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
from rich.table import Table

from nncompress.bench import DEFAULT_PREPARE
from nncompress.cli._common import console, emit_json, human_bytes, shape_str
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
) -> None:
    """Per layer: bytes, psi, and the median time of the compressed product vs numpy dense and scipy CSR.

    Examples (the second after the compress example):
    nncompress bench examples/models/lenet300.onnx --formats ham,sham,csr
    nncompress bench lenet300.nnc --batch 1,64
    """
    from nncompress.bench import bench

    report = bench(
        model,
        _ints(batch, "--batch"),
        threads=threads,
        repeat=repeat,
        formats=[f.strip() for f in formats.split(",")] if formats else [],
        prepare=prepare,
        min_size=min_size,
        on_note=lambda note: console.print(f"note: {note}"),
    )
    if json_out:
        emit_json(report)
    else:
        _render(report)


def _render(r: dict[str, Any]) -> None:
    t = Table(header_style="bold")
    cols = ["layer", "shape", "format", "kernel", "batch", "bytes", "psi", "time", "±iqr", "dense", "csr"]
    cols += ["vs dense", "vs csr", "max err"]
    for c in cols:
        t.add_column(c, justify="left" if c in ("layer", "shape", "format", "kernel") else "right")
    for row in r["rows"]:
        t.add_row(
            row["layer"],
            shape_str(row["shape"]),
            row["format"],
            row["kernel"],
            str(row["batch"]),
            human_bytes(row["bytes"]),
            f"{row['psi']:.3f}",
            f"{row['time_s'] * 1e3:.3f} ms",
            f"{row['iqr_s'] * 1e3:.3f}",
            f"{row['dense_s'] * 1e3:.3f} ms",
            f"{row['csr_s'] * 1e3:.3f} ms",
            f"{row['vs_dense']:.2f}x",
            f"{row['vs_csr']:.2f}x",
            f"{row['max_abs_err']:.1e}",
        )
    console.print(t)
    console.print(
        f"{r['model']}: median of {r['repeat']} runs after {WARMUP} warm-ups, {r['threads']} thread(s); "
        "'vs' columns are time ratios (below 1 is faster than the baseline)"
    )
