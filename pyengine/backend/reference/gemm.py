"""GEMM: C = alpha * op(A) @ op(B) + beta * C, and the fused linear layer."""
import numpy as np

__all__ = ["matmul", "linear"]


def matmul(a, b, trans_a=False, trans_b=False, alpha=1.0, beta=0.0, out=None):
    """Batched GEMM.

    a: (..., M, K), or (..., K, M) when ``trans_a``
    b: (..., K, N), or (..., N, K) when ``trans_b``
    out: (..., M, N) or None; required when ``beta != 0`` (it is read, then overwritten)
    Batch dims broadcast as in NumPy. Returns alpha * op(a) @ op(b) + beta * out.
    Inputs may be non-contiguous views (transposed, sliced).
    """
    opa = np.swapaxes(a, -1, -2) if trans_a else a
    opb = np.swapaxes(b, -1, -2) if trans_b else b
    c = np.matmul(opa, opb)
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


def linear(x, weight, bias=None):
    """y = x @ weight.T + bias (one GEMM, bias added in its epilogue).

    x: (N, IN)   weight: (OUT, IN)   bias: (OUT,) or None   ->   y: (N, OUT)
    """
    y = x @ weight.T
    if bias is not None:
        y = y + bias
    return y
