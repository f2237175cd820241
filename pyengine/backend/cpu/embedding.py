"""Compiled embedding kernels (csrc/cpu/embedding*.cpp); the specification is reference/embedding.py."""
import numpy as np  # noqa: F401

from ._lib import _C  # noqa: F401

__all__ = []
