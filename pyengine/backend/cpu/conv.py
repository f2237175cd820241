"""Compiled conv kernels (csrc/cpu/conv.cpp); the specification is reference/conv.py.

Same signatures and return conventions as the reference. Inputs are made C-contiguous here; outputs are
allocated here and filled by the kernels.
"""
import numpy as np

from ._lib import _C
from .reduce import sum_dims, sum_rows

__all__ = ["conv2d_forward", "conv2d_backward_input", "conv2d_backward_weight", "conv2d_backward",
           "conv2d_bias_grad", "max_pool2d_forward",
           "max_pool2d_backward", "avg_pool2d_forward", "avg_pool2d_backward", "batch_norm_forward",
           "batch_norm_backward"]

_c = np.ascontiguousarray
_empty = np.empty


def _pair(v):
    return (int(v[0]), int(v[1]))


def conv2d_forward(x, w, b, stride, padding, dilation, groups, out_hw):
    """y (N, O, Ho, Wo) = conv(x (N, C, H, W), w (O, C / groups, KH, KW)) + b."""
    x, w = _c(x), _c(w)
    y = _empty((x.shape[0], w.shape[0]) + tuple(out_hw), x.dtype)
    _C.conv2d_forward(x, w, None if b is None else _c(b), _pair(stride), _pair(padding), _pair(dilation),
                      int(groups), y)
    return y


def conv2d_backward_input(dy, w, in_hw, stride, padding, dilation, groups):
    """dx (N, C, H, W) of conv2d_forward."""
    dy, w = _c(dy), _c(w)
    dx = _empty((dy.shape[0], w.shape[1] * int(groups)) + tuple(in_hw), dy.dtype)
    _C.conv2d_backward_input(dy, w, _pair(stride), _pair(padding), _pair(dilation), int(groups), dx)
    return dx


def conv2d_backward_weight(dy, x, kernel, stride, padding, dilation, groups):
    """dw (O, C / groups, KH, KW) of conv2d_forward."""
    dy, x = _c(dy), _c(x)
    dw = _empty((dy.shape[1], x.shape[1] // max(int(groups), 1)) + tuple(kernel), dy.dtype)
    _C.conv2d_backward_weight(dy, x, _pair(stride), _pair(padding), _pair(dilation), int(groups), dw)
    return dw


def conv2d_backward(dy, x, w, needs, stride, padding, dilation, groups):
    """(dx, dw, db) of conv2d_forward (None where ``needs`` says so): in one sweep over dy where the kernels
    have a fused pass (depthwise), else the passes apart."""
    dy, x, w = _c(dy), _c(x), _c(w)
    dx = _empty(x.shape, dy.dtype) if needs[0] else None
    dw = _empty(w.shape, dy.dtype) if needs[1] else None
    db = _empty(w.shape[:1], dy.dtype) if needs[2] else None
    if _C.conv2d_backward_fused(dy, x, w, _pair(stride), _pair(padding), _pair(dilation), int(groups), dx, dw, db):
        return dx, dw, db
    if needs[0]:
        _C.conv2d_backward_input(dy, w, _pair(stride), _pair(padding), _pair(dilation), int(groups), dx)
    if needs[1]:
        _C.conv2d_backward_weight(dy, x, _pair(stride), _pair(padding), _pair(dilation), int(groups), dw)
    if needs[2]:
        db = conv2d_bias_grad(dy)
    return dx, dw, db


def conv2d_bias_grad(dy):
    """db[o] = sum over n, h, w of dy[n, o, h, w]: each (n, o) plane's sum, then the images' in a fixed order, on
    the threaded reduction kernels (NumPy's sum over axes (0, 2, 3) runs on one thread: 0.15-0.6 ms of a
    ResNet layer's backward)."""
    dy = _c(dy)
    N, O = dy.shape[:2]
    if dy.size == 0:  # no images or no positions: an empty sum
        return np.zeros(O, dy.dtype)
    return sum_rows(sum_dims(dy.reshape(N * O, -1), (1,)).reshape(N, O))


def conv2d_workspace_bytes(x_shape, w_shape, out_hw, stride, padding, dilation, groups, itemsize):
    """Bytes the convolution kernels allocate beside their operands (bounded column tiles), at the current
    thread count."""
    N, C, H, W = x_shape
    O, _, KH, KW = w_shape
    return _C.conv2d_workspace_bytes([N, C, H, W, O, KH, KW, *out_hw, *stride, *padding, *dilation, groups],
                                     int(itemsize))


def max_pool2d_forward(x, kernel, stride, padding, dilation, out_hw):
    """y, idx (N, C, Ho, Wo): window maxima and their positions h W + w."""
    x = _c(x)
    y = _empty(x.shape[:2] + tuple(out_hw), x.dtype)
    idx = _empty(y.shape, np.int64)
    _C.max_pool2d_forward(x, _pair(kernel), _pair(stride), _pair(padding), _pair(dilation), y, idx)
    return y, idx


def max_pool2d_backward(dy, idx, in_hw):
    """dx (N, C, H, W): dy summed at idx."""
    dy = _c(dy)
    dx = _empty(dy.shape[:2] + tuple(in_hw), dy.dtype)
    _C.max_pool2d_backward(dy, _c(idx), dx)
    return dx


def avg_pool2d_forward(x, kernel, stride, padding, out_hw, count_include_pad=True, divisor_override=None):
    """y (N, C, Ho, Wo): window sums over their divisors."""
    x = _c(x)
    y = _empty(x.shape[:2] + tuple(out_hw), x.dtype)
    _C.avg_pool2d_forward(x, _pair(kernel), _pair(stride), _pair(padding), bool(count_include_pad),
                          int(divisor_override or 0), y)
    return y


def avg_pool2d_backward(dy, in_hw, kernel, stride, padding, count_include_pad=True, divisor_override=None):
    """dx (N, C, H, W) of avg_pool2d_forward."""
    dy = _c(dy)
    dx = _empty(dy.shape[:2] + tuple(in_hw), dy.dtype)
    _C.avg_pool2d_backward(dy, _pair(kernel), _pair(stride), _pair(padding), bool(count_include_pad),
                           int(divisor_override or 0), dx)
    return dx


def batch_norm_forward(x, weight, bias, eps, mean=None, var=None):
    """y (N, C, L), mean (C,), var (C,): the batch's statistics when mean is None, else the given ones."""
    x = _c(x)
    C = x.shape[1]
    y = _empty(x.shape, x.dtype)
    stats = mean is None
    mean = _empty(C, x.dtype) if stats else np.array(mean, x.dtype, order="C")
    var = _empty(C, x.dtype) if stats else np.array(var, x.dtype, order="C")
    _C.batch_norm_forward(x, None if weight is None else _c(weight), None if bias is None else _c(bias), float(eps),
                          y, mean, var, stats)
    return y, mean, var


def batch_norm_backward(dy, x, weight, mean, var, eps, training=True):
    """(dx (N, C, L), dweight (C,) or None, dbias (C,))."""
    dy, x = _c(dy), _c(x)
    C = x.shape[1]
    dx = _empty(x.shape, x.dtype)
    dw = None if weight is None else _empty(C, x.dtype)
    db = _empty(C, x.dtype)
    _C.batch_norm_backward(dy, x, None if weight is None else _c(weight), _c(mean), _c(var), float(eps),
                           bool(training), dx, dw, db)
    return dx, dw, db
