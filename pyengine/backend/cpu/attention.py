"""Compiled attention kernels (csrc/cpu/attention*.cpp); the specification is reference/attention.py.

Flash-style: the (Tq, Tk) score matrix is never formed; the forward pass saves only out and the
row log-sum-exp, from which the backward pass recomputes the probabilities block by block.
"""
import numpy as np

from ._lib import _C

__all__ = ["attention_forward", "attention_backward"]

_OP = "scaled_dot_product_attention"


def _inputs(q, k, v, mask, scale):
    """Contiguous q, k, v; the mask as a (BH, Tq, Tk) view (no copy); the scale as a float."""
    q, k, v = np.ascontiguousarray(q), np.ascontiguousarray(k), np.ascontiguousarray(v)
    if mask is not None:
        mask = np.asarray(mask)
        if mask.dtype != np.bool_ and mask.dtype.kind in "fiu" and q.dtype in (np.float32, np.float64):
            # an additive mask of another real dtype (the reference adds it in float64 either way):
            # the kernel reads it in q's dtype; the copy has the mask's own, unbroadcast size
            mask = mask.astype(q.dtype, copy=False)
        if q.ndim == 3 and k.ndim == 3:  # otherwise the kernel reports the bad rank
            target = (q.shape[0], q.shape[1], k.shape[1])
            try:
                mask = np.broadcast_to(mask, target)
            except ValueError:
                raise ValueError(f"{_OP}: mask of shape {mask.shape} does not broadcast to (BH, Tq, Tk) = {target} "
                                 f"(q {q.shape}, k {k.shape})") from None
    if scale is None:
        scale = 1.0 / np.sqrt(q.shape[-1]) if q.ndim else 1.0
    return q, k, v, mask, float(scale)


def attention_forward(q, k, v, mask=None, causal_offset=None, scale=None):
    """out = softmax(scale * q k^T + mask) v, and the row log-sum-exp of the scores.

    q: (BH, Tq, D)   k: (BH, Tk, D)   v: (BH, Tk, Dv)
    mask: None, or bool (True = attend) / float (added to scores), broadcastable to (BH, Tq, Tk)
    causal_offset: None, or int: query i sees keys j <= i + causal_offset
    scale: default 1 / sqrt(D)
    Returns out: (BH, Tq, Dv) and lse: (BH, Tq). A row that sees no key gets out = 0, lse = -inf.
    """
    q, k, v, mask, scale = _inputs(q, k, v, mask, scale)
    if q.ndim == 3 and v.ndim == 3:
        out = np.empty((q.shape[0], q.shape[1], v.shape[2]), dtype=q.dtype)
        lse = np.empty(q.shape[:2], dtype=q.dtype)
    else:  # the kernel raises on the ranks before it looks at these
        out = lse = np.empty(0, dtype=q.dtype)
    _C.attention_forward(q, k, v, out, lse, mask, causal_offset, scale)
    return out, lse


def attention_backward(q, k, v, out, lse, dout, mask=None, causal_offset=None, scale=None):
    """Gradients of attention_forward, recomputing P = exp(s - lse) from the saved lse.

    Shapes as in attention_forward; dout: (BH, Tq, Dv). Returns dq, dk, dv.
    """
    q, k, v, mask, scale = _inputs(q, k, v, mask, scale)
    out, lse, dout = np.ascontiguousarray(out), np.ascontiguousarray(lse), np.ascontiguousarray(dout)
    dq, dk, dv = np.empty_like(q), np.empty_like(k), np.empty_like(v)
    _C.attention_backward(q, k, v, out, lse, dout, dq, dk, dv, mask, causal_offset, scale)
    return dq, dk, dv
