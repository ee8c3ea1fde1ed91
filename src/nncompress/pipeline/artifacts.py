"""The artifact of a compressed graph (stored tensors plus a zeroed skeleton of the source file),
and the graph rebuilt from an artifact for decompress, eval and bench.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from nncompress._tempfiles import temp_dir
from nncompress._text import error_line
from nncompress.artifact import Artifact, TensorEntry, read_artifact
from nncompress.errors import InputError, show_as
from nncompress.formats import FORMATS, Format, load_format
from nncompress.formats.shaped import Shaped
from nncompress.ir import Graph
from nncompress.pipeline.engine import ALIAS, LOSSLESS_INT, RAW
from nncompress.pipeline.recipe import INT_DTYPES, Plan


def skeleton_file(graph: Graph, name: str) -> Path:
    """The source file with every weight zeroed, written by the source format's own writer.

    It stays on disk (a temp dir removed at exit) and is streamed into the artifact: held as bytes, a
    zeroed VGG16 would add its full size to the peak memory of compress.
    """
    from nncompress.io import save

    z = graph.copy()
    for w in z.weights.values():
        w.value = np.zeros(w.shape, dtype=w.dtype)  # calloc'd pages: no memory until written
    path = save(z, temp_dir("skel") / name)
    slim = temp_dir("slim") / name
    if _slim_skeleton(graph.meta.format, path, slim, graph.meta.path):
        path.unlink()
        return slim
    return path


def _slim_skeleton(fmt: str, path: Path, out: Path, source: str) -> bool:
    """Write to ``out`` the zeroed file ``path`` cut to what its writer and loader need to rebuild a
    runnable model (the format's own rules: docs/format.md, "Skeleton"); False where the format has
    nothing to cut and ``path`` is the skeleton as it is. ``source``: the input, named in errors."""
    if fmt in ("torchscript", "torch-export", "torch-state-dict", "torch-checkpoint"):
        from nncompress.io.torch.writer import slim_skeleton

        return slim_skeleton(path, out)
    if fmt.startswith("keras"):
        from nncompress.io.keras._write import slim_skeleton as slim_keras

        try:
            return slim_keras(path, out)
        except (OSError, RuntimeError, KeyError, ValueError) as e:
            # the copy walks every group and link of the file, also those the loader never read:
            # h5py raises these on a damaged one (fuzz seed 43: "invalid link name")
            raise InputError(
                f"cannot copy the model's HDF5 structure ({error_line(e)})",
                path=source,
                hint="The file is damaged in a part the loader did not need; re-save it with model.save()",
            ) from None
    return False


def build_artifact(graph: Graph, entries: list[TensorEntry], plan: Plan, seed: int) -> Artifact:
    src_name = Path(graph.meta.path).name or f"model.{graph.meta.format}"
    return Artifact(
        source_format=graph.meta.format,
        source_name=src_name,
        recipe=plan.origin,
        seed=seed,
        tensors=entries,
        skeleton=skeleton_file(graph, src_name),
        skeleton_name=src_name,
    )


def _int_target(t: TensorEntry, f: Format, dtype: np.dtype[Any], path: str | os.PathLike[str]) -> Any:
    """The integer dtype a coded tensor decodes to (its skeleton slot's), or None for a float one.

    Only `LOSSLESS_INT` holds integers, and its codebook must hold integers of that dtype: a value
    cast from a corrupt codebook would be silently wrong.
    """
    if dtype.kind not in "iu":
        return None
    if dtype not in INT_DTYPES or not isinstance(f, FORMATS[LOSSLESS_INT]):
        raise InputError(f"tensor {t.name!r} of {dtype} is stored as {t.format!r}", path=str(path))
    cb = f.arrays()["codebook"].astype(np.float64)
    info = np.iinfo(dtype)
    if np.any(cb != np.rint(cb)) or np.any(cb < info.min) or np.any(cb > info.max):
        raise InputError(
            f"tensor {t.name!r}: codebook holds values that are not {dtype} integers", path=str(path)
        )
    return dtype


def graph_from_artifact(path: str | os.PathLike[str], art: Artifact | None = None) -> Graph:
    """Rebuild the IR from a `.nnc`: the skeleton's graph with the stored tensors in its slots.
    ``art``: the artifact already read with a ``skeleton_dir`` (not read a second time)."""
    from nncompress.io import load

    # The writers re-read the skeleton to patch it, so it must outlive this call; it goes from the
    # zip to that file without passing through memory.
    if art is None:
        art = read_artifact(path, skeleton_dir=temp_dir("art"))
    if not art.skeleton_name:
        raise InputError("artifact has no skeleton to rebuild a model from", path=str(path))
    assert isinstance(art.skeleton, Path)
    show_as(str(art.skeleton), f"{path} (its skeleton)")
    g = load(art.skeleton)
    # compress decided what the artifact holds (training state included or not): rebuilding drops nothing
    g.meta.extra["keep_training_state"] = True
    done: set[str] = set()
    for t in art.tensors:
        w = g.weights.get(t.name)
        if w is None or w.shape != t.shape:
            raise InputError(f"tensor {t.name!r} does not match the skeleton's weights", path=str(path))
        if t.format == ALIAS:
            of = t.meta.get("of")
            if of not in done or g.weights[of].shape != t.shape:
                raise InputError(
                    f"tensor {t.name!r} is an alias of no earlier tensor of its shape", path=str(path)
                )
            w.value = g.weights[of].value
        elif t.format == RAW:
            a = t.arrays.get("values")
            if a is None or a.shape != t.shape:
                raise InputError(f"tensor {t.name!r} has no values of shape {t.shape}", path=str(path))
            w.value = a
        else:
            f = load_format(t.format, t.arrays, t.meta, path=str(path))
            rows = t.shape[0] if len(t.shape) > 1 else 1
            if f.shape != (rows, int(np.prod(t.shape)) // max(rows, 1)):
                raise InputError(
                    f"tensor {t.name!r}: stored shape {f.shape} does not fit {t.shape}", path=str(path)
                )
            w.value = Shaped(f, t.shape, dtype=_int_target(t, f, w.dtype, path))
        done.add(t.name)
    g.meta.extra["artifact"] = {
        "path": str(path),
        "recipe": art.recipe,
        "seed": art.seed,
        "source": art.source_name,
        "bytes": Path(path).stat().st_size,
    }
    return g


def write_model(
    artifact: str | os.PathLike[str], out: str | os.PathLike[str], *, force: bool = False
) -> tuple[Path, str]:
    """Rebuild the model of ``artifact`` at ``out`` (the source's format, or .onnx from any graph);
    the path written and the source's format."""
    from nncompress.errors import UsageError
    from nncompress.io import EXTENSIONS, detect_format, save
    from nncompress.io._atomic import check_output

    src, dst = Path(artifact), Path(out)
    if detect_format(src) != "nnc":
        raise InputError(
            "is not a .nnc artifact", path=str(src), hint="Give the output of nncompress compress"
        )
    if EXTENSIONS.get(dst.suffix.lower()) in (None, "nnc"):
        raise UsageError(
            f"cannot write a model as {dst.suffix or 'a file without extension'!r}",
            path=str(dst),
            hint="Use .h5, .keras, .pt, .pt2 or .onnx",
        )
    check_output(dst, force=force, inputs=(src,))
    g = graph_from_artifact(src)
    return save(g, dst, force=force), g.meta.format
