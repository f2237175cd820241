"""Matrix multiplication on the GEMM kernel (backend function ``matmul``)."""
import numpy as np

from ..autograd import Function
from ..backend import _active
from .elementwise import unbroadcast


class MatMul(Function):
    """y = a @ b with NumPy's rules (1-D promotion, broadcast batch dims).

    a: (..., M, K)  b: (..., K, N)  ->  y: (..., M, N)
    da = g @ b^T,  db = a^T @ g, each summed over the batch dims that broadcasting added.
    Transposes are passed to the GEMM as flags, never materialised.
    """

    def forward(self, a, b):
        if a.ndim == 0 or b.ndim == 0:
            raise RuntimeError("matmul: both arguments need at least 1 dimension, got 0-d")
        self.a_vec, self.b_vec = a.ndim == 1, b.ndim == 1
        a2 = a[None, :] if self.a_vec else a
        b2 = b[:, None] if self.b_vec else b
        if a2.shape[-1] != b2.shape[-2]:
            raise RuntimeError(f"matmul: shapes {tuple(a.shape)} and {tuple(b.shape)} cannot be multiplied "
                               f"({a2.shape[-1]} != {b2.shape[-2]})")
        if a.dtype != b.dtype:
            raise TypeError(f"matmul: expected both operands to have the same dtype, got {a.dtype} and {b.dtype}")
        if a.dtype.kind != "f":
            self.a, self.b = a2, b2
            return self._squeeze(np.matmul(a2, b2))
        self.a, self.b = a2, b2
        K = _active["cpu"]
        if b2.ndim == 2 and a2.ndim > 2:
            # (..., M, K) @ (K, N): one GEMM with the batch folded into M
            y = K.matmul(a2.reshape(-1, a2.shape[-1]), b2).reshape(a2.shape[:-1] + (b2.shape[-1],))
        else:
            y = K.matmul(a2, b2)
        return self._squeeze(y)

    def _squeeze(self, y):
        if self.a_vec:
            y = y[..., 0, :]
        if self.b_vec:
            y = y[..., 0]
        return y

    def backward(self, g):
        a, b = self.a, self.b
        if self.b_vec:
            g = g[..., None]
        if self.a_vec:
            g = g[..., None, :]
        K = _active["cpu"]
        da = db = None
        if self.needs_input_grad[0]:
            if b.ndim == 2 and a.ndim > 2:
                da = K.matmul(g.reshape(-1, g.shape[-1]), b, trans_b=True).reshape(a.shape)
            else:
                da = unbroadcast(K.matmul(g, b, trans_b=True), a.shape)
            if self.a_vec:
                da = da[0]
        if self.needs_input_grad[1]:
            if b.ndim == 2 and a.ndim > 2:
                # sum over the batch of a_i^T g_i = (all rows of a)^T (all rows of g): one GEMM
                db = K.matmul(a.reshape(-1, a.shape[-1]), g.reshape(-1, g.shape[-1]), trans_a=True)
            else:
                db = unbroadcast(K.matmul(a, g, trans_a=True), b.shape)
            if self.b_vec:
                db = db[:, 0]
        return da, db


def matmul(a, b):
    return MatMul.apply(a, b)


def mm(a, b):
    if a.ndim != 2 or b.ndim != 2:
        raise RuntimeError(f"mm: expected 2-D tensors, got {a.ndim}-D and {b.ndim}-D")
    return MatMul.apply(a, b)


def bmm(a, b):
    if a.ndim != 3 or b.ndim != 3:
        raise RuntimeError(f"bmm: expected 3-D tensors, got {a.ndim}-D and {b.ndim}-D")
    if a.shape[0] != b.shape[0]:
        raise RuntimeError(f"bmm: batch sizes differ: {tuple(a.shape)} and {tuple(b.shape)}")
    return MatMul.apply(a, b)


def dot(a, b):
    if a.ndim != 1 or b.ndim != 1:
        raise RuntimeError("dot: 1D tensors expected")
    return MatMul.apply(a, b)
