"""Sums: column sums (the bias gradient of a linear layer, the backward of a broadcast), sums and means
over any dims (the sum / mean ops), and dst += src (gradient accumulation)."""
import math

import numpy as np

__all__ = ["sum_rows", "sum_dims", "add_into"]


def sum_rows(x):
    """out[j] = sum_n x[n, j].   x: (N, C)   ->   (C,), summed in float64 and returned in x's dtype."""
    return np.sum(x, axis=0, dtype=np.float64).astype(x.dtype)


def sum_dims(x, dims, mean=False):
    """Sum (the mean with ``mean``) of x over ``dims`` (a sorted tuple of distinct non-negative axes, at
    least one), accumulated in float64.   x: any shape, float32/float64 -> x's shape without dims, x's dtype.
    The mean over no elements is NaN."""
    s = np.sum(x, axis=tuple(dims), dtype=np.float64)
    if mean:
        n = math.prod(x.shape[d] for d in dims)
        s = s / n if n else np.full(s.shape, np.nan)
    return np.asarray(s).astype(x.dtype)


def add_into(dst, src):
    """dst += src in place (gradient accumulation); same dtype and number of elements. Returns dst."""
    dst += src.reshape(dst.shape)
    return dst
