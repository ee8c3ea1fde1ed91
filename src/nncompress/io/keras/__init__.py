"""Keras files <-> the IR: full models (.h5 from Keras 2 and 3, .keras zips) and weights-only .h5 files.

Reading needs only h5py and json: TensorFlow and keras are never imported, and a Lambda layer's code is
never decoded, let alone run (the layer becomes an opaque op with domain "keras" the executor refuses).

Keras is channels-last and the IR channels-first (see ir/graph.py). The loader tracks, for each Keras
tensor, the IR values that already hold it in Keras order ("kl") and channels-first ("cf"), and inserts a
Transpose only where an op's meaning depends on the layout: convolutions, pooling and BatchNormalization
want channels-first; Flatten, Reshape, Dense on >2-D inputs, opaque ops and graph outputs want Keras order.

The writer never re-serialises a model: it copies the source file and overwrites each weight dataset in
place (same dtype and shape), so the config, optimizer state and attributes stay as they were. A flat
.keras model can also be written as a legacy .h5 (its config.json as model_config, as Keras 3 does).

Modules, in the order a load runs through them:

- ``_load``: opens the .h5 or .keras container, tells a model from a weights-only file, fills the metadata.
- ``_store``: the weight layouts (legacy .h5, Keras 3 model.weights.h5): lazy variables, in-place patching.
- ``_model``: walks a Sequential or Functional config, nested models inlined, into a Graph.
- ``_builder``: the graph under construction: fresh value and node names, weights, layout transposes.
- ``_variables``: which of a layer's variables is which; kernel layouts.
- ``_converters``: the converter of each layer class, found in ``_conv`` (Dense, convolutions, pooling,
  padding), ``_activations``, ``_reshape`` (Flatten, Reshape, Permute, merges) or ``_converters`` itself.
- ``_weights_only``: files without a usable config: weights whose roles are told from names and shapes.
- ``_write``: save_keras.
"""

from __future__ import annotations

from nncompress.io.keras._load import load_keras
from nncompress.io.keras._store import KerasSource
from nncompress.io.keras._weights_only import WEIGHTS_ONLY_NOTE
from nncompress.io.keras._write import save_keras

__all__ = ["WEIGHTS_ONLY_NOTE", "KerasSource", "load_keras", "save_keras"]
