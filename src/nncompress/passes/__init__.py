"""Compression passes, one module per pass named after its CLI word, and the registry of them.

A pass maps (graph, options) to (new graph, per-weight stats); see ``_infra`` for the contract,
the pipeline spec (``prune:sparsity=0.9,quantize:method=kmeans:k=32``) and the pass manager.
"""

from nncompress.passes._infra import (
    DEFAULT_ROLES,
    Pass,
    PassOptions,
    PassResult,
    Select,
    Stats,
    default_select,
    describe_options,
    parse_pipeline,
    run_pipeline,
    weight_stats,
)
from nncompress.passes.prune import Prune
from nncompress.passes.quantize import Quantize

# Explicit on purpose: a pass is available when it is listed here, never by scanning modules.
PASSES: dict[str, type[Pass]] = {
    Prune.name: Prune,
    Quantize.name: Quantize,
}

__all__ = [
    "DEFAULT_ROLES",
    "PASSES",
    "Pass",
    "PassOptions",
    "PassResult",
    "Prune",
    "Quantize",
    "Select",
    "Stats",
    "default_select",
    "describe_options",
    "parse_pipeline",
    "run_pipeline",
    "weight_stats",
]
