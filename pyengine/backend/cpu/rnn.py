"""Compiled rnn kernels (csrc/cpu/rnn.cpp: GRU and Elman RNN recurrences); the specification is
reference/rnn.py.

Same signatures as the reference twins: arrays are written in place and returned. The binding checks
dtypes, shapes, batch sizes and contiguity; the arrays that are only read (weights, biases, output
gradients, batch sizes) are made contiguous here.
"""
import numpy as np

from ._lib import _C

__all__ = ["gru_sequence_forward", "gru_sequence_backward", "rnn_sequence_forward", "rnn_sequence_backward"]

_c = np.ascontiguousarray


def _opt(a):
    """An optional read-only array (a backward's dH): None stays None."""
    return None if a is None else _c(a)


def gru_sequence_forward(G, Q, w_hh, b_hn, Hs, batch_sizes):
    """One GRU layer over all packed steps in one kernel call (in place). Returns (G, Q, Hs)."""
    _C.gru_sequence_forward(G, Q, _c(w_hh), _c(b_hn), Hs, _c(batch_sizes))
    return G, Q, Hs


def gru_sequence_backward(G, Q, w_hh, Hs, dH, dh, dG, dGh, batch_sizes):
    """Backward of gru_sequence_forward (in place; dH None: no output gradient). Returns (dG, dGh, dh)."""
    _C.gru_sequence_backward(G, Q, _c(w_hh), Hs, _opt(dH), dh, dG, dGh, _c(batch_sizes))
    return dG, dGh, dh


def rnn_sequence_forward(G, w_hh, Hs, batch_sizes, nonlinearity="tanh"):
    """One Elman RNN layer over all packed steps in one kernel call (in place). Returns (G, Hs)."""
    _C.rnn_sequence_forward(G, _c(w_hh), Hs, _c(batch_sizes), nonlinearity)
    return G, Hs


def rnn_sequence_backward(w_hh, Hs, dH, dh, dG, batch_sizes, nonlinearity="tanh"):
    """Backward of rnn_sequence_forward (in place; dH None: no output gradient). Returns (dG, dh)."""
    _C.rnn_sequence_backward(_c(w_hh), Hs, _opt(dH), dh, dG, _c(batch_sizes), nonlinearity)
    return dG, dh
