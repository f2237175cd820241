"""Compiled optim kernels (csrc/cpu/optim*.cpp); the specification is reference/optim.py."""
import numpy as np  # noqa: F401

from ._lib import _C  # noqa: F401

__all__ = []
