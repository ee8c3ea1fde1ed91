"""Feeding data to a torch module built from the IR and reading its compared output: shared by
fine-tuning (`nncompress.finetune`) and the Fisher estimate (`nncompress.torch.fisher`), so that
both take the same rows and the same output the fidelity report compares."""

from __future__ import annotations

from typing import Any

import numpy as np

from nncompress.inputs import EvalData
from nncompress.ir import Graph

SOFTMAX_TOL = 1e-3  # rows summing to 1 within this, all >= 0, are already probabilities


def compared_output(graph: Graph) -> int:
    """Index of the output fidelity compares (the runtimes' rule: the first floating-point one)."""
    from nncompress.runtime import _first_float

    return _first_float([str(v.dtype) for v in graph.outputs])


def pick(out: Any, k: int) -> Any:
    """Output ``k`` of a module's result (a tuple for several outputs, the tensor for one)."""
    return out[k] if isinstance(out, tuple) else out


def take_rows(data: EvalData, idx: np.ndarray, dev: Any) -> dict[str, Any]:
    """The feeds of rows ``idx`` (batched inputs indexed on their batch axis, others whole)."""
    import torch

    out = {}
    for s in data.specs:
        a = data.arrays[s.name]
        if s.batch_axis is not None:
            a = np.take(a, idx, axis=s.batch_axis)
        out[s.name] = torch.as_tensor(np.ascontiguousarray(a)).to(dev)
    return out


def is_distribution(t: Any) -> bool:
    """Rows that are already a distribution (a model ending in softmax)."""
    return bool((t >= 0).all()) and bool(((t.sum(-1) - 1).abs() < SOFTMAX_TOL).all())
