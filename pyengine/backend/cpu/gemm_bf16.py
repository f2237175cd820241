"""Compiled bfloat16 GEMM and conversions (csrc/cpu/gemm_bf16.cpp), GELU on bfloat16 (activation_bf16.cpp); the specification is
reference/gemm_bf16.py.

``path()`` names the kernel in use ('amx', 'avx512bf16' or 'generic'), ``supported_path()`` the best this
machine allows (AMX needs the CPU flags and the OS's permission for the tile state, asked for once);
``set_path(name)`` (or PYENGINE_BF16_PATH) caps it so that tests cover every path. A forced ISA below
avx512 (PYENGINE_ISA, ``_C.set_isa``) means the generic path.
"""
from ._lib import _C
from .activation import _is_tanh  # gelu's approximate= check, one place for both GELUs

__all__ = ["matmul_bf16", "f32_to_bf16", "bf16_to_f32", "gelu_bf16_forward", "gelu_bf16_backward",
           "sum_rows_bf16"]

matmul_bf16 = _C.matmul_bf16
f32_to_bf16 = _C.f32_to_bf16
bf16_to_f32 = _C.bf16_to_f32
sum_rows_bf16 = _C.sum_rows_bf16


def gelu_bf16_forward(x, approximate="none"):
    """GELU of bfloat16 x in float32 spans, rounded once (csrc/cpu/activation_bf16.cpp)."""
    return _C.gelu_bf16_forward(x, _is_tanh(approximate))


def gelu_bf16_backward(x, dy, approximate="none"):
    """dy * GELU'(x) for bfloat16 x, dy, in float32 spans, rounded once."""
    return _C.gelu_bf16_backward(x, dy, _is_tanh(approximate))


path = _C.bf16_path
supported_path = _C.bf16_path_supported
set_path = _C.set_bf16_path
