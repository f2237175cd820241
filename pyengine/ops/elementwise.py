"""Elementwise ops with NumPy broadcasting; gradients are summed back to each input's shape.

Each op is a Function: forward and backward side by side, the derivative in the docstring.
"""
import numpy as np

from ..autograd import Function
from ..backend import _active
from ..tensor import Tensor, _wrap
from ..tensor import _array_of as _arr

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def unbroadcast(g, shape):
    """Sum ``g`` over the dims that broadcasting added or stretched, giving ``shape``."""
    if g.shape == shape:
        return g
    nlead = g.ndim - len(shape)
    if nlead:
        if g.dtype in _FLOATS and g.flags.c_contiguous:
            # the leading axes flattened into rows: one threaded column-sum kernel instead of np.sum
            g = _active["cpu"].sum_rows(g.reshape(-1, int(np.prod(g.shape[nlead:])))).reshape(g.shape[nlead:])
        else:
            g = g.sum(axis=tuple(range(nlead)))
    axes = tuple(i for i, s in enumerate(shape) if s == 1 and g.shape[i] != 1)
    if axes:
        g = g.sum(axis=axes, keepdims=True)
    return g.reshape(shape)


def _shape(x):
    return x.shape if isinstance(x, np.ndarray) else ()


def _promote(out, a, b):
    """Keep PyTorch's rule that int tensor <op> Python float gives float32, not float64."""
    if out.dtype == np.float64 and not (_is_f64(a) or _is_f64(b)):
        return out.astype(np.float32)
    return out


_F64 = np.dtype(np.float64)


def _binary(ufunc, a, b, op):
    """ufunc(a, b) with the op named in broadcast errors and PyTorch's int/float promotion."""
    try:
        out = ufunc(a, b)
    except ValueError:
        _check_broadcast(op, a, b)
        raise
    if out.dtype is _F64 and not (_is_f64(a) or _is_f64(b)):
        return out.astype(np.float32)
    return out


def _is_f64(x):
    return isinstance(x, np.ndarray) and x.dtype == np.float64


def _check_broadcast(op, a, b):
    try:
        return np.broadcast_shapes(_shape(a), _shape(b))
    except ValueError:
        raise ValueError(f"{op}: shapes {tuple(_shape(a))} and {tuple(_shape(b))} cannot be broadcast together") from None


class Add(Function):
    """y = a + b;  da = g, db = g."""

    def forward(self, a, b):
        self.sa, self.sb = _shape(a), _shape(b)
        return _binary(np.add, a, b, "add")

    def backward(self, g):
        n = self.needs_input_grad
        return (unbroadcast(g, self.sa) if n[0] else None, unbroadcast(g, self.sb) if n[1] else None)


class Sub(Function):
    """y = a - b;  da = g, db = -g."""

    def forward(self, a, b):
        self.sa, self.sb = _shape(a), _shape(b)
        return _binary(np.subtract, a, b, "sub")

    def backward(self, g):
        n = self.needs_input_grad
        return (unbroadcast(g, self.sa) if n[0] else None, unbroadcast(-g, self.sb) if n[1] else None)


class Mul(Function):
    """y = a * b;  da = g b, db = g a."""

    def forward(self, a, b):
        self.a, self.b = a, b
        return _binary(np.multiply, a, b, "mul")

    def backward(self, g):
        a, b = self.a, self.b
        n = self.needs_input_grad
        return (unbroadcast(g * b, _shape(a)) if n[0] else None,
                unbroadcast(g * a, _shape(b)) if n[1] else None)


class Div(Function):
    """y = a / b;  da = g / b, db = -g a / b^2."""

    def forward(self, a, b):
        self.a, self.b = a, b
        return _binary(np.true_divide, a, b, "div")

    def backward(self, g):
        a, b = self.a, self.b
        n = self.needs_input_grad
        return (unbroadcast(g / b, _shape(a)) if n[0] else None,
                unbroadcast(-g * a / (b * b), _shape(b)) if n[1] else None)


class Pow(Function):
    """y = a ** b;  da = g b a^(b-1), db = g y log(a)."""

    def forward(self, a, b):
        if _shape(a) != _shape(b):
            _check_broadcast("pow", a, b)
        self.a, self.b = a, b
        self.y = _promote(np.power(a, b), a, b)
        return self.y

    def backward(self, g):
        a, b, y = self.a, self.b, self.y
        n = self.needs_input_grad
        da = db = None
        if n[0]:
            if isinstance(b, (int, float)) and b == 2:
                da = g * 2 * a
            else:
                da = unbroadcast(g * b * np.power(a, b - 1), _shape(a))
        if n[1]:
            with np.errstate(divide="ignore", invalid="ignore"):
                db = unbroadcast(g * y * np.log(a), _shape(b))
        return da, db


class Maximum(Function):
    """y = max(a, b); the gradient goes to the larger input, split evenly on ties (as PyTorch)."""

    def forward(self, a, b):
        _check_broadcast("maximum", a, b)
        self.a, self.b = a, b
        return np.maximum(a, b)

    def backward(self, g):
        return _minmax_backward(self, g, np.greater)


class Minimum(Function):
    """y = min(a, b); the gradient goes to the smaller input, split evenly on ties."""

    def forward(self, a, b):
        _check_broadcast("minimum", a, b)
        self.a, self.b = a, b
        return np.minimum(a, b)

    def backward(self, g):
        return _minmax_backward(self, g, np.less)


def _minmax_backward(fn, g, better):
    a, b = fn.a, fn.b
    wa = np.where(better(a, b), 1.0, np.where(a == b, 0.5, 0.0)).astype(g.dtype)
    n = fn.needs_input_grad
    return (unbroadcast(g * wa, _shape(a)) if n[0] else None,
            unbroadcast(g * (1 - wa), _shape(b)) if n[1] else None)


class Where(Function):
    """y = cond ? a : b;  da = g where cond, db = g where not cond."""

    def forward(self, cond, a, b):
        self.cond, self.sa, self.sb = cond, _shape(a), _shape(b)
        out = np.where(cond, a, b)
        return _promote(out, a, b)

    def backward(self, g):
        n = self.needs_input_grad
        zero = np.zeros((), g.dtype)
        return (None,
                unbroadcast(np.where(self.cond, g, zero), self.sa) if n[1] else None,
                unbroadcast(np.where(self.cond, zero, g), self.sb) if n[2] else None)


# ------------------------------------------------------------------ unary


class Neg(Function):
    """y = -x."""

    def forward(self, x):
        return np.negative(x)

    def backward(self, g):
        return -g


class Exp(Function):
    """y = e^x;  dx = g y."""

    def forward(self, x):
        self.y = np.exp(x)
        return self.y

    def backward(self, g):
        return g * self.y


class Log(Function):
    """y = log x;  dx = g / x."""

    def forward(self, x):
        self.x = x
        return np.log(x)

    def backward(self, g):
        return g / self.x


class Sqrt(Function):
    """y = sqrt x;  dx = g / (2 y)."""

    def forward(self, x):
        self.y = np.sqrt(x)
        return self.y

    def backward(self, g):
        return g / (2 * self.y)


class Rsqrt(Function):
    """y = 1 / sqrt x;  dx = -g y^3 / 2."""

    def forward(self, x):
        self.y = 1 / np.sqrt(x)
        return self.y.astype(x.dtype, copy=False)

    def backward(self, g):
        return -0.5 * g * self.y ** 3


class Abs(Function):
    """y = |x|;  dx = g sign(x) (0 at 0, as PyTorch)."""

    def forward(self, x):
        self.x = x
        return np.abs(x)

    def backward(self, g):
        return g * np.sign(self.x)


class Sin(Function):
    """y = sin x;  dx = g cos x."""

    def forward(self, x):
        self.x = x
        return np.sin(x)

    def backward(self, g):
        return g * np.cos(self.x)


class Cos(Function):
    """y = cos x;  dx = -g sin x."""

    def forward(self, x):
        self.x = x
        return np.cos(x)

    def backward(self, g):
        return -g * np.sin(self.x)


class Tanh(Function):
    """y = tanh x;  dx = g (1 - y^2)."""

    def forward(self, x):
        self.y = np.tanh(x)
        return self.y

    def backward(self, g):
        return g * (1 - self.y * self.y)


def _sigmoid(x):
    # 1 / (1 + e^-x), evaluated without overflow for large |x|
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)


class Sigmoid(Function):
    """y = 1 / (1 + e^-x);  dx = g y (1 - y)."""

    def forward(self, x):
        self.y = _sigmoid(x)
        return self.y

    def backward(self, g):
        return g * self.y * (1 - self.y)


class Silu(Function):
    """y = x sigmoid(x);  dx = g s (1 + x (1 - s))."""

    def forward(self, x):
        self.x = x
        self.s = _sigmoid(x)
        return x * self.s

    def backward(self, g):
        s = self.s
        return g * s * (1 + self.x * (1 - s))


class Relu(Function):
    """y = max(x, 0);  dx = g [x > 0]  (kernels: activation.relu_forward/backward)."""

    def forward(self, x):
        self.x = x
        return _active["cpu"].relu_forward(x)

    def backward(self, g):
        return _active["cpu"].relu_backward(self.x, g)


class Gelu(Function):
    """GELU, exact (erf) or tanh approximation (kernels: activation.gelu_forward/backward)."""

    def forward(self, x, approximate):
        self.x, self.approximate = x, approximate
        return _active["cpu"].gelu_forward(x, approximate)

    def backward(self, g):
        return _active["cpu"].gelu_backward(self.x, g, self.approximate), None


class Clamp(Function):
    """y = min(max(x, lo), hi);  dx = g where lo <= x <= hi (as PyTorch)."""

    def forward(self, x, lo, hi):
        self.x, self.lo, self.hi = x, lo, hi
        y = x
        if lo is not None:
            y = np.maximum(y, lo)
        if hi is not None:
            y = np.minimum(y, hi)
        return y.astype(x.dtype, copy=False)

    def backward(self, g):
        x = self.x
        keep = np.ones(x.shape, dtype=bool)
        if self.lo is not None:
            keep &= x >= self.lo
        if self.hi is not None:
            keep &= x <= self.hi
        return np.where(keep, g, 0).astype(g.dtype, copy=False), None, None


class Cast(Function):
    """y = x converted to another dtype;  dx = g converted back (float to float only)."""

    def forward(self, x, dtype):
        self.src = x.dtype
        return x.astype(dtype)

    def backward(self, g):
        return (g.astype(self.src) if self.src.kind == "f" else None), None


# ------------------------------------------------------------------ user-facing functions


def _operand(x, like):
    """Tensors pass through; Python numbers stay numbers (NumPy treats them as weakly typed)."""
    if isinstance(x, Tensor) or isinstance(x, (int, float, bool)):
        return x
    if isinstance(x, np.ndarray):
        return _wrap(x)
    if isinstance(x, np.generic):
        return x.item()
    return _wrap(np.asarray(x, dtype=like.data.dtype if isinstance(like, Tensor) else None))


def add(a, b, alpha=1):
    if alpha != 1:
        b = mul(b, alpha)
    return Add.apply(_operand(a, b), _operand(b, a))


def sub(a, b, alpha=1):
    if alpha != 1:
        b = mul(b, alpha)
    return Sub.apply(_operand(a, b), _operand(b, a))


def mul(a, b):
    return Mul.apply(_operand(a, b), _operand(b, a))


def div(a, b, rounding_mode=None):
    if rounding_mode is not None:
        a_, b_ = _arr(a), _arr(b)
        if rounding_mode == "floor":
            return _wrap(np.floor_divide(a_, b_))
        if rounding_mode == "trunc":
            return _wrap(np.trunc(np.true_divide(a_, b_)).astype(np.result_type(a_, b_)))
        raise ValueError(f"div: rounding_mode must be None, 'trunc' or 'floor', got {rounding_mode!r}")
    return Div.apply(_operand(a, b), _operand(b, a))


def pow(a, b):  # noqa: A001
    return Pow.apply(_operand(a, b), _operand(b, a))


def maximum(a, b):
    return Maximum.apply(_operand(a, b), _operand(b, a))


def minimum(a, b):
    return Minimum.apply(_operand(a, b), _operand(b, a))


def where(condition, input=None, other=None):
    """Elementwise choice: input where condition else other. ``where(cond)`` = nonzero indices."""
    cond = _arr(condition)
    if input is None and other is None:
        return tuple(_wrap(i) for i in np.nonzero(cond))
    if cond.dtype != np.bool_:
        raise TypeError(f"where: condition must be a bool tensor, got {cond.dtype}")
    return Where.apply(cond, _operand(input, other), _operand(other, input))


def neg(x):
    return Neg.apply(x)


def exp(x):
    return Exp.apply(x)


def log(x):
    return Log.apply(x)


def sqrt(x):
    return Sqrt.apply(x)


def rsqrt(x):
    return Rsqrt.apply(x)


def abs(x):  # noqa: A001
    return Abs.apply(x)


def sin(x):
    return Sin.apply(x)


def cos(x):
    return Cos.apply(x)


def tanh(x):
    return Tanh.apply(x)


def sigmoid(x):
    return Sigmoid.apply(x)


def silu(x):
    return Silu.apply(x)


def relu(x):
    _require_float("relu", x)
    return Relu.apply(x)


def gelu(x, approximate="none"):
    """GELU(x) = x Phi(x); ``approximate="tanh"`` uses the tanh form."""
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    _require_float("gelu", x)
    return Gelu.apply(x, approximate)


def clamp(x, min=None, max=None):  # noqa: A002
    if min is None and max is None:
        raise ValueError("clamp: at least one of min and max must be given")
    lo = _arr(min) if min is not None else None
    hi = _arr(max) if max is not None else None
    return Clamp.apply(x, lo, hi)


clip = clamp


def cast(x, np_dtype):
    return Cast.apply(x, np.dtype(np_dtype))


def _require_float(op, x):
    if x.data.dtype.kind != "f":
        raise TypeError(f"{op}: expected a floating point tensor, got {x.dtype}")


# comparisons and logical ops: no gradient


def _cmp(fn):
    def op(a, b):
        return _wrap(fn(_arr(a), _arr(b)))
    return op


eq = _cmp(np.equal)
ne = _cmp(np.not_equal)
lt = _cmp(np.less)
le = _cmp(np.less_equal)
gt = _cmp(np.greater)
ge = _cmp(np.greater_equal)
logical_and = _cmp(np.logical_and)
logical_or = _cmp(np.logical_or)
logical_xor = _cmp(np.logical_xor)


def logical_not(x):
    return _wrap(np.logical_not(_arr(x)))


def isnan(x):
    return _wrap(np.isnan(_arr(x)))


def isinf(x):
    return _wrap(np.isinf(_arr(x)))


def isfinite(x):
    return _wrap(np.isfinite(_arr(x)))


def sign(x):
    return _wrap(np.sign(_arr(x)))


def floor(x):
    return _wrap(np.floor(_arr(x)))


def ceil(x):
    return _wrap(np.ceil(_arr(x)))


def round(x, decimals=0):  # noqa: A001
    return _wrap(np.round(_arr(x), decimals))


def allclose(a, b, rtol=1e-5, atol=1e-8, equal_nan=False):
    return bool(np.allclose(_arr(a), _arr(b), rtol=rtol, atol=atol, equal_nan=equal_nan))


def equal(a, b):
    return bool(np.array_equal(_arr(a), _arr(b)))
