"""Native products of the ``ham`` and ``sham`` formats (native/ham.c, native/sham.c).

The C kernels rebuild the canonical decode tables from the stored code lengths on every call; those
tables are derived data and are not part of any format's ``nbytes``.
"""

from __future__ import annotations

import numpy as np

from nncompress.formats.ham import HuffmanMatrix
from nncompress.formats.sham import SparseHuffmanMatrix
from nncompress.native._call import Bound, check, kernel, ptr, typed, uint_arg


def ham_bind(fmt: HuffmanMatrix, threads: int = 1, naive: bool = False) -> Bound:
    """x @ W.T for a HuffmanMatrix."""
    cb = typed(fmt.codebook, np.float32, fmt.name, "codebook")
    lens = typed(fmt.code_len, np.uint8, fmt.name, "code_len")
    if lens.size != cb.size:
        check(-1, fmt.name)
    stream = typed(fmt.stream, np.uint32, fmt.name, "stream")
    head = (
        *fmt.shape,
        ptr(cb, "float *"),
        ptr(lens, "uint8_t *"),
        cb.size,
        ptr(stream, "uint32_t *"),
        stream.size,
        *uint_arg(fmt.name, fmt.row_bits, "row_bits"),
    )
    return Bound(fmt.name, fmt.shape, kernel("ham", naive), head, [cb, lens, stream], threads)


def sham_bind(fmt: SparseHuffmanMatrix, threads: int = 1, naive: bool = False) -> Bound:
    """x @ W.T for a SparseHuffmanMatrix."""
    cb = typed(fmt.codebook, np.float32, fmt.name, "codebook")
    vlen = typed(fmt.value_len, np.uint8, fmt.name, "value_len")
    if vlen.size != cb.size:
        check(-1, fmt.name)
    huffman_gaps = fmt.gap["gap_coder"] == "huffman"
    glen = typed(fmt.gap["gap_len"], np.uint8, fmt.name, "gap_len") if huffman_gaps else np.zeros(0, np.uint8)
    if huffman_gaps and glen.size != int(fmt.gap["gap_escape"]) + 1:
        check(-1, fmt.name)
    stream = typed(fmt.stream, np.uint32, fmt.name, "stream")
    head = (
        *fmt.shape,
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
    )
    return Bound(fmt.name, fmt.shape, kernel("sham", naive), head, [cb, vlen, glen, stream], threads)
