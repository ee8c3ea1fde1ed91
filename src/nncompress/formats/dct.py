"""``dct``: the largest-magnitude coefficients of a 2-D orthonormal transform of W, stored sparse.

``meta["kernel"]`` picks the transform: ``dct`` or ``dst`` (type II, ``norm="ortho"``, scipy.fft.dctn /
dstn, real coefficients C = T_out W T_in^T) or ``dft`` (numpy.fft.rfft2, complex coefficients of the
(out, in // 2 + 1) half spectrum, stored as real and imaginary parts).

``encode(w, budget=0.1, kernel="dct")`` keeps the coefficients that carry the most energy (for ``dft`` a
half-spectrum column other than 0 and Nyquist stands for two conjugate coefficients and weighs double)
such that the stored floats, ``nnz`` (dct, dst) or ``2 * nnz`` (dft), stay ``<= budget * out * in``.

Arrays (CSR over the coefficient grid, row-major, columns increasing within a row):

- ``values``  float32 (nnz,) for dct/dst, (nnz, 2) real/imaginary parts for dft
- ``col_idx`` narrowest uint holding the grid width - 1; ``row_ptr`` narrowest uint holding nnz (out + 1,)

Meta: ``shape``, ``nnz``, ``kernel``. ``dot`` stays in the transform domain:
``y = T_out^T (S (T_in x))``, which equals ``x @ to_dense().T``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import scipy.fft

from nncompress.errors import InputError, UsageError
from nncompress.formats._lowparam import check_budget, csr_dense, csr_matmul_t, load_csr, pack_csr
from nncompress.formats.base import (
    Format,
    as_input,
    as_matrix,
    as_output,
    check_keys,
    float_array,
    meta_int,
    meta_shape,
    take_params,
)

KERNELS = ("dct", "dst", "dft")


def _grid(shape: tuple[int, int], kernel: str) -> tuple[int, int]:
    """The coefficient grid of a matrix: the half spectrum along ``in`` for dft."""
    return (shape[0], shape[1] // 2 + 1) if kernel == "dft" and shape[1] else shape


def _weights(n_in: int) -> np.ndarray:
    """How many spectrum coefficients each half-spectrum column stands for (rfft of length n_in)."""
    c = np.full(n_in // 2 + 1, 2.0)
    c[0] = 1.0
    if n_in % 2 == 0:
        c[-1] = 1.0
    return c


class DCT(Format):
    """Sparse coefficients of a 2-D DCT, DST or DFT."""

    name = "dct"

    def __init__(
        self,
        shape: tuple[int, int],
        kernel: str,
        values: np.ndarray,
        col_idx: np.ndarray,
        row_ptr: np.ndarray,
    ) -> None:
        super().__init__(shape)
        self.kernel, self.values, self.col_idx, self.row_ptr = kernel, values, col_idx, row_ptr
        self._cols, self._ptr = col_idx.astype(np.int64), row_ptr.astype(np.int64)

    @property
    def parameters(self) -> int:
        """Stored float count (index arrays not included)."""
        return int(self.values.size)

    def _coeffs(self) -> np.ndarray:
        """Stored values as float64, or complex128 for dft."""
        v = self.values.astype(np.float64)
        return v[:, 0] + 1j * v[:, 1] if self.kernel == "dft" else v

    @classmethod
    def encode(cls, w: np.ndarray, **params: Any) -> DCT:
        p = take_params(cls.name, params, budget=0.1, kernel="dct")
        budget = check_budget(cls.name, p["budget"])
        kernel = p["kernel"]
        if kernel not in KERNELS:
            raise UsageError(f"dct: kernel={kernel!r} is not one of {', '.join(KERNELS)}")
        a = as_matrix(w, cls.name, finite=True).astype(np.float64)
        grid = _grid(a.shape, kernel)
        c: np.ndarray
        if a.size == 0:
            c = np.zeros(grid)
            energy = c
        elif kernel == "dft":
            c = np.fft.rfft2(a)
            energy = np.abs(c) ** 2 * _weights(a.shape[1])
        else:
            c = (scipy.fft.dctn if kernel == "dct" else scipy.fft.dstn)(a, norm="ortho")
            energy = c**2
        per = 2 if kernel == "dft" else 1
        keep = min(int(budget * a.size) // per, int(np.count_nonzero(energy)))
        mask = np.zeros(grid, dtype=bool)
        if keep:
            mask.flat[np.argpartition(energy.ravel(), energy.size - keep)[energy.size - keep :]] = True
        rows, cols, col_idx, row_ptr = pack_csr(mask)
        kept = c[rows, cols]
        values = np.stack([kept.real, kept.imag], axis=1) if kernel == "dft" else kept
        return cls(a.shape, kernel, values.astype(np.float32), col_idx, row_ptr)

    def to_dense(self) -> np.ndarray:
        out, n_in = self.shape
        if self.size == 0:
            return np.zeros(self.shape, np.float32)
        c = csr_dense(_grid(self.shape, self.kernel), self._coeffs(), self._cols, self._ptr)
        if self.kernel == "dft":
            return np.fft.irfft2(c, s=(out, n_in)).astype(np.float32)
        inv = scipy.fft.idctn if self.kernel == "dct" else scipy.fft.idstn
        return inv(c, norm="ortho").astype(np.float32)

    def dot(self, x: np.ndarray) -> np.ndarray:
        xb, single = as_input(x, self)
        out, n_in = self.shape
        if self.size == 0 or xb.shape[0] == 0:
            return as_output(np.zeros((xb.shape[0], out)), single)
        if self.kernel == "dft":
            # y_i = (1/n) Re sum_k c_k W^_{ik} conj(X_k): one sparse product, then an inverse FFT over rows.
            t = np.conj(np.fft.rfft(xb, axis=1)) * (_weights(n_in) / n_in)
            y = np.fft.ifft(csr_matmul_t(t, self._coeffs(), self._cols, self._ptr), axis=1).real
        else:
            fwd, inv = (
                (scipy.fft.dct, scipy.fft.idct) if self.kernel == "dct" else (scipy.fft.dst, scipy.fft.idst)
            )
            t = fwd(xb, norm="ortho", axis=1)
            y = inv(csr_matmul_t(t, self._coeffs(), self._cols, self._ptr), norm="ortho", axis=1)
        return as_output(y, single)

    def arrays(self) -> dict[str, np.ndarray]:
        return {"values": self.values, "col_idx": self.col_idx, "row_ptr": self.row_ptr}

    def meta(self) -> dict[str, Any]:
        return {"shape": list(self.shape), "nnz": int(self.values.shape[0]), "kernel": self.kernel}

    @classmethod
    def _from_arrays(cls, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> DCT:
        check_keys(arrays, meta, {"values", "col_idx", "row_ptr"}, {"shape", "nnz", "kernel"})
        shape = meta_shape(meta)
        kernel = meta["kernel"]
        if kernel not in KERNELS:
            raise InputError(f"meta kernel={kernel!r} is not one of {', '.join(KERNELS)}")
        grid = _grid(shape, kernel)
        nnz = meta_int(meta, "nnz", 0, grid[0] * grid[1])
        values = float_array(arrays, "values", (nnz, 2) if kernel == "dft" else (nnz,), finite=True)
        load_csr(arrays, "", grid, nnz)
        return cls(shape, kernel, values, arrays["col_idx"], arrays["row_ptr"])
