"""Compiled gemm kernels (csrc/cpu/gemm*.cpp); the specification is reference/gemm.py.

``_C.gemm(a, b, c, trans_a, trans_b, alpha, beta, bias)`` takes 2-D or 3-D arrays (batch,
rows, cols) with a unit stride along one of the last two axes (a transposed view is passed
as is: the binding flips its transpose flag) and a batch of 1 or batch stride 0 for a
broadcast operand. This module maps NumPy's matmul semantics onto that: 1-D operands,
any number of batch dims (collapsed to one batch stride when the strides allow, else
materialised), ``out`` of any layout, and ``out`` aliasing an input. The common cases
(2-D or 3-D, ordinary layouts) go straight to the binding: this is on the hot path.
"""
import numpy as np

from ._lib import _C

__all__ = ["matmul", "linear"]

_gemm = _C.gemm
_linear = _C.linear
_fast_matmul = _C._matmul
_fast_linear = _C._linear
_ndarray = np.ndarray
_may_share = np.may_share_memory


def _passable(x):
    """True if the binding takes the matrix in x's last two axes as it is (mirrors bind_gemm.cpp)."""
    r, c = x.shape[-2:]
    sr, sc = x.strides[-2:]
    isz = x.itemsize
    if x.size == 0:
        return True
    if (c <= 1 or sc == isz) and (r <= 1 or (sr > 0 and sr % isz == 0)):
        return True
    return (r <= 1 or sr == isz) and (c <= 1 or (sc > 0 and sc % isz == 0))


def _matrix(x):
    return x if _passable(x) else np.ascontiguousarray(x)


def _batched(x, batch_shape, nbatch):
    """x as a 2-D array (broadcast over the batch) or a 3-D (nbatch, rows, cols) array."""
    xb = x.shape[:-2]
    if len(xb) == 0:
        return _matrix(x)
    if len(xb) == 1 and (xb[0] == nbatch or xb[0] == 1):
        # The common 3-D case; the binding broadcasts a batch of 1 itself.
        if x.strides[0] < 0:
            return np.ascontiguousarray(x)
        return _matrix(x)
    mat = x.shape[-2:]
    size = 1
    for d in xb:
        size *= d
    if size == 1:
        return _matrix(x.reshape(mat))
    # Batch dims without leading 1s equal the result's: reshape to one batch dim
    # (a view when the batch strides collapse, else NumPy copies).
    i = 0
    while i < len(xb) - 1 and xb[i] == 1:
        i += 1
    j = 0
    while j < len(batch_shape) - 1 and batch_shape[j] == 1:
        j += 1
    if xb[i:] == batch_shape[j:]:
        y = x.reshape((size,) + mat)
    else:
        # A broadcast that one batch stride cannot express: materialise it.
        y = np.ascontiguousarray(np.broadcast_to(x, tuple(batch_shape) + mat)).reshape((nbatch,) + mat)
    if y.ndim == 3 and y.shape[0] > 1 and y.strides[0] < 0:
        y = np.ascontiguousarray(y)
    return _matrix(y)


def _out_ok(out, nbatch):
    """True if the binding can write the result straight into ``out`` (2-D or 3-D view)."""
    if not out.flags.writeable or not _passable(out):
        return False
    r, c = out.shape[-2:]
    sr, sc = out.strides[-2:]
    if sc == out.itemsize or c <= 1:  # rows of out must not overlap
        if r > 1 and sr < c * out.itemsize:
            return False
    elif c > 1 and sc < r * out.itemsize:
        return False
    if out.ndim == 3 and nbatch > 1:
        span = max(sr * (r - 1) + sc * (c - 1), 0) + out.itemsize
        if out.strides[0] < span:
            return False
    return True


def _gemm_into(a, b, out, trans_a, trans_b, alpha, beta, nbatch):
    """Runs the binding with ``out`` (2-D or 3-D), through a temporary when out cannot be passed."""
    if _out_ok(out, nbatch) and not _may_share(out, a) and not _may_share(out, b):
        _gemm(a, b, out, trans_a, trans_b, alpha, beta)
        return
    tmp = np.array(out, order="C") if beta != 0.0 else np.empty(out.shape, out.dtype)
    _gemm(a, b, tmp, trans_a, trans_b, alpha, beta)
    out[...] = tmp


def matmul(a, b, trans_a=False, trans_b=False, alpha=1.0, beta=0.0, out=None):
    """Batched GEMM: alpha * op(a) @ op(b) + beta * out (see reference/gemm.py).

    a: (..., M, K), or (..., K, M) when ``trans_a``
    b: (..., K, N), or (..., N, K) when ``trans_b``
    out: (..., M, N) or None; required when ``beta != 0`` (read, then overwritten)
    float32 or float64 only, both the same dtype.
    """
    if beta != 0.0 and out is None:
        raise ValueError("matmul: beta != 0 needs out")
    # One C++ call for 2-D/3-D arrays in layouts the kernel takes as they are.
    res = _fast_matmul(a, b, trans_a, trans_b, alpha, beta, out)
    if res is not None:
        return res
    if type(a) is not _ndarray:
        a = np.asarray(a)
    if type(b) is not _ndarray:
        b = np.asarray(b)
    return _matmul_general(a, b, trans_a, trans_b, alpha, beta, out)


def _matmul_general(a, b, trans_a, trans_b, alpha, beta, out):
    nda = a.ndim
    ndb = b.ndim
    if nda == 0 or ndb == 0:
        raise ValueError(f"matmul: operands must be at least 1-D, got a {a.shape} and b {b.shape}")
    vec_a = nda == 1
    vec_b = ndb == 1
    if (vec_a and trans_a) or (vec_b and trans_b):
        raise ValueError(f"matmul: cannot transpose a 1-D operand (a {a.shape}, b {b.shape})")
    if vec_a:
        a = a[None, :]  # (1, K)
    if vec_b:
        b = b[:, None]  # (K, 1)
    M = a.shape[-1] if trans_a else a.shape[-2]
    K = a.shape[-2] if trans_a else a.shape[-1]
    Kb = b.shape[-1] if trans_b else b.shape[-2]
    N = b.shape[-2] if trans_b else b.shape[-1]
    if K != Kb:
        raise ValueError(f"matmul: shapes do not match: a {a.shape} (trans_a={trans_a}) and b {b.shape} "
                         f"(trans_b={trans_b}) give K = {K} and {Kb}")
    try:
        batch_shape = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    except ValueError:
        raise ValueError(f"matmul: batch dims of a {a.shape} and b {b.shape} do not broadcast") from None

    # The result's shape as NumPy gives it (1-D operands drop their matrix dim).
    res_shape = tuple(batch_shape) + ((M,) if not vec_a else ()) + ((N,) if not vec_b else ())
    if out is not None:
        if type(out) is not _ndarray:
            raise TypeError(f"matmul: out must be a numpy array, got {type(out).__name__}")
        if out.dtype != a.dtype:
            raise TypeError(f"matmul: out ({out.dtype}) must have the dtype of a ({a.dtype})")
        mat_nd = 2 - vec_a - vec_b
        if out.ndim < mat_nd or out.shape[out.ndim - mat_nd:] != res_shape[len(res_shape) - mat_nd:]:
            raise ValueError(f"matmul: out has shape {out.shape}, expected {res_shape}")
        out_batch = out.shape[:out.ndim - mat_nd]
        try:
            full = np.broadcast_shapes(batch_shape, out_batch)
        except ValueError:
            full = None
        # The result must broadcast into out (as in ``out[...] = result``).
        extra = None if full is None else len(full) - len(out_batch)
        if full is None or full[extra:] != out_batch or any(d != 1 for d in full[:extra]):
            raise ValueError(f"matmul: out has shape {out.shape}, expected {res_shape}")
        batch_shape = out_batch
    nbatch = 1
    for d in batch_shape:
        nbatch *= d

    a3 = _batched(a, batch_shape, nbatch)
    b3 = _batched(b, batch_shape, nbatch)
    if out is None:
        res = np.empty(tuple(batch_shape) + (M, N), dtype=a.dtype)
        c3 = res.reshape((nbatch, M, N)) if len(batch_shape) != 1 else res
        _gemm(a3, b3, c3, trans_a, trans_b, alpha, beta)
        return res.reshape(res_shape)[()] if not res_shape else res.reshape(res_shape)

    # Write into out: view it as (nbatch, M, N) (or (M, N)) without copying when possible.
    ov = out
    if vec_a:
        ov = ov[..., None, :]
    if vec_b:
        ov = ov[..., :, None]
    if nbatch == 1:
        c3 = ov.reshape((M, N))
    else:
        c3 = ov.reshape((nbatch, M, N))
    if not _may_share(c3, out):  # reshape had to copy: go through a temporary
        tmp = np.array(c3, order="C") if beta != 0.0 else np.empty(c3.shape, c3.dtype)
        _gemm(a3, b3, tmp, trans_a, trans_b, alpha, beta)
        ov[...] = tmp.reshape(ov.shape)
        return out
    _gemm_into(a3, b3, c3, trans_a, trans_b, alpha, beta, nbatch)
    return out


def linear(x, weight, bias=None):
    """y = x @ weight.T + bias, the bias added in the GEMM epilogue (see reference/gemm.py).

    x: (N, IN) (or (..., IN), or (IN,))   weight: (OUT, IN)   bias: (OUT,) or None   ->   y: (N, OUT)
    """
    y = _fast_linear(x, weight, bias)
    if y is not None:
        return y
    if type(x) is not _ndarray:
        x = np.asarray(x)
    if type(weight) is not _ndarray:
        weight = np.asarray(weight)
    if weight.ndim != 2:
        raise ValueError(f"linear: weight must be 2-D (OUT, IN), got shape {weight.shape}")
    if x.ndim == 0:
        raise ValueError("linear: x must be at least 1-D")
    out_features = weight.shape[0]
    if bias is not None:
        if type(bias) is not _ndarray:
            bias = np.asarray(bias)
        if bias.ndim != 1 or bias.shape[0] != out_features:
            # Not a per-feature vector: NumPy's broadcasting, outside the kernel.
            return linear(x, weight) + bias
        bias = np.ascontiguousarray(bias)
    weight = _matrix(weight)
    lead = x.shape[:-1]
    rows = 1
    for d in lead:
        rows *= d
    x2 = _matrix(x.reshape((rows, x.shape[-1])))
    y = np.empty((x2.shape[0], out_features), dtype=x.dtype)
    _linear(x2, weight, bias, y)
    return y.reshape(lead + (out_features,))
