"""Former home of the reference executor, now `nncompress.ir.interpreter` (the run loop) and
`nncompress.ir.ops` (the ops): kept so that ``from nncompress.ir.execute import run`` still works
while the tests of the loaders and of compress, edited elsewhere, move to the new path.
New code imports `nncompress.ir.interpreter`."""

from __future__ import annotations

from nncompress.ir.interpreter import run

__all__ = ["run"]
