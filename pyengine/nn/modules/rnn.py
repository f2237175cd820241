"""Recurrent layers with PyTorch's equations, parameter names and shapes, so that a PyTorch state dict
loads one to one: RNN (Elman 1990), LSTM (Hochreiter & Schmidhuber 1997), GRU (Cho et al. 2014), and
their one-step cells RNNCell, LSTMCell, GRUCell.

    RNN:   h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh),  act = tanh or relu
    LSTM:  i, f, g, o = sigmoid, sigmoid, tanh, sigmoid of (W_i* x_t + b_i* + W_h* h_{t-1} + b_h*)
           c_t = f * c_{t-1} + i * g,   h_t = o * tanh(c_t)
    GRU:   r, z = sigmoid of (W_i* x_t + b_i* + W_h* h_{t-1} + b_h*)
           n_t = tanh(W_in x_t + b_in + r_t * (W_hn h_{t-1} + b_hn)),   h_t = (1 - z_t) * n_t + z_t * h_{t-1}

``weight_ih_l{k}``: (G H, I) with the gates stacked in the order above (LSTM i, f, g, o; GRU r, z, n;
G = 4, 3, 1), ``weight_hh_l{k}``: (G H, H), ``bias_ih_l{k}``, ``bias_hh_l{k}``: (G H,); suffix
``_reverse`` for the backward direction. All ~ U(-1/sqrt(H), 1/sqrt(H)).

Speed: a layer over a whole sequence, one direction, is ONE autograd Function (``LSTMLayer``,
``GRULayer``, ``RNNLayer``), not a graph of per-step ops. Its forward does the input projection of every
step as one GEMM, then the whole recurrence in one kernel call (``lstm/gru/rnn_sequence_forward``: per
step the recurrent GEMM and the fused cell, threads owning rows of the batch or slices of the hidden
units); its backward is one kernel call for the recurrence in reverse, then dW_hh, dW_ih and dx are one
GEMM each over all steps.

Variable lengths: the kernels run PyTorch's packed layout (``nn.utils.rnn.PackedSequence``): step t
computes only the sequences still running, so a PackedSequence input costs no padding, and the final
states are each sequence's last. A dense batch is the case where every sequence runs every step.
"""
import math
import numbers
import warnings

import numpy as np

from ..._checks import not_tensor, size_arg
from ...autograd import Function
from ...ops import cat, stack
from ...tensor import Tensor
from .. import functional as F
from .. import init
from ..parameter import Parameter
from ..utils.rnn import PackedSequence, lengths_of, packed_rows
from ._utils import check_params, float_dtype
from .module import Module

__all__ = ["RNNBase", "RNN", "LSTM", "GRU", "RNNCellBase", "RNNCell", "LSTMCell", "GRUCell", "LSTMLayer",
           "GRULayer", "RNNLayer"]


# ====================================================================== the packed layout


class Steps:
    """The packed steps of one batch (layout: backend/reference/rnn.py): ``batch_sizes`` (T,) int64, the
    batch B and the number of packed rows N, and the row indices the layers need, computed once per
    forward and shared by every layer and direction. ``Steps.dense(T, B)``: every row runs every step."""

    __slots__ = ("batch_sizes", "T", "B", "N", "dense", "_rev", "_prev", "_last")

    def __init__(self, batch_sizes, B):
        self.batch_sizes = np.ascontiguousarray(batch_sizes, np.int64)
        self.T, self.B, self.N = len(self.batch_sizes), int(B), int(self.batch_sizes.sum())
        self.dense = bool(np.all(self.batch_sizes == self.B))
        self._rev = self._prev = self._last = None

    @classmethod
    def dense_batch(cls, T, B):
        return cls(np.full(T, B, np.int64), B)

    @property
    def rev(self):
        """(N,) the permutation of the packed rows that reverses each sequence within its own length: row
        (t, b) <-> (L_b - 1 - t, b). The backward direction runs on x[rev]; its outputs come back by [rev]."""
        if self._rev is None:
            t, b = packed_rows(self.batch_sizes)
            off = np.concatenate([[0], np.cumsum(self.batch_sizes)])
            self._rev = off[lengths_of(self.batch_sizes)[b] - 1 - t] + b
        return self._rev

    @property
    def prev(self):
        """The rows of the (B + N, H) state array holding each packed row's state before its step: a slice
        when dense, else (N,) indices (a prefix of the previous step's rows)."""
        if self._prev is None:
            if self.dense:
                self._prev = slice(0, self.N)
            else:
                bs, B = self.batch_sizes, self.B
                off = np.concatenate([[0], np.cumsum(bs)])
                self._prev = np.concatenate([np.arange(bs[0])] + [B + off[t - 1] + np.arange(bs[t])
                                                                  for t in range(1, self.T)])
        return self._prev

    @property
    def last(self):
        """The rows of the state array holding each row's final state (after its own last step; h_0 for a
        row that never runs): a slice when dense, else (B,) indices."""
        if self._last is None:
            if self.dense:
                self._last = slice(self.N, self.N + self.B)
            else:
                L = np.zeros(self.B, np.int64)
                L[:len(lengths_of(self.batch_sizes))] = lengths_of(self.batch_sizes)
                off = np.concatenate([[0], np.cumsum(self.batch_sizes)])
                b = np.arange(self.B)
                self._last = np.where(L > 0, self.B + off[np.maximum(L - 1, 0)] + b, b)
        return self._last


# ====================================================================== the Functions


class _RecurrentLayer(Function):
    """What the LSTM, GRU and RNN layers share: the input projection of every step as one GEMM, the state
    arrays, the outputs in the input's order (the backward direction runs on each sequence reversed within
    its length), and the input and weight gradients as one GEMM each.

    Arguments common to every layer: x (T, B, I) (dense) or (N, I) packed rows with ``steps``; h0 (B, H)
    (a tensor, or an array: a constant); ``steps``: a ``Steps`` (None: dense, from x's shape); ``reverse``.
    Outputs: out in x's leading shape with H features, then the final states (B, H).
    """

    fresh_grads = True  # every gradient is a new array (dx may be a view of one, and so gets copied)
    gates_batch_major = False  # whether the kernels take a batch_first input's gates in (b, t) row order

    def _project(self, x, w_ih, bias, steps, reverse):
        """G (N, gates H): x_t W_ih^T + bias for every packed row, in the order the recurrence runs them."""
        K, xp = self.backend, self.xp
        if steps is None:
            steps = Steps.dense_batch(*x.shape[:2])
        # batch_first input: x (T, B, I) is a view of a C-ordered (B, T, I) array. Its rows are gathered in
        # step order by the threaded copy kernel (NumPy's reshape copies on one thread), and dx is given x's
        # layout (backward), so that the transpose back to (B, T, I) is C-ordered again and what produced x
        # (an embedding, a reshape) gets its gradient without a copy of its own.
        self.batch_major = x.ndim == 3 and not x.flags.c_contiguous and x.transpose(1, 0, 2).flags.c_contiguous
        # LSTM: no copy at all; the gates are projected in x's own (b, t) row order and the kernels read them
        # so (gates_bm); dx then comes in that order too.
        self.gates_bm = self.batch_major and self.gates_batch_major and not reverse and steps.dense
        if self.gates_bm:
            x2 = x.transpose(1, 0, 2).reshape(-1, x.shape[-1])  # a view: rows (b, t)
            self.x_shape, self.x2, self.steps, self.reverse = x.shape, x2, steps, reverse
            return K.linear(x2, w_ih, bias) if bias is not None else K.matmul(x2, w_ih, trans_b=True)
        if self.batch_major:
            x = K.copy_into(xp.empty(x.shape, x.dtype), x)
        x2 = x.reshape(-1, x.shape[-1])
        if reverse:
            x2 = xp.take(x2, steps.rev, axis=0)
        self.x_shape, self.x2, self.steps, self.reverse = x.shape, x2, steps, reverse
        return K.linear(x2, w_ih, bias) if bias is not None else K.matmul(x2, w_ih, trans_b=True)

    def _states(self, s0, H, dtype):
        """A (B + N, H) state array with s0 in its first B rows."""
        S = self.xp.empty((self.steps.B + self.steps.N, H), dtype)
        S[:self.steps.B] = s0
        return S

    def _output(self, Hs):
        """The states after every step, in x's order and leading shape."""
        out = Hs[self.steps.B:]
        if self.reverse:
            out = self.xp.take(out, self.steps.rev, axis=0)
        return out.reshape(self.x_shape[:-1] + (Hs.shape[1],))

    def _final(self, S):
        """Each row's state after its own last step, (B, H), a new array."""
        last = self.steps.last
        return S[last].copy() if isinstance(last, slice) else self.xp.take(S, last, axis=0)

    def _output_grad(self, d_out, H):
        """dL/d(out) as (N, H) rows in the order the recurrence ran them; None if out got no gradient (a
        classifier reading only the final state): the kernels then add nothing, where (N, H) zeros cost a
        fill and a read per step."""
        if d_out is None:
            return None
        d = d_out.reshape(self.steps.N, H)
        return self.xp.take(d, self.steps.rev, axis=0) if self.reverse else d

    def _carried(self, d_final, H, dtype):
        """The kernels' carried (B, H) state gradient: dL/d(final state) in, dL/d(initial state) out."""
        xp = self.xp
        return xp.zeros((self.steps.B, H), dtype) if d_final is None else xp.array(d_final, dtype=dtype, order="C")

    def _input_and_weight_grads(self, dG, dGh, Hs, w_ih, needs):
        """dx, dW_ih, dW_hh, db_ih, db_hh (None where not needed; ``needs`` flags them in that order) from the
        gradients of the input side dG and of the recurrent side dGh (the same array for LSTM and RNN)."""
        K, xp = self.backend, self.xp
        n_x, n_wih, n_whh, n_bih, n_bhh = needs
        dx = dw_ih = dw_hh = db_ih = db_hh = None
        if n_x and self.gates_bm:  # rows (b, t): (B, T, I), x's layout already
            T, B, I = self.x_shape
            dx = K.matmul(dG, w_ih).reshape(B, T, I).transpose(1, 0, 2)
        elif n_x:
            dx = K.matmul(dG, w_ih)  # (N, G H) (G H, I)
            if self.reverse:
                dx = xp.take(dx, self.steps.rev, axis=0)
            dx = dx.reshape(self.x_shape)
            if self.batch_major:  # x's layout (see _project)
                T, B, I = self.x_shape
                dx = K.copy_into(xp.empty((B, T, I), dx.dtype).transpose(1, 0, 2), dx)
        if n_wih:
            dw_ih = K.matmul(dG, self.x2, trans_a=True)  # sum over rows of da^T x
        if n_whh:
            prev = self.steps.prev
            h_prev = Hs[prev] if isinstance(prev, slice) else xp.take(Hs, prev, axis=0)
            if self.gates_bm:  # h_{t-1} in dG's (b, t) row order (half the copy of x that it saves)
                T, B, H = self.x_shape[0], self.x_shape[1], Hs.shape[1]
                hb = K.copy_into(xp.empty((B, T, H), Hs.dtype), h_prev.reshape(T, B, H).transpose(1, 0, 2))
                h_prev = hb.reshape(B * T, H)
            dw_hh = K.matmul(dGh, h_prev, trans_a=True)  # sum over rows of da^T h_{t-1}
        if n_bih or n_bhh:
            db_ih = K.sum_rows(dG)
            if dGh is not dG:
                db_hh = K.sum_rows(dGh) if n_bhh else None
            elif n_bhh:
                db_hh = db_ih.copy()
        return dx, dw_ih, dw_hh, db_ih if n_bih else None, db_hh


class LSTMLayer(_RecurrentLayer):
    """One LSTM layer, one direction, over a whole (dense or packed) sequence.

    forward(x, h0, c0, w_ih, w_hh, b_ih, b_hh, steps=None, reverse=False) -> (out, h_n, c_n)
        x: (T, B, I) or packed (N, I)   h0, c0: (B, H)   w_ih: (4H, I)   w_hh: (4H, H)   b_ih, b_hh: (4H,) or None
    Saved for backward: the activated gates G (N, 4H) and the states Hs, Cs (B + N, H). A batch_first input
    (one direction, dense) has G and dG in its own (b, t) row order: no transposed copy of x nor of dx.
    Kernels: backend ``linear``/``matmul`` (projections and weight gradients, one GEMM each) and
    ``lstm_sequence_forward/backward`` (the recurrence: every step in one kernel call).
    """

    gates_batch_major = True

    def forward(self, x, h0, c0, w_ih, w_hh, b_ih, b_hh, steps=None, reverse=False):
        H = w_hh.shape[1]
        G = self._project(x, w_ih, None if b_ih is None else b_ih + b_hh, steps, reverse)
        Hs, Cs = self._states(h0, H, G.dtype), self._states(c0, H, G.dtype)
        # every step in one kernel call: a_t = x_t W_ih^T + b + h_{t-1} W_hh^T, then the cell
        self.backend.lstm_sequence_forward(G, w_hh, Hs, Cs, self.steps.batch_sizes, batch_major=self.gates_bm)
        self.G, self.Hs, self.Cs, self.w_ih, self.w_hh = G, Hs, Cs, w_ih, w_hh
        return self._output(Hs), self._final(Hs), self._final(Cs)

    def backward(self, d_out, d_hn, d_cn):
        G, H, dt, n = self.G, self.w_hh.shape[1], self.G.dtype, self.needs_input_grad
        dh, dc = self._carried(d_hn, H, dt), self._carried(d_cn, H, dt)
        dG = self.xp.empty_like(G)
        self.backend.lstm_sequence_backward(G, self.w_hh, self.Cs, self._output_grad(d_out, H), dh, dc, dG,
                                            self.steps.batch_sizes, batch_major=self.gates_bm)
        dx, dw_ih, dw_hh, db_ih, db_hh = self._input_and_weight_grads(dG, dG, self.Hs, self.w_ih, n[:1] + n[3:7])
        return dx, dh if n[1] else None, dc if n[2] else None, dw_ih, dw_hh, db_ih, db_hh


class GRULayer(_RecurrentLayer):
    """One GRU layer, one direction, over a whole (dense or packed) sequence.

    forward(x, h0, w_ih, w_hh, b_ih, b_hh, steps=None, reverse=False) -> (out, h_n)
        x: (T, B, I) or packed (N, I)   h0: (B, H)   w_ih: (3H, I)   w_hh: (3H, H)   b_ih, b_hh: (3H,) or None
    b_hr and b_hz join the input projection's bias; b_hn stays apart (r scales W_hn h + b_hn).
    Saved for backward: the gates [r, z, n] (N, 3H), q = W_hn h + b_hn (N, H), the states Hs (B + N, H).
    Kernels: backend ``linear``/``matmul`` and ``gru_sequence_forward/backward``.
    """

    def forward(self, x, h0, w_ih, w_hh, b_ih, b_hh, steps=None, reverse=False):
        xp, H = self.xp, w_hh.shape[1]
        if b_ih is not None:
            bias = b_ih.copy()
            bias[:2 * H] += b_hh[:2 * H]
            b_hn = b_hh[2 * H:]
        else:
            bias, b_hn = None, xp.zeros(H, w_hh.dtype)
        G = self._project(x, w_ih, bias, steps, reverse)
        Q = xp.empty((self.steps.N, H), G.dtype)
        Hs = self._states(h0, H, G.dtype)
        self.backend.gru_sequence_forward(G, Q, w_hh, b_hn, Hs, self.steps.batch_sizes)
        self.G, self.Q, self.Hs, self.w_ih, self.w_hh = G, Q, Hs, w_ih, w_hh
        return self._output(Hs), self._final(Hs)

    def backward(self, d_out, d_hn):
        G, H, dt, n = self.G, self.w_hh.shape[1], self.G.dtype, self.needs_input_grad
        dh = self._carried(d_hn, H, dt)
        dG, dGh = self.xp.empty_like(G), self.xp.empty_like(G)
        self.backend.gru_sequence_backward(G, self.Q, self.w_hh, self.Hs, self._output_grad(d_out, H), dh, dG,
                                           dGh, self.steps.batch_sizes)
        dx, dw_ih, dw_hh, db_ih, db_hh = self._input_and_weight_grads(dG, dGh, self.Hs, self.w_ih, n[:1] + n[2:6])
        return dx, dh if n[1] else None, dw_ih, dw_hh, db_ih, db_hh


class RNNLayer(_RecurrentLayer):
    """One Elman RNN layer (tanh or relu), one direction, over a whole (dense or packed) sequence.

    forward(x, h0, w_ih, w_hh, b_ih, b_hh, nonlinearity="tanh", steps=None, reverse=False) -> (out, h_n)
        x: (T, B, I) or packed (N, I)   h0: (B, H)   w_ih: (H, I)   w_hh: (H, H)   b_ih, b_hh: (H,) or None
    Saved for backward: the states Hs (B + N, H) (the activation's derivative is a function of h).
    Kernels: backend ``linear``/``matmul`` and ``rnn_sequence_forward/backward``.
    """

    def forward(self, x, h0, w_ih, w_hh, b_ih, b_hh, nonlinearity="tanh", steps=None, reverse=False):
        H = w_hh.shape[1]
        G = self._project(x, w_ih, None if b_ih is None else b_ih + b_hh, steps, reverse)
        Hs = self._states(h0, H, G.dtype)
        self.backend.rnn_sequence_forward(G, w_hh, Hs, self.steps.batch_sizes, nonlinearity)
        self.Hs, self.w_ih, self.w_hh, self.nonlinearity = Hs, w_ih, w_hh, nonlinearity
        return self._output(Hs), self._final(Hs)

    def backward(self, d_out, d_hn):
        H, dt, n = self.w_hh.shape[1], self.Hs.dtype, self.needs_input_grad
        dh = self._carried(d_hn, H, dt)
        dG = self.xp.empty((self.steps.N, H), dt)
        self.backend.rnn_sequence_backward(self.w_hh, self.Hs, self._output_grad(d_out, H), dh, dG,
                                           self.steps.batch_sizes, self.nonlinearity)
        dx, dw_ih, dw_hh, db_ih, db_hh = self._input_and_weight_grads(dG, dG, self.Hs, self.w_ih, n[:1] + n[2:6])
        return dx, dh if n[1] else None, dw_ih, dw_hh, db_ih, db_hh


# ====================================================================== the modules


class RNNBase(Module):
    """What RNN, LSTM and GRU share (PyTorch's ``nn.RNNBase``): the parameters, argument checks, input
    layouts (batch_first, unbatched, PackedSequence), the initial states, the layer and direction loop
    and dropout between layers. ``mode``: "LSTM", "GRU", "RNN_TANH" or "RNN_RELU"."""

    _gates = {"LSTM": 4, "GRU": 3, "RNN_TANH": 1, "RNN_RELU": 1}
    _n_states = 1  # hidden states per layer (LSTM: h and c)

    def __init__(self, mode, input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
                 bidirectional=False, proj_size=0, device=None, dtype=None):
        super().__init__()
        name = type(self).__name__
        if mode not in self._gates:
            raise ValueError(f"Unrecognized RNN mode: {mode}")
        dt = float_dtype(dtype, device, name)
        input_size = size_arg(name, "input_size", input_size)
        hidden_size = size_arg(name, "hidden_size", hidden_size, minimum=1)
        num_layers = size_arg(name, "num_layers", num_layers, minimum=1)
        for what, v in (("bias", bias), ("batch_first", batch_first), ("bidirectional", bidirectional)):
            if not isinstance(v, (bool, np.bool_)):
                raise TypeError(f"{name}: {what} should be of type bool, got: {type(v).__name__}")
        if isinstance(dropout, bool) or not isinstance(dropout, numbers.Number) or not 0 <= dropout <= 1:
            raise ValueError("dropout should be a number in range [0, 1] representing the probability of an "
                             "element being zeroed")
        if proj_size:
            if mode != "LSTM":
                raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")
            raise NotImplementedError("LSTM: proj_size is not supported (the projected recurrence h_t = W_hr "
                                      "(o * tanh(c_t)) needs its own kernel); use proj_size=0")
        if dropout > 0 and num_layers == 1:
            warnings.warn("dropout option adds dropout after all but last recurrent layer, so non-zero dropout "
                          f"expects num_layers greater than 1, but got dropout={dropout} and num_layers={num_layers}")
        self.mode = mode
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.dropout = bool(bias), bool(batch_first), float(dropout)
        self.bidirectional, self.proj_size = bool(bidirectional), 0
        D, GH = (2 if bidirectional else 1), self._gates[mode] * hidden_size
        # weight_ih of layer 0, of the layers above, weight_hh and both biases of all: checked before allocating
        check_params(name, dt, (D, GH, input_size), (D * (num_layers - 1), GH, hidden_size * D),
                     (D * num_layers, GH, hidden_size + 2 * bool(bias)))
        self._flat_weights_names = []
        for layer in range(num_layers):
            for direction in range(D):
                in_size = input_size if layer == 0 else hidden_size * D
                sfx = f"_l{layer}" + ("_reverse" if direction else "")
                shapes = [("weight_ih", (GH, in_size)), ("weight_hh", (GH, hidden_size))]
                if bias:
                    shapes += [("bias_ih", (GH,)), ("bias_hh", (GH,))]
                for pname, shape in shapes:
                    setattr(self, pname + sfx, Parameter(np.empty(shape, dt)))
                    self._flat_weights_names.append(pname + sfx)
        self.reset_parameters()

    def reset_parameters(self):
        stdv = 1.0 / math.sqrt(self.hidden_size)
        for w in self.parameters():
            init.uniform_(w, -stdv, stdv)

    def flatten_parameters(self):
        """No-op (PyTorch compacts cuDNN weights here); kept so PyTorch code runs unchanged."""

    @property
    def all_weights(self):
        """Per layer and direction: [weight_ih, weight_hh, bias_ih, bias_hh] (biases only with bias=True)."""
        per = 4 if self.bias else 2
        names = self._flat_weights_names
        return [[getattr(self, n) for n in names[i:i + per]] for i in range(0, len(names), per)]

    def extra_repr(self):
        s = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if self.bias is not True:
            s += f", bias={self.bias}"
        if self.batch_first is not False:
            s += f", batch_first={self.batch_first}"
        if self.dropout != 0:
            s += f", dropout={self.dropout}"
        if self.bidirectional is not False:
            s += f", bidirectional={self.bidirectional}"
        return s

    # ------------------------------------------------------------------ forward

    def _layer(self, x, states0, weights, steps, reverse):
        """Run one layer and direction: returns (out, final state, ...)."""
        raise NotImplementedError

    def forward(self, input, hx=None):
        name = type(self).__name__
        if not isinstance(input, (Tensor, PackedSequence)):
            raise not_tensor(name, "input", 1, input)
        L, H = self.num_layers, self.hidden_size
        LD = L * (2 if self.bidirectional else 1)
        packed = isinstance(input, PackedSequence)
        if packed:
            x, batch_sizes, sorted_indices, unsorted_indices = input
            if x.ndim != 2:
                raise RuntimeError(f"{name}: packed input data must have 2 dimensions (N, input_size), got "
                                   f"shape {tuple(x.shape)}")
            bs = np.asarray(batch_sizes._data if isinstance(batch_sizes, Tensor) else batch_sizes, np.int64)
            if bs.ndim != 1 or bs.size == 0 or bs[0] <= 0 or np.any(np.diff(bs) > 0) or bs.sum() != x.shape[0]:
                raise ValueError(f"{name}: batch_sizes {bs.tolist()} do not describe the {x.shape[0]} rows of the "
                                 "packed data (positive, non-increasing, summing to the rows)")
            steps, batched = Steps(bs, bs[0]), True
        else:
            if input.ndim not in (2, 3):
                raise ValueError(f"{name}: Expected input to be 2D or 3D, got {input.ndim}D instead")
            batched = input.ndim == 3
            if not batched:
                x = input.unsqueeze(1)  # (T, 1, I)
            else:
                x = input.transpose(0, 1) if self.batch_first else input  # (T, B, I): a view
            if x.shape[0] == 0 or x.shape[1] == 0:
                raise ValueError(f"{name}: expected a non-empty sequence and batch, got input of shape "
                                 f"{tuple(input.shape)}")
            steps = Steps.dense_batch(x.shape[0], x.shape[1])
        B = steps.B
        weights = self.all_weights
        wdt = weights[0][0]._data.dtype
        if x.shape[-1] != self.input_size:
            raise RuntimeError(f"{name}: input.size(-1) must be equal to input_size. Expected {self.input_size}, "
                               f"got {x.shape[-1]}")
        if x._data.dtype != wdt:
            raise ValueError(f"{name}: input dtype ({x.dtype}) does not match weight dtype ({weights[0][0].dtype}); "
                             f"convert the input (input.to({weights[0][0].dtype})) or the module (module.to(dtype))")
        states = self._initial_states(hx, batched, (LD, B, H), weights[0][0], name)
        if packed and sorted_indices is not None and hx is not None:
            perm = np.asarray(sorted_indices._data if isinstance(sorted_indices, Tensor) else sorted_indices)
            states = [s[:, perm] for s in states]
        finals = [[] for _ in range(self._n_states)]
        for layer in range(L):
            outs = []
            for d in range(LD // L):
                k = layer * (LD // L) + d
                s0 = [np.zeros((B, H), wdt) if s is None else s[k] for s in states]
                out, *fin = self._layer(x, s0, weights[k] + [None] * (4 - len(weights[k])), steps, d == 1)
                outs.append(out)
                for f, v in zip(finals, fin):
                    f.append(v)
            x = outs[0] if len(outs) == 1 else cat(outs, dim=-1)
            if self.dropout and self.training and layer < L - 1:
                x = F.dropout(x, self.dropout, True)
        finals = [stack(f, 0) for f in finals]
        if packed:
            if unsorted_indices is not None:
                perm = np.asarray(unsorted_indices._data if isinstance(unsorted_indices, Tensor) else unsorted_indices)
                finals = [f[:, perm] for f in finals]
            return PackedSequence(x, batch_sizes, sorted_indices, unsorted_indices), self._hidden(finals)
        if not batched:
            return x.squeeze(1), self._hidden([f.squeeze(1) for f in finals])
        return (x.transpose(0, 1) if self.batch_first else x), self._hidden(finals)

    def _initial_states(self, hx, batched, shape, weight, name):
        """hx as a list of (L D, B, H) tensors, one per state (None: zeros), checked against ``shape`` and
        the dtype of ``weight``."""
        if hx is None:
            return [None] * self._n_states
        hs = list(hx) if self._n_states > 1 else [hx]
        if self._n_states > 1 and len(hs) != self._n_states:
            raise RuntimeError(f"{name}: hx must be a tuple (h_0, c_0), got {len(hs)} tensors")
        want = 3 if batched else 2
        if any(not isinstance(s, Tensor) or s.ndim != want for s in hs):
            dims = ", ".join(f"{s.ndim}-D" if isinstance(s, Tensor) else type(s).__name__ for s in hs)
            kind = "batched 3-D" if batched else "unbatched 2-D"
            raise RuntimeError(f"{name}: for {kind} input, hx should also be {want}-D but got ({dims}) tensors")
        if not batched:
            hs = [s.unsqueeze(1) for s in hs]
        for i, s in enumerate(hs):
            what = f"hidden[{i}]" if self._n_states > 1 else "hidden"
            if tuple(s.shape) != shape:
                raise RuntimeError(f"{name}: Expected {what} size {shape}, got {tuple(s.shape)}")
            if s._data.dtype != weight._data.dtype:
                raise RuntimeError(f"{name}: {what} has dtype {s.dtype}, expected the weights' {weight.dtype}")
        return hs

    def _hidden(self, finals):
        """What forward returns as the final state: h_n, or (h_n, c_n) for the LSTM."""
        return finals[0]


class RNN(RNNBase):
    """Multi-layer Elman RNN, h_t = act(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh) (PyTorch's ``nn.RNN``;
    Elman 1990), act = tanh or relu (``nonlinearity``).

    input: (T, B, I), (B, T, I) with ``batch_first``, unbatched (T, I), or a PackedSequence
    hx: optional (num_layers * D, B, H) (unbatched: (num_layers * D, H)); zeros if None
    returns output (T, B, D * H) (batch_first: (B, T, D * H); a PackedSequence for one) and h_n
    (num_layers * D, B, H); D = 2 if ``bidirectional``. ``dropout``: on every layer's output but the last,
    in training mode.

    >>> rnn = nn.RNN(10, 20, num_layers=2, nonlinearity="relu")
    >>> out, h = rnn(pyengine.randn(5, 3, 10))
    >>> out.shape, h.shape
    (pyengine.Size([5, 3, 20]), pyengine.Size([2, 3, 20]))
    """

    def __init__(self, input_size, hidden_size, num_layers=1, nonlinearity="tanh", bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, device=None, dtype=None, *, proj_size=0):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"Unknown nonlinearity '{nonlinearity}'. Select from 'tanh' or 'relu'.")
        self.nonlinearity = nonlinearity
        super().__init__("RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU", input_size, hidden_size, num_layers,
                         bias, batch_first, dropout, bidirectional, proj_size, device, dtype)

    def _layer(self, x, states0, w, steps, reverse):
        return RNNLayer.apply(x, states0[0], w[0], w[1], w[2], w[3], self.nonlinearity, steps, reverse)


class LSTM(RNNBase):
    """Multi-layer LSTM over a sequence (PyTorch's ``nn.LSTM``; Hochreiter & Schmidhuber 1997).

    input: (T, B, I), (B, T, I) with ``batch_first``, unbatched (T, I), or a PackedSequence
    hx: optional (h_0, c_0), each (num_layers * D, B, H) (or (num_layers * D, H) unbatched); zeros if None
    returns output (T, B, D * H) (batch_first: (B, T, D * H); a PackedSequence for one) and (h_n, c_n), each
    (num_layers * D, B, H); D = 2 if ``bidirectional``. ``dropout`` applies to the outputs of every layer but
    the last, in training mode. ``proj_size`` > 0 is refused (NotImplementedError).

    >>> lstm = nn.LSTM(10, 20, num_layers=2, batch_first=True)
    >>> out, (h, c) = lstm(pyengine.randn(3, 5, 10))
    >>> out.shape, h.shape
    (pyengine.Size([3, 5, 20]), pyengine.Size([2, 3, 20]))
    """

    _n_states = 2

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
                 bidirectional=False, proj_size=0, device=None, dtype=None):
        super().__init__("LSTM", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         proj_size, device, dtype)

    def _layer(self, x, states0, w, steps, reverse):
        return LSTMLayer.apply(x, states0[0], states0[1], w[0], w[1], w[2], w[3], steps, reverse)

    def _hidden(self, finals):
        return tuple(finals)


class GRU(RNNBase):
    """Multi-layer GRU over a sequence (PyTorch's ``nn.GRU``; Cho et al. 2014):

        r_t = sigmoid(W_ir x_t + b_ir + W_hr h_{t-1} + b_hr)   z_t = sigmoid(W_iz x_t + b_iz + W_hz h_{t-1} + b_hz)
        n_t = tanh(W_in x_t + b_in + r_t * (W_hn h_{t-1} + b_hn))   h_t = (1 - z_t) * n_t + z_t * h_{t-1}

    input, hx, returns: as ``nn.RNN`` (one state h).

    >>> gru = nn.GRU(10, 20, bidirectional=True)
    >>> out, h = gru(pyengine.randn(5, 3, 10))
    >>> out.shape, h.shape
    (pyengine.Size([5, 3, 40]), pyengine.Size([2, 3, 20]))
    """

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
                 bidirectional=False, device=None, dtype=None, *, proj_size=0):
        super().__init__("GRU", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         proj_size, device, dtype)

    def _layer(self, x, states0, w, steps, reverse):
        return GRULayer.apply(x, states0[0], w[0], w[1], w[2], w[3], steps, reverse)


# ====================================================================== one step


class RNNCellBase(Module):
    """What RNNCell, LSTMCell and GRUCell share (PyTorch's ``nn.RNNCellBase``): weight_ih (G H, I),
    weight_hh (G H, H), bias_ih, bias_hh (G H,), all ~ U(-1/sqrt(H), 1/sqrt(H)); the input and state checks.
    A step runs the same fused Function as the sequence modules, with T = 1."""

    _n_states = 1

    def __init__(self, input_size, hidden_size, bias, num_chunks, device=None, dtype=None):
        super().__init__()
        name = type(self).__name__
        dt = float_dtype(dtype, device, name)
        self.input_size = input_size = size_arg(name, "input_size", input_size)
        self.hidden_size = hidden_size = size_arg(name, "hidden_size", hidden_size, minimum=1)
        check_params(name, dt, (num_chunks * hidden_size, input_size + hidden_size), (2 * num_chunks * hidden_size,))
        self.bias = bias
        self.weight_ih = Parameter(np.empty((num_chunks * hidden_size, input_size), dt))
        self.weight_hh = Parameter(np.empty((num_chunks * hidden_size, hidden_size), dt))
        if bias:
            self.bias_ih = Parameter(np.empty(num_chunks * hidden_size, dt))
            self.bias_hh = Parameter(np.empty(num_chunks * hidden_size, dt))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def reset_parameters(self):
        stdv = 1.0 / math.sqrt(self.hidden_size)
        for w in self.parameters():
            init.uniform_(w, -stdv, stdv)

    def extra_repr(self):
        s = f"{self.input_size}, {self.hidden_size}"
        if self.bias is not True:
            s += f", bias={self.bias}"
        if getattr(self, "nonlinearity", "tanh") != "tanh":
            s += f", nonlinearity={self.nonlinearity}"
        return s

    def _step(self, x, states0):
        """One step as a T = 1 sequence: returns the new states (B, H)."""
        raise NotImplementedError

    def forward(self, input, hx=None):
        name = type(self).__name__
        if not isinstance(input, Tensor):
            raise not_tensor(name, "input", 1, input)
        if input.ndim not in (1, 2):
            raise ValueError(f"{name}: Expected input to be 1D or 2D, got {input.ndim}D instead")
        if input.shape[-1] != self.input_size:
            raise RuntimeError(f"{name}: input has inconsistent input_size: got {input.shape[-1]} expected "
                               f"{self.input_size}")
        batched = input.ndim == 2
        x = input if batched else input.unsqueeze(0)
        B, H, dt = x.shape[0], self.hidden_size, self.weight_ih._data.dtype
        if x._data.dtype != dt:
            raise ValueError(f"{name}: input dtype ({input.dtype}) does not match weight dtype "
                             f"({self.weight_ih.dtype})")
        if hx is None:
            states = [np.zeros((B, H), dt)] * self._n_states
        else:
            states = list(hx) if self._n_states > 1 else [hx]
            for i, s in enumerate(states):
                what = f"hx[{i}]" if self._n_states > 1 else "hidden"
                if not isinstance(s, Tensor) or s.ndim not in (1, 2):
                    raise ValueError(f"{name}: Expected {what} to be 1D or 2D, got "
                                     f"{s.ndim if isinstance(s, Tensor) else type(s).__name__}D instead")
                s = s if batched else s.unsqueeze(0)
                if tuple(s.shape) != (B, H):
                    raise RuntimeError(f"{name}: {what} has shape {tuple(s.shape)}, expected {(B, H)} (batch, "
                                       "hidden_size)")
                if s._data.dtype != dt:
                    raise RuntimeError(f"{name}: {what} has dtype {s.dtype}, expected {self.weight_ih.dtype}")
                states[i] = s
        new = self._step(x.unsqueeze(0), states)
        if not batched:
            new = tuple(s.squeeze(0) for s in new)
        return tuple(new) if self._n_states > 1 else new[0]


class RNNCell(RNNCellBase):
    """One Elman RNN step: h' = act(x W_ih^T + b_ih + h W_hh^T + b_hh) (PyTorch's ``nn.RNNCell``).

    input: (B, I) or (I,)   hx: optional (B, H) or (H,); zeros if None   returns h' of hx's shape

    >>> cell = nn.RNNCell(10, 20, nonlinearity="relu")
    >>> h = cell(pyengine.randn(3, 10))
    """

    def __init__(self, input_size, hidden_size, bias=True, nonlinearity="tanh", device=None, dtype=None):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNNCell: Unknown nonlinearity '{nonlinearity}'. Select from 'tanh' or 'relu'.")
        super().__init__(input_size, hidden_size, bias, 1, device, dtype)
        self.nonlinearity = nonlinearity

    def _step(self, x, states0):
        _, h = RNNLayer.apply(x, states0[0], self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh,
                              self.nonlinearity)
        return [h]


class LSTMCell(RNNCellBase):
    """One LSTM step: (h', c') = cell(x, (h, c)) (PyTorch's ``nn.LSTMCell``).

    input: (B, I) or (I,)   hx: optional (h, c), each (B, H) or (H,); zeros if None

    >>> cell = nn.LSTMCell(10, 20)
    >>> h, c = cell(pyengine.randn(3, 10))
    """

    _n_states = 2

    def __init__(self, input_size, hidden_size, bias=True, device=None, dtype=None):
        super().__init__(input_size, hidden_size, bias, 4, device, dtype)

    def _step(self, x, states0):
        _, h, c = LSTMLayer.apply(x, states0[0], states0[1], self.weight_ih, self.weight_hh, self.bias_ih,
                                  self.bias_hh)
        return [h, c]


class GRUCell(RNNCellBase):
    """One GRU step: h' = cell(x, h) (PyTorch's ``nn.GRUCell``; equations as ``nn.GRU``).

    input: (B, I) or (I,)   hx: optional (B, H) or (H,); zeros if None   returns h' of hx's shape

    >>> cell = nn.GRUCell(10, 20)
    >>> h = cell(pyengine.randn(3, 10))
    """

    def __init__(self, input_size, hidden_size, bias=True, device=None, dtype=None):
        super().__init__(input_size, hidden_size, bias, 3, device, dtype)

    def _step(self, x, states0):
        _, h = GRULayer.apply(x, states0[0], self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)
        return [h]
