"""`nncompress eval MODEL_OR_ART --data FILE.npz`: accuracy, and fidelity against a reference."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from nncompress.cli._common import QUIET_HELP, console, emit_json, fidelity_line, progress

app = typer.Typer()


@app.command("eval")
def eval_cmd(
    model: Annotated[Path, typer.Argument(help="A model file or a .nnc artifact.", show_default=False)],
    data: Annotated[
        Path,
        typer.Option(
            help=".npz with one array per input, keyed by name (x for a one-input model), y the labels."
        ),
    ],
    reference: Annotated[
        Path | None, typer.Option(help="Compare outputs with this model (default for a .nnc: none).")
    ] = None,
    samples: Annotated[
        int | None, typer.Option(help="Use the first N samples (default: the first 1000).")
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help=QUIET_HELP)] = False,
    trust_pickle: Annotated[bool, typer.Option(help="Allow unpickling a .pt you trust.")] = False,
) -> None:
    r"""Accuracy of MODEL on --data, and its fidelity to --reference when given.

    Examples (the second after the compress and decompress examples):
    nncompress eval examples/models/lenet300.onnx \
      --data examples/data/mnist_test.npz
    nncompress eval lenet300_small.onnx --data examples/data/mnist_test.npz \
      --reference examples/models/lenet300.onnx
    """
    from nncompress.evaluate import evaluate

    with progress(quiet=quiet or json_out) as prog:
        res = evaluate(
            model, data, reference=reference, samples=samples, trust_pickle=trust_pickle, progress=prog
        )
    runtime = res["runtime"]
    notes = res.pop("notes")
    for n in notes if not quiet else []:
        console.print(f"note: {n}")
    if json_out:
        emit_json(res)
        return
    if quiet:
        return
    if "accuracy" in res:
        console.print(
            f"{model}: accuracy {res['accuracy']:.2%} on {res['samples']} samples of {data} ({runtime})"
        )
    else:
        console.print(
            f"{model}: ran {res['samples']} samples of {data} in {runtime} (no labels: no accuracy)"
        )
    if "fidelity" in res:
        console.print(f"vs {reference}: {fidelity_line(res['fidelity'])}")
