"""GEMM: C = alpha * op(A) @ op(B) + beta * C, and the fused linear layer.

The backends take 2-D or batched 3-D operands only; the matmul op (pyengine/ops/linalg.py) reduces
1-D operands and any number of batch dims to these.
"""
import numpy as np

__all__ = ["matmul", "linear"]


def matmul(a, b, trans_a=False, trans_b=False, alpha=1.0, beta=0.0, out=None):
    """alpha * op(a) @ op(b) + beta * out, op(x) = x, or x with its last two axes swapped when trans_x.

    a: (M, K) or (B, M, K)  [(K, M) / (B, K, M) when trans_a]
    b: (K, N) or (B, K, N)  [(N, K) / (B, N, K) when trans_b]
    -> (M, N), or (B, M, N) when a or b is 3-D; a batch of 1 (or a 2-D operand) is broadcast.
    out: that shape, or None; required when beta != 0 (read, then overwritten). Inputs may be any view.
    """
    for name, x in (("a", a), ("b", b)):
        if x.ndim not in (2, 3):
            raise ValueError(f"matmul: {name} must be 2-D or 3-D, got shape {x.shape}")
    ba, bb = (a.shape[0] if a.ndim == 3 else 1), (b.shape[0] if b.ndim == 3 else 1)
    if ba != bb and 1 not in (ba, bb):
        raise ValueError(f"matmul: batch sizes do not match: a {a.shape}, b {b.shape}")
    opa = np.swapaxes(a, -1, -2) if trans_a else a
    opb = np.swapaxes(b, -1, -2) if trans_b else b
    if opa.shape[-1] != opb.shape[-2]:
        raise ValueError(f"matmul: shapes do not match: a {a.shape} (trans_a={trans_a}) and b {b.shape} "
                         f"(trans_b={trans_b}) give K = {opa.shape[-1]} and {opb.shape[-2]}")
    c = np.matmul(opa, opb)
    if out is not None and out.shape != c.shape:
        raise ValueError(f"matmul: out has shape {out.shape}, expected {c.shape}")
    if alpha != 1.0:
        c = c * np.asarray(alpha, dtype=c.dtype)
    if beta != 0.0:
        if out is None:
            raise ValueError("matmul: beta != 0 needs out")
        c = c + np.asarray(beta, dtype=c.dtype) * out
    if out is not None:
        out[...] = c
        return out
    return c


def linear(x, weight, bias=None, out=None):
    """y = x @ weight.T + bias (one GEMM, bias added in its epilogue).

    x: (N, IN)   weight: (OUT, IN)   bias: (OUT,) or None   ->   y: (N, OUT), into out when given
    """
    if x.ndim != 2 or weight.ndim != 2:
        raise ValueError(f"linear: x and weight must be 2-D, got shapes {x.shape} and {weight.shape}")
    y = x @ weight.T
    if bias is not None:
        y = y + bias
    if out is not None:
        out[...] = y
        return out
    return y
