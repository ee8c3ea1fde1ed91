"""What ``nncompress eval`` measures: a model's accuracy on labelled data, and its fidelity to a
reference model run on the same samples."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from nncompress.progress import SILENT, Progress


def evaluate(
    model: str | os.PathLike[str],
    data: str | os.PathLike[str],
    *,
    reference: str | os.PathLike[str] | None = None,
    samples: int | None = None,
    trust_pickle: bool = False,
    progress: Progress = SILENT,
) -> dict[str, Any]:
    """The ``nncompress.eval/1`` report of ``model`` (a model file or a .nnc) on ``data`` (.npz).
    ``progress`` hears the loading of each model and its run (counting samples)."""
    from nncompress.api import load
    from nncompress.errors import UnsupportedError, UsageError
    from nncompress.fidelity import figures, run_model
    from nncompress.inputs import load_data, signatures
    from nncompress.runtime import RuntimeFailure

    if samples is not None and samples < 1:
        raise UsageError(f"--samples must be at least 1, got {samples}")
    g = load(model, trust_pickle=trust_pickle, progress=progress)
    specs, _ = signatures(g)
    ev = load_data(data, specs, samples=samples)
    try:
        out, runtime, output = run_model(g, ev, progress=progress, label=f"running {Path(model).name}")
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
        rg = load(reference, trust_pickle=trust_pickle, progress=progress)
        try:
            ref_out, ref_runtime, _ = run_model(
                rg, ev, progress=progress, label=f"running {Path(reference).name}"
            )
        except RuntimeFailure as e:
            raise UnsupportedError(f"cannot compute its outputs: {e}", path=str(reference)) from None
        fid = figures(ref_out, out, ev, runtime, output)
        if ref_runtime != runtime:
            fid["reference_runtime"] = ref_runtime
        res["fidelity"] = fid
    res["output_mean_abs"] = float(np.abs(out).mean())
    res["notes"] = list(ev.notes)
    return res
