"""`nncompress inspect FILE`: what a model file holds, layer by layer."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from nncompress.cli._common import (
    MAX_MEMORY_HELP,
    QUIET_HELP,
    SECTION,
    Col,
    console,
    emit_json,
    human_bytes,
    human_count,
    print_table,
    progress,
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
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help=QUIET_HELP)] = False,
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

    with progress(quiet=quiet or json_out) as prog:
        report = inspect(file, trust_pickle=trust_pickle, progress=prog)
    if json_out:
        emit_json(report)
    elif quiet:
        return
    elif detect_format(file) == "nnc":
        render_artifact(report)
    else:
        render(report)


# The layer table of a model file; sparsity is the share of exact zeros, entropy in bits per weight.
LAYER_COLUMNS = (
    Col("layer", name=True, key=True),
    Col("op"),
    Col("shape"),
    Col("params", right=True),
    Col("dtype"),
    Col("bytes", right=True),
    Col("sparsity", right=True),
    Col("distinct", right=True),
    Col("entropy\nbits/w", right=True),
)
# The tensor table of an artifact.
TENSOR_COLUMNS = (
    Col("tensor", name=True, key=True),
    Col("format"),
    Col("shape"),
    Col("bytes", right=True),
    Col("bits/w", right=True),
)


def render(r: dict[str, Any], out: Console | None = None) -> None:
    """A model file's report for a person: what it is, its inputs and outputs, its layers."""
    out = out or console
    kind = "graph" if r["has_graph"] else "weights only (no graph)"
    ver = f" {r['producer_version']}" if r["producer_version"] else ""
    out.print(
        f"[bold]{r['file']}[/]  {human_bytes(r['file_bytes'])}  format {r['format']}  "
        f"producer {r['producer'] or '?'}{ver}  {kind}"
    )
    for note in r["notes"]:
        out.print(f"  note: {note}")
    for which in ("inputs", "outputs"):
        if r[which]:
            items = ", ".join(f"{v['name']} {shape_str(v['shape'])} {v['dtype']}" for v in r[which])
            out.print(f"  {which}: {items}")
    if r["has_graph"]:
        ops = ", ".join(f"{k}x{v}" for k, v in r["ops"].items())
        out.print(f"  {r['nodes']} nodes: {ops}")
    rows: list[list[str] | None] = [
        [
            row["name"],
            row["op"],
            shape_str(row["shape"]),
            human_count(row["params"]),
            row["dtype"],
            human_bytes(row["bytes"]),
            f"{row['sparsity']:.1%}",
            human_count(row["distinct"]),
            f"{row['entropy_bits']:.2f}",
        ]
        for row in r["layers"]
    ]
    tot = r["totals"]
    rows += [
        SECTION,
        ["total", "", "", human_count(tot["params"]), "", human_bytes(tot["bytes"]), "", "", ""],
    ]
    print_table(LAYER_COLUMNS, rows, out)
    out.print(
        f"  parameters: {tot['dense_share']:.1%} in Dense layers, {tot['conv_share']:.1%} in Conv layers"
    )


def render_artifact(r: dict[str, Any], out: Console | None = None) -> None:
    """An artifact's report for a person: where it comes from, its tensors, where its bytes go."""
    out = out or console
    out.print(
        f"[bold]{r['file']}[/]  {human_bytes(r['file_bytes'])}  nncompress artifact (schema {r['schema_version']})  "
        f"from {r['source']['name']} ({r['source']['format']})"
    )
    out.print(f"  recipe: {r['recipe']}  seed {r['seed']}")
    rows: list[list[str] | None] = [
        [
            row["name"],
            row["format"],
            shape_str(row["shape"]),
            human_bytes(row["bytes"]),
            f"{row['bits_per_weight']:.2f}",
        ]
        for row in r["tensors"]
    ]
    tot = r["totals"]
    rows += [SECTION, ["total", "", "", human_bytes(tot["payload_bytes"]), ""]]
    print_table(TENSOR_COLUMNS, rows, out)
    out.print(
        f"  payload {human_bytes(tot['payload_bytes'])}, skeleton {human_bytes(tot['skeleton_bytes_stored'])} stored, "
        f"container {human_bytes(tot['container_bytes'])}: {human_bytes(r['file_bytes'])} on disk"
    )
