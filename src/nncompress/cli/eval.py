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
    data: Annotated[Path, typer.Option(help=".npz with x and optional y.")],
    reference: Annotated[
        Path | None, typer.Option(help="Compare outputs with this model (default for a .nnc: none).")
    ] = None,
    samples: Annotated[int | None, typer.Option(help="Use only the first N samples.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")] = False,
    trust_pickle: Annotated[bool, typer.Option(help="Allow unpickling a .pt you trust.")] = False,
) -> None:
    """Accuracy of MODEL on --data, and its fidelity to --reference when given."""
    import numpy as np

    from nncompress.fidelity import compare, load_data, plan_samples, time_one
    from nncompress.ir.execute import run

    g = _load_any(model, trust_pickle)
    ev = load_data(data, samples=samples)
    res: dict[str, Any] = {
        "schema": "nncompress.eval/1",
        "model": str(model),
        "data": str(data),
        "samples": len(ev.x),
    }
    # every sample is run; one timed first sets the batch size (a VGG16 batch of 256 takes 9 GB)
    _, batch, _ = plan_samples(time_one(g, ev.x), len(ev.x), explicit=True)
    out = run(g, ev.x, batch_size=batch)[0]
    if ev.y is not None:
        y = ev.y.reshape(len(ev.y), -1).argmax(1) if ev.y.ndim > 1 else ev.y
        res["accuracy"] = float((out.reshape(len(out), -1).argmax(1) == y).mean())
    if reference is not None:
        res["fidelity"] = compare(_load_any(reference, trust_pickle), g, ev, batch_size=batch)
    res["output_mean_abs"] = float(np.abs(out).mean())
    if json_out:
        emit_json(res)
        return
    if "accuracy" in res:
        console.print(f"{model}: accuracy {res['accuracy']:.2%} on {res['samples']} samples of {data}")
    else:
        console.print(f"{model}: ran {res['samples']} samples of {data} (no labels: no accuracy)")
    if "fidelity" in res:
        f = res["fidelity"]
        console.print(
            f"vs {reference}: top-1 agreement {f['top1_agreement']:.1%}, relative output error mean "
            f"{f['rel_error_mean']:.4f} max {f['rel_error_max']:.4f}"
        )


def _load_any(path: Path, trust_pickle: bool):  # type: ignore[no-untyped-def]
    from nncompress.io import detect_format, load

    if detect_format(path) == "nnc":
        from nncompress.compress import graph_from_artifact

        return graph_from_artifact(path)
    return load(path, trust_pickle=trust_pickle)
