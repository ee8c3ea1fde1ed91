"""`nncompress decompress ART.nnc -o MODEL.{h5,keras,pt,onnx}`: a runnable model again."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from nncompress.cli._common import MAX_MEMORY_HELP, console, emit_json, human_bytes, set_max_memory

app = typer.Typer()


@app.command("decompress")
def decompress_cmd(
    artifact: Annotated[Path, typer.Argument(help="A .nnc artifact.", show_default=False)],
    out: Annotated[
        Path,
        typer.Option("-o", "--output", help="Model to write: the source format, or .onnx from any graph."),
    ],
    force: Annotated[bool, typer.Option(help="Overwrite an existing output.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")] = False,
    max_memory: Annotated[str | None, typer.Option(help=MAX_MEMORY_HELP)] = None,
) -> None:
    """Rebuild a runnable model with the artifact's reconstructed weights."""
    set_max_memory(max_memory)
    from nncompress.compress import graph_from_artifact
    from nncompress.io import EXTENSIONS, detect_format, save
    from nncompress.io._atomic import check_output

    if detect_format(artifact) != "nnc":
        from nncompress.errors import InputError

        raise InputError(
            "is not a .nnc artifact", path=str(artifact), hint="Give the output of nncompress compress"
        )
    if EXTENSIONS.get(out.suffix.lower()) in (None, "nnc"):
        from nncompress.errors import UsageError

        raise UsageError(
            f"cannot write a model as {out.suffix or 'a file without extension'!r}",
            path=str(out),
            hint="Use .h5, .keras, .pt, .pt2 or .onnx",
        )
    check_output(out, force=force, inputs=(artifact,))
    g = graph_from_artifact(artifact)
    written = save(g, out, force=force)
    size = written.stat().st_size
    if json_out:
        emit_json(
            {
                "schema": "nncompress.decompress/1",
                "artifact": str(artifact),
                "output": str(written),
                "output_bytes": size,
                "source_format": g.meta.format,
            }
        )
    else:
        console.print(f"wrote {written} ({human_bytes(size)}, from a {g.meta.format} source)")
