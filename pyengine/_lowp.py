"""Low-precision floats (bfloat16, float16): stored in 2 bytes, computed through float32 -- except matmul and
linear on bfloat16 tensors, which run on the bfloat16 GEMM (AMX / AVX512-BF16), and GELU, whose bfloat16
kernel widens and rounds inside (pyengine/amp/bf16_ops.py).

A bfloat16 tensor stores its values as ``ml_dtypes.bfloat16``, a float16 one as NumPy's float16. The
kernels compute in float32 or float64 only (and NumPy knows no bfloat16 arithmetic of its own), so

- every differentiable op (``Function.apply``) that receives a low-precision tensor runs as: each such
  input cast to float32 (``CastLowp``), the op in float32, each floating-point output cast back to the
  inputs' low-precision dtype -- unless the float inputs were of different dtypes (bfloat16 + float32 is
  float32, bfloat16 + float16 is float32: PyTorch's promotion), and then the float32 result stays;
- the public ops whose argument checks require a kernel dtype (``F.linear``, ``F.layer_norm``, the losses,
  ``softmax``, ``relu``...; ``_checks.KERNEL_OPS``) do the same around their whole body
  (``via_float32``, applied by ``tensor_op``).

The casts are graph nodes, so gradients flow as usual and arrive in the leaf's dtype. Results are the
float32 results rounded to the low-precision dtype once per op (PyTorch's CPU bfloat16/float16 ops mostly
accumulate in float32 too). View ops (reshape, transpose, indexing: ``returns_view``) run on the array as
it is, so views share memory as for every dtype. Cost: two extra passes per op (the casts, float32 <->
bfloat16 on the conversion kernels, rounding to nearest even); ``autocast`` (pyengine/amp) decides which
ops of a float32 model run in bfloat16.
"""
import functools

import numpy as np

from . import _dtype as D

BF16 = D.BF16_NP
_F16 = np.dtype(np.float16)
LOW = frozenset(d for d in (BF16, _F16) if d is not None)
_F32 = np.dtype(np.float32)


def has_low(args):
    """Whether any Tensor in ``args`` holds bfloat16 or float16 (what Function.apply asks before an op)."""
    for a in args:
        if isinstance(a, Tensor) and a._data.dtype in LOW:
            return True
    return False


def _up(a, floats):
    """``a`` in float32 if it is a low-precision Tensor (noting the float dtypes seen in ``floats``)."""
    if isinstance(a, Tensor):
        dt = a._data.dtype
        if dt in LOW:
            floats.add(dt)
            return CastLowp.apply(a, _F32)
        if D.is_float_np(dt):
            floats.add(dt)
    return a


def _down(out, floats):
    """The outputs of an upcast op, cast back to the one low-precision dtype of its float inputs."""
    if len(floats) != 1:
        return out  # mixed float dtypes: PyTorch promotes to the wider, float32 here
    (low,) = floats

    def back(o):
        return CastLowp.apply(o, low) if isinstance(o, Tensor) and o._data.dtype.kind == "f" else o
    if type(out) is tuple:
        return tuple(back(o) for o in out)
    if type(out) is list:
        return [back(o) for o in out]
    return back(out)


_direct = None  # {Function class: handler}: ops with bfloat16 kernels (pyengine/amp/bf16_ops.py)


def apply_upcast(cls, args):
    """Run Function ``cls`` on ``args`` with its low-precision inputs in float32, its float outputs cast back
    (or, for matmul on bfloat16 operands, on the bfloat16 GEMM: amp/bf16_ops.py)."""
    global _direct
    if cls.__name__ == "Cast" and len(args) == 2:  # ops' dtype conversion of a low-precision tensor
        return CastLowp.apply(*args)
    if _direct is None:
        from .amp.bf16_ops import direct_functions
        _direct = direct_functions()
    handler = _direct.get(cls)
    if handler is not None:
        out = handler(cls, args)
        if out is not None:
            return out
    floats = set()
    new = [_up(a, floats) for a in args]
    return _down(cls.apply(*new), floats)


def via_float32(fn):
    """``fn`` (a public op whose checks require float32/float64) computing through float32 when one of its
    Tensor arguments is bfloat16 or float16; one scan of the arguments otherwise. (``F.linear`` on bfloat16
    tensors alone runs on the bfloat16 GEMM instead, ``gelu`` of a bfloat16 tensor on its bfloat16 kernel:
    amp/bf16_ops.py.)"""
    qualname = f"{fn.__module__}.{fn.__name__}"
    linear = qualname == "pyengine.nn.functional.linear"
    gelu = qualname == "pyengine.ops.elementwise.gelu"

    @functools.wraps(fn)
    def op(*args, **kwargs):
        for a in args:
            if isinstance(a, Tensor) and a._data.dtype in LOW:
                break
        else:
            for a in kwargs.values():
                if isinstance(a, Tensor) and a._data.dtype in LOW:
                    break
            else:
                return fn(*args, **kwargs)
        if linear:
            from .amp.bf16_ops import linear_direct
            out = linear_direct(args, kwargs)
            if out is not None:
                return out
        elif gelu:
            from .amp.bf16_ops import gelu_direct
            out = gelu_direct(args, kwargs)
            if out is not None:
                return out
        floats = set()
        args = [_up(a, floats) for a in args]
        kwargs = {k: _up(v, floats) for k, v in kwargs.items()}
        return _down(fn(*args, **kwargs), floats)
    return op


# The functions above use CastLowp and Tensor at call time only, and are defined before this module imports
# autograd: tensor_op (pyengine/_checks.py) takes via_float32 from here while the ops are being defined, which
# can be while this module is still importing autograd (tensor -> _lowp -> autograd -> ops -> tensor_op).
from .autograd import Function  # noqa: E402


class CastLowp(Function):
    """y = x converted to another dtype, where x or y is bfloat16;  dx = g converted back (float to float).
    (ops.Cast's backward knows floats by NumPy's kind "f", which bfloat16 is not.)"""

    saves = ()
    lowp_native = True

    def forward(self, x, dtype):
        self.src = x.dtype
        return _convert(self.backend, x, dtype)

    def backward(self, g):
        return (_convert(self.backend, g, self.src) if D.is_float_np(self.src) else None), None


def _convert(B, x, dtype):
    """x.astype(dtype); float32 <-> bfloat16 on the conversion kernels (round to nearest even, as astype)."""
    if x.dtype == _F32 and dtype == BF16:
        return B.f32_to_bf16(x)
    if x.dtype == BF16 and dtype == _F32:
        return B.bf16_to_f32(x)
    return x.astype(dtype)


def cast(x, np_dtype):
    """``x`` in ``np_dtype`` (differentiable) when the source or the target is bfloat16."""
    return CastLowp.apply(x, np.dtype(np_dtype))


from .tensor import Tensor  # noqa: E402
