"""Whole-sequence recurrences of the GRU and of the Elman RNN: one layer, one direction, every step.

PyTorch's equations for ``nn.GRU`` (Cho et al. 2014, "Learning Phrase Representations using RNN
Encoder-Decoder"; PyTorch's variant applies the reset gate to W_hn h + b_hn rather than to h), gate order
r, z, n along the 3H axis:

    a = x_t W_ih^T + b_ih                                    (the input projection; not done here)
    r = sigmoid(a_r + h W_hr^T + b_hr)      z = sigmoid(a_z + h W_hz^T + b_hz)
    q = h W_hn^T + b_hn                     n = tanh(a_n + r * q)
    h' = (1 - z) * n + z * h

and for ``nn.RNN`` (Elman 1990, "Finding Structure in Time"):

    h' = act(x_t W_ih^T + b_ih + h W_hh^T + b_hh),   act = tanh or relu

Packed steps (PyTorch's PackedSequence layout, shared with the LSTM's kernels): batch_sizes bs (T,),
B >= bs[0] >= bs[1] >= ... >= 0, N = sum(bs). Step t runs rows b < bs[t] (sequences sorted by decreasing
length); a row whose sequence has ended computes nothing and keeps its state, so each row's final state
is the one after its own last step. (N, .) arrays hold step t's rows at [off_t, off_t + bs[t]),
off_t = bs[0] + ... + bs[t-1]; state arrays (B + N, H) hold h_0 in rows [0, B), then the states after
each step in rows B + off_t + b. A dense (T, B) batch is batch_sizes = [B] * T.

Every kernel writes into arrays the caller allocated and returns them. No argument may alias another.
All arrays C-contiguous, one float dtype; batch_sizes int64.
"""
import numpy as np

__all__ = ["gru_sequence_forward", "gru_sequence_backward", "rnn_sequence_forward", "rnn_sequence_backward"]


def packed_steps(batch_sizes, B):
    """Per step t: (bs[t], its rows in (N, .) arrays, its states before the step and after it in
    (B + N, H) state arrays), as slices. Not a kernel: the layout every sequence twin walks."""
    off, prev = 0, 0
    for n in batch_sizes:
        n = int(n)
        yield n, slice(off, off + n), slice(prev, prev + n), slice(B + off, B + off + n)
        prev, off = B + off, off + n


def _sigmoid(x):
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-x))


def gru_sequence_forward(G, Q, w_hh, b_hn, Hs, batch_sizes):
    """One GRU layer's recurrence over all packed steps, in place.

    G:    (N, 3H) in: x W_ih^T + b_ih + [b_hr, b_hz, 0] of every step's rows; out: the gates [r, z, n]
    Q:    (N, H) out: q = h W_hn^T + b_hn of every step's rows (saved for backward)
    w_hh: (3H, H)   b_hn: (H,)   Hs: (B + N, H) in: rows [0, B) = h_0; out: the states after every step
    Returns (G, Q, Hs).
    """
    H = w_hh.shape[1]
    for n, rows, prev, out in packed_steps(batch_sizes, Hs.shape[0] - G.shape[0]):
        h, g = Hs[prev], G[rows]
        g[:, :2 * H] += h @ w_hh[:2 * H].T
        q = h @ w_hh[2 * H:].T + b_hn
        r, z = _sigmoid(g[:, :H]), _sigmoid(g[:, H:2 * H])
        nt = np.tanh(g[:, 2 * H:] + r * q)
        g[:, :H], g[:, H:2 * H], g[:, 2 * H:] = r, z, nt
        Q[rows] = q
        Hs[out] = (1 - z) * nt + z * h
    return G, Q, Hs


def gru_sequence_backward(G, Q, w_hh, Hs, dH, dh, dG, dGh, batch_sizes):
    """Backward of gru_sequence_forward, in place. For t = T-1 .. 0, with d = dL/dh_t (from the output
    and from step t + 1):

        da_n = d (1 - z) (1 - n^2)     da_r = da_n q r (1 - r)     da_z = d (h_{t-1} - n) z (1 - z)
        dL/dh_{t-1} = d z + [da_r, da_z, r da_n] W_hh

    dH:  (N, H) dL/dh_t from the layer's output (read only), or None: the output has no gradient
    dh:  (B, H) in: dL/dh_n (each row's final state); out: dL/dh_0
    dG:  (N, 3H) out: [da_r, da_z, da_n], the gradient of the input side (dW_ih, db_ih, dx)
    dGh: (N, 3H) out: [da_r, da_z, r da_n], the gradient of h W_hh^T + b_hh (dW_hh, db_hh)
    Returns (dG, dGh, dh).
    """
    H = w_hh.shape[1]
    for n, rows, prev, out in reversed(list(packed_steps(batch_sizes, dh.shape[0]))):
        d = dh[:n] + dH[rows] if dH is not None else dh[:n].copy()
        g = G[rows]
        r, z, nt = g[:, :H], g[:, H:2 * H], g[:, 2 * H:]
        da_n = d * (1 - z) * (1 - nt * nt)
        da_r = da_n * Q[rows] * r * (1 - r)
        da_z = d * (Hs[prev] - nt) * z * (1 - z)
        dG[rows, :H], dG[rows, H:2 * H], dG[rows, 2 * H:] = da_r, da_z, da_n
        dGh[rows, :H], dGh[rows, H:2 * H], dGh[rows, 2 * H:] = da_r, da_z, da_n * r
        dh[:n] = d * z + dGh[rows] @ w_hh
    return dG, dGh, dh


def _check_nonlinearity(op, nonlinearity):
    if nonlinearity not in ("tanh", "relu"):
        raise ValueError(f"{op}: nonlinearity must be 'tanh' or 'relu', got '{nonlinearity}'")


def rnn_sequence_forward(G, w_hh, Hs, batch_sizes, nonlinearity="tanh"):
    """One Elman RNN layer's recurrence over all packed steps, in place.

    G:    (N, H) in: x W_ih^T + b_ih + b_hh of every step's rows; out: the pre-activations a + h W_hh^T
    w_hh: (H, H)   Hs: (B + N, H) in: rows [0, B) = h_0; out: h' = act(pre-activation) after every step
    Returns (G, Hs).
    """
    _check_nonlinearity("rnn_sequence_forward", nonlinearity)
    for n, rows, prev, out in packed_steps(batch_sizes, Hs.shape[0] - G.shape[0]):
        G[rows] += Hs[prev] @ w_hh.T
        Hs[out] = np.tanh(G[rows]) if nonlinearity == "tanh" else np.maximum(G[rows], 0)
    return G, Hs


def rnn_sequence_backward(w_hh, Hs, dH, dh, dG, batch_sizes, nonlinearity="tanh"):
    """Backward of rnn_sequence_forward, in place: with d = dL/dh_t (from the output and from step t + 1),

        da = d (1 - h_t^2) (tanh), or d where h_t > 0 else 0 (relu);   dL/dh_{t-1} = da W_hh

    dH: (N, H) read only, or None (no output gradient)   dh: (B, H) in: dL/dh_n; out: dL/dh_0
    dG: (N, H) out: da of every step's rows
    Returns (dG, dh).
    """
    _check_nonlinearity("rnn_sequence_backward", nonlinearity)
    for n, rows, prev, out in reversed(list(packed_steps(batch_sizes, dh.shape[0]))):
        d = dh[:n] + dH[rows] if dH is not None else dh[:n].copy()
        h = Hs[out]
        dG[rows] = d * (1 - h * h) if nonlinearity == "tanh" else np.where(h <= 0, 0, d)
        dh[:n] = dG[rows] @ w_hh
    return dG, dh
