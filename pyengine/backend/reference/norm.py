"""LayerNorm over the last dim (Ba et al. 2016)."""
import numpy as np

__all__ = ["layer_norm_forward", "layer_norm_backward"]


def layer_norm_forward(x, weight, bias, eps=1e-5):
    """y = (x - mean) * rstd * weight + bias, rstd = 1 / sqrt(var + eps) (biased var).

    x: (N, C)   weight, bias: (C,) or None   ->   y: (N, C), mean: (N,), rstd: (N,)
    Statistics are computed in float64 for float32 input, and saved for backward.
    """
    xd = x.astype(np.float64)
    mean = xd.mean(axis=1)
    var = ((xd - mean[:, None]) ** 2).mean(axis=1)
    rstd = 1.0 / np.sqrt(var + eps)
    y = (xd - mean[:, None]) * rstd[:, None]
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    return y.astype(x.dtype), mean.astype(x.dtype), rstd.astype(x.dtype)


def layer_norm_backward(dy, x, weight, mean, rstd, dx=None):
    """Gradients of layer_norm_forward.

    With xhat = (x - mean) rstd and g = dy * weight:
        dx = rstd * (g - mean_C(g) - xhat * mean_C(g * xhat))
        dweight = sum_N(dy * xhat),  dbias = sum_N(dy)
    Returns (dx (N, C), dweight (C,) or None, dbias (C,) or None); dbias is always computed
    (the caller drops it when there is no bias). dx: optional (N, C) array to write dx into (returned).
    """
    out = dx
    xhat = (x.astype(np.float64) - mean[:, None]) * rstd[:, None]
    dyd = dy.astype(np.float64)
    g = dyd * weight if weight is not None else dyd
    dx = rstd[:, None] * (g - g.mean(axis=1, keepdims=True) - xhat * (g * xhat).mean(axis=1, keepdims=True))
    dweight = (dyd * xhat).sum(axis=0).astype(x.dtype) if weight is not None else None
    dbias = dyd.sum(axis=0).astype(x.dtype)
    if out is None:
        return dx.astype(x.dtype), dweight, dbias
    out[...] = dx
    return out, dweight, dbias
