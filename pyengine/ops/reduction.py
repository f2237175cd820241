"""Reductions (sum, mean, max, min, var, std, logsumexp), softmax, argmax, topk."""
import builtins
import collections
import math

import numpy as np

from .._checks import KERNEL_FLOATS, check_kernel_float, index_arg, int64_arg, tensor_op
from ..autograd import Function
from ..backend import xp_of
from ..tensor import _norm_dim, _wrap

values_indices = collections.namedtuple("values_indices", ["values", "indices"])


def _dims(dim, ndim, op):
    """dim (None, int or tuple) -> a sorted tuple of non-negative axes."""
    if dim is None:
        return tuple(range(ndim))
    if type(dim) is int:  # the usual case, without the set and the sort (half of sum(x, 1)'s Python time)
        return (_norm_dim(dim, ndim, op),)
    if not isinstance(dim, (tuple, list)):
        dim = (dim,)  # one dim: _norm_dim checks that it is an integer
    return tuple(sorted({_norm_dim(d, ndim, op) for d in dim}))


def _expand_grad(xp, g, shape, axes, keepdim):
    """Broadcast a reduced gradient back to the input's shape (a view of g, read-only where it broadcasts)."""
    if type(g) is _ndarray and g.size and (g.size == 1 or g.strides.count(0) == g.ndim) and g.shape != shape:
        # one value (the gradient of a sum of a sum: a 0-d seed, or itself a broadcast one): every stride 0,
        # built directly on its first element, without the reshape and the checks below (~half the time)
        view = _ndarray(shape, g.dtype, g[(_first,) * g.ndim] if g.ndim else g, 0, (0,) * len(shape))
        view.flags.writeable = False
        return view
    if not keepdim and axes:  # the reduced dims back as 1s: expand_dims without its checks (~1 us a call)
        g = g.reshape(tuple([1 if i in axes else n for i, n in enumerate(shape)]))
    if g.shape == shape:  # nothing to broadcast (a one-element sum)
        return g
    if type(g) is _ndarray and g.ndim == len(shape) and g.flags.c_contiguous:
        # np.broadcast_to's view built directly: stride 0 along the stretched dims, read-only. NumPy's function
        # spends ~5 us on argument handling, in every reduction's backward; this costs ~1.5.
        strides = []
        for m, n, st in zip(g.shape, shape, g.strides):
            if m == n:
                strides.append(st)
            elif m == 1:
                strides.append(0)
            else:
                break
        else:
            view = _ndarray(shape, g.dtype, g, 0, tuple(strides))
            view.flags.writeable = False
            return view
    return xp.broadcast_to(g, shape)


_ndarray = np.ndarray
_first = slice(0, 1)


def _kept(y, shape, axes):
    """y (the reduced dims dropped) with them back as 1s (keepdim)."""
    return y.reshape(tuple(1 if i in axes else n for i, n in enumerate(shape)))


class Sum(Function):
    """y = sum over axes (kernel: reduce.sum_dims for float32/float64);  dx = g broadcast back."""

    saves = ()

    def forward(self, x, axes, keepdim):
        xp = self.xp
        if not x.ndim:
            axes = ()  # dim 0 or -1 of a 0-d tensor (allowed, as PyTorch): the sum of one element
        self.shape, self.axes, self.keepdim = x.shape, axes, keepdim
        if axes and x.dtype in KERNEL_FLOATS:
            y = self.backend.sum_dims(x, axes)
            return _kept(y, x.shape, axes) if keepdim else y
        out = xp.sum(x, axis=axes, keepdims=keepdim)
        if x.dtype == np.bool_ or x.dtype.kind in "iu":
            out = out.astype(np.int64)
        return xp.asarray(out)

    def backward(self, g):
        return _expand_grad(self.xp, g, self.shape, self.axes, self.keepdim), None, None


class Mean(Function):
    """y = mean over axes (kernel: reduce.sum_dims for float32/float64);  dx = g / n broadcast back."""

    saves = ()

    def forward(self, x, axes, keepdim):
        xp = self.xp
        if not x.ndim:
            axes = ()  # as Sum
        self.shape, self.axes, self.keepdim = x.shape, axes, keepdim
        self.n = math.prod(x.shape[a] for a in axes)
        if axes and x.dtype in KERNEL_FLOATS:
            y = self.backend.sum_dims(x, axes, True)
            return _kept(y, x.shape, axes) if keepdim else y
        return xp.asarray(xp.mean(x, axis=axes, keepdims=keepdim))

    def backward(self, g):
        return _expand_grad(self.xp, g / self.n, self.shape, self.axes, self.keepdim), None, None


class Var(Function):
    """y = sum((x - mean)^2) / (n - correction);  dx = g * 2 (x - mean) / (n - correction)."""

    saves = (0,)

    def forward(self, x, axes, correction, keepdim):
        xp = self.xp
        self.x, self.axes, self.keepdim = x, axes, keepdim
        n = math.prod(x.shape[a] for a in axes)
        self.denom = builtins.max(n - correction, 0)
        self.mean = xp.mean(x, axis=axes, keepdims=True)
        d = x - self.mean
        with np.errstate(divide="ignore", invalid="ignore"):
            return xp.asarray(xp.sum(d * d, axis=axes, keepdims=keepdim) / self.denom).astype(x.dtype)

    def backward(self, g):
        g = _expand_grad(self.xp, g, self.x.shape, self.axes, self.keepdim)
        with np.errstate(divide="ignore", invalid="ignore"):
            # np.float64: a zero denominator gives inf (NaN where x - mean = 0), as PyTorch, not ZeroDivisionError
            return g * (2.0 / np.float64(self.denom)) * (self.x - self.mean), None, None, None


class MaxMin(Function):
    """Full max/min (no dim): the gradient is split evenly among tied extrema (as PyTorch's amax)."""

    saves = (0, "out")

    def forward(self, x, axes, keepdim, is_max, op):
        xp = self.xp
        self.x, self.axes, self.keepdim = x, axes, keepdim
        if builtins.any(x.shape[a] == 0 for a in axes) or (x.size == 0 and not axes):
            raise RuntimeError(f"{op}: cannot reduce over a zero-size dimension (input shape {tuple(x.shape)})")
        self.y = xp.asarray((xp.max if is_max else xp.min)(x, axis=axes, keepdims=True))
        return self.y if keepdim else xp.asarray(self.y.reshape([s for i, s in enumerate(x.shape) if i not in axes]))

    def backward(self, g):
        mask = (self.x == self.y)
        count = self.xp.sum(mask, axis=self.axes, keepdims=True)
        g = _expand_grad(self.xp, g, self.x.shape, self.axes, self.keepdim)
        return (g * mask / count).astype(g.dtype), None, None, None, None


class MaxMinDim(Function):
    """max/min along one dim returning (values, indices); the gradient goes to the chosen index."""

    saves = ()
    fresh_grads = True  # dx: a new array from the kernel

    differentiable_outputs = (0,)

    def forward(self, x, dim, keepdim, is_max):
        if x.shape[dim] == 0:
            raise IndexError(f"{'max' if is_max else 'min'}(): cannot reduce over a zero-size dimension {dim}")
        self.shape, self.dim = x.shape, dim
        vals, idx = self.backend.max_dim(x, dim, is_max)  # kernel: reduce.max_dim (threaded)
        self.idx = idx  # kept for backward: the indices returned are a copy the caller may change
        idx = idx.copy()
        if keepdim:
            kept = x.shape[:dim] + (1,) + x.shape[dim + 1:]
            return vals.reshape(kept), idx.reshape(kept)
        return vals, idx

    def backward(self, g, g_idx=None):
        if g.shape != self.idx.shape:  # keepdim: the reduced dim back out
            g = g.reshape(self.idx.shape)
        return self.backend.max_dim_backward(g, self.idx, self.shape, self.dim), None, None, None


class LogSumExp(Function):
    """y = log sum exp(x) over axes (max-subtracted);  dx = g exp(x - y)."""

    saves = (0, "out")

    def forward(self, x, axes, keepdim):
        xp = self.xp
        self.x, self.axes, self.keepdim = x, axes, keepdim
        m = xp.max(x, axis=axes, keepdims=True, initial=-np.inf)  # over nothing: log(0) = -inf, as PyTorch
        m = xp.where(xp.isfinite(m), m, 0)
        with np.errstate(divide="ignore"):  # log(0) = -inf: a sum over nothing, or of exp(-inf)
            self.y = m + xp.log(xp.sum(xp.exp(x - m), axis=axes, keepdims=True))
        out = self.y if keepdim else xp.squeeze(self.y, axis=axes)
        return xp.asarray(out).astype(x.dtype, copy=False)

    def backward(self, g):
        g = _expand_grad(self.xp, g, self.x.shape, self.axes, self.keepdim)
        return g * self.xp.exp(self.x - self.y), None, None


class Softmax(Function):
    """softmax / log-softmax along ``dim`` (kernels: activation.softmax_forward/backward, along any dim).

    y = exp(x - lse(x)) or x - lse(x);  dx = y (g - sum(g y)) or g - exp(y) sum(g), sums along dim.
    """

    saves = ("out",)
    fresh_grads = True  # dx: a new array from the kernel

    def forward(self, x, dim, log):
        self.dim, self.log = dim, log
        self.y = self.backend.softmax_forward(x, log, dim)
        return self.y

    def backward(self, g):
        return self.backend.softmax_backward(self.y, g, self.log, self.dim), None, None


class TopK(Function):
    """The k largest (or smallest) values along ``dim`` and their indices; grad scatters back."""

    saves = ()

    differentiable_outputs = (0,)

    def forward(self, x, k, dim, largest, sorted_):
        xp = self.xp
        n = x.shape[dim] if x.ndim else 1
        if not 0 <= k <= n:
            raise RuntimeError(f"topk: k ({k}) is out of range for dimension {dim} of size {n}")
        self.shape, self.dim = x.shape, dim
        key = -x if largest else x
        idx = xp.argsort(key, axis=dim, kind="stable")
        idx = xp.take(idx, xp.arange(k), axis=dim)
        self.idx = idx
        return xp.take_along_axis(x, idx, axis=dim), idx.astype(np.int64)

    def backward(self, g, g_idx=None):
        xp = self.xp
        dx = xp.zeros(self.shape, g.dtype)
        xp.put_along_axis(dx, self.idx, g, axis=self.dim)
        return dx, None, None, None, None


# ------------------------------------------------------------------ user-facing functions


@tensor_op("x")
def sum(x, dim=None, keepdim=False, dtype=None):  # noqa: A001
    out = Sum.apply(x, _dims(dim, x.ndim, "sum"), bool(keepdim))
    return out if dtype is None else out.to(dtype)


@tensor_op("x")
def mean(x, dim=None, keepdim=False, dtype=None):
    if x._data.dtype.kind not in "f" and dtype is None:
        raise RuntimeError(f"mean(): could not infer output dtype. Input dtype must be floating point, got {x.dtype}")
    if dtype is not None:
        x = x.to(dtype)
    return Mean.apply(x, _dims(dim, x.ndim, "mean"), bool(keepdim))


@tensor_op("x")
def var(x, dim=None, unbiased=None, keepdim=False, correction=None):
    if correction is None:
        correction = 0 if unbiased is False else 1
    return Var.apply(x, _dims(dim, x.ndim, "var"), int64_arg("var", "correction", correction), bool(keepdim))


@tensor_op("x")
def std(x, dim=None, unbiased=None, keepdim=False, correction=None):
    from .elementwise import sqrt
    return sqrt(var(x, dim, unbiased, keepdim, correction))


def _max_min(x, dim, keepdim, is_max):
    if dim is None:
        return MaxMin.apply(x, tuple(range(x.ndim)), False, is_max, "max" if is_max else "min")
    if isinstance(dim, (tuple, list)):
        raise TypeError("max/min: dim must be an int (use amax/amin for several dims)")
    d = _norm_dim(dim, x.ndim, "max" if is_max else "min")
    if x.ndim == 0:
        return values_indices(x, _wrap(xp_of(x).zeros((), np.int64)))
    values, indices = MaxMinDim.apply(x, d, keepdim, is_max)
    return values_indices(values, indices)


@tensor_op("x")
def max(x, dim=None, keepdim=False):  # noqa: A001
    """max(x) -> the largest element;  max(x, dim) -> (values, indices)."""
    from ..tensor import Tensor
    if isinstance(dim, Tensor):
        from .elementwise import maximum
        return maximum(x, dim)
    return _max_min(x, dim, keepdim, True)


@tensor_op("x")
def min(x, dim=None, keepdim=False):  # noqa: A001
    from ..tensor import Tensor
    if isinstance(dim, Tensor):
        from .elementwise import minimum
        return minimum(x, dim)
    return _max_min(x, dim, keepdim, False)


@tensor_op("x")
def amax(x, dim=None, keepdim=False):
    return MaxMin.apply(x, _dims(dim, x.ndim, "amax"), keepdim, True, "amax")


@tensor_op("x")
def amin(x, dim=None, keepdim=False):
    return MaxMin.apply(x, _dims(dim, x.ndim, "amin"), keepdim, False, "amin")


@tensor_op("x")
def logsumexp(x, dim, keepdim=False):
    if x._data.dtype.kind != "f":  # of integers: a float result, as PyTorch's
        x = x.to(np.float32)
    return LogSumExp.apply(x, _dims(dim, x.ndim, "logsumexp"), keepdim)


@tensor_op("x")
def argmax(x, dim=None, keepdim=False):
    a, xp = x._data, xp_of(x)
    if dim is None:
        return _wrap(xp.asarray(xp.argmax(a), dtype=np.int64))
    d = _norm_dim(dim, a.ndim, "argmax")
    return _wrap(xp.argmax(a, axis=d, keepdims=bool(keepdim)).astype(np.int64))


@tensor_op("x")
def argmin(x, dim=None, keepdim=False):
    a, xp = x._data, xp_of(x)
    if dim is None:
        return _wrap(xp.asarray(xp.argmin(a), dtype=np.int64))
    d = _norm_dim(dim, a.ndim, "argmin")
    return _wrap(xp.argmin(a, axis=d, keepdims=bool(keepdim)).astype(np.int64))


@tensor_op("x")
def softmax(x, dim=-1, dtype=None):
    if dtype is not None:
        x = x.to(dtype)
    check_kernel_float("softmax", x)
    d = _norm_dim(dim, x.ndim, "softmax")
    if x.ndim == 0:  # one element: 1, and NaN or inf give NaN, as over any row
        return Softmax.apply(x.reshape(1), 0, False).reshape(())
    return Softmax.apply(x, d, False)


@tensor_op("x")
def log_softmax(x, dim=-1, dtype=None):
    if dtype is not None:
        x = x.to(dtype)
    check_kernel_float("log_softmax", x)
    d = _norm_dim(dim, x.ndim, "log_softmax")
    if x.ndim == 0:
        return Softmax.apply(x.reshape(1), 0, True).reshape(())
    return Softmax.apply(x, d, True)


@tensor_op("x")
def topk(x, k, dim=-1, largest=True, sorted=True):  # noqa: A002
    values, indices = TopK.apply(x, index_arg("topk", "k", k), _norm_dim(dim, x.ndim, "topk"), largest, sorted)
    return values_indices(values, indices)


@tensor_op("x")
def sort(x, dim=-1, descending=False, stable=False):
    d = _norm_dim(dim, x.ndim, "sort")
    return topk(x, x.shape[d], d, largest=descending)


@tensor_op("x")
def argsort(x, dim=-1, descending=False, stable=False):
    return sort(x, dim, descending).indices


# cumsum and prod: in statistics.py (issue 13: they built no graph node, a silently wrong gradient)


@tensor_op("x")
def all(x, dim=None):  # noqa: A001
    xp = xp_of(x)
    return _wrap(xp.asarray(xp.all(x._data, axis=None if dim is None else _norm_dim(dim, x.ndim, "all"))))


@tensor_op("x")
def any(x, dim=None):  # noqa: A001
    xp = xp_of(x)
    return _wrap(xp.asarray(xp.any(x._data, axis=None if dim is None else _norm_dim(dim, x.ndim, "any"))))


@tensor_op("x")
def count_nonzero(x, dim=None):
    xp = xp_of(x)
    axis = None if dim is None else _dims(dim, x.ndim, "count_nonzero")
    return _wrap(xp.asarray(xp.count_nonzero(x._data, axis=axis), dtype=np.int64))
