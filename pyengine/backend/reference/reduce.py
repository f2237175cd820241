"""Reductions over the leading axis: the bias gradient of a linear layer, the backward of a broadcast."""
import numpy as np

__all__ = ["sum_rows"]


def sum_rows(x):
    """out[j] = sum_n x[n, j].   x: (N, C)   ->   (C,), summed in float64 and returned in x's dtype."""
    return np.sum(x, axis=0, dtype=np.float64).astype(x.dtype)
