"""Weight initialisation (PyTorch's ``nn.init``): in place, under no_grad, using the pyengine
default generator (so ``pyengine.manual_seed`` makes a model's initial weights reproducible)
unless a ``generator`` is passed.

Formulas: Xavier/Glorot (Glorot & Bengio 2010): std = gain sqrt(2 / (fan_in + fan_out));
Kaiming/He (He et al. 2015): std = gain / sqrt(fan), gain from ``calculate_gain``; a uniform
distribution with that std has bound sqrt(3) std.

>>> w = pyengine.empty(64, 32)
>>> nn.init.kaiming_uniform_(w, a=math.sqrt(5))
"""
import math

import numpy as np

from ..autograd import no_grad
from ..random import _rng

__all__ = ["calculate_gain", "uniform_", "normal_", "trunc_normal_", "constant_", "ones_", "zeros_", "eye_",
           "xavier_uniform_", "xavier_normal_", "kaiming_uniform_", "kaiming_normal_", "orthogonal_"]


def calculate_gain(nonlinearity, param=None):
    """The recommended gain for a nonlinearity (scales the std of the init).

    linear / conv / sigmoid: 1,  tanh: 5/3,  relu: sqrt(2),
    leaky_relu: sqrt(2 / (1 + negative_slope^2)) (slope ``param``, default 0.01),  selu: 3/4.
    """
    linear_fns = ["linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
                  "conv_transpose3d"]
    if nonlinearity in linear_fns or nonlinearity == "sigmoid":
        return 1
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            slope = 0.01
        elif not isinstance(param, bool) and isinstance(param, (int, float)):
            slope = param
        else:
            raise ValueError(f"negative_slope {param} not a valid number")
        return math.sqrt(2.0 / (1 + slope ** 2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"Unsupported nonlinearity {nonlinearity}")


def _calculate_fan_in_and_fan_out(tensor):
    """(fan_in, fan_out) of a weight: (size(1), size(0)) times the receptive field (dims 2...)."""
    if tensor.ndim < 2:
        raise ValueError("Fan in and fan out can not be computed for tensor with fewer than 2 dimensions")
    receptive = int(np.prod(tensor.shape[2:])) if tensor.ndim > 2 else 1
    return tensor.shape[1] * receptive, tensor.shape[0] * receptive


def _calculate_correct_fan(tensor, mode):
    mode = mode.lower()
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"Mode {mode} not supported, please use one of fan_in, fan_out")
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return fan_in if mode == "fan_in" else fan_out


def _fill(tensor, values):
    with no_grad():
        tensor._data[...] = values
    return tensor


def uniform_(tensor, a=0.0, b=1.0, generator=None):
    """Fill with samples of U(a, b)."""
    return _fill(tensor, _rng(generator).uniform(a, b, tensor.shape))


def normal_(tensor, mean=0.0, std=1.0, generator=None):
    """Fill with samples of N(mean, std^2)."""
    return _fill(tensor, _rng(generator).normal(mean, std, tensor.shape))


def _norm_cdf(x):
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def trunc_normal_(tensor, mean=0.0, std=1.0, a=-2.0, b=2.0, generator=None):
    """Fill with N(mean, std^2) samples conditioned on a <= x <= b (a, b absolute bounds, as PyTorch).

    Rejection sampling (exact); when the interval holds little of the mass, inverse-CDF sampling
    (uniform in [cdf(a), cdf(b)], inverted by Newton's method on erf).
    """
    rng = _rng(generator)
    shape = tuple(tensor.shape)
    n = int(np.prod(shape)) if shape else 1
    lo, hi = (a - mean) / std, (b - mean) / std
    p_lo, p_hi = _norm_cdf(lo), _norm_cdf(hi)
    if p_hi - p_lo > 0.05:
        out = np.empty(n)
        todo = np.arange(n)
        while todo.size:
            z = rng.standard_normal(todo.size)
            ok = (z >= lo) & (z <= hi)
            out[todo[ok]] = z[ok]
            todo = todo[~ok]
    else:
        erf = np.frompyfunc(math.erf, 1, 1)
        u = rng.uniform(p_lo, p_hi, n)
        z = np.clip(np.full(n, 0.5 * (lo + hi)), lo, hi)
        for _ in range(60):  # Newton on cdf(z) = u, cdf' = pdf
            cdf = 0.5 * (1.0 + erf(z / math.sqrt(2.0)).astype(np.float64))
            pdf = np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
            z = np.clip(z - (cdf - u) / np.maximum(pdf, 1e-300), lo, hi)
        out = z
    return _fill(tensor, (mean + std * out).reshape(shape))


def constant_(tensor, val):
    return _fill(tensor, val)


def ones_(tensor):
    return _fill(tensor, 1)


def zeros_(tensor):
    return _fill(tensor, 0)


def eye_(tensor):
    """Fill a 2-D tensor with the identity (ones on the diagonal)."""
    if tensor.ndim != 2:
        raise ValueError("Only tensors with 2 dimensions are supported")
    return _fill(tensor, np.eye(*tensor.shape))


def xavier_uniform_(tensor, gain=1.0, generator=None):
    """U(-bound, bound), bound = gain sqrt(6 / (fan_in + fan_out))  (Glorot & Bengio 2010)."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    std = gain * math.sqrt(2.0 / float(fan_in + fan_out))
    bound = math.sqrt(3.0) * std
    return uniform_(tensor, -bound, bound, generator)


def xavier_normal_(tensor, gain=1.0, generator=None):
    """N(0, std^2), std = gain sqrt(2 / (fan_in + fan_out))."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    std = gain * math.sqrt(2.0 / float(fan_in + fan_out))
    return normal_(tensor, 0.0, std, generator)


def kaiming_uniform_(tensor, a=0, mode="fan_in", nonlinearity="leaky_relu", generator=None):
    """U(-bound, bound), bound = gain sqrt(3 / fan)  (He et al. 2015); ``a`` is the leaky_relu slope."""
    if 0 in tuple(tensor.shape):
        return tensor
    fan = _calculate_correct_fan(tensor, mode)
    std = calculate_gain(nonlinearity, a) / math.sqrt(fan)
    bound = math.sqrt(3.0) * std
    return uniform_(tensor, -bound, bound, generator)


def kaiming_normal_(tensor, a=0, mode="fan_in", nonlinearity="leaky_relu", generator=None):
    """N(0, std^2), std = gain / sqrt(fan)  (He et al. 2015)."""
    if 0 in tuple(tensor.shape):
        return tensor
    fan = _calculate_correct_fan(tensor, mode)
    std = calculate_gain(nonlinearity, a) / math.sqrt(fan)
    return normal_(tensor, 0.0, std, generator)


def orthogonal_(tensor, gain=1.0, generator=None):
    """A (semi-)orthogonal matrix from the QR decomposition of a Gaussian one (Saxe et al. 2013)."""
    if tensor.ndim < 2:
        raise ValueError("Only tensors with 2 or more dimensions are supported")
    rows = tensor.shape[0]
    cols = tensor.numel() // rows
    flat = _rng(generator).standard_normal((rows, cols))
    if rows < cols:
        flat = flat.T
    q, r = np.linalg.qr(flat)
    q = q * np.sign(np.diag(r))  # make the decomposition unique
    if rows < cols:
        q = q.T
    return _fill(tensor, gain * q.reshape(tuple(tensor.shape)))
