"""`CompressedWeight` modules of the codebook formats (im, ham, sham, cser, cabac): shared weights.

Each decodes its stream once into a fixed list of cells and, per cell, the index of its shared value
(a codebook entry, or cabac's integer level on a grid). The shared values are the parameters, so
the gradient of a value is the sum of its cells' gradients (Han et al. 2016, "Deep compression",
the fine-tuning of shared weights). A codebook entry that is exactly 0 stays 0: its cells are the
pruned ones, the fixed mask, and they are not listed at all (the product skips them).

`to_format` keeps the stored stream and puts the trained values in the codebook while it still
validates (finite, strictly increasing: the trained values kept their order); otherwise it encodes
the new matrix again with the same format.
"""

from __future__ import annotations

from typing import cast

import numpy as np
import torch  # noqa: TID253 (this package is the torch one; nothing outside it imports it eagerly)
from torch import Tensor  # noqa: TID253

from nncompress.formats.base import Format, segment_ids, segment_lengths
from nncompress.formats.cabac import Cabac
from nncompress.formats.cser import CSER
from nncompress.formats.ham import HuffmanMatrix
from nncompress.formats.im import IndexMap
from nncompress.formats.sham import SparseHuffmanMatrix
from nncompress.torch._base import CompressedWeight, index, param, to_numpy32
from nncompress.torch._sparse import Pattern


class SharedWeight(CompressedWeight):
    """Cells that share the entries of a trainable table; cells not listed hold ``fill`` (or 0).

    ``member`` is each listed cell's table index (row-major cells); ``fill`` is the table index of
    the value every cell not listed holds (cser's implicit value), or None for 0.
    """

    def __init__(
        self,
        src: Format,
        shape: tuple[int, ...],
        table: np.ndarray,
        rows: np.ndarray,
        cols: np.ndarray,
        member: np.ndarray,
        fill: int | None = None,
    ) -> None:
        super().__init__(shape)
        self._src = src  # the stored format: its stream and code tables are kept by `to_format`
        table = np.asarray(table, dtype=np.float32)
        self.table = param(table)
        # 1 for a trainable entry, 0 for an exact zero (the pruned cells' value stays 0).
        self.register_buffer("keep", torch.tensor((table != 0).astype(np.float32)))
        order = np.lexsort((cols, rows))
        self.pattern = Pattern(src.shape, rows[order], cols[order])
        self.register_buffer("member", index(np.asarray(member)[order]))
        self.fill = fill

    keep: Tensor
    member: Tensor
    # The share of listed cells above which the product decodes the matrix (None: always sparse,
    # for the formats whose point is sparsity); set by the formats that code every cell.
    dense_above: float | None = None

    def values(self) -> Tensor:
        """The table as used: exact zeros held at 0."""
        return self.table * self.keep

    def _member_values(self, t: Tensor) -> Tensor:
        """The listed cells' values."""
        return t[self.member]

    def _matrix(self) -> Tensor:
        t = self.values()
        base = t.new_zeros(self.pattern.shape)
        if self.fill is not None:
            base = base + t[self.fill]
        return base.index_put((self.pattern.rows, self.pattern.cols), self._member_values(t))

    def _matmul2d(self, x: Tensor) -> Tensor:
        out, n_in = self.pattern.shape
        if self.dense_above is not None and self.pattern.nnz > self.dense_above * out * n_in:
            # A format that stores every cell, most of them nonzero: decoding the matrix and one
            # GEMM beats a CSR product at that density (im's and ham's own dots decode rows too).
            return x @ self._matrix().to(x.dtype).T
        t = self.values().to(x.dtype)
        if self.fill is None:
            return self.pattern.matmul(x, self._member_values(t))
        # cser's product: a listed cell replaces the implicit value that the row sum counted.
        y = self.pattern.matmul(x, self._member_values(t) - t[self.fill])
        return y + t[self.fill] * x.sum(dim=1, keepdim=True)

    def _to_format(self) -> Format:
        t = to_numpy32(self.values())
        kept = self._with_table(t) if _valid_codebook(t, self._ordered_part()) else None
        if kept is not None:
            return kept
        return self._reencode(to_numpy32(self._matrix()))

    def _ordered_part(self) -> slice:
        """The part of the table that must stay strictly increasing."""
        return slice(None)

    def _with_table(self, table: np.ndarray) -> Format | None:
        """The stored format with this table in place of its codebook (same stream)."""
        raise NotImplementedError

    def _reencode(self, w: np.ndarray) -> Format:
        return type(self._src).encode(w)


def _valid_codebook(t: np.ndarray, part: slice) -> bool:
    p = t[part]
    return bool(np.all(np.isfinite(t)) and np.all(np.diff(p) > 0))


def _cells_of(dense: np.ndarray, codebook: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rows, cols, codebook index) of the cells of ``dense`` whose value is not 0 (row-major)."""
    rows, cols = np.nonzero(dense)
    return rows, cols, np.searchsorted(codebook, dense[rows, cols])


class IndexMapWeight(SharedWeight):
    """``im``: a codebook and an index per cell."""

    name = "im"
    dense_above = 0.5

    @classmethod
    def _from_format(cls, fmt: Format, shape: tuple[int, ...]) -> IndexMapWeight:
        f = cast(IndexMap, fmt)
        return cls(f, shape, f.codebook, *_cells_of(f.to_dense(), f.codebook))

    def _with_table(self, table: np.ndarray) -> Format:
        f = cast(IndexMap, self._src)
        return IndexMap(f.shape, table, f.stream)


class HuffmanWeight(SharedWeight):
    """``ham``: a codebook, every cell Huffman-coded."""

    name = "ham"
    dense_above = 0.5

    @classmethod
    def _from_format(cls, fmt: Format, shape: tuple[int, ...]) -> HuffmanWeight:
        f = cast(HuffmanMatrix, fmt)
        return cls(f, shape, f.codebook, *_cells_of(f.to_dense(), f.codebook))

    def _with_table(self, table: np.ndarray) -> Format:
        f = cast(HuffmanMatrix, self._src)
        return HuffmanMatrix(f.shape, table, f.code_len, f.stream, f.row_bits, f.code)


class SparseHuffmanWeight(SharedWeight):
    """``sham``: the nonzero cells and their codebook entries (the zero cells are the fixed mask)."""

    name = "sham"

    @classmethod
    def _from_format(cls, fmt: Format, shape: tuple[int, ...]) -> SparseHuffmanWeight:
        f = cast(SparseHuffmanMatrix, fmt)
        parts = list(f._entries())  # the stored cells themselves, not the dense matrix's nonzeros
        cat = (np.concatenate([p[i] for p in parts]) if parts else np.zeros(0, np.int64) for i in range(3))
        rows, cols, member = cat
        return cls(f, shape, f.codebook, rows, cols, member)

    def _with_table(self, table: np.ndarray) -> Format:
        f = cast(SparseHuffmanMatrix, self._src)
        codes = (f.value_code, f.gap_code)
        return SparseHuffmanMatrix(f.shape, table, f.value_len, f.stream, f.row_bits, f.nnz, f.gap, codes)

    def _reencode(self, w: np.ndarray) -> Format:
        return SparseHuffmanMatrix.encode(w, gap_coder=cast(SparseHuffmanMatrix, self._src).gap["gap_coder"])


class CSERWeight(SharedWeight):
    """``cser``: listed cells grouped by value, the rest holding the implicit value ``omega[0]``."""

    name = "cser"

    @classmethod
    def _from_format(cls, fmt: Format, shape: tuple[int, ...]) -> CSERWeight:
        f = cast(CSER, fmt)
        sizes = segment_lengths(f.w_ptr)
        rows = np.repeat(segment_ids(f.row_ptr), sizes)
        member = np.repeat(f.w_idx.astype(np.int64), sizes)
        # A zero omega[0] (a pruned matrix) is a fixed 0, no implicit value to add.
        fill = 0 if f.omega[0] != 0 else None
        return cls(f, shape, f.omega, rows, f.col_idx.astype(np.int64), member, fill=fill)

    def _ordered_part(self) -> slice:
        return slice(1, None)  # omega[1:] increases; omega[0] is any value

    def _with_table(self, table: np.ndarray) -> Format:
        f = cast(CSER, self._src)
        return CSER(f.shape, table, f.col_idx, f.w_idx, f.w_ptr, f.row_ptr)


class CabacWeight(SharedWeight):
    """``cabac``: integer levels, over a codebook (entry ``level + zero``) or times one grid step.

    On a grid the one parameter is the step (the levels are fixed), and every cell is its level
    times the step: its gradient is the sum of the cells' gradients times their levels.
    """

    name = "cabac"
    dense_above = 0.5

    def __init__(self, f: Cabac, shape: tuple[int, ...]) -> None:
        levels = f._levels().astype(np.int64).reshape(f.shape)
        if f.step is not None:
            rows, cols = np.nonzero(levels)
            super().__init__(f, shape, f.step, rows, cols, np.zeros(rows.size, np.int64))
            self.register_buffer("level", torch.tensor(levels[rows, cols].astype(np.float32)))
            self.level_max = int(np.abs(levels).max()) if levels.size else 0
        else:
            assert f.codebook is not None
            member = levels + f.zero
            rows, cols = np.nonzero(f.codebook[member] != 0)
            super().__init__(f, shape, f.codebook, rows, cols, member[rows, cols])
            self.register_buffer("level", None)
            self.level_max = 0

    level: Tensor | None

    @classmethod
    def _from_format(cls, fmt: Format, shape: tuple[int, ...]) -> CabacWeight:
        return cls(cast(Cabac, fmt), shape)

    def _member_values(self, t: Tensor) -> Tensor:
        if self.level is None:
            return super()._member_values(t)
        # float32(level) * step as the format decodes it; the pattern's cells are row-major already
        return self.level.to(t.dtype) * t[0]

    def _with_table(self, table: np.ndarray) -> Format | None:
        f = cast(Cabac, self._src)
        if f.step is None:
            return Cabac(f.shape, f.stream, codebook=table, zero=f.zero)
        with np.errstate(over="ignore"):
            top = np.float32(self.level_max) * table[0]
        if not (table[0] > 0 and np.isfinite(top)):
            return None  # a step trained to 0 or below: encoded again below
        return Cabac(f.shape, f.stream, step=table.copy())


__all__ = [
    "CSERWeight",
    "CabacWeight",
    "HuffmanWeight",
    "IndexMapWeight",
    "SharedWeight",
    "SparseHuffmanWeight",
]
