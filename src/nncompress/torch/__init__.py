"""Compressed layers that run and train in PyTorch (``pip install nncompress[torch]``).

Importing this package imports torch; ``import nncompress`` and the CLI never import it.
`from_format` turns any stored format into a `CompressedWeight` module; the layers
(`nncompress.torch.layers`) are drop-in ``nn.Linear`` / ``nn.Conv2d`` replacements built on them.
"""

from nncompress.torch._base import CompressedWeight, from_format

__all__ = ["CompressedWeight", "from_format"]
