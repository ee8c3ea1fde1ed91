"""Per-weight sensitivity from data: the diagonal of the empirical Fisher information.

For each sample, the gradient of the cross-entropy of the model's class scores against the label
(or, without labels, the class the model itself predicts) with respect to every float weight;
the mean of the squared per-sample gradients estimates how much each weight's error costs in loss
(a change d of weight i moves the expected loss by about F_i * d**2 / 2). rdoq's
``weighting=fisher`` weighs each weight's distortion by it (`passes.rdoq`); the same estimate as
DeepCABAC's and HAWQ-style mixed-precision sensitivity, taken per sample because the squared
mean of a batch's gradients cancels what the samples disagree on.

The model runs in torch (`nncompress.torch.graph.to_torch`), whatever runtime it deploys with: the
sensitivity is a search aid, never a reported figure. Deterministic: the first ``samples`` rows, in
order, one at a time, in float32 on the CPU.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from nncompress.inputs import EvalData
from nncompress.ir import Graph

SAMPLES = 256  # rows of the data the estimate averages over (lenet300: 0.4 s, vggmini: 1.5 s)


def squared_gradients(
    graph: Graph, data: EvalData, names: list[str], *, samples: int = SAMPLES
) -> tuple[dict[str, np.ndarray], int] | None:
    """Mean squared per-sample gradient of each weight of ``names`` (IR layout, float64), and the
    number of samples; None when the compared output is not class scores (one value a row: there is
    no class to take the log-likelihood of) or the data has no batch axis to take rows of."""
    import torch
    import torch.nn.functional as F

    from nncompress.torch.feeds import compared_output, is_distribution, pick, take_rows
    from nncompress.torch.graph import to_torch

    if not data.batched() or data.n == 0:
        return None
    module = to_torch(graph).eval()
    params: dict[str, torch.nn.Parameter] = {}
    for name in names:
        slot = module.weight(name)
        if isinstance(slot, torch.nn.Parameter):  # a float weight (not a buffer or a compressed slot)
            params[name] = slot
    if not params:
        return None
    for p in module.parameters():
        p.requires_grad_(False)
    for p in params.values():
        p.requires_grad_(True)
    k = compared_output(graph)
    labels = data.y if data.y is not None and len(data.y) == data.n else None
    sums = {n: torch.zeros_like(p, dtype=torch.float64) for n, p in params.items()}
    n = min(samples, data.n)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        for i in range(n):
            out = pick(module(take_rows(data, np.array([i]), torch.device("cpu"))), k).float()
            if out.ndim < 2 or out.shape[-1] < 2:
                return None
            scores = out.reshape(-1, out.shape[-1])
            logits = torch.log(scores.clamp_min(1e-12)) if is_distribution(scores.detach()) else scores
            target: Any = (
                torch.as_tensor(np.asarray(labels[i : i + 1]).reshape(-1), dtype=torch.long)
                if labels is not None
                else logits.detach().argmax(-1)
            )
            if target.numel() != logits.shape[0]:
                target = logits.detach().argmax(-1)
            loss = F.cross_entropy(logits, target)
            grads = torch.autograd.grad(loss, list(params.values()), allow_unused=True)
            for (name, _), g in zip(params.items(), grads, strict=True):
                if g is not None:
                    sums[name] += g.detach().double() ** 2
    return {name: (s / n).numpy() for name, s in sums.items()}, n
