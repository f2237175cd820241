"""Elementwise ops with NumPy broadcasting.

Each op is a Function: forward and backward side by side, the derivative in the docstring. A
backward returns gradients in the broadcast shape of the output; the engine sums each back to its
input's shape (autograd.sum_to_shape). Array math goes through ``self.xp`` (the backend's array
module), kernels through ``self.backend``.
"""
import numpy as np

from ..autograd import Function
from ..backend import xp_of
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
    """ufunc(a, b) with the op named in broadcast errors and PyTorch's int/float promotion."""
    try:
        out = ufunc(a, b)
    except ValueError:
        _check_broadcast(op, a, b)
        raise
    return _promote(out, a, b)


def _check_broadcast(op, a, b):
    try:
        return np.broadcast_shapes(_shape(a), _shape(b))
    except ValueError:
        raise ValueError(f"{op}: shapes {tuple(_shape(a))} and {tuple(_shape(b))} cannot be broadcast together") from None


class Add(Function):
    """y = a + b;  da = g, db = g."""

    def forward(self, a, b):
        return _binary(self.xp.add, a, b, "add")

    def backward(self, g):
        return g, g


class Sub(Function):
    """y = a - b;  da = g, db = -g."""

    def forward(self, a, b):
        return _binary(self.xp.subtract, a, b, "sub")

    def backward(self, g):
        return g, (-g if self.needs_input_grad[1] else None)


class Mul(Function):
    """y = a * b;  da = g b, db = g a."""

    def forward(self, a, b):
        self.a, self.b = a, b
        return _binary(self.xp.multiply, a, b, "mul")

    def backward(self, g):
        n = self.needs_input_grad
        return (g * self.b if n[0] else None, g * self.a if n[1] else None)


class Div(Function):
    """y = a / b;  da = g / b, db = -g a / b^2."""

    def forward(self, a, b):
        self.a, self.b = a, b
        return _binary(self.xp.true_divide, a, b, "div")

    def backward(self, g):
        a, b = self.a, self.b
        n = self.needs_input_grad
        return (g / b if n[0] else None, -g * a / (b * b) if n[1] else None)


class Pow(Function):
    """y = a ** b;  da = g b a^(b-1), db = g y log(a)."""

    def forward(self, a, b):
        if _shape(a) != _shape(b):
            _check_broadcast("pow", a, b)
        self.a, self.b = a, b
        self.y = _promote(self.xp.power(a, b), a, b)
        return self.y

    def backward(self, g):
        xp = self.xp
        a, b, y = self.a, self.b, self.y
        n = self.needs_input_grad
        da = db = None
        if n[0]:
            da = g * 2 * a if isinstance(b, (int, float)) and b == 2 else g * b * xp.power(a, b - 1)
        if n[1]:
            with np.errstate(divide="ignore", invalid="ignore"):
                db = g * y * xp.log(a)
        return da, db


class Maximum(Function):
    """y = max(a, b); the gradient goes to the larger input, split evenly on ties (as PyTorch)."""

    def forward(self, a, b):
        _check_broadcast("maximum", a, b)
        self.a, self.b = a, b
        return self.xp.maximum(a, b)

    def backward(self, g):
        return _minmax_backward(self, g, self.xp.greater)


class Minimum(Function):
    """y = min(a, b); the gradient goes to the smaller input, split evenly on ties."""

    def forward(self, a, b):
        _check_broadcast("minimum", a, b)
        self.a, self.b = a, b
        return self.xp.minimum(a, b)

    def backward(self, g):
        return _minmax_backward(self, g, self.xp.less)


def _minmax_backward(fn, g, better):
    xp, a, b = fn.xp, fn.a, fn.b
    wa = xp.where(better(a, b), 1.0, xp.where(a == b, 0.5, 0.0)).astype(g.dtype)
    n = fn.needs_input_grad
    return (g * wa if n[0] else None, g * (1 - wa) if n[1] else None)


class Where(Function):
    """y = cond ? a : b;  da = g where cond, db = g where not cond."""

    def forward(self, cond, a, b):
        self.cond = cond
        return _promote(self.xp.where(cond, a, b), a, b)

    def backward(self, g):
        xp, n = self.xp, self.needs_input_grad
        zero = xp.zeros((), g.dtype)
        return (None,
                xp.where(self.cond, g, zero) if n[1] else None,
                xp.where(self.cond, zero, g) if n[2] else None)


# ------------------------------------------------------------------ unary


class Neg(Function):
    """y = -x."""

    def forward(self, x):
        return self.xp.negative(x)

    def backward(self, g):
        return -g


class Exp(Function):
    """y = e^x;  dx = g y."""

    def forward(self, x):
        self.y = self.xp.exp(x)
        return self.y

    def backward(self, g):
        return g * self.y


class Log(Function):
    """y = log x;  dx = g / x."""

    def forward(self, x):
        self.x = x
        return self.xp.log(x)

    def backward(self, g):
        return g / self.x


class Sqrt(Function):
    """y = sqrt x;  dx = g / (2 y)."""

    def forward(self, x):
        self.y = self.xp.sqrt(x)
        return self.y

    def backward(self, g):
        return g / (2 * self.y)


class Rsqrt(Function):
    """y = 1 / sqrt x;  dx = -g y^3 / 2."""

    def forward(self, x):
        self.y = 1 / self.xp.sqrt(x)
        return self.y.astype(x.dtype, copy=False)

    def backward(self, g):
        return -0.5 * g * self.y ** 3


class Abs(Function):
    """y = |x|;  dx = g sign(x) (0 at 0, as PyTorch)."""

    def forward(self, x):
        self.x = x
        return self.xp.abs(x)

    def backward(self, g):
        return g * self.xp.sign(self.x)


class Sin(Function):
    """y = sin x;  dx = g cos x."""

    def forward(self, x):
        self.x = x
        return self.xp.sin(x)

    def backward(self, g):
        return g * self.xp.cos(self.x)


class Cos(Function):
    """y = cos x;  dx = -g sin x."""

    def forward(self, x):
        self.x = x
        return self.xp.cos(x)

    def backward(self, g):
        return -g * self.xp.sin(self.x)


class Tanh(Function):
    """y = tanh x;  dx = g (1 - y^2)."""

    def forward(self, x):
        self.y = self.xp.tanh(x)
        return self.y

    def backward(self, g):
        return g * (1 - self.y * self.y)


def _sigmoid(xp, x):
    # 1 / (1 + e^-x), evaluated without overflow for large |x|
    e = xp.exp(-xp.abs(x))
    return xp.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)


class Sigmoid(Function):
    """y = 1 / (1 + e^-x);  dx = g y (1 - y)."""

    def forward(self, x):
        self.y = _sigmoid(self.xp, x)
        return self.y

    def backward(self, g):
        return g * self.y * (1 - self.y)


class Silu(Function):
    """y = x sigmoid(x);  dx = g s (1 + x (1 - s))."""

    def forward(self, x):
        self.x = x
        self.s = _sigmoid(self.xp, x)
        return x * self.s

    def backward(self, g):
        s = self.s
        return g * s * (1 + self.x * (1 - s))


class Relu(Function):
    """y = max(x, 0);  dx = g [x > 0]  (kernels: activation.relu_forward/backward)."""

    def forward(self, x):
        self.x = x
        return self.backend.relu_forward(x)

    def backward(self, g):
        return self.backend.relu_backward(self.x, g)


class Gelu(Function):
    """GELU, exact (erf) or tanh approximation (kernels: activation.gelu_forward/backward)."""

    def forward(self, x, approximate):
        self.x, self.approximate = x, approximate
        return self.backend.gelu_forward(x, approximate)

    def backward(self, g):
        return self.backend.gelu_backward(self.x, g, self.approximate), None


class Clamp(Function):
    """y = min(max(x, lo), hi);  dx = g where lo <= x <= hi (as PyTorch)."""

    def forward(self, x, lo, hi):
        xp = self.xp
        self.x, self.lo, self.hi = x, lo, hi
        y = x
        if lo is not None:
            y = xp.maximum(y, lo)
        if hi is not None:
            y = xp.minimum(y, hi)
        return y.astype(x.dtype, copy=False)

    def backward(self, g):
        xp = self.xp
        x = self.x
        keep = xp.ones(x.shape, dtype=bool)
        if self.lo is not None:
            keep &= x >= self.lo
        if self.hi is not None:
            keep &= x <= self.hi
        return xp.where(keep, g, 0).astype(g.dtype, copy=False), None, None


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
    return _wrap(xp_of(like).asarray(x, dtype=like.data.dtype if isinstance(like, Tensor) else None))


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
        xp = xp_of(a_, b_)
        if rounding_mode == "floor":
            return _wrap(xp.floor_divide(a_, b_))
        if rounding_mode == "trunc":
            return _wrap(xp.trunc(xp.true_divide(a_, b_)).astype(xp.result_type(a_, b_)))
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
        return tuple(_wrap(i) for i in xp_of(cond).nonzero(cond))
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


# comparisons, logical ops and rounding: no gradient


def _cmp(name):
    def op(a, b):
        a, b = _arr(a), _arr(b)
        return _wrap(getattr(xp_of(a, b), name)(a, b))
    op.__name__ = name
    return op


eq = _cmp("equal")
ne = _cmp("not_equal")
lt = _cmp("less")
le = _cmp("less_equal")
gt = _cmp("greater")
ge = _cmp("greater_equal")
logical_and = _cmp("logical_and")
logical_or = _cmp("logical_or")
logical_xor = _cmp("logical_xor")


def _unary(name):
    def op(x):
        x = _arr(x)
        return _wrap(getattr(xp_of(x), name)(x))
    op.__name__ = name
    return op


logical_not = _unary("logical_not")
isnan = _unary("isnan")
isinf = _unary("isinf")
isfinite = _unary("isfinite")
sign = _unary("sign")
floor = _unary("floor")
ceil = _unary("ceil")


def round(x, decimals=0):  # noqa: A001
    x = _arr(x)
    return _wrap(xp_of(x).round(x, decimals))


def allclose(a, b, rtol=1e-5, atol=1e-8, equal_nan=False):
    a, b = _arr(a), _arr(b)
    return bool(xp_of(a, b).allclose(a, b, rtol=rtol, atol=atol, equal_nan=equal_nan))


def equal(a, b):
    a, b = _arr(a), _arr(b)
    return bool(xp_of(a, b).array_equal(a, b))
