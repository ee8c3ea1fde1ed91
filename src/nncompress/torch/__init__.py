"""Compressed layers that run and train in PyTorch (``pip install nncompress[torch]``).

Importing this package imports torch; ``import nncompress`` and the CLI never import it.
`from_format` turns any stored format into a `CompressedWeight` module (`weights`, `shared`,
`structured`); `layers` has drop-in ``nn.Linear`` / ``nn.Conv2d`` replacements built on them, and
`sparse` the `SparseLinear` layer with ActuallySparse's conversions. docs/torch-layers.md has the map.
"""

from nncompress.torch._base import CompressedWeight, from_format
from nncompress.torch.layers import (
    CompressedConv2d,
    CompressedLinear,
    DCTConv2d,
    DCTLinear,
    LowRankConv2d,
    LowRankLinear,
    PSMConv2d,
    PSMLinear,
    SharedConv2d,
    SharedLinear,
    SSSLinear,
    fit_format,
)
from nncompress.torch.sparse import SparseLinear, convert, convert_model

__all__ = [
    "CompressedConv2d",
    "CompressedLinear",
    "CompressedWeight",
    "DCTConv2d",
    "DCTLinear",
    "LowRankConv2d",
    "LowRankLinear",
    "PSMConv2d",
    "PSMLinear",
    "SSSLinear",
    "SharedConv2d",
    "SharedLinear",
    "SparseLinear",
    "convert",
    "convert_model",
    "fit_format",
    "from_format",
]
