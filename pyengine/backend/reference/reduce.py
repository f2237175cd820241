"""Sums: column sums (the bias gradient of a linear layer, the backward of a broadcast), sums and means
over any dims (the sum / mean ops), dst += src (gradient accumulation), and dst = src (strided copies:
contiguous(), split's backward, a view's gradient made a leaf's own)."""
import math

import numpy as np

__all__ = ["sum_rows", "sum_dims", "add_into", "copy_into"]


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


def copy_into(dst, src):
    """dst[...] = src: the same shape and dtype, any layouts (src may be a broadcast view). Returns dst."""
    if dst.shape != src.shape or dst.dtype != src.dtype:
        raise ValueError(f"copy_into: dst {dst.shape} {dst.dtype} and src {src.shape} {src.dtype} differ")
    dst[...] = src
    return dst
