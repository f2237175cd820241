"""LSTM cell pointwise kernels: everything between two GEMMs of one time step.

Gate equations as PyTorch documents them for ``nn.LSTM`` (Hochreiter & Schmidhuber 1997),
gate order i, f, g, o along the 4H axis:

    a = x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh        (the GEMMs; not done here)
    i = sigmoid(a_i)  f = sigmoid(a_f)  g = tanh(a_g)  o = sigmoid(a_o)
    c_t = f * c_{t-1} + i * g
    h_t = o * tanh(c_t)

Both kernels write into arrays the caller allocated (so a whole sequence lives in a few
preallocated (T, B, .) arrays and the steps write into slices of them). No argument may alias
another. All arrays C-contiguous, one float dtype.
"""
import numpy as np

from .rnn import packed_steps

__all__ = ["lstm_cell_forward", "lstm_cell_backward", "lstm_sequence_forward", "lstm_sequence_backward"]


def _sigmoid(x):
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-x))


def lstm_cell_forward(gates, c_prev, h, c):
    """One LSTM step after its GEMMs.

    gates:  (B, 4H) in: pre-activations a; out (in place): activations [i, f, g, o], saved for backward
    c_prev: (B, H)
    h, c:   (B, H) out: h_t and c_t
    Returns (h, c).
    """
    H = c_prev.shape[1]
    i = _sigmoid(gates[:, :H])
    f = _sigmoid(gates[:, H:2 * H])
    g = np.tanh(gates[:, 2 * H:3 * H])
    o = _sigmoid(gates[:, 3 * H:])
    gates[:, :H], gates[:, H:2 * H], gates[:, 2 * H:3 * H], gates[:, 3 * H:] = i, f, g, o
    c[...] = f * c_prev + i * g
    h[...] = o * np.tanh(c)
    return h, c


def lstm_cell_backward(gates, c_prev, c, dh, dc, dgates):
    """Gradients of one LSTM step (the forward above).

    gates:  (B, 4H) activations [i, f, g, o] from lstm_cell_forward
    c_prev, c: (B, H) cell state before and after the step
    dh:     (B, H) dL/dh_t (from the output at t plus from step t + 1)
    dc:     (B, H) in: dL/dc_t arriving from step t + 1;  out (in place): dL/dc_{t-1}
    dgates: (B, 4H) out: dL/da (pre-activation gradients, gate order i, f, g, o)
    Returns (dgates, dc).

        tc = tanh(c_t);  dc_t = dc + dh o (1 - tc^2)
        da_i = dc_t g i (1 - i)     da_f = dc_t c_{t-1} f (1 - f)
        da_g = dc_t i (1 - g^2)     da_o = dh tc o (1 - o)
        dc_{t-1} = dc_t f
    """
    H = c_prev.shape[1]
    i, f, g, o = gates[:, :H], gates[:, H:2 * H], gates[:, 2 * H:3 * H], gates[:, 3 * H:]
    tc = np.tanh(c)
    dct = dc + dh * o * (1 - tc * tc)
    dgates[:, :H] = dct * g * i * (1 - i)
    dgates[:, H:2 * H] = dct * c_prev * f * (1 - f)
    dgates[:, 2 * H:3 * H] = dct * i * (1 - g * g)
    dgates[:, 3 * H:] = dh * tc * o * (1 - o)
    dc[...] = dct * f
    return dgates, dc


def _time_major(A, batch_sizes, B):
    """(N, C) rows in (b, t) order (a dense batch) -> a new array in (t, b) order."""
    if np.any(np.asarray(batch_sizes) != B):
        raise ValueError(f"batch_major needs a dense batch (every batch size {B}), got {list(batch_sizes)}")
    T = len(batch_sizes)
    return A.reshape(B, T, -1).transpose(1, 0, 2).reshape(T * B, -1)


def _batch_major_into(dst, src, T, B):
    """dst (N, C) in (b, t) order = src (N, C) in (t, b) order."""
    dst.reshape(B, T, -1)[...] = src.reshape(T, B, -1).transpose(1, 0, 2)


def lstm_sequence_forward(G, w_hh, Hs, Cs, batch_sizes, batch_major=False):
    """One layer's recurrence over all T packed steps, in place (layout: ``rnn.packed_steps``).

    G: (N, 4H) in: the input projections x_t W_ih^T + b of every step's rows; out: the activated gates
    w_hh: (4H, H)   Hs, Cs: (B + N, H) in: rows [0, B) = h_0, c_0; out: the states after every step
    batch_sizes: (T,) int64, B >= bs[0] >= bs[1] >= ... >= 0, summing to N (dense: [B] * T)
    batch_major: G's rows in (b, t) order (row b T + t; a dense batch only); Hs, Cs as above.
    Returns (G, Hs, Cs).
    """
    if batch_major:
        B = Hs.shape[0] - G.shape[0]
        Gt = _time_major(G, batch_sizes, B)
        lstm_sequence_forward(Gt, w_hh, Hs, Cs, batch_sizes)
        _batch_major_into(G, Gt, len(batch_sizes), B)
        return G, Hs, Cs
    for n, rows, prev, out in packed_steps(batch_sizes, Hs.shape[0] - G.shape[0]):
        G[rows] += Hs[prev] @ w_hh.T
        lstm_cell_forward(G[rows], Cs[prev], Hs[out], Cs[out])
    return G, Hs, Cs


def lstm_sequence_backward(G, w_hh, Cs, dH, dh, dc, dG, batch_sizes, batch_major=False):
    """Backward of lstm_sequence_forward, in place.

    dH: (N, H) dL/dh_t from the layer's output (read only), or None: the output has no gradient
    dh, dc: (B, H) in: dL/dh_n, dL/dc_n (each row's final state); out: dL/dh_0, dL/dc_0
    dG: (N, 4H) out: dL/d(pre-activations) of every step's rows
    batch_major: G and dG in (b, t) row order (as the forward's); dH stays in (t, b) order.
    Returns (dG, dh, dc).
    """
    if batch_major:
        B, T = dh.shape[0], len(batch_sizes)
        dGt = np.empty_like(dG)
        lstm_sequence_backward(_time_major(G, batch_sizes, B), w_hh, Cs, dH, dh, dc, dGt, batch_sizes)
        _batch_major_into(dG, dGt, T, B)
        return dG, dh, dc
    for n, rows, prev, out in reversed(list(packed_steps(batch_sizes, dh.shape[0]))):
        if dH is not None:
            dh[:n] += dH[rows]  # dL/dh_t: from the output and from step t + 1
        lstm_cell_backward(G[rows], Cs[prev], Cs[out], dh[:n], dc[:n], dG[rows])
        dh[:n] = dG[rows] @ w_hh
    return dG, dh, dc
