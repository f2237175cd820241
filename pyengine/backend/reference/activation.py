"""Elementwise activations (ReLU, GELU) and softmax / log-softmax along any dim."""
import math

import numpy as np

__all__ = ["relu_forward", "relu_backward", "gelu_forward", "gelu_backward",
           "softmax_forward", "softmax_backward"]


def relu_forward(x):
    """y = max(x, 0).   x: any shape."""
    return np.maximum(x, 0).astype(x.dtype, copy=False)


def relu_backward(x, dy):
    """dx = dy * (x > 0).   x, dy: same shape."""
    return np.where(x > 0, dy, 0).astype(dy.dtype, copy=False)


_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_INV_SQRT_2 = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def _erf(x):
    # np has no erf; math.erf per element is exact and fine for a reference.
    return np.vectorize(math.erf, otypes=[np.float64])(x)


def gelu_forward(x, approximate="none"):
    """GELU (Hendrycks & Gimpel 2016).

    'none': y = x * Phi(x) = 0.5 x (1 + erf(x / sqrt 2))
    'tanh': y = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
    """
    xd = x.astype(np.float64)
    if approximate == "tanh":
        y = 0.5 * xd * (1.0 + np.tanh(_SQRT_2_OVER_PI * (xd + 0.044715 * xd ** 3)))
    else:
        y = 0.5 * xd * (1.0 + _erf(xd * _INV_SQRT_2))
    return y.astype(x.dtype)


def gelu_backward(x, dy, approximate="none"):
    """dx = dy * GELU'(x).

    'none': GELU'(x) = Phi(x) + x phi(x),  phi(x) = exp(-x^2/2) / sqrt(2 pi)
    'tanh': with u = sqrt(2/pi)(x + 0.044715 x^3), t = tanh u:
            GELU'(x) = 0.5 (1 + t) + 0.5 x (1 - t^2) sqrt(2/pi) (1 + 3 * 0.044715 x^2)
    """
    xd = x.astype(np.float64)
    if approximate == "tanh":
        t = np.tanh(_SQRT_2_OVER_PI * (xd + 0.044715 * xd ** 3))
        d = 0.5 * (1 + t) + 0.5 * xd * (1 - t * t) * _SQRT_2_OVER_PI * (1 + 3 * 0.044715 * xd ** 2)
    else:
        d = 0.5 * (1.0 + _erf(xd * _INV_SQRT_2)) + xd * _INV_SQRT_2PI * np.exp(-0.5 * xd * xd)
    return (dy * d).astype(dy.dtype)


def softmax_forward(x, log=False, dim=-1):
    """Softmax (or log-softmax) along ``dim`` (any one, the last by default), max-subtracted for stability.

    x: any shape with at least one dim -> y: x's shape.  y = exp(x - lse(x)) or, with ``log``, x - lse(x).
    NaN or +inf anywhere along dim makes that whole slice NaN (as the formula: inf - inf); a slice of
    -inf (fully masked) is NaN too (0 / 0).
    """
    if x.size:
        m = np.max(x, axis=dim, keepdims=True)
    else:
        m = np.zeros(tuple(1 if i == dim % x.ndim else n for i, n in enumerate(x.shape)), x.dtype)
    m = np.where(m == -np.inf, 0, m)  # a fully masked slice: shift by 0
    with np.errstate(invalid="ignore", divide="ignore"):  # the NaN / -inf above are the answers
        z = x - m
        lse = np.log(np.sum(np.exp(z), axis=dim, keepdims=True))
        return (z - lse) if log else np.exp(z - lse)


def softmax_backward(y, dy, log=False, dim=-1):
    """Backward of softmax_forward (along ``dim``) given its output y.

    softmax:     dx = y * (dy - sum(dy * y))
    log-softmax: dx = dy - exp(y) * sum(dy)
    y, dy: the same shape.
    """
    if log:
        return dy - np.exp(y) * np.sum(dy, axis=dim, keepdims=True)
    return y * (dy - np.sum(dy * y, axis=dim, keepdims=True))
