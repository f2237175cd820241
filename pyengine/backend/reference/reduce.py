"""Sums: column sums (the bias gradient of a linear layer, the backward of a broadcast) and dst += src
(gradient accumulation)."""
import numpy as np

__all__ = ["sum_rows", "add_into"]


def sum_rows(x):
    """out[j] = sum_n x[n, j].   x: (N, C)   ->   (C,), summed in float64 and returned in x's dtype."""
    return np.sum(x, axis=0, dtype=np.float64).astype(x.dtype)


def add_into(dst, src):
    """dst += src in place (gradient accumulation); same dtype and number of elements. Returns dst."""
    dst += src.reshape(dst.shape)
    return dst
