"""``psm``: a product of sparse matrices (PSM-nets, Giffon et al. 2021), ``W ~ S_1 S_2 ... S_Q``.

The factors have shapes (out, k), (k, k), ..., (k, in) with k = min(out, in) (one factor (out, in) when
Q = 1). Each is constrained ``splincol(s)``: a cell survives when it is among the s largest of its row or
of its column, so a factor (a, b) holds at most ``s * (a + b)`` nonzeros. ``encode(w, budget=0.2,
factors=2, iterations=100, solver="palm", seed=0)`` takes the largest s with ``s * sum(a_i + b_i) <=
budget * out * in`` (at least 1), so the stored values never exceed the budget, and fits the factors by:

- ``solver="palm"``: our numpy PALM (proximal alternating linearized minimization): a gradient step on one
  factor at a time with step ``1 / (||left||_2^2 ||right||_2^2)``, then the hard-thresholding projection;
- ``solver="pyfaust"``: ``pyfaust.fact.palm4msa`` with the same splincol constraints (the ``psm`` extra);
  its scale lambda is folded into the first factor;
- ``solver="hierarchical"``: ``pyfaust.fact.hierarchical``, Q - 1 splits from the left, each residual
  constrained to ``splincol(s * factors_left)`` until the last, which gets ``splincol(s)`` like the others.

pyfaust's progress lines go to the C stdout; they are sent to stderr so that ``--json`` output stays clean.

Arrays, for each factor i = 0..Q-1, a CSR matrix: ``values{i}`` float32 (nnz_i,), ``col_idx{i}`` and
``row_ptr{i}`` in the narrowest unsigned dtypes. Meta: ``shape``, ``inner`` (k), ``nnz`` (list per factor).
``dot`` applies the factors right to left as sparse products; the product is never formed densely.
"""

from __future__ import annotations

import contextlib
import os
import sys
import warnings
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from nncompress.errors import InputError, UnsupportedError, UsageError
from nncompress.formats._lowparam import (
    check_budget,
    check_count,
    csr_dense,
    csr_matmul_t,
    load_csr,
    pack_csr,
)
from nncompress.formats.base import (
    Format,
    as_input,
    as_matrix,
    as_output,
    check_keys,
    float_array,
    meta_int,
    meta_shape,
    take_params,
)

SOLVERS = ("palm", "pyfaust", "hierarchical")


def factor_shapes(shape: tuple[int, int], q: int) -> list[tuple[int, int]]:
    """The shapes of Q factors whose product is (out, in)."""
    if q == 1:
        return [shape]
    k = min(shape)
    return [(shape[0], k)] + [(k, k)] * (q - 2) + [(k, shape[1])]


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


def _chain(fs: list[np.ndarray], lo: int, hi: int, n: int) -> np.ndarray:
    """The product fs[lo] @ ... @ fs[hi - 1], the identity (n, n) when empty."""
    out = np.eye(n)
    for f in fs[lo:hi]:
        out = out @ f
    return out


def _norm2(m: np.ndarray, vecs: dict[tuple[str, int], np.ndarray], key: tuple[str, int]) -> float:
    """The spectral norm of m by a few power iterations, warm-started from the last call's vector."""
    v = vecs.get(key)
    if v is None or v.size != m.shape[1]:
        v = np.ones(m.shape[1])
    sigma = 0.0
    for _ in range(8):
        u = m.T @ (m @ v)
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
            left = _chain(fs, 0, i, w.shape[0])
            right = _chain(fs, i + 1, q, shapes[i][1])
            lip = (_norm2(left, vecs, ("l", i)) * _norm2(right, vecs, ("r", i))) ** 2 * 1.1
            if lip == 0:
                continue
            grad = left.T @ (left @ fs[i] @ right - w) @ right.T
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
    p, target = _chain(fs, 0, len(fs), w.shape[0]), np.asarray(f.toarray(), np.float64)
    pp = float(np.vdot(p, p))
    if pp > 0:
        fs[0] = fs[0] * (float(np.vdot(target, p)) / pp)
    return fs


class PSM(Format):
    """A product of CSR sparse factors."""

    name = "psm"

    def __init__(
        self, shape: tuple[int, int], inner: int, factors: list[tuple[np.ndarray, np.ndarray, np.ndarray]]
    ) -> None:
        super().__init__(shape)
        self.inner, self.factors = inner, factors
        self._int = [(v.astype(np.float64), c.astype(np.int64), p.astype(np.int64)) for v, c, p in factors]

    @property
    def parameters(self) -> int:
        """Stored float count (index arrays not included)."""
        return int(sum(v.size for v, _, _ in self.factors))

    @classmethod
    def encode(cls, w: np.ndarray, **params: Any) -> PSM:
        p = take_params(cls.name, params, budget=0.2, factors=2, iterations=100, solver="palm", seed=0)
        budget = check_budget(cls.name, p["budget"])
        q = check_count(cls.name, "factors", p["factors"])
        its = check_count(cls.name, "iterations", p["iterations"])
        seed = check_count(cls.name, "seed", p["seed"], lo=0)
        if p["solver"] not in SOLVERS:
            raise UsageError(f"psm: solver={p['solver']!r} is not one of {', '.join(SOLVERS)}")
        a = as_matrix(w, cls.name, finite=True).astype(np.float64)
        shapes = factor_shapes(a.shape, q)
        s = max(1, int(budget * a.size // max(sum(x + y for x, y in shapes), 1)))
        if a.size == 0:
            fs = [np.zeros(sh) for sh in shapes]
        elif p["solver"] == "palm":
            fs = palm(a, q, s, its, seed)
        else:
            fs = faust(a, q, s, its, seed, hierarchical=p["solver"] == "hierarchical")
        packed = []
        for f in fs:
            f32 = f.astype(np.float32)
            rows, cols, col_idx, row_ptr = pack_csr(f32 != 0)
            packed.append((f32[rows, cols], col_idx, row_ptr))
        return cls(a.shape, shapes[0][1] if q > 1 else min(a.shape), packed)

    def _shapes(self) -> list[tuple[int, int]]:
        return factor_shapes(self.shape, len(self.factors))

    def to_dense(self) -> np.ndarray:
        out = np.eye(self.shape[0])
        for sh, (v, c, p) in zip(self._shapes(), self._int, strict=True):
            out = out @ csr_dense(sh, v, c, p)
        return out.astype(np.float32)

    def dot(self, x: np.ndarray) -> np.ndarray:
        xb, single = as_input(x, self)
        for v, c, p in reversed(self._int):
            xb = csr_matmul_t(xb, v, c, p)
        return as_output(xb, single)

    def arrays(self) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for i, (v, c, p) in enumerate(self.factors):
            out |= {f"values{i}": v, f"col_idx{i}": c, f"row_ptr{i}": p}
        return out

    def meta(self) -> dict[str, Any]:
        return {
            "shape": list(self.shape),
            "inner": self.inner,
            "nnz": [int(v.size) for v, _, _ in self.factors],
        }

    @classmethod
    def _from_arrays(cls, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> PSM:
        nnz = meta.get("nnz")
        if not isinstance(nnz, list) or not 1 <= len(nnz) <= 64:
            raise InputError(f"meta nnz={nnz!r} is not a list of 1 to 64 counts")
        names = {f"{k}{i}" for i in range(len(nnz)) for k in ("values", "col_idx", "row_ptr")}
        check_keys(arrays, meta, names, {"shape", "inner", "nnz"})
        shape = meta_shape(meta)
        inner = meta_int(meta, "inner", min(shape), min(shape))
        factors = []
        for i, sh in enumerate(factor_shapes(shape, len(nnz))):
            n = meta_int({f"nnz[{i}]": nnz[i]}, f"nnz[{i}]", 0, sh[0] * sh[1])
            values = float_array(arrays, f"values{i}", (n,), finite=True)
            load_csr(arrays, str(i), sh, n)
            factors.append((values, arrays[f"col_idx{i}"], arrays[f"row_ptr{i}"]))
        return cls(shape, inner, factors)
