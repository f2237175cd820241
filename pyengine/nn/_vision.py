"""The vision layers of nn.functional (PyTorch's names and semantics, NCHW): convolution, transposed
convolution, pooling, batch and group norm, channel dropout, interpolation, unfold/fold.

Convolution, max/avg pooling and batch norm are Functions over the conv kernel family of
``pyengine.backend`` (reference/conv.py states each one); 1-D layers run as 2-D ones of height 1.
Adaptive average pooling and interpolation are products with small (out, in) matrices, group norm is
layer norm over each group: their gradients come from those ops.
"""
import math

import warnings

import numpy as np

from .._checks import check_alloc, check_kernel_float, int64_arg, real_arg, tensor_op
from ..autograd import Function, no_grad
from ..random import _rng
from ..tensor import Tensor, _wrap

__all__ = ["conv1d", "conv2d", "conv_transpose1d", "conv_transpose2d", "max_pool1d", "max_pool2d", "avg_pool1d",
           "avg_pool2d", "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_max_pool2d", "batch_norm",
           "group_norm", "dropout1d", "dropout2d", "interpolate", "upsample", "unfold", "fold"]


def _shape(t):
    return tuple(t.shape)


def _floats(op, *ts):
    for t in ts:
        if t is not None:
            check_kernel_float(op, t)
    dts = {t._data.dtype for t in ts if t is not None}
    if len(dts) > 1:
        raise TypeError(f"{op}: expected all tensors to have the same dtype, got {sorted(str(d) for d in dts)}")


def _tuple(op, name, v, n, minimum=0):
    """An int or a sequence of n ints (each >= minimum) as an n-tuple."""
    if isinstance(v, (tuple, list)):
        if len(v) != n:
            raise ValueError(f"{op}: {name} must be an int or a tuple of {n} ints, got {v!r}")
        out = tuple(int64_arg(op, name, e) for e in v)
    else:
        out = (int64_arg(op, name, v),) * n
    for e in out:
        if e < minimum:
            raise ValueError(f"{op}: {name} must be >= {minimum}, got {v!r}")
    return out


def _batched(op, input, spatial):
    """input (N, C, *spatial) or unbatched (C, *spatial): (batched input, whether a batch dim was added)."""
    if input.ndim == spatial + 2:
        return input, False
    if input.ndim == spatial + 1:
        return input.unsqueeze(0), True
    raise ValueError(f"{op}: expected a {spatial + 1}-D (unbatched) or {spatial + 2}-D (batched) input, "
                     f"got {_shape(input)}")


def _as4(a):
    """(N, C, L) arrays as (N, C, 1, L); 4-D ones as they are."""
    return a[:, :, None, :] if a.ndim == 3 else a


# ---------------------------------------------------------------------- convolution


class Conv(Function):
    """y = conv(x, w) + b (backend ``conv2d_forward``); dx, dw, db = ``conv2d_backward``(g, x, w): dx as
    ``conv2d_backward_input``(g, w), dw as ``conv2d_backward_weight``(g, x), db the sum of g over N and the
    positions (one sweep over g where the backend fuses them: depthwise).
    x: (N, C, [H,] W), w: (O, C / groups, [KH,] KW); a 1-D call runs as 2-D with height 1."""

    saves = (0, 1)
    fresh_grads = True  # dx, dw, db: new arrays from the backend (the 1-D case's views are copied as before)

    def forward(self, x, w, b, stride, padding, dilation, groups, out_hw):
        self.x, self.w, self.args = x, w, (stride, padding, dilation, groups)
        y = self.backend.conv2d_forward(_as4(x), _as4(w), b, stride, padding, dilation, groups, out_hw)
        return y.reshape(y.shape[:2] + y.shape[4 - x.ndim + 2:]) if x.ndim == 3 else y

    def backward(self, g):
        n, B = self.needs_input_grad, self.backend
        dx, dw, db = B.conv2d_backward(_as4(g), _as4(self.x), _as4(self.w), n[:3], *self.args)
        if n[0] and dx.shape != self.x.shape:
            dx = dx.reshape(self.x.shape)
        if n[1] and dw.shape != self.w.shape:
            dw = dw.reshape(self.w.shape)
        return dx, dw, db, None, None, None, None, None


class ConvTranspose(Function):
    """The adjoint of Conv in x: y = ``conv2d_backward_input``(x, w) + b, dx = ``conv2d_forward``(g, w),
    dw = ``conv2d_backward_weight``(x, g), db = ``conv2d_bias_grad``(g).   x: (N, Cin, [H,] W), w: (Cin, Cout / groups, [KH,] KW)."""

    saves = (0, 1)

    def forward(self, x, w, b, stride, padding, dilation, groups, out_hw):
        self.x, self.w, self.args = x, w, (stride, padding, dilation, groups)
        y = self.backend.conv2d_backward_input(_as4(x), _as4(w), out_hw, stride, padding, dilation, groups)
        if b is not None:
            y += b.reshape(1, -1, 1, 1)
        return y.reshape(y.shape[:2] + (y.shape[3],)) if x.ndim == 3 else y

    def backward(self, g):
        n, B = self.needs_input_grad, self.backend
        x4, w4, g4 = _as4(self.x), _as4(self.w), _as4(g)
        dx = B.conv2d_forward(g4, w4, None, *self.args, x4.shape[2:]).reshape(self.x.shape) if n[0] else None
        dw = B.conv2d_backward_weight(x4, g4, w4.shape[2:], *self.args).reshape(self.w.shape) if n[1] else None
        db = B.conv2d_bias_grad(g4) if n[2] else None
        return dx, dw, db, None, None, None, None, None


def _conv_out(n, k, s, p_total, d):
    return (n + p_total - d * (k - 1) - 1) // s + 1


def _conv(op, nd, input, weight, bias, stride, padding, dilation, groups):
    _floats(op, input, weight, bias)
    x, added = _batched(op, input, nd)
    if weight.ndim != nd + 2:
        raise ValueError(f"{op}: weight must be {nd + 2}-D (out_channels, in_channels / groups, kernel...), "
                         f"got {_shape(weight)}")
    groups = int64_arg(op, "groups", groups)
    if groups < 1:
        raise ValueError(f"{op}: groups must be >= 1, got {groups}")
    O, Cg = weight.shape[:2]
    C = x.shape[1]
    if C != Cg * groups or O % groups:
        raise RuntimeError(f"{op}: input {_shape(input)} and weight {_shape(weight)} do not match with groups="
                           f"{groups} (expected {Cg * groups} input channels and out_channels divisible by groups)")
    if bias is not None and _shape(bias) != (O,):
        raise RuntimeError(f"{op}: bias {_shape(bias)} does not match weight {_shape(weight)} (expected ({O},))")
    stride = _tuple(op, "stride", stride, nd, 1)
    dilation = _tuple(op, "dilation", dilation, nd, 1)
    ks = tuple(weight.shape[2:])
    sp = tuple(x.shape[2:])
    if isinstance(padding, str):
        if padding == "valid":
            before, total = (0,) * nd, (0,) * nd
        elif padding == "same":
            if any(s != 1 for s in stride):
                raise ValueError(f"{op}: padding='same' is not supported for strided convolutions (stride {stride})")
            total = tuple(d * (k - 1) for d, k in zip(dilation, ks))
            before = tuple(t // 2 for t in total)
        else:
            raise ValueError(f"{op}: padding must be 'valid', 'same', an int or a tuple of ints, got {padding!r}")
    else:
        before = _tuple(op, "padding", padding, nd, 0)
        total = tuple(2 * p for p in before)
    out = tuple(_conv_out(n, k, s, t, d) for n, k, s, t, d in zip(sp, ks, stride, total, dilation))
    if any(n + t < d * (k - 1) + 1 for n, k, t, d in zip(sp, ks, total, dilation)) or 0 in ks:
        raise RuntimeError(f"{op}: the kernel {ks} (dilation {dilation}) is larger than the padded input "
                           f"{_shape(input)} (padding {tuple(before)})")
    if nd == 1:
        stride, before, dilation, out = (1,) + stride, (0,) + before, (1,) + dilation, (1,) + out
    y = Conv.apply(x, weight, bias, stride, before, dilation, groups, out)
    return y.squeeze(0) if added else y


@tensor_op("input", "weight", "bias?")
def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D convolution (cross-correlation) over (N, C, H, W) or (C, H, W) input.

    weight (O, C / groups, KH, KW), bias (O,); stride, dilation: int or (h, w); padding: int, (h, w),
    'valid' (none) or 'same' (output as large as the input; stride 1; an odd total pads one more after).
    """
    return _conv("conv2d", 2, input, weight, bias, stride, padding, dilation, groups)


@tensor_op("input", "weight", "bias?")
def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """1-D convolution over (N, C, L) or (C, L) input; weight (O, C / groups, K). As conv2d."""
    return _conv("conv1d", 1, input, weight, bias, stride, padding, dilation, groups)


def _conv_transpose(op, nd, input, weight, bias, stride, padding, output_padding, groups, dilation):
    _floats(op, input, weight, bias)
    x, added = _batched(op, input, nd)
    if weight.ndim != nd + 2:
        raise ValueError(f"{op}: weight must be {nd + 2}-D (in_channels, out_channels / groups, kernel...), "
                         f"got {_shape(weight)}")
    groups = int64_arg(op, "groups", groups)
    if groups < 1:
        raise ValueError(f"{op}: groups must be >= 1, got {groups}")
    Cin, Og = weight.shape[:2]
    if x.shape[1] != Cin or Cin % groups:
        raise RuntimeError(f"{op}: input {_shape(input)} and weight {_shape(weight)} do not match with groups="
                           f"{groups} (expected {Cin} input channels, divisible by groups)")
    if bias is not None and _shape(bias) != (Og * groups,):
        raise RuntimeError(f"{op}: bias {_shape(bias)} does not match weight {_shape(weight)} "
                           f"(expected ({Og * groups},))")
    stride = _tuple(op, "stride", stride, nd, 1)
    dilation = _tuple(op, "dilation", dilation, nd, 1)
    padding = _tuple(op, "padding", padding, nd, 0)
    output_padding = _tuple(op, "output_padding", output_padding, nd, 0)
    for op_, s, d in zip(output_padding, stride, dilation):
        if op_ >= s and op_ >= d:
            raise ValueError(f"{op}: output_padding {output_padding} must be smaller than either stride {stride} "
                             f"or dilation {dilation}")
    ks = tuple(weight.shape[2:])
    out = tuple((n - 1) * s - 2 * p + d * (k - 1) + o + 1
                for n, k, s, p, d, o in zip(x.shape[2:], ks, stride, padding, dilation, output_padding))
    if any(o <= 0 for o in out) or 0 in ks:
        raise RuntimeError(f"{op}: input {_shape(input)} and weight {_shape(weight)} give an output of size {out}, "
                           "which is too small")
    if nd == 1:
        stride, padding, dilation, out = (1,) + stride, (0,) + padding, (1,) + dilation, (1,) + out
    y = ConvTranspose.apply(x, weight, bias, stride, padding, dilation, groups, out)
    return y.squeeze(0) if added else y


@tensor_op("input", "weight", "bias?")
def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """2-D transposed convolution (the gradient of conv2d in its input) over (N, Cin, H, W) or (Cin, H, W).

    weight (Cin, Cout / groups, KH, KW), bias (Cout,). Output size (H - 1) s - 2 p + d (KH - 1) + output_padding + 1.
    """
    return _conv_transpose("conv_transpose2d", 2, input, weight, bias, stride, padding, output_padding, groups,
                           dilation)


@tensor_op("input", "weight", "bias?")
def conv_transpose1d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """1-D transposed convolution over (N, Cin, L) or (Cin, L); weight (Cin, Cout / groups, K)."""
    return _conv_transpose("conv_transpose1d", 1, input, weight, bias, stride, padding, output_padding, groups,
                           dilation)


# ---------------------------------------------------------------------- pooling


class MaxPool(Function):
    """y, idx = ``max_pool2d_forward``(x) (idx: the position h W + w of each max in its plane);
    dx = ``max_pool2d_backward``(g, idx) (idx is the second output: saves "out")."""

    saves = ("out",)
    differentiable_outputs = (0,)

    def forward(self, x, kernel, stride, padding, dilation, out_hw):
        self.in_shape = x.shape
        y, idx = self.backend.max_pool2d_forward(_as4(x), kernel, stride, padding, dilation, out_hw)
        self.idx = idx
        if x.ndim == 3:
            y, idx = y.reshape(y.shape[:2] + (y.shape[3],)), idx.reshape(idx.shape[:2] + (idx.shape[3],))
        return y, idx

    def backward(self, g, _gi=None):
        s = self.in_shape
        dx = self.backend.max_pool2d_backward(_as4(g), self.idx, s[2:] if len(s) == 4 else (1, s[2]))
        return dx.reshape(s), None, None, None, None, None


class AvgPool(Function):
    """y = ``avg_pool2d_forward``(x): window sums over their divisors; dx = ``avg_pool2d_backward``(g)."""

    saves = ()

    def forward(self, x, kernel, stride, padding, out_hw, count_include_pad, divisor_override):
        self.in_shape, self.args = x.shape, (kernel, stride, padding, count_include_pad, divisor_override)
        y = self.backend.avg_pool2d_forward(_as4(x), kernel, stride, padding, out_hw, count_include_pad,
                                            divisor_override)
        return y.reshape(y.shape[:2] + (y.shape[3],)) if x.ndim == 3 else y

    def backward(self, g):
        s = self.in_shape
        dx = self.backend.avg_pool2d_backward(_as4(g), s[2:] if len(s) == 4 else (1, s[2]), *self.args)
        return dx.reshape(s), None, None, None, None, None, None


def _pool_out(op, n, k, s, p, d, ceil_mode):
    span = n + 2 * p - d * (k - 1) - 1
    o = (-(-span // s) if ceil_mode else span // s) + 1
    if ceil_mode and (o - 1) * s >= n + p:  # the last window must start inside the input or its left padding
        o -= 1
    if span < 0 or o < 1:
        raise RuntimeError(f"{op}: the window (kernel {k}, dilation {d}) does not fit the input of size {n} "
                           f"with padding {p}")
    return o


def _pool_args(op, nd, kernel_size, stride, padding, dilation):
    kernel = _tuple(op, "kernel_size", kernel_size, nd, 1)
    stride = kernel if stride is None or (isinstance(stride, (tuple, list)) and not stride) else \
        _tuple(op, "stride", stride, nd, 1)
    padding = _tuple(op, "padding", padding, nd, 0)
    dilation = _tuple(op, "dilation", dilation, nd, 1)
    for p, k in zip(padding, kernel):
        if p > k // 2:
            raise ValueError(f"{op}: padding {padding} should be at most half of the kernel size {kernel}")
    return kernel, stride, padding, dilation


def _max_pool(op, nd, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices):
    _floats(op, input)
    x, added = _batched(op, input, nd)
    kernel, stride, padding, dilation = _pool_args(op, nd, kernel_size, stride, padding, dilation)
    out = tuple(_pool_out(op, n, k, s, p, d, ceil_mode)
                for n, k, s, p, d in zip(x.shape[2:], kernel, stride, padding, dilation))
    if nd == 1:
        kernel, stride, padding, dilation, out = ((1,) + kernel, (1,) + stride, (0,) + padding, (1,) + dilation,
                                                  (1,) + out)
    y, idx = MaxPool.apply(x, kernel, stride, padding, dilation, out)
    if added:
        y, idx = y.squeeze(0), idx.squeeze(0)
    return (y, idx) if return_indices else y


@tensor_op("input")
def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    """The max of each window of (N, C, H, W) or (C, H, W) input (padding reads as -inf; stride defaults to
    the kernel). return_indices: also each max's position h W + w in its plane (int64)."""
    return _max_pool("max_pool2d", 2, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices)


@tensor_op("input")
def max_pool1d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    """max_pool2d's 1-D form over (N, C, L) or (C, L)."""
    return _max_pool("max_pool1d", 1, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices)


def _avg_pool(op, nd, input, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override):
    _floats(op, input)
    x, added = _batched(op, input, nd)
    kernel, stride, padding, _ = _pool_args(op, nd, kernel_size, stride, padding, 1)
    if divisor_override is not None:
        divisor_override = int64_arg(op, "divisor_override", divisor_override)
        if divisor_override == 0:
            raise ValueError(f"{op}: divisor must be not zero")
    out = tuple(_pool_out(op, n, k, s, p, 1, ceil_mode) for n, k, s, p in zip(x.shape[2:], kernel, stride, padding))
    if nd == 1:
        kernel, stride, padding, out = (1,) + kernel, (1,) + stride, (0,) + padding, (1,) + out
    y = AvgPool.apply(x, kernel, stride, padding, out, bool(count_include_pad), divisor_override)
    return y.squeeze(0) if added else y


@tensor_op("input")
def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    """The mean of each window of (N, C, H, W) or (C, H, W) input (padding reads as 0; count_include_pad:
    padded positions count in the divisor; divisor_override: divide by it instead)."""
    return _avg_pool("avg_pool2d", 2, input, kernel_size, stride, padding, ceil_mode, count_include_pad,
                     divisor_override)


@tensor_op("input")
def avg_pool1d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    """avg_pool2d's 1-D form over (N, C, L) or (C, L)."""
    return _avg_pool("avg_pool1d", 1, input, kernel_size, stride, padding, ceil_mode, count_include_pad, None)


def _adaptive_bounds(n, o):
    """Window i of an adaptive pool over n positions into o: [floor(i n / o), ceil((i + 1) n / o))."""
    return [(i * n // o, -(-(i + 1) * n // o)) for i in range(o)]


def _mean_matrix(n, o, dtype):
    a = np.zeros((o, n), dtype)
    for i, (s, e) in enumerate(_adaptive_bounds(n, o)):
        a[i, s:e] = 1.0 / (e - s)
    return a


def _out_size(op, output_size, nd, sp):
    if isinstance(output_size, (tuple, list)):
        if len(output_size) != nd:
            raise ValueError(f"{op}: output_size must be an int or a tuple of {nd}, got {output_size!r}")
        out = tuple(n if o is None else int64_arg(op, "output_size", o) for o, n in zip(output_size, sp))
    else:
        out = (int64_arg(op, "output_size", output_size),) * nd
    if any(o < 1 for o in out) and not any(n == 0 for n in sp):
        raise ValueError(f"{op}: output_size must be positive, got {output_size!r}")
    return out


def _adaptive_avg(op, nd, input, output_size):
    _floats(op, input)
    if input.ndim < nd + 1:
        raise ValueError(f"{op}: expected an input of at least {nd + 1} dims, got {_shape(input)}")
    sp = tuple(input.shape[-nd:])
    out = _out_size(op, output_size, nd, sp)
    if any(n == 0 for n in sp):
        raise RuntimeError(f"{op}: input {_shape(input)} has an empty spatial dim")
    dt = input._data.dtype
    y = input
    if nd == 2:
        y = _wrap(_mean_matrix(sp[0], out[0], dt)) @ y
    return y @ _wrap(np.ascontiguousarray(_mean_matrix(sp[-1], out[-1], dt).T))


@tensor_op("input")
def adaptive_avg_pool2d(input, output_size):
    """Average pooling to ``output_size`` (int, (h, w), None keeps a dim): window i of n positions into o is
    [floor(i n / o), ceil((i + 1) n / o))."""
    return _adaptive_avg("adaptive_avg_pool2d", 2, input, output_size)


@tensor_op("input")
def adaptive_avg_pool1d(input, output_size):
    """adaptive_avg_pool2d's 1-D form over (N, C, L) or (C, L)."""
    return _adaptive_avg("adaptive_avg_pool1d", 1, input, output_size)


@tensor_op("input")
def adaptive_max_pool2d(input, output_size, return_indices=False):
    """Max pooling to ``output_size`` with adaptive_avg_pool2d's windows."""
    from ..ops import stack
    op = "adaptive_max_pool2d"
    _floats(op, input)
    if input.ndim not in (3, 4):
        raise ValueError(f"{op}: expected a 3-D or 4-D input, got {_shape(input)}")
    if return_indices:
        raise NotImplementedError(f"{op}: return_indices=True is not supported")
    H, W = input.shape[-2:]
    out = _out_size(op, output_size, 2, (H, W))
    check_alloc(op, math.prod(input.shape[:-2]) * out[0] * out[1] * input._data.itemsize, "its output")
    if H == 0 or W == 0:
        raise RuntimeError(f"{op}: input {_shape(input)} has an empty spatial dim")
    rows = []
    for hs, he in _adaptive_bounds(H, out[0]):
        rows.append(stack([input[..., hs:he, ws:we].amax((-2, -1)) for ws, we in _adaptive_bounds(W, out[1])], -1))
    return stack(rows, -2)


# ---------------------------------------------------------------------- normalization


class BatchNorm(Function):
    """y = (x - mean) / sqrt(var + eps) weight + bias per channel of x (N, C, L) (backend
    ``batch_norm_forward/backward``); mean and var the batch's own (training) or given (eval)."""

    saves = (0, 1)

    def forward(self, x, weight, bias, eps, mean, var, training):
        x3 = x.reshape(x.shape[0], x.shape[1], -1) if x.ndim != 3 else x
        y, self.mean, self.var = self.backend.batch_norm_forward(x3, weight, bias, eps, mean, var)
        self.x3, self.weight, self.eps, self.training = x3, weight, eps, training
        return y.reshape(x.shape)

    def backward(self, g, *_):
        g3 = g.reshape(self.x3.shape)
        dx, dw, db = self.backend.batch_norm_backward(g3, self.x3, self.weight, self.mean, self.var, self.eps,
                                                      self.training)
        n = self.needs_input_grad
        return (dx.reshape(g.shape) if n[0] else None, dw if n[1] else None, db if n[2] else None,
                None, None, None, None)


@tensor_op("input", "running_mean?", "running_var?", "weight?", "bias?")
def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1, eps=1e-5):
    """Batch normalization over (N, C, *) per channel C.

    training: normalize by the batch's statistics (over N and the positions); running_mean / running_var
    (when given) become (1 - momentum) running + momentum batch (var unbiased). Else by running_mean/var.
    """
    op = "batch_norm"
    _floats(op, input, weight, bias)
    if input.ndim < 2:
        raise ValueError(f"{op}: expected an input of at least 2 dims (N, C, *), got {_shape(input)}")
    C = input.shape[1]
    for name, t in (("running_mean", running_mean), ("running_var", running_var), ("weight", weight),
                    ("bias", bias)):
        if t is not None and _shape(t) != (C,):
            raise RuntimeError(f"{op}: {name} {_shape(t)} does not match input {_shape(input)} (expected ({C},))")
    eps = real_arg(op, "eps", eps)
    momentum = real_arg(op, "momentum", momentum)
    xd = input._data
    if training:
        n = xd.size // C if C else 0
        if n <= 1:
            raise ValueError(f"{op}: expected more than 1 value per channel when training, got input size "
                             f"{_shape(input)}")
        y = BatchNorm.apply(input, weight, bias, eps, None, None, True)
        fn_mean, fn_var = _batch_stats(y, input, weight, bias, eps)
        with no_grad():
            if running_mean is not None:
                running_mean.mul_(1 - momentum).add_(_wrap(fn_mean.astype(running_mean._data.dtype)), alpha=momentum)
            if running_var is not None:
                unbiased = fn_var * (n / (n - 1))
                running_var.mul_(1 - momentum).add_(_wrap(unbiased.astype(running_var._data.dtype)), alpha=momentum)
        return y
    if running_mean is None or running_var is None:
        raise RuntimeError(f"{op}: running_mean and running_var must be given when training is False")
    return BatchNorm.apply(input, weight, bias, eps, running_mean._data.astype(xd.dtype),
                           running_var._data.astype(xd.dtype), False)


def _batch_stats(y, input, weight, bias, eps):
    """The batch mean and biased var a training BatchNorm used (kept on its node; computed again when
    no graph was built)."""
    if y.grad_fn is not None:
        fn = y.grad_fn.fn
        return fn.mean, fn.var
    from ..backend import backend_of
    xd = input._data
    _, m, v = backend_of(xd).batch_norm_forward(xd.reshape(xd.shape[0], xd.shape[1], -1), None, None, eps)
    return m, v


@tensor_op("input", "weight?", "bias?")
def group_norm(input, num_groups, weight=None, bias=None, eps=1e-5):
    """Normalize (N, C, *) over each group of C / num_groups channels and the positions, then scale and
    shift per channel."""
    from .functional import layer_norm
    op = "group_norm"
    _floats(op, input, weight, bias)
    G = int64_arg(op, "num_groups", num_groups)
    if input.ndim < 2:
        raise ValueError(f"{op}: expected an input of at least 2 dims (N, C, *), got {_shape(input)}")
    N, C = input.shape[:2]
    if G < 1 or C % G:
        raise RuntimeError(f"{op}: expected the number of channels {C} to be divisible by num_groups {G}")
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None and _shape(t) != (C,):
            raise RuntimeError(f"{op}: {name} {_shape(t)} does not match input {_shape(input)} (expected ({C},))")
    eps = real_arg(op, "eps", eps)
    per = (C // G) * math.prod(input.shape[2:])
    y = layer_norm(input.reshape(N, G, per), (per,), eps=eps).reshape(*input.shape)
    shape = (1, C) + (1,) * (input.ndim - 2)
    if weight is not None:
        y = y * weight.reshape(*shape)
    if bias is not None:
        y = y + bias.reshape(*shape)
    return y


# ---------------------------------------------------------------------- channel dropout


def _channel_dropout(op, input, p, training, batched_ndim, generator=None, lead=None):
    """Dropout of whole channels: the mask has the input's first ``lead`` dims ((N, C) batched, (C,) unbatched)
    and is broadcast over the rest."""
    p = real_arg(op, "p", p)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{op}: dropout probability has to be between 0 and 1, but got {p}")
    if lead is None and input.ndim not in (batched_ndim - 1, batched_ndim):
        raise ValueError(f"{op}: expected a {batched_ndim - 1}-D (unbatched) or {batched_ndim}-D (batched) input, "
                         f"got {_shape(input)}")
    if input._data.dtype.kind != "f":
        raise TypeError(f"{op}: expected a floating point input, got {input.dtype}")
    if not training or p == 0.0:
        return input
    if lead is None:
        lead = input.ndim - (batched_ndim - 2)  # (N, C) or (C,)
    mshape = tuple(input.shape[:lead]) + (1,) * (input.ndim - lead)
    dt = input._data.dtype
    if p == 1.0:
        mask = np.zeros(mshape, dt)
    else:
        mask = (_rng(generator).random(mshape) >= p).astype(dt) * dt.type(1.0 / (1.0 - p))
    return input * _wrap(mask)


@tensor_op("input")
def dropout2d(input, p=0.5, training=True, inplace=False):
    """Zero whole channels of (N, C, H, W) input with probability p, scaling the rest by 1 / (1 - p)
    (training only). Other ranks as PyTorch 2.x (below)."""
    # PyTorch 2.x reads every input but 4-D as (N, C, *) too: a 3-D input gets dropout1d's behaviour (one mask
    # value per (n, c)) and a 2-D one element-wise masks, each with a warning; below 2-D it is an error.
    if input.ndim < 2:
        raise ValueError(f"dropout2d: feature dropout requires at least 2 dimensions in the input, got {_shape(input)}")
    if input.ndim == 3:
        warnings.warn("dropout2d: Received a 3D input to dropout2d and assuming that channel-wise 1D dropout "
                      "behavior is desired - input is interpreted as shape (N, C, L), where C is the channel dim. "
                      "This behavior will change in a future release to interpret the input as one without a batch "
                      "dimension, i.e. shape (C, H, W). To maintain the 1D channel-wise dropout behavior, please "
                      "switch to using dropout1d instead.", stacklevel=3)
    elif input.ndim != 4:
        warnings.warn(f"dropout2d: Received a {input.ndim}-D input to dropout2d, which is deprecated and will "
                      "result in an error in a future release. To retain the behavior and silence this warning, "
                      "please use dropout instead. Note that dropout2d exists to provide channel-wise dropout on "
                      "inputs with 2 spatial dimensions, a channel dimension, and an optional batch dimension "
                      "(i.e. 3D or 4D inputs).", stacklevel=3)
    return _channel_dropout("dropout2d", input, p, training, 4, lead=2)


@tensor_op("input")
def dropout1d(input, p=0.5, training=True, inplace=False):
    """dropout2d over (N, C, L) or (C, L) input."""
    return _channel_dropout("dropout1d", input, p, training, 3)


# ---------------------------------------------------------------------- interpolation


def _linear_matrix(n, o, align_corners, scale, dtype):
    """(o, n): row i holds the linear interpolation weights of output position i."""
    a = np.zeros((o, n), np.float64)
    i = np.arange(o, dtype=np.float64)
    if align_corners:
        src = i * ((n - 1) / (o - 1)) if o > 1 else np.zeros(o)
    else:
        src = np.maximum((i + 0.5) * scale - 0.5, 0.0)
    i0 = np.minimum(np.floor(src).astype(np.int64), n - 1)
    i1 = np.minimum(i0 + 1, n - 1)
    lam = src - i0
    np.add.at(a, (np.arange(o), i0), 1.0 - lam)
    np.add.at(a, (np.arange(o), i1), lam)
    return a.astype(dtype)


@tensor_op("input")
def interpolate(input, size=None, scale_factor=None, mode="nearest", align_corners=None,
                recompute_scale_factor=None, antialias=False):
    """Resize (N, C, L) or (N, C, H, W) input to ``size`` or by ``scale_factor``.

    mode: 'nearest' (source floor(i scale)), 'linear' (3-D), 'bilinear' (4-D); align_corners: the corner
    pixels' centres line up (linear modes only). scale = in / out, or 1 / scale_factor when given and not
    recompute_scale_factor.
    """
    op = "interpolate"
    if mode not in ("nearest", "linear", "bilinear"):
        raise NotImplementedError(f"{op}: mode {mode!r} is not supported (nearest, linear, bilinear)")
    if input._data.dtype.kind != "f":
        raise TypeError(f"{op}: expected a floating point input, got {input.dtype}")
    nd = input.ndim - 2
    if nd not in (1, 2):
        raise ValueError(f"{op}: expected a 3-D or 4-D input (N, C, ...), got {_shape(input)}")
    if mode == "linear" and nd != 1 or mode == "bilinear" and nd != 2:
        raise ValueError(f"{op}: mode {mode!r} needs a {3 if mode == 'linear' else 4}-D input, got {_shape(input)}")
    if mode == "nearest" and align_corners is not None:
        raise ValueError(f"{op}: align_corners can only be set with the interpolating modes linear and bilinear")
    if antialias:
        raise NotImplementedError(f"{op}: antialias=True is not supported")
    sp = tuple(input.shape[2:])
    if (size is None) == (scale_factor is None):
        raise ValueError(f"{op}: exactly one of size and scale_factor must be given")
    if size is not None:
        out = _tuple(op, "size", size, nd, 1)
        scales = [n / o for n, o in zip(sp, out)]
    else:
        sf = scale_factor if isinstance(scale_factor, (tuple, list)) else (scale_factor,) * nd
        if len(sf) != nd:
            raise ValueError(f"{op}: scale_factor must be a number or a tuple of {nd}, got {scale_factor!r}")
        sf = [real_arg(op, "scale_factor", s) for s in sf]
        if any(not s > 0 or not math.isfinite(s) for s in sf):
            raise ValueError(f"{op}: scale_factor must be positive and finite, got {scale_factor!r}")
        out = tuple(int(math.floor(n * s)) for n, s in zip(sp, sf))
        if any(o < 1 for o in out):
            raise ValueError(f"{op}: the output size {out} is empty")
        scales = [n / o for n, o in zip(sp, out)] if recompute_scale_factor else [1.0 / s for s in sf]
    if any(n == 0 for n in sp):
        raise ValueError(f"{op}: input {_shape(input)} has an empty spatial dim")
    y = input
    if mode == "nearest":
        for d, (n, o, s) in enumerate(zip(sp, out, scales)):
            idx = np.minimum(np.floor(np.arange(o, dtype=np.float64) * s).astype(np.int64), n - 1)
            if o != n or s != 1.0:
                y = y.index_select(2 + d, _wrap(idx))
        return y
    ac = bool(align_corners)
    dt = input._data.dtype
    if nd == 2:
        y = _wrap(_linear_matrix(sp[0], out[0], ac, scales[0], dt)) @ y
    return y @ _wrap(np.ascontiguousarray(_linear_matrix(sp[-1], out[-1], ac, scales[-1], dt).T))


def upsample(input, size=None, scale_factor=None, mode="nearest", align_corners=None):
    """interpolate under its old name."""
    return interpolate(input, size, scale_factor, mode, align_corners)


# ---------------------------------------------------------------------- unfold / fold


def _im2col(xp, x, kernel, stride, padding, dilation, out_hw):
    """(N, C, KH, KW, Ho, Wo): column (c, i, j) of output position (p, q) is x[c, p s - pad + i d, ...]."""
    (ph, pw), (H, W) = padding, x.shape[2:]
    need = [(o - 1) * s + d * (k - 1) + 1 for o, k, s, d in zip(out_hw, kernel, stride, dilation)]
    xp_ = xp.pad(x, ((0, 0), (0, 0), (ph, max(need[0] - H - ph, 0)), (pw, max(need[1] - W - pw, 0))))
    cols = xp.empty(x.shape[:2] + tuple(kernel) + tuple(out_hw), x.dtype)
    for i in range(kernel[0]):
        for j in range(kernel[1]):
            cols[:, :, i, j] = xp_[:, :, i * dilation[0]:i * dilation[0] + (out_hw[0] - 1) * stride[0] + 1:stride[0],
                                   j * dilation[1]:j * dilation[1] + (out_hw[1] - 1) * stride[1] + 1:stride[1]]
    return cols


def _col2im(xp, cols, in_hw, kernel, stride, padding, dilation):
    (ph, pw), (H, W) = padding, in_hw
    out_hw = cols.shape[4:]
    need = [(o - 1) * s + d * (k - 1) + 1 for o, k, s, d in zip(out_hw, kernel, stride, dilation)]
    dx = xp.zeros(cols.shape[:2] + (max(need[0], H + ph), max(need[1], W + pw)), cols.dtype)
    for i in range(kernel[0]):
        for j in range(kernel[1]):
            dx[:, :, i * dilation[0]:i * dilation[0] + (out_hw[0] - 1) * stride[0] + 1:stride[0],
               j * dilation[1]:j * dilation[1] + (out_hw[1] - 1) * stride[1] + 1:stride[1]] += cols[:, :, i, j]
    return xp.ascontiguousarray(dx[:, :, ph:ph + H, pw:pw + W])


class Col2Im(Function):
    """x (N, C, H, W) = col2im(cols (N, C KH KW, L)): overlapping entries summed; dcols = im2col(g)."""

    saves = ()

    def forward(self, cols, in_hw, kernel, stride, padding, dilation, out_hw):
        self.args, self.out_hw = (kernel, stride, padding, dilation), out_hw
        N, CK, L = cols.shape
        c = cols.reshape(N, CK // (kernel[0] * kernel[1]), kernel[0], kernel[1], *out_hw)
        return _col2im(self.xp, c, in_hw, kernel, stride, padding, dilation)

    def backward(self, g):
        c = _im2col(self.xp, g, *self.args, self.out_hw)
        return c.reshape(g.shape[0], -1, self.out_hw[0] * self.out_hw[1]), None, None, None, None, None, None


def _fold_args(op, kernel_size, dilation, padding, stride):
    return (_tuple(op, "kernel_size", kernel_size, 2, 1), _tuple(op, "stride", stride, 2, 1),
            _tuple(op, "padding", padding, 2, 0), _tuple(op, "dilation", dilation, 2, 1))


@tensor_op("input")
def unfold(input, kernel_size, dilation=1, padding=0, stride=1):
    """The sliding blocks of (N, C, H, W) or (C, H, W) input as columns: (N, C KH KW, L), L the number of
    blocks (row-major)."""
    op = "unfold"
    if input._data.dtype.kind not in "fiub":
        raise TypeError(f"{op}: unsupported dtype {input.dtype}")
    x, added = _batched(op, input, 2)
    kernel, stride, padding, dilation = _fold_args(op, kernel_size, dilation, padding, stride)
    out = tuple(_conv_out(n, k, s, 2 * p, d) for n, k, s, p, d in zip(x.shape[2:], kernel, stride, padding, dilation))
    if any(o < 1 for o in out):
        raise RuntimeError(f"{op}: the blocks (kernel {kernel}, dilation {dilation}) do not fit input "
                           f"{_shape(input)} with padding {padding}")
    y = Im2Col.apply(x, kernel, stride, padding, dilation, out)
    return y.squeeze(0) if added else y


class Im2Col(Function):
    """cols (N, C KH KW, L) of x (N, C, H, W) (im2col); dx = col2im(g)."""

    saves = ()

    def forward(self, x, kernel, stride, padding, dilation, out_hw):
        self.args, self.in_hw, self.out_hw = (kernel, stride, padding, dilation), x.shape[2:], out_hw
        c = _im2col(self.xp, x, kernel, stride, padding, dilation, out_hw)
        return c.reshape(x.shape[0], -1, out_hw[0] * out_hw[1])

    def backward(self, g):
        kernel = self.args[0]
        c = g.reshape(g.shape[0], -1, kernel[0], kernel[1], *self.out_hw)
        return _col2im(self.xp, c, self.in_hw, *self.args), None, None, None, None, None


@tensor_op("input")
def fold(input, output_size, kernel_size, dilation=1, padding=0, stride=1):
    """The adjoint of unfold: columns (N, C KH KW, L) or (C KH KW, L) summed back into (N, C, H, W)."""
    op = "fold"
    if input._data.dtype.kind not in "fiub":
        raise TypeError(f"{op}: unsupported dtype {input.dtype}")
    if input.ndim not in (2, 3):
        raise ValueError(f"{op}: expected a 2-D (unbatched) or 3-D (batched) input, got {_shape(input)}")
    x, added = (input.unsqueeze(0), True) if input.ndim == 2 else (input, False)
    in_hw = _tuple(op, "output_size", output_size, 2, 1)
    kernel, stride, padding, dilation = _fold_args(op, kernel_size, dilation, padding, stride)
    out = tuple(_conv_out(n, k, s, 2 * p, d) for n, k, s, p, d in zip(in_hw, kernel, stride, padding, dilation))
    K = kernel[0] * kernel[1]
    if x.shape[1] % K or any(o < 1 for o in out) or x.shape[2] != out[0] * out[1]:
        raise RuntimeError(f"{op}: input {_shape(input)} does not match output_size {in_hw}, kernel {kernel}, "
                           f"stride {stride}, padding {padding}, dilation {dilation} (expected (N, C * {K}, "
                           f"{max(out[0], 0) * max(out[1], 0)}))")
    y = Col2Im.apply(x, in_hw, kernel, stride, padding, dilation, out)
    return y.squeeze(0) if added else y
