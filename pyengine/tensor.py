"""Tensor: an array (NumPy on the CPU), its gradient, and the graph node that made it.

Factory functions (``tensor``, ``zeros``, ``randn``, ...) live here too. The differentiable
operations are in ``pyengine.ops``; Tensor methods call them.
"""
import builtins
import numbers

import numpy as np

from . import _dtype as D
from .autograd import _seed_grad, is_grad_enabled, run_backward
from .device import CPU, as_device
from .random import _rng

_float_default = np.dtype(np.float32)


class Tensor:
    """A multi-dimensional array with reverse-mode autograd (PyTorch semantics).

    Attributes: ``data`` (the ndarray), ``requires_grad``, ``grad`` (a Tensor or None),
    ``grad_fn`` (the node that made it, None for leaves).
    """

    __slots__ = ("data", "requires_grad", "grad", "grad_fn", "_out_index", "_hooks", "_post_hooks",
                 "__weakref__")
    __array_priority__ = 1000  # ndarray <op> Tensor defers to Tensor's reflected op

    def __init__(self, data, requires_grad=False, dtype=None):
        arr = _as_array(data, dtype)
        self.data = arr
        self.grad = None
        self.grad_fn = None
        self._out_index = 0
        self._hooks = None
        self._post_hooks = None
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_(True)

    # ------------------------------------------------------------------ attributes
    @property
    def shape(self):
        return Size(self.data.shape)

    def size(self, dim=None):
        if dim is None:
            return Size(self.data.shape)
        return self.data.shape[_norm_dim(dim, self.data.ndim, "size")]

    @property
    def dtype(self):
        return D._BY_NP[self.data.dtype]

    @property
    def device(self):
        return CPU

    @property
    def ndim(self):
        return self.data.ndim

    def dim(self):
        return self.data.ndim

    def numel(self):
        return self.data.size

    nelement = numel

    def element_size(self):
        return self.data.itemsize

    @property
    def is_leaf(self):
        return self.grad_fn is None

    def is_floating_point(self):
        return self.data.dtype.kind == "f"

    def is_contiguous(self):
        return self.data.flags.c_contiguous

    @property
    def is_cuda(self):
        return False

    def stride(self, dim=None):
        st = tuple(s // self.data.itemsize for s in self.data.strides)
        return st if dim is None else st[_norm_dim(dim, self.data.ndim, "stride")]

    def data_ptr(self):
        return self.data.ctypes.data

    def __len__(self):
        if self.data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.data.shape[0]

    # ------------------------------------------------------------------ autograd
    def requires_grad_(self, requires_grad=True):
        if requires_grad and self.data.dtype.kind not in "fc":
            raise RuntimeError(f"only Tensors of floating point dtype can require gradients (got {self.dtype})")
        if self.grad_fn is not None and not requires_grad:
            raise RuntimeError("you can only change requires_grad flags of leaf variables; use detach()")
        self.requires_grad = builtins.bool(requires_grad)
        return self

    def backward(self, gradient=None, retain_graph=None, create_graph=False, inputs=None):
        """Accumulate d(self)/d(leaf) * gradient into ``.grad`` of every leaf that requires grad.

        ``gradient`` may be omitted for a one-element tensor. The graph's saved values are freed
        afterwards unless ``retain_graph=True``.
        """
        if create_graph:
            raise NotImplementedError("backward(create_graph=True): higher-order gradients are not supported")
        seed = _seed_grad(self, gradient)
        run_backward([self], [seed], retain_graph=builtins.bool(retain_graph))

    def detach(self):
        """A new tensor sharing this one's memory, cut from the graph."""
        return _wrap(self.data)

    def detach_(self):
        self.grad_fn = None
        self.requires_grad = False
        return self

    def retain_grad(self):
        """Keep ``.grad`` for this non-leaf tensor after backward."""
        if self.grad_fn is None:
            return
        node = self.grad_fn
        if node.retained is None:
            node.retained = {}
        node.retained[self._out_index] = self

    def register_hook(self, hook):
        """Call ``hook(grad)`` when this leaf's gradient is computed; it may return a new gradient."""
        if self.grad_fn is not None:
            raise NotImplementedError("register_hook is supported on leaf tensors only")
        if self._hooks is None:
            self._hooks = {}
        key = object()
        self._hooks[key] = hook
        return _HookHandle(self._hooks, key)

    def register_post_accumulate_grad_hook(self, hook):
        """Call ``hook(tensor)`` after this leaf's ``.grad`` has been accumulated (used by DDP)."""
        if self._post_hooks is None:
            self._post_hooks = {}
        key = object()
        self._post_hooks[key] = hook
        return _HookHandle(self._post_hooks, key)

    # ------------------------------------------------------------------ conversion
    def numpy(self, force=False):
        """The underlying array (shares memory). Fails for tensors that require grad, as PyTorch."""
        if self.requires_grad and not force:
            raise RuntimeError("Can't call numpy() on Tensor that requires grad. Use tensor.detach().numpy() instead.")
        return self.data

    def __array__(self, dtype=None, copy=None):
        if dtype is not None and np.dtype(dtype) != self.data.dtype:
            return self.data.astype(dtype)
        return self.data.copy() if copy else self.data

    def item(self):
        if self.data.size != 1:
            raise RuntimeError(f"a Tensor with {self.data.size} elements cannot be converted to Scalar")
        return self.data.reshape(()).item()

    def tolist(self):
        return self.data.tolist()

    def __float__(self):
        return builtins.float(self.item())

    def __int__(self):
        return builtins.int(self.item())

    def __index__(self):
        if self.data.dtype.kind not in "iu" or self.data.size != 1:
            raise TypeError("only integer tensors of a single element can be converted to an index")
        return builtins.int(self.item())

    def __bool__(self):
        if self.data.size != 1:
            raise RuntimeError(f"Boolean value of Tensor with {self.data.size} elements is ambiguous")
        return builtins.bool(self.data.reshape(()))

    def __hash__(self):
        return id(self)

    def to(self, *args, dtype=None, device=None, copy=False, non_blocking=False):
        """Convert dtype and/or device: ``t.to(pyengine.float64)``, ``t.to("cpu")``, ``t.to(other)``."""
        for a in args:
            if isinstance(a, Tensor):
                dtype = a.dtype
            elif isinstance(a, (D.dtype, type, np.dtype)) and not isinstance(a, str):
                dtype = a
            else:
                device = a
        as_device(device)
        if dtype is None or D.to_numpy_dtype(dtype) == self.data.dtype:
            return self.clone() if copy else self
        from .ops import cast
        return cast(self, D.to_numpy_dtype(dtype))

    def cpu(self):
        return self

    def type(self, dtype=None):
        if dtype is None:
            return f"pyengine.{self.dtype.name.capitalize()}Tensor"
        return self.to(dtype)

    def float(self):
        return self.to(D.float32)

    def double(self):
        return self.to(D.float64)

    def half(self):
        return self.to(D.float16)

    def long(self):
        return self.to(D.int64)

    def int(self):
        return self.to(D.int32)

    def bool(self):
        return self.to(D.bool_)

    # ------------------------------------------------------------------ printing
    def __repr__(self):
        body = np.array2string(self.data, separator=", ", precision=4, prefix="tensor(")
        extras = []
        if self.data.dtype not in (np.float32, np.int64, np.bool_) or self.data.size == 0:
            extras.append(f"dtype={self.dtype}")
        if self.grad_fn is not None:
            extras.append(f"grad_fn=<{self.grad_fn.name}>")
        elif self.requires_grad:
            extras.append("requires_grad=True")
        return "tensor(" + body + "".join(", " + e for e in extras) + ")"

    __str__ = __repr__

    # ------------------------------------------------------------------ internals
    def _edge(self):
        """Where this tensor's gradient goes: itself if a leaf, else (node, output index)."""
        if self.grad_fn is None:
            return self
        return (self.grad_fn, self._out_index)

    def __getstate__(self):
        return {"data": self.data, "requires_grad": self.requires_grad}

    def __setstate__(self, state):
        self.data = state["data"]
        self.requires_grad = state["requires_grad"]
        self.grad = None
        self.grad_fn = None
        self._out_index = 0
        self._hooks = None
        self._post_hooks = None


class Size(tuple):
    """A tensor's shape: a tuple (like torch.Size)."""

    __slots__ = ()

    def numel(self):
        n = 1
        for s in self:
            n *= s
        return n

    def __repr__(self):
        return "pyengine.Size([" + ", ".join(str(s) for s in self) + "])"


class _HookHandle:
    __slots__ = ("store", "key")

    def __init__(self, store, key):
        self.store, self.key = store, key

    def remove(self):
        self.store.pop(self.key, None)


def _wrap(arr, node=None, index=0):
    """Fast Tensor construction from an array produced by an op (no checks, no copy)."""
    t = Tensor.__new__(Tensor)
    if type(arr) is not np.ndarray:
        arr = np.asarray(arr)
    t.data = arr
    t.grad = None
    t.grad_fn = node
    t._out_index = index
    t._hooks = None
    t._post_hooks = None
    t.requires_grad = node is not None
    return t


from . import autograd as _autograd  # noqa: E402

_autograd._Tensor = Tensor
_autograd._wrap = _wrap


def _norm_dim(dim, ndim, op="op"):
    """Normalise a possibly negative dim; IndexError naming the op if out of range."""
    n = builtins.max(ndim, 1)
    if not -n <= dim < n:
        raise IndexError(f"{op}: dimension out of range (expected to be in range of [{-n}, {n - 1}], but got {dim})")
    return dim + n if dim < 0 else dim


def _as_array(data, dtype=None):
    """Array from Python data / ndarray / Tensor, with PyTorch's default dtypes."""
    npd = D.to_numpy_dtype(dtype)
    if isinstance(data, Tensor):
        data = data.data
    if isinstance(data, np.ndarray):
        arr = data if npd is None else data.astype(npd, copy=False)
    else:
        if isinstance(data, (list, tuple)) and any(isinstance(x, Tensor) for x in _flat(data)):
            data = _nested_to_array(data)
        arr = np.array(data, dtype=npd)
        if npd is None:
            if arr.dtype == np.float64 and not _has_np_float64(data):
                arr = arr.astype(_float_default)  # Python floats -> float32, as torch.tensor
            elif arr.dtype.kind in "iu" and arr.dtype != np.int64 and not isinstance(data, np.generic):
                arr = arr.astype(np.int64)
    if arr.dtype not in D._BY_NP:
        if arr.dtype.kind == "f":
            arr = arr.astype(np.float32)
        elif arr.dtype.kind in "iu":
            arr = arr.astype(np.int64)
        else:
            raise TypeError(f"tensor: unsupported data of dtype {arr.dtype}")
    return arr


def _flat(x):
    if isinstance(x, (list, tuple)):
        for e in x:
            yield from _flat(e)
    else:
        yield x


def _nested_to_array(x):
    if isinstance(x, Tensor):
        return x.data
    if isinstance(x, (list, tuple)):
        return np.array([_nested_to_array(e) for e in x])
    return x


def _has_np_float64(data):
    return isinstance(data, (np.float64, np.ndarray))


# ---------------------------------------------------------------------- factories


def tensor(data, dtype=None, device=None, requires_grad=False):
    """A new tensor holding a copy of ``data`` (nested lists, numbers, arrays, tensors).

    Python floats become float32 and ints int64 unless ``dtype`` says otherwise.
    >>> pyengine.tensor([[1., 2.], [3., 4.]], requires_grad=True)
    """
    as_device(device)
    src = data.data if isinstance(data, Tensor) else data
    arr = _as_array(src, dtype)
    if isinstance(src, np.ndarray) and np.shares_memory(arr, src):
        arr = arr.copy()
    return Tensor(arr, requires_grad=requires_grad)


def as_tensor(data, dtype=None, device=None):
    """Like tensor(), but shares memory with a NumPy array or Tensor when it can."""
    if isinstance(data, Tensor) and (dtype is None or D.to_numpy_dtype(dtype) == data.data.dtype):
        return data
    as_device(device)
    return Tensor(_as_array(data, dtype))


def from_numpy(array):
    """A tensor sharing memory with ``array`` (changes to one show in the other)."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"from_numpy: expected np.ndarray (got {type(array).__name__})")
    D.from_numpy_dtype(array.dtype)
    return _wrap(array)


def _shape_arg(size, op):
    if len(size) == 1 and isinstance(size[0], (tuple, list, Size)):
        size = tuple(size[0])
    for s in size:
        if not isinstance(s, numbers.Integral) or s < 0:
            raise ValueError(f"{op}: sizes must be non-negative integers, got {tuple(size)}")
    return tuple(builtins.int(s) for s in size)


def _factory_dtype(dtype, default=_float_default):
    npd = D.to_numpy_dtype(dtype)
    return default if npd is None else npd


def _make(arr, requires_grad, device):
    as_device(device)
    return Tensor(arr, requires_grad=requires_grad)


def zeros(*size, dtype=None, device=None, requires_grad=False):
    return _make(np.zeros(_shape_arg(size, "zeros"), _factory_dtype(dtype)), requires_grad, device)


def ones(*size, dtype=None, device=None, requires_grad=False):
    return _make(np.ones(_shape_arg(size, "ones"), _factory_dtype(dtype)), requires_grad, device)


def empty(*size, dtype=None, device=None, requires_grad=False):
    return _make(np.empty(_shape_arg(size, "empty"), _factory_dtype(dtype)), requires_grad, device)


def full(size, fill_value, dtype=None, device=None, requires_grad=False):
    if dtype is None:
        dtype = (np.bool_ if isinstance(fill_value, builtins.bool) else
                 np.int64 if isinstance(fill_value, numbers.Integral) else _float_default)
    return _make(np.full(_shape_arg((size,), "full"), fill_value, D.to_numpy_dtype(dtype)), requires_grad, device)


def _like_dtype(t, dtype):
    return t.data.dtype if dtype is None else D.to_numpy_dtype(dtype)


def zeros_like(t, dtype=None, device=None, requires_grad=False):
    return _make(np.zeros(t.shape, _like_dtype(t, dtype)), requires_grad, device)


def ones_like(t, dtype=None, device=None, requires_grad=False):
    return _make(np.ones(t.shape, _like_dtype(t, dtype)), requires_grad, device)


def empty_like(t, dtype=None, device=None, requires_grad=False):
    return _make(np.empty(t.shape, _like_dtype(t, dtype)), requires_grad, device)


def full_like(t, fill_value, dtype=None, device=None, requires_grad=False):
    return _make(np.full(t.shape, fill_value, _like_dtype(t, dtype)), requires_grad, device)


def arange(start, end=None, step=1, dtype=None, device=None, requires_grad=False):
    """Values from start (inclusive) to end (exclusive) by step; int64 for int arguments."""
    if end is None:
        start, end = 0, start
    if dtype is None:
        ints = builtins.all(isinstance(v, numbers.Integral) for v in (start, end, step))
        dtype = np.int64 if ints else _float_default
    if step == 0:
        raise ValueError("arange: step must be nonzero")
    return _make(np.arange(start, end, step, dtype=D.to_numpy_dtype(dtype)), requires_grad, device)


def linspace(start, end, steps, dtype=None, device=None, requires_grad=False):
    return _make(np.linspace(start, end, builtins.int(steps), dtype=_factory_dtype(dtype)), requires_grad, device)


def eye(n, m=None, dtype=None, device=None, requires_grad=False):
    return _make(np.eye(n, m, dtype=_factory_dtype(dtype)), requires_grad, device)


def randn(*size, dtype=None, generator=None, device=None, requires_grad=False):
    """Standard normal samples."""
    npd = _factory_dtype(dtype)
    arr = _rng(generator).standard_normal(_shape_arg(size, "randn"), dtype=np.float64).astype(npd, copy=False)
    return _make(arr, requires_grad, device)


def rand(*size, dtype=None, generator=None, device=None, requires_grad=False):
    """Uniform samples in [0, 1)."""
    npd = _factory_dtype(dtype)
    arr = _rng(generator).random(_shape_arg(size, "rand"), dtype=np.float64).astype(npd, copy=False)
    return _make(arr, requires_grad, device)


def randint(low, high=None, size=None, dtype=None, generator=None, device=None, requires_grad=False):
    """Integers in [low, high); ``randint(high, size)`` or ``randint(low, high, size)``."""
    if size is None:
        if high is None:
            raise TypeError("randint: size is required")
        low, high, size = 0, low, high
    elif high is None:
        low, high = 0, low
    size = _shape_arg((size,), "randint")
    arr = _rng(generator).integers(low, high, size=size, dtype=np.int64)
    return _make(arr.astype(_factory_dtype(dtype, np.dtype(np.int64)), copy=False), requires_grad, device)


def randperm(n, dtype=None, generator=None, device=None):
    return _make(_rng(generator).permutation(builtins.int(n)).astype(_factory_dtype(dtype, np.dtype(np.int64))),
                 False, device)


def randn_like(t, dtype=None, generator=None, requires_grad=False):
    return randn(*t.shape, dtype=t.dtype if dtype is None else dtype, generator=generator,
                 requires_grad=requires_grad)


def rand_like(t, dtype=None, generator=None, requires_grad=False):
    return rand(*t.shape, dtype=t.dtype if dtype is None else dtype, generator=generator,
                requires_grad=requires_grad)


def randint_like(t, low, high=None, dtype=None, generator=None):
    return randint(low, high, tuple(t.shape), dtype=t.dtype if dtype is None else dtype, generator=generator)


def is_tensor(obj):
    return isinstance(obj, Tensor)


def numel(t):
    return t.numel()


# ---------------------------------------------------------------------- methods
# Tensor methods delegate to pyengine.ops; installed here once ops is importable.


def _inplace_check(t, op):
    if is_grad_enabled() and (t.requires_grad or t.grad_fn is not None):
        raise RuntimeError(f"{op}: a tensor that requires grad is being used in an in-place operation; "
                           "wrap it in pyengine.no_grad() or use the out-of-place op")


def _array_of(x):
    """A Tensor's array; anything else (numbers, arrays) as it is."""
    return x.data if isinstance(x, Tensor) else x


def _make_inplace(ufunc, name):
    def method(self, other, *, alpha=None):
        _inplace_check(self, name)
        o = _array_of(other)
        if alpha is not None:
            o = o * alpha
        ufunc(self.data, o, out=self.data, casting="same_kind")
        return self
    method.__name__ = name
    return method


def _install_methods():
    from . import ops
    from .ops import elementwise as ew

    T = Tensor
    T.__add__ = lambda a, b: ops.add(a, b)
    T.__radd__ = lambda a, b: ops.add(b, a)
    T.__sub__ = lambda a, b: ops.sub(a, b)
    T.__rsub__ = lambda a, b: ops.sub(b, a)
    T.__mul__ = lambda a, b: ops.mul(a, b)
    T.__rmul__ = lambda a, b: ops.mul(b, a)
    T.__truediv__ = lambda a, b: ops.div(a, b)
    T.__rtruediv__ = lambda a, b: ops.div(b, a)
    T.__floordiv__ = lambda a, b: ops.div(a, b, rounding_mode="floor")
    T.__mod__ = lambda a, b: _wrap(np.mod(a.data, _array_of(b)))
    T.__pow__ = lambda a, b: ops.pow(a, b)
    T.__rpow__ = lambda a, b: ops.pow(b, a)
    T.__matmul__ = lambda a, b: ops.matmul(a, b)
    T.__rmatmul__ = lambda a, b: ops.matmul(as_tensor(b), a)
    T.__neg__ = lambda a: ops.neg(a)
    T.__pos__ = lambda a: a
    T.__abs__ = lambda a: ops.abs(a)
    T.__eq__ = lambda a, b: ops.eq(a, b)
    T.__ne__ = lambda a, b: ops.ne(a, b)
    T.__lt__ = lambda a, b: ops.lt(a, b)
    T.__le__ = lambda a, b: ops.le(a, b)
    T.__gt__ = lambda a, b: ops.gt(a, b)
    T.__ge__ = lambda a, b: ops.ge(a, b)
    T.__and__ = lambda a, b: _wrap(np.bitwise_and(a.data, _array_of(b)))
    T.__or__ = lambda a, b: _wrap(np.bitwise_or(a.data, _array_of(b)))
    T.__xor__ = lambda a, b: _wrap(np.bitwise_xor(a.data, _array_of(b)))
    T.__invert__ = lambda a: _wrap(np.invert(a.data))
    T.__getitem__ = lambda a, idx: ops.getitem(a, idx)
    T.__setitem__ = lambda a, idx, v: ops.setitem(a, idx, v)
    T.__iter__ = lambda a: iter(ops.unbind(a, 0)) if a.ndim else _raise_iter()

    T.__iadd__ = _make_inplace(np.add, "add_")
    T.__isub__ = _make_inplace(np.subtract, "sub_")
    T.__imul__ = _make_inplace(np.multiply, "mul_")
    T.__itruediv__ = _make_inplace(np.true_divide, "div_")
    T.add_ = _make_inplace(np.add, "add_")
    T.sub_ = _make_inplace(np.subtract, "sub_")
    T.mul_ = _make_inplace(np.multiply, "mul_")
    T.div_ = _make_inplace(np.true_divide, "div_")

    simple = ["exp", "log", "sqrt", "rsqrt", "abs", "sin", "cos", "tanh", "sigmoid", "relu", "silu", "neg",
              "sign", "floor", "ceil", "isnan", "isinf", "isfinite", "logical_not",
              "sum", "mean", "var", "std", "max", "min", "amax", "amin", "logsumexp", "argmax", "argmin",
              "softmax", "log_softmax", "topk", "sort", "argsort", "cumsum", "prod", "all", "any",
              "reshape", "view", "flatten", "unflatten", "permute", "transpose", "t", "unsqueeze", "squeeze",
              "expand", "expand_as", "contiguous", "clone", "split", "chunk", "unbind", "masked_fill", "tril",
              "triu", "gather", "matmul", "maximum", "minimum", "clamp", "clip", "flip", "repeat_interleave",
              "eq", "ne", "lt", "le", "gt", "ge", "add", "sub", "mul", "div", "pow", "count_nonzero", "round"]
    for name in simple:
        setattr(T, name, getattr(ops, name))
    T.gelu = ew.gelu
    T.mm = ops.mm
    T.bmm = ops.bmm
    T.dot = ops.dot
    T.multinomial = ops.multinomial
    T.T = property(lambda a: ops.permute(a, tuple(reversed(range(a.ndim)))))
    T.mT = property(lambda a: ops.transpose(a, -2, -1))
    T.where = lambda a, cond, other: ops.where(cond, a, other)
    T.type_as = lambda a, other: a.to(other.dtype)
    T.view_as = lambda a, other: ops.view(a, *other.shape)
    T.reshape_as = lambda a, other: ops.reshape(a, *other.shape)
    T.new_tensor = lambda a, data, dtype=None: tensor(data, dtype=dtype or a.dtype)
    T.new_zeros = lambda a, *size, dtype=None: zeros(*size, dtype=dtype or a.dtype)
    T.new_ones = lambda a, *size, dtype=None: ones(*size, dtype=dtype or a.dtype)
    T.new_full = lambda a, size, v, dtype=None: full(size, v, dtype=dtype or a.dtype)
    T.new_empty = lambda a, *size, dtype=None: empty(*size, dtype=dtype or a.dtype)


def _raise_iter():
    raise TypeError("iteration over a 0-d tensor")


# in-place initialisers and fills (used by nn.init and optimizers); these never build a graph


def _fill_(self, value):
    _inplace_check(self, "fill_")
    self.data[...] = value.item() if isinstance(value, Tensor) else value
    return self


def _zero_(self):
    _inplace_check(self, "zero_")
    self.data[...] = 0
    return self


def _copy_(self, src):
    _inplace_check(self, "copy_")
    s = src.data if isinstance(src, Tensor) else np.asarray(src)
    try:
        np.copyto(self.data, np.broadcast_to(s, self.data.shape), casting="unsafe")
    except ValueError:
        raise RuntimeError(f"copy_: source of shape {tuple(s.shape)} does not broadcast to {tuple(self.shape)}") from None
    return self


def _uniform_(self, a=0.0, b=1.0, generator=None):
    _inplace_check(self, "uniform_")
    self.data[...] = _rng(generator).uniform(a, b, self.data.shape)
    return self


def _normal_(self, mean=0.0, std=1.0, generator=None):
    _inplace_check(self, "normal_")
    self.data[...] = _rng(generator).normal(mean, std, self.data.shape)
    return self


def _clamp_(self, min=None, max=None):  # noqa: A002
    _inplace_check(self, "clamp_")
    np.clip(self.data, min, max, out=self.data)
    return self


def _masked_fill_(self, mask, value):
    _inplace_check(self, "masked_fill_")
    m = mask.data if isinstance(mask, Tensor) else mask
    self.data[np.broadcast_to(m, self.data.shape)] = value.item() if isinstance(value, Tensor) else value
    return self


def _bernoulli_(self, p=0.5, generator=None):
    _inplace_check(self, "bernoulli_")
    self.data[...] = _rng(generator).random(self.data.shape) < p
    return self


Tensor.fill_ = _fill_
Tensor.zero_ = _zero_
Tensor.copy_ = _copy_
Tensor.uniform_ = _uniform_
Tensor.normal_ = _normal_
Tensor.clamp_ = _clamp_
Tensor.masked_fill_ = _masked_fill_
Tensor.bernoulli_ = _bernoulli_
