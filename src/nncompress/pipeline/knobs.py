"""The one setting of each preset that a fidelity budget tunes per tensor, and the values it tries.

A preset is a pipeline with one number that decides how hard it compresses: the sparsity of the
pruning ones, the number of shared values of the quantizing ones, the parameter budget of the
structured ones, the step of ``smallest``. The budget search (`pipeline.search`) picks that number
per tensor among ``values`` (mildest first), or keeps the tensor as it is.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from nncompress.pipeline.recipe import Recipe, recipe_from

_SPARSITY = (0.3, 0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)
_K = (256, 128, 64, 32, 16, 8, 4)
_BUDGET = (0.5, 0.4, 0.3, 0.2, 0.15, 0.1, 0.05)
# rdoq's step, relative to the tensor's RMS, in quarter octaves: 2**(-q/4) for q = 16 .. -6 (about
# 8 bits a weight down to a fraction of one, where most weights round to zero). Quarter octaves,
# because one half-octave step on a large layer moves the file by a fifth.
_STEP = tuple(round(2.0 ** (-q / 4), 6) for q in range(16, -7, -1))


def _eighth_octave(a: float, b: float) -> float:
    """The step halfway between two quarter-octave neighbours, in octaves."""
    return round(float(a * b) ** 0.5, 6)


@dataclass(frozen=True)
class Knob:
    """``template`` with its one ``{}`` set to a value of ``values`` is a per-tensor pipeline."""

    option: str
    template: str
    values: tuple[Any, ...]  # mildest first
    preset: Any  # the preset's own value (None: the preset has no fixed one)
    # templates also searched where compress has data-driven sensitivities (rdoq's fisher
    # weighting); the smallest allocation that keeps the budget wins
    variants: tuple[str, ...] = ()
    # the value halfway between two neighbours of ``values``, for the search's last polish (None:
    # the grid is all it tries)
    between: Callable[[Any, Any], Any] | None = None

    def recipe(self, value: Any) -> Recipe:
        return recipe_from(None, self.template.format(value))

    def up_to_preset(self) -> tuple[Any, ...]:
        """The values no stronger than the preset's own."""
        if self.preset is None:
            return self.values
        return self.values[: self.values.index(self.preset) + 1]


def _prune(fmt: str) -> Knob:
    return Knob("sparsity", "prune:sparsity={}," + fmt, _SPARSITY, 0.8)


def _share(fmt: str) -> Knob:
    return Knob("k", "quantize:method=kmeans:k={}," + fmt, _K, 32)


def _prune_share(fmt: str) -> Knob:
    return Knob("sparsity", "prune:sparsity={},quantize:method=kmeans:k=32," + fmt, _SPARSITY, 0.8)


KNOBS: dict[str, Knob] = {
    "prune": _prune("csr"),
    "csr": _prune("csr"),
    "quantize": _share("im"),
    "im": _share("im"),
    "ham": _share("ham"),
    "sham": _prune_share("sham"),
    "cser": _prune_share("cser"),
    "lowrank": Knob("budget", "lowrank:budget={}", _BUDGET, 0.1),
    "sss": Knob("budget", "sss:budget={}", _BUDGET, 0.1),
    "dct": Knob("budget", "dct:budget={}", _BUDGET, 0.1),
    "psm": Knob("budget", "psm:budget={}", _BUDGET, 0.2),
    # With --data, rdoq's fisher weighting, alone and at two powers with GPTQ compensation, is
    # searched beside the plain one. On the MNIST examples the compensated ones won on vggmini by
    # 40-50 % of payload at the same drop, fisher alone on lenet300 at 0.5 points; compensation
    # without fisher, and fisher 0.25 alone, never won there and were dropped (each search costs
    # its share of the time). benchmarks/README.md, --method smallest
    "smallest": Knob(
        "step",
        "rdoq:step={},cabac",
        _STEP,
        None,
        (
            "rdoq:step={}:weighting=fisher:fisher_power=0.125,cabac",
            "rdoq:step={}:weighting=fisher:fisher_power=0.25:compensate=true,cabac",
            "rdoq:step={}:weighting=fisher:fisher_power=0.125:compensate=true,cabac",
        ),
        _eighth_octave,
    ),
}
