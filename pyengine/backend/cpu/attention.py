"""Compiled attention kernels (csrc/cpu/attention*.cpp); the specification is reference/attention.py.

Flash-style: the (Tq, Tk) score matrix is never formed; the forward pass saves only out and the
row log-sum-exp, from which the backward pass recomputes the probabilities block by block.

q, k, v (and out, dout, dq, dk, dv) are all (BH, T, D) or all (B, H, T, D). The kernels read and write
strided views in place (any non-negative strides with a contiguous last axis), so the heads of a (B, T, H, D)
or packed (B, T, 3, H, D) projection need no copy; other layouts are copied once here.
"""
import numpy as np

from ._lib import _C, followable

__all__ = ["attention_forward", "attention_backward"]

_OP = "scaled_dot_product_attention"


def _followable(x):
    """x itself when the kernels can read it in place (see _lib.followable), else a C-contiguous copy."""
    return x if x.ndim in (3, 4) and x.size and followable(x) else np.ascontiguousarray(x)


def _inputs(q, k, v, mask, scale):
    """q, k, v as kernel-readable views; the mask as a (BH, Tq, Tk) / (B, H, Tq, Tk) view (no copy);
    the scale as a float."""
    q, k, v = _followable(np.asarray(q)), _followable(np.asarray(k)), _followable(np.asarray(v))
    if mask is not None:
        mask = np.asarray(mask)
        if mask.dtype != np.bool_ and mask.dtype.kind in "fiu" and q.dtype in (np.float32, np.float64):
            # an additive mask of another real dtype (the reference adds it in float64 either way):
            # the kernel reads it in q's dtype; the copy has the mask's own, unbroadcast size
            mask = mask.astype(q.dtype, copy=False)
        if q.ndim in (3, 4) and k.ndim == q.ndim:  # otherwise the kernel reports the bad rank
            target = q.shape[:-1] + (k.shape[-2],)
            try:
                mask = np.broadcast_to(mask, target)
            except ValueError:
                names = "(BH, Tq, Tk)" if q.ndim == 3 else "(B, H, Tq, Tk)"
                raise ValueError(f"{_OP}: mask of shape {mask.shape} does not broadcast to {names} = {target} "
                                 f"(q {q.shape}, k {k.shape})") from None
    if scale is None:
        scale = 1.0 / np.sqrt(q.shape[-1]) if q.ndim else 1.0
    return q, k, v, mask, float(scale)


def attention_forward(q, k, v, mask=None, causal_offset=None, scale=None, out=None):
    """out = softmax(scale * q k^T + mask) v, and the row log-sum-exp of the scores.

    q: (BH, Tq, D)   k: (BH, Tk, D)   v: (BH, Tk, Dv)   (or all with (B, H) leading axes)
    mask: None, or bool (True = attend) / float (added to scores), broadcastable to (BH, Tq, Tk)
    causal_offset: None, or int: query i sees keys j <= i + causal_offset
    scale: default 1 / sqrt(D)
    out: optional (BH, Tq, Dv) array (may be a strided view, e.g. of a (B, Tq, H, Dv) buffer) to write into.
    Returns out: (BH, Tq, Dv) and lse: (BH, Tq). A row that sees no key gets out = 0, lse = -inf.
    """
    q, k, v, mask, scale = _inputs(q, k, v, mask, scale)
    if q.ndim in (3, 4) and v.ndim == q.ndim:
        if out is None:
            out = np.empty(q.shape[:-1] + (v.shape[-1],), dtype=q.dtype)
        lse = np.empty(q.shape[:-1], dtype=q.dtype)
    else:  # the kernel raises on the ranks before it looks at these
        out = lse = np.empty(0, dtype=q.dtype)
    _C.attention_forward(q, k, v, out, lse, mask, causal_offset, scale)
    return out, lse


def attention_backward(q, k, v, out, lse, dout, mask=None, causal_offset=None, scale=None, dq=None, dk=None,
                       dv=None):
    """Gradients of attention_forward, recomputing P = exp(s - lse) from the saved lse.

    Shapes as in attention_forward; dout: (BH, Tq, Dv). dq, dk, dv: optional arrays (strided views allowed,
    not overlapping each other) to write the gradients into. Returns dq, dk, dv.
    """
    q, k, v, mask, scale = _inputs(q, k, v, mask, scale)
    out, dout = _followable(np.asarray(out)), _followable(np.asarray(dout))
    lse = np.ascontiguousarray(lse)
    dq = np.empty_like(q, order="C") if dq is None else dq
    dk = np.empty_like(k, order="C") if dk is None else dk
    dv = np.empty_like(v, order="C") if dv is None else dv
    _C.attention_backward(q, k, v, out, lse, dout, dq, dk, dv, mask, causal_offset, scale)
    return dq, dk, dv
