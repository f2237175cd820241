"""Compiled bfloat16 GEMM and conversions (csrc/cpu/gemm_bf16.cpp); the specification is
reference/gemm_bf16.py.

``path()`` names the kernel in use ('amx', 'avx512bf16' or 'generic'), ``supported_path()`` the best this
machine allows (AMX needs the CPU flags and the OS's permission for the tile state, asked for once);
``set_path(name)`` (or PYENGINE_BF16_PATH) caps it so that tests cover every path. A forced ISA below
avx512 (PYENGINE_ISA, ``_C.set_isa``) means the generic path.
"""
from ._lib import _C

__all__ = ["matmul_bf16", "f32_to_bf16", "bf16_to_f32"]

matmul_bf16 = _C.matmul_bf16
f32_to_bf16 = _C.f32_to_bf16
bf16_to_f32 = _C.bf16_to_f32
path = _C.bf16_path
supported_path = _C.bf16_path_supported
set_path = _C.set_bf16_path
