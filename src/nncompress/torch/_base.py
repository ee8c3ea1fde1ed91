"""The contract of a compressed weight as a PyTorch module, and the dispatch from a stored format.

A `CompressedWeight` holds ONE weight of the IR (Dense (out, in), Conv (out, in/groups, *kernel)) in
the representation of its storage format, as trainable parameters plus fixed buffers (indices,
masks, supports): it decodes to the dense weight (`dense`), multiplies by it without decoding
(`matmul`), and is converted from and back to the format (`from_format` / `to_format`). Untrained,
``to_format(from_format(f))`` has bit-identical arrays and meta; trained, it is the format re-made
from the new values (the fixed structure kept where the format allows).

The formats store a 2-D matrix (`formats.shaped.matrix_shape`: (out, prod(rest))); ``shape`` is the
weight's own shape, so a conv kernel is ``dense().reshape(shape)`` of that matrix.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any, ClassVar

import numpy as np
import torch  # noqa: TID253 (this package is the torch one; nothing outside it imports it eagerly)
from torch import Tensor, nn  # noqa: TID253

from nncompress.errors import UsageError
from nncompress.formats.base import Format
from nncompress.formats.shaped import Shaped, matrix_shape


class CompressedWeight(nn.Module):
    """One compressed weight as a module: ``forward(x) == matmul(x)``.

    Subclasses implement `_matrix` (the 2-D matrix, differentiable in the parameters), `_matmul2d`
    (``x @ M.T`` on the compressed representation), `_from_format` and `_to_format`.
    """

    name: ClassVar[str]  # the format's name in `formats.FORMATS`

    def __init__(self, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.shape: tuple[int, ...] = tuple(int(s) for s in shape)
        # A Shaped slot remembers its dtype (an integer weight stored losslessly) for `to_format`.
        self._shaped_dtype: np.dtype[Any] | None = None
        self._shaped = False

    @property
    def matrix_shape(self) -> tuple[int, int]:
        """(out, in) of the stored matrix."""
        return matrix_shape(self.shape)

    # ---- the contract ------------------------------------------------------------------------

    def dense(self) -> Tensor:
        """The weight in the IR layout, differentiable in the trainable parameters."""
        return self._matrix().reshape(self.shape)

    def matmul(self, x: Tensor) -> Tensor:
        """``x @ M.T`` over x's last axis, M the weight as its (out, in) matrix."""
        n_out, n_in = self.matrix_shape
        if x.shape[-1] != n_in:
            raise UsageError(
                f"{self.name} weight {self.shape} multiplies vectors of {n_in}, got {tuple(x.shape)}"
            )
        lead = x.shape[:-1]
        y = self._matmul2d(x.reshape(-1, n_in))
        return y.reshape(*lead, n_out)

    def forward(self, x: Tensor) -> Tensor:
        return self.matmul(x)

    @classmethod
    def from_format(cls, fmt: Format | Shaped) -> CompressedWeight:
        """The module of a stored format (or a Shaped slot: the weight's own shape is kept)."""
        inner, shape = (fmt.fmt, fmt.shape) if isinstance(fmt, Shaped) else (fmt, fmt.shape)
        if inner.name != cls.name:
            raise UsageError(f"{cls.__name__} takes {cls.name} tensors, got {inner.name}")
        if matrix_shape(tuple(shape)) != inner.shape:
            raise UsageError(f"weight shape {tuple(shape)} does not flatten to the stored {inner.shape}")
        mod = cls._from_format(inner, tuple(shape))
        if isinstance(fmt, Shaped):
            mod._shaped, mod._shaped_dtype = True, fmt.dtype
        return mod

    def to_format(self) -> Format | Shaped:
        """The stored format of the current values (a Shaped when made from one)."""
        fmt = self._to_format()
        if self._shaped:
            return Shaped(fmt, self.shape, dtype=self._shaped_dtype)
        return fmt

    # ---- what a format implements ------------------------------------------------------------

    @abstractmethod
    def _matrix(self) -> Tensor:
        """The (out, in) matrix."""

    @abstractmethod
    def _matmul2d(self, x: Tensor) -> Tensor:
        """``x @ M.T`` for x (B, in)."""

    @classmethod
    @abstractmethod
    def _from_format(cls, fmt: Format, shape: tuple[int, ...]) -> CompressedWeight:
        """The module of ``fmt`` (its class's format), for a weight of ``shape``."""

    @abstractmethod
    def _to_format(self) -> Format:
        """The format of the current values."""

    def extra_repr(self) -> str:
        return f"{self.name}, shape={self.shape}"


def param(a: np.ndarray) -> nn.Parameter:
    """A float32 trainable parameter holding a copy of ``a``."""
    return nn.Parameter(torch.tensor(np.asarray(a, dtype=np.float32)))


def index(a: np.ndarray) -> Tensor:
    """An int64 tensor (for a fixed buffer) holding a copy of ``a``."""
    return torch.tensor(np.asarray(a, dtype=np.int64))


def to_numpy32(t: Tensor) -> np.ndarray:
    """A tensor's values as a new float32 array (detached, on the CPU)."""
    return np.ascontiguousarray(t.detach().cpu().to(torch.float32).numpy())


def from_format(fmt: Format | Shaped) -> CompressedWeight:
    """The `CompressedWeight` of any registered format (`formats.FORMATS`), dispatched on its name."""
    from nncompress.torch.weights import WEIGHTS

    name = (fmt.fmt if isinstance(fmt, Shaped) else fmt).name
    cls = WEIGHTS.get(name)
    if cls is None:
        raise UsageError(f"no torch module for tensor format {name!r} (known: {', '.join(WEIGHTS)})")
    return cls.from_format(fmt)
