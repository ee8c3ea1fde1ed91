"""cffi out-of-line API-mode builder of nncompress.native._nnc (used by setup.py's cffi_modules)."""

from __future__ import annotations

from pathlib import Path

from cffi import FFI

HERE = Path(__file__).resolve().parent
SOURCES = [
    "dense.c", "sparse.c", "im.c", "cser.c", "huffman_codes.c", "ham.c", "sham.c", "lowrank.c", "psm.c", "sss.c",
    "dct.c", "cabac.c", "rdoq.c", "watchdog.c",
]  # fmt: skip
HEADERS = ["include/nnc_kernels.h", "nnc_common.h", "nnc_csr.h", "nnc_mv.h", "nnc_huffman.h", "nnc_sham.h"]


def _cdef() -> str:
    """The header's prototypes and status constants, without the preprocessor lines cffi cannot parse."""
    keep = []
    for line in (HERE / "include" / "nnc_kernels.h").read_text().splitlines():
        s = line.strip()
        if s.startswith("#define NNC_E") or s.startswith("#define NNC_OK"):
            name = s.split()[1]
            keep.append(f"#define {name} ...")
        elif not s.startswith("#"):
            keep.append(line)
    return "\n".join(keep)


ffibuilder = FFI()
ffibuilder.cdef(_cdef())
ffibuilder.set_source(
    "nncompress.native._nnc",
    '#include "nnc_kernels.h"',
    sources=[f"native/{s}" for s in SOURCES],
    include_dirs=["native/include", "native"],
    depends=[f"native/{h}" for h in HEADERS],
    libraries=["m"],  # cos/sin/sqrt of the dct kernels
    extra_compile_args=["-O3", "-std=c11", "-pthread"],
    extra_link_args=["-pthread"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
