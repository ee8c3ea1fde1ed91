"""Dense algebra: Dense, MatMul, Gemm, and the convolutions Conv and ConvTranspose.

Convolutions go through im2col (one strided view and one matmul per group), depthwise ones through one
multiply-add per kernel tap, and ConvTranspose through one matmul and col2im, so that a small CNN runs
on a few thousand images in seconds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from nncompress.ir.ops._common import Arr, Attrs, Ins, OpFn
from nncompress.ir.ops._window import ints, out_sizes, pad, pads, taps, windows


def _dense(ins: Ins, a: Attrs) -> Arr:
    x = ins[0]
    y = x @ ins[1].astype(x.dtype, copy=False).T
    return y if len(ins) < 3 or ins[2] is None else y + ins[2].astype(x.dtype, copy=False)


def _gemm(ins: Ins, a: Attrs) -> Arr:
    A = ins[0].T if a.get("transA", 0) else ins[0]
    B = ins[1].T if a.get("transB", 0) else ins[1]
    y = float(a.get("alpha", 1.0)) * (A @ B.astype(A.dtype, copy=False))
    if len(ins) > 2 and ins[2] is not None:
        y = y + float(a.get("beta", 1.0)) * ins[2]
    return y.astype(A.dtype, copy=False)


_IM2COL_BYTES = 1 << 26  # above this a conv runs in slices of the batch, then of output rows


def _conv(ins: Ins, a: Attrs) -> Arr:
    x, w = ins[0], ins[1].astype(ins[0].dtype, copy=False)
    g, kern = int(a.get("group", 1)), w.shape[2:]
    geo = pb, pe, s, d = pads(a, x.shape[2:], kern)
    out = out_sizes(x.shape[2:], geo, kern, ceil=False)
    n, c, m, nk = x.shape[0], x.shape[1], w.shape[0], len(kern)
    per = math.prod(out) * c * math.prod(kern) * x.dtype.itemsize  # im2col bytes of one sample
    if n > 1 and n * per > _IM2COL_BYTES:
        step = max(1, _IM2COL_BYTES // max(1, per))
        return np.concatenate([_conv([x[i : i + step], *ins[1:]], a) for i in range(0, n, step)])
    xp = pad(x, pb, pe, 0)
    if c == g > 1 and nk and w.shape[1] == 1 and m % c == 0:
        return _bias(_depthwise(xp, w, kern, s, d, out), ins[2] if len(ins) > 2 else None)
    win = windows(xp, kern, s, d, out).reshape(n, g, c // g, *out, *kern)
    wm = w.reshape(g, m // g, -1).transpose(0, 2, 1)
    # One sample's im2col can pass the budget too (VGG16's conv2: 115 MB): then bands of output rows.
    band = out[0] if per <= _IM2COL_BYTES else max(1, out[0] * _IM2COL_BYTES // per)
    axes = (1, 0, *range(3, 3 + nk), 2, *range(3 + nk, 3 + 2 * nk))
    ys = []
    for r in range(0, out[0], band):
        part = win[:, :, :, r : r + band]
        sub = (part.shape[3], *out[1:])
        # im2col: rows are (sample, output position), columns (channel, kernel tap), one matmul per group
        cols = part.transpose(axes).reshape(g, n * math.prod(sub), -1)
        y = cols @ wm  # (g, n*P, m/g)
        ys.append(
            y.reshape(g, n, *sub, m // g).transpose(1, 0, 2 + nk, *range(2, 2 + nk)).reshape(n, m, *sub)
        )
    y = ys[0] if len(ys) == 1 else np.concatenate(ys, axis=2)
    return _bias(np.ascontiguousarray(y), ins[2] if len(ins) > 2 else None)


def _depthwise(xp: Arr, w: Arr, kern: Sequence[int], s: list[int], d: list[int], out: list[int]) -> Arr:
    """A convolution of one input channel a group: a multiply-add per kernel tap over the whole map.
    im2col's per-group matmuls are (n*P, taps) x (taps, m/g), too thin for BLAS (3-4x slower on the
    emotion classifier's 60 x 60 maps, whose depthwise layers were half of its run)."""
    m, c = w.shape[0], xp.shape[1]
    src = np.arange(m) // (m // c)  # output channel o reads input channel o // multiplier
    per_tap = w.reshape(m, -1).T.reshape(-1, 1, m, *[1] * len(out))  # taps in C order, as taps() yields
    y = np.zeros((xp.shape[0], m, *out), dtype=xp.dtype)
    for scale, (_, view) in zip(per_tap, taps(xp, kern, s, d, out), strict=True):
        y += (view if m == c else view[:, src]) * scale
    return y


def _bias(y: Arr, b: Arr | None) -> Arr:
    return y if b is None else y + b.astype(y.dtype, copy=False).reshape(-1, *[1] * (y.ndim - 2))


def _conv_transpose(ins: Ins, a: Attrs) -> Arr:
    x, w = ins[0], ins[1].astype(ins[0].dtype, copy=False)
    g, kern, size = int(a.get("group", 1)), w.shape[2:], x.shape[2:]
    n, c, og, nk = x.shape[0], x.shape[1], w.shape[1], len(kern)
    s, d = ints(a, "strides", nk, 1), ints(a, "dilations", nk, 1)
    opad = ints(a, "output_padding", nk, 0)
    full = [
        (i - 1) * si + (k - 1) * di + 1 + op for i, si, k, di, op in zip(size, s, kern, d, opad, strict=True)
    ]
    pb, pe = _transpose_pads(a, size, s, full)
    xg = x.reshape(n, g, c // g, -1).transpose(1, 0, 3, 2)  # (g, n, P, c/g)
    cols = xg @ w.reshape(g, 1, c // g, -1)  # (g, n, P, og*K)
    cols = cols.reshape(g, n, *size, og, *kern)
    cols = (
        np.moveaxis(cols, 2 + nk, 2).transpose(1, 0, *range(2, 3 + 2 * nk)).reshape(n, g * og, *size, *kern)
    )
    buf = np.zeros((n, g * og, *full), x.dtype)
    # col2im: one strided add per kernel tap, never a loop over pixels
    for tap, view in taps(buf, kern, s, d, size):
        src = (Ellipsis, *tap)
        view += cols[src]
    crop = (slice(None), slice(None), *(slice(b, f - e) for b, e, f in zip(pb, pe, full, strict=True)))
    return _bias(np.ascontiguousarray(buf[crop]), ins[2] if len(ins) > 2 else None)


def _transpose_pads(
    a: Attrs, size: Sequence[int], s: Sequence[int], full: Sequence[int]
) -> tuple[list[int], list[int]]:
    nk = len(size)
    auto = a.get("auto_pad", "NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else str(auto)
    want = a.get("output_shape")
    if want is None and auto in ("SAME_UPPER", "SAME_LOWER"):
        want = [i * si for i, si in zip(size, s, strict=True)]
    if want is None:
        p = ints(a, "pads", 2 * nk, 0)
        return p[:nk], p[nk:]
    total = [f - int(o) for f, o in zip(full, list(want)[-nk:], strict=True)]
    half, rest = [t // 2 for t in total], [t - t // 2 for t in total]
    return (half, rest) if auto == "SAME_UPPER" else (rest, half)


OPS: dict[str, OpFn] = {
    "Dense": _dense,
    "MatMul": lambda ins, a: np.matmul(ins[0], ins[1]),
    "Gemm": _gemm,
    "Conv": _conv,
    "ConvTranspose": _conv_transpose,
}
