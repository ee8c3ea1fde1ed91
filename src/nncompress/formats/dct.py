"""``dct``: a sparse set of coefficients of a 2-D orthonormal transform of W.

``meta["kernel"]`` picks the transform: ``dct`` or ``dst`` (type II, ``norm="ortho"``, scipy.fft.dctn /
dstn, real coefficients C = T_out W T_in^T) or ``dft`` (numpy.fft.rfft2, complex coefficients of the
(out, in // 2 + 1) half spectrum, stored as real and imaginary parts). Which coefficients are kept, within
a parameter budget, is `nncompress.passes.dct`'s choice.

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

from nncompress.errors import InputError
from nncompress.formats._lowparam import csr_dense, csr_matmul_t, load_csr
from nncompress.formats.base import (
    Format,
    as_input,
    as_output,
    check_keys,
    float_array,
    meta_int,
    meta_shape,
)

KERNELS = ("dct", "dst", "dft")


def coefficient_grid(shape: tuple[int, int], kernel: str) -> tuple[int, int]:
    """The coefficient grid of a matrix: the half spectrum along ``in`` for dft."""
    return (shape[0], shape[1] // 2 + 1) if kernel == "dft" and shape[1] else shape


def spectrum_weights(n_in: int) -> np.ndarray:
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

    def to_dense(self) -> np.ndarray:
        out, n_in = self.shape
        if self.size == 0:
            return np.zeros(self.shape, np.float32)
        c = csr_dense(coefficient_grid(self.shape, self.kernel), self._coeffs(), self._cols, self._ptr)
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
            t = np.conj(np.fft.rfft(xb, axis=1)) * (spectrum_weights(n_in) / n_in)
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
        grid = coefficient_grid(shape, kernel)
        nnz = meta_int(meta, "nnz", 0, grid[0] * grid[1])
        values = float_array(arrays, "values", (nnz, 2) if kernel == "dft" else (nnz,), finite=True)
        load_csr(arrays, "", grid, nnz)
        return cls(shape, kernel, values, arrays["col_idx"], arrays["row_ptr"])
