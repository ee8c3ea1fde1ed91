"""`CompressedWeight` modules of the plain formats (dense, csr/csc/coo, lowrank) and the registry of all.

``WEIGHTS`` maps every name of `formats.FORMATS` to its module class; `nncompress.torch.from_format`
dispatches on it. The codebook formats are in `shared`, the structured ones in `structured`.
"""

from __future__ import annotations

from typing import cast

import numpy as np
from torch import Tensor  # noqa: TID253 (this package is the torch one; nothing outside it imports it eagerly)

from nncompress.formats.base import Format
from nncompress.formats.dense import Dense
from nncompress.formats.lowrank import LowRank
from nncompress.formats.sparse import SparseFormat
from nncompress.torch._base import CompressedWeight, param, to_numpy32
from nncompress.torch._sparse import Pattern
from nncompress.torch.shared import (
    CabacWeight,
    CSERWeight,
    HuffmanWeight,
    IndexMapWeight,
    SparseHuffmanWeight,
)
from nncompress.torch.structured import DCTWeight, PSMWeight, SSSWeight


class DenseWeight(CompressedWeight):
    """``dense``: the matrix itself, one parameter."""

    name = "dense"

    def __init__(self, shape: tuple[int, ...], values: np.ndarray) -> None:
        super().__init__(shape)
        self.values = param(values)

    def _matrix(self) -> Tensor:
        return self.values

    def _matmul2d(self, x: Tensor) -> Tensor:
        return x @ self.values.T.to(x.dtype)

    @classmethod
    def _from_format(cls, fmt: Format, shape: tuple[int, ...]) -> DenseWeight:
        return cls(shape, cast(Dense, fmt).values)

    def _to_format(self) -> Dense:
        return Dense(to_numpy32(self.values))


class SparseWeight(CompressedWeight):
    """``csr``, ``csc``, ``coo``: trainable values on a fixed pattern (a pruned cell stays pruned).

    The values are kept in row-major order whatever the layout (csc's column-major order is a
    permutation of them), so one CSR product serves the three; `to_format` writes the layout it came
    from, with its own index arrays.
    """

    def __init__(self, fmt: SparseFormat, shape: tuple[int, ...]) -> None:
        super().__init__(shape)
        rows, cols = (np.asarray(a, dtype=np.int64) for a in fmt.coordinates())
        order = np.lexsort((cols, rows))  # the identity for csr and coo
        self.pattern = Pattern(fmt.shape, rows[order], cols[order])
        self.values = param(fmt.values[order])
        self._layout = type(fmt)
        self._index = fmt.index_arrays()  # the stored index arrays (their dtypes), reused as they are

    def _matrix(self) -> Tensor:
        return self.pattern.to_dense(self.values)

    def _matmul2d(self, x: Tensor) -> Tensor:
        return self.pattern.matmul(x, self.values)

    @classmethod
    def _from_format(cls, fmt: Format, shape: tuple[int, ...]) -> SparseWeight:
        return cls(cast(SparseFormat, fmt), shape)

    def _to_format(self) -> SparseFormat:
        v = to_numpy32(self.values)
        if self._layout.axis == 1:  # csc: column-major, rows increasing within a column
            v = v[self.pattern.t_perm.cpu().numpy()]
        return self._layout(self.pattern.shape, v, *self._index)


class CSRWeight(SparseWeight):
    name = "csr"


class CSCWeight(SparseWeight):
    name = "csc"


class COOWeight(SparseWeight):
    name = "coo"


class LowRankWeight(CompressedWeight):
    """``lowrank``: W = A @ B with both factors trainable; ``x @ W.T`` is ``(x @ B.T) @ A.T``."""

    name = "lowrank"

    def __init__(self, shape: tuple[int, ...], a: np.ndarray, b: np.ndarray) -> None:
        super().__init__(shape)
        self.a, self.b = param(a), param(b)

    def _matrix(self) -> Tensor:
        return self.a @ self.b

    def _matmul2d(self, x: Tensor) -> Tensor:
        return (x @ self.b.T.to(x.dtype)) @ self.a.T.to(x.dtype)

    @classmethod
    def _from_format(cls, fmt: Format, shape: tuple[int, ...]) -> LowRankWeight:
        f = cast(LowRank, fmt)
        return cls(shape, f.a, f.b)

    def _to_format(self) -> LowRank:
        return LowRank(self.matrix_shape, to_numpy32(self.a), to_numpy32(self.b))


WEIGHTS: dict[str, type[CompressedWeight]] = {
    "dense": DenseWeight,
    "csr": CSRWeight,
    "csc": CSCWeight,
    "coo": COOWeight,
    "im": IndexMapWeight,
    "cser": CSERWeight,
    "ham": HuffmanWeight,
    "sham": SparseHuffmanWeight,
    "lowrank": LowRankWeight,
    "sss": SSSWeight,
    "dct": DCTWeight,
    "psm": PSMWeight,
    "cabac": CabacWeight,
}
