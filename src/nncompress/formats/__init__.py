"""Compressed formats for one 2-D weight matrix (contract in `base`), and their registry.

``FORMATS`` maps each format's name (as written in artifacts and recipes) to its class.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from nncompress.errors import InputError
from nncompress.formats.base import Format
from nncompress.formats.cabac import Cabac
from nncompress.formats.cser import CSER
from nncompress.formats.dct import DCT
from nncompress.formats.dense import Dense
from nncompress.formats.ham import HuffmanMatrix
from nncompress.formats.im import IndexMap
from nncompress.formats.lowrank import LowRank
from nncompress.formats.psm import PSM
from nncompress.formats.sham import SparseHuffmanMatrix
from nncompress.formats.sparse import COO, CSC, CSR
from nncompress.formats.sss import SSS

FORMATS: dict[str, type[Format]] = {
    "dense": Dense,
    "csr": CSR,
    "csc": CSC,
    "coo": COO,
    "im": IndexMap,
    "cser": CSER,
    "ham": HuffmanMatrix,
    "sham": SparseHuffmanMatrix,
    # structured approximations: fitted by their passes (nncompress.passes), stored here
    "lowrank": LowRank,
    "sss": SSS,
    "dct": DCT,
    "psm": PSM,
    # context-adaptive arithmetic coding of integer levels (a storage format, listed after the others)
    "cabac": Cabac,
}


def load_format(
    name: str, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any], *, path: str | None = None
) -> Format:
    """Rebuild and validate a stored tensor of format ``name`` (InputError if unknown or corrupt)."""
    cls = FORMATS.get(name)
    if cls is None:
        raise InputError(
            f"unknown tensor format {name!r} (known: {', '.join(FORMATS)})",
            path=path,
            hint="Use the nncompress version that wrote it",
        )
    return cls.from_arrays(arrays, meta, path=path)


__all__ = [
    "COO",
    "CSC",
    "CSER",
    "CSR",
    "DCT",
    "FORMATS",
    "PSM",
    "SSS",
    "Cabac",
    "Dense",
    "Format",
    "HuffmanMatrix",
    "IndexMap",
    "LowRank",
    "SparseHuffmanMatrix",
    "load_format",
]
