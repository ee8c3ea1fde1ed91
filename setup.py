"""Builds the cffi extension nncompress.native._nnc; everything else lives in pyproject.toml."""

from setuptools import setup

setup(cffi_modules=["native/build_ffi.py:ffibuilder"])
