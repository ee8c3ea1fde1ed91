"""Fresh names for values, nodes and weights, and dtype names, shared by every loader and writer.

A loader meets the same name twice (two unnamed nodes, a weight and its transpose, Keras layers of
one class) and must make them unique the same way on every run: artifacts are compared byte for
byte, so the suffix style of each call site is a parameter here, not a choice made again per file.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np


class Names:
    """Names in use, handing out fresh ones.

    ``fresh("relu")`` is "relu" while that is free, else the first free of ``relu{sep}1``,
    ``relu{sep}2``...; with ``always=True`` the suffix is added even to a free name (for derived
    names that must never shadow their base). ``sep`` may be any string: "_" for readable names,
    "#" where the source's own names already end in ``_<n>`` (Keras), "__" for ONNX renames.
    With ``repeat=True`` the suffix is ``sep`` repeated until free ("n", "n_", "n__"...).
    """

    def __init__(
        self, taken: Iterable[str] = (), *, sep: str = "_", always: bool = False, repeat: bool = False
    ) -> None:
        self.taken: set[str] = set(taken)
        self.sep = sep
        self.always = always
        self.repeat = repeat

    def __contains__(self, name: object) -> bool:
        return name in self.taken

    def add(self, name: str) -> None:
        self.taken.add(name)

    def update(self, names: Iterable[str]) -> None:
        self.taken.update(names)

    def fresh(self, base: str, *, also: frozenset[str] | set[str] | dict[str, Any] = frozenset()) -> str:
        """A name not in use (nor in ``also``), recorded as used."""
        if self.repeat:
            name = base
            while name in self.taken or name in also:
                name += self.sep
        else:
            name, k = (f"{base}{self.sep}1", 2) if self.always else (base, 1)
            while name in self.taken or name in also:
                name, k = f"{base}{self.sep}{k}", k + 1
        self.taken.add(name)
        return name


class Counter:
    """Names as Keras makes them for layers of one class: "dense", "dense_1", "dense_2"...

    Counts per base name without looking at other names, exactly as Keras numbers its layers, so
    that the keys of a file Keras wrote are found again.
    """

    def __init__(self) -> None:
        self.used: dict[str, int] = {}

    def __call__(self, base: str) -> str:
        if base in self.used:
            self.used[base] += 1
            return f"{base}_{self.used[base]}"
        self.used[base] = 0
        return base


def dtype_name(d: Any, default: str | None = None) -> str | None:
    """The numpy name of a dtype given as numpy dtype or type, a name ("float32", "torch.float16",
    "<f4"), or a Keras DTypePolicy (its config dict or a mixed policy name, whose variables are
    float32); ``default`` for None or anything that names no numpy dtype (bfloat16 stays itself)."""
    if d is None:
        return default
    if isinstance(d, np.dtype | type):
        try:
            return np.dtype(d).name
        except TypeError:
            return default
    if isinstance(d, dict):  # Keras 3 DTypePolicy
        d = d.get("config", {}).get("name", "float32")
    s = str(d)
    if s.startswith("mixed"):
        return "float32"
    s = s.removeprefix("torch.")
    if s == "bfloat16":  # not a numpy dtype, but a name every loader knows
        return s
    try:
        return np.dtype(s).name
    except (TypeError, ValueError):
        return default
