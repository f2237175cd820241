"""Compiled sums (csrc/cpu/reduce.cpp); the specification is reference/reduce.py."""
import numpy as np

from ._lib import _C

__all__ = ["sum_rows", "add_into"]

_sum_rows = _C.sum_rows
_add_into = _C.add_into


def _followable(x):
    """A contiguous last axis and a non-negative row stride of at least one row (what the kernel reads)."""
    n, c = x.shape
    item = x.itemsize
    if c > 1 and x.strides[1] != item:
        return False
    return n <= 1 or (x.strides[0] >= c * item and x.strides[0] % item == 0)


def sum_rows(x):
    """out[j] = sum_n x[n, j].   x: (N, C)   ->   (C,) in x's dtype (accumulated in double).

    A row slice of a wider array is read in place; other layouts are copied once.
    """
    if x.ndim == 2 and not _followable(x):
        x = np.ascontiguousarray(x)
    out = np.empty(x.shape[1] if x.ndim == 2 else 0, x.dtype)
    _sum_rows(x, out)
    return out


def add_into(dst, src):
    """dst += src in place (gradient accumulation), threaded for large arrays. Returns dst.

    dst: C-contiguous, writeable; src: same dtype and number of elements (copied to C order if needed).
    """
    _add_into(dst, np.ascontiguousarray(src))
    return dst
