"""``dense``: the float32 matrix as it is (the baseline every other format is measured against).

Arrays: ``values`` float32 (out, in), row-major. Meta: ``shape``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from nncompress.formats.base import (
    Format,
    as_input,
    as_matrix,
    as_output,
    check_keys,
    float_array,
    meta_shape,
    take_params,
)


class Dense(Format):
    """Uncompressed float32."""

    name = "dense"

    def __init__(self, values: np.ndarray) -> None:
        super().__init__(values.shape)
        self.values = values

    @classmethod
    def encode(cls, w: np.ndarray, **params: Any) -> Dense:
        take_params(cls.name, params)
        return cls(as_matrix(w, cls.name).copy())

    def to_dense(self) -> np.ndarray:
        return self.values.copy()

    def dot(self, x: np.ndarray) -> np.ndarray:
        xb, single = as_input(x, self)
        return as_output(xb @ self.values.T.astype(np.float64), single)

    def arrays(self) -> dict[str, np.ndarray]:
        return {"values": self.values}

    def meta(self) -> dict[str, Any]:
        return {"shape": list(self.shape)}

    @classmethod
    def _from_arrays(cls, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> Dense:
        check_keys(arrays, meta, {"values"}, {"shape"})
        return cls(float_array(arrays, "values", meta_shape(meta)))
