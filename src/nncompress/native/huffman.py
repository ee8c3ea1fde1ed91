"""Native products of the ``ham`` and ``sham`` formats (native/huffman.c).

The C kernels rebuild the canonical decode tables from the stored code lengths on every call; those
tables are derived data and are not part of any format's ``nbytes``.
"""

from __future__ import annotations

import numpy as np

from nncompress.formats.ham import HuffmanMatrix
from nncompress.formats.sham import SparseHuffmanMatrix
from nncompress.native._call import check, kernel, prepare_x, ptr, typed, uint_arg


def ham_dot(fmt: HuffmanMatrix, x: np.ndarray, threads: int = 1, naive: bool = False) -> np.ndarray:
    """x @ W.T for a HuffmanMatrix."""
    n_out, n_in = fmt.shape
    xb, single = prepare_x(x, n_in, fmt.name)
    cb = typed(fmt.codebook, np.float32, fmt.name, "codebook")
    lens = typed(fmt.code_len, np.uint8, fmt.name, "code_len")
    if lens.size != cb.size:
        check(-1, fmt.name)
    stream = typed(fmt.stream, np.uint32, fmt.name, "stream")
    y = np.empty((xb.shape[0], n_out), dtype=np.float32)
    st = kernel("ham", naive)(
        n_out,
        n_in,
        ptr(cb, "float *"),
        ptr(lens, "uint8_t *"),
        cb.size,
        ptr(stream, "uint32_t *"),
        stream.size,
        *uint_arg(fmt.name, fmt.row_bits, "row_bits"),
        ptr(xb, "float *"),
        xb.shape[0],
        ptr(y, "float *"),
        threads,
    )
    check(st, fmt.name)
    return y[0] if single else y


def sham_dot(fmt: SparseHuffmanMatrix, x: np.ndarray, threads: int = 1, naive: bool = False) -> np.ndarray:
    """x @ W.T for a SparseHuffmanMatrix."""
    n_out, n_in = fmt.shape
    xb, single = prepare_x(x, n_in, fmt.name)
    cb = typed(fmt.codebook, np.float32, fmt.name, "codebook")
    vlen = typed(fmt.value_len, np.uint8, fmt.name, "value_len")
    if vlen.size != cb.size:
        check(-1, fmt.name)
    huffman_gaps = fmt.gap["gap_coder"] == "huffman"
    glen = typed(fmt.gap["gap_len"], np.uint8, fmt.name, "gap_len") if huffman_gaps else np.zeros(0, np.uint8)
    if huffman_gaps and glen.size != int(fmt.gap["gap_escape"]) + 1:
        check(-1, fmt.name)
    stream = typed(fmt.stream, np.uint32, fmt.name, "stream")
    y = np.empty((xb.shape[0], n_out), dtype=np.float32)
    st = kernel("sham", naive)(
        n_out,
        n_in,
        ptr(cb, "float *"),
        ptr(vlen, "uint8_t *"),
        cb.size,
        0 if huffman_gaps else 1,
        ptr(glen, "uint8_t *"),
        glen.size,
        int(fmt.gap.get("escape_bits", 0)),
        int(fmt.gap.get("gap_order", 0)),
        ptr(stream, "uint32_t *"),
        stream.size,
        *uint_arg(fmt.name, fmt.row_bits, "row_bits"),
        ptr(xb, "float *"),
        xb.shape[0],
        ptr(y, "float *"),
        threads,
    )
    check(st, fmt.name)
    return y[0] if single else y
