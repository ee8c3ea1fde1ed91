"""A 2-D format seen with its weight's own shape: what a compressed weight slot of the IR holds.

Formats store one (out, rest) matrix; conv kernels and 1-D weights are flattened to that by
`matrix_shape`. ``Shaped`` gives the executor and the writers the weight's shape and dtype back.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from nncompress.formats.base import Format


def matrix_shape(shape: tuple[int, ...]) -> tuple[int, int]:
    """The 2-D shape a format stores a weight of ``shape`` as: (1, n) for 1-D, (out, rest) else."""
    if len(shape) == 1:
        return 1, int(shape[0])
    return int(shape[0]), int(np.prod(shape[1:], dtype=np.int64))


def as_matrix2d(w: np.ndarray) -> np.ndarray:
    """``w`` reshaped to its `matrix_shape` (a view where possible)."""
    return w.reshape(1, -1) if w.ndim == 1 else w.reshape(w.shape[0], -1)


class Shaped:
    """A 2-D format seen with the weight's own shape (conv kernels are stored as (out, rest))."""

    def __init__(
        self,
        fmt: Format,
        shape: tuple[int, ...],
        dense: np.ndarray | None = None,
        dtype: np.dtype[Any] | None = None,
    ) -> None:
        self.fmt = fmt
        self._shape = tuple(shape)
        # An integer weight stored losslessly decodes to its own dtype (formats hold float32).
        self._dtype = np.dtype(np.float32) if dtype is None else np.dtype(dtype)
        # compress already holds the exact dense array it encoded (storage formats are lossless,
        # which their tests check); keeping it spares a full decode when fidelity is measured.
        self._dense = dense
        self._bound: Callable[[np.ndarray], np.ndarray] | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        return self._shape

    @property
    def dtype(self) -> np.dtype[Any]:
        return self._dtype

    def to_dense(self) -> np.ndarray:
        if self._dense is not None:
            return self._dense
        return self.fmt.to_dense().reshape(self._shape).astype(self._dtype, copy=False)

    def dot(self, x: np.ndarray) -> np.ndarray | None:
        """``x @ W.T`` by the format's native kernel, for the executor; None where there is none
        (or the dense copy is at hand), and the executor decodes instead."""
        from nncompress import native

        if self._dense is not None or len(self._shape) != 2 or not native.supports(self.fmt.name):
            return None
        if self._dtype.kind != "f":  # integer arithmetic (MatMulInteger) is the executor's, on the values
            return None
        if self._bound is None:  # the arrays are converted once, not on every batch
            self._bound = native.bind(self.fmt)
        return self._bound(x)
