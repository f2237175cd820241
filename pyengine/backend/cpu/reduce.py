"""Compiled sums (csrc/cpu/reduce.cpp); the specification is reference/reduce.py."""
import math

import numpy as np

from ..reference import reduce as _ref
from ._lib import _C, followable

__all__ = ["sum_rows", "sum_dims", "add_into", "copy_into", "max_dim", "max_dim_backward"]

_sum_rows = _C.sum_rows
_sum_dim = _C.sum_dim
_copy_into = _C.copy_into
_add_into = _C.add_into
_max_dim = _C.max_dim
_max_dim_bwd = _C.max_dim_backward
_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def sum_rows(x):
    """out[j] = sum_n x[n, j].   x: (N, C)   ->   (C,) in x's dtype (accumulated in double).

    A row slice of a wider array is read in place; other layouts are copied once.
    """
    if x.ndim == 2 and not (followable(x) and (x.shape[0] <= 1 or x.strides[0] >= x.shape[1] * x.itemsize)):
        x = np.ascontiguousarray(x)  # the kernel also needs rows at least one row apart
    out = np.empty(x.shape[1] if x.ndim == 2 else 0, x.dtype)
    _sum_rows(x, out)
    return out


def sum_dims(x, dims, mean=False):
    """Sum (the mean with ``mean``) of x over ``dims`` (sorted, distinct, non-negative, at least one), in
    double.   x: any shape, float32/float64 -> x's shape without dims.

    Adjacent dims are the middle axis of an (N, R, I) view of x; dims apart are moved last first (one
    copy), as is a non-contiguous x. Dims that are all of stride 0 (a broadcast x: the gradient of a sum
    broadcast back) are not read r times: the sum of r copies of v is r * v, which in double is exactly
    what adding them up gives for float32 (|r v| needs at most 24 + 31 bits), and the mean is v."""
    strides = x.strides
    if len(dims) == x.ndim and x.size and x.flags.c_contiguous:
        # every dim of a C-ordered array (x.sum(), the loss's sum): one row, without the general path's shape
        # arithmetic (~1/2 of such a sum's Python time)
        r = x.size
        out = np.empty((), x.dtype)
        _sum_dim(x.reshape(1, r, 1), out.reshape(1, 1), 1.0 / r if mean else 1.0)
        return out
    if len(dims) == 1 and strides[dims[0]] and x.flags.c_contiguous:
        # the common case (one dim of a C-ordered array) without the general path's generator and copies:
        # ~1 us of a sum's ~4 us of Python
        d = dims[0]
        shape = x.shape
        n, r, i = _nri(shape, d)
        out = np.empty(shape[:d] + shape[d + 1:], x.dtype)
        _sum_dim(x.reshape(n, r, i), out.reshape(n, i), (1.0 / r if r else math.nan) if mean else 1.0)
        return out
    if x.size and all(strides[d] == 0 for d in dims):
        one = x[tuple(0 if i in dims else slice(None) for i in range(x.ndim))]
        if mean:
            return np.array(one, order="C")
        return (one.astype(np.float64) * math.prod(x.shape[d] for d in dims)).astype(x.dtype, order="C")
    d0, d1 = dims[0], dims[-1]
    if d1 - d0 + 1 != len(dims):
        keep = [i for i in range(x.ndim) if i not in dims]
        x = x.transpose(keep + list(dims))
        d0, d1 = len(keep), x.ndim - 1
    shape = x.shape
    n, r, i = math.prod(shape[:d0]), math.prod(shape[d0:d1 + 1]), math.prod(shape[d1 + 1:])
    out = np.empty(shape[:d0] + shape[d1 + 1:], x.dtype)
    scale = (1.0 / r if r else math.nan) if mean else 1.0
    _sum_dim(np.ascontiguousarray(x).reshape(n, r, i), out.reshape(n, i), scale)
    return out


def add_into(dst, src):
    """dst += src in place (gradient accumulation), threaded for large arrays. Returns dst.

    dst: C-contiguous, writeable; src: same dtype and number of elements (copied to C order if needed).
    """
    _add_into(dst, np.ascontiguousarray(src))
    return dst


_COPY_MIN = 1 << 14  # elements; below this NumPy's copy costs less than a kernel call


def _steps(x):
    """Strides the copy kernel follows: non-negative multiples of the item size."""
    item = x.itemsize
    for s in x.strides:  # a loop, not all() over a generator: ~1 us less per copy
        if s < 0 or s % item:
            return False
    return True


def copy_into(dst, src):
    """dst[...] = src: the same shape and dtype, any layouts (src may be a broadcast view). Returns dst.

    Threaded rows of the last dim (memcpy where both are unit-stride: NumPy's copy of a transposed
    (16, 128, 4, 32) float array took 2x a plain copy). Small arrays, negative strides, overlapping or
    object arrays go to NumPy."""
    if dst.shape != src.shape or dst.dtype != src.dtype:
        raise ValueError(f"copy_into: dst {dst.shape} {dst.dtype} and src {src.shape} {src.dtype} differ")
    if (src.size < _COPY_MIN or src.dtype.hasobject or src.itemsize not in (1, 2, 4, 8)
            or not (_steps(src) and _steps(dst)) or np.may_share_memory(dst, src)):
        dst[...] = src
    else:
        _copy_into(dst, src)
    return dst


def _nri(shape, d):
    """(N, R, I): the kernels' C-order view of an array of ``shape`` reduced (or softmaxed) along axis d
    (negative d counts from the end)."""
    d %= len(shape)
    return math.prod(shape[:d]), shape[d], math.prod(shape[d + 1:])


def max_dim(x, dim, is_max=True):
    """(values, indices) of the max (min) along ``dim``: the first extreme, a NaN winning (reference/reduce.py).
    float32/float64 on the kernel (threaded rows or column blocks, in place for a C-contiguous x); other
    dtypes on the reference."""
    if x.dtype not in _FLOATS or not x.ndim:
        return _ref.max_dim(x, dim, is_max)
    shape = x.shape
    d = dim % len(shape)
    n, r, i = _nri(shape, d)
    out_shape = shape[:d] + shape[d + 1:]
    vals = np.empty(out_shape, x.dtype)
    idx = np.empty(out_shape, np.int64)
    _max_dim(np.ascontiguousarray(x).reshape(n, r, i), vals.reshape(n, i), idx.reshape(n, i), bool(is_max))
    return vals, idx


def max_dim_backward(g, idx, shape, dim):
    """g (``shape`` without ``dim``) scattered to ``idx`` along ``dim``, zeros elsewhere: one threaded pass."""
    if g.dtype not in _FLOATS or not len(shape):
        return _ref.max_dim_backward(g, idx, shape, dim)
    d = dim % len(shape)
    n, r, i = _nri(shape, d)
    dx = np.empty(shape, g.dtype)
    _max_dim_bwd(np.ascontiguousarray(g).reshape(n, i), np.ascontiguousarray(idx, dtype=np.int64).reshape(n, i),
                 dx.reshape(n, r, i))
    return dx
