"""Compiled masks (csrc/cpu/mask.cpp); the specification is reference/mask.py."""
import math

import numpy as np

from ._lib import _C

__all__ = ["masked_fill", "dropout_forward", "dropout_backward"]

_fill = _C.masked_fill
_drop_fwd = _C.dropout_forward
_drop_bwd = _C.dropout_backward


def masked_fill(x, mask, value):
    """y = value where mask, else x.   x: any shape, float32/float64; mask: bool, broadcast to x's shape.

    A mask whose leading dims are 1s (or missing) and whose others are x's is one row of the kernel's
    (O, I) view, read for every row in place; other broadcasts are expanded to x's shape first (bytes)."""
    if np.broadcast_shapes(x.shape, mask.shape) != x.shape:
        raise ValueError(f"masked_fill: mask {mask.shape} does not broadcast to x {x.shape}")
    x = np.asarray(x, order="C")  # not ascontiguousarray: it makes a 0-d x 1-d
    shape = x.shape
    m = mask.reshape((1,) * (x.ndim - mask.ndim) + mask.shape)
    k = 0  # the leading dims the mask is broadcast over
    while k < x.ndim and m.shape[k] == 1 and shape[k] != 1:
        k += 1
    while k < x.ndim and m.shape[k] == 1:  # size-1 dims of x itself belong to either side
        k += 1
    if m.shape[k:] != shape[k:]:
        m, k = np.broadcast_to(m, shape), 0
    inner = math.prod(shape[k:])
    y = np.empty_like(x)
    _fill(x.reshape(-1, inner) if inner else x.reshape(0, 0), np.ascontiguousarray(m).reshape(inner),
          float(value), y.reshape(-1, inner) if inner else y.reshape(0, 0))
    return y


def dropout_forward(x, u, p, scale):
    """keep = u >= p;  y = x * (scale where keep, else 0).   x: any shape; u: x's shape (float32)."""
    x = np.asarray(x, order="C")  # not ascontiguousarray: it makes a 0-d x 1-d
    y = np.empty_like(x)
    keep = np.empty(x.shape, np.bool_)
    _drop_fwd(x.reshape(-1), np.ascontiguousarray(u, np.float32).reshape(-1), float(p), float(scale),
              y.reshape(-1), keep.reshape(-1))
    return y, keep


def dropout_backward(g, keep, scale):
    """dx = g * (scale where keep, else 0).   g: any shape; keep: g's shape, bool."""
    g = np.asarray(g, order="C")
    dx = np.empty_like(g)
    _drop_bwd(g.reshape(-1), np.ascontiguousarray(keep).reshape(-1), float(scale), dx.reshape(-1))
    return dx
