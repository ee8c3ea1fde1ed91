"""`nncompress eval MODEL_OR_ART --data FILE.npz`: accuracy, and fidelity against a reference."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from nncompress.cli._common import console, emit_json

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
    trust_pickle: Annotated[bool, typer.Option(help="Allow unpickling a .pt you trust.")] = False,
) -> None:
    """Accuracy of MODEL on --data, and its fidelity to --reference when given."""
    import numpy as np

    from nncompress.cli.compress import fidelity_line
    from nncompress.errors import UnsupportedError, UsageError
    from nncompress.fidelity import figures, run_model
    from nncompress.inputs import load_data, signatures
    from nncompress.runtime import RuntimeFailure

    if samples is not None and samples < 1:
        raise UsageError(f"--samples must be at least 1, got {samples}")
    g = _load_any(model, trust_pickle)
    specs, _ = signatures(g)
    ev = load_data(data, specs, samples=samples)
    try:
        out, runtime, output = run_model(g, ev)
    except RuntimeFailure as e:
        raise UnsupportedError(f"cannot compute its outputs: {e}", path=str(model)) from None
    res: dict[str, Any] = {
        "schema": "nncompress.eval/1",
        "model": str(model),
        "data": str(data),
        "samples": ev.n,
        "runtime": runtime,
    }
    if ev.y is not None and len(out) == len(ev.y):
        y = ev.y.reshape(len(ev.y), -1).argmax(1) if ev.y.ndim > 1 else ev.y
        res["accuracy"] = float((out.argmax(1) == y).mean())
    if reference is not None:
        rg = _load_any(reference, trust_pickle)
        try:
            ref_out, ref_runtime, _ = run_model(rg, ev)
        except RuntimeFailure as e:
            raise UnsupportedError(f"cannot compute its outputs: {e}", path=str(reference)) from None
        fid = figures(ref_out, out, ev, runtime, output)
        if ref_runtime != runtime:
            fid["reference_runtime"] = ref_runtime
        res["fidelity"] = fid
    res["output_mean_abs"] = float(np.abs(out).mean())
    for n in ev.notes:
        console.print(f"note: {n}")
    if json_out:
        emit_json(res)
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


def _load_any(path: Path, trust_pickle: bool):  # type: ignore[no-untyped-def]
    from nncompress.io import detect_format, load

    if detect_format(path) == "nnc":
        from nncompress.compress import graph_from_artifact

        return graph_from_artifact(path)
    return load(path, trust_pickle=trust_pickle)
