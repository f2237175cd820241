"""Index, scatter and gather ops (issue 13 item 2): index_select, index_add, index_copy, index_fill, scatter,
scatter_add, masked_select, masked_scatter, take, take_along_dim. (gather and masked_fill are in shape.py.)

``dim`` of every op here is moved to the front of the arrays it touches, so each rule is written once, for
dim 0. Repeated indices accumulate where the op adds (index_add, scatter_add, the backward of a select);
where the op writes (index_copy, scatter) PyTorch leaves the winner unspecified, and so does NumPy here.
"""
import builtins

import numpy as np

from .._checks import scalar_arg, tensor_op
from ..autograd import Function
from ..tensor import Tensor, _norm_dim, _wrap
from .shape import expand, gather, getitem, reshape


def _front(xp, a, dim):
    return xp.moveaxis(a, dim, 0)


def _index_array(op, index, name="index"):
    """An integer index (Tensor, array, list) as an int64 array; TypeError naming the op otherwise."""
    a = index._data if isinstance(index, Tensor) else np.asarray(index)
    if a.dtype.kind not in "iu":
        raise TypeError(f"{op}: {name} must be an integer tensor, got {a.dtype}")
    return a.astype(np.int64, copy=False)


def _check_range(op, idx, n, dim, shape):
    if idx.size and (idx.min() < -n or idx.max() >= n):
        bad = idx.min() if idx.min() < -n else idx.max()
        raise IndexError(f"{op}: index {int(bad)} is out of bounds for dimension {dim} with size {n} "
                         f"(input {tuple(shape)})")


def _vector_index(op, index, x, dim):
    """index_* ops: a 0-D or 1-D integer index into ``dim`` of x, checked and made non-negative."""
    idx = _index_array(op, index)
    if idx.ndim > 1:
        raise IndexError(f"{op}: index must be a vector (0-D or 1-D), got shape {tuple(idx.shape)}")
    idx = idx.reshape(-1)
    n = x.shape[dim] if x.ndim else 1
    _check_range(op, idx, n, dim, x.shape)
    return np.where(idx < 0, idx + n, idx)


class IndexSelect(Function):
    """y = x[..., index, ...] along ``dim``;  dx = zeros with g added back at index (repeats accumulate)."""

    saves = ()

    def forward(self, x, dim, index):
        self.shape, self.dim, self.index = x.shape, dim, index
        return self.xp.take(x, index, axis=dim)

    def backward(self, g):
        xp = self.xp
        dx = xp.zeros(self.shape, g.dtype)
        xp.add.at(_front(xp, dx, self.dim), self.index, _front(xp, g, self.dim))
        return dx, None, None


class IndexAdd(Function):
    """y = x with alpha source[k] added at x[index[k]] along ``dim``;  dx = g, d source = alpha g[index]."""

    saves = ()

    def forward(self, x, dim, index, source, alpha):
        xp = self.xp
        self.dim, self.index, self.alpha = dim, index, alpha
        out = xp.array(x, copy=True, dtype=xp.result_type(x, source))
        xp.add.at(_front(xp, out, dim), index, _front(xp, source * alpha if alpha != 1 else source, dim))
        return out.astype(x.dtype, copy=False)

    def backward(self, g):
        ds = None
        if self.needs_input_grad[3]:
            ds = self.xp.take(g, self.index, axis=self.dim)
            if self.alpha != 1:
                ds = ds * self.alpha
        return g, None, None, ds, None


class IndexCopy(Function):
    """y = x with x[index[k]] = source[k] along ``dim``;  dx = g zeroed at index, d source = g[index]."""

    saves = ()

    def forward(self, x, dim, index, source):
        xp = self.xp
        self.dim, self.index = dim, index
        out = x.copy()
        _front(xp, out, dim)[index] = _front(xp, source, dim)
        return out

    def backward(self, g):
        xp = self.xp
        dx = g.copy()
        _front(xp, dx, self.dim)[self.index] = 0
        ds = xp.take(g, self.index, axis=self.dim) if self.needs_input_grad[3] else None
        return dx, None, None, ds


class IndexFill(Function):
    """y = x with the slices ``index`` along ``dim`` set to value;  dx = g zeroed there, d value = their sum."""

    saves = ()

    def forward(self, x, dim, index, value):
        xp = self.xp
        self.dim, self.index = dim, index
        out = x.copy()
        _front(xp, out, dim)[index] = value
        return out

    def backward(self, g):
        xp = self.xp
        dx = g.copy()
        _front(xp, dx, self.dim)[self.index] = 0
        dv = None
        if self.needs_input_grad[3]:
            uniq = xp.unique(self.index)
            dv = xp.asarray(xp.take(g, uniq, axis=self.dim).sum(), dtype=g.dtype)
        return dx, None, None, dv


def _scatter_index(xp, index, dim):
    """The full index tuple of a scatter/gather: ``index`` along dim, the position itself elsewhere."""
    idx = xp.indices(index.shape, sparse=True)
    return tuple(index if d == dim else idx[d] for d in range(index.ndim))


class Scatter(Function):
    """y = x with y[.., index[i][j], ..] = src[i][j] along ``dim`` (reduce None), += (reduce "add") or
    *= ("multiply");  dx = g zeroed where written (not for "add"), d src = gather(g, dim, index).
    ``src`` is an array of index's shape (a number broadcast) so that one rule serves both."""

    saves = ()

    def forward(self, x, dim, index, src, reduce):
        xp = self.xp
        self.dim, self.index, self.reduce = dim, index, reduce
        out = x.copy()
        full = _scatter_index(xp, index, dim)
        if reduce is None:
            out[full] = src
        elif reduce == "add":
            xp.add.at(out, full, src)
        else:
            xp.multiply.at(out, full, src)
        self.full = full
        return out

    def backward(self, g):
        xp = self.xp
        if self.reduce == "multiply":
            raise RuntimeError("scatter: the gradient of reduce='multiply' is not implemented (as in PyTorch)")
        dx = g
        if self.reduce is None:
            dx = g.copy()
            dx[self.full] = 0
        ds = g[self.full] if self.needs_input_grad[3] else None
        return dx, None, None, ds, None


class MaskedScatter(Function):
    """y = x with the positions where mask is True filled, in order, from source's first elements;
    dx = g where not mask, d source = g's masked values in source's first positions (zeros after)."""

    saves = ()

    def forward(self, x, mask, source):
        xp = self.xp
        self.mask, self.src_shape = mask, source.shape
        out = x.copy()
        k = int(mask.sum())
        out[mask] = source.reshape(-1)[:k]
        return out

    def backward(self, g):
        xp = self.xp
        dx = xp.where(self.mask, xp.zeros((), g.dtype), g)
        ds = None
        if self.needs_input_grad[2]:
            vals = g[self.mask]
            ds = xp.zeros(int(np.prod(self.src_shape)), g.dtype)
            ds[:vals.size] = vals
            ds = ds.reshape(self.src_shape)
        return dx, None, ds


# ------------------------------------------------------------------ user-facing functions


@tensor_op("x")
def index_select(x, dim, index):
    """The slices ``index`` (a 1-D integer tensor) of x along ``dim``, in that order."""
    d = _norm_dim(dim, x.ndim, "index_select")
    idx = _vector_index("index_select", index, x, d)
    if x.ndim == 0:
        return IndexSelect.apply(x.reshape(1), 0, idx).reshape(())
    return IndexSelect.apply(x, d, idx)


def _source(op, x, d, idx, source):
    if source.ndim != x.ndim and not (x.ndim == 0 and source.ndim <= 1):
        raise RuntimeError(f"{op}: source {tuple(source.shape)} must have as many dims as the input "
                           f"{tuple(x.shape)}")
    want = tuple(len(idx) if i == d else s for i, s in enumerate(x.shape))
    if x.ndim and tuple(source.shape) != want:
        raise RuntimeError(f"{op}: source of shape {tuple(source.shape)} does not match the input {tuple(x.shape)} "
                           f"indexed by {len(idx)} indices along dim {d} (expected {want})")


@tensor_op("x", "source")
def index_add(x, dim, index, source, alpha=1):
    """x with ``alpha * source[k]`` added to the slice index[k] along ``dim`` (repeats accumulate)."""
    d = _norm_dim(dim, x.ndim, "index_add")
    idx = _vector_index("index_add", index, x, d)
    _source("index_add", x, d, idx, source)
    alpha = scalar_arg("index_add", "alpha", alpha)
    if x.ndim == 0:
        return IndexAdd.apply(x.reshape(1), 0, idx, source.reshape(-1), alpha).reshape(())
    return IndexAdd.apply(x, d, idx, source.to(x.dtype) if source._data.dtype != x._data.dtype else source,
                          alpha)


@tensor_op("x", "source")
def index_copy(x, dim, index, source):
    """x with the slice index[k] along ``dim`` replaced by source[k]."""
    d = _norm_dim(dim, x.ndim, "index_copy")
    idx = _vector_index("index_copy", index, x, d)
    _source("index_copy", x, d, idx, source)
    if source._data.dtype != x._data.dtype:
        raise RuntimeError(f"index_copy: source dtype {source.dtype} must match the input's {x.dtype}")
    if x.ndim == 0:
        return IndexCopy.apply(x.reshape(1), 0, idx, source.reshape(-1)).reshape(())
    return IndexCopy.apply(x, d, idx, source)


@tensor_op("x")
def index_fill(x, dim, index, value):
    """x with the slices ``index`` along ``dim`` set to ``value`` (a number or a 0-D tensor)."""
    d = _norm_dim(dim, x.ndim, "index_fill")
    idx = _vector_index("index_fill", index, x, d)
    if isinstance(value, Tensor):
        if value.ndim != 0:
            raise RuntimeError(f"index_fill: only supports a 0-dimensional value tensor, got shape "
                               f"{tuple(value.shape)}")
        if value._data.dtype != x._data.dtype:
            value = value.to(x.dtype)
    else:
        value = scalar_arg("index_fill", "value", value)
    if x.ndim == 0:
        return IndexFill.apply(x.reshape(1), 0, idx, value).reshape(())
    return IndexFill.apply(x, d, idx, value)


def _scatter_args(op, x, dim, index, src):
    d = _norm_dim(dim, x.ndim, op)
    idx = _index_array(op, index)
    if idx.ndim != builtins.max(x.ndim, 1) and not (x.ndim == 0 and idx.ndim == 0):
        raise RuntimeError(f"{op}: index {tuple(idx.shape)} must have as many dims as the input {tuple(x.shape)}")
    if x.ndim == 0:
        x, idx = x.reshape(1), idx.reshape(1)
        if isinstance(src, Tensor):
            src = src.reshape(-1)
    for i in range(x.ndim):
        if i != d and idx.shape[i] > x.shape[i]:
            raise RuntimeError(f"{op}: index {tuple(idx.shape)} is larger than the input {tuple(x.shape)} at "
                               f"dimension {i}")
    _check_range(op, idx, x.shape[d], d, x.shape)
    n = x.shape[d]
    idx = np.where(idx < 0, idx + n, idx)
    if isinstance(src, Tensor):
        if src.ndim != idx.ndim or builtins.any(a > b for a, b in zip(idx.shape, src.shape)):
            raise RuntimeError(f"{op}: index {tuple(idx.shape)} must not be larger than src {tuple(src.shape)} "
                               "in any dimension")
        if src._data.dtype != x._data.dtype:
            src = src.to(x.dtype)
        src = getitem(src, tuple(builtins.slice(0, s) for s in idx.shape))
    else:
        src = _wrap(np.full(idx.shape, scalar_arg(op, "value", src), x._data.dtype))
    return x, d, idx, src


@tensor_op("x")
def scatter(x, dim, index, src=None, value=None, reduce=None):
    """x with out[..., index[i][j], ...] = src[i][j] along ``dim`` (``src`` a tensor, or ``value`` a number);
    ``reduce="add"`` / ``"multiply"`` combines instead of writing."""
    if src is None:
        src = value
    if src is None:
        raise TypeError("scatter(): expected a src tensor or a value")
    if reduce not in (None, "add", "multiply"):
        raise ValueError(f"scatter: reduce must be None, 'add' or 'multiply', got {reduce!r}")
    shape = x.shape
    x, d, idx, s = _scatter_args("scatter", x, dim, index, src)
    return Scatter.apply(x, d, idx, s, reduce).reshape(*shape)


@tensor_op("x", "src")
def scatter_add(x, dim, index, src):
    """x with src[i][j] added at out[..., index[i][j], ...] along ``dim`` (repeats accumulate)."""
    shape = x.shape
    x, d, idx, s = _scatter_args("scatter_add", x, dim, index, src)
    return Scatter.apply(x, d, idx, s, "add").reshape(*shape)


def _bool_mask(op, mask):
    m = mask._data if isinstance(mask, Tensor) else np.asarray(mask)
    if m.dtype != np.bool_:
        raise TypeError(f"{op}: mask must be a bool tensor, got {m.dtype}")
    return m


@tensor_op("x")
def masked_select(x, mask):
    """The elements of x where ``mask`` (broadcast with x) is True, as a 1-D tensor."""
    m = _bool_mask("masked_select", mask)
    try:
        shape = np.broadcast_shapes(tuple(x.shape), m.shape)
    except ValueError:
        raise RuntimeError(f"masked_select: mask {m.shape} and input {tuple(x.shape)} cannot be broadcast "
                           "together") from None
    xb = x if tuple(x.shape) == shape else expand(x, *shape)
    return getitem(xb, np.broadcast_to(m, shape))


@tensor_op("x", "source")
def masked_scatter(x, mask, source):
    """x with the True positions of ``mask`` (broadcast to x) filled, in row-major order, from ``source``."""
    m = _bool_mask("masked_scatter", mask)
    try:
        m = np.broadcast_to(m, tuple(x.shape))
    except ValueError:
        raise RuntimeError(f"masked_scatter: mask {m.shape} does not broadcast to the input "
                           f"{tuple(x.shape)}") from None
    if int(m.sum()) > source.numel():
        raise RuntimeError(f"masked_scatter: source has {source.numel()} elements, fewer than the mask's "
                           f"{int(m.sum())} True positions")
    if source._data.dtype != x._data.dtype:
        raise RuntimeError(f"masked_scatter: source dtype {source.dtype} must match the input's {x.dtype}")
    return MaskedScatter.apply(x, m, source)


@tensor_op("x")
def take(x, index):
    """x flattened, indexed by ``index`` (any shape; negative indices count from the end)."""
    idx = _index_array("take", index)
    _check_range("take", idx, x.numel(), 0, x.shape)
    return getitem(reshape(x, -1), idx)


@tensor_op("x")
def take_along_dim(x, indices, dim=None):
    """Values of x at ``indices`` along ``dim`` (x and indices broadcast in the other dims); ``dim=None``:
    of the flattened x."""
    idx = _index_array("take_along_dim", indices, "indices")
    if dim is None:
        return take(x, idx.reshape(-1))
    d = _norm_dim(dim, x.ndim, "take_along_dim")
    if idx.ndim != x.ndim:
        raise RuntimeError(f"take_along_dim: input {tuple(x.shape)} and indices {tuple(idx.shape)} should have "
                           "the same number of dimensions")
    try:
        xs = list(np.broadcast_shapes(tuple(s for i, s in enumerate(x.shape) if i != d),
                                      tuple(s for i, s in enumerate(idx.shape) if i != d)))
    except ValueError:
        raise RuntimeError(f"take_along_dim: input {tuple(x.shape)} and indices {tuple(idx.shape)} do not "
                           "broadcast outside dim") from None
    xshape = xs[:d] + [x.shape[d]] + xs[d:]
    ishape = xs[:d] + [idx.shape[d]] + xs[d:]
    xb = x if list(x.shape) == xshape else expand(x, *xshape)
    return gather(xb, d, _wrap(np.broadcast_to(idx, ishape)))


__all__ = ["index_select", "index_add", "index_copy", "index_fill", "scatter", "scatter_add", "masked_select",
           "masked_scatter", "take", "take_along_dim"]
