"""Tensor: an array (NumPy on the CPU), its gradient, and the graph node that made it.

Factory functions (``tensor``, ``zeros``, ``randn``, ...) live here too. The differentiable
operations are in ``pyengine.ops``; each Tensor method is declared in the class and forwards to
the op of the same name.
"""
import builtins
import math
import numbers
import sys

import numpy as np

from . import _dtype as D
from ._checks import check_alloc, index_arg, int64_arg, real_arg, scalar_arg, size_arg, tensor_op
from .device import CPU, as_device
from .device import no_cuda as _no_cuda
from .random import _rng

_float_default = np.dtype(np.float32)
_int = builtins.int  # the class defines a method int(): _norm_dim's type test must not look it up


class Tensor:
    """A multi-dimensional array with reverse-mode autograd (PyTorch semantics).

    Attributes: ``_data`` (the ndarray: NumPy on the CPU; ``numpy()`` gives it to users), ``data`` (the
    same memory as a Tensor outside the graph, as PyTorch's), ``requires_grad``, ``grad`` (a Tensor or
    None), ``grad_fn`` (the node that made it, None for leaves).

    Methods: the class body is the method table. After the attributes, autograd entry points and
    conversions come the ops, grouped as operators, math, comparisons, reductions, shape and
    indexing, in place, and new tensors; each is one line that calls the function of the same name
    in ``pyengine.ops``, where its forward and backward are.
    """

    __slots__ = ("_data", "requires_grad", "grad", "grad_fn", "_out_index", "_hooks", "_post_hooks",
                 "_version", "_base", "_vv",
                 "__weakref__")
    __array_priority__ = 1000  # ndarray <op> Tensor defers to Tensor's reflected op

    def __init__(self, *args, requires_grad=False, dtype=None, device=None):
        """PyTorch's legacy constructor (pyengine/_legacy.py): ``Tensor(2, 3)`` zeros of that shape,
        ``Tensor([1, 2])`` / ``Tensor(ndarray)`` a float32 copy, ``Tensor(t)`` shares t's memory, ``Tensor()``
        empty. pyengine's extension: ``Tensor(data, dtype=d)`` is data in dtype d (``as_tensor``'s rules)."""
        as_device(device)
        if dtype is not None:
            if len(args) != 1:
                raise TypeError(f"Tensor(data, dtype=...) takes one data argument, got {len(args)}")
            arr = _as_array(args[0], dtype)
        else:
            arr = _legacy.new_array(args, None)
        self._init(arr, requires_grad)

    def _init(self, arr, requires_grad=False):
        """Set up a new tensor over the array ``arr`` (kept as it is: its dtype and memory)."""
        self._data = arr
        self.grad = None
        self.grad_fn = None
        self._out_index = 0
        self._hooks = None
        self._post_hooks = None
        self._version = self._base = self._vv = None
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_(True)

    # ------------------------------------------------------------------ attributes
    @property
    def data(self):
        """This tensor's values as a new Tensor outside the graph, sharing its memory (PyTorch's ``.data``):
        ``p.data.add_(g, alpha=-lr)`` updates ``p`` unseen by autograd. The array itself: ``numpy()``."""
        return _wrap(self._data)

    @data.setter
    def data(self, value):
        """Replace the values (any shape), keeping requires_grad and the place in the graph, as PyTorch."""
        if isinstance(value, Tensor):
            value = value._data
        elif not isinstance(value, np.ndarray):
            raise TypeError(f"data: expected a Tensor or an array, got {type(value).__name__}")
        self._data = value

    @property
    def shape(self):
        return Size(self._data.shape)

    def size(self, dim=None):
        if dim is None:
            return Size(self._data.shape)
        return self._data.shape[_norm_dim(dim, self._data.ndim, "size")]

    @property
    def dtype(self):
        return D._BY_NP[self._data.dtype]

    @property
    def device(self):
        return CPU

    @property
    def ndim(self):
        return self._data.ndim

    def dim(self):
        return self._data.ndim

    def numel(self):
        return self._data.size

    nelement = numel

    def element_size(self):
        return self._data.itemsize

    @property
    def is_leaf(self):
        return self.grad_fn is None

    def is_floating_point(self):
        return D.is_float_np(self._data.dtype)

    def is_contiguous(self):
        return self._data.flags.c_contiguous

    @property
    def is_cuda(self):
        return False

    def stride(self, dim=None):
        st = tuple(s // self._data.itemsize for s in self._data.strides)
        return st if dim is None else st[_norm_dim(dim, self._data.ndim, "stride")]

    def data_ptr(self):
        return self._data.ctypes.data

    def __len__(self):
        if self._data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self._data.shape[0]

    # ------------------------------------------------------------------ autograd
    def requires_grad_(self, requires_grad=True):
        if requires_grad and not D.is_float_np(self._data.dtype):
            raise RuntimeError(f"only Tensors of floating point dtype can require gradients (got {self.dtype})")
        if self.grad_fn is not None and not requires_grad:
            raise RuntimeError("you can only change requires_grad flags of leaf variables; use detach()")
        self.requires_grad = builtins.bool(requires_grad)
        return self

    def backward(self, gradient=None, retain_graph=None, create_graph=False, inputs=None):
        """Accumulate d(self)/d(leaf) * gradient into ``.grad`` of every leaf that requires grad
        (of the tensors in ``inputs`` only, when given: leaves or not, as PyTorch).

        ``gradient`` may be omitted for a one-element tensor. The graph's saved values are freed
        afterwards unless ``retain_graph=True``.
        """
        autograd.backward(self, gradient, retain_graph, create_graph, inputs)

    def detach(self):
        """A new tensor sharing this one's memory (and its version counter), cut from the graph."""
        d = _wrap(self._data)
        d._version = ops.inplace.version_of(self)
        return d

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
        return self._data

    def __array__(self, dtype=None, copy=None):
        if dtype is not None and np.dtype(dtype) != self._data.dtype:
            return self._data.astype(dtype)
        return self._data.copy() if copy else self._data

    def item(self):
        if self._data.size != 1:
            raise RuntimeError(f"a Tensor with {self._data.size} elements cannot be converted to Scalar")
        return self._data.reshape(()).item()

    def tolist(self):
        return self._data.tolist()

    def __float__(self):
        return builtins.float(self.item())

    def __int__(self):
        return builtins.int(self.item())

    def __index__(self):
        if self._data.dtype.kind not in "iu" or self._data.size != 1:
            raise TypeError("only integer tensors of a single element can be converted to an index")
        return builtins.int(self.item())

    def __bool__(self):
        if self._data.size != 1:
            raise RuntimeError(f"Boolean value of Tensor with {self._data.size} elements is ambiguous")
        return builtins.bool(self._data.reshape(()))

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
        if dtype is None or D.to_numpy_dtype(dtype) == self._data.dtype:
            return self.clone() if copy else self
        npd = D.to_numpy_dtype(dtype)
        if npd == D.BF16_NP or self._data.dtype == D.BF16_NP:
            return _lowp.cast(self, npd)  # bfloat16: a float type NumPy does not know as one
        from .ops import cast
        return cast(self, npd)

    def cpu(self):
        return self

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
        arr = self._data if self._data.dtype != D.BF16_NP else self._data.astype(np.float32)
        body = np.array2string(arr, separator=", ", precision=4, prefix="tensor(")
        extras = []
        if self._data.dtype not in (np.float32, np.int64, np.bool_) or self._data.size == 0:
            extras.append(f"dtype={self.dtype}")
        if self.grad_fn is not None:
            extras.append(f"grad_fn=<{self.grad_fn.name}>")
        elif self.requires_grad:
            extras.append("requires_grad=True")
        return "tensor(" + body + "".join(", " + e for e in extras) + ")"

    __str__ = __repr__

    # ------------------------------------------------------------------ operators
    # Every op is a function of pyengine.ops (forward and backward side by side there); a method here
    # only forwards to it, so the table below is the whole list of what a Tensor can do.
    def __add__(self, other): return ops.add(self, other)
    def __radd__(self, other): return ops.add(other, self)
    def __sub__(self, other): return ops.sub(self, other)
    def __rsub__(self, other): return ops.sub(other, self)
    def __mul__(self, other): return ops.mul(self, other)
    def __rmul__(self, other): return ops.mul(other, self)
    def __truediv__(self, other): return ops.div(self, other)
    def __rtruediv__(self, other): return ops.div(other, self)
    def __floordiv__(self, other): return ops.div(self, other, rounding_mode="floor")
    def __mod__(self, other): return ops.remainder(self, other)
    def __rmod__(self, other): return ops.remainder(other, self)
    def __pow__(self, other): return ops.pow(self, other)
    def __rpow__(self, other): return ops.pow(other, self)
    def __matmul__(self, other): return ops.matmul(self, other)
    def __rmatmul__(self, other): return ops.matmul(as_tensor(other), self)
    def __neg__(self): return ops.neg(self)
    def __pos__(self): return self
    def __abs__(self): return ops.abs(self)
    def __eq__(self, other): return ops.eq(self, other)
    def __ne__(self, other): return ops.ne(self, other)
    def __lt__(self, other): return ops.lt(self, other)
    def __le__(self, other): return ops.le(self, other)
    def __gt__(self, other): return ops.gt(self, other)
    def __ge__(self, other): return ops.ge(self, other)
    def __and__(self, other): return _wrap(np.bitwise_and(self._data, _array_of(other)))
    def __or__(self, other): return _wrap(np.bitwise_or(self._data, _array_of(other)))
    def __xor__(self, other): return _wrap(np.bitwise_xor(self._data, _array_of(other)))
    def __invert__(self): return _wrap(np.invert(self._data))
    def __getitem__(self, index): return ops.getitem(self, index)
    def __setitem__(self, index, value): ops.setitem(self, index, value)

    def __iter__(self):
        if self._data.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return iter(ops.unbind(self, 0))

    def __format__(self, spec):
        # f"{loss:.4f}" formats a one-element tensor as its number, as PyTorch does
        if self._data.ndim == 0 and spec:
            return format(self.item(), spec)
        return format(repr(self), spec)

    # ------------------------------------------------------------------ math
    def add(self, other, alpha=1): return ops.add(self, other, alpha)
    def sub(self, other, alpha=1): return ops.sub(self, other, alpha)
    def mul(self, other): return ops.mul(self, other)
    def div(self, other, rounding_mode=None): return ops.div(self, other, rounding_mode)
    def pow(self, exponent): return ops.pow(self, exponent)
    def maximum(self, other): return ops.maximum(self, other)
    def minimum(self, other): return ops.minimum(self, other)
    def matmul(self, other): return ops.matmul(self, other)
    def mm(self, other): return ops.mm(self, other)
    def bmm(self, other): return ops.bmm(self, other)
    def dot(self, other): return ops.dot(self, other)
    def exp(self): return ops.exp(self)
    def log(self): return ops.log(self)
    def sqrt(self): return ops.sqrt(self)
    def rsqrt(self): return ops.rsqrt(self)
    def abs(self): return ops.abs(self)
    def neg(self): return ops.neg(self)
    def sin(self): return ops.sin(self)
    def cos(self): return ops.cos(self)
    def tanh(self): return ops.tanh(self)
    def sigmoid(self): return ops.sigmoid(self)
    def relu(self): return ops.relu(self)
    def silu(self): return ops.silu(self)
    def gelu(self, approximate="none"): return ops.gelu(self, approximate)
    def sign(self): return ops.sign(self)
    def floor(self): return ops.floor(self)
    def ceil(self): return ops.ceil(self)
    def round(self, decimals=0): return ops.round(self, decimals)
    def clamp(self, min=None, max=None): return ops.clamp(self, min, max)  # noqa: A002
    clip = clamp
    def where(self, condition, other): return ops.where(condition, self, other)
    def softmax(self, dim=-1, dtype=None): return ops.softmax(self, dim, dtype)
    def log_softmax(self, dim=-1, dtype=None): return ops.log_softmax(self, dim, dtype)

    # ------------------------------------------------------------------ comparisons and tests (no gradient)
    def eq(self, other): return ops.eq(self, other)
    def ne(self, other): return ops.ne(self, other)
    def lt(self, other): return ops.lt(self, other)
    def le(self, other): return ops.le(self, other)
    def gt(self, other): return ops.gt(self, other)
    def ge(self, other): return ops.ge(self, other)
    def isnan(self): return ops.isnan(self)
    def isinf(self): return ops.isinf(self)
    def isfinite(self): return ops.isfinite(self)
    def logical_not(self): return ops.logical_not(self)

    # ------------------------------------------------------------------ reductions
    def sum(self, dim=None, keepdim=False, dtype=None): return ops.sum(self, dim, keepdim, dtype)
    def mean(self, dim=None, keepdim=False, dtype=None): return ops.mean(self, dim, keepdim, dtype)
    def var(self, dim=None, unbiased=None, keepdim=False, correction=None):
        return ops.var(self, dim, unbiased, keepdim, correction)
    def std(self, dim=None, unbiased=None, keepdim=False, correction=None):
        return ops.std(self, dim, unbiased, keepdim, correction)
    def max(self, dim=None, keepdim=False): return ops.max(self, dim, keepdim)
    def min(self, dim=None, keepdim=False): return ops.min(self, dim, keepdim)
    def amax(self, dim=None, keepdim=False): return ops.amax(self, dim, keepdim)
    def amin(self, dim=None, keepdim=False): return ops.amin(self, dim, keepdim)
    def logsumexp(self, dim, keepdim=False): return ops.logsumexp(self, dim, keepdim)
    def all(self, dim=None): return ops.all(self, dim)
    def any(self, dim=None): return ops.any(self, dim)
    def count_nonzero(self, dim=None): return ops.count_nonzero(self, dim)
    def argmax(self, dim=None, keepdim=False): return ops.argmax(self, dim, keepdim)
    def argmin(self, dim=None, keepdim=False): return ops.argmin(self, dim, keepdim)
    def topk(self, k, dim=-1, largest=True, sorted=True): return ops.topk(self, k, dim, largest, sorted)  # noqa: A002
    def sort(self, dim=-1, descending=False, stable=False): return ops.sort(self, dim, descending, stable)
    def argsort(self, dim=-1, descending=False, stable=False): return ops.argsort(self, dim, descending, stable)
    def multinomial(self, num_samples, replacement=False, generator=None):
        return ops.multinomial(self, num_samples, replacement, generator)

    # ------------------------------------------------------------------ shape and indexing
    def reshape(self, *shape): return ops.reshape(self, *shape)
    def view(self, *shape): return ops.view(self, *shape)
    def view_as(self, other): return ops.view(self, *other.shape)
    def reshape_as(self, other): return ops.reshape(self, *other.shape)
    def flatten(self, start_dim=0, end_dim=-1): return ops.flatten(self, start_dim, end_dim)
    def unflatten(self, dim, sizes): return ops.unflatten(self, dim, sizes)
    def permute(self, *dims): return ops.permute(self, *dims)
    def transpose(self, dim0, dim1): return ops.transpose(self, dim0, dim1)
    def t(self): return ops.t(self)

    @property
    def T(self): return ops.permute(self, tuple(reversed(range(self._data.ndim))))  # noqa: N802

    @property
    def mT(self): return ops.transpose(self, -2, -1)  # noqa: N802

    def unsqueeze(self, dim): return ops.unsqueeze(self, dim)
    def squeeze(self, dim=None): return ops.squeeze(self, dim)
    def expand(self, *sizes): return ops.expand(self, *sizes)
    def expand_as(self, other): return ops.expand_as(self, other)
    def contiguous(self): return ops.contiguous(self)
    def clone(self): return ops.clone(self)
    def split(self, split_size_or_sections, dim=0): return ops.split(self, split_size_or_sections, dim)
    def chunk(self, chunks, dim=0): return ops.chunk(self, chunks, dim)
    def unbind(self, dim=0): return ops.unbind(self, dim)
    def flip(self, dims): return ops.flip(self, dims)
    def masked_fill(self, mask, value): return ops.masked_fill(self, mask, value)
    def tril(self, diagonal=0): return ops.tril(self, diagonal)
    def triu(self, diagonal=0): return ops.triu(self, diagonal)
    def gather(self, dim, index): return ops.gather(self, dim, index)

    # ------------------------------------------------------------------ in place
    # Each writes into this tensor's memory and bumps its version counter; under autograd the tensor takes
    # the op's place in the graph, as in PyTorch (ops/inplace.py). add_/sub_/mul_/div_ outside autograd
    # compute straight into the memory (an optimizer's p.data.add_(g, alpha=-lr)).
    def __iadd__(self, other): return self.add_(other)
    def __isub__(self, other): return self.sub_(other)
    def __imul__(self, other): return self.mul_(other)
    def __itruediv__(self, other): return self.div_(other)

    def add_(self, other, *args, alpha=1):
        other, alpha = _alpha_first(other, args, alpha, "add_")
        if _in_graph(self, other):
            return ops.inplace.apply_inplace(self, "add_", ops.add, other, alpha=alpha)
        return self._ufunc_(np.add, other, alpha, "add_")

    def sub_(self, other, *args, alpha=1):
        other, alpha = _alpha_first(other, args, alpha, "sub_")
        if _in_graph(self, other):
            return ops.inplace.apply_inplace(self, "sub_", ops.sub, other, alpha=alpha)
        return self._ufunc_(np.subtract, other, alpha, "sub_")

    def mul_(self, other):
        if _in_graph(self, other):
            return ops.inplace.apply_inplace(self, "mul_", ops.mul, other)
        return self._ufunc_(np.multiply, other, 1, "mul_")

    def div_(self, other, rounding_mode=None):
        if rounding_mode is not None or _in_graph(self, other):
            return ops.inplace.apply_inplace(self, "div_", ops.div, other, rounding_mode=rounding_mode)
        return self._ufunc_(np.true_divide, other, 1, "div_")

    def _ufunc_(self, ufunc, other, alpha, op):
        if isinstance(other, Tensor):
            o = other._data
        elif isinstance(other, (np.ndarray, np.generic)):
            o = other
        else:
            o = scalar_arg(op, "other", other)
        if alpha != 1:
            o = o * scalar_arg(op, "alpha", alpha)
        v = np.asarray(o)  # a Python number too (0-d: x[i] += 1)
        ops.inplace._check_write(self._data, np.broadcast_to(v, np.broadcast_shapes(v.shape, self._data.shape))
                                 if v.shape != self._data.shape else v, op)
        ufunc(self._data, o, out=self._data, casting="same_kind")
        ops.inplace.bump(self)
        return self

    def pow_(self, exponent): return ops.inplace.apply_inplace(self, "pow_", ops.pow, exponent)
    def exp_(self): return ops.inplace.apply_inplace(self, "exp_", ops.exp)
    def log_(self): return ops.inplace.apply_inplace(self, "log_", ops.log)
    def sqrt_(self): return ops.inplace.apply_inplace(self, "sqrt_", ops.sqrt)
    def rsqrt_(self): return ops.inplace.apply_inplace(self, "rsqrt_", ops.rsqrt)
    def abs_(self): return ops.inplace.apply_inplace(self, "abs_", ops.abs)
    def neg_(self): return ops.inplace.apply_inplace(self, "neg_", ops.neg)
    def sin_(self): return ops.inplace.apply_inplace(self, "sin_", ops.sin)
    def cos_(self): return ops.inplace.apply_inplace(self, "cos_", ops.cos)
    def tanh_(self): return ops.inplace.apply_inplace(self, "tanh_", ops.tanh)
    def sigmoid_(self): return ops.inplace.apply_inplace(self, "sigmoid_", ops.sigmoid)
    def relu_(self): return ops.inplace.apply_inplace(self, "relu_", ops.relu)
    def floor_(self): return ops.inplace.apply_inplace(self, "floor_", ops.floor)
    def ceil_(self): return ops.inplace.apply_inplace(self, "ceil_", ops.ceil)
    def round_(self, decimals=0): return ops.inplace.apply_inplace(self, "round_", ops.round, decimals)
    def sign_(self): return ops.inplace.apply_inplace(self, "sign_", ops.sign)

    def clamp_(self, min=None, max=None):  # noqa: A002
        return ops.inplace.apply_inplace(self, "clamp_", ops.clamp, min, max)
    clip_ = clamp_

    def masked_fill_(self, mask, value):
        return ops.inplace.apply_inplace(self, "masked_fill_", ops.masked_fill, mask, value)

    def fill_(self, value):
        value = value if isinstance(value, Tensor) else scalar_arg("fill_", "value", value)
        return ops.inplace.apply_inplace(self, "fill_", _filled, value)

    def zero_(self):
        return ops.inplace.apply_inplace(self, "zero_", _filled, 0)

    def copy_(self, src, non_blocking=False):
        return ops.inplace.apply_inplace(self, "copy_", _copied, src)

    def uniform_(self, a=0.0, b=1.0, generator=None):
        return ops.inplace.apply_inplace(self, "uniform_", _drawn, lambda r, s: r.uniform(a, b, s), generator)

    def normal_(self, mean=0.0, std=1.0, generator=None):
        return ops.inplace.apply_inplace(self, "normal_", _drawn, lambda r, s: r.normal(mean, std, s), generator)

    def bernoulli_(self, p=0.5, generator=None):
        return ops.inplace.apply_inplace(self, "bernoulli_", _drawn, lambda r, s: r.random(s) < p, generator)

    # in place on the shape only: the memory is the same, the tensor takes the view op's place in the graph
    def unsqueeze_(self, dim): return self._reshape_(ops.unsqueeze(self, dim))
    def squeeze_(self, dim=None): return self._reshape_(ops.squeeze(self, dim))
    def t_(self): return self._reshape_(ops.t(self))
    def transpose_(self, dim0, dim1): return self._reshape_(ops.transpose(self, dim0, dim1))

    def _reshape_(self, r):
        self._data = r._data
        if r.grad_fn is not None:
            self.grad_fn, self._out_index = r.grad_fn, r._out_index
        return self

    # ------------------------------------------------------------------ new tensors like this one
    def type_as(self, other): return self.to(other.dtype)
    def new_tensor(self, data, dtype=None): return tensor(data, dtype=dtype or self.dtype)
    def new_zeros(self, *size, dtype=None): return zeros(*size, dtype=dtype or self.dtype)
    def new_ones(self, *size, dtype=None): return ones(*size, dtype=dtype or self.dtype)
    def new_full(self, size, fill_value, dtype=None): return full(size, fill_value, dtype=dtype or self.dtype)
    def new_empty(self, *size, dtype=None): return empty(*size, dtype=dtype or self.dtype)

    # ------------------------------------------------------------------ PyTorch compatibility (legacy API, devices)
    # Legacy and device-query methods that real PyTorch programs call (pyengine/_legacy.py, docs/pytorch_compat.md).
    # This block is kept apart from the op table above on purpose: it is the compat helper's, to ease merging.
    def type(self, dtype=None, non_blocking=False):
        """``t.type()``: PyTorch's type name, ``"torch.FloatTensor"`` (PyTorch's string, so that comparisons
        written for PyTorch hold); ``t.type(pyengine.float64)`` / ``t.type("torch.DoubleTensor")`` /
        ``t.type(pyengine.DoubleTensor)`` casts. CUDA types raise (no CUDA in this build)."""
        if dtype is None:
            return _legacy.type_string(self.dtype)
        return self.to(_legacy.dtype_of_type_arg(dtype, "Tensor.type"))

    def new(self, *args):
        """PyTorch's legacy ``t.new(...)``: the legacy constructor (``pyengine.Tensor(...)``) in t's dtype."""
        return _wrap(_legacy.new_array(args, self._data.dtype, "Tensor.new"))

    def bfloat16(self):
        return self.to(D.bfloat16)

    def cuda(self, device=None, non_blocking=False, memory_format=None):
        """Raises, as PyTorch without CUDA: this build of pyengine has the CPU backend only."""
        raise _no_cuda("Tensor.cuda()")

    def pin_memory(self, device=None):
        """Page-locked memory is for copies to an accelerator: with none, PyTorch 2.13 raises; so does this."""
        raise RuntimeError("Cannot access accelerator device when none is available.")

    def is_pinned(self, device=None):
        return False

    def get_device(self):
        """-1 for a CPU tensor, as PyTorch."""
        return -1

    is_cpu = property(lambda self: True, doc="Always True: every tensor lives on the CPU in this build.")
    is_xpu = property(lambda self: False)
    is_mps = property(lambda self: False)
    is_meta = property(lambda self: False)
    is_sparse = property(lambda self: False)
    layout = property(lambda self: _sparse().strided, doc="torch.strided (pyengine.sparse.SparseCOOTensor: sparse_coo).")

    def to_sparse(self, sparse_dim=None, layout=None): return _sparse().to_sparse(self, sparse_dim, layout)

    def to_dense(self):
        return self
    is_quantized = property(lambda self: False)
    nbytes = property(lambda self: self._data.nbytes, doc="Bytes of this tensor's elements.")
    itemsize = property(lambda self: self._data.itemsize, doc="Bytes of one element.")

    def share_memory_(self): return _shm().share_memory_(self)
    def is_shared(self): return _shm().is_shared(self)

    def untyped_storage(self):
        """The memory block under this tensor (its base's, for a view) as bytes (PyTorch's UntypedStorage)."""
        return _legacy.UntypedStorage(_legacy.root_array(self._data))

    def storage(self):
        """The memory block under this tensor, as elements of its dtype (PyTorch's TypedStorage): for a view,
        its base's whole block; ``tolist()``, ``len()``, indexing, ``size()``, ``dtype``."""
        return _legacy.TypedStorage(_legacy.root_array(self._data))

    # ------------------------------------------------------------------ ops breadth (issue 13 item 2)
    # The methods of the ops added for PyTorch breadth, and their in-place forms (ops/inplace.py), in one block.
    def log1p(self): return ops.log1p(self)
    def expm1(self): return ops.expm1(self)
    def log2(self): return ops.log2(self)
    def log10(self): return ops.log10(self)
    def reciprocal(self): return ops.reciprocal(self)
    def trunc(self): return ops.trunc(self)
    def fix(self): return ops.trunc(self)
    def frac(self): return ops.frac(self)
    def lerp(self, end, weight): return ops.lerp(self, end, weight)
    def hypot(self, other): return ops.hypot(self, other)
    def atan2(self, other): return ops.atan2(self, other)
    def arctan2(self, other): return ops.atan2(self, other)
    def logaddexp(self, other): return ops.logaddexp(self, other)
    def clamp_min(self, min): return ops.clamp_min(self, min)  # noqa: A002
    def clamp_max(self, max): return ops.clamp_max(self, max)  # noqa: A002
    def nan_to_num(self, nan=0.0, posinf=None, neginf=None): return ops.nan_to_num(self, nan, posinf, neginf)
    def isclose(self, other, rtol=1e-5, atol=1e-8, equal_nan=False):
        return ops.isclose(self, other, rtol, atol, equal_nan)
    def allclose(self, other, rtol=1e-5, atol=1e-8, equal_nan=False):
        return ops.allclose(self, other, rtol, atol, equal_nan)
    def equal(self, other): return ops.equal(self, other)
    def cumsum(self, dim, dtype=None): return ops.cumsum(self, dim, dtype)
    def cumprod(self, dim, dtype=None): return ops.cumprod(self, dim, dtype)
    def prod(self, dim=None, keepdim=False, dtype=None): return ops.prod(self, dim, keepdim, dtype)
    def median(self, dim=None, keepdim=False): return ops.median(self, dim, keepdim)
    def nanmedian(self, dim=None, keepdim=False): return ops.nanmedian(self, dim, keepdim)
    def kthvalue(self, k, dim=-1, keepdim=False): return ops.kthvalue(self, k, dim, keepdim)
    def mode(self, dim=-1, keepdim=False): return ops.mode(self, dim, keepdim)
    def unique(self, sorted=True, return_inverse=False, return_counts=False, dim=None):  # noqa: A002
        return ops.unique(self, sorted, return_inverse, return_counts, dim)
    def bincount(self, weights=None, minlength=0): return ops.bincount(self, weights, minlength)
    def histc(self, bins=100, min=0, max=0): return ops.histc(self, bins, min, max)  # noqa: A002
    def norm(self, p="fro", dim=None, keepdim=False, dtype=None): return ops.norm(self, p, dim, keepdim, dtype)
    def addmm(self, mat1, mat2, beta=1, alpha=1): return ops.addmm(self, mat1, mat2, beta=beta, alpha=alpha)
    def baddbmm(self, batch1, batch2, beta=1, alpha=1):
        return ops.baddbmm(self, batch1, batch2, beta=beta, alpha=alpha)
    def addbmm(self, batch1, batch2, beta=1, alpha=1):
        return ops.addbmm(self, batch1, batch2, beta=beta, alpha=alpha)
    def addmv(self, mat, vec, beta=1, alpha=1): return ops.addmv(self, mat, vec, beta=beta, alpha=alpha)
    def mv(self, vec): return ops.mv(self, vec)
    def outer(self, vec2): return ops.outer(self, vec2)
    def ger(self, vec2): return ops.outer(self, vec2)
    def inner(self, other): return ops.inner(self, other)
    def cross(self, other, dim=None): return ops.linalg.cross(self, other, dim)
    def kron(self, other): return ops.kron(self, other)
    def narrow(self, dim, start, length): return ops.narrow(self, dim, start, length)
    def roll(self, shifts, dims=None): return ops.roll(self, shifts, dims)
    def repeat(self, *sizes): return ops.repeat(self, *sizes)
    def tile(self, dims): return ops.tile(self, dims)
    def repeat_interleave(self, repeats, dim=None, output_size=None): return ops.repeat_interleave(self, repeats, dim)
    def unfold(self, dimension, size, step): return ops.unfold(self, dimension, size, step)
    def movedim(self, source, destination): return ops.movedim(self, source, destination)
    def moveaxis(self, source, destination): return ops.movedim(self, source, destination)
    def diff(self, n=1, dim=-1, prepend=None, append=None): return ops.diff(self, n, dim, prepend, append)
    def diag(self, diagonal=0): return ops.diag(self, diagonal)
    def diagonal(self, offset=0, dim1=0, dim2=1): return ops.diagonal(self, offset, dim1, dim2)
    def trace(self): return ops.trace(self)
    def index_select(self, dim, index): return ops.index_select(self, dim, index)
    def index_add(self, dim, index, source, alpha=1): return ops.index_add(self, dim, index, source, alpha)
    def index_copy(self, dim, index, source): return ops.index_copy(self, dim, index, source)
    def index_fill(self, dim, index, value): return ops.index_fill(self, dim, index, value)
    def scatter(self, dim, index, src=None, value=None, reduce=None):
        return ops.scatter(self, dim, index, src, value, reduce)
    def scatter_add(self, dim, index, src): return ops.scatter_add(self, dim, index, src)
    def masked_select(self, mask): return ops.masked_select(self, mask)
    def masked_scatter(self, mask, source): return ops.masked_scatter(self, mask, source)
    def take(self, index): return ops.take(self, index)
    def take_along_dim(self, indices, dim=None): return ops.take_along_dim(self, indices, dim)
    def softplus(self, beta=1.0, threshold=20.0): return ops.softplus(self, beta, threshold)
    def remainder(self, other): return ops.remainder(self, other)
    def fmod(self, other): return ops.fmod(self, other)
    def remainder_(self, other): return ops.inplace.apply_inplace(self, "remainder_", ops.remainder, other)
    def fmod_(self, other): return ops.inplace.apply_inplace(self, "fmod_", ops.fmod, other)

    def log1p_(self): return ops.inplace.apply_inplace(self, "log1p_", ops.log1p)
    def expm1_(self): return ops.inplace.apply_inplace(self, "expm1_", ops.expm1)
    def log2_(self): return ops.inplace.apply_inplace(self, "log2_", ops.log2)
    def log10_(self): return ops.inplace.apply_inplace(self, "log10_", ops.log10)
    def reciprocal_(self): return ops.inplace.apply_inplace(self, "reciprocal_", ops.reciprocal)
    def trunc_(self): return ops.inplace.apply_inplace(self, "trunc_", ops.trunc)
    def fix_(self): return ops.inplace.apply_inplace(self, "fix_", ops.trunc)
    def frac_(self): return ops.inplace.apply_inplace(self, "frac_", ops.frac)
    def lerp_(self, end, weight): return ops.inplace.apply_inplace(self, "lerp_", ops.lerp, end, weight)
    def hypot_(self, other): return ops.inplace.apply_inplace(self, "hypot_", ops.hypot, other)
    def atan2_(self, other): return ops.inplace.apply_inplace(self, "atan2_", ops.atan2, other)
    def arctan2_(self, other): return ops.inplace.apply_inplace(self, "arctan2_", ops.atan2, other)
    def clamp_min_(self, min): return ops.inplace.apply_inplace(self, "clamp_min_", ops.clamp_min, min)  # noqa: A002
    def clamp_max_(self, max): return ops.inplace.apply_inplace(self, "clamp_max_", ops.clamp_max, max)  # noqa: A002
    def nan_to_num_(self, nan=0.0, posinf=None, neginf=None):
        return ops.inplace.apply_inplace(self, "nan_to_num_", ops.nan_to_num, nan, posinf, neginf)
    def cumsum_(self, dim, dtype=None): return ops.inplace.apply_inplace(self, "cumsum_", ops.cumsum, dim, dtype)
    def cumprod_(self, dim, dtype=None): return ops.inplace.apply_inplace(self, "cumprod_", ops.cumprod, dim, dtype)
    def tril_(self, diagonal=0): return ops.inplace.apply_inplace(self, "tril_", ops.tril, diagonal)
    def triu_(self, diagonal=0): return ops.inplace.apply_inplace(self, "triu_", ops.triu, diagonal)
    def addmm_(self, mat1, mat2, beta=1, alpha=1):
        return ops.inplace.apply_inplace(self, "addmm_", ops.addmm, mat1, mat2, beta=beta, alpha=alpha)
    def baddbmm_(self, batch1, batch2, beta=1, alpha=1):
        return ops.inplace.apply_inplace(self, "baddbmm_", ops.baddbmm, batch1, batch2, beta=beta, alpha=alpha)
    def addbmm_(self, batch1, batch2, beta=1, alpha=1):
        return ops.inplace.apply_inplace(self, "addbmm_", ops.addbmm, batch1, batch2, beta=beta, alpha=alpha)
    def addmv_(self, mat, vec, beta=1, alpha=1):
        return ops.inplace.apply_inplace(self, "addmv_", ops.addmv, mat, vec, beta=beta, alpha=alpha)
    def index_add_(self, dim, index, source, alpha=1):
        return ops.inplace.apply_inplace(self, "index_add_", ops.index_add, dim, index, source, alpha)
    def index_copy_(self, dim, index, source):
        return ops.inplace.apply_inplace(self, "index_copy_", ops.index_copy, dim, index, source)
    def index_fill_(self, dim, index, value):
        return ops.inplace.apply_inplace(self, "index_fill_", ops.index_fill, dim, index, value)
    def scatter_(self, dim, index, src=None, value=None, reduce=None):
        return ops.inplace.apply_inplace(self, "scatter_", ops.scatter, dim, index, src, value, reduce)
    def scatter_add_(self, dim, index, src):
        return ops.inplace.apply_inplace(self, "scatter_add_", ops.scatter_add, dim, index, src)
    def masked_scatter_(self, mask, source):
        return ops.inplace.apply_inplace(self, "masked_scatter_", ops.masked_scatter, mask, source)

    # ------------------------------------------------------------------ internals
    def _edge(self):
        """Where this tensor's gradient goes: itself if a leaf, else (node, output index)."""
        if self.grad_fn is None:
            return self
        return (self.grad_fn, self._out_index)

    def __getstate__(self):
        return {"data": _pickled(self._data), "requires_grad": self.requires_grad}

    def __setstate__(self, state):
        self._data = state["data"]
        self.requires_grad = state["requires_grad"]
        self.grad = None
        self.grad_fn = None
        self._out_index = 0
        self._hooks = None
        self._post_hooks = None
        self._version = self._base = self._vv = None


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


def _pickled(arr):
    """The array as a pickle should hold it: a reference to its block when in shared memory (multiprocessing)."""
    shm = sys.modules.get("pyengine.multiprocessing._shared")
    return arr if shm is None else shm.pickled(arr)


def _shm():
    from .multiprocessing import _shared
    return _shared


def _sparse():
    from . import sparse
    return sparse


def _new(arr, requires_grad=False):
    """A new leaf tensor over the array ``arr`` as it is (dtype and memory kept)."""
    t = Tensor.__new__(Tensor)
    t._init(arr, requires_grad)
    return t


def _wrap(arr, node=None, index=0):
    """Fast Tensor construction from an array produced by an op (no checks, no copy)."""
    t = Tensor.__new__(Tensor)
    if type(arr) is not np.ndarray:
        arr = np.asarray(arr)
    t._data = arr
    t.grad = None
    t.grad_fn = node
    t._out_index = index
    t._hooks = None
    t._post_hooks = None
    t._version = t._base = t._vv = None  # version counter (lazily made), base tensor of a view, its version
    t.requires_grad = node is not None
    return t


def _norm_dim(dim, ndim, op="op"):
    """Normalise a possibly negative dim; TypeError naming the op if it is not an integer, IndexError
    if out of range."""
    if type(dim) is not _int:
        dim = index_arg(op, "dim", dim)
    n = builtins.max(ndim, 1)
    if not -n <= dim < n:
        raise IndexError(f"{op}: dimension out of range (expected to be in range of [{-n}, {n - 1}], but got {dim})")
    return dim + n if dim < 0 else dim


def _as_array(data, dtype=None):
    """Array from Python data / ndarray / Tensor, with PyTorch's default dtypes."""
    npd = D.to_numpy_dtype(dtype)
    if isinstance(data, Tensor):
        data = data._data
    if isinstance(data, np.ndarray):
        arr = data if npd is None else data.astype(npd, copy=False)
    else:
        if isinstance(data, (list, tuple)) and any(isinstance(x, Tensor) for x in _flat(data)):
            data = _nested_to_array(data)
        try:
            arr = np.array(data, dtype=npd)
        except (TypeError, ValueError) as e:  # NumPy's words ("float() argument must be ...") in ours
            what = ("nested sequences of unequal lengths" if "inhomogeneous" in str(e) else
                    f"{type(data).__name__} data" if not isinstance(data, (list, tuple)) else "this data")
            raise type(e)(f"cannot convert {what} to {npd if npd is not None else 'an array'}") from None
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
        return x._data
    if isinstance(x, (list, tuple)):
        return np.array([_nested_to_array(e) for e in x])
    return x


def _has_np_float64(data):
    return isinstance(data, (np.float64, np.ndarray))


# ---------------------------------------------------------------------- factories


@tensor_op()
def tensor(data, dtype=None, device=None, requires_grad=False):
    """A new tensor holding a copy of ``data`` (nested lists, numbers, arrays, tensors).

    Python floats become float32 and ints int64 unless ``dtype`` says otherwise.
    >>> pyengine.tensor([[1., 2.], [3., 4.]], requires_grad=True)
    """
    as_device(device)
    src = data._data if isinstance(data, Tensor) else data
    arr = _as_array(src, dtype)
    if isinstance(src, np.ndarray) and np.shares_memory(arr, src):
        arr = arr.copy()
    return _new(arr, requires_grad)


@tensor_op()
def as_tensor(data, dtype=None, device=None):
    """Like tensor(), but shares memory with a NumPy array or Tensor when it can."""
    if isinstance(data, Tensor) and (dtype is None or D.to_numpy_dtype(dtype) == data._data.dtype):
        return data
    as_device(device)
    return _new(_as_array(data, dtype))


@tensor_op()
def from_numpy(array):
    """A tensor sharing memory with ``array`` (changes to one show in the other)."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"from_numpy: expected np.ndarray (got {type(array).__name__})")
    D.from_numpy_dtype(array.dtype)
    return _wrap(array)


def _sizes(sizes, size, op):
    """A factory's shape given positionally (``zeros(2, 3)``, ``zeros((2, 3))``) or as ``size=`` (PyTorch takes both)."""
    if size is None:
        return sizes
    if sizes:
        raise TypeError(f"{op}(): the shape is given twice (positionally and as size=)")
    return (size,)


def _shape_arg(size, op, itemsize=8):
    """The shape of a new tensor: non-negative ints (one sequence or several ints) whose product, in bytes
    of ``itemsize``, an array can address; else TypeError / ValueError naming the op, before any allocation."""
    if len(size) == 1 and isinstance(size[0], (tuple, list, Size)):
        size = tuple(size[0])
    for s in size:
        if not isinstance(s, numbers.Integral) or isinstance(s, builtins.bool):
            raise TypeError(f"{op}(): sizes must be non-negative integers, got {tuple(size)!r}")
        if s < 0:
            raise ValueError(f"{op}(): sizes must be non-negative integers, got {tuple(size)}")
    shape = tuple(builtins.int(s) for s in size)
    numel = 1
    for s in shape:
        numel *= s
    if numel * itemsize > np.iinfo(np.intp).max or builtins.any(s > np.iinfo(np.intp).max for s in shape):
        raise ValueError(f"{op}(): a tensor of shape {shape} would take {numel * itemsize} bytes, more than "
                         "any array can address")
    check_alloc(op, numel * itemsize, f"a tensor of shape {shape}")
    return shape


def _factory_dtype(dtype, default=_float_default):
    npd = D.to_numpy_dtype(dtype)
    return default if npd is None else npd


def _make(arr, requires_grad, device):
    as_device(device)
    return _new(arr, requires_grad)


# Every factory is a tensor_op: the shape is checked before anything is allocated, and an error from
# inside (an unknown dtype, a MemoryError for a shape this machine cannot hold) names the factory.


@tensor_op()
def zeros(*sizes, size=None, dtype=None, device=None, requires_grad=False):
    npd = _factory_dtype(dtype)
    return _make(np.zeros(_shape_arg(_sizes(sizes, size, "zeros"), "zeros", npd.itemsize), npd), requires_grad, device)


@tensor_op()
def ones(*sizes, size=None, dtype=None, device=None, requires_grad=False):
    npd = _factory_dtype(dtype)
    return _make(np.ones(_shape_arg(_sizes(sizes, size, "ones"), "ones", npd.itemsize), npd), requires_grad, device)


@tensor_op()
def empty(*sizes, size=None, dtype=None, device=None, requires_grad=False):
    npd = _factory_dtype(dtype)
    return _make(np.empty(_shape_arg(_sizes(sizes, size, "empty"), "empty", npd.itemsize), npd), requires_grad, device)


@tensor_op()
def full(size, fill_value, dtype=None, device=None, requires_grad=False):
    fill_value = scalar_arg("full", "fill_value", fill_value)
    if dtype is None:
        dtype = (np.bool_ if isinstance(fill_value, builtins.bool) else
                 np.int64 if isinstance(fill_value, numbers.Integral) else _float_default)
    npd = D.to_numpy_dtype(dtype)
    return _make(np.full(_shape_arg((size,), "full", npd.itemsize), fill_value, npd), requires_grad, device)


def _like_dtype(t, dtype):
    return t._data.dtype if dtype is None else D.to_numpy_dtype(dtype)


@tensor_op("t")
def zeros_like(t, dtype=None, device=None, requires_grad=False):
    return _make(np.zeros(t.shape, _like_dtype(t, dtype)), requires_grad, device)


@tensor_op("t")
def ones_like(t, dtype=None, device=None, requires_grad=False):
    return _make(np.ones(t.shape, _like_dtype(t, dtype)), requires_grad, device)


@tensor_op("t")
def empty_like(t, dtype=None, device=None, requires_grad=False):
    return _make(np.empty(t.shape, _like_dtype(t, dtype)), requires_grad, device)


@tensor_op("t")
def full_like(t, fill_value, dtype=None, device=None, requires_grad=False):
    fill_value = scalar_arg("full_like", "fill_value", fill_value)
    return _make(np.full(t.shape, fill_value, _like_dtype(t, dtype)), requires_grad, device)


@tensor_op()
def arange(start, end=None, step=1, dtype=None, device=None, requires_grad=False):
    """Values from start (inclusive) to end (exclusive) by step; int64 for int arguments."""
    if end is None:
        start, end = 0, start
    for name, v in (("start", start), ("end", end), ("step", step)):
        if not isinstance(v, builtins.int):
            real_arg("arange", name, v)
    if dtype is None:
        ints = builtins.all(isinstance(v, numbers.Integral) for v in (start, end, step))
        dtype = np.int64 if ints else _float_default
    if step == 0:
        raise ValueError("arange: step must be nonzero")
    if not builtins.all(math.isfinite(v) for v in (start, end, step)):
        raise ValueError(f"arange: start, end and step must be finite, got {start}, {end}, {step}")
    return _make(np.arange(start, end, step, dtype=D.to_numpy_dtype(dtype)), requires_grad, device)


@tensor_op()
def linspace(start, end, steps, dtype=None, device=None, requires_grad=False):
    start, end = real_arg("linspace", "start", start), real_arg("linspace", "end", end)
    npd = _factory_dtype(dtype)
    steps = _shape_arg((size_arg("linspace", "steps", steps),), "linspace", npd.itemsize)[0]
    return _make(np.linspace(start, end, steps, dtype=npd), requires_grad, device)


@tensor_op()
def eye(n, m=None, dtype=None, device=None, requires_grad=False):
    npd = _factory_dtype(dtype)
    n, m = _shape_arg((n, n if m is None else m), "eye", npd.itemsize)
    return _make(np.eye(n, m, dtype=npd), requires_grad, device)


@tensor_op()
def randn(*sizes, size=None, dtype=None, generator=None, device=None, requires_grad=False):
    """Standard normal samples."""
    npd = _factory_dtype(dtype)
    arr = _rng(generator).standard_normal(_shape_arg(_sizes(sizes, size, "randn"), "randn", 8), dtype=np.float64).astype(npd, copy=False)
    return _make(arr, requires_grad, device)


@tensor_op()
def rand(*sizes, size=None, dtype=None, generator=None, device=None, requires_grad=False):
    """Uniform samples in [0, 1)."""
    npd = _factory_dtype(dtype)
    arr = _rng(generator).random(_shape_arg(_sizes(sizes, size, "rand"), "rand", 8), dtype=np.float64).astype(npd, copy=False)
    return _make(arr, requires_grad, device)


@tensor_op()
def randint(low, high=None, size=None, dtype=None, generator=None, device=None, requires_grad=False):
    """Integers in [low, high); ``randint(high, size)`` or ``randint(low, high, size)``."""
    if size is None:
        if high is None:
            raise TypeError("randint: size is required")
        low, high, size = 0, low, high
    elif high is None:
        low, high = 0, low
    low, high = int64_arg("randint", "low", low), int64_arg("randint", "high", high)
    if low >= high:
        raise ValueError(f"randint: low must be less than high, got low={low}, high={high}")
    size = _shape_arg((size,), "randint")
    arr = _rng(generator).integers(low, high, size=size, dtype=np.int64)
    return _make(arr.astype(_factory_dtype(dtype, np.dtype(np.int64)), copy=False), requires_grad, device)


@tensor_op()
def randperm(n, dtype=None, generator=None, device=None):
    n = _shape_arg((size_arg("randperm", "n", n),), "randperm")[0]
    return _make(_rng(generator).permutation(n).astype(_factory_dtype(dtype, np.dtype(np.int64))), False, device)


@tensor_op("t")
def randn_like(t, dtype=None, generator=None, requires_grad=False):
    return randn(*t.shape, dtype=t.dtype if dtype is None else dtype, generator=generator,
                 requires_grad=requires_grad)


@tensor_op("t")
def rand_like(t, dtype=None, generator=None, requires_grad=False):
    return rand(*t.shape, dtype=t.dtype if dtype is None else dtype, generator=generator,
                requires_grad=requires_grad)


@tensor_op("t")
def randint_like(t, low, high=None, dtype=None, generator=None):
    return randint(low, high, tuple(t.shape), dtype=t.dtype if dtype is None else dtype, generator=generator)


def is_tensor(obj):
    return isinstance(obj, Tensor)


@tensor_op("t")
def numel(t):
    return t.numel()


# ---------------------------------------------------------------------- helpers of the methods


def _in_graph(t, other):
    """Whether an in-place op on t with ``other`` takes part in autograd."""
    return autograd.is_grad_enabled() and (t.requires_grad or (isinstance(other, Tensor) and other.requires_grad))


def _alpha_first(other, args, alpha, op):
    """add_(other, alpha=a), or PyTorch's deprecated add_(a, other)."""
    if args:
        if len(args) > 1 or alpha != 1 or not isinstance(args[0], Tensor):
            raise TypeError(f"{op}() takes (other, *, alpha=1); the deprecated form is {op}(alpha, other)")
        return args[0], other
    return other, alpha


def _filled(t, value):
    """A tensor of t's shape and dtype holding value (a number, or a one-element Tensor, differentiable)."""
    if isinstance(value, Tensor):
        return ops.expand(value.to(t.dtype).reshape(()), *t.shape)
    return _wrap(np.full(t._data.shape, value, t._data.dtype))


def _copied(t, src):
    """src broadcast to t's shape, in t's dtype (differentiable when src is a Tensor)."""
    if not isinstance(src, Tensor):
        return _wrap(np.array(np.broadcast_to(np.asarray(src), t._data.shape), dtype=t._data.dtype))
    try:
        np.broadcast_shapes(src._data.shape, t._data.shape)
    except ValueError:
        raise RuntimeError(f"copy_: source of shape {tuple(src.shape)} does not broadcast to "
                           f"{tuple(t.shape)}") from None
    return ops.expand(src if src._data.dtype == t._data.dtype else src.to(t.dtype), *t.shape)


def _drawn(t, draw, generator):
    """Random values of t's shape and dtype (no gradient: they do not depend on t)."""
    return _wrap(np.asarray(draw(_rng(generator), t._data.shape)).astype(t._data.dtype))


def _array_of(x):
    """A Tensor's array; anything else (numbers, arrays) as it is."""
    return x._data if isinstance(x, Tensor) else x


# autograd and ops import Tensor from this module, and Tensor's methods call them: the cycle is closed
# here, at the end, where every name those modules import from this one exists. The methods use the
# modules' functions at call time only, so these modules may be imported in any order.
from . import _legacy, _lowp, autograd, ops  # noqa: E402

# The hottest methods are the ops themselves instead of the one-line forwards declared above (which they
# replace with the same arguments in the same order): one Python call less per op, ~0.1 us of a one-element
# op's ~2 us (dev/gpt_ops_notes.md, "Per-op overhead"). a + b, a - b, a * b, a / b are the Functions' two-operand
# apply (ops.elementwise.OPERATORS, autograd.binary_apply), which pyengine.add ... call too.
for _method, _op in (("__matmul__", ops.matmul), ("__neg__", ops.neg), ("exp", ops.exp), ("log", ops.log),
                     ("sqrt", ops.sqrt), ("rsqrt", ops.rsqrt), ("tanh", ops.tanh), ("sigmoid", ops.sigmoid),
                     ("relu", ops.relu), ("matmul", ops.matmul), *ops.elementwise.OPERATORS.items()):
    setattr(Tensor, _method, _op)
del _method, _op
