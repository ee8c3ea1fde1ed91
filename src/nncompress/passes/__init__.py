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
from nncompress.passes._structured import Structured
from nncompress.passes.dct import DCTPass
from nncompress.passes.lowrank import LowRankPass
from nncompress.passes.prune import Prune
from nncompress.passes.psm import PSMPass
from nncompress.passes.quantize import Quantize
from nncompress.passes.rdoq import RDOQ
from nncompress.passes.sss import SSSPass

# Explicit on purpose: a pass is available when it is listed here, never by scanning modules.
PASSES: dict[str, type[Pass]] = {
    Prune.name: Prune,
    Quantize.name: Quantize,
    # structured: each fits a format to a weight, the final step of a recipe
    LowRankPass.name: LowRankPass,
    SSSPass.name: SSSPass,
    DCTPass.name: DCTPass,
    PSMPass.name: PSMPass,
    # array pass: uniform grid, levels chosen by rate-distortion cost under the cabac model
    RDOQ.name: RDOQ,
}

__all__ = [
    "DEFAULT_ROLES",
    "PASSES",
    "RDOQ",
    "DCTPass",
    "LowRankPass",
    "PSMPass",
    "Pass",
    "PassOptions",
    "PassResult",
    "Prune",
    "Quantize",
    "SSSPass",
    "Select",
    "Stats",
    "Structured",
    "default_select",
    "describe_options",
    "parse_pipeline",
    "run_pipeline",
    "weight_stats",
]
