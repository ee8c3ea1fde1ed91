"""How the library says what it is doing while it works: stages, each with an optional total.

A long call (compress, eval, bench, inspect, decompress, sensitivity) takes an optional
``progress`` keyword: an object with ``stage(name, total=None)`` and ``advance(amount)``. The
library calls ``stage`` when it starts a new step ("loading vgg16.onnx", "encoding", "fidelity
check") with the amount of work it will report for that step (weights, samples, checks), or None
when it cannot know; then ``advance`` as work is done. Stages do not nest: a new one replaces the
last. The library never prints; the CLI draws a bar on a terminal (`nncompress.cli._common`), and a
caller of the Python API may pass anything with these two methods (a log, a notebook widget).

    class Log:
        def stage(self, name, total=None): print(name, total)
        def advance(self, amount=1): pass

    nncompress.compress("model.onnx", progress=Log())

What a stage counts is fixed: encoding counts weights (numbers, not tensors), so the bar moves with
the work rather than jumping on small tensors and stalling on large ones; runs count samples.
"""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    """What the library reports progress to."""

    def stage(self, name: str, total: float | None = None) -> None:
        """A new step begins; ``total`` is the amount `advance` will add up to (None: unknown)."""

    def advance(self, amount: float = 1) -> None:
        """``amount`` more of the current stage's work is done."""


class Silent:
    """The default: progress goes nowhere."""

    def stage(self, name: str, total: float | None = None) -> None:
        pass

    def advance(self, amount: float = 1) -> None:
        pass


SILENT: Progress = Silent()
