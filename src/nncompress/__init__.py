"""nncompress: compress trained neural-network files into truly smaller ones.

The Python API (see `nncompress.api`): ``load``, ``compress``, ``save``, ``decompress``,
``inspect`` and the ``Result`` of a compress run. They are imported on first use, so that
``import nncompress`` and ``nncompress --help`` stay fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["Result", "compress", "decompress", "inspect", "load", "save"]

if TYPE_CHECKING:
    from nncompress.api import Result, compress, decompress, inspect, load, save


def __getattr__(name: str) -> Any:
    if name in __all__:
        from nncompress import api

        return getattr(api, name)
    raise AttributeError(f"module 'nncompress' has no attribute {name!r}")
