"""Compiled gemm kernels (csrc/cpu/gemm*.cpp); the specification is reference/gemm.py.

One call of the binding per op: it reads operands in place when their layout allows (a transposed
view flips the kernel's transpose flag), copies them otherwise, and writes ``out`` of any layout.
"""
from ._lib import _C

__all__ = ["matmul", "linear"]

linear = _C.linear


def matmul(a, b, trans_a=False, trans_b=False, alpha=1.0, beta=0.0, out=None):
    """_C.matmul (see there), every argument passed on by position: pybind11 matches keyword arguments by name on
    each call, ~0.5 us (a 64^3 product takes ~4 us; the op's backward passes trans_b= / out=), where Python's
    own call does it in ~0.05 us."""
    return _C.matmul(a, b, trans_a, trans_b, alpha, beta, out)
