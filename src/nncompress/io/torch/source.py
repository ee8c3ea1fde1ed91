"""The handle a graph loaded from a torch file keeps to it (``Graph.source``)."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Source"]


@dataclass
class Source:
    """What a writer needs to rebuild the file: the graph's ``source`` handle."""

    kind: str  # "state-dict" | "checkpoint" | "module" | "tensor" | "torchscript" | "torch-export"
    path: str
    legacy: bool = False
    trusted: bool = False
    key: str | None = None  # the checkpoint entry holding the weights (None: the top level)
    tensors: list[str] = field(default_factory=list)  # the file's tensor names the writer may replace
    extra_files: list[str] = field(default_factory=list)  # TorchScript extra/ members to keep
    drop: list[str] = field(default_factory=list)  # checkpoint entries left out when written (training state)
