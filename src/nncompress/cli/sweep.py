"""`nncompress sweep MODEL -o DIR`: each method over a range of its setting; table, JSON and plot."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from nncompress.cli._common import console, emit_json, human_bytes

app = typer.Typer()


@app.command("sweep")
def sweep_cmd(
    model: Annotated[
        Path, typer.Argument(help="Model file: .h5, .keras, .pt/.pt2, .onnx.", show_default=False)
    ],
    out: Annotated[
        Path,
        typer.Option(
            "-o",
            "--output",
            help="Folder for sweep.md, sweep.json, sweep.png/.svg, points/ and artifacts/ (made if "
            "missing; a rerun into it resumes).",
            show_default=False,
        ),
    ],
    data: Annotated[
        Path | None,
        typer.Option(help=".npz with one array per input (x for a one-input model), y the labels."),
    ] = None,
    methods: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated presets to sweep (default: sham, prune, ham, smallest, lowrank, dct). "
            "Each runs over its knob: sparsity (prune, csr, sham, cser), k (quantize, im, ham), budget "
            "(lowrank, sss, dct, psm), step (smallest).",
        ),
    ] = None,
    budgets: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated budgets for the structured methods (default: 0.5, 0.3, 0.2, 0.1)."
        ),
    ] = None,
    values: Annotated[
        list[str] | None,
        typer.Option(
            "--values",
            help="A method's settings: METHOD=V1,V2,... (repeatable), e.g. sham=0.6,0.8 or ham=64,16.",
        ),
    ] = None,
    input_shape: Annotated[
        list[str] | None,
        typer.Option("--input-shape", help="Dynamic dims for random inputs: NAME=1x3x224x224 (repeatable)."),
    ] = None,
    samples: Annotated[
        int | None, typer.Option(help="Fidelity samples (default: the first 1000 of --data, else 64).")
    ] = None,
    jobs: Annotated[int, typer.Option("--jobs", "-j", help="Points made at once, in worker processes.")] = 1,
    seed: Annotated[int, typer.Option(help="Seed of every random choice.")] = 0,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print the report (sweep.json) on stdout.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress and no table on stderr.")] = False,
    force: Annotated[
        bool,
        typer.Option("--force", help="Remake every point, and write into a folder that holds other files."),
    ] = False,
    trust_pickle: Annotated[bool, typer.Option(help="Allow unpickling a .pt you trust.")] = False,
) -> None:
    r"""Compress MODEL by each method over a range of its setting: bytes against fidelity.

    Each point is a preset's pipeline with its knob set for every tensor (no
    fidelity budget backs anything off). Writes DIR/sweep.md, sweep.json and
    sweep.png + .svg (matplotlib), one .nnc a point in DIR/artifacts/. Finished
    points stay in DIR/points/: an interrupted sweep resumes where it stopped.

    Example:
    nncompress sweep examples/models/vggmini.onnx \
      --data examples/data/mnist_test.npz -o sweep/
    """
    from nncompress.errors import UsageError
    from nncompress.inputs import parse_input_shapes
    from nncompress.pipeline.knobs import KNOBS
    from nncompress.sweep import parse_values, sweep

    names = [m.strip() for m in methods.split(",") if m.strip()] if methods is not None else None
    per: dict[str, tuple[int | float, ...]] = {}
    for v in values or []:
        name, eq, text = v.partition("=")
        name = name.strip()
        if not eq or name not in KNOBS:
            raise UsageError(f"--values {v!r} is not METHOD=V1,V2,...", hint=f"Methods: {', '.join(KNOBS)}")
        per[name] = parse_values(text, KNOBS[name].option, f"--values {name}")
    bud = parse_values(budgets, "budget", "--budgets") if budgets is not None else None
    progress = _Progress(enabled=not quiet and console.is_terminal)
    with progress:
        rep = sweep(
            model,
            out,
            data=data,
            methods=names,
            values=per,
            budgets=None if bud is None else [float(b) for b in bud],
            samples=samples,
            input_shapes=parse_input_shapes(input_shape),
            seed=seed,
            jobs=jobs,
            trust_pickle=trust_pickle,
            force=force,
            on_point=progress.point,
        )
    if json_out:
        emit_json(rep)
    elif not quiet:
        _print(rep, progress.reused)


class _Progress:
    """A bar over the points on stderr (a terminal only), and the count of points reused."""

    def __init__(self, *, enabled: bool) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.reused = 0
        self.bar = (
            Progress(
                TextColumn("sweep"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.description}"),
                TimeElapsedColumn(),
                console=console,
                transient=True,
            )
            if enabled
            else None
        )
        self.task: Any = None

    def __enter__(self) -> _Progress:
        if self.bar is not None:
            self.bar.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)

    def point(self, p: dict[str, Any], reused: bool, total: int) -> None:
        self.reused += reused
        if self.bar is None:
            return
        if self.task is None:
            self.task = self.bar.add_task("", total=total)
        self.bar.update(self.task, advance=1, description=f"{p['id']}{' (saved)' if reused else ''}")


def _print(rep: dict[str, Any], reused: int) -> None:
    for n in rep["notes"]:
        console.print(f"note: {n}")
    measure = rep["measure"]
    t = Table(header_style="bold")
    for col, just in (
        ("method", "left"),
        ("setting", "right"),
        ("bytes", "right"),
        ("ratio", "right"),
        ("acc" if measure == "accuracy" else "agree", "right"),
        ("err", "right"),
        ("front", "center"),
    ):
        t.add_column(col, justify=just)  # type: ignore[arg-type]
    for p in rep["points"]:
        setting = "" if p["value"] is None else f"{p['value']:g}"
        if "error" in p:
            t.add_row(p["method"], setting, "failed", "", "", "", "")
            continue
        f = p.get("fidelity") or {}
        y = f.get(measure) if measure else None
        err = f.get("rel_error_mean")
        t.add_row(
            p["method"],
            setting,
            human_bytes(p["file_bytes"]),
            f"{p['ratio']:.1f}",
            "" if y is None else f"{100 * y:.1f} %",
            "" if err is None else f"{err:.3f}",
            "*" if p["pareto"] else "",
        )
    console.print(t)
    errors = [p for p in rep["points"] if "error" in p]
    for p in errors:
        console.print(f"{p['id']} failed: {p['error']}")
    made = len(rep["points"]) - reused
    files = ", ".join(["sweep.md", "sweep.json", *rep["plots"]])
    console.print(
        f"{len(rep['points'])} points ({made} made, {reused} saved before); front: "
        f"{', '.join(rep['pareto']) or 'none'}; wrote {files} in {rep['output']}"
    )
