"""Compiled gemm kernels (csrc/cpu/gemm*.cpp); the specification is reference/gemm.py."""
import numpy as np  # noqa: F401

from ._lib import _C  # noqa: F401

__all__ = []
