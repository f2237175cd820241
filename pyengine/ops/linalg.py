"""Matrix multiplication on the GEMM kernel (backend function ``matmul``).

NumPy's matmul rules live here and nowhere else: 1-D operands are promoted to matrices and
demoted again, batch dims broadcast, and every case is reduced to the backend's contract, a
2-D or batched 3-D GEMM (a batch of 1 broadcast), one kernel call per product.
"""
import math

import numpy as np

from .._checks import KERNEL_FLOATS, tensor_op
from ..autograd import Function


class MatMul(Function):
    """y = a @ b with NumPy's rules (1-D promotion, broadcast batch dims).

    a: (..., M, K)  b: (..., K, N)  ->  y: (..., M, N)   (a 1-D a is (1, K), a 1-D b is (K, 1), and
    that dim is dropped from y)
    da = g @ b^T,  db = a^T @ g; the engine sums each over the batch dims that broadcasting added.
    Transposes are passed to the GEMM as flags, never materialised.
    """

    saves = (0, 1)

    def forward(self, a, b):
        if a.ndim == 0 or b.ndim == 0:
            raise RuntimeError("matmul: both arguments need at least 1 dimension, got 0-d")
        self.a_vec, self.b_vec = a.ndim == 1, b.ndim == 1
        a2 = a[None, :] if self.a_vec else a
        b2 = b[:, None] if self.b_vec else b
        M, K = a2.shape[-2:]
        N = b2.shape[-1]
        if K != b2.shape[-2]:
            raise RuntimeError(f"matmul: shapes {tuple(a.shape)} and {tuple(b.shape)} cannot be multiplied "
                               f"({K} != {b2.shape[-2]})")
        if a.dtype != b.dtype:
            raise TypeError(f"matmul: expected both operands to have the same dtype, got {a.dtype} and {b.dtype}")
        try:
            batch = np.broadcast_shapes(a2.shape[:-2], b2.shape[:-2])
        except ValueError:
            raise RuntimeError(f"matmul: batch dims of {tuple(a.shape)} and {tuple(b.shape)} do not "
                               "broadcast") from None
        self.batch, self.M, self.K, self.N = batch, M, K, N
        # a's batch folded into its rows when b is one matrix for the whole batch: one 2-D GEMM
        self.fold = len(a2.shape) > 2 and math.prod(b2.shape[:-2]) == 1
        if self.fold:
            self.a, self.b = a2.reshape(math.prod(a2.shape[:-1]), K), b2.reshape(K, N)
        else:
            self.a, self.b = self._as_3d(a2, batch), self._as_3d(b2, batch)
        if a.dtype.kind != "f":  # integer matmul: NumPy's, no kernel
            y = self.xp.matmul(self.a, self.b)
        elif a.dtype not in KERNEL_FLOATS:
            raise TypeError(f"matmul: {a.dtype} is not supported: the kernels compute in float32 or float64 "
                            "(convert with .float())")
        else:
            y = self.backend.matmul(self.a, self.b)
        return self._demote(y.reshape(batch + (M, N)))

    def _as_3d(self, x, batch):
        """x (..., r, c) as a matrix when there is no batch, (1, r, c) when its batch is one matrix,
        else (prod(batch), r, c) (a copy only when x's batch dims broadcast in a way one batch stride
        cannot express)."""
        if not batch:
            return x
        rc = x.shape[-2:]
        if math.prod(x.shape[:-2]) == 1:
            return x.reshape((1,) + rc)
        if x.shape[:-2] != batch:
            x = self.xp.broadcast_to(x, batch + rc)
        return x.reshape((math.prod(batch),) + rc)

    def _demote(self, y):
        if self.a_vec:
            y = y[..., 0, :]
        if self.b_vec:
            y = y[..., 0]
        return y

    def backward(self, g):
        B, a, b = self.backend, self.a, self.b
        M, K, N = self.M, self.K, self.N
        g = g.reshape(self.batch + (M, N))  # puts the 1-D operands' dims back
        if self.fold or not self.batch:
            g = g.reshape(math.prod(g.shape[:-1]), N)  # the rows of every batch, or the one matrix
        else:
            g = g.reshape((math.prod(self.batch), M, N))
        da = db = None
        if self.needs_input_grad[0]:
            da = B.matmul(g, b, trans_b=True).reshape(self.batch + (M, K))
        if self.needs_input_grad[1]:
            # folded, the sum over the batch of a_i^T g_i is (all rows of a)^T (all rows of g): one GEMM
            db = B.matmul(a, g, trans_a=True)
            if not self.fold:
                db = db.reshape(self.batch + (K, N))
        if da is not None and self.a_vec:
            da = da[..., 0, :]
        if db is not None and self.b_vec:
            db = db[..., 0]
        return da, db


@tensor_op("a", "b")
def matmul(a, b):
    """Matrix product with NumPy's rules: 1-D operands promoted and batch dims broadcast.

    a: (..., M, K) or (K,)   b: (..., K, N) or (K,)  ->  (..., M, N) without the 1-D operands' dims
    >>> pyengine.matmul(pyengine.randn(2, 3, 4), pyengine.randn(4, 5)).shape   # (2, 3, 5)
    """
    return MatMul.apply(a, b)


@tensor_op("a", "b")
def mm(a, b):
    if a.ndim != 2 or b.ndim != 2:
        raise RuntimeError(f"mm: expected 2-D tensors, got {a.ndim}-D and {b.ndim}-D")
    return MatMul.apply(a, b)


@tensor_op("a", "b")
def bmm(a, b):
    if a.ndim != 3 or b.ndim != 3:
        raise RuntimeError(f"bmm: expected 3-D tensors, got {a.ndim}-D and {b.ndim}-D")
    if a.shape[0] != b.shape[0]:
        raise RuntimeError(f"bmm: batch sizes differ: {tuple(a.shape)} and {tuple(b.shape)}")
    return MatMul.apply(a, b)


@tensor_op("a", "b")
def dot(a, b):
    if a.ndim != 1 or b.ndim != 1:
        raise RuntimeError("dot: 1D tensors expected")
    return MatMul.apply(a, b)
