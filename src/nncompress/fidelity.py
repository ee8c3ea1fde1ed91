"""How close a compressed model is to its original: run both with the reference executor and compare.

Figures: top-1 agreement (share of samples whose arg-max class is unchanged), mean and max relative
output error (per sample ||a - b|| / ||a||), and accuracy before and after when labels exist.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nncompress.errors import InputError, UsageError
from nncompress.ir import Graph


@dataclass
class EvalData:
    """Inputs for a fidelity run, and labels if any; ``origin`` says where they came from."""

    x: np.ndarray
    y: np.ndarray | None
    origin: str


def load_data(path: str | os.PathLike[str], *, samples: int | None = None) -> EvalData:
    """Read an ``.npz`` with ``x`` and optional ``y`` (at most ``samples`` rows)."""
    p = Path(path)
    try:
        with np.load(p, allow_pickle=False) as d:
            if "x" not in d:
                raise InputError(
                    f"has no array 'x' (found: {', '.join(d.files) or 'none'})",
                    path=str(p),
                    hint="Save inputs as x (and labels as y) with numpy.savez",
                )
            x = d["x"]
            y = d["y"] if "y" in d else None
    except FileNotFoundError:
        raise InputError("no such file", path=str(p), hint="Check the --data path") from None
    except (OSError, ValueError, EOFError) as e:
        raise InputError(
            f"not a readable .npz ({e})", path=str(p), hint="Write it with numpy.savez"
        ) from None
    if y is not None and len(y) != len(x):
        raise InputError(f"x has {len(x)} rows but y has {len(y)}", path=str(p))
    if samples is not None:
        x, y = x[:samples], (None if y is None else y[:samples])
    return EvalData(x, y, str(p))


def random_data(graph: Graph, samples: int, seed: int) -> EvalData:
    """Seeded standard-normal inputs shaped like the graph's single input (batch axis = samples)."""
    if len(graph.inputs) != 1:
        raise UsageError("random inputs need a model with exactly one input", hint="Pass --data FILE.npz")
    shape = graph.inputs[0].shape
    if shape is None or any(not isinstance(d, int) for d in shape[1:]):
        raise UsageError(
            f"the input shape of {graph.meta.path or 'the model'} is not fully known ({shape})",
            hint="Pass --data FILE.npz with example inputs",
        )
    dims = tuple(int(d) for d in shape[1:])  # type: ignore[arg-type]
    # Drawn a few rows at a time into float32 (the same numbers as one draw): one float64 draw of 256
    # VGG16 inputs is 308 MB. The first n rows do not depend on how many follow.
    x = np.empty((samples, *dims), dtype=np.float32)
    rng = np.random.default_rng(seed)
    per = max(1, DRAW_FLOATS // max(1, int(np.prod(dims, dtype=np.int64))))
    for i in range(0, samples, per):
        x[i : i + per] = rng.standard_normal((min(per, samples - i), *dims))
    return EvalData(x, None, f"seeded random inputs (seed {seed})")


DEFAULT_SAMPLES = 256
# Without --samples, a run of the original on the default count is kept near RUN_BUDGET_S seconds
# (the compressed model's run costs about as much again). On a VGG16, 16 samples added 22 s and
# 0.46 GB to compress's 2: the default 256 would have taken about 7 minutes and 9 GB. It now gets
# MIN_SAMPLES. A batch holds about BATCH_BUDGET_S seconds of compute, a proxy for the memory its
# activations take.
RUN_BUDGET_S = 10.0
BATCH_BUDGET_S = 1.0
MIN_SAMPLES = 8
DRAW_FLOATS = 1 << 22  # random inputs are drawn this many numbers at a time


def subset(data: EvalData, n: int) -> EvalData:
    """The first ``n`` samples of ``data``, copied: the rest can go (256 VGG16 inputs are 154 MB)."""
    return EvalData(data.x[:n].copy(), None if data.y is None else data.y[:n].copy(), data.origin)


def time_one(graph: Graph, x: np.ndarray) -> float:
    """Seconds the reference executor takes on the first sample of ``x``."""
    from nncompress.ir.execute import run

    t0 = time.perf_counter()
    run(graph, x[:1], batch_size=1)
    return max(time.perf_counter() - t0, 1e-6)


def plan_samples(t1: float, available: int, *, explicit: bool) -> tuple[int, int, str | None]:
    """(samples, batch size, note) for a model that takes ``t1`` s a sample: the batch size that keeps
    a batch near BATCH_BUDGET_S and, unless the count was asked for (``explicit``), the samples of the
    ``available`` that keep a run near RUN_BUDGET_S (at least MIN_SAMPLES), with a note for the
    report when some are left out."""
    batch = int(min(DEFAULT_SAMPLES, max(1, BATCH_BUDGET_S / t1)))
    n = available if explicit else int(min(available, max(MIN_SAMPLES, RUN_BUDGET_S / t1)))
    if n >= available:
        return available, batch, None
    note = (
        f"fidelity on the first {n} of {available} samples: one sample takes {t1:.2f} s on this model "
        f"(pass --samples {available} to use them all)"
    )
    return n, batch, note


def _top1(out: np.ndarray) -> np.ndarray:
    return out.reshape(len(out), -1).argmax(axis=1)


def compare(original: Graph, compressed: Graph, data: EvalData, *, batch_size: int = 256) -> dict[str, Any]:
    """Fidelity figures of ``compressed`` against ``original`` on ``data`` (first output of each)."""
    return compare_to(
        reference(original, data, batch_size=batch_size), compressed, data, batch_size=batch_size
    )


def reference(original: Graph, data: EvalData, *, batch_size: int = 256) -> np.ndarray:
    """The original model's first output on ``data``: what `compare_to` measures against.

    Taken before compressing, it lets compress drop each original weight as soon as it is encoded.
    """
    from nncompress.ir.execute import run

    return run(original, data.x, batch_size=batch_size)[0].astype(np.float64)


def compare_to(a: np.ndarray, compressed: Graph, data: EvalData, *, batch_size: int = 256) -> dict[str, Any]:
    """Fidelity figures of ``compressed`` against the reference outputs ``a`` on ``data``."""
    from nncompress.ir.execute import run

    b = run(compressed, data.x, batch_size=batch_size)[0].astype(np.float64)
    diff = np.linalg.norm((a - b).reshape(len(a), -1), axis=1)
    norm = np.linalg.norm(a.reshape(len(a), -1), axis=1)
    rel = diff / np.maximum(norm, np.finfo(np.float64).tiny)
    res: dict[str, Any] = {
        "data": data.origin,
        "samples": len(a),
        "top1_agreement": float((_top1(a) == _top1(b)).mean()),
        "rel_error_mean": float(rel.mean()),
        "rel_error_max": float(rel.max()),
    }
    if data.y is not None:
        y = data.y.reshape(len(data.y), -1).argmax(1) if data.y.ndim > 1 else data.y
        res["accuracy_before"] = float((_top1(a) == y).mean())
        res["accuracy_after"] = float((_top1(b) == y).mean())
        res["accuracy_drop"] = res["accuracy_before"] - res["accuracy_after"]
    return res
