"""Compiled activation kernels (csrc/cpu/activation*.cpp); the specification is reference/activation.py."""
import numpy as np  # noqa: F401

from ._lib import _C  # noqa: F401

__all__ = []
