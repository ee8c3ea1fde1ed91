"""The graph IR (see graph.py for the fixed weight layout) and its numpy reference executor."""

from nncompress.ir.graph import (
    ROLES,
    CompressedTensor,
    Graph,
    IRError,
    ModelMeta,
    Node,
    ValueInfo,
    Weight,
    apply_layout,
    invert_layout,
)

__all__ = [
    "ROLES",
    "CompressedTensor",
    "Graph",
    "IRError",
    "ModelMeta",
    "Node",
    "ValueInfo",
    "Weight",
    "apply_layout",
    "invert_layout",
]
