"""bfloat16 matmul and linear on the bfloat16 GEMM kernel (backend ``matmul_bf16``), and GELU on its bfloat16
kernel (``gelu_bf16_forward``), instead of through float32.

Every other op on bfloat16 tensors computes through float32 (pyengine/_lowp.py). These two are where the
time goes in a model, and the CPU has bfloat16 dot products (AMX tiles, AVX512-BF16), so when *every*
floating input of ``a @ b`` / ``matmul`` / ``mm`` / ``bmm`` or ``F.linear`` is bfloat16, _lowp hands the
call to ``MatMulBf16`` / ``LinearBf16`` here:

- forward: the products summed in float32 by the kernel, the result rounded once to bfloat16 (nearest even);
  linear's bias is added in float32 before that rounding (in the kernel, as each block finishes);
- backward: dA = g B^T and dB = A^T g on the same kernel, each rounded once to bfloat16 (the inputs'
  dtype, as PyTorch's bfloat16 grads); linear's db sums g's rows in float32, then rounds.

GELU on a bfloat16 tensor (``gelu`` / ``F.gelu`` / ``nn.GELU``) runs as ``GeluBf16``: the float32 GELU of
spans of the input inside the kernel, rounded once, so its results are those of the float32 path bit for bit
at a third of the memory traffic.

Under ``autocast("cpu", dtype=bfloat16)`` (autocast_mode.py) float32 operands are cast to bfloat16 first and
land here too; the casts are graph nodes, so float32 parameters get float32 gradients. F.linear with a float32
weight there is one node instead, ``LinearAutocastBf16``: the casts inside it (the weight's cached per region),
its float32 gradients taken from the GEMM's float32 sums directly (two passes fewer per operand, no rounding).
"""
import math

import numpy as np

from .. import _dtype as D
from ..autograd import Function
from ..ops.linalg import matmul_shapes

BF16 = D.BF16_NP


class MatMulBf16(Function):
    """y = a @ b for bfloat16 a, b with NumPy's rules (1-D promotion, broadcast batch dims).

    a: (..., M, K)  b: (..., K, N)  ->  y: (..., M, N) bfloat16;  da = g b^T,  db = a^T g (the engine sums
    each over the batch dims broadcasting added). The kernel takes 2-D or 3-D operands: batch dims are
    merged into one (a copy only where a reshape cannot view them); a's batch is folded into its rows when
    b is one matrix.
    """

    saves = (0, 1)
    fresh_grads = True
    lowp_native = True

    def forward(self, a, b):
        a2, b2, batch = matmul_shapes(self, a, b)  # NumPy's rules, as MatMul
        M, K, N = self.M, self.K, self.N
        self.fold = a2.ndim > 2 and math.prod(b2.shape[:-2]) == 1
        if self.fold:
            self.a, self.b = a2.reshape(math.prod(a2.shape[:-1]), K), b2.reshape(K, N)
        elif batch:
            self.a, self.b = self._batched(a2), self._batched(b2)
        else:
            self.a, self.b = a2, b2
        y = self.backend.matmul_bf16(self.a, self.b, bf16_out=True)
        return self._demote(y.reshape(batch + (M, N)))

    def _batched(self, x):
        """x (..., r, c) as the kernel takes it: 2-D when its batch is one matrix (it broadcasts), else
        (prod(batch), r, c), broadcast to the full batch first."""
        rc = x.shape[-2:]
        if math.prod(x.shape[:-2]) == 1:
            return x.reshape(rc)
        if x.shape[:-2] != self.batch:
            x = self.xp.broadcast_to(x, self.batch + rc)
        return x.reshape((math.prod(self.batch),) + rc)

    def _demote(self, y):
        if self.a_vec:
            y = y[..., 0, :]
        if self.b_vec:
            y = y[..., 0]
        return y

    def backward(self, g):
        B, a, b = self.backend, self.a, self.b
        M, K, N = self.M, self.K, self.N
        g = g.reshape(self.batch + (M, N))
        if self.fold or not self.batch:
            g = g.reshape(math.prod(g.shape[:-1]), N)
        else:
            g = g.reshape((math.prod(self.batch), M, N))
        da = db = None
        if self.needs_input_grad[0]:
            da = B.matmul_bf16(g, b, trans_b=True, bf16_out=True).reshape(self.batch + (M, K))
        if self.needs_input_grad[1]:
            db = B.matmul_bf16(a, g, trans_a=True, bf16_out=True)
            if not self.fold:
                db = db.reshape(self.batch + (K, N))
        if da is not None and self.a_vec:
            da = da[..., 0, :]
        if db is not None and self.b_vec:
            db = db[..., 0]
        return da, db


class LinearBf16(Function):
    """y = x W^T + b for bfloat16 x, W, b: one GEMM summed in float32, the bias added in float32, one rounding.

    x: (*, IN)  W: (OUT, IN)  b: (OUT,) or None  ->  y: (*, OUT);  dx = g W,  dW = g^T x,  db = sum_N g.
    """

    saves = (0, 1)
    fresh_grads = True
    lowp_native = True

    def forward(self, x, weight, bias):
        B = self.backend
        self.x_shape, self.weight = x.shape, weight
        self.x2 = x2 = x.reshape(math.prod(x.shape[:-1]), x.shape[-1])
        y = B.matmul_bf16(x2, weight, trans_b=True, bf16_out=True,
                          bias=None if bias is None else B.bf16_to_f32(bias))
        return y.reshape(x.shape[:-1] + (weight.shape[0],))

    def backward(self, g):
        B, n = self.backend, self.needs_input_grad
        x2 = self.x2
        g2 = g.reshape(x2.shape[0], g.shape[-1])
        dx = B.matmul_bf16(g2, self.weight, bf16_out=True).reshape(self.x_shape) if n[0] else None
        dw = B.matmul_bf16(g2, x2, trans_a=True, bf16_out=True) if n[1] else None
        db = B.f32_to_bf16(B.sum_rows_bf16(g2)) if n[2] else None
        return dx, dw, db


class LinearAutocastBf16(Function):
    """F.linear under autocast(bfloat16) with a float32 weight (a parameter: fp32 master weights): y = x W^T + b
    as LinearBf16 computes it -- x and W rounded to bfloat16 (nearest even), the bias rounded to bfloat16 and
    added in float32, one rounding of the result -- with the casts inside this one node instead of a cast node
    per operand.

    x: (*, IN) float32, or bfloat16 (LinearAutocastBf16X)   W: (OUT, IN) float32   b: (OUT,) float32 or None
    -> y: (*, OUT) bfloat16.  Backward: dx = g W16, dW = g^T x16, db = sum_N g, each summed in float32 and
    returned in its input's dtype: a float32 gradient is the float32 sum itself (the unfused graph would round
    it to bfloat16 and widen it back: two passes, and 8 bits of the sum lost), a bfloat16 one rounded once.
    ``w16``: W's bfloat16 array (autocast_mode._weight_bf16: cast once per region and weight version).
    """

    saves = ()  # backward reads its own bfloat16 copies (x16, w16), not the inputs
    fresh_grads = True
    lowp_native = True

    def forward(self, x, weight, bias, w16):
        B = self.backend
        self.x_shape, self.x_dtype, self.w16 = x.shape, x.dtype, w16
        x2 = x.reshape(math.prod(x.shape[:-1]), x.shape[-1])
        self.x16 = x2 if x2.dtype == BF16 else B.f32_to_bf16(self.xp.ascontiguousarray(x2))
        b32 = None if bias is None else B.bf16_to_f32(B.f32_to_bf16(bias))
        y = B.matmul_bf16(self.x16, w16, trans_b=True, bf16_out=True, bias=b32)
        return y.reshape(x.shape[:-1] + (weight.shape[0],))

    def backward(self, g):
        B, n, x16 = self.backend, self.needs_input_grad, self.x16
        if g.dtype != BF16:  # a float32 gradient (mixed use downstream): rounded as its cast would round it
            g = B.f32_to_bf16(self.xp.ascontiguousarray(g, dtype=np.float32))
        g2 = g.reshape(x16.shape[0], g.shape[-1])
        dx = None
        if n[0]:
            dx = B.matmul_bf16(g2, self.w16, bf16_out=self.x_dtype == BF16).reshape(self.x_shape)
        dw = B.matmul_bf16(g2, x16, trans_a=True) if n[1] else None
        db = B.sum_rows_bf16(g2) if n[2] else None
        return dx, dw, db, None


class LinearAutocastBf16X(LinearAutocastBf16):
    """LinearAutocastBf16 for a bfloat16 x: its backward reads x's own array (dW = g^T x)."""

    saves = (0,)


class GeluBf16(Function):
    """y = GELU(x) for a bfloat16 x ('none': x Phi(x); 'tanh': the tanh form), computed in float32 spans inside
    the kernel and rounded once: the same bits as through float32 (widen, float32 GELU, round), without the two
    float32 arrays (the MLP of a model under autocast: bfloat16 linear -> GELU -> bfloat16 linear).

    x: any shape, bfloat16  ->  y: bfloat16;  dx = g * GELU'(x) in float32, rounded once.
    """

    saves = (0,)
    fresh_grads = True
    lowp_native = True

    def forward(self, x, approximate):
        self.x, self.approximate = x, approximate
        return self.backend.gelu_bf16_forward(x, approximate)

    def backward(self, g):
        B = self.backend
        if g.dtype != BF16:  # a float32 gradient (mixed use downstream): rounded as its cast would round it
            g = B.f32_to_bf16(self.xp.ascontiguousarray(g, dtype=np.float32))
        return B.gelu_bf16_backward(self.x, g, self.approximate), None


def _all_bf16(tensors):
    from ..tensor import Tensor
    return all(isinstance(t, Tensor) and t._data.dtype == BF16 for t in tensors)


def matmul_direct(cls, args):
    """MatMul's call on bfloat16 operands, on the bfloat16 kernel; None when it does not apply."""
    if len(args) == 2 and _all_bf16(args):
        return MatMulBf16.apply(*args)
    return None


def _linear_args(args, kwargs):
    """(input, weight, bias) of a call F.linear(*args, **kwargs); (None, None, None) for other arguments."""
    names = ("input", "weight", "bias")
    if len(args) > 3 or any(k not in names for k in kwargs):
        return None, None, None
    vals = dict(zip(names, args))
    vals.update(kwargs)
    return vals.get("input"), vals.get("weight"), vals.get("bias")


def linear_direct(args, kwargs):
    """F.linear(input, weight, bias=None) on bfloat16 tensors, on the bfloat16 kernel; None when it does not
    apply (another dtype among them, or shapes that the op's own checks must refuse with its message)."""
    from ..tensor import Tensor
    x, w, bias = _linear_args(args, kwargs)
    if not _all_bf16([x, w] + ([] if bias is None else [bias])):
        return None
    if w.ndim != 2 or x.ndim == 0 or x.shape[-1] != w.shape[1]:
        return None
    if bias is not None and (not isinstance(bias, Tensor) or tuple(bias.shape) != (w.shape[0],)):
        return None
    return LinearBf16.apply(x, w, bias)


def linear_autocast(args, kwargs, weight_bf16):
    """F.linear(input, weight, bias=None) inside autocast(bfloat16) as one LinearAutocastBf16 node, when the
    weight (and bias) are float32 and the input float32 or bfloat16; None otherwise (the op's own path: casts,
    then LinearBf16 or the checks' errors). ``weight_bf16(w)``: W's bfloat16 array (cached per region)."""
    from ..tensor import Tensor
    x, w, bias = _linear_args(args, kwargs)
    F32 = np.dtype(np.float32)
    if not (isinstance(x, Tensor) and isinstance(w, Tensor) and x._data.dtype in (F32, BF16)
            and w._data.dtype == F32):
        return None
    if w.ndim != 2 or x.ndim == 0 or x.shape[-1] != w.shape[1]:
        return None
    if bias is not None and (not isinstance(bias, Tensor) or bias._data.dtype != F32
                             or tuple(bias.shape) != (w.shape[0],)):
        return None
    cls = LinearAutocastBf16X if x._data.dtype == BF16 else LinearAutocastBf16
    return cls.apply(x, w, bias, weight_bf16(w))


def gelu_direct(args, kwargs):
    """gelu(x, approximate="none") on a bfloat16 tensor, on the bfloat16 GELU kernel; None when it does not
    apply (another dtype, or arguments that the op's own checks must refuse with its message)."""
    names = ("x", "approximate")
    if len(args) > 2 or any(k not in names for k in kwargs):
        return None
    vals = dict(zip(names, args))
    vals.update(kwargs)
    x, approximate = vals.get("x"), vals.get("approximate", "none")
    if not _all_bf16([x]) or not isinstance(approximate, str) or approximate not in ("none", "tanh"):
        return None
    return GeluBf16.apply(x, approximate)


def direct_functions():
    """{Function class: handler(cls, args)} for _lowp.apply_upcast."""
    from ..ops.linalg import MatMul
    return {MatMul: matmul_direct}
