"""The ``cabac`` coder in plain Python: the written spec, bit-exact with native/cabac.c (slow: tests only).

A sequence of signed integer levels (|l| < 2**30, the format's matrix in row-major scan order) is
coded as ONE stream. For each level l, with p1 the level before it and p2 the one before that (0 at
the start), the bins are:

1. ``sig = l != 0``, context ``min(|p1|, 2) * 2 + (p2 != 0)`` (6 contexts);
2. if sig, ``sign = l < 0``, context 0 if p1 == 0, 1 if p1 > 0, 2 if p1 < 0 (3 contexts);
3. if sig, ``gt_k = |l| > k`` for k = 1..4, context ``(k - 1) * 2 + (|p1| > k)`` (8 contexts),
   stopping at the first gt_k that is 0;
4. if |l| > 4, r = |l| - 5 in Exp-Golomb order 0: u = floor(log2(r + 1)) ones then a zero, prefix
   bit i in context min(i, 15) (16 contexts), then the u low bits of r + 1, most significant first,
   as bypass bins.

Each context keeps two 15-bit estimates of P(bit == 1), both starting at 2**14, updated after each
of its bins with shifts 4 (fast) and 7 (slow): ``p += (2**15 - p) >> s`` after a 1, ``p -= p >> s``
after a 0. The coded probability is their mean, clamped to [2**5, 2**15 - 2**5].

The arithmetic coder is LZMA's binary range coder: 32-bit range, 64-bit low whose carry runs into a
cached byte and the 0xFF bytes after it, bytes out most significant first. A bin of probability p
splits the range at ``bound = (range >> 15) * p``; a 1 takes [0, bound). A bypass bin halves the
range and a 1 takes the upper half. The range is renormalized (one byte at a time) below 2**24, and
the encoder flushes with 5 byte shifts, so the stream is 5 bytes plus one per renormalization, its
first byte always 0. The decoder reads exactly those bytes: anything else is an error (a first byte
that is not 0, a read past the end, bytes left after n levels, an Exp-Golomb prefix of 30 ones, a
magnitude >= 2**30).

Why this binarization: most quantized weights are 0 or +-1 next to small neighbours, so the
significance and greater-than-1 bins carry most of the information, at well under one bit each when
they are predictable; the neighbours' magnitudes pick the context because weights of one row cluster
in magnitude. Large magnitudes are rare and cost only Exp-Golomb bits.
"""

from __future__ import annotations

import numpy as np

from nncompress.errors import InputError

PROB_BITS = 15
PROB_ONE = 1 << PROB_BITS
PROB_MIN = 1 << 5
PROB_MAX = PROB_ONE - (1 << 5)
TOP = 1 << 24
MAX_MAG = 1 << 30  # |level| < MAX_MAG
K_GT = 4
N_EG = 16
MAX_PREFIX = 30
N_SIG, N_SIGN, N_GT = 6, 3, 2 * K_GT
_MASK32 = 0xFFFFFFFF


class Model:
    """The 33 contexts' (fast, slow) probability pairs, each context one index."""

    SIG, SIGN, GT, EG = 0, N_SIG, N_SIG + N_SIGN, N_SIG + N_SIGN + N_GT

    def __init__(self) -> None:
        n = N_SIG + N_SIGN + N_GT + N_EG
        self.fast = [PROB_ONE >> 1] * n
        self.slow = [PROB_ONE >> 1] * n

    def prob(self, c: int) -> int:
        return min(max((self.fast[c] + self.slow[c]) >> 1, PROB_MIN), PROB_MAX)

    def update(self, c: int, bit: int) -> None:
        f, s = self.fast[c], self.slow[c]
        if bit:
            self.fast[c], self.slow[c] = f + ((PROB_ONE - f) >> 4), s + ((PROB_ONE - s) >> 7)
        else:
            self.fast[c], self.slow[c] = f - (f >> 4), s - (s >> 7)


def sig_ctx(p1: int, p2: int) -> int:
    return Model.SIG + min(abs(p1), 2) * 2 + (p2 != 0)


def sign_ctx(p1: int) -> int:
    return Model.SIGN + (0 if p1 == 0 else 1 if p1 > 0 else 2)


def gt_ctx(k: int, p1: int) -> int:
    return Model.GT + (k - 1) * 2 + (abs(p1) > k)


def eg_ctx(i: int) -> int:
    return Model.EG + min(i, N_EG - 1)


class Encoder:
    """LZMA's range encoder with adaptive and bypass bins."""

    def __init__(self) -> None:
        self.low, self.range, self.cache, self.pending = 0, _MASK32, 0, 1
        self.out = bytearray()
        self.model = Model()

    def _shift_low(self) -> None:
        if (self.low & _MASK32) < 0xFF000000 or self.low >> 32:
            carry = self.low >> 32
            t = self.cache
            while True:
                self.out.append((t + carry) & 0xFF)
                t = 0xFF
                self.pending -= 1
                if not self.pending:
                    break
            self.cache = (self.low >> 24) & 0xFF
        self.pending += 1
        self.low = (self.low & 0x00FFFFFF) << 8

    def bin(self, c: int, bit: int) -> None:
        bound = (self.range >> PROB_BITS) * self.model.prob(c)
        if bit:
            self.range = bound
        else:
            self.low += bound
            self.range -= bound
        self.model.update(c, bit)
        while self.range < TOP:
            self.range <<= 8
            self._shift_low()

    def bypass(self, bit: int) -> None:
        self.range >>= 1
        if bit:
            self.low += self.range
        if self.range < TOP:
            self.range <<= 8
            self._shift_low()

    def finish(self) -> bytes:
        for _ in range(5):
            self._shift_low()
        return bytes(self.out)


class Decoder:
    """The matching range decoder; every byte read is checked against the stream's end."""

    def __init__(self, stream: bytes) -> None:
        if len(stream) < 5 or stream[0] != 0:
            raise InputError("the cabac stream does not start with its 5-byte header (first byte 0)")
        self.stream, self.pos = stream, 1
        self.range, self.code = _MASK32, 0
        for _ in range(4):
            self.code = (self.code << 8) | self._byte()
        self.model = Model()

    def _byte(self) -> int:
        if self.pos >= len(self.stream):
            raise InputError("the cabac stream ends before its last level")
        b = self.stream[self.pos]
        self.pos += 1
        return b

    def bin(self, c: int) -> int:
        bound = (self.range >> PROB_BITS) * self.model.prob(c)
        bit = int(self.code < bound)
        if bit:
            self.range = bound
        else:
            self.code -= bound
            self.range -= bound
        self.model.update(c, bit)
        while self.range < TOP:
            self.range <<= 8
            self.code = ((self.code << 8) | self._byte()) & _MASK32
        return bit

    def bypass(self) -> int:
        self.range >>= 1
        bit = int(self.code >= self.range)
        if bit:
            self.code -= self.range
        if self.range < TOP:
            self.range <<= 8
            self.code = ((self.code << 8) | self._byte()) & _MASK32
        return bit


def encode(levels: np.ndarray) -> bytes:
    """The stream of a 1-D sequence of integer levels, each |l| < 2**30 (ValueError otherwise)."""
    seq = [int(v) for v in np.asarray(levels).reshape(-1)]
    if any(abs(v) >= MAX_MAG for v in seq):
        raise ValueError(f"cabac levels must lie in (-2**30, 2**30), got {max(seq, key=abs)}")
    e = Encoder()
    p1 = p2 = 0
    for lev in seq:
        a = abs(lev)
        e.bin(sig_ctx(p1, p2), int(a != 0))
        if a:
            e.bin(sign_ctx(p1), int(lev < 0))
            for k in range(1, K_GT + 1):
                e.bin(gt_ctx(k, p1), int(a > k))
                if a <= k:
                    break
            if a > K_GT:
                v = a - K_GT  # r + 1
                u = v.bit_length() - 1
                for i in range(u):
                    e.bin(eg_ctx(i), 1)
                e.bin(eg_ctx(u), 0)
                for j in range(u - 1, -1, -1):
                    e.bypass((v >> j) & 1)
        p1, p2 = lev, p1
    return e.finish()


def decode(stream: bytes, n: int) -> np.ndarray:
    """The n int32 levels of a stream, or InputError when it does not decode to exactly n levels."""
    d = Decoder(bytes(stream))
    out = np.zeros(n, dtype=np.int32)
    p1 = p2 = 0
    for i in range(n):
        lev = 0
        if d.bin(sig_ctx(p1, p2)):
            neg = d.bin(sign_ctx(p1))
            a = 1
            while a <= K_GT and d.bin(gt_ctx(a, p1)):
                a += 1
            if a > K_GT:
                u = 0
                while d.bin(eg_ctx(u)):
                    u += 1
                    if u >= MAX_PREFIX:
                        raise InputError(f"the cabac stream holds an Exp-Golomb prefix of {MAX_PREFIX} ones")
                v = 1
                for _ in range(u):
                    v = (v << 1) | d.bypass()
                if v >= MAX_MAG - K_GT:
                    raise InputError("the cabac stream holds a level of magnitude 2**30 or more")
                a = K_GT + v
            lev = -a if neg else a
        out[i] = lev
        p1, p2 = lev, p1
    if d.pos != len(d.stream):
        raise InputError(f"the cabac stream has {len(d.stream) - d.pos} bytes after its last level")
    return out
