"""Compiled elementwise ops (csrc/cpu/elementwise.cpp); the specification is reference/elementwise.py.

Same names, arguments and results as the reference. The kernel runs when every array operand is
float32 or float64 (one dtype), Python numbers take the array's dtype (NumPy's weak scalars), and the
result has at least ``SMALL`` elements; anything else (int / bool / mixed dtypes, more than 16 dims,
more than one number in a three-input op) is the reference's NumPy call, which is the same function.
Below ``SMALL`` elements NumPy is used too: there a call is all overhead, and a NumPy ufunc costs
~0.6 us less than the kernel's binding (measured: add / exp of 1-64 float32 elements, 0.4 us against
1.0 us); at 4k-16k elements the two are even for add and exp on one thread, and above that the
kernel's threads and fused backward passes pay. The output is allocated here (C order) and filled by
the kernel; any input layout is read in place (broadcast, strided, negative strides).
Semantics are NumPy's, except that float32 exp (and sigmoid, tanh built on it) gives 0 where the
exact result is below the smallest normal float (NumPy gives a denormal): see csrc/cpu/simd.h; and
float32 exp, log, tanh and sigmoid are within 3 ulp, sqrt at AVX-512 within 0.75 ulp (not always
correctly rounded): csrc/cpu/elementwise.cpp.
"""
import math

import numpy as np

from .. import reference as _ref
from ._lib import _C

__all__ = list(_ref.elementwise.__all__)

SMALL = 16384
_MAX_DIMS = 16

_ew = _C.elementwise
_ND = np.ndarray
_empty = np.empty
_BSHAPES = {}


def _bshape(*shapes):
    """np.broadcast_shapes(*shapes), remembered: NumPy's costs 3-8 us a call (it builds arrays), a dict
    lookup 0.1 us, and a model broadcasts the same few pairs of shapes at every step."""
    r = _BSHAPES.get(shapes)
    if r is None:
        r = np.broadcast_shapes(*shapes)  # a ValueError names no op: the op does
        if len(_BSHAPES) >= 4096:
            _BSHAPES.clear()
        _BSHAPES[shapes] = r
    return r

_prod = math.prod
_FLOATS = frozenset((np.dtype(np.float32), np.dtype(np.float64)))
_BOOL = np.dtype(np.bool_)
_NUMBERS = (float, int)

# Op codes: csrc/cpu/elementwise.h, enum class Op (same order).
_OPS = ("add sub mul div pow maximum minimum eq ne lt le gt ge where "
        "neg exp log sqrt rsqrt abs tanh sigmoid pow_scalar "
        "exp_grad log_grad sqrt_grad rsqrt_grad abs_grad tanh_grad sigmoid_grad pow_scalar_grad "
        "div_grad_b pow_grad_a pow_grad_b max_grad_a max_grad_b min_grad_a min_grad_b "
        "mask_keep mask_drop").split()
OPS = {name: code for code, name in enumerate(_OPS)}


def _binary(op, fallback, bool_out=False):
    """a <op> b for arrays and numbers; the hot path of every arithmetic operator."""
    code = OPS[op]

    # Sizes are tested first: a small call (the per-op overhead) leaves after two type and one size test.
    # The output has at most a.size * b.size elements, so a smaller product is NumPy's.
    def kernel(a, b):
        if type(a) is _ND:
            tb = type(b)
            if tb is _ND:
                if a.size * b.size >= SMALL:
                    dt = a.dtype
                    if b.dtype == dt and dt in _FLOATS:
                        sa, sb = a.shape, b.shape
                        shape = sa if sa == sb else _bshape(sa, sb)
                        if len(shape) <= _MAX_DIMS and (shape is sa and a.size or _prod(shape)) >= SMALL:
                            out = _empty(shape, _BOOL if bool_out else dt)
                            _ew(code, out, a, b)
                            return out
            elif (tb is float or tb is int) and a.size >= SMALL:
                dt = a.dtype
                if dt in _FLOATS and a.ndim <= _MAX_DIMS:
                    out = _empty(a.shape, _BOOL if bool_out else dt)
                    _ew(code, out, a, None, None, float(b))
                    return out
        elif type(b) is _ND and (type(a) is float or type(a) is int) and b.size >= SMALL:
            dt = b.dtype
            if dt in _FLOATS and b.ndim <= _MAX_DIMS:
                out = _empty(b.shape, _BOOL if bool_out else dt)
                _ew(code, out, None, b, None, float(a))
                return out
        return fallback(a, b)
    kernel.__name__ = kernel.__qualname__ = op
    kernel.__doc__ = f"{op}(a, b): see reference.elementwise.{op}."
    return kernel


add = _binary("add", _ref.add)
sub = _binary("sub", _ref.sub)
mul = _binary("mul", _ref.mul)
div = _binary("div", _ref.div)
maximum = _binary("maximum", _ref.maximum)
minimum = _binary("minimum", _ref.minimum)
eq = _binary("eq", _ref.eq, bool_out=True)
ne = _binary("ne", _ref.ne, bool_out=True)
lt = _binary("lt", _ref.lt, bool_out=True)
le = _binary("le", _ref.le, bool_out=True)
gt = _binary("gt", _ref.gt, bool_out=True)
ge = _binary("ge", _ref.ge, bool_out=True)
_pow_ab = _binary("pow", _ref.pow)
_POW_SCALAR = OPS["pow_scalar"]


def pow(a, b):  # noqa: A001
    """a ** b; a number b is NumPy's scalar power (2, 3, 0.5, -1, 1, 0 as plain arithmetic)."""
    if type(a) is _ND and (type(b) is float or type(b) is int) and a.size >= SMALL \
            and a.dtype in _FLOATS and a.ndim <= _MAX_DIMS:
        out = _empty(a.shape, a.dtype)
        _ew(_POW_SCALAR, out, a, None, None, float(b))
        return out
    return _pow_ab(a, b)


def _unary(op, fallback):
    code = OPS[op]

    def kernel(x):
        if type(x) is _ND and x.size >= SMALL and x.dtype in _FLOATS and x.ndim <= _MAX_DIMS:
            out = _empty(x.shape, x.dtype)
            _ew(code, out, x)
            return out
        return fallback(x)
    kernel.__name__ = kernel.__qualname__ = op
    kernel.__doc__ = f"{op}(x): see reference.elementwise.{op}."
    return kernel


neg = _unary("neg", _ref.neg)
exp = _unary("exp", _ref.exp)
log = _unary("log", _ref.log)
sqrt = _unary("sqrt", _ref.sqrt)
rsqrt = _unary("rsqrt", _ref.rsqrt)
abs = _unary("abs", _ref.abs)  # noqa: A001
tanh = _unary("tanh", _ref.tanh)
sigmoid = _unary("sigmoid", _ref.sigmoid)


def _call(code, fallback, args, cond=False, p=None):
    """The kernel on ``args`` (arrays of one float dtype, at most one number; with ``cond`` the first is a
    bool array) when it can run it, else ``fallback(*args)``. ``p``: the op's own parameter."""
    bound = 1  # the output has at most the product of the inputs' sizes: smaller is NumPy's, decided first
    for x in args:
        if type(x) is _ND:
            bound *= x.size
    if bound < SMALL:
        return fallback(*args)
    dt = None
    shapes = []
    number = None
    for i, x in enumerate(args):
        if type(x) is _ND:
            if cond and i == 0:
                if x.dtype != _BOOL:
                    return fallback(*args)
            elif dt is None:
                dt = x.dtype
            elif x.dtype != dt:
                return fallback(*args)
            shapes.append(x.shape)
        elif type(x) in _NUMBERS and number is None and p is None:
            number = float(x)
        else:
            return fallback(*args)
    if dt not in _FLOATS:
        return fallback(*args)
    shape = shapes[0] if len(shapes) == 1 else _bshape(*shapes)
    if len(shape) > _MAX_DIMS or _prod(shape) < SMALL:
        return fallback(*args)
    out = _empty(shape, dt)
    ins = [x if type(x) is _ND else None for x in args] + [None] * (3 - len(args))
    _ew(code, out, ins[0], ins[1], ins[2], p if p is not None else (number or 0.0))
    return out


def where(cond, a, b):
    """cond ? a : b."""
    return _call(OPS["where"], _ref.where, (cond, a, b), cond=True)


def _backward(op, name):
    code, fallback = OPS[op], getattr(_ref, name)

    def kernel(*args):
        return _call(code, fallback, args)
    kernel.__name__ = kernel.__qualname__ = name
    kernel.__doc__ = fallback.__doc__
    return kernel


exp_backward = _backward("exp_grad", "exp_backward")
log_backward = _backward("log_grad", "log_backward")
sqrt_backward = _backward("sqrt_grad", "sqrt_backward")
rsqrt_backward = _backward("rsqrt_grad", "rsqrt_backward")
abs_backward = _backward("abs_grad", "abs_backward")
tanh_backward = _backward("tanh_grad", "tanh_backward")
sigmoid_backward = _backward("sigmoid_grad", "sigmoid_backward")
div_backward_b = _backward("div_grad_b", "div_backward_b")
pow_backward_b = _backward("pow_grad_b", "pow_backward_b")
maximum_backward_a = _backward("max_grad_a", "maximum_backward_a")
maximum_backward_b = _backward("max_grad_b", "maximum_backward_b")
minimum_backward_a = _backward("min_grad_a", "minimum_backward_a")
minimum_backward_b = _backward("min_grad_b", "minimum_backward_b")
_pow_backward_a = _backward("pow_grad_a", "pow_backward_a")
_POW_SCALAR_GRAD = OPS["pow_scalar_grad"]


def pow_backward_a(g, a, b):
    """y = a ** b:  da = g b a^(b-1); a number b runs the scalar-exponent rule."""
    if type(b) is float or type(b) is int:
        return _call(_POW_SCALAR_GRAD, lambda a_, g_: _ref.pow_backward_a(g_, a_, b), (a, g), p=float(b))
    return _pow_backward_a(g, a, b)


_MASK_KEEP, _MASK_DROP = OPS["mask_keep"], OPS["mask_drop"]


def where_backward_a(cond, g):
    """da = g where cond, else 0."""
    return _call(_MASK_KEEP, _ref.where_backward_a, (cond, g), cond=True)


def where_backward_b(cond, g):
    """db = g where not cond, else 0."""
    return _call(_MASK_DROP, _ref.where_backward_b, (cond, g), cond=True)
