"""Differentiable operations. Each is a Function (forward + backward side by side) in one of:

elementwise.py  arithmetic with broadcasting, unary math, activations, comparisons
reduction.py    sum/mean/var/max/min/logsumexp, softmax, argmax, topk
shape.py        views, cat/stack/split, indexing, gather, tril/triu, one_hot, multinomial
linalg.py       matmul on the GEMM kernel
"""
from .elementwise import (abs, add, allclose, cast, ceil, clamp, clip, cos, div, eq,  # noqa: F401
                          equal, exp, floor, ge, gelu, gt, isfinite, isinf, isnan, le, log, logical_and,
                          logical_not, logical_or, logical_xor, lt, maximum, minimum, mul, ne, neg, pow, relu,
                          round, rsqrt, sigmoid, sign, silu, sin, sqrt, sub, tanh, where)
from .linalg import bmm, dot, matmul, mm  # noqa: F401
from .reduction import (all, amax, amin, any, argmax, argmin, argsort, count_nonzero, cumsum,  # noqa: F401
                        log_softmax, logsumexp, max, mean, min, prod, softmax, sort, std, sum, topk, var)
from .shape import (broadcast_to, cat, chunk, clone, concat, concatenate, contiguous, expand, expand_as,  # noqa: F401
                    flatten, flip, gather, getitem, masked_fill, multinomial, one_hot, permute, repeat_interleave,
                    reshape, setitem, split, squeeze, stack, t, transpose, tril, triu, unbind, unflatten,
                    unsqueeze, view)

# what `from pyengine.ops import *` (and so `pyengine.*`) exports: the functions, not the Function classes
__all__ = [n for n in dir() if not n.startswith("_") and n not in ("elementwise", "linalg", "reduction", "shape",
                                                                    "cast")]
