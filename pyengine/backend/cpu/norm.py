"""Compiled norm kernels (csrc/cpu/norm*.cpp); the specification is reference/norm.py.

Same signatures and return conventions as the reference. Inputs are made C-contiguous here;
outputs are allocated here and filled by the kernels.
"""
import numpy as np

from ._lib import _C

__all__ = ["layer_norm_forward", "layer_norm_backward"]

_ln_fwd = _C.layer_norm_forward
_ln_bwd = _C.layer_norm_backward
_contig = np.ascontiguousarray
_empty = np.empty
_empty_like = np.empty_like


def layer_norm_forward(x, weight, bias, eps=1e-5):
    """y = (x - mean) * rstd * weight + bias, rstd = 1 / sqrt(var + eps) (biased var).

    x: (N, C)   weight, bias: (C,) or None   ->   y: (N, C), mean: (N,), rstd: (N,)
    """
    x = _contig(x)
    if weight is not None:
        weight = _contig(weight)
    if bias is not None:
        bias = _contig(bias)
    y = _empty_like(x)
    n = x.shape[0] if x.ndim else 0  # the binding rejects ndim != 2
    mean = _empty(n, x.dtype)
    rstd = _empty(n, x.dtype)
    _ln_fwd(x, weight, bias, float(eps), y, mean, rstd)
    return y, mean, rstd


def layer_norm_backward(dy, x, weight, mean, rstd, dx=None):
    """Gradients of layer_norm_forward: (dx (N, C), dweight (C,) or None, dbias (C,)).

    dx: optional output array (N, C) of x's dtype to write into (the kernel checks it), e.g. a view of
    an array allocated in the caller's shape; allocated here when None.
    """
    dy = _contig(dy)
    x = _contig(x)
    mean = _contig(mean)
    rstd = _contig(rstd)
    if dx is None:
        dx = _empty_like(x)
    c = x.shape[-1] if x.ndim else 0
    if weight is not None:
        weight = _contig(weight)
        dweight = _empty(c, x.dtype)
    else:
        dweight = None
    dbias = _empty(c, x.dtype)
    _ln_bwd(dy, x, weight, mean, rstd, dx, dweight, dbias)
    return dx, dweight, dbias
