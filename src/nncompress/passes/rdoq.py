"""Uniform scalar quantization per tensor with rate-distortion-optimized levels (RDOQ).

Each selected weight gets one step size ``abs_step = step * rms(w)`` (as float32) and integer levels
``l``; its values become exactly ``np.float32(l.astype(np.float32) * np.float32(grid_step))``, the
grid the ``cabac`` format recognizes by recomputing it (so l = 0 is exactly 0.0). Each level
minimizes

    J(l) = weight * (w / abs_step - l) ** 2 + lam * bits(l)

over {round(w / abs_step), the other of floor/ceil, one further toward zero, 0}; an entry that is
exactly 0 (a pruned weight) stays 0 whatever its rate. ``lam = 0`` is plain rounding (round half to
even) and ``grid_step = abs_step``. With ``lam > 0`` levels move toward cheaper codes (more zeros,
smaller magnitudes): the rate-distortion optimized quantization of video coders (HEVC/VVC RDOQ;
Karczewicz et al. 2008), applied to weights as in DeepCABAC (Wiedemann et al. 2019, "DeepCABAC: A
Universal Compression Algorithm for Deep Neural Networks"). Those moves shrink the tensor toward
zero, an error aligned with the weights themselves that adds up coherently in a layer's outputs
where rounding errors average out; with ``refit`` (the default) ``grid_step`` then becomes
``w.w / w.l`` (the scale at which the regression of the quantized tensor on the original has slope
1), which takes that component out. Tensors under ``min_size`` entries (a first conv's 144
weights) are rounded: their bits are few, and on vggmini RDO of its first conv alone cost 30
points of accuracy (measured).

``bits(l)`` comes from a static model of the cabac binarization (the one `native/cabac.c` and
`formats/cabac.py` code): significance, sign, gt1..gt4 flags, an Exp-Golomb order-0 remainder
whose prefix bits are modelled per prefix index (min(i, 15)) and whose suffix bits are bypass bits
(1 bit each). Each flag's probability is the frequency of its value in the current levels, clamped
like the coder clamps its estimates. Context adaptivity is ignored: the coder's contexts on the
previous two levels and its running estimates are replaced by one stationary probability per flag
(per prefix index), so the model is a good predictor of size for weights whose neighbours are
nearly independent, which is what trained weights mostly are. The model is refitted ``iters``
times, each round on the levels the previous round chose, starting from plain rounding.

``weighting=magnitude`` scales each weight's distortion by ``(1 + (w / rms) ** 2) / 2`` (mean 1 over
the tensor, so ``lam`` keeps its meaning; at least 1/2): an error on a large weight costs more, a
data-free stand-in for a diagonal Fisher / squared-gradient sensitivity. On lenet300 and vggmini
(MNIST) magnitude weighting helped at some settings and hurt at others, so the default is none.
``weighting=fisher`` uses the data's: the mean squared per-sample gradient of each weight
(`nncompress.torch.fisher`, which compress runs on the first 256 samples of ``--data``) to the
power ``fisher_power``, scaled to mean 1, at least FISHER_FLOOR. As estimated (power 1) it made
both models far worse at the same bytes (lenet300 at step 1: 30 KB at 78.8 % against 61 KB at
92.4 % unweighted; 40 KB unweighted keeps 90.9 %): a few hundred samples overstate how little most
weights matter. Tempered to power 0.25 it beat the plain levels on vggmini (20.2 KB at 94.3 % against
20.5 KB at 92.5 %) and tied on lenet300. Without data it falls back to magnitude weighting.

``lam`` is in squared steps per bit; the slope of a uniform quantizer's high-rate curve is about
2 ln 2 / 12 = 0.12 of that, and the default 0.15 measured best in weight-space error per bit.
Gains are at coarse steps (step >= ~0.7: a few bits per weight or less); large ``lam`` at a coarse
step feeds on itself (more zeros make zero cheaper) and wipes out layers (lam=0.5 at step=1.4
left lenet300 at 76 % accuracy).

``compensate`` spreads each quantized column's error over the columns not yet quantized, as GPTQ
(Frantar et al. 2022, after Optimal Brain Surgeon/Quantization) does: with ``H = E[x x^T]`` the
second moments of what the layer is fed (`nncompress.hessian`, which compress measures on the first
rows of ``--data``) and ``U`` the upper Cholesky factor of ``H^-1`` (damped by COMPENSATE_DAMP of
its mean diagonal), column ``j``'s levels are chosen as above on the grid of the plain levels' refit
step, and the columns after it move by ``-(w_j - q_j) / U_jj * U_j,j+1:``. A column no sample feeds
(``H_jj = 0``: a border pixel of every digit) is zero. The output error ``E||(W - Q) x||^2`` it
leaves is what rounding column by column leaves minus what the later columns can absorb: on
lenet300 at the same bytes, 20 % less output error on its first layer and 3-6x less on its second
(measured on all 1,000 digits, H from the first 256). Only Dense and Conv kernels fed by one node
with at most 2,304 columns per group get an H; the others are quantized as without.

Example: ``nncompress compress model.onnx --pipeline "rdoq:step=1:lam=0.15,cabac"``.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

from nncompress.errors import UnsupportedError, UsageError
from nncompress.ir import Graph, Weight
from nncompress.native.rdoq import levels as native_levels
from nncompress.options import option
from nncompress.passes._infra import (
    CHUNK,
    Pass,
    PassOptions,
    PassResult,
    PerBlock,
    PerWeight,
    Select,
    Source,
    Transform,
    selected,
    source_chunks,
    weight_stats,
)

K = 4  # gt_k flags before the Exp-Golomb remainder (the spec's K)
PREFIX_CONTEXTS = 16  # prefix bit i uses context min(i, 15)
MAX_LEVEL = 1 << 30  # the coder refuses |l| >= 2**30
_U_BINS = 31  # u = floor(log2(|l| - K)) <= 29 for |l| < 2**30
# The coder's 15-bit probabilities are clamped to [32, 32768 - 32]: no bin costs more than ~10 bits.
P_MIN = 32 / 32768
_TABLE = 1 << 20  # magnitudes tabulated (and histogrammed) directly; larger ones by formula
_SUB = 1 << 16  # entries per vectorized step: temporaries stay in cache whatever the piece size
# The rate model is refitted from every (size // RATE_SAMPLE)-th entry of a larger tensor: flag
# frequencies of a million entries are as good as of a hundred million, and the refit rounds were
# two thirds of rdoq's time on VGG16's fc1 (103 M weights: 21 s of 31 s, measured).
RATE_SAMPLE = 1 << 20
FISHER = "fisher"  # graph.meta.extra key: {weight name: squared gradients, the weight's shape}
# Weights whose gradient vanished on the samples (a unit no sample activates) still count a little:
# a handful of samples cannot say an error there costs nothing.
FISHER_FLOOR = 0.05
HESSIAN = "hessian"  # graph.meta.extra key: {weight name: (groups, d, d) input second moments}
COMPENSATE_DAMP = 0.01  # of H's mean diagonal, added to it: GPTQ's default, keeps H^-1 finite
COMPENSATE_BLOCK = 128  # columns updated one at a time; the rest once a block, as one matmul


def _cost(ones: np.ndarray, zeros: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bits of coding a 1 and a 0 for flags seen ``ones``/``zeros`` times (0.5 each when never coded)."""
    n = ones + zeros
    p1 = np.where(n > 0, ones / np.maximum(n, 1), 0.5)
    p1 = np.clip(p1, P_MIN, 1.0 - P_MIN)
    return -np.log2(p1), -np.log2(1.0 - p1)


@dataclass(frozen=True)
class Counts:
    """What the rate model needs of a level array: how many have |l| = 0..K, how many |l| > K have
    each Exp-Golomb prefix length u, and how many are negative."""

    small: np.ndarray  # (K + 1,) int64: |l| = 0, 1, ..., K
    big: np.ndarray  # (_U_BINS,) int64: |l| > K by u = floor(log2(|l| - K))
    negative: int

    @staticmethod
    def zero() -> Counts:
        return Counts(np.zeros(K + 1, np.int64), np.zeros(_U_BINS, np.int64), 0)

    @staticmethod
    def of(levels: np.ndarray) -> Counts:
        a = np.abs(levels.reshape(-1).astype(np.int64))
        if a.size and int(a.max()) >= MAX_LEVEL:
            raise ValueError(f"level magnitude {int(a.max())} >= 2**30, beyond what cabac codes")
        negative = int(np.count_nonzero(levels < 0))
        top = int(a.max()) if a.size else 0
        if top < _TABLE:  # the usual case: one histogram of magnitudes, prefix lengths from it
            h = np.bincount(a, minlength=K + 1)
            big = np.bincount(_prefix_len(np.arange(K + 1, h.size)), weights=h[K + 1 :], minlength=_U_BINS)
            return Counts(h[: K + 1].astype(np.int64), big.astype(np.int64), negative)
        small = np.bincount(np.minimum(a, K + 1), minlength=K + 2)
        return Counts(
            small[: K + 1].astype(np.int64),
            np.bincount(_prefix_len(a[a > K]), minlength=_U_BINS).astype(np.int64),
            negative,
        )

    def __add__(self, other: Counts) -> Counts:
        return Counts(self.small + other.small, self.big + other.big, self.negative + other.negative)


def _prefix_len(a: np.ndarray) -> np.ndarray:
    """u = floor(log2(a - K)) of magnitudes a > K: the Exp-Golomb prefix length of r = a - K - 1."""
    # frexp is exact on float64 integers below 2**53: (a - K) = m * 2**e with m in [0.5, 1).
    return (np.frexp((a - K).astype(np.float64))[1] - 1).astype(np.intp)


class RateModel:
    """Estimated bits of each level under one stationary probability per cabac flag (contexts ignored)."""

    def __init__(self, counts: Counts) -> None:
        small = counts.small.astype(np.float64)
        big = counts.big.astype(np.float64)
        n_big = big.sum()
        total = small.sum() + n_big
        nonzero = total - small[0]
        sig1, sig0 = _cost(np.float64(nonzero), np.float64(small[0]))
        neg, pos = _cost(np.float64(counts.negative), np.float64(nonzero - counts.negative))
        self.sign = np.array([float(pos), float(neg)])
        # gt_k is coded for |l| >= k: 1 when |l| > k (every larger count), 0 when |l| == k.
        above = np.array([small[k + 1 :].sum() + n_big for k in range(1, K + 1)])
        gt1, gt0 = _cost(above, small[1:])
        # |l| = 0..K: sig, then gt_1..gt_{a-1} ones and gt_a zero.
        self.small = np.empty(K + 1)
        self.small[0] = float(sig0)
        for a in range(1, K + 1):
            self.small[a] = float(sig1) + gt1[: a - 1].sum() + gt0[a - 1]
        # Prefix bit i is coded for u >= i: 1 when u > i, 0 when u == i; context min(i, 15).
        ones = np.zeros(PREFIX_CONTEXTS)
        zeros = np.zeros(PREFIX_CONTEXTS)
        for i in range(_U_BINS):
            ctx = min(i, PREFIX_CONTEXTS - 1)
            ones[ctx] += big[i + 1 :].sum()
            zeros[ctx] += big[i]
        p1, p0 = _cost(ones, zeros)
        ctx_of = np.minimum(np.arange(_U_BINS), PREFIX_CONTEXTS - 1)
        ones_before = np.concatenate([[0.0], np.cumsum(p1[ctx_of])[:-1]])
        # |l| > K: sig and all K gt flags set, u prefix ones, a zero, u bypass suffix bits.
        self.big = float(sig1) + gt1.sum() + ones_before + p0[ctx_of] + np.arange(_U_BINS)
        self._table = self.small  # magnitudes below len(_table) are looked up
        self._table_limit = K + 1
        self._signed: np.ndarray | None = None

    def extend_table(self, amax: int) -> None:
        """Tabulate magnitudes up to ``amax`` (capped at _TABLE) so `mag_bits` is one lookup for them."""
        n = min(max(amax, K) + 1, _TABLE)
        if n > self._table_limit:
            self._table = self._mag_bits_formula(np.arange(n))
            self._table_limit = n

    def signed_table(self) -> np.ndarray:
        """Bits of levels +0..+n-1 then -0..-n-1 (sign included), n = the tabulated magnitudes + 1."""
        if self._signed is None or self._signed.size != 2 * (self._table_limit + 1):
            mags = self._mag_bits_formula(np.arange(self._table_limit + 1))
            pos, neg = mags.copy(), mags.copy()
            pos[1:] += self.sign[0]
            neg[1:] += self.sign[1]
            self._signed = np.concatenate([pos, neg])
        return self._signed

    def _mag_bits_formula(self, a: np.ndarray) -> np.ndarray:
        small = self.small[np.minimum(a, K)]
        u = _prefix_len(np.maximum(a, K + 1))
        return np.where(a <= K, small, self.big[u])

    def mag_bits(self, a: np.ndarray) -> np.ndarray:
        """Bits of levels of magnitude ``a`` (int array), sign excluded."""
        if a.size == 0 or int(a.max()) < self._table_limit:
            return self._table[a]
        return self._mag_bits_formula(a)

    def bits(self, levels: np.ndarray) -> np.ndarray:
        """Bits of each signed level (sign bits included for nonzero levels)."""
        flat = levels.reshape(-1).astype(np.int64)
        out = self.mag_bits(np.abs(flat))
        out[flat > 0] += self.sign[0]
        out[flat < 0] += self.sign[1]
        return out.reshape(levels.shape)


def rate_bits(levels: np.ndarray) -> float:
    """Estimated cabac bits of an integer level array, from its own flag statistics (contexts and
    the coder's adaptation ignored, so a prediction of the coded size without encoding)."""
    levels = np.asarray(levels)
    if levels.size == 0:
        return 0.0
    model = RateModel(Counts.of(levels))
    model.extend_table(int(np.abs(levels).max()))
    total = 0.0
    flat = levels.reshape(-1)
    for i in range(0, flat.size, _SUB):
        total += float(model.bits(flat[i : i + _SUB]).sum())
    return total


def grid_values(levels: np.ndarray, abs_step: np.float32) -> np.ndarray:
    """The float32 values of ``levels`` on the grid: the exact expression the cabac format recomputes."""
    return np.float32(levels.astype(np.float32) * np.float32(abs_step))


@dataclass(frozen=True)
class _Fitted:
    """One weight's quantizer: its step and the rate model its levels are chosen with (None: rounding)."""

    abs_step: np.float32  # the step levels are chosen on
    rms: float
    sq: float  # w.w in float64
    model: RateModel | None
    lam: float
    magnitude: bool
    grid_step: np.float32  # the step of the output grid: abs_step, or its least-squares refit
    weights: np.ndarray | None = None  # per-entry distortion weights of the whole flat tensor (fisher)

    def values(self, c: np.ndarray, start: int = 0) -> np.ndarray:
        """The grid values of the flat float piece ``c`` (float32), entries ``start``... of the tensor."""
        return grid_values(self.levels(c, start), self.grid_step)

    def levels(self, c: np.ndarray, start: int = 0, stride: int = 1) -> np.ndarray:
        """The chosen int64 level of each entry of the flat float piece ``c``: the tensor's entries
        ``start``, ``start + stride``, ... (which per-entry weights apply)."""
        out = np.empty(c.size, np.int64)
        for i in range(0, c.size, _SUB):
            piece = c[i : i + _SUB]
            wt = None
            if self.weights is not None:
                at = start + i * stride
                wt = self.weights[at : at + piece.size * stride : stride]
            out[i : i + _SUB] = self._levels(piece, wt)
        return out

    def _levels(self, c: np.ndarray, wt: np.ndarray | None = None) -> np.ndarray:
        if self.model is None or self.lam == 0.0:
            x = c.astype(np.float64) / float(self.abs_step)
            return np.copysign(np.rint(np.abs(x)), x).astype(np.int64)  # rint is symmetric (half to even)
        signed = self.model.signed_table()  # bits of +0, +1, ... then of -0, -1, ... (sign bits included)
        fast = native_levels(c, float(self.abs_step), self.rms, self.magnitude, self.lam, signed, wt)
        return fast if fast is not None else self.reference_levels(c, wt)

    def reference_levels(self, c: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        """`_levels` in numpy (lam > 0): the definition native/rdoq.c follows operation for operation;
        ``weights`` (float64, one per entry of ``c``) replace the magnitude or unit weighting."""
        assert self.model is not None
        x = c.astype(np.float64) / float(self.abs_step)
        a = np.abs(x)
        model = self.model
        f = np.floor(a)
        frac = a - f
        fi = f.astype(np.intp)
        neg = x < 0
        signed = model.signed_table()
        half = signed.size // 2
        if fi.size and int(fi.max()) + 1 >= half:  # beyond the table (an outlier of over 2**20 steps)

            def bits(m: np.ndarray) -> np.ndarray:
                return model.mag_bits(m) + np.where(m > 0, model.sign[neg.astype(np.intp)], 0.0)
        else:
            offset = np.where(neg, half, 0)

            def bits(m: np.ndarray) -> np.ndarray:
                return signed[offset + m]

        wt: np.ndarray | float = 1.0
        if weights is not None:
            wt = weights
        elif self.magnitude:
            wt = 0.5 * (1.0 + np.square(c.astype(np.float64) / self.rms))
        lam = self.lam
        up = (frac > 0.5) | ((frac == 0.5) & (fi % 2 == 1))  # where rint rounds up (half to even)
        # J(m) = wt * (a - m)^2 + lam * bits(m) for m = floor, floor + 1, floor - 1 (>= 0) and 0.
        j_floor = wt * np.square(frac) + lam * bits(fi)
        j_ceil = wt * np.square(1.0 - frac) + lam * bits(fi + 1)
        # Rounding first: another candidate replaces it only when strictly cheaper.
        best = fi + up
        j = np.where(up, j_ceil, j_floor)
        other = np.where(up, j_floor, j_ceil)
        take = other < j
        best = np.where(take, fi + ~up, best)  # the other of floor and ceil
        j = np.where(take, other, j)
        below = np.maximum(fi - 1, 0)
        j_below = wt * np.square(a - below) + lam * bits(below)
        take = j_below < j
        best = np.where(take, below, best)
        j = np.where(take, j_below, j)
        j_zero = wt * np.square(a) + lam * model.small[0]
        best = np.where((j_zero < j) | (a == 0), 0, best)  # an exact zero (a pruned weight) stays zero
        return np.where(neg, -best, best).astype(np.int64)


class RDOQ(Pass):
    """Quantize each selected weight to a uniform grid, its levels chosen to trade error for cabac bits."""

    name = "rdoq"

    @dataclass(frozen=True)
    class Options(PassOptions):
        step: float = option(
            1 / 16, lo=1e-6, hi=1e3, doc="step size relative to the weight's RMS (absolute step = step * rms)"
        )
        lam: float = option(
            0.15, lo=0.0, hi=1e3, doc="bits-vs-error trade-off, in squared steps per bit (0: plain rounding)"
        )
        weighting: Literal["none", "magnitude", "fisher"] = option(
            "none",
            doc="distortion weight per entry: none (1), magnitude ((1 + (w/rms)^2) / 2) or fisher "
            "(squared gradients on --data; magnitude without)",
        )
        fisher_power: float = option(
            0.25,
            lo=0.0,
            hi=1.0,
            doc="fisher weighting: squared gradients to this power (1: as estimated; smaller tempers "
            "their spread, which 256 samples overstate)",
        )
        min_size: int = option(
            4096,
            lo=0,
            doc="tensors with fewer entries are rounded (lam 0): their bits are few, their errors costly",
        )
        refit: bool = option(
            True, doc="lam > 0: grid step w.w / w.l, undoing the shrinkage toward zero of the chosen levels"
        )
        iters: int = option(
            2, lo=1, hi=20, doc="rate-model refinement rounds (each refits on the last levels)"
        )
        compensate: bool = option(
            False,
            doc="spread each column's error over the later columns through the layer's input "
            "second moments on --data (GPTQ); Dense and Conv kernels, else as without",
        )

        def statistics(self) -> tuple[str, ...]:
            """The ``graph.meta.extra`` keys of the data-driven statistics these options read
            (compress measures them on --data; without, the pass does as it would without them)."""
            return (FISHER,) * (self.weighting == "fisher") + (HESSIAN,) * bool(self.compensate)

    def __call__(
        self, graph: Graph, options: RDOQ.Options, *, select: Select, rng: np.random.Generator
    ) -> PassResult:
        out = graph.copy()
        stats = []
        path = graph.meta.path
        for w in selected(graph, select):
            a = np.ascontiguousarray(w.array)
            done = _quantize(w, a, options, path, graph)
            if done is None:
                continue  # empty or all zero: nothing to quantize
            new, fitted, levels = done
            out.weights[w.name].value = new
            stats.append(
                weight_stats(
                    self.name,
                    w,
                    a,
                    new,
                    abs_step=float(fitted.grid_step),
                    decision_step=float(fitted.abs_step),
                    lam=options.lam,
                    est_bits=rate_bits(levels),
                )
            )
        return PassResult(out, stats)

    def per_weight(
        self, graph: Graph | None, options: RDOQ.Options, *, select: Select, rng: np.random.Generator
    ) -> PerWeight | None:
        path = graph.meta.path if graph is not None else None

        def one(w: Weight, a: np.ndarray, owned: bool) -> np.ndarray:
            done = _quantize(w, np.ascontiguousarray(a), options, path, graph)
            return a if done is None else done[0]

        return one

    def per_block(
        self, graph: Graph | None, options: RDOQ.Options, *, select: Select, rng: np.random.Generator
    ) -> PerBlock | None:
        path = graph.meta.path if graph is not None else None

        def fit(w: Weight, source: Source) -> Transform:
            if _hessian(graph, w, options) is not None:  # compensation needs the whole tensor at once
                a = np.concatenate([c.reshape(-1) for c in source_chunks(source, w.size)]).reshape(w.shape)
                done = _quantize(w, a, options, path, graph)
                flat = a.reshape(-1) if done is None else done[0].reshape(-1)
                return lambda c, start: flat[start : start + c.size].reshape(c.shape).astype(c.dtype)
            fitted = _fit(w, source, options, path, entry_weights(graph, w, options))
            if fitted is None:
                return lambda c, start: c

            def transform(c: np.ndarray, start: int) -> np.ndarray:
                return fitted.values(c.reshape(-1), start).astype(c.dtype).reshape(c.shape)

            return transform

        return fit


def _quantize(
    w: Weight, a: np.ndarray, options: RDOQ.Options, path: str | None, graph: Graph | None
) -> tuple[np.ndarray, _Fitted, np.ndarray] | None:
    """`_whole`, or `_compensated` where ``compensate`` is asked and the weight has an H."""
    weights = entry_weights(graph, w, options)
    h = _hessian(graph, w, options)
    if h is None:
        return _whole(w, a, options, path, weights)
    return _compensated(w, a, options, path, weights, h)


def _hessian(graph: Graph | None, w: Weight, options: RDOQ.Options) -> np.ndarray | None:
    """The (groups, d, d) input second moments of ``w`` when compensation applies, else None."""
    if not options.compensate or graph is None:
        return None
    h = graph.meta.extra.get(HESSIAN, {}).get(w.name)
    if h is None or len(w.shape) < 2 or h.ndim != 3:
        return None
    g, d = h.shape[0], math.prod(w.shape[1:])
    if g < 1 or w.shape[0] % g or h.shape[1:] != (d, d):
        return None
    return h


def _compensated(
    w: Weight,
    a: np.ndarray,
    options: RDOQ.Options,
    path: str | None,
    weights: np.ndarray | None,
    h: np.ndarray,
) -> tuple[np.ndarray, _Fitted, np.ndarray] | None:
    """GPTQ with rdoq's level choice: each group's rows, column by column (see the module's text)."""
    plain = _whole(w, a, options, path, weights)  # the rate model, and the grid its levels refit
    if plain is None:
        return None
    fitted = plain[1]
    step = fitted.grid_step
    decide = replace(fitted, abs_step=step)  # levels chosen on the grid the values are written on
    rows = a.shape[0]
    m = a.reshape(rows, -1).astype(np.float64)
    wts = None if weights is None else weights.reshape(rows, -1)
    levels = np.zeros(m.shape, np.int64)
    per = rows // h.shape[0]
    for k in range(h.shape[0]):
        sl = slice(k * per, (k + 1) * per)
        levels[sl] = _gptq(m[sl], h[k], decide, None if wts is None else wts[sl])
    new = grid_values(levels, step).astype(a.dtype).reshape(a.shape)
    return new, decide, levels.reshape(-1)


# H's prepared factor by the H array (kept, so that its id is not reused): the search quantizes one
# tensor at some twenty steps, and the factor was 40 % of the compensated levels' time (vggmini)
_FACTORS: OrderedDict[int, tuple[np.ndarray, np.ndarray, np.ndarray | None]] = OrderedDict()
_FACTORS_BYTES = 256 << 20  # factors kept at most (a 2,304-column one is 42 MB)


def _factor(h: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """The columns no sample feeds, and ``U`` upper with ``U.T @ U`` the inverse of the damped H
    (None where it is not positive definite even damped)."""
    hit = _FACTORS.get(id(h))
    if hit is not None and hit[0] is h:
        _FACTORS.move_to_end(id(h))
        return hit[1], hit[2]
    hd = h.copy()
    dead = np.diag(hd) <= 0
    hd[dead, dead] = 1.0
    idx = np.arange(hd.shape[0])
    hd[idx, idx] += COMPENSATE_DAMP * float(np.mean(np.diag(hd)))
    u: np.ndarray | None
    try:
        u = np.linalg.cholesky(np.linalg.inv(hd)).T
    except np.linalg.LinAlgError:
        u = None
    _FACTORS[id(h)] = (h, dead, u)
    while (
        len(_FACTORS) > 1
        and sum(0 if f[2] is None else f[2].nbytes for f in _FACTORS.values()) > _FACTORS_BYTES
    ):
        _FACTORS.popitem(last=False)
    return dead, u


def _gptq(m: np.ndarray, h: np.ndarray, decide: _Fitted, wts: np.ndarray | None) -> np.ndarray:
    """The levels of rows ``m`` (r, d) fed inputs of second moments ``h`` (d, d)."""
    dead, u = _factor(h)
    m = m.copy()
    m[:, dead] = 0.0  # no sample feeds these columns: they cost bits and do nothing on the data
    step = float(decide.grid_step)
    out = np.empty(m.shape, np.int64)
    d = m.shape[1]
    if u is None:  # plain levels
        for j in range(d):
            out[:, j] = decide._levels(m[:, j].astype(np.float32), None if wts is None else wts[:, j])
        return out
    for i1 in range(0, d, COMPENSATE_BLOCK):
        i2 = min(i1 + COMPENSATE_BLOCK, d)
        block = m[:, i1:i2].copy()
        err = np.zeros_like(block)
        for j in range(i2 - i1):
            col = block[:, j]
            lv = decide._levels(col.astype(np.float32), None if wts is None else wts[:, i1 + j])
            out[:, i1 + j] = lv
            e = (col - lv.astype(np.float64) * step) / u[i1 + j, i1 + j]
            block[:, j:] -= np.outer(e, u[i1 + j, i1 + j : i2])
            err[:, j] = e
        m[:, i2:] -= err @ u[i1:i2, i2:]
    return out


def _whole(
    w: Weight, a: np.ndarray, options: RDOQ.Options, path: str | None, weights: np.ndarray | None
) -> tuple[np.ndarray, _Fitted, np.ndarray] | None:
    """(new array, quantizer, levels) of a C-contiguous ``a``; the levels are chosen once and
    serve both the refit and the output (`_fit`'s streaming refit chooses them twice)."""
    flat = a.reshape(-1)
    fitted = _fit(w, lambda start, stop: flat[start:stop], options, path, weights, refit=False)
    if fitted is None:
        return None
    levels = fitted.levels(flat)
    if options.refit and fitted.model is not None:
        # Summed over the pieces `_fit`'s streaming refit reads: the same float sum, the same step.
        wl = sum(
            float(flat[i : i + CHUNK].astype(np.float64) @ levels[i : i + CHUNK].astype(np.float64))
            for i in range(0, flat.size, CHUNK)
        )
        fitted = _refitted(fitted, wl)
    return grid_values(levels, fitted.grid_step).astype(a.dtype).reshape(a.shape), fitted, levels


def _fit(
    w: Weight,
    source: Source,
    options: RDOQ.Options,
    path: str | None,
    weights: np.ndarray | None = None,
    *,
    refit: bool = True,
) -> _Fitted | None:
    """The step and rate model of one weight, read from ``source`` a piece at a time; None when the
    weight is empty or all zero (left as it is). ``refit=False`` leaves `options.refit` to the caller."""

    def pieces() -> Iterator[np.ndarray]:
        return source_chunks(source, w.size)

    sq, amax = 0.0, 0.0
    for c in pieces():
        if c.size and not np.isfinite(c).all():
            raise UnsupportedError(
                f"weight {w.name!r} holds NaN or infinite values, which cannot be quantized",
                path=path or None,
                hint="Fix or retrain the model; leave this weight out of the selection",
            )
        c64 = c.astype(np.float64)
        sq += float(c64 @ c64)
        amax = max(amax, float(np.abs(c64).max(initial=0.0)))
    if w.size == 0 or sq == 0.0:
        return None
    rms = float(np.sqrt(sq / w.size))
    abs_step = np.float32(options.step * rms)
    if not (np.isfinite(abs_step) and abs_step > 0):
        raise UsageError(
            f"rdoq: step {options.step} times weight {w.name!r}'s RMS {rms:g} is not a positive float32",
            hint="Choose a step that keeps step * rms within float32's range",
        )
    top = int(np.rint(amax / float(abs_step))) + 1
    if top >= MAX_LEVEL:
        raise UsageError(
            f"rdoq: step {options.step} gives weight {w.name!r} levels up to {top}, beyond 2**30",
            hint="Use a larger step",
        )
    # fisher without a sensitivity for this weight (no --data, or not class scores): magnitude
    magnitude = options.weighting == "magnitude" or (options.weighting == "fisher" and weights is None)
    lam = options.lam if w.size >= options.min_size else 0.0
    fitted = _Fitted(abs_step, rms, sq, None, lam, magnitude, abs_step, weights)
    if lam == 0.0:
        return fitted
    for _ in range(options.iters):
        counts = _counts(fitted, pieces, max(1, w.size // RATE_SAMPLE))
        model = RateModel(counts)
        model.extend_table(top)
        fitted = _Fitted(abs_step, rms, sq, model, lam, magnitude, abs_step, weights)
    if not (refit and options.refit):
        return fitted
    wl, start = 0.0, 0
    for c in pieces():
        flat = c.reshape(-1)
        wl += float(flat.astype(np.float64) @ fitted.levels(flat, start).astype(np.float64))
        start += flat.size
    return _refitted(fitted, wl)


def entry_weights(graph: Graph | None, w: Weight, options: RDOQ.Options) -> np.ndarray | None:
    """The fisher weighting's flat per-entry weights of ``w``: its squared gradients (which compress
    puts in ``graph.meta.extra[FISHER]``) to the power ``fisher_power``, scaled to mean 1, at
    least FISHER_FLOOR; None where there are none."""
    if options.weighting != "fisher" or graph is None:
        return None
    power = options.fisher_power
    f = graph.meta.extra.get(FISHER, {}).get(w.name)
    if f is None or f.size != w.size:
        return None
    f = np.asarray(f, dtype=np.float64).reshape(-1)
    mean = float(f.mean())
    if not (math.isfinite(mean) and mean > 0):
        return None
    r = (f / mean) ** power if power != 1.0 else f / mean
    return np.maximum(r / float(r.mean()), FISHER_FLOOR)


def _refitted(fitted: _Fitted, wl: float) -> _Fitted:
    """``fitted`` with the grid step w.w / w.l, ``wl`` the dot product of the weight and its levels."""
    # Levels pulled toward zero shrink the tensor along itself, so every output shrinks alike: a
    # coherent error where rounding errors average out. The scale s at which the regression of
    # s * l on w has slope 1 removes it; the least-squares scale w.l / l.l would not (at coarse
    # steps it is below abs_step and shrinks further: measured on vggmini and lenet300).
    grid = np.float32(fitted.sq / wl) if wl > 0 else fitted.abs_step
    if not (np.isfinite(grid) and grid > 0):  # levels all 0, or an absurd fit: keep the step
        grid = fitted.abs_step
    return replace(fitted, grid_step=grid)


def _counts(fitted: _Fitted, pieces: Callable[[], Iterator[np.ndarray]], stride: int) -> Counts:
    """Flag statistics of the levels of every ``stride``-th entry (the pieces in order)."""
    total = Counts.zero()
    start = 0
    for c in pieces():
        flat = c.reshape(-1)
        first = (-start) % stride
        total = total + Counts.of(fitted.levels(flat[first::stride], start + first, stride))
        start += flat.size
    return total
