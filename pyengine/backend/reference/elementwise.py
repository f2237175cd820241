"""Elementwise ops and their backward rules: NumPy's ufuncs, with NumPy's broadcasting and dtype rules.

Forward kernels take arrays or Python numbers (weakly typed, as NumPy treats them) and return a new
array in the broadcast shape. Backward kernels take the incoming gradient ``g`` and what the op saved,
and return the gradient in the broadcast shape (the engine sums it back to each input's shape).
Formulas are written in the order the compiled kernels evaluate them, so roundings agree.
"""
import numpy as np

__all__ = ["add", "sub", "mul", "div", "pow", "maximum", "minimum",
           "eq", "ne", "lt", "le", "gt", "ge", "where",
           "neg", "exp", "log", "sqrt", "rsqrt", "abs", "tanh", "sigmoid",
           "exp_backward", "log_backward", "sqrt_backward", "rsqrt_backward", "abs_backward",
           "tanh_backward", "sigmoid_backward", "pow_backward_a", "pow_backward_b", "div_backward_b",
           "maximum_backward_a", "maximum_backward_b", "minimum_backward_a", "minimum_backward_b",
           "where_backward_a", "where_backward_b"]

# ---------------------------------------------------------------- binary: a, b broadcast together

add = np.add            # a + b
sub = np.subtract       # a - b
mul = np.multiply       # a * b
div = np.true_divide    # a / b
pow = np.power          # a ** b   (noqa: A001; NumPy's special exponents 2, 3, 0.5, -1, 1, 0 included)
maximum = np.maximum    # NaN if either is NaN
minimum = np.minimum
eq = np.equal           # -> bool
ne = np.not_equal
lt = np.less
le = np.less_equal
gt = np.greater
ge = np.greater_equal


def where(cond, a, b):
    """cond ? a : b.   cond: bool; the three broadcast together."""
    return np.where(cond, a, b)


# ---------------------------------------------------------------- unary

neg = np.negative
exp = np.exp
log = np.log
sqrt = np.sqrt
abs = np.abs  # noqa: A001
tanh = np.tanh


def rsqrt(x):
    """1 / sqrt(x)."""
    return (1 / np.sqrt(x)).astype(x.dtype, copy=False)


def sigmoid(x):
    """1 / (1 + e^-x), from e^{-|x|} (never overflows): x >= 0: 1 / (1 + e);  x < 0: e / (1 + e)."""
    e = np.exp(-np.abs(x))
    r = 1 / (1 + e)
    return np.where(x >= 0, r, e * r).astype(x.dtype, copy=False)


# ---------------------------------------------------------------- backward rules (g: the output's gradient)

def exp_backward(y, g):
    """y = e^x:  dx = g y."""
    return g * y


def log_backward(x, g):
    """y = log x:  dx = g / x."""
    return g / x


def sqrt_backward(y, g):
    """y = sqrt x:  dx = g / (2 y)."""
    return g / (2 * y)


def rsqrt_backward(y, g):
    """y = 1 / sqrt x:  dx = -g y^3 / 2."""
    return (-0.5 * g) * (y * y * y)


def abs_backward(x, g):
    """y = |x|:  dx = g sign(x)  (0 at 0, as PyTorch)."""
    return g * np.sign(x)


def tanh_backward(y, g):
    """y = tanh x:  dx = g (1 - y^2)."""
    return g * (1 - y * y)


def sigmoid_backward(y, g):
    """y = sigmoid x:  dx = g y (1 - y)."""
    return g * y * (1 - y)


def pow_backward_a(g, a, b):
    """y = a ** b:  da = g b a^(b-1)  (b = 2: g 2 a)."""
    if isinstance(b, (int, float)) and b == 2:
        return g * 2 * a
    return g * b * np.power(a, b - 1)


def pow_backward_b(g, y, a):
    """y = a ** b:  db = g y log(a)  (NaN / -inf where log(a) is)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return g * y * np.log(a)


def div_backward_b(g, a, b):
    """y = a / b:  db = -g a / b^2."""
    return -g * a / (b * b)


def _minmax_weight(better, a, b, dtype):
    """1 where a is the winner, 0.5 on ties, 0 elsewhere (NaN included)."""
    return np.where(better(a, b), 1.0, np.where(a == b, 0.5, 0.0)).astype(dtype)


def maximum_backward_a(g, a, b):
    """y = max(a, b):  da = g where a > b, g / 2 on ties."""
    return g * _minmax_weight(np.greater, a, b, g.dtype)


def maximum_backward_b(g, a, b):
    """db = g where a < b (or either is NaN), g / 2 on ties."""
    return g * (1 - _minmax_weight(np.greater, a, b, g.dtype))


def minimum_backward_a(g, a, b):
    """y = min(a, b):  da = g where a < b, g / 2 on ties."""
    return g * _minmax_weight(np.less, a, b, g.dtype)


def minimum_backward_b(g, a, b):
    return g * (1 - _minmax_weight(np.less, a, b, g.dtype))


def where_backward_a(cond, g):
    """y = cond ? a : b:  da = g where cond, else 0."""
    return np.where(cond, g, np.zeros((), g.dtype))


def where_backward_b(cond, g):
    """db = g where not cond, else 0."""
    return np.where(cond, np.zeros((), g.dtype), g)
