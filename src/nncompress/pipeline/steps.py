"""Every word a recipe step may use, and the final step that decides how a weight is stored.

A recipe is passes then at most one final step: prune and quantize rewrite arrays, which a storage
format (csr, ham, sham...) then encodes exactly; a structured pass (lowrank, sss, dct, psm) is
itself the final step, since the factors it fits are what is stored. Both kinds of final step
answer the same questions here (`Final`), so the engine has one path for all of them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from nncompress.errors import UsageError
from nncompress.formats import FORMATS, Format
from nncompress.formats.shaped import matrix_shape
from nncompress.options import EXAMPLE, Options, Step, parse_step
from nncompress.passes import PASSES, Structured


def storage_formats() -> dict[str, type[Format]]:
    """The formats a storage step may name: those that encode exactly (not fitted by a pass)."""
    return {n: c for n, c in FORMATS.items() if not issubclass(PASSES.get(n, object), Structured)}


def structured_passes() -> dict[str, type[Structured]]:
    return {n: c for n, c in PASSES.items() if issubclass(c, Structured)}


def array_passes() -> dict[str, Any]:
    """The passes whose output is an array (prune, quantize): any number of them come first."""
    return {n: c for n, c in PASSES.items() if not issubclass(c, Structured)}


def all_steps() -> dict[str, Step]:
    return {**PASSES, **storage_formats()}


@dataclass(frozen=True)
class Final:
    """How a selected weight is stored: a storage format's exact encode, or a structured pass's fit."""

    name: str
    options: Options

    @property
    def fitted(self) -> bool:
        """Whether the stored tensor is an approximation the model then gets (a structured pass)."""
        return self.name in structured_passes()

    def applies_to(self, shape: tuple[int, ...]) -> bool:
        if self.fitted:
            return structured_passes()[self.name].applies_to(shape)
        return True

    def encode(self, m: np.ndarray) -> Format:
        """The format of the 2-D float32 matrix ``m``."""
        if self.fitted:
            return structured_passes()[self.name].fit(m, self.options)
        return FORMATS[self.name].encode(m, **vars(self.options))

    def encode_rows(self, shape: tuple[int, ...], rows: Callable[[int, int], np.ndarray]) -> Format:
        """The format of the matrix of weight ``shape`` whose matrix rows r0:r1 are ``rows(r0, r1)``."""
        m = matrix_shape(shape)
        if self.fitted:  # a fit reads the whole matrix
            return self.encode(rows(0, m[0]))
        return FORMATS[self.name].encode_rows(m, rows, **vars(self.options))


def encode_as(name: str, m: np.ndarray, **options: Any) -> Format:
    """Encode (storage format) or fit (structured pass) the 2-D matrix ``m`` as ``name``."""
    reg: dict[str, Step] = {**storage_formats(), **structured_passes()}
    if name not in reg:
        raise UsageError(f"unknown format {name!r}", hint=f"Formats: {', '.join(reg)}")
    return Final(name, reg[name].Options(**options)).encode(np.ascontiguousarray(m, dtype=np.float32))


@dataclass(frozen=True)
class Steps:
    """A parsed pipeline: the array passes' spec text and the final step (None: kept dense)."""

    passes: str
    final: Final | None
    given: dict[str, Any]  # options written on the final step, as the recipe records them


def parse_steps(spec: str) -> Steps:
    """``"prune:sparsity=0.9,quantize:k=32,sham"`` -> its passes and final step, checked before any work."""
    raw = [s.strip() for s in spec.split(",") if s.strip()]
    words = all_steps()
    parsed = [parse_step(s, words, what="step") for s in raw]
    final: Final | None = None
    given: dict[str, Any] = {}
    if parsed and parsed[-1][0] not in array_passes():
        name, opts = parsed.pop()
        raw.pop()
        final = Final(name, opts)
        given = _written(name, spec.split(",")[-1], opts)
    for (name, _), text in zip(parsed, raw, strict=True):
        if name not in array_passes():
            last = "a storage format" if name in storage_formats() else "a structured pass"
            raise UsageError(
                f"{name!r} is {last}: it can only be the last step of --pipeline ({text!r})",
                hint=f"Passes first, then one final step, e.g. {EXAMPLE}",
            )
    return Steps(",".join(raw), final, given)


def _written(name: str, text: str, opts: Options) -> dict[str, Any]:
    """The options the step text sets, with their typed values (the recipe records these)."""
    keys = [t.partition("=")[0].strip() for t in text.split(":")[1:]]
    return {k: getattr(opts, k) for k in keys if k}
