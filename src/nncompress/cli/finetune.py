"""`nncompress finetune ART.nnc --data TRAIN.npz -o OUT.nnc`: train an artifact's compressed model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from nncompress.cli._common import (
    MAX_MEMORY_HELP,
    QUIET_HELP,
    console,
    emit_json,
    fidelity_line,
    finetune_line,
    human_bytes,
    progress,
    set_max_memory,
)

app = typer.Typer()


@app.command("finetune")
def finetune_cmd(
    artifact: Annotated[Path, typer.Argument(help="A .nnc artifact.", show_default=False)],
    data: Annotated[
        Path,
        typer.Option(help="Training .npz: one array per input (x for a one-input model), y labels optional."),
    ],
    out: Annotated[Path, typer.Option("-o", "--output", help="The fine-tuned artifact (.nnc).")],
    teacher: Annotated[
        Path | None,
        typer.Option(help="The original model: distilled from, and fidelity measured against it."),
    ] = None,
    eval_data: Annotated[
        Path | None,
        typer.Option(help="Held-out .npz for the fidelity figures (default: seeded random inputs)."),
    ] = None,
    samples: Annotated[int | None, typer.Option(help="Samples used for fidelity.")] = None,
    epochs: Annotated[int, typer.Option(help="Epochs over the training data.")] = 3,
    lr: Annotated[float, typer.Option(help="Learning rate (Adam).")] = 1e-3,
    batch_size: Annotated[int, typer.Option(help="Rows per step.")] = 64,
    seed: Annotated[int, typer.Option(help="Seed of the batch order and of torch.")] = 0,
    force: Annotated[bool, typer.Option(help="Overwrite an existing output.")] = False,
    trust_pickle: Annotated[bool, typer.Option(help="Allow unpickling a --teacher .pt you trust.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help=QUIET_HELP)] = False,
    max_memory: Annotated[str | None, typer.Option(help=MAX_MEMORY_HELP)] = None,
) -> None:
    r"""Fine-tune the compressed model of an artifact, keeping every format, mask and codebook assignment.

    Example (lenet300.nnc as the compress example writes it):
    nncompress finetune lenet300.nnc --data examples/data/mnist_train.npz \
      --teacher examples/models/lenet300.onnx \
      --eval-data examples/data/mnist_test.npz -o lenet300_ft.nnc
    """
    set_max_memory(max_memory)
    from nncompress.finetune import TrainOptions, finetune_artifact

    opts = TrainOptions(str(data), epochs=epochs, lr=lr, batch_size=batch_size, seed=seed)
    with progress(quiet=quiet or json_out) as prog:
        report = finetune_artifact(
            artifact,
            out,
            opts,
            teacher=str(teacher) if teacher else None,
            eval_data=eval_data,
            samples=samples,
            force=force,
            trust_pickle=trust_pickle,
            progress=prog,
        )
    if json_out:
        emit_json(report)
        return
    if quiet:
        return
    console.print(finetune_line(report["finetune"]))
    if report["fidelity"]:
        console.print(fidelity_line(report["fidelity"]))
    for n in report["notes"]:
        console.print(f"note: {n}")
    console.print(
        f"wrote {report['output']} ({human_bytes(report['output_bytes'])}; "
        f"was {human_bytes(report['input_bytes'])})"
    )
