"""Compiled attention kernels (csrc/cpu/attention*.cpp); the specification is reference/attention.py."""
import numpy as np  # noqa: F401

from ._lib import _C  # noqa: F401

__all__ = []
