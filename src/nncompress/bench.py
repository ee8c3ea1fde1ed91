"""What `nncompress bench` measures: real compressed-domain products against dense and CSR baselines.

Every figure is measured in the same run on the same layer and the same inputs: the native kernel
on the compressed bytes, numpy dense (BLAS) and scipy CSR of the same matrix, timed by
`nncompress.timing.timeit` (median and interquartile range over ``repeat`` runs after warm-up).
Without the native extension the numpy reference ``dot()`` of each format is timed instead, and the
report's notes say so. `bench` returns the report that ``nncompress bench --json`` prints
(schema ``nncompress.bench/1``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from nncompress.errors import UsageError
from nncompress.progress import SILENT, Progress
from nncompress.timing import timeit

if TYPE_CHECKING:  # the formats pull in scipy: `nncompress --help` reads DEFAULT_PREPARE from here
    from nncompress.formats.base import Format

SCHEMA = "nncompress.bench/1"
DEFAULT_PREPARE = "prune:sparsity=0.8:scope=global,quantize:method=kmeans:k=32"
NO_NATIVE_NOTE = "native extension not built: timing the numpy reference dot() of each format instead"


@dataclass
class Layer:
    """One kernel to time: its dense matrix (out, in) and the formats encoding it."""

    name: str
    dense: np.ndarray
    encoded: list[Format]


def _skip(name: str, shape: Sequence[int], reason: str) -> dict[str, Any]:
    """A tensor bench leaves out, as the report lists it (``skipped``)."""
    return {"layer": name, "shape": [int(d) for d in shape], "reason": reason}


def bench(
    model: Path,
    batches: Sequence[int] = (1, 8),
    *,
    threads: int = 1,
    repeat: int = 20,
    formats: Sequence[str] = (),
    prepare: str = DEFAULT_PREPARE,
    min_size: int = 4096,
    on_note: Callable[[str], None] | None = None,
    progress: Progress = SILENT,
) -> dict[str, Any]:
    """Per layer of ``model`` (of at least ``min_size`` weights) and batch size: bytes, psi, and the
    median time of each format's product against numpy dense and scipy CSR of the same matrix.

    An artifact's layers are timed in their stored formats, plus ``formats``; a plain model's in
    ``formats`` after the ``prepare`` passes (dense without ``formats``). ``on_note`` hears each
    note as soon as it is known (the report lists them too). The report's ``skipped`` lists every
    other tensor with the reason it is not timed.
    """
    import scipy.sparse as sp

    from nncompress import native
    from nncompress.formats import FORMATS

    if not batches or any(b < 1 for b in batches):
        raise UsageError(f"batch sizes must be positive integers, got {list(batches)}")
    if threads < 1 or repeat < 1:
        raise UsageError("--threads and --repeat must be at least 1")
    for f in formats:
        if f not in FORMATS:
            raise UsageError(f"unknown format {f!r} in --formats", hint=f"Formats: {', '.join(FORMATS)}")
    # loading, the --prepare passes and encoding in --formats: one stage, its length unknown
    progress.stage(f"loading and encoding {Path(model).name}")
    layers, skipped = select_layers(model, formats, prepare, min_size)
    # one step per timed product: dense, CSR and each format, per layer and batch size
    progress.stage("timing", sum(len(batches) * (2 + len(layer.encoded)) for layer in layers))
    has_native = native.available()
    notes = []
    if not has_native:
        notes.append(NO_NATIVE_NOTE)
        if on_note:
            on_note(NO_NATIVE_NOTE)
    rng = np.random.default_rng(0)
    rows = []
    for layer in layers:
        dense = layer.dense
        csr = sp.csr_matrix(dense)
        for b in batches:
            x = rng.standard_normal((b, dense.shape[1])).astype(np.float32)
            t_dense = timeit(partial(np.matmul, x, dense.T), repeat).median
            t_csr = timeit(partial(_csr_product, csr, x), repeat).median
            progress.advance(2)
            for fmt in layer.encoded:
                ref = fmt.dot(x)
                runner = _runner(fmt, x, threads, has_native)
                kind = "native" if has_native and native.supports(fmt.name) else "numpy-ref"
                t = timeit(runner, repeat)
                err = float(np.abs(runner() - ref).max()) if ref.size else 0.0
                progress.advance()
                rows.append(
                    {
                        "layer": layer.name,
                        "shape": list(dense.shape),
                        "format": fmt.name,
                        "kernel": kind,
                        "batch": b,
                        "bytes": fmt.nbytes,
                        "psi": fmt.nbytes / dense.astype(np.float32).nbytes,
                        "time_s": t.median,
                        "iqr_s": t.iqr,
                        "dense_s": t_dense,
                        "csr_s": t_csr,
                        "vs_dense": t.median / t_dense,
                        "vs_csr": t.median / t_csr,
                        "max_abs_err": err,
                    }
                )
    return {
        "schema": SCHEMA,
        "model": str(model),
        "threads": threads,
        "repeat": repeat,
        "native": has_native,
        "notes": notes,
        "rows": rows,
        "skipped": skipped,
    }


def _csr_product(csr: Any, x: np.ndarray) -> np.ndarray:
    return (csr @ x.T).T


def _runner(fmt: Format, x: np.ndarray, threads: int, has_native: bool) -> Callable[[], np.ndarray]:
    from nncompress import native

    if has_native and native.supports(fmt.name):
        dot = native.bind(fmt, threads)  # as a layer run in a loop would: arguments converted once
        return lambda: dot(x)
    return lambda: fmt.dot(x)


def load_layers(model: Path, formats: Sequence[str], prepare: str) -> list[Layer]:
    """The kernels to time: an artifact's stored formats (plus ``formats`` of the same matrix), or a
    plain model's selected weights in ``formats`` after the ``prepare`` passes (dense without)."""
    return select_layers(model, formats, prepare)[0]


def select_layers(
    model: Path, formats: Sequence[str], prepare: str, min_size: int = 0
) -> tuple[list[Layer], list[dict[str, Any]]]:
    """`load_layers` of at least ``min_size`` weights, and every other tensor of the model with the
    reason it is left out, in graph order (a person asks why a layer is missing from the table)."""
    from nncompress.formats.shaped import Shaped
    from nncompress.io import detect_format, load
    from nncompress.passes import default_select, run_pipeline
    from nncompress.pipeline import graph_from_artifact
    from nncompress.pipeline.steps import encode_as

    out: list[Layer] = []
    skipped: list[dict[str, Any]] = []
    under = f"under --min-size {min_size}"
    if detect_format(model) == "nnc":
        g = graph_from_artifact(model)
        for w in g.weights.values():
            if not isinstance(w.value, Shaped):
                why = "stored as is, not compressed" if len(w.shape) >= 2 else f"not a matrix ({w.role})"
                skipped.append(_skip(w.name, w.shape, why))
            elif w.size < min_size:
                skipped.append(_skip(w.name, w.shape, under))
            else:
                f = w.value.fmt
                mats = [f] + [encode_as(n, f.to_dense()) for n in formats if n != f.name]
                out.append(Layer(w.name, f.to_dense(), mats))
        return out, skipped
    g = load(model)
    if formats and prepare:
        g, _ = run_pipeline(g, prepare, detailed=False)
    for w in g.weights.values():
        if not default_select(w):
            if not np.issubdtype(w.dtype, np.floating):
                why = "not a float tensor"
            elif len(w.shape) < 2:
                why = f"not a matrix ({w.role})"
            else:  # compress would leave it as it is too
                why = f"not a weight compress selects ({w.role})"
            skipped.append(_skip(w.name, w.shape, why))
        elif w.size < min_size:
            skipped.append(_skip(w.name, w.shape, under))
        else:
            m = w.array.reshape(w.shape[0], -1).astype(np.float32)
            out.append(Layer(w.name, m, [encode_as(n, m) for n in (formats or ["dense"])]))
    return out, skipped
