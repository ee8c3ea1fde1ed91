"""SHA-256 of the artifact of every example model under every preset and a few pipelines.

Refactors promise byte-identical artifacts; this script is that promise's check. Run it before a
change with ``--write`` (it records ``tests/data/artifact_digests.json``), and after it without:
it exits 1 listing every artifact whose bytes moved. ``tests/test_artifact_digests.py`` runs it.

    python scripts/artifact_digests.py [--write] [--only vggmini.onnx]
"""

from __future__ import annotations

import os
import platform


def _pin_blas_kernels() -> None:
    """OpenBLAS picks its kernels by CPU (Haswell's AVX2, SkylakeX's AVX-512...), and their last
    bits differ: enough to move a budget search's decision (lenet300's sss-budget artifacts, all
    four formats, differ between an AVX2 and an AVX-512 machine). Digests recorded on one x86
    machine hold on another only with the same kernels: Haswell's, which every AVX2 CPU runs. Set
    before numpy loads OpenBLAS; a value already in the environment wins."""
    if platform.machine() not in ("x86_64", "AMD64"):
        return
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return
    if " avx2" in flags and " fma" in flags:
        os.environ.setdefault("OPENBLAS_CORETYPE", "Haswell")


_pin_blas_kernels()

import argparse  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

from nncompress.pipeline.recipe import PRESETS  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "examples" / "models"
RECORD = ROOT / "tests" / "data" / "artifact_digests.json"
# Every preset's fixed pipeline (the engine's bytes), two presets under their fidelity budget (the
# search's bytes: `--samples 1` makes it decide on one seeded input), and pipelines reaching the
# storage formats no preset uses (csc, coo, dense) and the quantizers the presets leave out.
RECIPES: dict[str, list[str]] = {
    **{
        m: ["--pipeline", PRESETS[m]]
        for m in ("prune", "quantize", "ham", "sham", "cser", "lowrank", "sss", "dct", "psm", "smallest")
    },
    "sham-budget": ["--method", "sham"],
    "smallest-budget": ["--method", "smallest", "--max-error", "0.05"],
    "csc": ["--pipeline", "prune:sparsity=0.6,csc"],
    "coo": ["--pipeline", "prune:sparsity=0.6:scope=layer,coo"],
    "dense": ["--pipeline", "quantize:method=uniform:k=16,dense"],
    "ecsq": ["--pipeline", "prune:sparsity=0.5,quantize:method=ecsq:k=16,sham"],
    "sss-budget": ["--method", "sss", "--budget", "0.3"],
}


def digests(only: list[str] | None = None) -> dict[str, str]:
    """``{"MODEL RECIPE": sha256 of the .nnc}``, compressed in this process by the CLI's code."""
    from typer.testing import CliRunner

    from nncompress.cli.app import app

    runner = CliRunner()
    out: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as d:
        for model in sorted(MODELS.iterdir()):
            if only and model.name not in only:
                continue
            if model.name.startswith("vgg16"):  # built locally by examples/make_vgg16.py, git-ignored
                continue
            for name, args in RECIPES.items():
                dst = Path(d) / f"{model.stem}-{name}.nnc"
                argv = ["compress", str(model), *args, "-o", str(dst), "--samples", "1", "--quiet", "--force"]
                res = runner.invoke(app, argv)
                if res.exit_code != 0:
                    raise SystemExit(
                        f"{model.name} {name}: exit {res.exit_code}: {res.output}{res.exception!r}"
                    )
                out[f"{model.name} {name}"] = hashlib.sha256(dst.read_bytes()).hexdigest()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write", action="store_true", help="record the digests instead of checking them")
    ap.add_argument("--only", action="append", help="model file name (repeatable)")
    a = ap.parse_args()
    got = digests(a.only)
    if a.write:
        RECORD.parent.mkdir(parents=True, exist_ok=True)
        RECORD.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n")
        print(f"recorded {len(got)} digests in {RECORD.relative_to(ROOT)}")
        return 0
    want = json.loads(RECORD.read_text())
    moved = [k for k in got if want.get(k) != got[k]]
    for k in moved:
        print(f"changed: {k}")
    print(f"{len(got) - len(moved)}/{len(got)} artifacts byte-identical")
    return 1 if moved else 0


if __name__ == "__main__":
    sys.exit(main())
