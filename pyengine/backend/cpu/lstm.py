"""Compiled lstm kernels (csrc/cpu/lstm*.cpp); the specification is reference/lstm.py."""
import numpy as np  # noqa: F401

from ._lib import _C  # noqa: F401

__all__ = []
