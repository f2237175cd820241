"""Compiled sums (csrc/cpu/reduce.cpp); the specification is reference/reduce.py."""
import numpy as np

from ._lib import _C, followable

__all__ = ["sum_rows", "add_into"]

_sum_rows = _C.sum_rows
_add_into = _C.add_into


def sum_rows(x):
    """out[j] = sum_n x[n, j].   x: (N, C)   ->   (C,) in x's dtype (accumulated in double).

    A row slice of a wider array is read in place; other layouts are copied once.
    """
    if x.ndim == 2 and not (followable(x) and (x.shape[0] <= 1 or x.strides[0] >= x.shape[1] * x.itemsize)):
        x = np.ascontiguousarray(x)  # the kernel also needs rows at least one row apart
    out = np.empty(x.shape[1] if x.ndim == 2 else 0, x.dtype)
    _sum_rows(x, out)
    return out


def add_into(dst, src):
    """dst += src in place (gradient accumulation), threaded for large arrays. Returns dst.

    dst: C-contiguous, writeable; src: same dtype and number of elements (copied to C order if needed).
    """
    _add_into(dst, np.ascontiguousarray(src))
    return dst
