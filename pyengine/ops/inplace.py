"""In-place ops under autograd, with PyTorch's semantics.

``x.add_(y)`` (and every other ``op_``) runs the out-of-place op and writes its result into x's memory.
Outside autograd (grad mode off, or nothing involved requires grad) that is all there is. Inside, x takes
the op's place in the graph, as in PyTorch:
- x is a tensor of its own (not a view): x's grad_fn becomes the op's node, whose input is x's previous
  node; the op reads a copy of x's old values, so what it saves for backward is what it saw.
- x is a view of another tensor's memory (``y[0]``, ``y.t()``, ``y.view(...)``): the write lands in the
  base's memory, so the base's graph changes: its grad_fn becomes ``CopySlices(base before, result)``,
  whose backward sends the gradient of the written region to the result and the rest to the base before
  (PyTorch's CopySlices), and the view's grad_fn becomes a strided view of the new base.
- x is a leaf that requires grad, or a view of one: RuntimeError, as PyTorch.
Every write bumps the version counter that x shares with its base and its views; a Function that saved
the overwritten values (``Function.saves``) then refuses to run backward (see autograd.py), and a view
whose base changed takes a fresh grad_fn from the base before it is used (``refresh_view``).
``x[index] = value`` is the same mechanism: basic indexing writes through a view of x, advanced indexing
through ``IndexPut``.
"""
import numpy as np

from ..autograd import Function, is_grad_enabled, no_grad
from ..tensor import Tensor, _wrap


def _requires_grad(args):
    for a in args:
        if isinstance(a, Tensor) and a.requires_grad:
            return True
    return False


def version_of(t):
    """t's version counter: a one-element list shared with the tensors that view its memory."""
    v = t._version
    if v is None:
        v = t._version = [0]
    return v


def bump(t):
    version_of(t)[0] += 1


def apply_inplace(t, op, fn, *args, **kwargs):
    """``t.<op>(*args)``: ``fn(t, *args, **kwargs)`` (the out-of-place op) written into t. Returns t."""
    if not (is_grad_enabled() and (t.requires_grad or _requires_grad(args) or _requires_grad(kwargs.values()))):
        with no_grad():
            r = fn(t, *args, **kwargs)
        _write(t, r._data, op)
        bump(t)
        return t
    _check_writable_in_graph(t, op)
    old = _wrap(t._data.copy(), t.grad_fn, t._out_index)  # t's values and place in the graph before the op
    old.requires_grad = t.requires_grad
    r = fn(old, *args, **kwargs)
    if t._base is None:
        _write(t, r._data, op)
        bump(t)
        _take_place(t, r)
    else:
        _write_through_view(t, r, op)
    return t


def setitem(x, index, value):
    """``x[index] = value``: in place, and under autograd as PyTorch (see the module docstring)."""
    from .shape import _convert_index
    idx = _convert_index(index)
    v = value if isinstance(value, Tensor) else None
    if not (is_grad_enabled() and (x.requires_grad or (v is not None and v.requires_grad))):
        x._data[idx] = value._data if v is not None else value
        bump(x)
        return
    _check_writable_in_graph(x, "setitem")
    if v is None:
        v = _wrap(np.asarray(value, dtype=x._data.dtype))
    elif v._data.dtype != x._data.dtype:
        v = v.to(x.dtype)
    target = x._data[idx]
    if isinstance(target, np.ndarray) and target.base is not None and _shares(target, x._data):
        _write_through_view(x, v, "setitem", view=target)  # basic indexing: a view of x
        return
    if x._base is not None:
        raise NotImplementedError("setitem: assigning with advanced indexing into a view of a tensor that is "
                                  "part of the graph is not supported; clone() the view first")
    out = IndexPut.apply(x, v, idx)
    bump(x)
    _take_place(x, out)


# ---------------------------------------------------------------------- the pieces


def _check_writable_in_graph(t, op):
    if t.grad_fn is None and t.requires_grad:
        raise RuntimeError("a leaf Variable that requires grad is being used in an in-place operation.")
    base = t._base
    if base is not None and base.grad_fn is None and base.requires_grad:
        raise RuntimeError("a view of a leaf Variable that requires grad is being used in an in-place "
                           "operation.")


def _write(t, values, op):
    """t's memory <- values (same shape or broadcastable to it; a dtype that casts as PyTorch allows)."""
    _check_write(t._data, values, op)
    np.copyto(t._data, values, casting="same_kind")


def _check_write(dst, values, op):
    if values.shape != dst.shape:
        try:
            shape = np.broadcast_shapes(values.shape, dst.shape)
        except ValueError:
            shape = None
        if shape != dst.shape:
            raise RuntimeError(f"{op}: output with shape {list(dst.shape)} doesn't match the broadcast shape "
                               f"{list(shape or values.shape)}")
    if not np.can_cast(values.dtype, dst.dtype, "same_kind"):
        raise RuntimeError(f"{op}: result type {values.dtype} can't be cast to the desired output type "
                           f"{dst.dtype}")
    if not dst.flags.writeable:
        raise RuntimeError(f"{op}: unsupported operation: more than one element of the written-to tensor "
                           "refers to a single memory location (or it is read-only); clone() it first")


def _take_place(t, r):
    """t becomes the output of r's node (t keeps its memory)."""
    t.grad_fn, t._out_index, t.requires_grad = r.grad_fn, r._out_index, r.requires_grad
    if t._base is not None:
        t._vv = version_of(t)[0]


def _shares(view, arr):
    return _root(view) is _root(arr)


def _root(a):
    while a.base is not None and isinstance(a.base, np.ndarray):
        a = a.base
    return a


def _geometry(view, base, op="in-place"):
    """(offset, shape, strides) of ``view`` in elements of ``base``'s memory, which must be C-contiguous:
    then the same numbers address the view's elements in a (C-contiguous) gradient of the base."""
    if not base.flags.c_contiguous:
        raise NotImplementedError(f"{op}: writing through a view of a tensor whose memory is not C-contiguous "
                                  "is not supported under autograd; make the base .contiguous() first")
    item = base.itemsize
    offset = view.__array_interface__["data"][0] - base.__array_interface__["data"][0]
    if offset % item or any(s % item for s in view.strides):
        raise NotImplementedError(f"{op}: a view that is not aligned to its base's elements")
    return offset // item, view.shape, tuple(s // item for s in view.strides)


def region(arr, geom):
    """The elements of a C-contiguous array of the base's shape that the view ``geom`` addresses."""
    offset, shape, strides = geom
    flat = arr.reshape(-1)
    return np.lib.stride_tricks.as_strided(flat[offset:], shape, tuple(s * arr.itemsize for s in strides))


def _write_through_view(t, r, op, view=None):
    """t (or ``view``, an array viewing t) is a view of ``base``: write r there and rewire both graphs."""
    base = t._base if t._base is not None else t
    view = t._data if view is None else view
    geom = _geometry(view, base._data, op)
    _check_write(view, r._data, op)
    out = CopySlices.apply(base, r, geom)
    bump(base)
    _take_place(base, out)
    if t is not base:
        refresh_view(t)


def refresh_view(t):
    """A view whose base was written in place since its grad_fn was set: its grad_fn becomes a strided view
    of the base as it is now (PyTorch regenerates a view's grad_fn the same way)."""
    base = t._base
    if base.requires_grad:
        v = AsStridedView.apply(base, _geometry(t._data, base._data))
        t.grad_fn, t._out_index, t.requires_grad = v.grad_fn, 0, True
    t._vv = version_of(t)[0]


class CopySlices(Function):
    """base' = base with its view ``geom`` replaced by r (broadcast).  d base = g with the region zeroed,
    d r = g's region. Writes into base's memory: the caller makes the base tensor this node's output."""

    saves = ()

    def forward(self, base, r, geom):
        self.geom = geom
        region(base, geom)[...] = r  # base is C-contiguous (checked): region is a view of its memory
        return base

    def backward(self, g):
        g = self.xp.ascontiguousarray(g)
        d_base = g.copy()
        region(d_base, self.geom)[...] = 0
        d_r = region(g, self.geom).copy() if self.needs_input_grad[1] else None
        return d_base, d_r, None


class AsStridedView(Function):
    """y = the view ``geom`` of base (a view);  d base = zeros with g in the region."""

    saves = ()
    returns_view = True

    def forward(self, base, geom):
        self.shape, self.geom = base.shape, geom
        return region(base, geom)

    def backward(self, g):
        d = self.xp.zeros(self.shape, g.dtype)
        region(d, self.geom)[...] = g
        return d, None


class IndexPut(Function):
    """x' = x with x[index] = v (advanced indexing);  d x = g with g[index] zeroed, d v = g[index].
    Writes into x's memory: the caller makes x this node's output."""

    saves = ()

    def forward(self, x, v, index):
        self.index = index
        x[index] = v
        return x

    def backward(self, g):
        dx = g.copy()
        dx[self.index] = 0
        dv = g[self.index] if self.needs_input_grad[1] else None
        return dx, dv, None
