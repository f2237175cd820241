"""bfloat16 GEMM (float32 accumulation) and the float32 <-> bfloat16 conversions.

A bfloat16 value is the upper 16 bits of a float32. Arrays hold ``ml_dtypes.bfloat16``; the twins work on
the bits (``view(np.uint16)``) so that the rounding is stated here, not borrowed from a library:

- float32 -> bfloat16 rounds to nearest, ties to even: add 0x7FFF plus the lowest kept bit to the float32
  bits, keep the upper 16. NaN stays NaN (its upper bits, with the quiet bit 0x0040 set). Infinities and
  denormals follow the same arithmetic (never flushed); a value past the largest bfloat16 rounds to inf.
- bfloat16 -> float32 is exact: the 16 bits shifted into the upper half.
- GELU on bfloat16 (gelu_bf16_forward/backward) is the float32 GELU of the widened values, rounded once: the
  float32 result of activation.gelu_forward/backward converted as above (what the op did through float32).
- the GEMM widens both operands exactly, multiplies and sums in float64 here (the kernels sum in float32,
  in their own order, and the AMX/AVX512-BF16 paths treat float32 denormal products as zero: compare with a
  float32-rounding tolerance), then returns float32, or bfloat16 rounded as above.
"""
import numpy as np

from ... import _dtype as D

__all__ = ["matmul_bf16", "f32_to_bf16", "bf16_to_f32", "gelu_bf16_forward", "gelu_bf16_backward",
           "sum_rows_bf16"]

BF16 = D.BF16_NP


def _bits_to_bf16(f32):
    """float32 array -> uint16 bits of its bfloat16 rounding (nearest, ties to even)."""
    u = np.asarray(f32, dtype=np.float32, order="C").view(np.uint32)  # (0-d stays 0-d)
    nan = (u & np.uint32(0x7FFFFFFF)) > np.uint32(0x7F800000)
    rounded = (u + np.uint32(0x7FFF) + ((u >> np.uint32(16)) & np.uint32(1))) >> np.uint32(16)
    quiet = (u >> np.uint32(16)) | np.uint32(0x0040)
    return np.where(nan, quiet, rounded).astype(np.uint16)


def _widen(x):
    """bfloat16 array -> float32, exactly (bits shifted into the upper half)."""
    return (np.asarray(x, order="C").view(np.uint16).astype(np.uint32) << np.uint32(16)).view(np.float32)


def _check(op, name, x, dtype, what):
    if x.dtype != dtype:
        raise TypeError(f"{op}: {name} must be {what}, got {x.dtype}")


def f32_to_bf16(x, out=None):
    """bfloat16 of float32 ``x`` (same shape), rounded to nearest even; into ``out`` when given."""
    _check("f32_to_bf16", "x", x, np.float32, "float32")
    y = _bits_to_bf16(x).view(BF16)
    if out is not None:
        out[...] = y
        return out
    return y


def bf16_to_f32(x, out=None):
    """float32 of bfloat16 ``x`` (exact); into ``out`` when given."""
    _check("bf16_to_f32", "x", x, BF16, "bfloat16")
    y = _widen(x)
    if out is not None:
        out[...] = y
        return out
    return y


def matmul_bf16(a, b, trans_a=False, trans_b=False, out=None, accumulate=False, bf16_out=False, bias=None):
    """op(a) @ op(b) (+ out when accumulate) (+ bias) with bfloat16 a, b and float32 accumulation.

    a: (M, K) or (Ba, M, K)  [(K, M) / (Ba, K, M) when trans_a]
    b: (K, N) or (Bb, K, N)  [(N, K) / (Bb, N, K) when trans_b]; batches equal or 1 (broadcast)
    -> float32 (M, N) or (B, M, N); bfloat16 (rounded to nearest even) when bf16_out or out is bfloat16.
    out: float32 or bfloat16 of that shape (read first when accumulate, which needs it).
    bias: float32 (N,) or None, added to every row before the result is rounded.
    """
    op = "matmul_bf16"
    for name, x in (("a", a), ("b", b)):
        _check(op, name, x, BF16, "bfloat16")
        if x.ndim not in (2, 3):
            raise ValueError(f"{op}: {name} must be 2-D or 3-D, got shape {x.shape}")
    opa = np.swapaxes(a, -1, -2) if trans_a else a
    opb = np.swapaxes(b, -1, -2) if trans_b else b
    if opa.shape[-1] != opb.shape[-2]:
        raise ValueError(f"{op}: shapes do not match: a {a.shape} (trans_a={trans_a}) and b {b.shape} "
                         f"(trans_b={trans_b}) give K = {opa.shape[-1]} and {opb.shape[-2]}")
    if a.ndim == 3 and b.ndim == 3 and a.shape[0] != b.shape[0] and 1 not in (a.shape[0], b.shape[0]):
        raise ValueError(f"{op}: batch sizes do not match: a {a.shape}, b {b.shape}")
    c = np.matmul(_widen(opa).astype(np.float64), _widen(opb).astype(np.float64))
    if accumulate:
        if out is None:
            raise ValueError(f"{op}: accumulate=True needs out")
        prev = _widen(out) if out.dtype == BF16 else out
        c = c + prev.astype(np.float64)
    if bias is not None:
        _check(op, "bias", bias, np.float32, "float32")
        if bias.shape != (c.shape[-1],):
            raise ValueError(f"{op}: bias has shape {bias.shape}, expected ({c.shape[-1]},)")
        c = c + bias.astype(np.float64)
    c = c.astype(np.float32)
    if out is not None:
        if out.shape != c.shape:
            raise ValueError(f"{op}: out has shape {out.shape}, expected {c.shape}")
        out[...] = f32_to_bf16(c) if out.dtype == BF16 else c
        return out
    return f32_to_bf16(c) if bf16_out else c


def _gelu_tanh(approximate):
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return approximate


def gelu_bf16_forward(x, approximate="none"):
    """GELU of bfloat16 ``x``: the float32 GELU (activation.gelu_forward) of the widened values, rounded to
    bfloat16 (nearest even)."""
    from .activation import gelu_forward
    _check("gelu_bf16_forward", "x", x, BF16, "bfloat16")
    return f32_to_bf16(gelu_forward(_widen(x), _gelu_tanh(approximate)))


def gelu_bf16_backward(x, dy, approximate="none"):
    """dy * GELU'(x) for bfloat16 ``x``, ``dy`` (same shape): float32 (activation.gelu_backward), rounded."""
    from .activation import gelu_backward
    _check("gelu_bf16_backward", "x", x, BF16, "bfloat16")
    _check("gelu_bf16_backward", "dy", dy, BF16, "bfloat16")
    if x.shape != dy.shape:
        raise ValueError(f"gelu_bf16_backward: dy has shape {dy.shape}, expected {x.shape}")
    return f32_to_bf16(gelu_backward(_widen(x), _widen(dy), _gelu_tanh(approximate)))


def sum_rows_bf16(x):
    """out[j] = sum_r x[r, j] for a 2-D bfloat16 ``x``: float32 (cols,), summed in float64 (the bias gradient
    of a bfloat16 linear)."""
    _check("sum_rows_bf16", "x", x, BF16, "bfloat16")
    if x.ndim != 2:
        raise ValueError(f"sum_rows_bf16: x must be 2-D, got {x.ndim}-D")
    return np.sum(_widen(x), axis=0, dtype=np.float64).astype(np.float32)
