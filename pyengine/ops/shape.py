"""Shape and indexing ops: views, concatenation, indexing with scatter-add backward, gather."""
import builtins
import math
import numbers

import numpy as np

from .._checks import INT64_MAX, INT64_MIN, KERNEL_FLOATS, int64_arg, scalar_arg, size_arg, tensor_op
from ..autograd import Function
from ..backend import xp_of
from ..tensor import Tensor, _norm_dim, _wrap


class Reshape(Function):
    """y = x viewed with another shape (a copy only if x's strides need it);  dx = g reshaped."""

    saves = ()
    returns_view = True
    views_grad = True  # backward passes g on (reshaped): see Function.views_grad

    def forward(self, x, shape):
        self.shape = x.shape
        try:
            return x.reshape(shape)
        except ValueError:
            raise RuntimeError(f"reshape: shape {list(shape)} is invalid for input of size {x.size} "
                               f"(shape {tuple(x.shape)})") from None

    def backward(self, g):
        return g.reshape(self.shape), None


class Permute(Function):
    """y = x with its dims reordered (a view);  dx = g with the inverse permutation."""

    saves = ()
    returns_view = True

    def forward(self, x, dims):
        self.inv = tuple(np.argsort(dims))
        return x.transpose(dims)

    def backward(self, g):
        return g.transpose(self.inv), None


class Expand(Function):
    """y = x broadcast to ``shape`` (a view);  dx = g summed over the expanded dims."""

    saves = ()
    returns_view = True

    def forward(self, x, shape):
        try:
            return self.xp.broadcast_to(x, shape)
        except ValueError:
            raise RuntimeError(f"expand: the expanded size {list(shape)} must match the existing size "
                               f"{list(x.shape)} at non-singleton dimensions") from None

    def backward(self, g):
        return g, None  # the engine sums g over the expanded dims (autograd.sum_to_shape)


class Contiguous(Function):
    """y = a C-contiguous copy of x (backend copy_into: threaded, row memcpys);  dx = g."""

    saves = ()
    views_grad = True  # backward passes g on as it is: see Function.views_grad

    def forward(self, x):
        return self.backend.copy_into(self.xp.empty(x.shape, x.dtype), x)

    def backward(self, g):
        return g


class Clone(Function):

    saves = ()
    views_grad = True  # backward passes g on as it is: see Function.views_grad

    def forward(self, x):
        return x.copy()

    def backward(self, g):
        return g


class Cat(Function):
    """y = concatenation along ``dim``;  each input's grad is its slice of g."""

    saves = ()

    def forward(self, dim, *xs):
        self.dim = dim
        self.bounds = np.cumsum([0] + [x.shape[dim] for x in xs])
        return _c_order(self.xp, self.xp.concatenate(xs, axis=dim))

    def backward(self, g):
        grads = [None]
        for i, need in enumerate(self.needs_input_grad[1:]):
            if need:
                sl = [builtins.slice(None)] * g.ndim
                sl[self.dim] = builtins.slice(self.bounds[i], self.bounds[i + 1])
                grads.append(g[tuple(sl)])
            else:
                grads.append(None)
        return tuple(grads)


def _c_order(xp, y):
    """PyTorch's cat and stack return a contiguous tensor; NumPy's keep the inputs' memory order (a stack of
    transposed inputs is transposed), which makes a later ``view`` fail where PyTorch's works."""
    return y if y.flags.c_contiguous else xp.ascontiguousarray(y)


class Stack(Function):
    """y = inputs stacked along a new dim;  each input's grad is its index of g."""

    saves = ()

    def forward(self, dim, *xs):
        self.dim = dim
        return _c_order(self.xp, self.xp.stack(xs, axis=dim))

    def backward(self, g):
        return (None,) + tuple(self.xp.take(g, i, axis=self.dim) if need else None
                               for i, need in enumerate(self.needs_input_grad[1:]))


def _is_basic_index(idx):
    items = idx if isinstance(idx, tuple) else (idx,)
    return builtins.all(i is None or i is Ellipsis or isinstance(i, (builtins.slice, numbers.Integral))
                        and not isinstance(i, builtins.bool) for i in items)


class Split(Function):
    """Views of consecutive pieces along ``dim``;  dx = the pieces' grads concatenated (zeros where none),
    each copied into its slice of one new array (backend copy_into)."""

    saves = ()
    returns_view = True
    fresh_grads = True  # dx: a new array

    def forward(self, x, dim, sizes):
        self.dim, self.shape = dim, x.shape
        self.bounds = np.cumsum([0] + list(sizes))
        sl = [builtins.slice(None)] * x.ndim
        out = []
        for i in range(len(sizes)):
            sl[dim] = builtins.slice(self.bounds[i], self.bounds[i + 1])
            out.append(x[tuple(sl)])
        return tuple(out)

    def backward(self, *grads):
        dtype = next(g.dtype for g in grads if g is not None)
        dx = self.xp.empty(self.shape, dtype)
        sl = [builtins.slice(None)] * len(self.shape)
        for i, g in enumerate(grads):
            sl[self.dim] = builtins.slice(self.bounds[i], self.bounds[i + 1])
            part = dx[tuple(sl)]
            if g is None:
                part[...] = 0
            elif g.dtype == dtype and g.shape == part.shape:
                self.backend.copy_into(part, g)
            else:
                part[...] = g
        return dx, None, None


class GetItem(Function):
    """y = x[index] (NumPy semantics);  dx = zeros with g scattered back, accumulating repeats."""

    saves = ()
    returns_view = True

    def forward(self, x, index):
        self.shape, self.dtype, self.index = x.shape, x.dtype, index
        self.basic = _is_basic_index(index)
        try:
            return self.xp.asarray(x[index])
        except IndexError as e:
            raise IndexError(f"index: {e} (tensor of shape {tuple(x.shape)})") from None

    def backward(self, g):
        xp = self.xp
        dx = xp.zeros(self.shape, g.dtype)
        if self.basic:
            dx[self.index] = g  # a view: no index repeats, plain assignment
        else:
            xp.add.at(dx, self.index, g)  # repeated indices accumulate
        return dx, None


class MaskedFill(Function):
    """y = x with value where mask (broadcast);  dx = g where not mask, 0 where mask (kernel:
    mask.masked_fill for float32/float64, also for the backward with value 0)."""

    saves = ()
    fresh_grads = True  # dx: a new array (the kernel's or np.where's)

    def forward(self, x, mask, value):
        xp = self.xp
        self.mask, self.shape = mask, x.shape
        try:
            fits = np.broadcast_shapes(x.shape, mask.shape) == x.shape
        except ValueError:
            fits = False
        if not fits:
            raise RuntimeError(f"masked_fill: mask of shape {tuple(mask.shape)} does not broadcast to "
                               f"the input's shape {tuple(x.shape)}")
        if x.dtype in KERNEL_FLOATS:
            return self.backend.masked_fill(x, mask, value)
        return xp.where(mask, xp.asarray(value, dtype=x.dtype), x)

    def backward(self, g):
        if g.dtype in KERNEL_FLOATS:
            return self.backend.masked_fill(g, self.mask, 0.0), None, None
        xp = self.xp
        return xp.where(self.mask, xp.zeros((), g.dtype), g), None, None


class Tri(Function):
    """tril / triu: keep the lower / upper triangle of the last two dims;  dx = g masked the same way."""

    saves = ()

    def forward(self, x, diagonal, upper):
        xp = self.xp
        n, m = x.shape[-2:]
        keep = xp.tri(n, m, diagonal - 1, dtype=bool) if upper else xp.tri(n, m, diagonal, dtype=bool)
        self.keep = ~keep if upper else keep
        return xp.where(self.keep, x, xp.zeros((), x.dtype))

    def backward(self, g):
        xp = self.xp
        return xp.where(self.keep, g, xp.zeros((), g.dtype)), None, None


class Gather(Function):
    """y[i][j] = x[i][index[i][j]] along ``dim``;  dx = scatter-add of g at index."""

    saves = ()

    def forward(self, x, dim, index):
        self.shape, self.dim, self.index = x.shape, dim, index
        n = x.shape[dim]
        if index.size and (index.min() < -n or index.max() >= n):
            raise IndexError(f"gather: index out of range for dimension {dim} of size {n}")
        for d in range(x.ndim):
            if d != dim and index.shape[d] > x.shape[d]:
                raise RuntimeError(f"gather: index {tuple(index.shape)} is larger than input "
                                   f"{tuple(x.shape)} at dimension {d}")
        sl = tuple(builtins.slice(0, index.shape[d]) if d != dim else builtins.slice(None) for d in range(x.ndim))
        return self.xp.take_along_axis(x[sl], index, axis=dim)

    def backward(self, g):
        xp = self.xp
        dx = xp.zeros(self.shape, g.dtype)
        idx = xp.indices(self.index.shape, sparse=True)
        full = tuple(self.index if d == self.dim else idx[d] for d in range(g.ndim))
        xp.add.at(dx, full, g)
        return dx, None, None


# ------------------------------------------------------------------ user-facing functions


def _size_args(shape, op, param="shape"):
    """Sizes given as several ints or one sequence of them, as ints within int64 (-1 and other
    negative values pass: the op says what they mean); TypeError / ValueError naming the op otherwise."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    for s in shape:
        if type(s) is not int or not INT64_MIN <= s <= INT64_MAX:  # anything but plain ints: check each
            return tuple(int64_arg(op, param, s) for s in shape)
    return tuple(shape)


def _target_shape(shape, op):
    """A reshape's target: sizes >= 0, with at most one -1 (inferred); RuntimeError naming the op otherwise
    (NumPy would take any negative size for -1)."""
    shape = _size_args(shape, op)
    if builtins.any(s < -1 for s in shape) or shape.count(-1) > 1:
        raise RuntimeError(f"{op}: invalid shape {list(shape)}: sizes must be >= 0, with at most one -1")
    return shape


@tensor_op("x")
def reshape(x, *shape):
    shape = _target_shape(shape, "reshape")
    if shape == x._data.shape:
        return x
    return Reshape.apply(x, shape)


@tensor_op("x")
def view(x, *shape):
    """Like reshape, but never copies: non-viewable strides raise, as in PyTorch."""
    shape = _target_shape(shape, "view")
    try:
        v = x._data.view()
        v.shape = shape  # raises if a copy would be needed
    except (AttributeError, ValueError):
        if -1 not in shape and math.prod(shape) != x._data.size:
            raise RuntimeError(f"view: shape {list(shape)} is invalid for input of size {x._data.size}") from None
        raise RuntimeError(f"view: size {list(shape)} is not compatible with input tensor's size and stride "
                           f"(shape {tuple(x.shape)}); use .reshape(...) instead") from None
    return Reshape.apply(x, shape)


@tensor_op("x")
def flatten(x, start_dim=0, end_dim=-1):
    s = _norm_dim(start_dim, x.ndim, "flatten")
    e = _norm_dim(end_dim, x.ndim, "flatten")
    if x.ndim == 0:
        return reshape(x, 1)
    shape = x.shape
    return reshape(x, tuple(shape[:s]) + (-1 if x.numel() else math.prod(shape[s:e + 1]),) + tuple(shape[e + 1:]))


@tensor_op("x")
def unflatten(x, dim, sizes):
    d = _norm_dim(dim, x.ndim, "unflatten")
    sizes = _target_shape((sizes,), "unflatten")
    return reshape(x, tuple(x.shape[:d]) + sizes + tuple(x.shape[d + 1:]))


@tensor_op("x")
def permute(x, *dims):
    dims = _size_args(dims, "permute", "dims")
    if len(dims) != x.ndim:
        raise RuntimeError(f"permute: number of dims ({len(dims)}) doesn't match the tensor's ({x.ndim})")
    dims = tuple(_norm_dim(d, x.ndim, "permute") for d in dims)
    if len(set(dims)) != len(dims):
        raise RuntimeError(f"permute: repeated dim in {dims}")
    return Permute.apply(x, dims)


@tensor_op("x")
def transpose(x, dim0, dim1):
    d0, d1 = _norm_dim(dim0, x.ndim, "transpose"), _norm_dim(dim1, x.ndim, "transpose")
    if x.ndim < 2:
        return x
    dims = list(range(x.ndim))
    dims[d0], dims[d1] = dims[d1], dims[d0]
    return Permute.apply(x, tuple(dims))


@tensor_op("x")
def t(x):
    if x.ndim > 2:
        raise RuntimeError(f"t() expects a tensor with <= 2 dimensions, but self is {x.ndim}D")
    return transpose(x, 0, 1) if x.ndim == 2 else x


@tensor_op("x")
def unsqueeze(x, dim):
    d = _norm_dim(dim, x.ndim + 1, "unsqueeze")
    shape = list(x.shape)
    shape.insert(d, 1)
    return Reshape.apply(x, tuple(shape))


@tensor_op("x")
def squeeze(x, dim=None):
    if dim is None:
        shape = tuple(s for s in x.shape if s != 1)
    else:
        dims = tuple(dim) if isinstance(dim, (tuple, list)) else (dim,)
        dims = {_norm_dim(d, x.ndim, "squeeze") for d in dims}
        shape = tuple(s for i, s in enumerate(x.shape) if not (i in dims and s == 1))
    if shape == tuple(x.shape):
        return x
    return Reshape.apply(x, shape)


@tensor_op("x")
def expand(x, *sizes):
    sizes = _size_args(sizes, "expand", "sizes")
    if len(sizes) < x.ndim:
        raise RuntimeError(f"expand: the number of sizes provided ({len(sizes)}) must be greater or equal "
                           f"to the number of dimensions in the tensor ({x.ndim})")
    lead = len(sizes) - x.ndim
    shape = tuple(x.shape[i - lead] if s == -1 else s for i, s in enumerate(sizes))
    return Expand.apply(x, shape)


@tensor_op("x", "other")
def expand_as(x, other):
    return expand(x, *other.shape)


@tensor_op("x")
def broadcast_to(x, shape):
    return expand(x, *_size_args((shape,), "broadcast_to"))


@tensor_op("x")
def contiguous(x):
    return x if x._data.flags.c_contiguous else Contiguous.apply(x)


@tensor_op("x")
def clone(x):
    return Clone.apply(x)


@tensor_op("tensors*")
def cat(tensors, dim=0):
    """Concatenate along an existing dim (all shapes equal except at ``dim``)."""
    tensors = list(tensors)
    if not tensors:
        raise RuntimeError("cat: expected a non-empty list of Tensors")
    nd = tensors[0].ndim
    if nd == 0:
        raise RuntimeError("cat: zero-dimensional tensor cannot be concatenated (use stack)")
    d = _norm_dim(dim, nd, "cat")
    for tt in tensors[1:]:
        if tt.ndim != nd or builtins.any(a != b for i, (a, b) in enumerate(zip(tt.shape, tensors[0].shape))
                                         if i != d):
            raise RuntimeError(f"cat: sizes of tensors must match except in dimension {d}; got "
                               f"{[tuple(x.shape) for x in tensors]}")
    return Cat.apply(d, *tensors)


concat = concatenate = cat


@tensor_op("tensors*")
def stack(tensors, dim=0):
    """Stack equal-shaped tensors along a new dim."""
    tensors = list(tensors)
    if not tensors:
        raise RuntimeError("stack: expected a non-empty list of Tensors")
    shapes = {tuple(x.shape) for x in tensors}
    if len(shapes) != 1:
        raise RuntimeError(f"stack: expects each tensor to be equal size, got {sorted(shapes)}")
    return Stack.apply(_norm_dim(dim, tensors[0].ndim + 1, "stack"), *tensors)


@tensor_op("x")
def split(x, split_size_or_sections, dim=0):
    """Split into chunks of ``split_size`` (the last may be smaller) or of the given sizes."""
    d = _norm_dim(dim, x.ndim, "split")
    n = x.shape[d]
    if not isinstance(split_size_or_sections, (tuple, list)):
        s = size_arg("split", "split_size", split_size_or_sections, minimum=1)
        sizes = [builtins.min(s, n - i) for i in range(0, n, s)] or [0]
    else:
        sizes = [size_arg("split", "split_size_or_sections", v) for v in split_size_or_sections]
        if builtins.sum(sizes) != n:
            raise RuntimeError(f"split: sizes {sizes} do not sum to the dimension's size {n}")
    return Split.apply(x, d, tuple(sizes))


@tensor_op("x")
def chunk(x, chunks, dim=0):
    chunks = size_arg("chunk", "chunks", chunks, minimum=1)
    d = _norm_dim(dim, x.ndim, "chunk")
    n = x.shape[d]
    size = -(-n // chunks) if n else 1
    return split(x, size, d)


@tensor_op("x")
def unbind(x, dim=0):
    d = _norm_dim(dim, x.ndim, "unbind")
    return tuple(getitem(x, (builtins.slice(None),) * d + (i,)) for i in range(x.shape[d]))


def _convert_index(index):
    """Tensors inside an index become arrays; lists of ints become int arrays."""
    if isinstance(index, tuple):
        return tuple(_convert_index(i) for i in index)
    if isinstance(index, Tensor):
        return index._data
    if isinstance(index, list):
        return np.asarray([i.item() if isinstance(i, Tensor) else i for i in index])
    return index


@tensor_op("x")
def getitem(x, index):
    return GetItem.apply(x, _convert_index(index))


@tensor_op("x")
def setitem(x, index, value):
    """x[index] = value, in place; under autograd x takes the write's place in the graph (ops/inplace.py)."""
    if not isinstance(value, (Tensor, np.ndarray, np.generic, list, tuple, numbers.Number)):
        raise TypeError(f"setitem(): the value must be a Tensor, an array or a number, not {type(value).__name__}")
    from .inplace import setitem as _setitem
    _setitem(x, index, value)


@tensor_op("x")
def masked_fill(x, mask, value):
    m = mask._data if isinstance(mask, Tensor) else np.asarray(mask)
    if m.dtype != np.bool_:
        raise TypeError(f"masked_fill: mask must be a bool tensor, got {m.dtype}")
    return MaskedFill.apply(x, m, scalar_arg("masked_fill", "value", value))


@tensor_op("x")
def tril(x, diagonal=0):
    if x.ndim < 2:
        raise RuntimeError("tril: input tensor must have at least 2 dimensions")
    return Tri.apply(x, int64_arg("tril", "diagonal", diagonal), False)


@tensor_op("x")
def triu(x, diagonal=0):
    if x.ndim < 2:
        raise RuntimeError("triu: input tensor must have at least 2 dimensions")
    return Tri.apply(x, int64_arg("triu", "diagonal", diagonal), True)


@tensor_op("x")
def gather(x, dim, index):
    idx = index._data if isinstance(index, Tensor) else np.asarray(index)
    if idx.dtype.kind not in "iu":
        raise TypeError(f"gather: index must be an integer tensor, got {idx.dtype}")
    if idx.ndim != x.ndim:
        raise RuntimeError(f"gather: index {tuple(idx.shape)} and input {tuple(x.shape)} must have the same "
                           "number of dimensions")
    return Gather.apply(x, _norm_dim(dim, x.ndim, "gather"), idx)


@tensor_op()
def one_hot(x, num_classes=-1):
    """Integer class indices (any shape) -> int64 one-hot with a new last dim."""
    a = x._data if isinstance(x, Tensor) else np.asarray(x)
    if a.dtype.kind not in "iu":
        raise TypeError(f"one_hot: expected an integer tensor of class indices, got {a.dtype}")
    num_classes = int64_arg("one_hot", "num_classes", num_classes)
    if num_classes < 0:
        num_classes = int(a.max()) + 1 if a.size else 0
    if a.size and (a.min() < 0 or a.max() >= num_classes):
        raise RuntimeError(f"one_hot: class values must be in [0, {num_classes}); got min {a.min()}, max {a.max()}")
    xp = xp_of(a)
    out = xp.zeros(a.shape + (num_classes,), np.int64)
    xp.put_along_axis(out, a[..., None].astype(np.int64), 1, axis=-1)
    return _wrap(out)


@tensor_op("probs")
def multinomial(probs, num_samples, replacement=False, generator=None):
    """Draw class indices with probability proportional to each row of ``probs`` (no grad)."""
    from ..random import _rng
    num_samples = size_arg("multinomial", "num_samples", num_samples)
    p = probs._data.astype(np.float64)
    if p.ndim not in (1, 2):
        raise RuntimeError(f"multinomial: prob_dist must be 1 or 2 dim, got {p.ndim}")
    if np.any(p < 0) or not np.all(np.isfinite(p)):
        raise RuntimeError("multinomial: probability tensor contains either inf, nan or element < 0")
    rows = p.reshape(-1, p.shape[-1])
    sums = rows.sum(axis=1)
    if np.any(sums <= 0):
        raise RuntimeError("multinomial: invalid multinomial distribution (sum of probabilities <= 0)")
    if not replacement and num_samples > rows.shape[1]:
        raise RuntimeError("multinomial: cannot sample n_sample > prob_dist.size(-1) samples without replacement")
    rng = _rng(generator)
    out = np.empty((rows.shape[0], num_samples), np.int64)
    for i, r in enumerate(rows):
        q = r / sums[i]
        if replacement:
            # inverse-CDF sampling: one uniform per draw
            cdf = np.cumsum(q)
            u = rng.random(num_samples) * cdf[-1]
            out[i] = np.minimum(np.searchsorted(cdf, u, side="right"), len(q) - 1)
        else:
            out[i] = rng.choice(len(q), size=num_samples, replace=False, p=q)
    return _wrap(out.reshape(p.shape[:-1] + (num_samples,)))


@tensor_op("x")
def flip(x, dims):
    flipped = {_norm_dim(d, x.ndim, "flip") for d in (dims if isinstance(dims, (list, tuple)) else [dims])}
    return getitem(x, tuple(builtins.slice(None, None, -1) if i in flipped else builtins.slice(None)
                            for i in range(x.ndim)))


__all__ = ["reshape", "view", "flatten", "unflatten", "permute", "transpose", "t", "unsqueeze", "squeeze",
           "expand", "expand_as", "broadcast_to", "contiguous", "clone", "cat", "concat", "concatenate",
           "stack", "split", "chunk", "unbind", "getitem", "setitem", "masked_fill", "tril", "triu", "gather",
           "one_hot", "multinomial", "flip"]


# ====================================================================== shape ops, breadth (issue 13 item 2)
# narrow, roll, repeat, tile, repeat_interleave (it built no graph node before: fixed here), unfold,
# meshgrid, diff, diag, diagonal, trace, kron, movedim.


def _move_to_front(xp, a, dim):
    return xp.moveaxis(a, dim, 0)


class Roll(Function):
    """y = x shifted cyclically by ``shifts`` along ``axes`` (None: flattened);  dx = g shifted back."""

    saves = ()

    def forward(self, x, shifts, axes):
        self.shifts, self.axes = shifts, axes
        return self.xp.roll(x, shifts, axes)

    def backward(self, g):
        neg = -self.shifts if isinstance(self.shifts, int) else tuple(-s for s in self.shifts)
        return self.xp.roll(g, neg, self.axes), None, None


class Repeat(Function):
    """y = x tiled ``reps`` times along each dim (x's shape left-padded with 1s to len(reps));
    dx = g viewed as (r0, n0, r1, n1, ...) summed over the r's."""

    saves = ()

    def forward(self, x, reps):
        self.shape, self.reps = x.shape, reps
        return self.xp.tile(x, reps)

    def backward(self, g):
        shape = (1,) * (len(self.reps) - len(self.shape)) + tuple(self.shape)
        split = []
        for r, n in zip(self.reps, shape):
            split += [r, n]
        d = g.reshape(split).sum(axis=tuple(range(0, 2 * len(shape), 2)))
        return d.reshape(self.shape), None


class RepeatInterleave(Function):
    """y = each slice of x along ``axis`` repeated ``repeats[i]`` times;  dx_i = sum of its copies' g."""

    saves = ()

    def forward(self, x, repeats, axis):
        xp = self.xp
        self.shape, self.axis = x.shape, axis
        n = x.shape[axis]
        self.src = xp.repeat(xp.arange(n), repeats)  # the source index of every output slice
        return xp.take(x, self.src, axis=axis)

    def backward(self, g):
        xp = self.xp
        dx = xp.zeros(self.shape, g.dtype)
        xp.add.at(_move_to_front(xp, dx, self.axis), self.src, _move_to_front(xp, g, self.axis))
        return dx, None, None


class Unfold(Function):
    """y[..., k, ..., j] = x[..., k step + j, ...] along ``dim`` (windows of ``size``, a new last dim);
    dx = the windows' g added back where they overlap. A view of x, as PyTorch's (read-only here)."""

    saves = ()
    returns_view = True

    def forward(self, x, dim, size, step):
        xp = self.xp
        self.shape, self.dim, self.size, self.step = x.shape, dim, size, step
        w = xp.lib.stride_tricks.sliding_window_view(x, size, axis=dim)
        sl = [builtins.slice(None)] * w.ndim
        sl[dim] = builtins.slice(None, None, step)
        return w[tuple(sl)]

    def backward(self, g):
        xp = self.xp
        nw = g.shape[self.dim]
        idx = (xp.arange(nw) * self.step)[:, None] + xp.arange(self.size)[None, :]  # (nw, size) x positions
        dx = xp.zeros(self.shape, g.dtype)
        gm = xp.moveaxis(g, (self.dim, g.ndim - 1), (0, 1))  # (nw, size, rest...)
        xp.add.at(_move_to_front(xp, dx, self.dim), idx, gm)
        return dx, None, None, None


class Diag(Function):
    """1-D x: the matrix with x on its ``k``-th diagonal;  2-D x: its ``k``-th diagonal (a copy).
    dx = g's diagonal (1-D x), or zeros with g on the diagonal (2-D x)."""

    saves = ()

    def forward(self, x, k):
        self.shape, self.k = x.shape, k
        return self.xp.diag(x, k).copy()

    def backward(self, g):
        xp, k = self.xp, self.k
        if len(self.shape) == 1:
            return xp.diagonal(g, k).copy(), None
        dx = xp.zeros(self.shape, g.dtype)
        i = xp.arange(g.shape[0])
        dx[i + builtins.max(-k, 0), i + builtins.max(k, 0)] = g
        return dx, None


class Diagonal(Function):
    """y = the ``offset`` diagonal of the (dim1, dim2) planes, as a new last dim (a view);
    dx = zeros with g on that diagonal."""

    saves = ()
    returns_view = True

    def forward(self, x, offset, dim1, dim2):
        self.shape, self.offset, self.dims = x.shape, offset, (dim1, dim2)
        return self.xp.diagonal(x, offset, dim1, dim2)

    def backward(self, g):
        xp, k = self.xp, self.offset
        dx = xp.zeros(self.shape, g.dtype)
        plane = xp.moveaxis(dx, self.dims, (-2, -1))  # a view of dx
        i = xp.arange(g.shape[-1])
        plane[..., i + builtins.max(-k, 0), i + builtins.max(k, 0)] = g
        return dx, None, None, None


def _int_seq(op, param, value):
    """One int or a sequence of ints, as a tuple of ints."""
    if isinstance(value, (tuple, list)):
        return tuple(int64_arg(op, param, v) for v in value)
    return (int64_arg(op, param, value),)


@tensor_op("x")
def narrow(x, dim, start, length):
    """The slice [start, start + length) of ``dim`` (a view). ``start`` may be negative."""
    d = _norm_dim(dim, x.ndim, "narrow")
    n = x.shape[d]
    start, length = int64_arg("narrow", "start", start), size_arg("narrow", "length", length)
    if start < 0:
        start += n
    if not 0 <= start <= n or start + length > n:
        raise IndexError(f"narrow: start ({start}) + length ({length}) exceeds dimension {d} of size {n} "
                         f"(input {tuple(x.shape)})")
    return getitem(x, (builtins.slice(None),) * d + (builtins.slice(start, start + length),))


@tensor_op("x")
def roll(x, shifts, dims=None):
    """Shift elements cyclically: ``roll(x, 1, 0)``, ``roll(x, (1, -2), (0, 1))``; no dims: over the
    flattened tensor, shape kept."""
    shifts = _int_seq("roll", "shifts", shifts)
    if dims is None:
        if len(shifts) != 1:
            raise RuntimeError(f"roll: shifts {shifts} needs dims of the same length")
        return Roll.apply(x.reshape(-1), shifts[0], None).reshape(*x.shape)
    axes = tuple(_norm_dim(d, x.ndim, "roll") for d in _int_seq("roll", "dims", dims))
    if len(axes) != len(shifts):
        raise RuntimeError(f"roll: shifts and dims must have the same length, got {len(shifts)} and {len(axes)}")
    return Roll.apply(x, shifts, axes)


@tensor_op("x")
def repeat(x, *sizes):
    """Tile x ``sizes[i]`` times along each dim; len(sizes) >= x.ndim (x gets leading dims of 1)."""
    sizes = tuple(size_arg("repeat", "sizes", s) for s in _size_args(sizes, "repeat", "sizes"))
    if len(sizes) < x.ndim:
        raise RuntimeError(f"repeat: number of repeat dims ({len(sizes)}) can not be smaller than the number of "
                           f"dimensions of the tensor ({x.ndim}, shape {tuple(x.shape)})")
    from .._checks import check_alloc
    shape = (1,) * (len(sizes) - x.ndim) + tuple(x.shape)
    check_alloc("repeat", math.prod(a * b for a, b in zip(sizes, shape)) * x._data.itemsize, "the result")
    return Repeat.apply(x, sizes)


@tensor_op("x")
def tile(x, dims):
    """repeat() with ``dims`` left-padded with 1s to x.ndim."""
    dims = tuple(size_arg("tile", "dims", s) for s in _size_args((dims,), "tile", "dims"))
    return repeat(x, (1,) * (x.ndim - len(dims)) + dims)


@tensor_op()
def repeat_interleave(x, repeats=None, dim=None, output_size=None):
    """Repeat each element (``dim=None``: of the flattened x) or each slice along ``dim``: ``repeats`` is an
    int or a tensor of one count per slice. ``repeat_interleave(counts)`` alone gives the indices
    0 repeated counts[0] times, 1 repeated counts[1] times, ..."""
    op = "repeat_interleave"
    if repeats is None:  # repeat_interleave(repeats): indices
        if not isinstance(x, Tensor):
            raise TypeError(f"{op}(): argument 'repeats' must be Tensor, not {type(x).__name__}")
        return repeat_interleave(_wrap(xp_of(x._data).arange(x.numel(), dtype=np.int64)), x, 0)
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}(): argument 'input' (position 1) must be Tensor, not {type(x).__name__}")
    if dim is None:
        x = x.reshape(-1)
        axis = 0
    else:
        axis = _norm_dim(dim, x.ndim, op)
        if x.ndim == 0:
            x = x.reshape(1)
    n = x.shape[axis]
    if isinstance(repeats, Tensor):
        reps = repeats._data
        if reps.dtype.kind not in "iu":
            raise TypeError(f"{op}: repeats must be an integer tensor, got {repeats.dtype}")
        if reps.ndim > 1 or (reps.size != 1 and reps.size != n):
            raise RuntimeError(f"{op}: repeats must have the same size as input along dim ({n}), got "
                               f"{tuple(reps.shape)} (input {tuple(x.shape)})")
        if reps.size and reps.min() < 0:
            raise RuntimeError(f"{op}: repeats can not be negative")
        reps = reps.reshape(-1).astype(np.int64)
        if reps.size == 1:
            reps = np.full(n, reps[0], np.int64)
    else:
        reps = np.full(n, size_arg(op, "repeats", repeats), np.int64)
    from .._checks import check_alloc
    total = int(reps.sum()) if n else 0
    check_alloc(op, total * (x.numel() // builtins.max(n, 1)) * x._data.itemsize, "the result")
    return RepeatInterleave.apply(x, reps, axis)


@tensor_op("x")
def unfold(x, dimension, size, step):
    """All windows of ``size`` elements along ``dimension``, ``step`` apart, as a new last dim:
    (..., n, ...) -> (..., (n - size) // step + 1, ..., size)."""
    if x.ndim == 0:
        x = x.reshape(1)
    d = _norm_dim(dimension, x.ndim, "unfold")
    size, step = size_arg("unfold", "size", size), size_arg("unfold", "step", step, minimum=1)
    if size > x.shape[d]:
        raise RuntimeError(f"unfold: maximum size for tensor at dimension {d} is {x.shape[d]} but size is {size} "
                           f"(input {tuple(x.shape)})")
    return Unfold.apply(x, d, size, step)


@tensor_op("tensors*")
def meshgrid(*tensors, indexing="ij"):
    """Coordinate grids from 1-D tensors (views of them, expanded): ``indexing="ij"`` gives shape
    (len(t0), len(t1), ...); ``"xy"`` swaps the first two dims (NumPy / MATLAB order)."""
    return _meshgrid(tensors, indexing)


def _meshgrid(tensors, indexing):
    if len(tensors) == 1 and isinstance(tensors[0], (list, tuple)):
        tensors = tuple(tensors[0])
    if indexing not in ("ij", "xy"):
        raise ValueError(f"meshgrid: indexing must be 'ij' or 'xy', got {indexing!r}")
    for t in tensors:
        if not isinstance(t, Tensor):
            raise TypeError(f"meshgrid(): expected Tensors, got {type(t).__name__}")
        if t.ndim > 1:
            raise RuntimeError(f"meshgrid: expected 0-D or 1-D tensors, got shape {tuple(t.shape)}")
    ts = [t.reshape(-1) for t in tensors]
    swap = indexing == "xy" and len(ts) >= 2
    if swap:
        ts[0], ts[1] = ts[1], ts[0]
    shape = tuple(t.shape[0] for t in ts)
    out = []
    for i, t in enumerate(ts):
        s = [1] * len(ts)
        s[i] = -1
        out.append(expand(t.reshape(*s), *shape))
    if swap:  # the grids of (t1, t0, t2, ...) in "ij" order, handed back in the inputs' order
        out[0], out[1] = out[1], out[0]
    return tuple(out)


@tensor_op("x", "prepend?", "append?")
def diff(x, n=1, dim=-1, prepend=None, append=None):
    """n-th forward difference along ``dim``: out[i] = x[i + 1] - x[i], ``n`` times; ``prepend`` / ``append``
    are concatenated first."""
    n = size_arg("diff", "n", n)
    if x.ndim == 0:
        raise RuntimeError("diff: expects input to be at least one-dimensional")
    d = _norm_dim(dim, x.ndim, "diff")
    parts = [p if p.ndim else expand(p.reshape(*(1,) * x.ndim), *x.shape[:d], 1, *x.shape[d + 1:])
             for p in (prepend, x, append) if p is not None]
    if len(parts) > 1:
        x = cat(parts, d)
    for _ in range(n):
        m = x.shape[d]
        if m == 0:
            break
        hi = narrow(x, d, 1, m - 1)
        lo = narrow(x, d, 0, m - 1)
        x = hi.logical_xor(lo) if x._data.dtype == np.bool_ else hi - lo
    return x


@tensor_op("x")
def diag(x, diagonal=0):
    """1-D x -> the square matrix with x on diagonal ``diagonal``; 2-D x -> that diagonal (1-D)."""
    if x.ndim not in (1, 2):
        raise RuntimeError(f"diag: expected a 1-D or 2-D tensor, got shape {tuple(x.shape)}")
    return Diag.apply(x, int64_arg("diag", "diagonal", diagonal))


@tensor_op("x")
def diagonal(x, offset=0, dim1=0, dim2=1):
    """The ``offset`` diagonal of the planes (dim1, dim2), as a new last dim (a view)."""
    if x.ndim < 2:
        raise RuntimeError(f"diagonal: expected a tensor of at least 2 dimensions, got shape {tuple(x.shape)}")
    d1, d2 = _norm_dim(dim1, x.ndim, "diagonal"), _norm_dim(dim2, x.ndim, "diagonal")
    if d1 == d2:
        raise RuntimeError(f"diagonal: dimensions cannot be identical {dim1}, {dim2}")
    return Diagonal.apply(x, int64_arg("diagonal", "offset", offset), d1, d2)


@tensor_op("x")
def trace(x):
    """Sum of the main diagonal of a matrix."""
    if x.ndim != 2:
        raise RuntimeError(f"trace: expected a matrix, got shape {tuple(x.shape)}")
    return diagonal(x).sum()


@tensor_op("a", "b")
def kron(a, b):
    """Kronecker product: out[i * b.shape + j] = a[i] b[j] (dims aligned from the right)."""
    nd = builtins.max(a.ndim, b.ndim)
    sa = (1,) * (nd - a.ndim) + tuple(a.shape)
    sb = (1,) * (nd - b.ndim) + tuple(b.shape)
    ia, ib = [], []
    for x, y in zip(sa, sb):
        ia += [x, 1]
        ib += [1, y]
    out = a.reshape(*ia) * b.reshape(*ib)
    return out.reshape(*[x * y for x, y in zip(sa, sb)])


@tensor_op("x")
def movedim(x, source, destination):
    """Move dims ``source`` to positions ``destination`` (a view); the other dims keep their order."""
    src = tuple(_norm_dim(d, x.ndim, "movedim") for d in _int_seq("movedim", "source", source))
    dst = tuple(_norm_dim(d, x.ndim, "movedim") for d in _int_seq("movedim", "destination", destination))
    if len(src) != len(dst) or len(set(src)) != len(src) or len(set(dst)) != len(dst):
        raise RuntimeError(f"movedim: source {src} and destination {dst} must be the same number of distinct dims")
    order = [d for d in range(x.ndim) if d not in src]
    perm = [None] * x.ndim
    for s, t in zip(src, dst):
        perm[t] = s
    it = iter(order)
    perm = [p if p is not None else next(it) for p in perm]
    return permute(x, *perm) if x.ndim else x


moveaxis = movedim

__all__ += ["narrow", "roll", "repeat", "tile", "repeat_interleave", "unfold", "meshgrid", "diff", "diag",
            "diagonal", "trace", "kron", "movedim", "moveaxis"]
