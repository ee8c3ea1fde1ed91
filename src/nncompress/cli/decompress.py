"""`nncompress decompress ART.nnc -o MODEL.{h5,keras,pt,onnx}`: a runnable model again."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from nncompress.cli._common import (
    MAX_MEMORY_HELP,
    QUIET_HELP,
    console,
    emit_json,
    human_bytes,
    progress,
    set_max_memory,
)

app = typer.Typer()


@app.command("decompress")
def decompress_cmd(
    artifact: Annotated[Path, typer.Argument(help="A .nnc artifact.", show_default=False)],
    out: Annotated[
        Path,
        typer.Option("-o", "--output", help="Model to write: the source format, or .onnx from any graph."),
    ],
    force: Annotated[bool, typer.Option(help="Overwrite an existing output.")] = False,
    keep_compressed: Annotated[
        bool,
        typer.Option(
            "--keep-compressed",
            help="Write TorchScript (-o MODEL.pt, any source) whose layers stay compressed in memory; "
            "it loads with torch.jit.load, without nncompress.",
        ),
    ] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help=QUIET_HELP)] = False,
    max_memory: Annotated[str | None, typer.Option(help=MAX_MEMORY_HELP)] = None,
) -> None:
    """Rebuild a runnable model with the artifact's reconstructed weights.

    Example (lenet300.nnc as the compress example writes it):
    nncompress decompress lenet300.nnc -o lenet300_small.onnx
    """
    set_max_memory(max_memory)
    from nncompress.api import rebuild

    with progress(quiet=quiet or json_out) as prog:
        written, source_format = rebuild(
            artifact, out, force=force, keep_compressed=keep_compressed, progress=prog
        )
    size = written.stat().st_size
    if json_out:
        emit_json(
            {
                "schema": "nncompress.decompress/1",
                "artifact": str(artifact),
                "output": str(written),
                "output_bytes": size,
                "source_format": source_format,
            }
        )
    elif not quiet:
        console.print(f"wrote {written} ({human_bytes(size)}, from a {source_format} source)")
