"""Scans, order statistics and counting (issue 13 item 2): cumsum, cumprod, prod, median, nanmedian,
kthvalue, mode; and, without gradient, unique, bincount, histc, searchsorted, bucketize.

cumsum and prod lived in reduction.py without a graph node: a tensor that required grad went in and one
that did not came out, so the gradient was silently missing. Here each is a Function.
"""
import builtins
import collections

import numpy as np

from .._checks import index_arg, real_arg, size_arg, tensor_op
from ..autograd import Function
from ..backend import xp_of
from ..tensor import Tensor, _norm_dim, _wrap

values_indices = collections.namedtuple("values_indices", ["values", "indices"])


def _scan_dtype(x, dtype, op):
    """The dtype a scan / product computes in: ``dtype`` if given, int64 for integers and bools (PyTorch)."""
    if dtype is not None:
        from .._dtype import to_numpy_dtype
        return to_numpy_dtype(dtype)
    k = x._data.dtype.kind
    return np.dtype(np.int64) if k in "biu" else x._data.dtype


def _rev_cumsum(xp, a, axis):
    return xp.flip(xp.cumsum(xp.flip(a, axis), axis), axis)


class Cumsum(Function):
    """y_i = sum_{j <= i} x_j along ``axis``;  dx_i = sum_{j >= i} g_j."""

    saves = ()

    def forward(self, x, axis):
        self.axis = axis
        return self.xp.cumsum(x, axis=axis)

    def backward(self, g):
        return _rev_cumsum(self.xp, g, self.axis), None


def _exclusive_products(xp, x, axis):
    """For each position along ``axis``: the product of all the other elements (zeros handled: no division),
    as the product of an exclusive prefix and an exclusive suffix."""
    n = x.shape[axis]
    ones = xp.ones_like(xp.take(x, [0], axis=axis))
    pre = xp.concatenate([ones, xp.cumprod(xp.take(x, range(n - 1), axis=axis), axis=axis)], axis=axis)
    rx = xp.flip(x, axis)
    suf = xp.flip(xp.concatenate([ones, xp.cumprod(xp.take(rx, range(n - 1), axis=axis), axis=axis)], axis=axis),
                  axis)
    return pre * suf


class Cumprod(Function):
    """y_i = prod_{j <= i} x_j along ``axis``;  dx_i = sum_{j >= i} g_j prod_{k <= j, k != i} x_k.

    Without zeros that is reverse-cumsum(g y) / x; with zeros the sum is formed term by term (O(n^2)
    along the axis, only for the tensors that hold a zero)."""

    saves = (0, "out")

    def forward(self, x, axis):
        self.x, self.axis = x, axis
        self.y = self.xp.cumprod(x, axis=axis)
        return self.y

    def backward(self, g):
        xp, x, ax = self.xp, self.x, self.axis
        if x.shape[ax] == 0:
            return xp.zeros_like(g), None
        if xp.all(x != 0):
            return _rev_cumsum(xp, g * self.y, ax) / x, None
        xm, gm = xp.moveaxis(x, ax, 0), xp.moveaxis(g, ax, 0)
        n = xm.shape[0]
        dx = xp.zeros_like(gm)
        for i in range(n):  # prod_{k <= j, k != i} x_k for every j >= i: cumprod with x_i replaced by 1
            xi = xm.copy()
            xi[i] = 1
            p = xp.cumprod(xi, axis=0)
            dx[i] = xp.sum(gm[i:] * p[i:], axis=0)
        return xp.moveaxis(dx, 0, ax), None


class Prod(Function):
    """y = prod of x over ``axis`` (None: all);  dx_i = g prod_{j != i} x_j (zeros handled)."""

    saves = (0,)

    def forward(self, x, axis, keepdim):
        xp = self.xp
        self.shape, self.axis, self.keepdim = x.shape, axis, keepdim
        self.x = x
        return xp.asarray(xp.prod(x, axis=axis, keepdims=keepdim))

    def backward(self, g):
        xp, x = self.xp, self.x
        if self.axis is None:
            flat = x.reshape(-1)
            others = _exclusive_products(xp, flat, 0).reshape(self.shape) if flat.size else xp.zeros(self.shape,
                                                                                                      g.dtype)
            return g * others, None, None
        if not self.keepdim:
            g = xp.expand_dims(g, self.axis)
        if x.shape[self.axis] == 0:
            return xp.zeros(self.shape, g.dtype), None, None
        return g * _exclusive_products(xp, x, self.axis), None, None


class SelectAlong(Function):
    """y = x at ``index`` (keepdim-shaped) along ``axis``: the value of an order statistic (median,
    kthvalue, mode);  dx = zeros with g put back at the index."""

    saves = ()

    def forward(self, x, index, axis, keepdim):
        xp = self.xp
        self.shape, self.index, self.axis, self.keepdim = x.shape, index, axis, keepdim
        v = xp.take_along_axis(x, index, axis=axis)
        return v if keepdim else xp.squeeze(v, axis)

    def backward(self, g):
        xp = self.xp
        if not self.keepdim:
            g = xp.expand_dims(g, self.axis)
        dx = xp.zeros(self.shape, g.dtype)
        xp.put_along_axis(dx, self.index, g, axis=self.axis)
        return dx, None, None, None


# ------------------------------------------------------------------ user-facing functions


@tensor_op("x")
def cumsum(x, dim, dtype=None):
    """Running sum along ``dim``; integers and bools accumulate in int64 (as PyTorch) unless ``dtype``."""
    d = _norm_dim(dim, x.ndim, "cumsum")
    dt = _scan_dtype(x, dtype, "cumsum")
    if x._data.dtype != dt:
        x = x.to(dt)
    if x.ndim == 0:
        return Cumsum.apply(x.reshape(1), 0).reshape(())
    return Cumsum.apply(x, d)


@tensor_op("x")
def cumprod(x, dim, dtype=None):
    """Running product along ``dim``; integers and bools accumulate in int64 unless ``dtype``."""
    d = _norm_dim(dim, x.ndim, "cumprod")
    dt = _scan_dtype(x, dtype, "cumprod")
    if x._data.dtype != dt:
        x = x.to(dt)
    if x.ndim == 0:
        return Cumprod.apply(x.reshape(1), 0).reshape(())
    return Cumprod.apply(x, d)


@tensor_op("x")
def prod(x, dim=None, keepdim=False, dtype=None):
    """Product of all elements, or along ``dim``; integers and bools multiply in int64 unless ``dtype``."""
    dt = _scan_dtype(x, dtype, "prod")
    if x._data.dtype != dt:
        x = x.to(dt)
    if dim is None:
        return Prod.apply(x, None, False)
    d = _norm_dim(dim, x.ndim, "prod")
    if x.ndim == 0:  # the product of one number, with or without its dim
        return Prod.apply(x, None, False)
    return Prod.apply(x, d, bool(keepdim))


def _order_stat(op, x, dim, keepdim, pick):
    """(values, indices) of an order statistic along ``dim``: ``pick(sorted_values, order)`` gives the
    position in sorted order for each row (shape of the row dims, keepdim along the axis)."""
    if x.ndim == 0:
        _norm_dim(dim, 0, op)  # 0 and -1 only
        x1 = x.reshape(1)
        r = _order_stat(op, x1, 0, True, pick)
        return values_indices(r.values.reshape(()), r.indices.reshape(()))
    axis = _norm_dim(dim, x.ndim, op)
    a = x._data
    if a.shape[axis] == 0:
        raise IndexError(f"{op}: cannot compute on an empty dimension {axis} (input {tuple(x.shape)})")
    xp = xp_of(a)
    order = xp.argsort(a, axis=axis, kind="stable")  # NaN sort last
    pos = pick(xp.take_along_axis(a, order, axis=axis), order, axis)
    index = xp.take_along_axis(order, pos, axis=axis)
    values = SelectAlong.apply(x, index, axis, bool(keepdim))
    idx = index if keepdim else xp.squeeze(index, axis)
    return values_indices(values, _wrap(idx.astype(np.int64)))


def _median_pick(nan_aware):
    def pick(s, order, axis):
        xp = xp_of(s)
        n = s.shape[axis]
        isnan = xp.isnan(s) if s.dtype.kind == "f" else xp.zeros(s.shape, bool)
        nn = xp.sum(~isnan, axis=axis, keepdims=True)  # NaN sort last: the first nn are numbers
        if nan_aware:  # the lower median of the numbers (the first NaN when all are NaN)
            return xp.where(nn > 0, (nn - 1) // 2, 0)
        # any NaN in a row makes its median NaN: the row's first NaN
        return xp.where(nn < n, nn, (n - 1) // 2)
    return pick


@tensor_op("x")
def median(x, dim=None, keepdim=False):
    """The lower median (of n values, the ((n - 1) // 2)-th smallest; NaN if there is a NaN).
    No dim: of all elements, a number; with ``dim``: (values, indices) along it."""
    if dim is None:
        return _order_stat("median", x.reshape(-1), 0, False, _median_pick(False)).values
    return _order_stat("median", x, dim, keepdim, _median_pick(False))


@tensor_op("x")
def nanmedian(x, dim=None, keepdim=False):
    """median ignoring NaNs (NaN only where all values are)."""
    if dim is None:
        return _order_stat("nanmedian", x.reshape(-1), 0, False, _median_pick(True)).values
    return _order_stat("nanmedian", x, dim, keepdim, _median_pick(True))


@tensor_op("x")
def kthvalue(x, k, dim=-1, keepdim=False):
    """The k-th smallest value along ``dim`` (k from 1) and its index."""
    k = index_arg("kthvalue", "k", k)
    n = x.shape[_norm_dim(dim, x.ndim, "kthvalue")] if x.ndim else 1
    if not 1 <= k <= n:
        raise RuntimeError(f"kthvalue: k ({k}) out of range for dimension of size {n} (input {tuple(x.shape)})")

    def pick(s, order, axis):
        shape = list(s.shape)
        shape[axis] = 1
        return xp_of(s).full(shape, k - 1)
    return _order_stat("kthvalue", x, dim, keepdim, pick)


@tensor_op("x")
def mode(x, dim=-1, keepdim=False):
    """The most frequent value along ``dim`` (the smallest of equally frequent ones) and the index of its last
    occurrence (as PyTorch's)."""
    def pick(s, order, axis):
        xp = xp_of(s)
        sm = xp.moveaxis(s, axis, -1)
        rows = sm.reshape(-1, sm.shape[-1])
        best = xp.zeros(rows.shape[0], np.int64)
        for r, row in enumerate(rows):  # runs of equal values in the sorted row: the first longest one, its end
            start = xp.flatnonzero(xp.concatenate([[True], row[1:] != row[:-1]]))
            lengths = xp.diff(xp.concatenate([start, [row.size]]))
            k = xp.argmax(lengths)
            best[r] = start[k] + lengths[k] - 1  # a stable sort: the run's end is the last occurrence
        return xp.moveaxis(best.reshape(sm.shape[:-1] + (1,)), -1, axis)
    return _order_stat("mode", x, dim, keepdim, pick)


# ------------------------------------------------------------------ counting and searching (no gradient)


@tensor_op("x")
def unique(x, sorted=True, return_inverse=False, return_counts=False, dim=None):  # noqa: A002
    """The distinct values of x, sorted (flattened unless ``dim``: the distinct slices along it); with
    ``return_inverse`` the index of each element's value, with ``return_counts`` how often each occurs."""
    xp = xp_of(x._data)
    a = x._data
    axis = None if dim is None else _norm_dim(dim, x.ndim, "unique")
    if axis is not None and a.shape[axis] == 0:
        vals, inv, cnt = a, xp.zeros(0, np.int64), xp.zeros(0, np.int64)
    else:
        vals, inv, cnt = xp.unique(a, return_inverse=True, return_counts=True, axis=axis)
    out = [_wrap(vals)]
    if return_inverse:
        out.append(_wrap(inv.reshape(a.shape if axis is None else (-1,)).astype(np.int64)))
    if return_counts:
        out.append(_wrap(cnt.astype(np.int64)))
    return out[0] if len(out) == 1 else tuple(out)


@tensor_op("x", "weights?")
def bincount(x, weights=None, minlength=0):
    """Count of each value 0..max(x) in a 1-D non-negative integer tensor (summed ``weights`` if given)."""
    a = x._data
    if a.ndim != 1 or a.dtype.kind not in "iu":
        raise RuntimeError(f"bincount: expected a 1-D integer tensor, got {x.dtype} of shape {tuple(x.shape)}")
    if a.size and a.min() < 0:
        raise RuntimeError("bincount: input must hold non-negative integers")
    minlength = size_arg("bincount", "minlength", minlength)
    from .._checks import check_alloc
    check_alloc("bincount", (builtins.max(int(a.max()) + 1 if a.size else 0, minlength)) * 8, "the counts")
    xp = xp_of(a)
    if weights is None:
        return _wrap(xp.bincount(a, minlength=minlength).astype(np.int64))
    w = weights._data
    if w.shape != a.shape:
        raise RuntimeError(f"bincount: weights {tuple(w.shape)} must have the input's shape {tuple(a.shape)}")
    out = xp.bincount(a, weights=w, minlength=minlength)
    return _wrap(out.astype(w.dtype if w.dtype.kind == "f" else np.float64))


@tensor_op("x")
def histc(x, bins=100, min=0, max=0):  # noqa: A002
    """Histogram of x in ``bins`` equal bins over [min, max] (the data's range when both are 0); values
    outside are ignored."""
    bins = size_arg("histc", "bins", bins, minimum=1)
    lo, hi = real_arg("histc", "min", min), real_arg("histc", "max", max)
    a = x._data
    if a.dtype.kind != "f":
        raise RuntimeError(f"histc: expected a floating point tensor, got {x.dtype}")
    xp = xp_of(a)
    if lo == hi == 0 and a.size:
        lo, hi = float(a.min()), float(a.max())
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise RuntimeError(f"histc: range of [{lo}, {hi}] is not finite")
    if lo > hi:
        raise RuntimeError(f"histc: max must be larger than min, got min {lo}, max {hi}")
    if lo == hi:
        lo, hi = lo - 1, hi + 1
    counts, _ = xp.histogram(a[~xp.isnan(a)], bins=bins, range=(lo, hi))
    return _wrap(counts.astype(a.dtype))


@tensor_op("sorted_sequence")
def searchsorted(sorted_sequence, values, out_int32=False, right=False, side=None, sorter=None):
    """For each value, the index where it would be inserted in the sorted last dim of ``sorted_sequence``
    (its leading dims match ``values``'); ``right`` / ``side="right"``: after equal elements."""
    seq = sorted_sequence._data
    scalar = not isinstance(values, Tensor)
    v = values._data if isinstance(values, Tensor) else np.asarray(real_arg("searchsorted", "values", values))
    if side is not None:
        if side not in ("left", "right"):
            raise ValueError(f"searchsorted: side must be 'left' or 'right', got {side!r}")
        if right and side == "left":
            raise RuntimeError("searchsorted: side='left' and right=True conflict")
        right = side == "right"
    s = "right" if right else "left"
    if sorter is not None:
        srt = sorter._data if isinstance(sorter, Tensor) else np.asarray(sorter)
        if srt.shape != seq.shape or srt.dtype.kind not in "iu":
            raise RuntimeError(f"searchsorted: sorter must be an integer tensor of the sequence's shape "
                               f"{tuple(seq.shape)}")
        seq = np.take_along_axis(seq, srt.astype(np.int64), axis=-1)
    if seq.ndim == 0:
        raise RuntimeError("searchsorted: the sorted sequence must have at least one dimension")
    if seq.ndim == 1:
        out = np.searchsorted(seq, v, side=s)
    else:
        if v.ndim != seq.ndim or v.shape[:-1] != seq.shape[:-1]:
            raise RuntimeError(f"searchsorted: the leading dims of the sequence {tuple(seq.shape)} and the values "
                               f"{tuple(v.shape)} must match")
        rows_s, rows_v = seq.reshape(-1, seq.shape[-1]), v.reshape(-1, v.shape[-1])
        out = np.stack([np.searchsorted(r, q, side=s) for r, q in zip(rows_s, rows_v)]).reshape(v.shape) \
            if rows_s.shape[0] else np.zeros(v.shape, np.int64)
    out = np.asarray(out).astype(np.int32 if out_int32 else np.int64)
    return _wrap(out.reshape(()) if scalar else out)


@tensor_op("x", "boundaries")
def bucketize(x, boundaries, out_int32=False, right=False):
    """For each element of x, the index of its bucket among the sorted 1-D ``boundaries``
    (boundaries[i-1] < x <= boundaries[i]; ``right``: boundaries[i-1] <= x < boundaries[i])."""
    if boundaries.ndim != 1:
        raise RuntimeError(f"bucketize: boundaries must be 1-D, got shape {tuple(boundaries.shape)}")
    out = np.searchsorted(boundaries._data, x._data, side="right" if right else "left")
    return _wrap(np.asarray(out).astype(np.int32 if out_int32 else np.int64))


__all__ = ["cumsum", "cumprod", "prod", "median", "nanmedian", "kthvalue", "mode", "unique", "bincount", "histc",
           "searchsorted", "bucketize"]
