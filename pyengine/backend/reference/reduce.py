"""Sums: column sums (the bias gradient of a linear layer, the backward of a broadcast), sums and means
over any dims (the sum / mean ops), dst += src (gradient accumulation), and dst = src (strided copies:
contiguous(), split's backward, a view's gradient made a leaf's own)."""
import math

import numpy as np

__all__ = ["sum_rows", "sum_dims", "add_into", "copy_into", "max_dim", "max_dim_backward"]


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


def max_dim(x, dim, is_max=True):
    """(values, indices) of the max (min with not ``is_max``) of x along ``dim``: the first extreme, a NaN
    counting as the extreme (the first NaN), as torch.max.   x: ndim >= 1, x.shape[dim] >= 1 -> two arrays
    of x's shape without dim (x's dtype, int64)."""
    idx = (np.argmax if is_max else np.argmin)(x, axis=dim)
    vals = np.take_along_axis(x, np.expand_dims(idx, dim), axis=dim)
    return np.squeeze(vals, dim), np.asarray(idx, dtype=np.int64)


def max_dim_backward(g, idx, shape, dim):
    """max_dim's input gradient: g (x's shape without dim) at the indices ``idx`` along ``dim``, zeros
    elsewhere.   -> (shape), g's dtype."""
    dx = np.zeros(shape, g.dtype)
    np.put_along_axis(dx, np.expand_dims(idx, dim), np.expand_dims(g, dim), axis=dim)
    return dx
