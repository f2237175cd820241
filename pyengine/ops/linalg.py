"""Matrix multiplication on the GEMM kernel (backend function ``matmul``).

NumPy's matmul rules live here and nowhere else: 1-D operands are promoted to matrices and
demoted again, batch dims broadcast, and every case is reduced to the backend's contract, a
2-D GEMM or a batched one over one or two batch dims (3-D or 4-D operands, each batch dim with its
own stride, a batch dim of 1 broadcast), one kernel call per product.
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
    Transposes and strided batches (heads (B, H, T, D) viewed from a (B, T, H, D) array, as attention
    written op by op makes them) go to the GEMM as they are, never materialised; da and db are written
    in their operand's memory order, so that the views' backwards (transpose, view) stay views too.
    """

    saves = (0, 1)

    fresh_grads = True  # da, db: new arrays from the GEMM

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
        if a2.ndim == 2 and b2.ndim == 2:
            batch = ()
        else:
            try:
                batch = np.broadcast_shapes(a2.shape[:-2], b2.shape[:-2])
            except ValueError:
                raise RuntimeError(f"matmul: batch dims of {tuple(a.shape)} and {tuple(b.shape)} do not "
                                   "broadcast") from None
        self.batch, self.M, self.K, self.N = batch, M, K, N
        # a's batch folded into its rows when b is one matrix for the whole batch: one 2-D GEMM
        self.fold = a2.ndim > 2 and math.prod(b2.shape[:-2]) == 1
        self.bshape = None  # the batch dims the GEMM sees (one or two), when not folded
        if self.fold:
            self.a, self.b = a2.reshape(math.prod(a2.shape[:-1]), K), b2.reshape(K, N)
        elif batch:
            self.bshape = bshape = self._gemm_batch(a2, b2, batch)
            self.a, self.b = self._batched(a2, bshape), self._batched(b2, bshape)
        else:
            self.a, self.b = a2, b2
        if a.dtype.kind != "f":  # integer matmul: NumPy's, no kernel
            y = self.xp.matmul(self.a, self.b)
        elif a.dtype not in KERNEL_FLOATS:
            raise TypeError(f"matmul: {a.dtype} is not supported: the kernels compute in float32 or float64 "
                            "(convert with .float())")
        else:
            y = self.backend.matmul(self.a, self.b)
        return self._demote(y.reshape(batch + (M, N)))

    def _gemm_batch(self, a, b, batch):
        """The batch dims the GEMM is called with: ``batch`` itself when it has one or two dims, else the
        dims merged into one or two where both operands' strides allow it without a copy, else into one
        (then the operands are copied)."""
        if len(batch) <= 2:
            return batch
        xp = self.xp
        views = [xp.broadcast_to(x, batch + x.shape[-2:]) for x in (a, b)]
        splits = [(math.prod(batch),)] + [(math.prod(batch[:k]), math.prod(batch[k:])) for k in range(1, len(batch))]
        for bshape in splits:
            try:
                for v in views:  # setting .shape refuses where a copy would be needed (any NumPy version)
                    v.view().shape = bshape + v.shape[-2:]
                return bshape
            except (AttributeError, ValueError):
                continue
        return splits[0]

    def _batched(self, x, bshape):
        """x (..., r, c) with the GEMM's batch dims: a matrix when its batch is one matrix (it broadcasts),
        else broadcast to the full batch (stride 0) and viewed as bshape (a copy only when _gemm_batch found
        no view)."""
        rc = x.shape[-2:]
        if math.prod(x.shape[:-2]) == 1:
            return x.reshape(rc)
        batch = self.batch
        if x.shape[:-2] != batch:
            x = self.xp.broadcast_to(x, batch + rc)
        return x if bshape == batch else x.reshape(bshape + rc)

    def _demote(self, y):
        if self.a_vec:
            y = y[..., 0, :]
        if self.b_vec:
            y = y[..., 0]
        return y

    def _grad_out(self, x, vec):
        """An empty gradient for operand x (its array as the GEMM saw it) in x's memory order, or None
        (then the GEMM allocates one in C order): when x is an input's own view, with all its batch
        dims, so that the gradient's layout undoes x's views in place."""
        if vec or x.ndim < 3 or x.shape[:-2] != self.batch or 0 in x.strides:
            return None
        strides = x.strides
        order = sorted(range(x.ndim), key=lambda i: -strides[i])  # stable: equal strides keep their order
        if order == list(range(x.ndim)):
            return None
        out = self.xp.empty([x.shape[i] for i in order], x.dtype)
        return out.transpose(np.argsort(order))

    def backward(self, g):
        B, a, b = self.backend, self.a, self.b
        M, K, N = self.M, self.K, self.N
        g = g.reshape(self.batch + (M, N))  # puts the 1-D operands' dims back
        if self.fold or not self.batch:
            g = g.reshape(math.prod(g.shape[:-1]), N)  # the rows of every batch, or the one matrix
        elif self.bshape != self.batch:
            g = g.reshape(self.bshape + (M, N))
        da = db = None
        if self.needs_input_grad[0]:
            out = None if self.fold else self._grad_out(a, self.a_vec)
            da = _shaped(B.matmul(g, b, trans_b=True, out=out), self.batch + (M, K))
        if self.needs_input_grad[1]:
            # folded, the sum over the batch of a_i^T g_i is (all rows of a)^T (all rows of g): one GEMM
            if self.fold:
                db = B.matmul(a, g, trans_a=True)
            else:
                db = _shaped(B.matmul(a, g, trans_a=True, out=self._grad_out(b, self.b_vec)), self.batch + (K, N))
        if da is not None and self.a_vec:
            da = da[..., 0, :]
        if db is not None and self.b_vec:
            db = db[..., 0]
        return da, db


def _shaped(x, shape):
    """x reshaped, or x itself when it has that shape (a fresh array stays one the engine may adopt)."""
    return x if x.shape == shape else x.reshape(shape)


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
