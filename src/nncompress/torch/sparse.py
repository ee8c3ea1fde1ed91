"""`SparseLinear`: a drop-in ``nn.Linear`` whose weight is a fixed sparsity pattern with trainable values.

The conveniences follow ActuallySparse (Folwarczny et al., github.com/jakfol1217/ActuallySparse):
a layer is in ``"coo"`` mode to train (a ``torch.sparse_coo_tensor`` of the values, whose gradient
torch masks to the pattern) or ``"csr"`` mode to infer (``torch.addmm`` on a CSR tensor);
`convert` moves one layer between ``"dense"`` (``nn.Linear``), ``"coo"`` and ``"csr"``,
`convert_model` converts every layer of a type in a model, and `SparseLinear.prune_smallest_values`
drops the smallest values from the pattern.

>>> layer = convert(nn.Linear(8, 4), "coo")
>>> layer.prune_smallest_values(0.5)  # half the weights gone, the rest still train
"""

from __future__ import annotations

import copy
import math
from typing import Literal

import numpy as np
import torch  # noqa: TID253 (this package is the torch one; nothing outside it imports it eagerly)
from torch import Tensor, nn  # noqa: TID253

from nncompress.errors import UsageError
from nncompress.formats import FORMATS
from nncompress.formats.sparse import SparseFormat
from nncompress.torch._base import to_numpy32
from nncompress.torch._sparse import Pattern, sparse_matmul

Mode = Literal["coo", "csr"]
Target = Literal["dense", "coo", "csr"]


class SparseLinear(nn.Module):
    """``y = x @ W.T + b`` with W sparse: its nonzero pattern fixed, its values trainable.

    A new layer starts as ``nn.Linear`` does (every entry present, uniform in +-1/sqrt(in)); `prune_smallest_values`
    or `assign_new_weight` make it sparse.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, mode: Mode = "coo") -> None:
        super().__init__()
        if mode not in ("coo", "csr"):
            raise UsageError(f"SparseLinear mode must be coo or csr, got {mode!r}")
        self.in_features, self.out_features, self.mode = int(in_features), int(out_features), mode
        bound = 1.0 / math.sqrt(in_features) if in_features else 0.0
        w = torch.empty(out_features, in_features).uniform_(-bound, bound)
        self.bias = nn.Parameter(torch.empty(out_features).uniform_(-bound, bound)) if bias else None
        self.assign_new_weight(w)

    pattern: Pattern
    values: nn.Parameter

    @property
    def nnz(self) -> int:
        return self.pattern.nnz

    @property
    def weight(self) -> Tensor:
        """W (out, in) as a sparse tensor of the layer's mode (differentiable in the values in coo mode)."""
        if self.mode == "csr":
            return self.pattern.csr(self.values)
        return self._coo()

    def _coo(self) -> Tensor:
        idx = torch.stack([self.pattern.rows, self.pattern.cols])
        return torch.sparse_coo_tensor(
            idx, self.values, self.pattern.shape, is_coalesced=True, check_invariants=False
        )

    def dense_weight(self) -> Tensor:
        """W as a dense (out, in) tensor."""
        return self.pattern.to_dense(self.values)

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-1] != self.in_features:
            raise UsageError(
                f"SparseLinear takes inputs of {self.in_features} features, got {tuple(x.shape)}"
            )
        lead, x2 = x.shape[:-1], x.reshape(-1, self.in_features)
        v = self.values.to(x.dtype)
        if self.mode == "coo" or (torch.is_grad_enabled() and self.values.requires_grad):
            # Training (coo mode, or a csr layer still asked for gradients): the pattern's own backward.
            y = (
                torch.sparse.mm(self._coo().to(x.dtype), x2.T).T
                if self.mode == "coo"
                else sparse_matmul(x2, v, self.pattern)
            )
            if self.bias is not None:
                y = y + self.bias.to(x.dtype)
        elif self.bias is not None:
            w = self.pattern.csr(v)
            y = torch.addmm(self.bias.to(x.dtype)[:, None], w, x2.T.contiguous()).T
        else:
            y = sparse_matmul(x2, v, self.pattern)
        return y.reshape(*lead, self.out_features)

    def assign_new_weight(self, weight: Tensor, bias: Tensor | None = None) -> None:
        """Take a dense (out, in) weight: its nonzero cells become the pattern, their values the parameters."""
        w = weight.detach()
        if w.layout != torch.strided:
            w = w.to_dense()
        if tuple(w.shape) != (self.out_features, self.in_features):
            raise UsageError(
                f"weight shape {tuple(w.shape)} is not ({self.out_features}, {self.in_features})"
            )
        rows, cols = (t.cpu().numpy() for t in torch.nonzero(w, as_tuple=True))
        device = w.device
        self.pattern = Pattern((self.out_features, self.in_features), rows, cols).to(device)
        self.values = nn.Parameter(w[self.pattern.rows, self.pattern.cols].clone())
        if bias is not None:
            if tuple(bias.shape) != (self.out_features,):
                raise UsageError(f"bias shape {tuple(bias.shape)} is not ({self.out_features},)")
            self.bias = nn.Parameter(bias.detach().clone())

    def prune_smallest_values(self, k: float = 0.1, remove_zeros: bool = True) -> None:
        """Set the values below the ``k`` quantile of |values| to 0, and drop them from the pattern."""
        if not 0.0 <= k <= 1.0:
            raise UsageError(f"k must be a fraction in [0, 1], got {k!r}")
        with torch.no_grad():
            if self.nnz:
                mags = self.values.abs()
                # numpy's quantile: torch.quantile refuses tensors of more than 2**24 entries
                cut = float(np.quantile(mags.cpu().double().numpy(), k))
                self.values[mags.double() < cut] = 0
        if remove_zeros:
            self.remove_zeros()

    def remove_zeros(self) -> None:
        """Drop the cells whose value is 0 from the pattern (they stop training)."""
        keep = (self.values.detach() != 0).cpu().numpy()
        rows, cols = self.pattern.rows.cpu().numpy()[keep], self.pattern.cols.cpu().numpy()[keep]
        device = self.values.device
        self.pattern = Pattern(self.pattern.shape, rows, cols).to(device)
        self.values = nn.Parameter(self.values.detach()[torch.from_numpy(keep).to(device)].clone())

    def to_format(self, layout: Literal["csr", "csc", "coo"] = "csr") -> SparseFormat:
        """The weight as an nncompress sparse format (the cells whose value is 0 are not stored)."""
        fmt = FORMATS[layout].encode(to_numpy32(self.dense_weight()))
        assert isinstance(fmt, SparseFormat)
        return fmt

    @classmethod
    def from_format(
        cls, fmt: SparseFormat, bias: np.ndarray | None = None, mode: Mode = "coo"
    ) -> SparseLinear:
        """A layer holding a stored csr/csc/coo weight (its stored cells are the pattern)."""
        out, n_in = fmt.shape
        layer = cls(n_in, out, bias=bias is not None, mode=mode)
        rows, cols = (np.asarray(a, dtype=np.int64) for a in fmt.coordinates())
        order = np.lexsort((cols, rows))
        layer.pattern = Pattern(fmt.shape, rows[order], cols[order])
        layer.values = nn.Parameter(torch.tensor(fmt.values[order]))
        if bias is not None:
            layer.bias = nn.Parameter(torch.tensor(np.asarray(bias, dtype=np.float32)))
        return layer

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, nnz={self.nnz}, "
            f"bias={self.bias is not None}, mode={self.mode}"
        )


def convert(layer: nn.Linear | SparseLinear, target: Target, mask: Tensor | None = None) -> nn.Module:
    """``layer`` as a dense ``nn.Linear`` (``"dense"``) or a `SparseLinear` in ``"coo"`` or ``"csr"``
    mode, with the same weight (times ``mask`` if given) and bias; the layer itself is not changed."""
    if isinstance(layer, SparseLinear):
        weight, bias = layer.dense_weight().detach().clone(), layer.bias
    elif isinstance(layer, nn.Linear):
        weight, bias = layer.weight.detach().clone(), layer.bias
    else:
        raise UsageError(f"convert takes nn.Linear or SparseLinear layers, got {type(layer).__name__}")
    if mask is not None:
        weight = weight * mask
    b = None if bias is None else bias.detach().clone()
    out_f, in_f = weight.shape
    if target == "dense":
        dense = nn.Linear(in_f, out_f, bias=b is not None, device=weight.device, dtype=weight.dtype)
        with torch.no_grad():
            dense.weight.copy_(weight)
            if b is not None:
                dense.bias.copy_(b)
        return dense
    if target not in ("coo", "csr"):
        raise UsageError(f"convert target must be dense, coo or csr, got {target!r}")
    sparse = SparseLinear(in_f, out_f, bias=b is not None, mode=target).to(weight.device)
    sparse.assign_new_weight(weight, bias=b)
    return sparse


def convert_model(model: nn.Module, module_type: type[nn.Module], target: Target) -> nn.Module:
    """A copy of ``model`` with every submodule of ``module_type`` converted to ``target``."""
    new = copy.deepcopy(model)
    _convert_children(new, module_type, target)
    return new


def _convert_children(parent: nn.Module, module_type: type[nn.Module], target: Target) -> None:
    for name, child in parent.named_children():
        if type(child) is module_type:  # exactly the type: a subclass may carry behaviour convert drops
            setattr(parent, name, convert(child, target))  # type: ignore[arg-type]
        else:
            _convert_children(child, module_type, target)
