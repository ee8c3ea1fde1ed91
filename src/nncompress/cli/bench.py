"""`nncompress bench MODEL_OR_ART`: time real compressed-domain products against dense and CSR baselines.

Every figure is measured in the same run on the same layer and the same inputs: the native kernel
on the compressed bytes, numpy dense (BLAS) and scipy CSR of the same matrix, as medians over
``--repeat`` runs after warm-up, with their spread (interquartile range). Without the native
extension the numpy reference ``dot()`` of each format is timed instead, and the table says so.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.table import Table

from nncompress.cli._common import console, emit_json, human_bytes, shape_str

app = typer.Typer()

DEFAULT_PREPARE = "prune:sparsity=0.8:scope=global,quantize:method=kmeans:k=32"


def _ints(spec: str, what: str) -> list[int]:
    from nncompress.errors import UsageError

    try:
        vals = [int(v) for v in spec.split(",") if v.strip()]
    except ValueError:
        raise UsageError(f"{what} must be comma-separated integers, got {spec!r}") from None
    if not vals or any(v < 1 for v in vals):
        raise UsageError(f"{what} must be positive integers, got {spec!r}")
    return vals


def timeit(fn: Any, repeat: int, warmup: int = 3) -> tuple[float, float]:
    """Median and interquartile range of ``fn()`` in seconds."""
    for _ in range(warmup):
        fn()
    ts = np.empty(repeat)
    for i in range(repeat):
        t0 = time.perf_counter_ns()
        fn()
        ts[i] = (time.perf_counter_ns() - t0) * 1e-9
    q1, med, q3 = np.percentile(ts, [25, 50, 75])
    return float(med), float(q3 - q1)


@app.command("bench")
def bench_cmd(
    model: Annotated[Path, typer.Argument(help="A model file or a .nnc artifact.", show_default=False)],
    batch: Annotated[str, typer.Option(help="Batch sizes, comma-separated.")] = "1,8",
    threads: Annotated[int, typer.Option(help="Threads of the native kernels.")] = 1,
    repeat: Annotated[int, typer.Option(help="Timed runs per measurement (after 3 warm-up runs).")] = 20,
    formats: Annotated[
        str | None,
        typer.Option(help="Encode each layer in each of these formats and compare (e.g. ham,sham,csr)."),
    ] = None,
    prepare: Annotated[
        str, typer.Option(help="Passes run on a plain model before --formats encode it (one matrix for all).")
    ] = DEFAULT_PREPARE,
    min_size: Annotated[int, typer.Option(help="Skip layers with fewer weights than this.")] = 4096,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")] = False,
) -> None:
    """Per layer: bytes, psi, and the median time of the compressed product vs numpy dense and scipy CSR."""
    import scipy.sparse as sp

    from nncompress import native
    from nncompress.errors import UsageError
    from nncompress.formats import FORMATS

    batches = _ints(batch, "--batch")
    if threads < 1 or repeat < 1:
        raise UsageError("--threads and --repeat must be at least 1")
    fmts = [f.strip() for f in formats.split(",")] if formats else []
    for f in fmts:
        if f not in FORMATS:
            raise UsageError(f"unknown format {f!r} in --formats", hint=f"Formats: {', '.join(FORMATS)}")
    layers = _layers(model, fmts, prepare)
    has_native = native.available()
    notes = []
    if not has_native:
        notes.append("native extension not built: timing the numpy reference dot() of each format instead")
        console.print(f"note: {notes[-1]}")
    rng = np.random.default_rng(0)
    rows = []
    for name, dense, encoded in layers:
        if dense.size < min_size:
            continue
        csr = sp.csr_matrix(dense)
        for b in batches:
            x = rng.standard_normal((b, dense.shape[1])).astype(np.float32)
            t_dense, _ = timeit(lambda d=dense, x=x: x @ d.T, repeat)
            t_csr, _ = timeit(lambda c=csr, x=x: (c @ x.T).T, repeat)
            for fmt in encoded:
                ref = fmt.dot(x)
                runner = _runner(fmt, x, threads, has_native)
                kind = "native" if has_native and native.supports(fmt.name) else "numpy-ref"
                t, iqr = timeit(runner, repeat)
                err = float(np.abs(runner() - ref).max()) if ref.size else 0.0
                rows.append(
                    {
                        "layer": name,
                        "shape": list(dense.shape),
                        "format": fmt.name,
                        "kernel": kind,
                        "batch": b,
                        "bytes": fmt.nbytes,
                        "psi": fmt.nbytes / dense.astype(np.float32).nbytes,
                        "time_s": t,
                        "iqr_s": iqr,
                        "dense_s": t_dense,
                        "csr_s": t_csr,
                        "vs_dense": t / t_dense,
                        "vs_csr": t / t_csr,
                        "max_abs_err": err,
                    }
                )
    report = {
        "schema": "nncompress.bench/1",
        "model": str(model),
        "threads": threads,
        "repeat": repeat,
        "native": has_native,
        "notes": notes,
        "rows": rows,
    }
    if json_out:
        emit_json(report)
    else:
        _render(report)


def _runner(fmt: Any, x: np.ndarray, threads: int, has_native: bool) -> Any:
    from nncompress import native

    if has_native and native.supports(fmt.name):
        dot = native.bind(fmt, threads)  # as a layer run in a loop would: arguments converted once
        return lambda: dot(x)
    return lambda: fmt.dot(x)


def _layers(model: Path, fmts: list[str], prepare: str) -> list[tuple[str, np.ndarray, list[Any]]]:
    """(name, dense matrix, encoded formats) per kernel: stored ones for an artifact, --formats else."""
    from nncompress.compress import Shaped, graph_from_artifact
    from nncompress.formats import FORMATS
    from nncompress.io import detect_format, load
    from nncompress.passes import default_select, run_pipeline

    if detect_format(model) == "nnc":
        g = graph_from_artifact(model)
        out = []
        for w in g.weights.values():
            if isinstance(w.value, Shaped):
                f = w.value.fmt
                mats = [f] + [FORMATS[n].encode(f.to_dense()) for n in fmts if n != f.name]
                out.append((w.name, f.to_dense(), mats))
        return out
    g = load(model)
    if fmts and prepare:
        g, _ = run_pipeline(g, prepare, detailed=False)
    out = []
    for w in g.weights.values():
        if not default_select(w):
            continue
        m = w.array.reshape(w.shape[0], -1).astype(np.float32)
        encoded = [FORMATS[n].encode(m) for n in (fmts or ["dense"])]
        out.append((w.name, m, encoded))
    return out


def _render(r: dict[str, Any]) -> None:
    t = Table(header_style="bold")
    cols = ["layer", "shape", "format", "kernel", "batch", "bytes", "psi", "time", "±iqr", "dense", "csr"]
    cols += ["vs dense", "vs csr", "max err"]
    for c in cols:
        t.add_column(c, justify="left" if c in ("layer", "shape", "format", "kernel") else "right")
    for row in r["rows"]:
        t.add_row(
            row["layer"],
            shape_str(row["shape"]),
            row["format"],
            row["kernel"],
            str(row["batch"]),
            human_bytes(row["bytes"]),
            f"{row['psi']:.3f}",
            f"{row['time_s'] * 1e3:.3f} ms",
            f"{row['iqr_s'] * 1e3:.3f}",
            f"{row['dense_s'] * 1e3:.3f} ms",
            f"{row['csr_s'] * 1e3:.3f} ms",
            f"{row['vs_dense']:.2f}x",
            f"{row['vs_csr']:.2f}x",
            f"{row['max_abs_err']:.1e}",
        )
    console.print(t)
    console.print(
        f"{r['model']}: median of {r['repeat']} runs after 3 warm-ups, {r['threads']} thread(s); "
        "'vs' columns are time ratios (below 1 is faster than the baseline)"
    )
