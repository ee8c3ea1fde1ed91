"""``dct``: keep the largest 2-D transform coefficients of each selected weight (the `DCT` format).

``kernel`` picks the transform: ``dct`` or ``dst`` (type II, ``norm="ortho"``, scipy.fft.dctn / dstn) or
``dft`` (numpy.fft.rfft2, the complex half spectrum). The coefficients that carry the most energy are
kept (for ``dft`` a half-spectrum column other than 0 and Nyquist stands for two conjugate coefficients
and weighs double) such that the stored floats, ``nnz`` (dct, dst) or ``2 * nnz`` (dft), stay
``<= budget * out * in``. Example: ``nncompress compress model.onnx --pipeline dct:kernel=dst``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from nncompress.formats._lowparam import pack_csr
from nncompress.formats.base import as_matrix
from nncompress.formats.dct import DCT, coefficient_grid, spectrum_weights
from nncompress.options import option
from nncompress.passes._structured import BudgetOptions, Structured


class DCTPass(Structured):
    """Sparse transform coefficients within a parameter budget (see the module docstring)."""

    name = "dct"

    @dataclass(frozen=True)
    class Options(BudgetOptions):
        kernel: Literal["dct", "dst", "dft"] = option("dct", doc="the 2-D transform")

    @classmethod
    def fit(cls, w: np.ndarray, options: DCTPass.Options) -> DCT:
        import scipy.fft

        kernel = options.kernel
        a = as_matrix(w, cls.name, finite=True).astype(np.float64)
        grid = coefficient_grid(a.shape, kernel)
        c: np.ndarray
        if a.size == 0:
            c = np.zeros(grid)
            energy = c
        elif kernel == "dft":
            c = np.fft.rfft2(a)
            energy = np.abs(c) ** 2 * spectrum_weights(a.shape[1])
        else:
            c = (scipy.fft.dctn if kernel == "dct" else scipy.fft.dstn)(a, norm="ortho")
            energy = c**2
        per = 2 if kernel == "dft" else 1
        keep = min(int(options.budget * a.size) // per, int(np.count_nonzero(energy)))
        mask = np.zeros(grid, dtype=bool)
        if keep:
            mask.flat[np.argpartition(energy.ravel(), energy.size - keep)[energy.size - keep :]] = True
        rows, cols, col_idx, row_ptr = pack_csr(mask)
        kept = c[rows, cols]
        values = np.stack([kept.real, kept.imag], axis=1) if kernel == "dft" else kept
        return DCT(a.shape, kernel, values.astype(np.float32), col_idx, row_ptr)
