"""Keras files <-> the IR: full models (.h5 from Keras 2 and 3, .keras zips) and weights-only .h5 files.

The entry points other code imports; the loader and writer live in the package's private modules.
"""

from __future__ import annotations

from nncompress.io.keras._model import WEIGHTS_ONLY_NOTE, KerasSource, load_keras, save_keras

__all__ = ["WEIGHTS_ONLY_NOTE", "KerasSource", "load_keras", "save_keras"]
