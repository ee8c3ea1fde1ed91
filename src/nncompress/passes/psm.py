"""``psm``: fit a product of sparse matrices to each selected weight (the `PSM` format).

PSM-nets, Giffon et al. 2021: ``W ~ S_1 S_2 ... S_Q``, with the factor shapes of `factor_shapes`.

Each factor is constrained ``splincol(s)``: a cell survives when it is among the s largest of its row or
of its column, so a factor (a, b) holds at most ``s * (a + b)`` nonzeros. The largest s with ``s *
sum(a_i + b_i) <= budget * out * in`` is taken (at least 1), so the stored values never exceed the
budget, and the factors are fitted by:

- ``solver="palm"``: our numpy PALM (proximal alternating linearized minimization): a gradient step on one
  factor at a time with step ``1 / (||left||_2^2 ||right||_2^2)``, then the hard-thresholding projection;
- ``solver="pyfaust"``: ``pyfaust.fact.palm4msa`` with the same splincol constraints (the ``psm`` extra);
  its scale lambda is folded into the first factor;
- ``solver="hierarchical"``: ``pyfaust.fact.hierarchical``, Q - 1 splits from the left, each residual
  constrained to ``splincol(s * factors_left)`` until the last, which gets ``splincol(s)`` like the others.

pyfaust's progress lines go to the C stdout; they are sent to stderr so that ``--json`` output stays clean.
Example: ``nncompress compress model.onnx --pipeline psm:factors=3:iterations=200``.
"""

from __future__ import annotations

import contextlib
import os
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import numpy as np

from nncompress.errors import UnsupportedError
from nncompress.formats._lowparam import pack_csr
from nncompress.formats.base import as_matrix
from nncompress.formats.psm import PSM, factor_shapes
from nncompress.options import option
from nncompress.passes._structured import BudgetOptions, Structured


def splincol(m: np.ndarray, s: int) -> np.ndarray:
    """``m`` with every cell zeroed that is neither among the s largest of its row nor of its column."""
    a = np.abs(m)
    keep = np.zeros(m.shape, dtype=bool)
    rows, cols = m.shape
    if s >= cols or s >= rows:
        return m.copy()
    top_r = np.argpartition(-a, s - 1, axis=1)[:, :s]
    keep[np.arange(rows)[:, None], top_r] = True
    top_c = np.argpartition(-a, s - 1, axis=0)[:s]
    keep[top_c, np.arange(cols)[None, :]] = True
    return np.where(keep, m, 0.0)


def _chain(fs: list[np.ndarray], lo: int, hi: int) -> np.ndarray | None:
    """The product fs[lo] @ ... @ fs[hi - 1]; None for the identity (an empty range).

    The identity is never built: multiplying by it was most of PALM's time on wide layers (a 256 x
    2304 kernel's right chain is a 2304 x 2304 eye), and leaving it out changes no bit (x * 1 + 0 * y
    is x in IEEE arithmetic for finite weights).
    """
    out: np.ndarray | None = None
    for f in fs[lo:hi]:
        out = f if out is None else out @ f
    return out


def _norm2(
    m: np.ndarray | None, n: int, vecs: dict[tuple[str, int], np.ndarray], key: tuple[str, int]
) -> float:
    """The spectral norm of m by a few power iterations, warm-started from the last call's vector
    (m None: the n x n identity, iterated the same way so that the figure is the same to the bit)."""
    v = vecs.get(key)
    if v is None or v.size != (n if m is None else m.shape[1]):
        v = np.ones(n if m is None else m.shape[1])
    sigma = 0.0
    for _ in range(8):
        u = v if m is None else m.T @ (m @ v)
        sigma = float(np.linalg.norm(u))
        if sigma == 0:
            return 0.0
        v = u / sigma
    vecs[key] = v
    return float(np.sqrt(sigma))


def palm(w: np.ndarray, q: int, s: int, iterations: int, seed: int) -> list[np.ndarray]:
    """Our PALM with hard thresholding: dense float64 factors of W (W ~ fs[0] @ ... @ fs[-1])."""
    shapes = factor_shapes(w.shape, q)
    rng = np.random.default_rng(seed)
    # The first factor starts at zero (its first step makes it a projection of W), the others near identity;
    # a little noise breaks the symmetry of the identity so rows can exchange mass.
    fs = [np.zeros(shapes[0])] + [np.eye(*sh) + 1e-3 * rng.standard_normal(sh) for sh in shapes[1:]]
    vecs: dict[tuple[str, int], np.ndarray] = {}
    for _ in range(iterations):
        for i in range(q):
            left, right = _chain(fs, 0, i), _chain(fs, i + 1, q)
            lip = (
                _norm2(left, w.shape[0], vecs, ("l", i)) * _norm2(right, shapes[i][1], vecs, ("r", i))
            ) ** 2 * 1.1
            if lip == 0:
                continue
            r = fs[i] if left is None else left @ fs[i]
            r = (r if right is None else r @ right) - w
            r = r if left is None else left.T @ r
            grad = r if right is None else r @ right.T
            fs[i] = splincol(fs[i] - grad / lip, s)
    return fs


def _flush_c_stdio() -> None:
    import ctypes

    try:
        ctypes.CDLL(None).fflush(None)
    except (OSError, AttributeError):
        pass


@contextlib.contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """Point file descriptor 1 at stderr for the duration: pyfaust's C++ prints progress there."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        yield
    finally:
        _flush_c_stdio()  # C stdout is block-buffered when piped: flush it before fd 1 goes back
        os.dup2(saved, 1)
        os.close(saved)


def faust(
    w: np.ndarray, q: int, s: int, iterations: int, seed: int, hierarchical: bool = False
) -> list[np.ndarray]:
    """pyfaust's palm4msa (or hierarchical) with splincol constraints; lambda folded into the first factor."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "Did not find einops": an optional speed-up of another module
            import pyfaust
            from pyfaust.fact import hierarchical as faust_hierarchical
            from pyfaust.fact import palm4msa
            from pyfaust.factparams import ParamsHierarchical, ParamsPalm4MSA, StoppingCriterion
            from pyfaust.proj import splincol as faust_splincol
    except ImportError:
        raise UnsupportedError(
            "psm solvers 'pyfaust' and 'hierarchical' need pyfaust",
            hint="pip install 'nncompress[psm]' or use solver='palm'",
        ) from None
    pyfaust.seed(seed)
    shapes = factor_shapes(w.shape, q)
    stop = StoppingCriterion(num_its=iterations)
    with _stdout_to_stderr():
        if hierarchical and q > 1:
            facts = [faust_splincol(sh, s) for sh in shapes[:-1]]
            res = [faust_splincol(shapes[-1], s * (q - 1 - i)) for i in range(q - 1)]
            f = faust_hierarchical(
                w, ParamsHierarchical(facts, res, stop, StoppingCriterion(num_its=iterations))
            )
        else:
            f = palm4msa(w, ParamsPalm4MSA([faust_splincol(sh, s) for sh in shapes], stop))
    fs = (
        [
            np.asarray(
                f.factors(i).toarray() if hasattr(f.factors(i), "toarray") else f.factors(i), np.float64
            )
            for i in range(f.numfactors())
        ]
        if q > 1
        else [np.asarray(f.toarray(), np.float64)]
    )
    # Whether pyfaust left lambda in its factors differs across versions: rescale to its own product.
    p, target = _chain(fs, 0, len(fs)), np.asarray(f.toarray(), np.float64)
    assert p is not None  # q >= 1 factors
    pp = float(np.vdot(p, p))
    if pp > 0:
        fs[0] = fs[0] * (float(np.vdot(target, p)) / pp)
    return fs


class PSMPass(Structured):
    """A product of sparse factors within a parameter budget (see the module docstring)."""

    name = "psm"

    @dataclass(frozen=True)
    class Options(BudgetOptions):
        budget: float = option(0.2, lo=0.0, hi=1.0, doc="share of the matrix's floats stored, in (0, 1]")
        factors: int = option(2, lo=1, doc="number of sparse factors Q")
        iterations: int = option(100, lo=1, doc="solver iterations")
        solver: Literal["palm", "pyfaust", "hierarchical"] = option("palm", doc="see the module docstring")
        seed: int = option(0, lo=0, doc="seed of palm's start and of pyfaust")

    @classmethod
    def fit(cls, w: np.ndarray, options: PSMPass.Options) -> PSM:
        q, its, seed = int(options.factors), int(options.iterations), int(options.seed)
        a = as_matrix(w, cls.name, finite=True).astype(np.float64)
        shapes = factor_shapes(a.shape, q)
        s = max(1, int(options.budget * a.size // max(sum(x + y for x, y in shapes), 1)))
        if a.size == 0:
            fs = [np.zeros(sh) for sh in shapes]
        elif options.solver == "palm":
            fs = palm(a, q, s, its, seed)
        else:
            fs = faust(a, q, s, its, seed, hierarchical=options.solver == "hierarchical")
        packed = []
        for f in fs:
            f32 = f.astype(np.float32)
            rows, cols, col_idx, row_ptr = pack_csr(f32 != 0)
            packed.append((f32[rows, cols], col_idx, row_ptr))
        return PSM(a.shape, shapes[0][1] if q > 1 else min(a.shape), packed)
