"""Elementwise ops with NumPy broadcasting.

Each op is a Function: forward and backward side by side, the derivative in the docstring. A
backward returns gradients in the broadcast shape of the output; the engine sums each back to its
input's shape (autograd.sum_to_shape). Array math goes through ``self.xp`` (the backend's array
module), kernels through ``self.backend``: the arithmetic, comparisons, where and the common unary
ops, forward and backward, are the elementwise kernel family (backend/reference/elementwise.py says
what each computes; on the CPU one compiled pass each for large float inputs, NumPy for the rest).
"""
import numpy as np

from .._checks import check_kernel_float, int64_arg, real_arg, scalar_arg, tensor_op, with_name
from ..autograd import Function
from ..backend import backend_of, xp_of
from ..tensor import Tensor, _wrap
from ..tensor import _array_of as _arr

_F64 = np.dtype(np.float64)


def _shape(x):
    return x.shape if hasattr(x, "shape") else ()


def _is_f64(x):
    return hasattr(x, "shape") and x.dtype == _F64  # an array (a Python float is weakly typed)


def _promote(out, a, b):
    """Keep PyTorch's rule that int tensor <op> Python float gives float32, not float64."""
    if out.dtype == _F64 and not (_is_f64(a) or _is_f64(b)):
        return out.astype(np.float32)
    return out


def _binary(ufunc, a, b, op):
    """ufunc(a, b) with the op named in broadcast and dtype errors and PyTorch's int/float promotion."""
    try:
        out = ufunc(a, b)
    except ValueError:
        _check_broadcast(op, a, b)
        raise
    except TypeError as e:  # NumPy has no such loop (bool - bool, ...): say so with the dtypes
        raise TypeError(f"{op}: not supported for {_dtype_name(a)} and {_dtype_name(b)} operands ({e})") from None
    except OverflowError:  # a Python int past the integer dtype it is computed in
        raise ValueError(f"{op}: a number does not fit the operands' integer dtype ({_dtype_name(a)} and "
                         f"{_dtype_name(b)})") from None
    return _promote(out, a, b)


def _dtype_name(x):
    return x.dtype.name if hasattr(x, "dtype") else type(x).__name__


def _check_broadcast(op, a, b):
    try:
        return np.broadcast_shapes(_shape(a), _shape(b))
    except ValueError:
        raise ValueError(f"{op}: shapes {tuple(_shape(a))} and {tuple(_shape(b))} cannot be broadcast together") from None


class Add(Function):
    """y = a + b;  da = g, db = g."""

    saves = ()

    def forward(self, a, b):
        return _binary(self.backend.add, a, b, "add")

    def backward(self, g):
        return g, g


class Sub(Function):
    """y = a - b;  da = g, db = -g."""

    saves = ()

    def forward(self, a, b):
        return _binary(self.backend.sub, a, b, "sub")

    def backward(self, g):
        return g, (self.backend.neg(g) if self.needs_input_grad[1] else None)


class Mul(Function):
    """y = a * b;  da = g b, db = g a."""

    saves = (0, 1)
    fresh_grads = True  # every gradient a new array (kernel output or NumPy result)

    def forward(self, a, b):
        self.a, self.b = a, b
        return _binary(self.backend.mul, a, b, "mul")

    def backward(self, g):
        n, mul = self.needs_input_grad, self.backend.mul
        return (mul(g, self.b) if n[0] else None, mul(g, self.a) if n[1] else None)


class Div(Function):
    """y = a / b;  da = g / b, db = -g a / b^2."""

    saves = (0, 1)
    fresh_grads = True  # every gradient a new array (kernel output or NumPy result)

    def forward(self, a, b):
        self.a, self.b = a, b
        return _binary(self.backend.div, a, b, "div")

    def backward(self, g):
        a, b = self.a, self.b
        n, be = self.needs_input_grad, self.backend
        return (be.div(g, b) if n[0] else None, be.div_backward_b(g, a, b) if n[1] else None)


class Pow(Function):
    """y = a ** b;  da = g b a^(b-1), db = g y log(a)."""

    saves = (0, 1, "out")
    fresh_grads = True  # every gradient a new array (kernel output or NumPy result)

    def forward(self, a, b):
        if _shape(a) != _shape(b):
            _check_broadcast("pow", a, b)
        self.a, self.b = a, b
        self.y = _promote(self.backend.pow(a, b), a, b)
        return self.y

    def backward(self, g):
        a, b, y = self.a, self.b, self.y
        n, be = self.needs_input_grad, self.backend
        return (be.pow_backward_a(g, a, b) if n[0] else None,
                be.pow_backward_b(g, y, a) if n[1] else None)


class Maximum(Function):
    """y = max(a, b); the gradient goes to the larger input, split evenly on ties (as PyTorch)."""

    saves = (0, 1)
    fresh_grads = True  # every gradient a new array (kernel output or NumPy result)

    def forward(self, a, b):
        _check_broadcast("maximum", a, b)
        self.a, self.b = a, b
        return self.backend.maximum(a, b)

    def backward(self, g):
        n, be = self.needs_input_grad, self.backend
        return (be.maximum_backward_a(g, self.a, self.b) if n[0] else None,
                be.maximum_backward_b(g, self.a, self.b) if n[1] else None)


class Minimum(Function):
    """y = min(a, b); the gradient goes to the smaller input, split evenly on ties."""

    saves = (0, 1)
    fresh_grads = True  # every gradient a new array (kernel output or NumPy result)

    def forward(self, a, b):
        _check_broadcast("minimum", a, b)
        self.a, self.b = a, b
        return self.backend.minimum(a, b)

    def backward(self, g):
        n, be = self.needs_input_grad, self.backend
        return (be.minimum_backward_a(g, self.a, self.b) if n[0] else None,
                be.minimum_backward_b(g, self.a, self.b) if n[1] else None)


class Where(Function):
    """y = cond ? a : b;  da = g where cond, db = g where not cond."""

    saves = ()
    fresh_grads = True  # every gradient a new array (kernel output or NumPy result)

    def forward(self, cond, a, b):
        self.cond = cond
        return _promote(self.backend.where(cond, a, b), a, b)

    def backward(self, g):
        be, n = self.backend, self.needs_input_grad
        return (None,
                be.where_backward_a(self.cond, g) if n[1] else None,
                be.where_backward_b(self.cond, g) if n[2] else None)


# ------------------------------------------------------------------ unary


class Neg(Function):
    """y = -x."""

    saves = ()
    fresh_grads = True  # every gradient a new array (kernel output or NumPy result)

    def forward(self, x):
        return self.backend.neg(x)

    def backward(self, g):
        return self.backend.neg(g)


class Exp(Function):
    """y = e^x;  dx = g y."""

    saves = ("out",)
    fresh_grads = True  # every gradient a new array (kernel output or NumPy result)

    def forward(self, x):
        self.y = self.backend.exp(x)
        return self.y

    def backward(self, g):
        return self.backend.exp_backward(self.y, g)


class Log(Function):
    """y = log x;  dx = g / x."""

    saves = (0,)
    fresh_grads = True  # every gradient a new array (kernel output or NumPy result)

    def forward(self, x):
        self.x = x
        return self.backend.log(x)

    def backward(self, g):
        return self.backend.log_backward(self.x, g)


class Sqrt(Function):
    """y = sqrt x;  dx = g / (2 y)."""

    saves = ("out",)
    fresh_grads = True  # every gradient a new array (kernel output or NumPy result)

    def forward(self, x):
        self.y = self.backend.sqrt(x)
        return self.y

    def backward(self, g):
        return self.backend.sqrt_backward(self.y, g)


class Rsqrt(Function):
    """y = 1 / sqrt x;  dx = -g y^3 / 2."""

    saves = ("out",)
    fresh_grads = True  # every gradient a new array (kernel output or NumPy result)

    def forward(self, x):
        self.y = self.backend.rsqrt(x)
        return self.y

    def backward(self, g):
        return self.backend.rsqrt_backward(self.y, g)


class Abs(Function):
    """y = |x|;  dx = g sign(x) (0 at 0, as PyTorch)."""

    saves = (0,)
    fresh_grads = True  # every gradient a new array (kernel output or NumPy result)

    def forward(self, x):
        self.x = x
        return self.backend.abs(x)

    def backward(self, g):
        return self.backend.abs_backward(self.x, g)


class Sin(Function):
    """y = sin x;  dx = g cos x."""

    saves = (0,)

    def forward(self, x):
        self.x = x
        return self.xp.sin(x)

    def backward(self, g):
        return g * self.xp.cos(self.x)


class Cos(Function):
    """y = cos x;  dx = -g sin x."""

    saves = (0,)

    def forward(self, x):
        self.x = x
        return self.xp.cos(x)

    def backward(self, g):
        return -g * self.xp.sin(self.x)


class Tanh(Function):
    """y = tanh x;  dx = g (1 - y^2)."""

    saves = ("out",)
    fresh_grads = True  # every gradient a new array (kernel output or NumPy result)

    def forward(self, x):
        self.y = self.backend.tanh(x)
        return self.y

    def backward(self, g):
        return self.backend.tanh_backward(self.y, g)


class Sigmoid(Function):
    """y = 1 / (1 + e^-x);  dx = g y (1 - y)."""

    saves = ("out",)
    fresh_grads = True  # every gradient a new array (kernel output or NumPy result)

    def forward(self, x):
        self.y = self.backend.sigmoid(x)
        return self.y

    def backward(self, g):
        return self.backend.sigmoid_backward(self.y, g)


class Silu(Function):
    """y = x sigmoid(x);  dx = g s (1 + x (1 - s))."""

    saves = (0,)
    fresh_grads = True  # every gradient a new array (kernel output or NumPy result)

    def forward(self, x):
        self.x = x
        self.s = self.backend.sigmoid(x)
        return self.backend.mul(x, self.s)

    def backward(self, g):
        s = self.s
        return g * s * (1 + self.x * (1 - s))


class Relu(Function):
    """y = max(x, 0);  dx = g [x > 0]  (kernels: activation.relu_forward/backward)."""

    saves = (0,)

    def forward(self, x):
        self.x = x
        return self.backend.relu_forward(x)

    def backward(self, g):
        return self.backend.relu_backward(self.x, g)


class Gelu(Function):
    """GELU, exact (erf) or tanh approximation (kernels: activation.gelu_forward/backward)."""

    saves = (0,)

    def forward(self, x, approximate):
        self.x, self.approximate = x, approximate
        return self.backend.gelu_forward(x, approximate)

    def backward(self, g):
        return self.backend.gelu_backward(self.x, g, self.approximate), None


class Clamp(Function):
    """y = min(max(x, lo), hi);  dx = g where lo <= x <= hi (as PyTorch)."""

    saves = (0,)

    def forward(self, x, lo, hi):
        be = self.backend
        self.x, self.lo, self.hi = x, lo, hi
        y = x
        if lo is not None:
            y = be.maximum(y, lo)
        if hi is not None:
            y = be.minimum(y, hi)
        return y.astype(x.dtype, copy=False)

    def backward(self, g):
        xp = self.xp
        x = self.x
        keep = xp.ones(g.shape, dtype=bool)  # g's shape: a tensor min or max may broadcast x to a bigger one
        if self.lo is not None:
            keep &= x >= self.lo
        if self.hi is not None:
            keep &= x <= self.hi
        return xp.where(keep, g, 0).astype(g.dtype, copy=False), None, None


class Cast(Function):
    """y = x converted to another dtype;  dx = g converted back (float to float only)."""

    saves = ()

    def forward(self, x, dtype):
        self.src = x.dtype
        return x.astype(dtype)

    def backward(self, g):
        return (g.astype(self.src) if self.src.kind == "f" else None), None


# ------------------------------------------------------------------ user-facing functions


def _operand(x, like, op, position):
    """An operand of an arithmetic op: Tensors pass through; Python numbers stay numbers (NumPy treats
    them as weakly typed); arrays and lists of numbers become tensors; anything else (None, a string, a
    dict) is a TypeError naming the op. Tensor and number are tested first: this is every op's path."""
    if isinstance(x, Tensor) or isinstance(x, (int, float, bool)):
        return x
    if isinstance(x, np.ndarray):
        return _wrap(x)
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, (list, tuple)):
        try:
            arr = xp_of(like).asarray(x, dtype=like._data.dtype if isinstance(like, Tensor) else None)
        except (TypeError, ValueError):
            arr = None
        if arr is not None and arr.dtype.kind in "biuf":
            return _wrap(arr)
    raise TypeError(f"{op}(): argument {position} must be a Tensor or a number, not {type(x).__name__}")


# add, sub, mul and div are every model's hottest path (the operators call them): they are not tensor_ops,
# whose wrapper costs ~40 ns a call. They check their own arguments instead (either operand may be a
# number: 2 * x calls mul(2, x); _operand checks both) and name the op in their errors (_binary).


def add(a, b, alpha=1):
    a, b = _operand(a, b, "add", 1), _operand(b, a, "add", 2)
    if alpha != 1:
        b = _times_alpha(b, alpha, "add")
    return Add.apply(a, b)


def sub(a, b, alpha=1):
    a, b = _operand(a, b, "sub", 1), _operand(b, a, "sub", 2)
    if alpha != 1:
        b = _times_alpha(b, alpha, "sub")
    return Sub.apply(a, b)


def _times_alpha(b, alpha, op):
    """add's and sub's b * alpha, its errors named by ``op`` (they come from mul)."""
    try:
        return mul(b, scalar_arg(op, "alpha", alpha))
    except (TypeError, ValueError) as e:
        raise with_name(e, op) from None


def mul(a, b):
    return Mul.apply(_operand(a, b, "mul", 1), _operand(b, a, "mul", 2))


def div(a, b, rounding_mode=None):
    a, b = _operand(a, b, "div", 1), _operand(b, a, "div", 2)
    if rounding_mode is not None:
        return _div_rounded(a, b, rounding_mode)
    return Div.apply(a, b)


@tensor_op(name="div")
def _div_rounded(a, b, rounding_mode):
    a_, b_ = _arr(a), _arr(b)
    xp = xp_of(a_, b_)
    if rounding_mode == "floor":
        return _wrap(xp.floor_divide(a_, b_))
    if rounding_mode == "trunc":
        return _wrap(xp.trunc(xp.true_divide(a_, b_)).astype(xp.result_type(a_, b_)))
    raise ValueError(f"div: rounding_mode must be None, 'trunc' or 'floor', got {rounding_mode!r}")


@tensor_op()
def pow(a, b):  # noqa: A001
    return Pow.apply(_operand(a, b, "pow", 1), _operand(b, a, "pow", 2))


@tensor_op()
def maximum(a, b):
    return Maximum.apply(_operand(a, b, "maximum", 1), _operand(b, a, "maximum", 2))


@tensor_op()
def minimum(a, b):
    return Minimum.apply(_operand(a, b, "minimum", 1), _operand(b, a, "minimum", 2))


@tensor_op("condition")
def where(condition, input=None, other=None):
    """Elementwise choice: input where condition else other. ``where(cond)`` = nonzero indices."""
    cond = condition._data
    if input is None and other is None:
        return tuple(_wrap(i) for i in xp_of(cond).nonzero(cond))
    if cond.dtype != np.bool_:
        raise TypeError(f"where: condition must be a bool tensor, got {cond.dtype}")
    return Where.apply(cond, _operand(input, other, "where", 2), _operand(other, input, "where", 3))


@tensor_op("x")
def neg(x):
    return Neg.apply(x)


@tensor_op("x")
def exp(x):
    return Exp.apply(x)


@tensor_op("x")
def log(x):
    return Log.apply(x)


@tensor_op("x")
def sqrt(x):
    return Sqrt.apply(x)


@tensor_op("x")
def rsqrt(x):
    return Rsqrt.apply(x)


@tensor_op("x")
def abs(x):  # noqa: A001
    return Abs.apply(x)


@tensor_op("x")
def sin(x):
    return Sin.apply(x)


@tensor_op("x")
def cos(x):
    return Cos.apply(x)


@tensor_op("x")
def tanh(x):
    return Tanh.apply(x)


@tensor_op("x")
def sigmoid(x):
    return Sigmoid.apply(x)


@tensor_op("x")
def silu(x):
    return Silu.apply(x)


@tensor_op("x")
def relu(x):
    check_kernel_float("relu", x)
    return Relu.apply(x)


@tensor_op("x")
def gelu(x, approximate="none"):
    """GELU(x) = x Phi(x); ``approximate="tanh"`` uses the tanh form."""
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    check_kernel_float("gelu", x)
    return Gelu.apply(x, approximate)


@tensor_op("x")
def clamp(x, min=None, max=None):  # noqa: A002
    if min is None and max is None:
        raise ValueError("clamp: at least one of min and max must be given")
    lo = _arr(_operand(min, x, "clamp", 2)) if min is not None else None
    hi = _arr(_operand(max, x, "clamp", 3)) if max is not None else None
    return Clamp.apply(x, lo, hi)


clip = clamp


def cast(x, np_dtype):
    return Cast.apply(x, np.dtype(np_dtype))


# comparisons, logical ops and rounding: no gradient


def _cmp(name, ufunc, kernel=False):
    """The op ``name``: NumPy's ``ufunc`` on two operands (tensors or numbers), no gradient; with
    ``kernel``, the backend's function ``name`` (the comparisons: elementwise kernels)."""
    def op(a, b):
        a, b = _arr(_operand(a, b, name, 1)), _arr(_operand(b, a, name, 2))
        if kernel:
            return _wrap(getattr(backend_of(a, b), name)(a, b))
        return _wrap(getattr(xp_of(a, b), ufunc)(a, b))
    op.__name__ = op.__qualname__ = name
    return tensor_op()(op)


eq = _cmp("eq", "equal", kernel=True)
ne = _cmp("ne", "not_equal", kernel=True)
lt = _cmp("lt", "less", kernel=True)
le = _cmp("le", "less_equal", kernel=True)
gt = _cmp("gt", "greater", kernel=True)
ge = _cmp("ge", "greater_equal", kernel=True)
logical_and = _cmp("logical_and", "logical_and")
logical_or = _cmp("logical_or", "logical_or")
logical_xor = _cmp("logical_xor", "logical_xor")


def _unary(name):
    """The op ``name``: NumPy's function of the same name on a tensor, no gradient."""
    def op(x):
        x = x._data
        return _wrap(getattr(xp_of(x), name)(x))
    op.__name__ = op.__qualname__ = name
    return tensor_op("x")(op)


logical_not = _unary("logical_not")
isnan = _unary("isnan")
isinf = _unary("isinf")
isfinite = _unary("isfinite")
floor = _unary("floor")
ceil = _unary("ceil")


@tensor_op("x")
def sign(x):
    a = x._data
    return _wrap(a.copy() if a.dtype == np.bool_ else xp_of(a).sign(a))  # of a bool: itself, as PyTorch


@tensor_op("x")
def round(x, decimals=0):  # noqa: A001
    if x._data.dtype == np.bool_:
        raise TypeError("round: not supported for bool tensors")
    x = x._data
    return _wrap(xp_of(x).round(x, int64_arg("round", "decimals", decimals)))


@tensor_op("a", "b")
def allclose(a, b, rtol=1e-5, atol=1e-8, equal_nan=False):
    a, b = _arr(a), _arr(b)
    rtol, atol = real_arg("allclose", "rtol", rtol), real_arg("allclose", "atol", atol)
    return bool(xp_of(a, b).allclose(a, b, rtol=rtol, atol=atol, equal_nan=equal_nan))


@tensor_op("a", "b")
def equal(a, b):
    a, b = _arr(a), _arr(b)
    return bool(xp_of(a, b).array_equal(a, b))
