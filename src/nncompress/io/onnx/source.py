"""What a graph loaded from ONNX remembers of its file: enough for the patching writer to find the
file and each weight's tensor in it again, and to tell whether the graph still matches the file.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nncompress.ir import Graph

__all__ = ["Locator", "Scope", "Source", "fingerprint"]

# where a tensor sits in the file: (node index, attribute, subgraph index or -1) from the top graph
Scope = tuple[tuple[int, str, int], ...]
# (scope, "init" | "sparse" | "const", index in the initializer/node list, tensor name or attribute)
Locator = tuple[Scope, str, int, str]


@dataclass
class Source:
    """What the patch writer needs to find the loaded file and each weight's tensor in it again."""

    path: str
    stat: tuple[int, int]
    locators: dict[str, Locator] = field(default_factory=dict)
    fingerprint: str = ""
    functions: list[bytes] = field(default_factory=list)


def fingerprint(g: Graph) -> str:
    """A hash of everything but weight values: equal hashes mean the file can be patched in place."""
    h = hashlib.sha256()

    def feed(*parts: Any) -> None:
        for p in parts:
            h.update(repr(p).encode())
            h.update(b"\x00")

    def graph(sg: Graph) -> None:
        feed("graph", [v.name for v in sg.inputs], [v.name for v in sg.outputs], sorted(sg.weights))
        for n in sg.nodes:
            feed(n.op, n.domain, n.inputs, n.outputs)
            for k in sorted(n.attrs):
                v = n.attrs[k]
                feed(k)
                if isinstance(v, Graph):
                    graph(v)
                elif isinstance(v, list) and v and all(isinstance(x, Graph) for x in v):
                    for x in v:
                        graph(x)
                elif isinstance(v, np.ndarray):
                    feed(v.dtype.str, v.shape)
                    h.update(v.tobytes() if v.dtype != object else repr(v.tolist()).encode())
                else:
                    feed(v)

    graph(g)
    for name in sorted(g.weights):
        wt = g.weights[name]
        feed(name, wt.source, wt.shape, wt.source_shape, wt.layout)
    return h.hexdigest()
