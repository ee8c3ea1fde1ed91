"""`nncompress inspect FILE`: what a model file holds, layer by layer."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from nncompress.cli._common import (
    MAX_MEMORY_HELP,
    console,
    emit_json,
    human_bytes,
    human_count,
    set_max_memory,
    shape_str,
)

app = typer.Typer()


@app.command("inspect")
def inspect_cmd(
    file: Annotated[
        Path, typer.Argument(help="Model file: .h5, .keras, .pt/.pth/.pt2, .onnx.", show_default=False)
    ],
    json_out: Annotated[
        bool, typer.Option("--json", help="Print one JSON object on stdout (docs/inspect-schema.md).")
    ] = False,
    trust_pickle: Annotated[
        bool,
        typer.Option(
            "--trust-pickle",
            help="Allow unpickling a .pt that holds Python objects. Only for files you trust.",
        ),
    ] = False,
    max_memory: Annotated[str | None, typer.Option(help=MAX_MEMORY_HELP)] = None,
) -> None:
    """Show format, producer, inputs/outputs and per-layer weight statistics of a model file.

    Examples (the second after the compress example):
    nncompress inspect examples/models/vggmini.onnx
    nncompress inspect lenet300.nnc --json
    """
    set_max_memory(max_memory)
    from nncompress.api import inspect
    from nncompress.io import detect_format

    report = inspect(file, trust_pickle=trust_pickle)
    if json_out:
        emit_json(report)
    elif detect_format(file) == "nnc":
        render_artifact(report)
    else:
        render(report)


def render(r: dict) -> None:  # type: ignore[type-arg]
    kind = "graph" if r["has_graph"] else "weights only (no graph)"
    ver = f" {r['producer_version']}" if r["producer_version"] else ""
    console.print(
        f"[bold]{r['file']}[/]  {human_bytes(r['file_bytes'])}  format {r['format']}  "
        f"producer {r['producer'] or '?'}{ver}  {kind}"
    )
    for note in r["notes"]:
        console.print(f"  note: {note}")
    for which in ("inputs", "outputs"):
        if r[which]:
            items = ", ".join(f"{v['name']} {shape_str(v['shape'])} {v['dtype']}" for v in r[which])
            console.print(f"  {which}: {items}")
    if r["has_graph"]:
        ops = ", ".join(f"{k}x{v}" for k, v in r["ops"].items())
        console.print(f"  {r['nodes']} nodes: {ops}")
    t = Table(title=None, show_lines=False, header_style="bold")
    for col, just in [
        ("layer", "left"),
        ("op", "left"),
        ("shape", "left"),
        ("params", "right"),
        ("dtype", "left"),
        ("bytes", "right"),
        ("sparsity", "right"),
        ("distinct", "right"),
        ("entropy b/w", "right"),
    ]:
        t.add_column(col, justify=just)  # type: ignore[arg-type]
    for row in r["layers"]:
        t.add_row(
            row["name"],
            row["op"],
            shape_str(row["shape"]),
            human_count(row["params"]),
            row["dtype"],
            human_bytes(row["bytes"]),
            f"{row['sparsity']:.1%}",
            human_count(row["distinct"]),
            f"{row['entropy_bits']:.2f}",
        )
    tot = r["totals"]
    t.add_section()
    t.add_row("total", "", "", human_count(tot["params"]), "", human_bytes(tot["bytes"]), "", "", "")
    console.print(t)
    console.print(
        f"  parameters: {tot['dense_share']:.1%} in Dense layers, {tot['conv_share']:.1%} in Conv layers"
    )


def render_artifact(r: dict) -> None:  # type: ignore[type-arg]
    console.print(
        f"[bold]{r['file']}[/]  {human_bytes(r['file_bytes'])}  nncompress artifact (schema {r['schema_version']})  "
        f"from {r['source']['name']} ({r['source']['format']})"
    )
    console.print(f"  recipe: {r['recipe']}  seed {r['seed']}")
    t = Table(header_style="bold")
    for col in ("tensor", "format", "shape", "bytes", "bits/w"):
        t.add_column(col, justify="right" if col in ("bytes", "bits/w") else "left")
    for row in r["tensors"]:
        t.add_row(
            row["name"],
            row["format"],
            shape_str(row["shape"]),
            human_bytes(row["bytes"]),
            f"{row['bits_per_weight']:.2f}",
        )
    tot = r["totals"]
    t.add_section()
    t.add_row("total", "", "", human_bytes(tot["payload_bytes"]), "")
    console.print(t)
    console.print(
        f"  payload {human_bytes(tot['payload_bytes'])}, skeleton {human_bytes(tot['skeleton_bytes_stored'])} stored, "
        f"container {human_bytes(tot['container_bytes'])}: {human_bytes(r['file_bytes'])} on disk"
    )
