"""Compiled norm kernels (csrc/cpu/norm*.cpp); the specification is reference/norm.py."""
import numpy as np  # noqa: F401

from ._lib import _C  # noqa: F401

__all__ = []
