"""Compiled gemm kernels (csrc/cpu/gemm*.cpp); the specification is reference/gemm.py.

One call of the binding per op: it reads operands in place when their layout allows (a transposed
view flips the kernel's transpose flag), copies them otherwise, and writes ``out`` of any layout.
"""
from ._lib import _C

__all__ = ["matmul", "linear"]

matmul = _C.matmul
linear = _C.linear
