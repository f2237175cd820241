"""Embedding lookup and its scatter-add backward."""
import numpy as np

__all__ = ["embedding_forward", "embedding_backward"]


def _check_indices(indices, num_embeddings):
    if indices.size and (indices.min() < 0 or indices.max() >= num_embeddings):
        bad = indices[(indices < 0) | (indices >= num_embeddings)][0]
        raise IndexError(f"embedding: index {int(bad)} is out of range for {num_embeddings} embeddings")


def embedding_forward(weight, indices):
    """out[n] = weight[indices[n]].   weight: (V, C)   indices: (N,) int64   ->   (N, C)"""
    _check_indices(indices, weight.shape[0])
    return weight[indices]


def embedding_backward(dout, indices, num_embeddings, padding_idx=None):
    """dweight[v] = sum over n with indices[n] == v of dout[n]; repeated indices accumulate.

    dout: (N, C)   indices: (N,) int64   ->   dweight: (num_embeddings, C)
    The row at padding_idx (if given) receives no gradient.
    """
    _check_indices(indices, num_embeddings)
    dweight = np.zeros((num_embeddings, dout.shape[1]), dtype=dout.dtype)
    np.add.at(dweight, indices, dout)
    if padding_idx is not None:
        dweight[padding_idx] = 0
    return dweight
