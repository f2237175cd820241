"""Compiled activation kernels (csrc/cpu/activation*.cpp); the specification is reference/activation.py.

Same signatures and return conventions as the reference. Inputs are made C-contiguous here;
outputs are allocated here and filled by the kernels. float32 / float64 only (other dtypes
raise TypeError from the binding).
"""

import numpy as np

from ._lib import _C
from .reduce import _nri, copy_into  # _nri: (N, C, I), the kernels' view along dim

__all__ = ["relu_forward", "relu_backward", "gelu_forward", "gelu_backward",
           "softmax_forward", "softmax_backward"]

_relu_fwd = _C.relu_forward
_relu_bwd = _C.relu_backward
_gelu_fwd = _C.gelu_forward
_gelu_bwd = _C.gelu_backward
_softmax_fwd = _C.softmax_forward
_softmax_bwd = _C.softmax_backward
_empty_like = np.empty_like


# ReLU / GELU take any shape (the kernels see a flat array). np.asarray(order="C") rather than
# ascontiguousarray: it keeps a 0-d input 0-d (ascontiguousarray would make it (1,)).

def relu_forward(x):
    """y = max(x, 0).   x: any shape."""
    x = np.asarray(x, order="C")
    y = _empty_like(x)
    _relu_fwd(x, y)
    return y


def relu_backward(x, dy):
    """dx = dy * (x > 0).   x, dy: same shape."""
    x = np.asarray(x, order="C")
    dy = np.asarray(dy, order="C")
    dx = _empty_like(dy)
    _relu_bwd(x, dy, dx)
    return dx


def _is_tanh(approximate):
    if approximate == "tanh":
        return True
    if approximate == "none":
        return False
    raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")


def gelu_forward(x, approximate="none"):
    """GELU: 'none' y = x Phi(x);  'tanh' y = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))."""
    tanh = _is_tanh(approximate)
    x = np.asarray(x, order="C")
    y = _empty_like(x)
    _gelu_fwd(x, y, tanh)
    return y


def gelu_backward(x, dy, approximate="none"):
    """dx = dy * GELU'(x)."""
    tanh = _is_tanh(approximate)
    x = np.asarray(x, order="C")
    dy = np.asarray(dy, order="C")
    dx = _empty_like(dy)
    _gelu_bwd(x, dy, dx, tanh)
    return dx


# Softmax works on the last dim. The kernels take (N, C); other ranks (e.g. attention scores
# (B, H, T, T)) are viewed as (-1, C) and the result viewed back.

def softmax_forward(x, log=False, dim=-1):
    """Softmax (or log-softmax) along ``dim``, max-subtracted.   x: any shape -> y: x's shape.

    Along the last dim the kernel runs over rows; along another, over (C, I) slices of columns, without
    moving the dim (a copy only when x is not C-contiguous)."""
    x = np.asarray(x, order="C")
    y = _empty_like(x)
    if not x.ndim:
        _softmax_fwd(x, y, bool(log))  # the binding rejects a 0-d x, naming the op
        return y
    n, c, i = _nri(x.shape, dim)
    shape = (n, c) if i == 1 else (n, c, i)
    _softmax_fwd(x.reshape(shape), y.reshape(shape), bool(log))
    return y


def softmax_backward(y, dy, log=False, dim=-1):
    """softmax: dx = y * (dy - sum(dy * y));  log-softmax: dx = dy - exp(y) * sum(dy), along ``dim``."""
    y = np.asarray(y, order="C")
    dy = np.asarray(dy)
    if not dy.flags.c_contiguous:  # e.g. the broadcast gradient of a sum: the threaded copy (NumPy's: 1 thread)
        dy = copy_into(np.empty(dy.shape, dy.dtype), dy)
    dx = _empty_like(dy)
    if not y.ndim:
        _softmax_bwd(y, dy, dx, bool(log))
        return dx
    if dy.shape != y.shape:  # the binding would only see the flattened shapes
        raise ValueError(f"softmax_backward: y {y.shape} and dy {dy.shape} must have the same shape")
    n, c, i = _nri(y.shape, dim)
    shape = (n, c) if i == 1 else (n, c, i)
    _softmax_bwd(y.reshape(shape), dy.reshape(shape), dx.reshape(shape), bool(log))
    return dx
