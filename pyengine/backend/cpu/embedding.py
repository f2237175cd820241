"""Compiled embedding kernels (csrc/cpu/embedding*.cpp); the specification is reference/embedding.py.

Same signatures and return conventions as the reference. Inputs are made C-contiguous here;
outputs are allocated here (np.empty: the kernels write every element) and filled by the kernels.
Integer indices of another width are converted to int64; anything else raises TypeError.
"""
import operator

import numpy as np

from ._lib import _C

__all__ = ["embedding_forward", "embedding_backward"]

_emb_fwd = _C.embedding_forward
_emb_bwd = _C.embedding_backward
_contig = np.ascontiguousarray
_empty = np.empty
_INT64 = np.dtype(np.int64)


def _as_indices(indices):
    indices = _contig(indices)
    if indices.dtype is not _INT64 and indices.dtype.kind in "iu":
        indices = indices.astype(_INT64)  # the kernel takes int64 (also fixes byte order)
    return indices


def embedding_forward(weight, indices):
    """out[n] = weight[indices[n]].   weight: (V, C)   indices: (N,) int64   ->   (N, C)

    Indices of any shape work as in the reference (weight[indices]): the output is
    indices.shape + (C,).
    """
    weight = _contig(weight)
    indices = _as_indices(indices)
    c = weight.shape[-1] if weight.ndim else 0  # the binding rejects weight.ndim != 2
    out = _empty(indices.shape + (c,), weight.dtype)
    if indices.ndim == 1:
        _emb_fwd(weight, indices, out)
    else:
        _emb_fwd(weight, indices.reshape(-1), out.reshape(-1, c))
    return out


def embedding_backward(dout, indices, num_embeddings, padding_idx=None):
    """dweight[v] = sum over n with indices[n] == v of dout[n]; repeated indices accumulate.

    dout: (N, C)   indices: (N,) int64   ->   dweight: (num_embeddings, C)
    The row at padding_idx (if given; negative counts from the end) receives no gradient.
    Indices of more dims with dout of shape indices.shape + (C,) are flattened.
    """
    dout = _contig(dout)
    indices = _as_indices(indices)
    if indices.ndim != 1 and dout.ndim == indices.ndim + 1:
        dout = dout.reshape(-1, dout.shape[-1])
        indices = indices.reshape(-1)
    if padding_idx is not None:
        padding_idx = operator.index(padding_idx)
    c = dout.shape[-1] if dout.ndim else 0
    dweight = _empty((operator.index(num_embeddings), c), dout.dtype)
    _emb_bwd(dout, indices, padding_idx, dweight)
    return dweight
