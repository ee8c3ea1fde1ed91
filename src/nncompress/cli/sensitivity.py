"""`nncompress sensitivity MODEL`: per tensor, how bytes and fidelity move with a preset's setting."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from nncompress.cli._common import (
    QUIET_HELP,
    SECTION,
    Col,
    console,
    emit_json,
    human_bytes,
    print_table,
    progress,
    shape_str,
)

app = typer.Typer()


@app.command("sensitivity")
def sensitivity_cmd(
    model: Annotated[
        Path, typer.Argument(help="Model file: .h5, .keras, .pt/.pt2, .onnx.", show_default=False)
    ],
    method: Annotated[
        str,
        typer.Option(
            "--method",
            "-m",
            help="Preset whose setting is scanned (its knob: sparsity, k, budget, step; 'nncompress methods' "
            "lists them).",
        ),
    ] = "smallest",
    data: Annotated[
        Path | None,
        typer.Option(help=".npz with one array per input (x for a one-input model), y the labels."),
    ] = None,
    input_shape: Annotated[
        list[str] | None,
        typer.Option("--input-shape", help="Dynamic dims for random inputs: NAME=1x3x224x224 (repeatable)."),
    ] = None,
    samples: Annotated[
        int | None, typer.Option(help="Fidelity samples (default: 1000 of --data, else 64).")
    ] = None,
    plot: Annotated[
        Path | None,
        typer.Option(help="Also draw error against bytes per tensor to this .png/.svg (matplotlib)."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of every random choice.")] = 0,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help=QUIET_HELP)] = False,
    trust_pickle: Annotated[bool, typer.Option(help="Allow unpickling a .pt you trust.")] = False,
) -> None:
    r"""Scan each tensor alone over METHOD's settings: payload bytes, weight error, output error, top-1 changes.

    Example:
    nncompress sensitivity examples/models/lenet300.onnx --method sham \
      --data examples/data/mnist_test.npz
    """
    from nncompress.inputs import parse_input_shapes
    from nncompress.sensitivity import plot as draw
    from nncompress.sensitivity import sensitivity

    with progress(quiet=quiet or json_out) as prog:
        rep = sensitivity(
            model,
            method=method,
            data=data,
            samples=samples,
            input_shapes=parse_input_shapes(input_shape),
            seed=seed,
            trust_pickle=trust_pickle,
            progress=prog,
        )
    if plot is not None:
        rep["plot"] = str(draw(rep, plot))
    if json_out:
        emit_json(rep)
    elif not quiet:
        _print(rep)


def _print(rep: dict[str, Any], out: Console | None = None) -> None:
    """The scan for a person: per tensor, one row per setting (the tensor and its shape on the first)."""
    out = out or console
    for n in rep["notes"]:
        out.print(f"note: {n}")
    # The tensor and the setting say which row it is when the table is split to fit.
    cols = (
        Col("tensor", name=True, key=True),
        Col("shape"),
        Col(rep["option"], right=True, key=True),
        Col("bytes", right=True),
        Col("w err", right=True),
        Col("out\nerr", right=True),
        Col("top-1\nchg", right=True),
    )
    rows: list[list[str] | None] = []
    for ten in rep["tensors"]:
        for i, s in enumerate(ten["settings"]):
            rows.append(
                [
                    "" if i else ten["name"],
                    "" if i else shape_str(ten["shape"]),
                    "as is" if s["value"] is None else f"{s['value']:g}",
                    human_bytes(s["bytes"]),
                    f"{s['weight_error']:.3f}",
                    f"{s['error']:.3f}" + ("" if s["measured"] else "~"),
                    "" if s["disagreement"] is None else f"{s['disagreement']:.1%}",
                ]
            )
        rows.append(SECTION)
    print_table(cols, rows, out)
    out.print(
        f"{rep['method']}: model run with one tensor changed on {rep['samples']} samples in the {rep['runtime']}; "
        "~ = interpolated by weight error"
    )
    if "plot" in rep:
        out.print(f"plot: {rep['plot']}")
