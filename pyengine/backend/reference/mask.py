"""Masks: masked_fill (a bool mask broadcast against x) and dropout's fused mask and scale."""
import numpy as np

__all__ = ["masked_fill", "dropout_forward", "dropout_backward"]


def masked_fill(x, mask, value):
    """y = value where mask, else x.   x: any shape, float32/float64; mask: bool, broadcastable to x's
    shape (never beyond it) -> y: x's shape and dtype."""
    if np.broadcast_shapes(x.shape, mask.shape) != x.shape:
        raise ValueError(f"masked_fill: mask {mask.shape} does not broadcast to x {x.shape}")
    return np.where(mask, np.asarray(value, x.dtype), x)


def dropout_forward(x, u, p, scale):
    """keep = u >= p;  y = x * (scale where keep, else 0) (a NaN x stays NaN, as x * mask * scale).

    x: any shape, float32/float64;  u: x's shape, uniform draws in [0, 1) (float32)  ->  (y, keep bool)."""
    keep = u >= np.float32(p)
    with np.errstate(invalid="ignore"):  # inf * 0 = NaN: the answer
        return x * np.where(keep, np.asarray(scale, x.dtype), np.asarray(0, x.dtype)), keep


def dropout_backward(g, keep, scale):
    """dx = g * (scale where keep, else 0).   g: any shape; keep: g's shape, bool."""
    with np.errstate(invalid="ignore"):
        return g * np.where(keep, np.asarray(scale, g.dtype), np.asarray(0, g.dtype))
