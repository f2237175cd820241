"""Elementwise ops with NumPy broadcasting.

Each op is a Function: forward and backward side by side, the derivative in the docstring. A
backward returns gradients in the broadcast shape of the output; the engine sums each back to its
input's shape (autograd.sum_to_shape). Array math goes through ``self.xp`` (the backend's array
module), kernels through ``self.backend``: the arithmetic, comparisons, where and the common unary
ops, forward and backward, are the elementwise kernel family (backend/reference/elementwise.py says
what each computes; on the CPU one compiled pass each for large float inputs, NumPy for the rest).
"""
import numpy as np

from .._checks import KERNEL_FLOATS, check_kernel_float, int64_arg, real_arg, scalar_arg, tensor_op, with_name
from ..autograd import Function, binary_apply
from ..backend import backend_of, xp_of
from ..tensor import Tensor, _wrap
from ..tensor import _array_of as _arr

_F64 = np.dtype(np.float64)
_F32 = np.dtype(np.float32)


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
    if out.dtype is _F32:  # the common case without _promote's call (every arithmetic op's path)
        return out
    return _promote(out, a, b)


def _dtype_name(x):
    return x.dtype.name if hasattr(x, "dtype") else type(x).__name__


def _check_broadcast(op, a, b):
    try:
        return np.broadcast_shapes(_shape(a), _shape(b))
    except ValueError:
        raise ValueError(f"{op}: shapes {tuple(_shape(a))} and {tuple(_shape(b))} cannot be broadcast together") from None


def _summed_to(backend, g, shape):
    """The gradient ``g`` (in the output's shape) of an operand of ``shape`` that was broadcast: summed over
    the axes broadcasting added or stretched by the backend's sum kernel (reduce.sum_dims: threaded, and a
    broadcast g, as the gradient of a sum, costs nothing to sum), when those axes are adjacent or all of
    stride 0 (no copy needed). Otherwise, or when g already fits, g itself: the engine's sum_to_shape
    fits it. The arithmetic ops' backwards call this for operands that were broadcast."""
    gs = g.shape
    if gs == shape or g.dtype not in KERNEL_FLOATS or not g.size:
        return g
    nlead = len(gs) - len(shape)
    if nlead < 0:
        return g
    dims = list(range(nlead))
    for i, s in enumerate(shape):
        if s != gs[nlead + i]:
            if s != 1:
                return g
            dims.append(nlead + i)
    if dims[-1] - dims[0] + 1 != len(dims) and any(g.strides[d] for d in dims):
        return g
    return backend.sum_dims(g, tuple(dims)).reshape(shape)


class Add(Function):
    """y = a + b;  da = g, db = g (summed over the axes an operand was broadcast along)."""

    saves = ()

    def forward(self, a, b):
        self.sa, self.sb = _shape(a), _shape(b)
        return _binary(self.backend.add, a, b, "add")

    def backward(self, g):
        n, be = self.needs_input_grad, self.backend
        return (_summed_to(be, g, self.sa) if n[0] else None, _summed_to(be, g, self.sb) if n[1] else None)


class Sub(Function):
    """y = a - b;  da = g, db = -g (summed over the axes an operand was broadcast along, before negating)."""

    saves = ()

    def forward(self, a, b):
        self.sa, self.sb = _shape(a), _shape(b)
        return _binary(self.backend.sub, a, b, "sub")

    def backward(self, g):
        n, be = self.needs_input_grad, self.backend
        return (_summed_to(be, g, self.sa) if n[0] else None,
                be.neg(_summed_to(be, g, self.sb)) if n[1] else None)


class Mul(Function):
    """y = a * b;  da = g b, db = g a."""

    saves = (0, 1)
    fresh_grads = True  # every gradient a new array (kernel output or NumPy result)

    def forward(self, a, b):
        self.a, self.b = a, b
        return _binary(self.backend.mul, a, b, "mul")

    def backward(self, g):
        n, be = self.needs_input_grad, self.backend
        a, b, mul = self.a, self.b, be.mul
        return (_summed_to(be, mul(g, b), _shape(a)) if n[0] else None,
                _summed_to(be, mul(g, a), _shape(b)) if n[1] else None)


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
        return (_summed_to(be, be.div(g, b), _shape(a)) if n[0] else None,
                _summed_to(be, be.div_backward_b(g, a, b), _shape(b)) if n[1] else None)


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


class PowConstExponent(Pow):
    """Pow whose exponent needs no gradient: backward reads a (and b) only, not y, so y may be written in
    place afterwards (``mu.pow(2).add_(1)``), as PyTorch, which saves the result only for the exponent's
    gradient."""

    saves = (0, 1)

    def forward(self, a, b):
        y = Pow.forward(self, a, b)
        self.y = None  # backward reads it only for the exponent's gradient
        return y


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


def _sigmoid(xp, x):
    # 1 / (1 + e^-x), evaluated without overflow for large |x| (NumPy; Sigmoid itself runs the kernel)
    e = xp.exp(-xp.abs(x))
    return xp.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)


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


# add, sub, mul and div are every model's hottest path (the operators): they are not tensor_ops, whose wrapper
# costs ~40 ns a call. Tensors and Python numbers go straight to the Function (autograd.binary_apply: either
# operand may be a number, 2 * x is mul(2, x)); anything else through _operand, which checks and converts it.
# The forwards name the op in their errors (_binary).


def _converted(cls, op):
    """``cls.apply`` of the operands as _operand converts them (a bool, an array, a list; else a TypeError)."""
    def apply(a, b):
        return cls.apply(_operand(a, b, op, 1), _operand(b, a, op, 2))
    return apply


_add, _sub = binary_apply(Add, _converted(Add, "add")), binary_apply(Sub, _converted(Sub, "sub"))
_mul, _div = binary_apply(Mul, _converted(Mul, "mul")), binary_apply(Div, _converted(Div, "div"))
# Tensor's operators are these functions themselves: a + b is one Python call before the Function's forward.
OPERATORS = {"__add__": _add, "__sub__": _sub, "__mul__": _mul, "__truediv__": _div}


def add(a, b, alpha=1):
    if alpha == 1:
        return _add(a, b)
    a, b = _operand(a, b, "add", 1), _operand(b, a, "add", 2)
    return Add.apply(a, _times_alpha(b, alpha, "add"))


def sub(a, b, alpha=1):
    if alpha == 1:
        return _sub(a, b)
    a, b = _operand(a, b, "sub", 1), _operand(b, a, "sub", 2)
    return Sub.apply(a, _times_alpha(b, alpha, "sub"))


def _times_alpha(b, alpha, op):
    """add's and sub's b * alpha, its errors named by ``op`` (they come from mul)."""
    try:
        return mul(b, scalar_arg(op, "alpha", alpha))
    except (TypeError, ValueError) as e:
        raise with_name(e, op) from None


def mul(a, b):
    return _mul(a, b)


def div(a, b, rounding_mode=None):
    if rounding_mode is None:
        return _div(a, b)
    a, b = _operand(a, b, "div", 1), _operand(b, a, "div", 2)
    return _div_rounded(a, b, rounding_mode)


@tensor_op(name="div")
def _div_rounded(a, b, rounding_mode):
    if rounding_mode in ("floor", "trunc") and _is_float_graph(a, b):  # a zero gradient, as PyTorch (issue 13)
        return RoundedDiv.apply(a, b, rounding_mode)
    a_, b_ = _arr(a), _arr(b)
    xp = xp_of(a_, b_)
    if rounding_mode == "floor":
        return _wrap(xp.floor_divide(a_, b_))
    if rounding_mode == "trunc":
        return _wrap(xp.trunc(xp.true_divide(a_, b_)).astype(xp.result_type(a_, b_)))
    raise ValueError(f"div: rounding_mode must be None, 'trunc' or 'floor', got {rounding_mode!r}")


@tensor_op()
def pow(a, b):  # noqa: A001
    a, b = _operand(a, b, "pow", 1), _operand(b, a, "pow", 2)
    exponent_grad = isinstance(b, Tensor) and b.requires_grad
    return (Pow if exponent_grad else PowConstExponent).apply(a, b)


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
# floor, ceil, sign, round: piecewise constant, so a zero gradient on float tensors (PyTorch's graph node,
# Step below); before issue 13 they built no node, and backward through them alone failed.


def _step(name):
    def op(x):
        a = x._data
        if a.dtype.kind == "f":
            return Step.apply(x, name)
        return _wrap(getattr(xp_of(a), name)(a))
    op.__name__ = op.__qualname__ = name
    return tensor_op("x")(op)


floor = _step("floor")
ceil = _step("ceil")


@tensor_op("x")
def sign(x):
    a = x._data
    if a.dtype.kind == "f":
        return Step.apply(x, "sign")
    return _wrap(a.copy() if a.dtype == np.bool_ else xp_of(a).sign(a))  # of a bool: itself, as PyTorch


@tensor_op("x")
def round(x, decimals=0):  # noqa: A001
    if x._data.dtype == np.bool_:
        raise TypeError("round: not supported for bool tensors")
    decimals = int64_arg("round", "decimals", decimals)
    if x._data.dtype.kind == "f":
        return Step.apply(x, "round", decimals)
    x = x._data
    return _wrap(xp_of(x).round(x, decimals))


@tensor_op("a", "b")
def allclose(a, b, rtol=1e-5, atol=1e-8, equal_nan=False):
    a, b = _arr(a), _arr(b)
    rtol, atol = real_arg("allclose", "rtol", rtol), real_arg("allclose", "atol", atol)
    return bool(xp_of(a, b).allclose(a, b, rtol=rtol, atol=atol, equal_nan=equal_nan))


@tensor_op("a", "b")
def equal(a, b):
    a, b = _arr(a), _arr(b)
    return bool(xp_of(a, b).array_equal(a, b))


# ====================================================================== pointwise math, breadth (issue 13 item 2)
# log1p, expm1, log2, log10, reciprocal, trunc, frac, lerp, hypot, atan2, logaddexp, clamp_min/max,
# nan_to_num, isclose, and the activations of nn.functional (softplus, elu, selu, celu, hardtanh, relu6,
# hardswish, hardsigmoid, mish, softsign, tanhshrink, logsigmoid). One Function per op; integer and bool
# inputs are computed in float32, as PyTorch promotes them.


def _floated(x):
    """x as a float tensor: integers and bools become float32 (PyTorch's default dtype), floats pass."""
    return x if x._data.dtype.kind == "f" else cast(x, np.float32)


class _Pointwise(Function):
    """Base of the one-input pointwise ops below: y = f(x, *params), dx = df(g, x, y, *params)."""

    saves = (0, "out")

    def forward(self, x, *params):
        self.params = params
        with np.errstate(all="ignore"):
            y = self.f(x, *params)
        if y.dtype != x.dtype:
            y = y.astype(x.dtype)
        saves = self.saves  # keep only what backward reads (and ``saves`` declares)
        self.x, self.y = (x if 0 in saves else None), (y if "out" in saves else None)
        return y

    def backward(self, g):
        with np.errstate(all="ignore"):
            d = self.df(g, self.x, self.y, *self.params)
        return (d.astype(g.dtype, copy=False),) + (None,) * len(self.params)


class Log1p(_Pointwise):
    """y = log(1 + x);  dx = g / (1 + x)."""

    saves = (0,)

    def f(self, x):
        return self.xp.log1p(x)

    def df(self, g, x, y):
        return g / (1 + x)


class Expm1(_Pointwise):
    """y = e^x - 1;  dx = g (y + 1)."""

    saves = ("out",)

    def f(self, x):
        return self.xp.expm1(x)

    def df(self, g, x, y):
        return g * (y + 1)


class Log2(_Pointwise):
    """y = log2 x;  dx = g / (x ln 2)."""

    saves = (0,)

    def f(self, x):
        return self.xp.log2(x)

    def df(self, g, x, y):
        return g / (x * np.log(2.0))


class Log10(_Pointwise):
    """y = log10 x;  dx = g / (x ln 10)."""

    saves = (0,)

    def f(self, x):
        return self.xp.log10(x)

    def df(self, g, x, y):
        return g / (x * np.log(10.0))


class Reciprocal(_Pointwise):
    """y = 1 / x;  dx = -g y^2."""

    saves = ("out",)

    def f(self, x):
        return 1 / x

    def df(self, g, x, y):
        return -g * y * y


class Step(_Pointwise):
    """A piecewise-constant function (floor, ceil, round, trunc, sign): its gradient is 0 (as PyTorch's)."""

    saves = ()

    def f(self, x, name, *args):
        return getattr(self.xp, name)(x, *args)

    def df(self, g, x, y, name, *args):
        return self.xp.zeros_like(g)


class Frac(_Pointwise):
    """y = x - trunc(x);  dx = g."""

    saves = ()

    def f(self, x):
        return x - self.xp.trunc(x)

    def df(self, g, x, y):
        return g


class NanToNum(_Pointwise):
    """y = x with NaN, +inf, -inf replaced;  dx = g where x is finite, else 0 (as PyTorch)."""

    saves = (0,)

    def f(self, x, nan, posinf, neginf):
        return self.xp.nan_to_num(x, nan=nan, posinf=posinf, neginf=neginf)

    def df(self, g, x, y, *args):
        return self.xp.where(self.xp.isfinite(x), g, 0)


class Softplus(_Pointwise):
    """y = log(1 + e^(beta x)) / beta (x where beta x > threshold);  dx = g sigmoid(beta x) (g past it)."""

    saves = (0,)

    def f(self, x, beta, threshold):
        xp = self.xp
        bx = x * beta
        soft = (xp.maximum(bx, 0) + xp.log1p(xp.exp(-xp.abs(bx)))) / beta
        return xp.where(bx > threshold, x, soft)

    def df(self, g, x, y, beta, threshold):
        bx = x * beta
        return self.xp.where(bx > threshold, g, g * _sigmoid(self.xp, bx))


class Elu(_Pointwise):
    """ELU (Clevert et al. 2015) scaled: y = scale x (x > 0), scale alpha (e^(x input_scale) - 1) else;
    dx = g scale (x > 0), g scale alpha input_scale e^(x input_scale) else. selu and celu are its cases."""

    saves = (0,)

    def f(self, x, alpha, scale, input_scale):
        xp = self.xp
        return xp.where(x > 0, x * scale, (scale * alpha) * xp.expm1(xp.minimum(x, 0) * input_scale))

    def df(self, g, x, y, alpha, scale, input_scale):
        xp = self.xp
        return xp.where(x > 0, g * scale, g * (scale * alpha * input_scale) * xp.exp(xp.minimum(x, 0) * input_scale))


class Hardtanh(_Pointwise):
    """y = clamp(x, lo, hi);  dx = g where lo < x < hi (strictly, as PyTorch's hardtanh)."""

    saves = (0,)

    def f(self, x, lo, hi):
        return self.xp.clip(x, lo, hi)

    def df(self, g, x, y, lo, hi):
        return self.xp.where((x > lo) & (x < hi), g, 0)


class Hardswish(_Pointwise):
    """y = x relu6(x + 3) / 6;  dx = 0 (x < -3), g (x > 3), g (2x + 3) / 6 between."""

    saves = (0,)

    def f(self, x):
        return x * self.xp.clip(x + 3, 0, 6) / 6

    def df(self, g, x, y):
        xp = self.xp
        return xp.where(x < -3, 0, xp.where(x <= 3, g * (x / 3 + 0.5), g))


class Hardsigmoid(_Pointwise):
    """y = relu6(x + 3) / 6;  dx = g / 6 where -3 < x < 3."""

    saves = (0,)

    def f(self, x):
        return self.xp.clip(x + 3, 0, 6) / 6

    def df(self, g, x, y):
        return self.xp.where((x > -3) & (x < 3), g / 6, 0)


class Mish(_Pointwise):
    """y = x tanh(softplus(x)) (Misra 2019);  dx = g (t + x sigmoid(x) (1 - t^2)), t = tanh(softplus(x))."""

    saves = (0,)

    def f(self, x):
        xp = self.xp
        return x * xp.tanh(xp.maximum(x, 0) + xp.log1p(xp.exp(-xp.abs(x))))

    def df(self, g, x, y):
        xp = self.xp
        t = xp.tanh(xp.maximum(x, 0) + xp.log1p(xp.exp(-xp.abs(x))))
        return g * (t + x * _sigmoid(xp, x) * (1 - t * t))


class Softsign(_Pointwise):
    """y = x / (1 + |x|);  dx = g / (1 + |x|)^2."""

    saves = (0,)

    def f(self, x):
        return x / (1 + self.xp.abs(x))

    def df(self, g, x, y):
        d = 1 + self.xp.abs(x)
        return g / (d * d)


class Tanhshrink(_Pointwise):
    """y = x - tanh x;  dx = g tanh^2 x."""

    saves = (0,)

    def f(self, x):
        return x - self.xp.tanh(x)

    def df(self, g, x, y):
        t = self.xp.tanh(x)
        return g * t * t


class Logsigmoid(_Pointwise):
    """y = log sigmoid(x) = -softplus(-x), computed stably;  dx = g sigmoid(-x)."""

    saves = (0,)

    def f(self, x):
        xp = self.xp
        return xp.minimum(x, 0) - xp.log1p(xp.exp(-xp.abs(x)))

    def df(self, g, x, y):
        return g * _sigmoid(self.xp, -x)


class _BinaryMath(Function):
    """Base of the two-operand pointwise ops below (broadcasting): y = f(a, b), (da, db) = df(g, a, b, y)."""

    saves = (0, 1, "out")
    op = ""

    def forward(self, a, b):
        if _shape(a) != _shape(b):
            _check_broadcast(self.op, a, b)
        self.a, self.b = a, b
        with np.errstate(all="ignore"):
            y = _promote(self.f(a, b), a, b)
        self.y = y if "out" in self.saves else None
        return y

    def backward(self, g):
        with np.errstate(all="ignore"):
            da, db = self.df(g, self.a, self.b, self.y)
        n = self.needs_input_grad
        return (da if n[0] else None, db if n[1] else None)


class Hypot(_BinaryMath):
    """y = sqrt(a^2 + b^2);  da = g a / y, db = g b / y."""

    op = "hypot"

    def f(self, a, b):
        return self.xp.hypot(a, b)

    def df(self, g, a, b, y):
        return g * a / y, g * b / y


class Atan2(_BinaryMath):
    """y = atan2(a, b);  da = g b / (a^2 + b^2), db = -g a / (a^2 + b^2)."""

    saves = (0, 1)
    op = "atan2"

    def f(self, a, b):
        return self.xp.arctan2(a, b)

    def df(self, g, a, b, y):
        r = a * a + b * b
        return g * b / r, -g * a / r


class LogAddExp(_BinaryMath):
    """y = log(e^a + e^b);  da = g e^(a - y), db = g e^(b - y)."""

    op = "logaddexp"

    def f(self, a, b):
        return self.xp.logaddexp(a, b)

    def df(self, g, a, b, y):
        xp = self.xp
        return g * xp.exp(a - y), g * xp.exp(b - y)


class Lerp(Function):
    """y = a + w (b - a);  da = g (1 - w), db = g w, dw = g (b - a)."""

    saves = (0, 1, 2)

    def forward(self, a, b, w):
        self.a, self.b, self.w = a, b, w
        try:
            np.broadcast_shapes(_shape(a), _shape(b), _shape(w))
        except ValueError:
            raise RuntimeError(f"lerp: shapes {tuple(_shape(a))}, {tuple(_shape(b))} and {tuple(_shape(w))} "
                               "cannot be broadcast together") from None
        return _promote(a + w * (b - a), a, b)

    def backward(self, g):
        n = self.needs_input_grad
        return (g * (1 - self.w) if n[0] else None, g * self.w if n[1] else None,
                g * (self.b - self.a) if n[2] else None)


def _float_operand(x, like, op, position):
    """An operand of a float pointwise op: a Tensor made float (ints -> float32), or a Python number."""
    x = _operand(x, like, op, position)
    return _floated(x) if isinstance(x, Tensor) else x


def _pointwise(name, cls, doc):
    """The public op ``name``: cls applied to x made float (PyTorch promotes integers to float32)."""
    def op(x):
        return cls.apply(_floated(x))
    op.__name__ = op.__qualname__ = name
    op.__doc__ = doc
    return tensor_op("x")(op)


log1p = _pointwise("log1p", Log1p, "log(1 + x), accurate for small x.")
expm1 = _pointwise("expm1", Expm1, "e^x - 1, accurate for small x.")
log2 = _pointwise("log2", Log2, "Base-2 logarithm.")
log10 = _pointwise("log10", Log10, "Base-10 logarithm.")
reciprocal = _pointwise("reciprocal", Reciprocal, "1 / x.")
frac = _pointwise("frac", Frac, "x - trunc(x) (keeps x's sign).")


@tensor_op("x")
def trunc(x):
    """Rounds toward zero; the gradient is 0 (as PyTorch's)."""
    return Step.apply(x, "trunc") if x._data.dtype.kind == "f" else x.clone()


fix = trunc


@tensor_op("x")
def nan_to_num(x, nan=0.0, posinf=None, neginf=None):
    """NaN -> ``nan``, +inf -> ``posinf``, -inf -> ``neginf`` (default: the dtype's largest / lowest finite)."""
    nan = real_arg("nan_to_num", "nan", nan)
    posinf = None if posinf is None else real_arg("nan_to_num", "posinf", posinf)
    neginf = None if neginf is None else real_arg("nan_to_num", "neginf", neginf)
    if x._data.dtype.kind != "f":
        return x.clone()
    return NanToNum.apply(x, nan, posinf, neginf)


@tensor_op()
def hypot(input, other):
    """sqrt(input^2 + other^2), elementwise with broadcasting."""
    return Hypot.apply(_float_operand(input, other, "hypot", 1), _float_operand(other, input, "hypot", 2))


@tensor_op()
def atan2(input, other):
    """The angle of (other, input): arctan(input / other) in the right quadrant, with broadcasting."""
    return Atan2.apply(_float_operand(input, other, "atan2", 1), _float_operand(other, input, "atan2", 2))


arctan2 = atan2


@tensor_op()
def logaddexp(input, other):
    """log(e^input + e^other), computed without overflow."""
    return LogAddExp.apply(_float_operand(input, other, "logaddexp", 1),
                           _float_operand(other, input, "logaddexp", 2))


@tensor_op("input", "end")
def lerp(input, end, weight):
    """input + weight (end - input); ``weight`` a number or a tensor (broadcasting)."""
    if input._data.dtype.kind != "f" or end._data.dtype.kind != "f":
        raise TypeError(f"lerp: expected floating point tensors, got {input.dtype} and {end.dtype}")
    if not isinstance(weight, Tensor):
        weight = real_arg("lerp", "weight", weight)
    elif weight._data.dtype.kind != "f":
        raise TypeError(f"lerp: weight must be a floating point tensor, got {weight.dtype}")
    return Lerp.apply(input, end, weight)


@tensor_op("x")
def clamp_min(x, min):  # noqa: A002
    return clamp(x, min=min)


@tensor_op("x")
def clamp_max(x, max):  # noqa: A002
    return clamp(x, max=max)


@tensor_op("a", "b")
def isclose(a, b, rtol=1e-5, atol=1e-8, equal_nan=False):
    """|a - b| <= atol + rtol |b| elementwise (a bool tensor, no gradient)."""
    a_, b_ = _arr(a), _arr(b)
    rtol, atol = real_arg("isclose", "rtol", rtol), real_arg("isclose", "atol", atol)
    _check_broadcast("isclose", a_, b_)
    return _wrap(xp_of(a_, b_).isclose(a_, b_, rtol=rtol, atol=atol, equal_nan=bool(equal_nan)))


# activations (nn.functional re-exports these under PyTorch's names)


def _float_input(op, x):
    if x._data.dtype.kind != "f":
        raise TypeError(f"{op}: expected a floating point tensor, got {x.dtype}")
    return x


@tensor_op("x")
def softplus(x, beta=1.0, threshold=20.0):
    """log(1 + e^(beta x)) / beta; linear (x) where beta x > threshold."""
    beta = real_arg("softplus", "beta", beta)
    if beta == 0:
        raise ValueError("softplus: beta must be nonzero")
    return Softplus.apply(_float_input("softplus", x), beta, real_arg("softplus", "threshold", threshold))


@tensor_op("x")
def elu(x, alpha=1.0):
    """x if x > 0 else alpha (e^x - 1)."""
    return Elu.apply(_float_input("elu", x), real_arg("elu", "alpha", alpha), 1.0, 1.0)


_SELU_ALPHA, _SELU_SCALE = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946


@tensor_op("x")
def selu(x):
    """scale elu(x, alpha) with Klambauer et al. (2017)'s self-normalising constants."""
    return Elu.apply(_float_input("selu", x), _SELU_ALPHA, _SELU_SCALE, 1.0)


@tensor_op("x")
def celu(x, alpha=1.0):
    """max(0, x) + min(0, alpha (e^(x / alpha) - 1))."""
    alpha = real_arg("celu", "alpha", alpha)
    if alpha == 0:
        raise ValueError("celu: alpha must be nonzero (ZeroDivisionError in x / alpha)")
    return Elu.apply(_float_input("celu", x), alpha, 1.0, 1.0 / alpha)


@tensor_op("x")
def hardtanh(x, min_val=-1.0, max_val=1.0):
    lo, hi = real_arg("hardtanh", "min_val", min_val), real_arg("hardtanh", "max_val", max_val)
    if lo > hi:
        raise ValueError(f"hardtanh: min_val ({lo}) must not be greater than max_val ({hi})")
    return Hardtanh.apply(_float_input("hardtanh", x), lo, hi)


@tensor_op("x")
def relu6(x):
    """min(max(x, 0), 6)."""
    return Hardtanh.apply(_float_input("relu6", x), 0.0, 6.0)


@tensor_op("x")
def hardswish(x):
    """x relu6(x + 3) / 6 (Howard et al. 2019)."""
    return Hardswish.apply(_float_input("hardswish", x))


@tensor_op("x")
def hardsigmoid(x):
    """relu6(x + 3) / 6."""
    return Hardsigmoid.apply(_float_input("hardsigmoid", x))


@tensor_op("x")
def mish(x):
    return Mish.apply(_float_input("mish", x))


@tensor_op("x")
def softsign(x):
    return Softsign.apply(_float_input("softsign", x))


@tensor_op("x")
def tanhshrink(x):
    return Tanhshrink.apply(_float_input("tanhshrink", x))


@tensor_op("x")
def logsigmoid(x):
    return Logsigmoid.apply(_float_input("logsigmoid", x))


class Remainder(_BinaryMath):
    """y = a - b floor(a / b) (Python's %, the sign of b) or, ``trunc``, a - b trunc(a / b) (C's fmod);
    da = g, db = -g floor(a / b) (resp. trunc)."""

    saves = (0, 1)
    op = "remainder"

    def forward(self, a, b, trunc=False):
        self.trunc = trunc
        self.op = "fmod" if trunc else "remainder"
        return super().forward(a, b)

    def f(self, a, b):
        return self.xp.fmod(a, b) if self.trunc else self.xp.remainder(a, b)

    def df(self, g, a, b, y):
        q = a / b
        return g, -g * (self.xp.trunc(q) if self.trunc else self.xp.floor(q))

    def backward(self, g):
        return super().backward(g) + (None,)


class RoundedDiv(_BinaryMath):
    """y = floor(a / b) or trunc(a / b): piecewise constant, a zero gradient for both (as PyTorch's)."""

    saves = ()
    op = "div"

    def forward(self, a, b, mode):
        self.mode = mode
        if _shape(a) != _shape(b):
            _check_broadcast("div", a, b)
        self.a = self.b = self.y = None
        with np.errstate(all="ignore"):
            y = self.xp.floor_divide(a, b) if mode == "floor" else self.xp.trunc(self.xp.true_divide(a, b))
        return _promote(y, a, b)

    def backward(self, g):
        zero = self.xp.zeros_like(g)
        n = self.needs_input_grad
        return (zero if n[0] else None, zero if n[1] else None, None)


@tensor_op()
def remainder(input, other):
    """input - other * floor(input / other): Python's %, the result has the sign of ``other``."""
    a, b = _operand(input, other, "remainder", 1), _operand(other, input, "remainder", 2)
    if _is_float_graph(a, b):
        return Remainder.apply(a, b, False)
    a_, b_ = _arr(a), _arr(b)
    with np.errstate(divide="ignore", invalid="ignore"):
        return _wrap(_promote(xp_of(a_, b_).remainder(a_, b_), a_, b_))


@tensor_op()
def fmod(input, other):
    """input - other * trunc(input / other): C's fmod, the result has the sign of ``input``."""
    a, b = _operand(input, other, "fmod", 1), _operand(other, input, "fmod", 2)
    if _is_float_graph(a, b):
        return Remainder.apply(a, b, True)
    a_, b_ = _arr(a), _arr(b)
    with np.errstate(divide="ignore", invalid="ignore"):
        return _wrap(_promote(xp_of(a_, b_).fmod(a_, b_), a_, b_))


def _is_float_graph(a, b):
    """Whether a float op on a and b must build a node (one of them a float tensor that requires grad)."""
    return any(isinstance(t, Tensor) and t.requires_grad for t in (a, b))
