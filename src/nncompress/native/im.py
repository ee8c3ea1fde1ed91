"""Native product of the ``im`` (index map) format (native/im.c)."""

from __future__ import annotations

import numpy as np

from nncompress.formats.im import IndexMap
from nncompress.native._call import Bound, kernel, ptr, typed


def im_bind(fmt: IndexMap, threads: int = 1, naive: bool = False) -> Bound:
    """x @ W.T for an IndexMap matrix."""
    cb = typed(fmt.codebook, np.float32, fmt.name, "codebook")
    stream = typed(fmt.stream, np.uint32, fmt.name, "stream")
    head = (*fmt.shape, ptr(cb, "float *"), cb.size, ptr(stream, "uint32_t *"), stream.size)
    return Bound(fmt.name, fmt.shape, kernel("im", naive), head, [cb, stream], threads)
