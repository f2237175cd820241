"""Differentiable operations. Each is a Function (forward + backward side by side) in one of:

elementwise.py  arithmetic with broadcasting, unary math, activations, comparisons
reduction.py    sum/mean/var/max/min/logsumexp, softmax, argmax, topk
statistics.py   cumsum/cumprod/prod, median/kthvalue/mode; unique, bincount, histc, searchsorted (no grad)
shape.py        views, cat/stack/split, indexing, gather, tril/triu, one_hot, multinomial, narrow, roll,
                repeat/tile/repeat_interleave, unfold, meshgrid, diff, diag/diagonal/trace, kron
indexing.py     index_select/add/copy/fill, scatter/scatter_add, masked_select/scatter, take(_along_dim)
linalg.py       matmul on the GEMM kernel; einsum, addmm/baddbmm/addbmm/addmv, mv, outer, cross, norms, cdist
"""
from .elementwise import (abs, add, allclose, arctan2, atan2, cast, ceil, celu, clamp, clamp_max,  # noqa: F401
                          clamp_min, clip, cos, div, elu, eq, equal, exp, expm1, fix, floor, fmod, frac, ge, gelu, gt,
                          hardsigmoid, hardswish, hardtanh, hypot, isclose, isfinite, isinf, isnan, le, lerp, log,
                          log1p, log2, log10, logaddexp, logical_and, logical_not, logical_or, logical_xor,
                          logsigmoid, lt, maximum, minimum, mish, mul, nan_to_num, ne, neg, pow, reciprocal, relu,
                          relu6, remainder, round, rsqrt, selu, sigmoid, sign, silu, sin, softplus, softsign, sqrt, sub, tanh,
                          tanhshrink, trunc, where)
from .indexing import (index_add, index_copy, index_fill, index_select, masked_scatter, masked_select,  # noqa: F401
                       scatter, scatter_add, take, take_along_dim)
from .linalg import (addbmm, addmm, addmv, baddbmm, bmm, cdist, cross, dot, einsum, ger, inner, matmul, mm, mv,  # noqa: F401
                     norm, outer)
from .reduction import (all, amax, amin, any, argmax, argmin, argsort, count_nonzero,  # noqa: F401
                        log_softmax, logsumexp, max, mean, min, softmax, sort, std, sum, topk, var)
from .shape import (broadcast_to, cat, chunk, clone, concat, concatenate, contiguous, diag, diagonal,  # noqa: F401
                    diff, expand, expand_as, flatten, flip, gather, getitem, kron, masked_fill, meshgrid, movedim,
                    moveaxis, multinomial, narrow, one_hot, permute, repeat, repeat_interleave, reshape, roll,
                    setitem, split, squeeze, stack, t, tile, trace, transpose, tril, triu, unbind, unflatten, unfold,
                    unsqueeze, view)
from .statistics import (bincount, bucketize, cumprod, cumsum, histc, kthvalue, median, mode,  # noqa: F401
                         nanmedian, prod, searchsorted, unique)

# what `from pyengine.ops import *` (and so `pyengine.*`) exports: the functions, not the Function classes
__all__ = [n for n in dir() if not n.startswith("_") and n not in ("elementwise", "linalg", "reduction", "shape",
                                                                    "cast", "indexing", "statistics", "inplace")]
