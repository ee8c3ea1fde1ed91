"""The ``cabac`` coder in C (native/cabac.c): levels to stream and back, and the format's product.

The coder has no fused product kernel: `cabac_bind` decodes the levels once, rebuilds the float32
matrix and binds the dense kernel to it (a range decoder is sequential, so decoding inside a
row-parallel product would only repeat that work per call).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from nncompress.errors import InputError, UsageError
from nncompress.formats.dense import Dense
from nncompress.native._call import Bound, check, ffi, lib, ptr
from nncompress.native.dense import dense_bind

if TYPE_CHECKING:  # formats.cabac imports this module lazily; the import here would be a cycle
    from nncompress.formats.cabac import Cabac

_ESPACE = -5


def encode(levels: np.ndarray) -> np.ndarray:
    """The uint8 stream of int32 levels (1-D, each |l| < 2**30): one C call, two for dense streams."""
    lv = np.ascontiguousarray(levels, dtype=np.int32).reshape(-1)
    out_len = ffi.new("int64_t *")

    def run(cap: int) -> tuple[int, np.ndarray]:
        out = np.empty(cap, dtype=np.uint8)
        return lib.nnc_cabac_encode(ptr(lv, "int32_t *"), lv.size, ptr(out, "uint8_t *"), cap, out_len), out

    # 8 bits a level: fine steps (rdoq at rms/32) take ~7, and a second call, when needed, codes the
    # whole stream again (it halved encode throughput at 4 bits a level)
    st, out = run(lv.size + 64)
    if st == _ESPACE:  # the encoder counted the bytes it needs: the second call fits
        st, out = run(int(out_len[0]))
    if st == -2:
        raise UsageError("cabac codes integer levels of magnitude below 2**30")
    check(st, "cabac")
    return out[: int(out_len[0])].copy() if out_len[0] != out.size else out


def decode(stream: np.ndarray, n: int) -> np.ndarray:
    """The n int32 levels of a uint8 stream; InputError when it does not decode to exactly n."""
    s = np.ascontiguousarray(stream, dtype=np.uint8).reshape(-1)
    out = np.empty(n, dtype=np.int32)
    st = lib.nnc_cabac_decode(ptr(s, "uint8_t *"), s.size, ptr(out, "int32_t *"), n)
    if st == -3:  # the usual corruption, said without check()'s "cabac tensor:" (from_arrays adds it)
        raise InputError(f"the stream of {s.size} bytes does not decode to exactly {n} levels")
    check(st, "cabac")
    return out


def cabac_bind(fmt: Cabac, threads: int = 1, naive: bool = False) -> Bound:
    """x @ W.T for a Cabac matrix: decoded once, then the dense kernel on the matrix."""
    bound = dense_bind(Dense(fmt.to_dense()), threads=threads, naive=naive)
    bound.name = fmt.name
    return bound
