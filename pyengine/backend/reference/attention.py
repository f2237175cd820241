"""Scaled dot-product attention, forward and backward.

The reference materialises the (Tq, Tk) score matrix; the compiled kernel computes the
same thing block by block with an online softmax (Milakov & Gimelshein 2018; flash
attention, Dao et al. 2022) so that its extra memory is O(T), not O(T^2).
"""
import numpy as np

__all__ = ["attention_forward", "attention_backward"]


def _scores(q, k, mask, causal_offset, scale):
    """s = scale * q @ k^T with masked entries at -inf.  q: (BH, Tq, D), k: (BH, Tk, D)."""
    s = np.matmul(q, np.swapaxes(k, -1, -2)) * scale
    tq, tk = s.shape[-2], s.shape[-1]
    if causal_offset is not None:
        # key j is visible to query i iff j <= i + causal_offset
        allowed = np.arange(tk)[None, :] <= np.arange(tq)[:, None] + causal_offset
        s = np.where(allowed, s, -np.inf)
    if mask is not None:
        if mask.dtype == np.bool_:
            s = np.where(mask, s, -np.inf)  # True = may attend (PyTorch's convention)
        else:
            s = s + mask  # additive float mask
    return s


def attention_forward(q, k, v, mask=None, causal_offset=None, scale=None, out=None):
    """out = softmax(scale * q k^T + mask) v, and the row log-sum-exp of the scores.

    q: (BH, Tq, D)   k: (BH, Tk, D)   v: (BH, Tk, Dv)
    mask: None, or bool (True = attend) / float (added to scores), broadcastable to (BH, Tq, Tk)
    causal_offset: None, or int: query i sees keys j <= i + causal_offset
        (0 = PyTorch's is_causal; Tk - Tq = the last query sees every key, as with a KV cache)
    scale: default 1 / sqrt(D)
    out: optional array to write the result into (the compiled kernel writes strided views in place).
    Any leading axes work here: (BH, ...) or (B, H, ...).
    Returns out: (BH, Tq, Dv) and lse: (BH, Tq). A row that sees no key (every score masked) gets out = 0,
    lse = -inf, by design; otherwise NaN and inf follow the formula (a NaN or +inf score makes its row NaN,
    a NaN value every row: even a weight of 0 times NaN is NaN). The kernel never reads the keys past a
    row's causal reach, so there a NaN value may leave rows that cannot see it finite.
    """
    if scale is None:
        scale = 1.0 / np.sqrt(q.shape[-1])
    s = _scores(q.astype(np.float64), k.astype(np.float64), mask, causal_offset, scale)
    m = np.max(s, axis=-1, keepdims=True, initial=-np.inf)  # NaN if a score is NaN, +inf if one is; Tk = 0: -inf
    no_key = m == -np.inf
    m_safe = np.where(no_key, 0.0, m)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        e = np.exp(s - m_safe)
        denom = np.sum(e, axis=-1, keepdims=True)
        p = np.where(no_key, 0.0, e / np.where(no_key, 1.0, denom))
        lse = np.where(no_key[..., 0], -np.inf, m_safe[..., 0] + np.log(denom[..., 0]))
    with np.errstate(invalid="ignore"):
        res = np.matmul(p, v.astype(np.float64)).astype(q.dtype)
    return _into(out, res), lse.astype(q.dtype)


def _into(dst, value):
    """value, written into dst when one is given (the kernels' out= contract)."""
    if dst is None:
        return value
    np.copyto(dst, value)
    return dst


def attention_backward(q, k, v, out, lse, dout, mask=None, causal_offset=None, scale=None, dq=None, dk=None,
                       dv=None):
    """Gradients of attention_forward, recomputing P = exp(s - lse) from the saved lse.

    dV = P^T dO;  dP = dO V^T;  D_i = sum_d dO_{i,d} O_{i,d};  dS = P * (dP - D);
    dQ = scale dS K;  dK = scale dS^T Q.
    Shapes as in attention_forward; dout: (BH, Tq, Dv); dq, dk, dv: optional arrays to write into.
    Returns dq, dk, dv.
    """
    if scale is None:
        scale = 1.0 / np.sqrt(q.shape[-1])
    qd, kd, vd = (a.astype(np.float64) for a in (q, k, v))
    do, od = dout.astype(np.float64), out.astype(np.float64)
    s = _scores(qd, kd, mask, causal_offset, scale)
    lse_d = lse.astype(np.float64)[..., None]
    no_key = lse_d == -np.inf  # a NaN lse (a NaN row) gives NaN probabilities, so NaN gradients
    with np.errstate(invalid="ignore", over="ignore"):
        p = np.where(no_key, 0.0, np.exp(s - np.where(no_key, 0.0, lse_d)))
    dv_ = np.matmul(np.swapaxes(p, -1, -2), do)
    dp = np.matmul(do, np.swapaxes(vd, -1, -2))
    d = np.sum(do * od, axis=-1, keepdims=True)
    ds = p * (dp - d)
    dq_ = scale * np.matmul(ds, kd)
    dk_ = scale * np.matmul(np.swapaxes(ds, -1, -2), qd)
    return _into(dq, dq_.astype(q.dtype)), _into(dk, dk_.astype(k.dtype)), _into(dv, dv_.astype(v.dtype))
