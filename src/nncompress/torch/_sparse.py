"""A fixed sparsity pattern with trainable values, and ``x @ S.T`` on it by torch's CSR kernels.

Every compressed weight that stores a sparse set of entries (csr/csc/coo, the codebook formats' listed
entries, a psm factor, the kept dct coefficients) multiplies through `sparse_matmul`: the forward
product and the input's gradient are CSR products (``torch.sparse.mm``), the values' gradient is
``(dy.T @ x)`` sampled at the pattern (``torch.sparse.sampled_addmm``), so no dense (out, in) matrix
is ever formed, in either direction.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch  # noqa: TID253 (this package is the torch one; nothing outside it imports it eagerly)
from torch import Tensor, nn  # noqa: TID253
from torch.autograd.function import once_differentiable  # noqa: TID253

# torch warns once per process that CSR support is "beta"; these products are tested against numpy
# references (tests/test_torch_layers.py), and the note would reach every user of a layer.
warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta state")


class Pattern(nn.Module):
    """The fixed (row, col) cells of a sparse (out, in) matrix, row-major, and its transpose's order.

    Values that go with it are a (nnz,) tensor in the same row-major order. Everything is a buffer, so
    it moves with ``.to(device)`` and is saved in the state_dict.
    """

    def __init__(self, shape: tuple[int, int], rows: np.ndarray, cols: np.ndarray) -> None:
        super().__init__()
        self.shape = (int(shape[0]), int(shape[1]))
        r, c = np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64)
        key = r * max(self.shape[1], 1) + c
        if key.size > 1 and np.any(np.diff(key) <= 0):
            raise ValueError("a sparse pattern's cells must be distinct and in row-major order")
        # The transpose in CSR: entries reordered column-major (a stable sort keeps rows increasing).
        perm = np.argsort(c, kind="stable")
        self.register_buffer("rows", torch.from_numpy(r.copy()))
        self.register_buffer("cols", torch.from_numpy(c.copy()))
        self.register_buffer("crow", torch.from_numpy(_ptr(r, self.shape[0])))
        self.register_buffer("t_perm", torch.from_numpy(perm))
        self.register_buffer("t_crow", torch.from_numpy(_ptr(c, self.shape[1])))
        self.register_buffer("t_cols", torch.from_numpy(r[perm].copy()))

    rows: Tensor
    cols: Tensor
    crow: Tensor
    t_perm: Tensor
    t_crow: Tensor
    t_cols: Tensor

    @property
    def nnz(self) -> int:
        return int(self.rows.numel())

    def csr(self, values: Tensor) -> Tensor:
        """The sparse CSR tensor of these cells holding ``values`` (not differentiable: for inference)."""
        return torch.sparse_csr_tensor(self.crow, self.cols, values, self.shape, check_invariants=False)

    def to_dense(self, values: Tensor) -> Tensor:
        """The dense (out, in) matrix, differentiable in ``values``."""
        out = values.new_zeros(self.shape)
        return out.index_put((self.rows, self.cols), values)

    def matmul(self, x: Tensor, values: Tensor) -> Tensor:
        """``x @ S.T`` for x (B, in), differentiable in both."""
        return sparse_matmul(x, values, self)

    def extra_repr(self) -> str:
        return f"shape={self.shape}, nnz={self.nnz}"


def _ptr(major: np.ndarray, n: int) -> np.ndarray:
    """CSR pointers (n + 1,) of sorted major indices."""
    return np.concatenate([[0], np.cumsum(np.bincount(major, minlength=n))]).astype(np.int64)


class _SparseMatmul(torch.autograd.Function):
    """y = x @ S.T with S the pattern holding ``values``; see the module docstring for the backward."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, values: Tensor, p: Pattern) -> Tensor:
        ctx.save_for_backward(x, values)
        ctx.pattern = p
        return _csr_times(p.crow, p.cols, values, p.shape, x)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, dy: Tensor) -> tuple[Tensor | None, Tensor | None, None]:
        x, values = ctx.saved_tensors
        p: Pattern = ctx.pattern
        dx = dv = None
        if ctx.needs_input_grad[0]:  # dx = dy @ S: the transpose's CSR times dy
            dx = _csr_times(p.t_crow, p.t_cols, values[p.t_perm], (p.shape[1], p.shape[0]), dy).to(x.dtype)
        if ctx.needs_input_grad[1]:  # dS = dy.T @ x, only at the pattern's cells
            if p.nnz == 0 or x.shape[0] == 0:
                dv = torch.zeros_like(values)
            else:
                zeros = values.new_zeros(p.nnz, dtype=dy.dtype)
                mask = torch.sparse_csr_tensor(p.crow, p.cols, zeros, p.shape, check_invariants=False)
                xs = x.to(dy.dtype).contiguous()
                dv = (
                    torch.sparse.sampled_addmm(mask, dy.T.contiguous(), xs, beta=0.0)
                    .values()
                    .to(values.dtype)
                )
        return dx, dv, None


def _csr_times(crow: Tensor, cols: Tensor, values: Tensor, shape: tuple[int, int], x: Tensor) -> Tensor:
    """``x @ S.T`` for the CSR matrix S and x (B, shape[1]) -> (B, shape[0])."""
    if values.numel() == 0 or x.shape[0] == 0:
        return x.new_zeros((x.shape[0], shape[0]))
    s = torch.sparse_csr_tensor(crow, cols, values.to(x.dtype), shape, check_invariants=False)
    # S @ x.T with x.T contiguous: the layout torch's CSR kernel is fastest on.
    return torch.sparse.mm(s, x.T.contiguous()).T


def sparse_matmul(x: Tensor, values: Tensor, pattern: Pattern) -> Tensor:
    """``x @ S.T`` for x (B, in) and the sparse S of ``pattern`` holding ``values``."""
    if not (x.requires_grad or values.requires_grad) or not torch.is_grad_enabled():
        return _csr_times(pattern.crow, pattern.cols, values, pattern.shape, x)
    out: Tensor = _SparseMatmul.apply(x, values, pattern)
    return out
