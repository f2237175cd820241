"""Compiled lstm kernels (csrc/cpu/lstm.cpp); the specification is reference/lstm.py.

Same signatures as the reference twins: arrays are written in place and returned. The binding
checks dtypes (float32/float64, all equal), shapes, batch sizes and contiguity; the arrays that are
only read (weights, output gradients, batch sizes) are made contiguous here.
"""
import numpy as np

from ._lib import _C
from .rnn import _opt

__all__ = ["lstm_cell_forward", "lstm_cell_backward", "lstm_sequence_forward", "lstm_sequence_backward"]

_forward = _C.lstm_cell_forward
_backward = _C.lstm_cell_backward


def lstm_cell_forward(gates, c_prev, h, c):
    """gates (B, 4H): pre-activations -> activations in place; writes h, c (B, H). Returns (h, c)."""
    _forward(gates, c_prev, h, c)
    return h, c


def lstm_cell_backward(gates, c_prev, c, dh, dc, dgates):
    """Writes dgates (B, 4H) and replaces dc (B, H) by dL/dc_prev. Returns (dgates, dc)."""
    _backward(gates, c_prev, c, dh, dc, dgates)
    return dgates, dc


def lstm_sequence_forward(G, w_hh, Hs, Cs, batch_sizes, batch_major=False):
    """One layer's recurrence over all packed steps in one kernel call (in place; batch_major: G's rows in (b, t)
    order, a dense batch only). Returns (G, Hs, Cs)."""
    _C.lstm_sequence_forward(G, np.ascontiguousarray(w_hh), Hs, Cs, np.ascontiguousarray(batch_sizes),
                             bool(batch_major))
    return G, Hs, Cs


def lstm_sequence_backward(G, w_hh, Cs, dH, dh, dc, dG, batch_sizes, batch_major=False):
    """Backward of lstm_sequence_forward (in place; dH None: no gradient from the output; batch_major: G and dG
    in (b, t) row order). Returns (dG, dh, dc)."""
    _C.lstm_sequence_backward(G, np.ascontiguousarray(w_hh), Cs, _opt(dH), dh, dc, dG,
                              np.ascontiguousarray(batch_sizes), bool(batch_major))
    return dG, dh, dc
