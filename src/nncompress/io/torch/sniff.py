"""Which kind of PyTorch file this is, from its content (zip layout or pickle marker), not its name."""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from nncompress._text import error_line
from nncompress.errors import InputError, UnsupportedError
from nncompress.io._zip import UNREADABLE

__all__ = ["Kind", "sniff"]


@dataclass
class Kind:
    """What `sniff` found: the kind of file, and for a zip archive its record folder and members."""

    kind: str  # "torchscript" | "export" | "save"
    legacy: bool = False
    root: str = ""
    names: list[str] = field(default_factory=list)  # member names below the root


def sniff(p: Path) -> Kind:
    """The kind of the file at ``p``; a file that is no PyTorch file is an error in one line."""
    if not p.exists():
        raise InputError("no such file", path=str(p), hint="Check the path")
    if p.is_dir():
        raise InputError("is a directory, not a model file", path=str(p))
    try:
        size = p.stat().st_size
        with open(p, "rb") as f:
            head = f.read(4)
    except OSError as e:
        raise InputError(f"cannot read the file ({e.strerror})", path=str(p)) from e
    if size == 0:
        raise InputError("file is empty", path=str(p), hint="Re-save the model")
    if head[:2] == b"PK":
        try:
            with zipfile.ZipFile(p) as z:
                full = z.namelist()
        except UNREADABLE as e:  # NotImplementedError too: a zip version or feature zipfile lacks
            raise InputError(
                f"truncated or corrupt zip archive ({error_line(e)})",
                path=str(p),
                hint="Re-save or re-download the file",
            ) from e
        legacy = sorted(n for n in full if "/" not in n and n.startswith("serialized_"))
        if legacy:
            # torch < 2.6 export archives, or a crafted fallback: torch.export.load unpickles these
            # with weights_only=False
            raise UnsupportedError(
                f"a torch.export archive in the legacy layout ({legacy[0]}); "
                "nncompress does not unpickle untrusted data",
                path=str(p),
                hint="Re-export it with torch.export.save from torch 2.6 or later",
            )
        roots = {n.split("/", 1)[0] for n in full if "/" in n}
        if len(roots) != 1:
            raise InputError(
                "a zip archive, but not one written by PyTorch (no single record folder)",
                path=str(p),
                hint="Give a file written by torch.save, torch.jit.save or torch.export.save",
            )
        root = roots.pop()
        names = [n[len(root) + 1 :] for n in full if n.startswith(root + "/")]
        if "archive_format" in names or any(n.startswith("models/") and n.endswith(".json") for n in names):
            return Kind("export", root=root, names=names)
        if "constants.pkl" in names and any(n.startswith("code/") for n in names):
            return Kind("torchscript", root=root, names=names)
        if "data.pkl" in names:
            return Kind("save", root=root, names=names)
        raise InputError(
            "a zip archive, but not a PyTorch file (no data.pkl, code/ or models/ record)",
            path=str(p),
            hint="Give a file written by torch.save, torch.jit.save or torch.export.save",
        )
    if head[:1] == b"\x80":  # a pickle protocol marker: torch.save's legacy (pre-1.6) format
        return Kind("save", legacy=True)
    raise InputError(
        "not a PyTorch file (neither a zip archive nor a legacy torch.save pickle)",
        path=str(p),
        hint="Give a file written by torch.save, torch.jit.save or torch.export.save",
    )
