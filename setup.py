"""Builds the cffi extension nncompress.native._nnc; everything else lives in pyproject.toml.

The extension is optional: where it cannot be built (no C compiler) the install still succeeds,
with one warning line, and nncompress falls back to the numpy reference products (``bench`` says
so). Set NNC_REQUIRE_NATIVE=1 to make a failed build fail the install instead.
"""

import os
import sys

from setuptools import setup
from setuptools.command.build_ext import build_ext


class OptionalBuildExt(build_ext):
    """build_ext that skips the kernels, with one warning line, when they do not compile."""

    def run(self):  # type: ignore[no-untyped-def]
        try:
            super().run()
        except Exception as exc:  # CCompilerError, DistutilsExecError, PlatformError...
            if os.environ.get("NNC_REQUIRE_NATIVE") == "1":
                raise
            lines = str(exc).strip().splitlines()
            print(
                f"warning: nncompress: native kernels not built ({lines[-1][:160] if lines else type(exc).__name__}); "
                "using the numpy reference products. Install a C compiler (gcc or clang) and reinstall "
                "for the fast kernels.",
                file=sys.stderr,
            )
            self.extensions = []

    def get_outputs(self):  # type: ignore[no-untyped-def]
        return [p for p in super().get_outputs() if os.path.exists(p)]


setup(cffi_modules=["native/build_ffi.py:ffibuilder"], cmdclass={"build_ext": OptionalBuildExt})
