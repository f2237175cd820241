"""GEMM: C = alpha * op(A) @ op(B) + beta * C, and the fused linear layer.

The backends take 2-D, batched 3-D or 4-D operands (two batch dims, each with its own stride in the
compiled kernel) only; the matmul op (pyengine/ops/linalg.py) reduces 1-D operands and any number of
batch dims to these.
"""
import numpy as np

__all__ = ["matmul", "linear"]


def matmul(a, b, trans_a=False, trans_b=False, alpha=1.0, beta=0.0, out=None):
    """alpha * op(a) @ op(b) + beta * out, op(x) = x, or x with its last two axes swapped when trans_x.

    a: (M, K) or (B, M, K)  [(K, M) / (B, K, M) when trans_a]
    b: (K, N) or (B, K, N)  [(N, K) / (B, N, K) when trans_b]
    -> (M, N), or (B, M, N) when a or b is 3-D; a batch of 1 (or a 2-D operand) is broadcast.
    Or 4-D: a (B1, B2, M, K), b (B1, B2, K, N) -> (B1, B2, M, N), each batch dim equal or 1 (broadcast);
    the other operand 4-D or 2-D.
    out: that shape, or None; required when beta != 0 (read, then overwritten). Inputs may be any view.
    """
    for name, x in (("a", a), ("b", b)):
        if x.ndim not in (2, 3, 4):
            raise ValueError(f"matmul: {name} must be 2-D, 3-D or 4-D, got shape {x.shape}")
    if 4 in (a.ndim, b.ndim) and 3 in (a.ndim, b.ndim):
        raise ValueError(f"matmul: a 3-D and a 4-D operand: a {a.shape}, b {b.shape}")
    for ba, bb in zip(a.shape[:-2], b.shape[:-2]):
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
