"""`CompressedWeight` modules of the structured formats (sss, dct, psm): the fitted structure is kept
fixed (block sizes and state dimension; the kept coefficients; each factor's support) and its
values train.
"""

from __future__ import annotations

import math
from typing import cast

import numpy as np
import torch  # noqa: TID253 (this package is the torch one; nothing outside it imports it eagerly)
from torch import Tensor, nn  # noqa: TID253

from nncompress.formats.base import Format, segment_ids
from nncompress.formats.dct import DCT, coefficient_grid, spectrum_weights
from nncompress.formats.psm import PSM, factor_shapes
from nncompress.formats.sss import SSS, block_sizes
from nncompress.torch._base import CompressedWeight, param, to_numpy32
from nncompress.torch._sparse import Pattern

_STAGES = ("al", "cl", "bl", "au", "cu", "bu", "d")


def _offsets(sizes: list[int]) -> list[int]:
    return [0, *np.cumsum(sizes).tolist()]


def _sweep(x: Tensor, a: Tensor, c: Tensor, b: Tensor, rs: list[int], cs: list[int]) -> list[Tensor]:
    """The causal part of a realization applied to x (B, in), as one (B, n_k) tensor per row block.

    The state runs forward, ``h_2 = B_1 x_1``, ``h_{k+1} = A_k h_k + B_k x_k``, block k gets
    ``C_k h_k``; autograd follows the recursion, so every stage gets its gradient through the states.
    """
    n = len(rs)
    r0, c0 = _offsets(rs), _offsets(cs)
    out = [x.new_zeros((x.shape[0], rs[0]))]
    if n < 2 or b.shape[0] == 0:
        return out + [x.new_zeros((x.shape[0], r)) for r in rs[1:]]
    h = x[:, : c0[1]] @ b[:, : c0[1]].T
    for k in range(1, n):
        out.append(h @ c[r0[k] - rs[0] : r0[k + 1] - rs[0]].T)
        if k < n - 1:
            h = h @ a[k - 1].T + x[:, c0[k] : c0[k + 1]] @ b[:, c0[k] : c0[k + 1]].T
    return out


class SSSWeight(CompressedWeight):
    """``sss``: the stage matrices are the parameters; the product runs the state recursions
    (`formats.sss`), never the dense matrix."""

    name = "sss"

    def __init__(self, shape: tuple[int, ...], f: SSS) -> None:
        super().__init__(shape)
        self.blocks, self.state = f.blocks, f.state
        self.stages = nn.ParameterDict({k: param(f.stages[k]) for k in _STAGES})
        self._rs = block_sizes(f.shape[0], f.blocks).tolist()
        self._cs = block_sizes(f.shape[1], f.blocks).tolist()

    def _matmul2d(self, x: Tensor) -> Tensor:
        s = {k: v.to(x.dtype) for k, v in self.stages.items()}
        rs, cs = self._rs, self._cs
        causal = _sweep(x, s["al"], s["cl"], s["bl"], rs, cs)
        # The anticausal part is the same recursion on the block-reversed matrix.
        anti = _sweep(x.flip(1), s["au"], s["cu"], s["bu"], rs[::-1], cs[::-1])[::-1]
        c0 = _offsets(cs)
        ys, o = [], 0
        for k in range(self.blocks):
            blk = s["d"][o : o + rs[k] * cs[k]].reshape(rs[k], cs[k])
            ys.append(causal[k] + anti[k].flip(1) + x[:, c0[k] : c0[k + 1]] @ blk.T)
            o += rs[k] * cs[k]
        return torch.cat(ys, dim=1)

    def _matrix(self) -> Tensor:
        eye = torch.eye(self.matrix_shape[1], dtype=self.stages["d"].dtype, device=self.stages["d"].device)
        return self._matmul2d(eye).T

    @classmethod
    def _from_format(cls, fmt: Format, shape: tuple[int, ...]) -> SSSWeight:
        return cls(shape, cast(SSS, fmt))

    def _to_format(self) -> SSS:
        stages = {k: to_numpy32(self.stages[k]) for k in _STAGES}
        return SSS(self.matrix_shape, self.blocks, self.state, stages)


# ---- orthonormal DCT-II / DST-II along one axis, by an FFT of length n (Makhoul 1980) --------------


def _dct_ortho(x: Tensor, dim: int) -> Tensor:
    """``scipy.fft.dct(x, norm="ortho", axis=dim)`` (type II), differentiable."""
    x = x.movedim(dim, -1)
    n = x.shape[-1]
    v = torch.cat([x[..., ::2], x[..., 1::2].flip(-1)], dim=-1)
    k = torch.arange(n, dtype=x.dtype, device=x.device)
    w = torch.polar(torch.ones_like(k), -math.pi * k / (2 * n))
    y = (torch.fft.fft(v, dim=-1) * w).real * math.sqrt(2.0 / n)
    y = torch.cat([y[..., :1] / math.sqrt(2.0), y[..., 1:]], dim=-1)
    return y.movedim(-1, dim)


def _idct_ortho(y: Tensor, dim: int) -> Tensor:
    """``scipy.fft.idct(y, norm="ortho", axis=dim)`` (type III, the transpose of `_dct_ortho`)."""
    y = y.movedim(dim, -1)
    n = y.shape[-1]
    y = torch.cat([y[..., :1] * math.sqrt(2.0), y[..., 1:]], dim=-1) * math.sqrt(2.0 * n)
    k = torch.arange(n, dtype=y.dtype, device=y.device)
    # V_k = e^{i pi k / 2n} (y_k - i y_{n-k}), y_n = 0; then v = ifft(V), x[2m] = v[m], x[2m+1] = v[n-1-m]
    rev = torch.cat([y.new_zeros((*y.shape[:-1], 1)), y[..., 1:].flip(-1)], dim=-1)
    big_v = 0.5 * torch.complex(y, -rev) * torch.polar(torch.ones_like(k), math.pi * k / (2 * n))
    v = torch.fft.ifft(big_v, dim=-1).real
    # v holds x's even entries, then its odd ones reversed: put each back at its place.
    place = torch.cat([torch.arange(0, n, 2), torch.arange(1, n, 2).flip(0)]).to(v.device)
    return v[..., torch.argsort(place)].movedim(-1, dim)


def _dst_ortho(x: Tensor, dim: int) -> Tensor:
    """``scipy.fft.dst(x, norm="ortho", axis=dim)`` (type II): the DCT-II of x times (-1)^n, reversed."""
    x = x.movedim(dim, -1)
    sign = _alternating(x.shape[-1], x)
    return _dct_ortho(x * sign, -1).flip(-1).movedim(-1, dim)


def _idst_ortho(y: Tensor, dim: int) -> Tensor:
    """``scipy.fft.idst(y, norm="ortho", axis=dim)``: the inverse of `_dst_ortho`."""
    y = y.movedim(dim, -1)
    sign = _alternating(y.shape[-1], y)
    return (_idct_ortho(y.flip(-1), -1) * sign).movedim(-1, dim)


def _alternating(n: int, like: Tensor) -> Tensor:
    return 1.0 - 2.0 * (torch.arange(n, device=like.device) % 2).to(like.dtype)


class DCTWeight(CompressedWeight):
    """``dct``: the kept coefficients of a 2-D DCT-II, DST-II or DFT of W are the parameters (the
    set kept is fixed). The product stays in the transform domain, ``y = T_out^T (S (T_in x))``, as
    the format's reference does; for dft each coefficient is a (real, imaginary) pair."""

    name = "dct"

    def __init__(self, shape: tuple[int, ...], f: DCT) -> None:
        super().__init__(shape)
        self.kernel = f.kernel
        grid = coefficient_grid(f.shape, f.kernel)
        ptr = f.row_ptr.astype(np.int64)
        self.pattern = Pattern(grid, segment_ids(ptr), f.col_idx.astype(np.int64))
        self.values = param(f.values)
        self._index = (f.col_idx, f.row_ptr)
        self.register_buffer("spectrum", torch.tensor(spectrum_weights(f.shape[1]) / max(f.shape[1], 1)))

    spectrum: Tensor

    def _matmul2d(self, x: Tensor) -> Tensor:
        out = self.matrix_shape[0]
        if self.size == 0 or x.shape[0] == 0:
            return x.new_zeros((x.shape[0], out))
        v = self.values.to(x.dtype)
        if self.kernel == "dft":
            # y_i = (1/n) Re sum_k c_k W^_{ik} conj(X_k) over the half spectrum (formats.dct.dot)
            t = torch.conj(torch.fft.rfft(x, dim=1)) * self.spectrum.to(x.dtype)
            tr, ti = t.real.contiguous(), t.imag.contiguous()
            vr, vi = v[:, 0], v[:, 1]
            mm = self.pattern.matmul
            ur = mm(tr, vr) - mm(ti, vi)
            ui = mm(tr, vi) + mm(ti, vr)
            return torch.fft.ifft(torch.complex(ur, ui), dim=1).real
        fwd, inv = (_dct_ortho, _idct_ortho) if self.kernel == "dct" else (_dst_ortho, _idst_ortho)
        return inv(self.pattern.matmul(fwd(x, 1), v), 1)

    @property
    def size(self) -> int:
        return self.matrix_shape[0] * self.matrix_shape[1]

    def _matrix(self) -> Tensor:
        out, n_in = self.matrix_shape
        v = self.values
        if self.size == 0:
            return v.new_zeros((out, n_in))
        if self.kernel == "dft":
            c = torch.complex(self.pattern.to_dense(v[:, 0]), self.pattern.to_dense(v[:, 1]))
            return torch.fft.irfft2(c, s=(out, n_in))
        c = self.pattern.to_dense(v)
        inv = _idct_ortho if self.kernel == "dct" else _idst_ortho
        return inv(inv(c, 0), 1)

    @classmethod
    def _from_format(cls, fmt: Format, shape: tuple[int, ...]) -> DCTWeight:
        return cls(shape, cast(DCT, fmt))

    def _to_format(self) -> DCT:
        return DCT(self.matrix_shape, self.kernel, to_numpy32(self.values), *self._index)


class PSMWeight(CompressedWeight):
    """``psm``: W = S_1 ... S_Q, each factor's values trainable on its fixed support; the product
    applies the factors right to left as sparse products (the dense W is never formed)."""

    name = "psm"

    def __init__(self, shape: tuple[int, ...], f: PSM) -> None:
        super().__init__(shape)
        self.inner = f.inner
        shapes = factor_shapes(f.shape, len(f.factors))
        self.patterns = nn.ModuleList(
            Pattern(sh, segment_ids(p.astype(np.int64)), c.astype(np.int64))
            for sh, (_, c, p) in zip(shapes, f.factors, strict=True)
        )
        self.values = nn.ParameterList(param(v) for v, _, _ in f.factors)
        self._index = [(c, p) for _, c, p in f.factors]

    def _matmul2d(self, x: Tensor) -> Tensor:
        for pat, v in zip(reversed(self.patterns), reversed(self.values), strict=True):
            x = cast(Pattern, pat).matmul(x, v)
        return x

    def _matrix(self) -> Tensor:
        out: Tensor | None = None
        for pat, v in zip(self.patterns, self.values, strict=True):
            m = cast(Pattern, pat).to_dense(v)
            out = m if out is None else out @ m
        assert out is not None
        return out

    @classmethod
    def _from_format(cls, fmt: Format, shape: tuple[int, ...]) -> PSMWeight:
        return cls(shape, cast(PSM, fmt))

    def _to_format(self) -> PSM:
        factors = [(to_numpy32(v), c, p) for v, (c, p) in zip(self.values, self._index, strict=True)]
        return PSM(self.matrix_shape, self.inner, factors)
