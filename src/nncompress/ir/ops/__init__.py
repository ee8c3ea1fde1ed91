"""The reference executor's ops (docs/ir.md lists them), one module per family, and their registry.

`OPS` maps an op name of the default ONNX domain to its function ``(ins, attrs) -> result``
(`nncompress.ir.ops._common`). The interpreter (`nncompress.ir.interpreter`) looks ops up here and
handles the two that need the graph itself: ``If`` (subgraphs) and the compressed-kernel path of
``Dense``. A new op goes in the module of its family, in that module's ``OPS``.
"""

from __future__ import annotations

from nncompress.ir.ops import elementwise, linear, norm, pool, reduce, shape
from nncompress.ir.ops._common import Arr, Attrs, Ins, OpFn, Result

__all__ = ["OPS", "Arr", "Attrs", "Ins", "OpFn", "Result"]


def _merge(*tables: dict[str, OpFn]) -> dict[str, OpFn]:
    # One name in two families would leave which one runs to the import order: refuse it outright.
    ops: dict[str, OpFn] = {}
    for table in tables:
        twice = sorted(set(ops) & set(table))
        if twice:
            raise RuntimeError(f"ops defined in two families: {twice}")
        ops.update(table)
    return ops


OPS: dict[str, OpFn] = _merge(linear.OPS, norm.OPS, elementwise.OPS, pool.OPS, shape.OPS, reduce.OPS)
