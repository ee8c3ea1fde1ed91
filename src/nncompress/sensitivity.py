"""`nncompress sensitivity`: how each tensor's bytes and the model's fidelity move with a preset's knob.

The table is the one the budget search allocates from (`pipeline.search.scan`): per selected
tensor and knob value, the payload bytes, the weight error, and the model's mean relative output
error and top-1 disagreement with only that tensor changed (measured at some values, interpolated
by weight error at the others; each row says which).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from nncompress.errors import UsageError
from nncompress.progress import SILENT, Progress

SCHEMA = "nncompress.sensitivity/1"


def sensitivity(
    model: str | os.PathLike[str],
    *,
    method: str = "smallest",
    data: str | os.PathLike[str] | None = None,
    samples: int | None = None,
    input_shapes: dict[str | None, tuple[int | None, ...]] | None = None,
    seed: int = 0,
    trust_pickle: bool = False,
    progress: Progress = SILENT,
) -> dict[str, Any]:
    """The sensitivity report of ``model`` under the preset ``method`` (schema ``nncompress.sensitivity/1``);
    ``progress`` hears loading, the original's run and the scan."""
    from nncompress.errors import UnsupportedError
    from nncompress.fidelity import reference
    from nncompress.io import load
    from nncompress.pipeline.knobs import KNOBS
    from nncompress.pipeline.search import scan

    if method not in KNOBS:
        raise UsageError(f"unknown method {method!r}", hint=f"Methods: {', '.join(KNOBS)}")
    if samples is not None and samples < 1:
        raise UsageError(f"--samples must be at least 1, got {samples}")
    knob = KNOBS[method]
    progress.stage(f"loading {Path(model).name}")
    graph = load(Path(model), trust_pickle=trust_pickle)
    ref = reference(
        graph, data_path=data, samples=samples, seed=seed, shapes=input_shapes or {}, progress=progress
    )
    if not ref.measured:
        raise UnsupportedError(f"cannot run the model, so nothing to measure ({ref.reason})", path=str(model))
    sc = scan(graph, knob, ref, seed=seed, progress=progress)
    return {
        "schema": SCHEMA,
        "input": str(model),
        "method": method,
        "option": knob.option,
        "values": list(knob.values),
        "preset_value": knob.preset,
        "samples": sc.samples,
        "runtime": sc.runtime,
        "data": ref.data.origin if ref.data is not None else None,
        "seed": seed,
        "tensors": [t.as_dict() for t in sc.table],
        "notes": ref.notes + sc.notes,
    }


def plot(report: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Output error against payload bytes per tensor (log-log), one line per tensor, to PNG or SVG.
    Needs matplotlib (the ``plot`` extra)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise UsageError(
            "--plot needs matplotlib", hint="pip install 'nncompress[plot]' (or matplotlib)"
        ) from None
    out = Path(path)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for t in report["tensors"]:
        pts = [(s["bytes"], s["error"]) for s in t["settings"] if s["value"] is not None and s["error"] > 0]
        if pts:
            xs, ys = zip(*sorted(pts), strict=True)
            ax.plot(xs, ys, marker=".", label=t["name"])
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("payload bytes of the tensor")
    ax.set_ylabel("mean relative output error (this tensor alone)")
    ax.set_title(f"{Path(report['input']).name}: {report['method']} ({report['option']})")
    if len(report["tensors"]) <= 12:
        ax.legend(fontsize="small")
    fig.tight_layout()
    if out.suffix not in (".png", ".svg"):
        raise UsageError(f"--plot writes .png or .svg, got {out.name}")
    # no tool version or date in the file: the same report gives the same bytes
    fig.savefig(out, metadata={"Software": None} if out.suffix == ".png" else {"Date": None, "Creator": None})
    plt.close(fig)
    return out
