"""A deployable TorchScript file of an artifact's model whose weights stay compressed in memory.

``nncompress decompress ART.nnc -o model.pt --keep-compressed`` writes what `save_torchscript`
makes: the artifact's graph as a `nncompress.torch.graph.GraphModule` whose compressed slots are
replaced by inference-only twins holding just what the product needs (`slim`), traced with
``torch.jit.trace`` and saved. The file loads with plain ``torch.jit.load`` (nncompress need not be
installed: a traced module is TorchScript code and tensors, no Python classes) and its tensors are
the compressed arrays, decoded only as far as torch computes on them:

| format | held in memory | product |
|---|---|---|
| dense | the matrix | GEMM |
| csr, csc, coo | CSR: int32 row pointers, int16 columns (int32 past 32767 columns), float32 values | ``torch.sparse.mm`` |
| im, ham, sham, cser, cabac | the codebook, and per listed cell its int8/int16/int32 code: the nonzero cells in CSR, or every cell where more than half are nonzero (im, ham, cabac) | gather, then CSR product (or decode + GEMM) |
| lowrank | A, B | ``(x @ B.T) @ A.T`` |
| psm | each factor in CSR | the factors right to left |
| sss | the stage matrices | the state recursions |
| dct | the kept coefficients in CSR, the spectrum weights | FFTs around a CSR product |

A Dense or Gemm node multiplies on that data; a Conv (or any other use) decodes its kernel when it
runs, and frees it after. Why not torch.export (.pt2): its fake-tensor pass cannot build the
sparse CSR tensors every sparse product here makes (torch 2.13: a lowrank model exports, a csr one
fails in ``aten.sparse_compressed_tensor``); a traced module is what ``torch.jit.load`` (and C++
``torch::jit::load``) runs.

The trace runs with a batch of 2 and checks the result with batch 1 and 3 against the eager
module, so the file takes any batch size; ``keep_compressed=False`` writes the same module with
every compressed slot decoded to a dense matrix (the baseline the benchmark compares with).
"""

from __future__ import annotations

import contextlib
import io
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch  # noqa: TID253 (this package is the torch one; nothing outside it imports it eagerly)
import torch.nn.functional as F  # noqa: TID253
from torch import Tensor, nn  # noqa: TID253

from nncompress.errors import InputError, UnsupportedError
from nncompress.formats.shaped import matrix_shape
from nncompress.ir.graph import Graph
from nncompress.torch._base import CompressedWeight
from nncompress.torch._sparse import Pattern
from nncompress.torch.shared import CabacWeight, SharedWeight
from nncompress.torch.structured import (
    DCTWeight,
    PSMWeight,
    SSSWeight,
    _dct_ortho,
    _dst_ortho,
    _idct_ortho,
    _idst_ortho,
)
from nncompress.torch.weights import DenseWeight, LowRankWeight, SparseWeight

__all__ = ["SlimWeight", "save_torchscript", "slim", "stored_tensor_bytes", "trace"]

TRACE_BATCH = 2  # not 1: a batch of 1 can be traced into a size that later batches break
CHECK_BATCHES = (1, 3)


# ---- the inference-only weights ----------------------------------------------------------------


def _codes(a: np.ndarray, top: int) -> Tensor:
    """Codes of magnitude below ``top`` (table indices, or cabac's signed levels) in the smallest
    signed dtype holding them; index_select takes int32 or int64, so a product widens them to int32
    for its own use and the narrow ones stay what is kept."""
    dt = np.int8 if top <= 127 else np.int16 if top <= 32767 else np.int32
    return torch.from_numpy(np.ascontiguousarray(a, dtype=dt))


def _index32(a: np.ndarray | Tensor, n: int) -> Tensor:
    """CSR indices as int32 where they fit (torch's CSR kernels take int32 and int64 alike)."""
    t = a if isinstance(a, Tensor) else torch.from_numpy(np.asarray(a))
    return t.to(torch.int32 if n < 2**31 - 1 else torch.int64).contiguous()


class SlimWeight(nn.Module):
    """An inference-only weight: ``matmul(x)`` (``x @ M.T`` over x's last axis) and ``dense()``
    (the weight in the IR layout) on buffers only, the same calls `GraphModule` makes on a
    `CompressedWeight`."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.shape = tuple(int(s) for s in shape)
        self.n_out, self.n_in = matrix_shape(self.shape)

    def matmul(self, x: Tensor) -> Tensor:
        lead = x.shape[:-1]
        y = self._matmul2d(x.reshape(-1, self.n_in))
        return y.reshape(*lead, self.n_out)

    def forward(self, x: Tensor) -> Tensor:
        return self.matmul(x)

    def dense(self) -> Tensor:
        return self._matrix().reshape(self.shape)

    def _matmul2d(self, x: Tensor) -> Tensor:
        return x @ self._matrix().to(x.dtype).T

    def _matrix(self) -> Tensor:
        raise NotImplementedError


class SlimDense(SlimWeight):
    """A dense matrix (the dense format, or any weight decoded for the baseline)."""

    def __init__(self, shape: tuple[int, ...], m: Tensor) -> None:
        super().__init__(shape)
        self.register_buffer("m", m.detach().to(torch.float32).reshape(self.n_out, self.n_in).clone())

    m: Tensor

    def _matmul2d(self, x: Tensor) -> Tensor:
        return F.linear(x, self.m.to(x.dtype))

    def _matrix(self) -> Tensor:
        return self.m


class SlimCSR(nn.Module):
    """A fixed sparse pattern in CSR: int32 row pointers, int16 column indices (int32 past 32767
    columns, int64 past 2**31 entries)."""

    def __init__(self, p: Pattern) -> None:
        super().__init__()
        self.rows_, self.cols_ = p.shape
        self.register_buffer("crow", _index32(p.crow, p.nnz))
        # Columns at rest in int16 where they fit (half of int32): widened to the pointers' dtype
        # (torch's CSR kernels take int32 or int64, both arrays alike) for one product at a time.
        narrow = self.cols_ <= 32767 and p.nnz < 2**31 - 1
        self.register_buffer("col", p.cols.to(torch.int16) if narrow else _index32(p.cols, p.nnz))

    crow: Tensor
    col: Tensor

    def matrix(self, values: Tensor) -> Tensor:
        col = self.col.to(self.crow.dtype)
        return torch.sparse_csr_tensor(
            self.crow, col, values, (self.rows_, self.cols_), check_invariants=False
        )

    def matmul(self, x: Tensor, values: Tensor) -> Tensor:
        """``x @ S.T`` for x (B, cols)."""
        if self.col.numel() == 0:
            return x.new_zeros((x.shape[0], self.rows_))
        # S @ x.T with x.T contiguous: the layout torch's CSR kernel is fastest on.
        return torch.sparse.mm(self.matrix(values.to(x.dtype)), x.T.contiguous()).T

    def to_dense(self, values: Tensor) -> Tensor:
        return self.matrix(values).to_dense()


class SlimSparse(SlimWeight):
    """csr, csc, coo: the values on their CSR pattern."""

    def __init__(self, w: SparseWeight) -> None:
        super().__init__(w.shape)
        self.pattern = SlimCSR(w.pattern)
        self.register_buffer("values", w.values.detach().clone())

    values: Tensor

    def _matmul2d(self, x: Tensor) -> Tensor:
        return self.pattern.matmul(x, self.values)

    def _matrix(self) -> Tensor:
        return self.pattern.to_dense(self.values)


class SlimShared(SlimWeight):
    """im, ham, sham, cser, cabac: a table of shared values and a small code per listed cell.

    A code indexes the table (cabac on a grid: the code is the integer level, the table the step).
    Cells not listed hold 0, or the table entry ``fill`` (cser's implicit value). Where more than
    half of the cells are listed in a format that codes every cell (im, ham, cabac), every cell gets
    a code, an extra table entry 0 serving the unlisted ones, and the product decodes and runs a GEMM
    (as the training module does at that density)."""

    def __init__(self, w: SharedWeight) -> None:
        super().__init__(w.shape)
        table = w.values().detach().to(torch.float32)
        p = w.pattern
        level = w.level if isinstance(w, CabacWeight) else None
        grid = level is not None  # cabac on a grid: the codes are the levels, the table the step
        codes = (w.member if level is None else level.to(torch.int64)).cpu().numpy()
        top = int(np.abs(codes).max(initial=0)) + 1 if grid else table.numel() + 1
        self.grid, self.fill = grid, w.fill
        self.full = w.dense_above is not None and p.nnz > w.dense_above * self.n_out * self.n_in
        if self.full:
            cells = np.full(self.n_out * self.n_in, 0 if grid else table.numel(), np.int64)
            cells[p.rows.cpu().numpy() * self.n_in + p.cols.cpu().numpy()] = codes
            codes = cells
            if not grid:
                table = torch.cat([table, table.new_zeros(1)])
        self.register_buffer("codes", _codes(codes, top))
        self.register_buffer("table", table.clone())
        self.pattern = None if self.full else SlimCSR(p)

    codes: Tensor
    table: Tensor

    def _cell_values(self) -> Tensor:
        if self.grid:
            return self.codes.to(torch.float32) * self.table[0]
        return self.table.index_select(0, self.codes.to(torch.int32))

    def _matmul2d(self, x: Tensor) -> Tensor:
        if self.pattern is None:
            return F.linear(x, self._matrix().to(x.dtype))
        v = self._cell_values().to(x.dtype)
        if self.fill is None:
            return self.pattern.matmul(x, v)
        # cser: a listed cell replaces the implicit value that the row sum counted
        f = self.table[self.fill].to(x.dtype)
        return self.pattern.matmul(x, v - f) + f * x.sum(dim=1, keepdim=True)

    def _matrix(self) -> Tensor:
        v = self._cell_values()
        if self.pattern is None:
            return v.reshape(self.n_out, self.n_in)
        m = self.pattern.to_dense(v)
        return m if self.fill is None else m + self._fill_rest(m)

    def _fill_rest(self, m: Tensor) -> Tensor:
        """cser's implicit value in the cells not listed (a listed cell may hold any value)."""
        assert self.pattern is not None and self.fill is not None
        listed = self.pattern.to_dense(torch.ones_like(self.codes, dtype=m.dtype))
        return (1 - listed) * self.table[self.fill]


class SlimLowRank(SlimWeight):
    """lowrank: the two factors."""

    def __init__(self, w: LowRankWeight) -> None:
        super().__init__(w.shape)
        self.register_buffer("a", w.a.detach().clone())
        self.register_buffer("b", w.b.detach().clone())

    a: Tensor
    b: Tensor

    def _matmul2d(self, x: Tensor) -> Tensor:
        return (x @ self.b.T.to(x.dtype)) @ self.a.T.to(x.dtype)

    def _matrix(self) -> Tensor:
        return self.a @ self.b


class SlimPSM(SlimWeight):
    """psm: the sparse factors, applied right to left."""

    def __init__(self, w: PSMWeight) -> None:
        super().__init__(w.shape)
        self.patterns = nn.ModuleList(SlimCSR(cast(Pattern, p)) for p in w.patterns)
        for i, v in enumerate(w.values):
            self.register_buffer(f"v{i}", v.detach().clone())

    def _factors(self) -> list[tuple[SlimCSR, Tensor]]:
        return [(cast(SlimCSR, p), getattr(self, f"v{i}")) for i, p in enumerate(self.patterns)]

    def _matmul2d(self, x: Tensor) -> Tensor:
        for p, v in reversed(self._factors()):
            x = p.matmul(x, v)
        return x

    def _matrix(self) -> Tensor:
        out: Tensor | None = None
        for p, v in self._factors():
            m = p.to_dense(v)
            out = m if out is None else out @ m
        assert out is not None
        return out


class SlimDCT(SlimWeight):
    """dct: the kept coefficients in CSR over the coefficient grid, products in the transform domain
    (`nncompress.torch.structured.DCTWeight`'s, on the slim pattern)."""

    def __init__(self, w: DCTWeight) -> None:
        super().__init__(w.shape)
        self.kernel = w.kernel
        self.pattern = SlimCSR(w.pattern)
        self.grid = w.pattern.shape
        self.register_buffer("values", w.values.detach().clone())
        self.register_buffer("spectrum", w.spectrum.detach().clone())

    values: Tensor
    spectrum: Tensor

    def _matmul2d(self, x: Tensor) -> Tensor:
        v = self.values.to(x.dtype)
        mm = self.pattern.matmul
        if self.kernel == "dft":
            t = torch.conj(torch.fft.rfft(x, dim=1)) * self.spectrum.to(x.dtype)
            tr, ti = t.real.contiguous(), t.imag.contiguous()
            vr, vi = v[:, 0].contiguous(), v[:, 1].contiguous()
            ur = mm(tr, vr) - mm(ti, vi)
            ui = mm(tr, vi) + mm(ti, vr)
            return torch.fft.ifft(torch.complex(ur, ui), dim=1).real
        fwd, inv = (_dct_ortho, _idct_ortho) if self.kernel == "dct" else (_dst_ortho, _idst_ortho)
        return inv(mm(fwd(x, 1), v), 1)

    def _matrix(self) -> Tensor:
        v = self.values
        if self.kernel == "dft":
            c = torch.complex(
                self.pattern.to_dense(v[:, 0].contiguous()), self.pattern.to_dense(v[:, 1].contiguous())
            )
            return torch.fft.irfft2(c, s=(self.n_out, self.n_in))
        inv = _idct_ortho if self.kernel == "dct" else _idst_ortho
        return inv(inv(self.pattern.to_dense(v), 0), 1)


class SlimSSS(SlimWeight):
    """sss: the stage matrices as buffers, the recursion of `SSSWeight`."""

    def __init__(self, w: SSSWeight) -> None:
        super().__init__(w.shape)
        self.inner = w
        w.requires_grad_(False)

    def _matmul2d(self, x: Tensor) -> Tensor:
        return self.inner._matmul2d(x)

    def _matrix(self) -> Tensor:
        return self.inner._matrix()


def slim(w: CompressedWeight, *, keep_compressed: bool = True) -> SlimWeight:
    """The inference-only twin of ``w`` (see the module docstring); with ``keep_compressed=False``
    the decoded dense matrix."""
    if not keep_compressed or isinstance(w, DenseWeight):
        with torch.no_grad():
            return SlimDense(w.shape, w.dense())
    if isinstance(w, SparseWeight):
        return SlimSparse(w)
    if isinstance(w, SharedWeight):
        return SlimShared(w)
    if isinstance(w, LowRankWeight):
        return SlimLowRank(w)
    if isinstance(w, PSMWeight):
        return SlimPSM(w)
    if isinstance(w, DCTWeight):
        return SlimDCT(w)
    if isinstance(w, SSSWeight):
        return SlimSSS(w)
    raise UnsupportedError(f"no inference form for the {w.name} format's torch module")


# ---- the traced module -------------------------------------------------------------------------


def _swap(module: nn.Module, keep_compressed: bool) -> int:
    """Replace every `CompressedWeight` below ``module`` by its `slim` twin; the number replaced."""
    n = 0
    for name, child in list(module.named_children()):
        if isinstance(child, CompressedWeight):
            setattr(module, name, slim(child, keep_compressed=keep_compressed))
            n += 1
        else:
            n += _swap(child, keep_compressed)
    return n


def _examples(graph: Graph, batch: int, seed: int = 0) -> tuple[list[str], list[Tensor]]:
    """Seeded inputs of ``batch`` samples, in the graph's input order."""
    from nncompress.inputs import random_data, signatures

    specs, _ = signatures(graph)
    data = random_data(specs, batch, seed)
    names = [s.name for s in specs]
    return names, [torch.from_numpy(np.ascontiguousarray(data.arrays[n])) for n in names]


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    # TracerWarnings name every Python int the trace fixes; the batch check below is what decides
    # whether one of them mattered. torch 2.10+ also warns that TorchScript is deprecated.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _flat(out: Any) -> list[Tensor]:
    return list(out) if isinstance(out, (tuple, list)) else [out]


def _same(a: list[Tensor], b: list[Tensor], tol: float = 1e-5) -> bool:
    if len(a) != len(b):
        return False
    for x, y in zip(a, b, strict=True):
        if x.shape != y.shape:
            return False
        if x.is_floating_point():
            scale = float(y.abs().max()) if y.numel() else 0.0
            if y.numel() and float((x - y).abs().max()) > tol * max(scale, 1e-30):
                return False
        elif not torch.equal(x, y):
            return False
    return True


def trace(graph: Graph, *, keep_compressed: bool = True) -> torch.jit.ScriptModule:
    """The graph as a traced TorchScript module, its compressed slots as `slim` weights (dense
    matrices with ``keep_compressed=False``); checked at other batch sizes against the eager run."""
    from nncompress.torch.graph import to_torch

    model = to_torch(graph).eval()
    model.requires_grad_(False)  # inference: no autograd records in the products
    _swap(model, keep_compressed)
    _, xs = _examples(graph, TRACE_BATCH)
    path = graph.meta.path or None
    with torch.no_grad(), _quiet():
        try:
            traced = torch.jit.trace(model, tuple(xs), check_trace=False, strict=False)
        except (RuntimeError, ValueError, TypeError) as e:
            raise UnsupportedError(
                f"the model does not trace to TorchScript: {' '.join(str(e).split())[:300]}", path=path
            ) from e
        for batch in CHECK_BATCHES:
            _, ys = _examples(graph, batch, seed=batch)
            try:
                got = _flat(traced(*ys))
            except RuntimeError as e:
                raise UnsupportedError(
                    f"the traced model does not run a batch of {batch}: {' '.join(str(e).split())[:200]}",
                    path=path,
                    hint="the graph fixes its batch size (a Reshape to a constant shape, say)",
                ) from e
            if not _same(got, _flat(model(*ys))):
                raise UnsupportedError(
                    f"the traced model computes another result for a batch of {batch} than for {TRACE_BATCH}",
                    path=path,
                    hint="the graph reads its batch size as a constant (Shape, Reshape)",
                )
    return cast(torch.jit.ScriptModule, traced)


def save_torchscript(
    graph: Graph, out: str | os.PathLike[str], *, keep_compressed: bool = True, force: bool = False
) -> Path:
    """Write ``graph`` as a TorchScript file (see the module docstring) at ``out``, atomically."""
    from nncompress.io._atomic import atomic_path, check_output

    p = check_output(out, force=force)
    if not graph.has_graph:
        raise InputError("the artifact holds weights only: there is no graph to trace", path=str(p))
    module = trace(graph, keep_compressed=keep_compressed)
    buf = io.BytesIO()
    with _quiet():
        torch.jit.save(module, buf)
    with atomic_path(p) as tmp:
        tmp.write_bytes(buf.getvalue())
    return p


def stored_tensor_bytes(path: str | os.PathLike[str]) -> int:
    """The bytes of the tensors a TorchScript archive stores (its ``data/`` records, constants too)."""
    import zipfile

    with zipfile.ZipFile(path) as z:
        return sum(i.file_size for i in z.infolist() if "/data/" in i.filename or "/constants/" in i.filename)
