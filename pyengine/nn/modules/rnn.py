"""LSTM and LSTMCell (Hochreiter & Schmidhuber 1997), with PyTorch's equations, parameter names
and shapes, so that a PyTorch state dict loads one to one:

    i_t = sigmoid(W_ii x_t + b_ii + W_hi h_{t-1} + b_hi)
    f_t = sigmoid(W_if x_t + b_if + W_hf h_{t-1} + b_hf)
    g_t = tanh(W_ig x_t + b_ig + W_hg h_{t-1} + b_hg)
    o_t = sigmoid(W_io x_t + b_io + W_ho h_{t-1} + b_ho)
    c_t = f_t * c_{t-1} + i_t * g_t
    h_t = o_t * tanh(c_t)

``weight_ih_l{k}`` = [W_ii | W_if | W_ig | W_io]: (4H, I), ``weight_hh_l{k}``: (4H, H),
``bias_ih_l{k}``, ``bias_hh_l{k}``: (4H,), suffix ``_reverse`` for the backward direction.

Speed: a layer over a whole sequence is ONE autograd Function (``LSTMLayer``), not a graph of
per-step ops. Its forward does the input projection of every step as one GEMM, then the whole
recurrence in one kernel call (``lstm_sequence_forward``: per step h_{t-1} W_hh^T added to that
step's gates and the fused cell, threads owning slices of the hidden units). Its backward is one
kernel call for the recurrence in reverse (``lstm_sequence_backward``), then dW_hh, dW_ih and dx
are one GEMM each over all steps at once.
"""
import math
import numbers
import warnings

import numpy as np

from ..._checks import size_arg, tensor_op
from ...autograd import Function
from ...ops import cat, flip, stack
from .. import functional as F
from .. import init
from ..parameter import Parameter
from ._utils import check_params, float_dtype
from .module import Module

__all__ = ["LSTM", "LSTMCell", "LSTMLayer"]


class LSTMLayer(Function):
    """One LSTM layer, one direction, over a whole sequence.

    forward(x, h0, c0, w_ih, w_hh, b_ih, b_hh) -> (out, h_n, c_n)
        x: (T, B, I)   h0, c0: (B, H)   w_ih: (4H, I)   w_hh: (4H, H)   b_ih, b_hh: (4H,) or None
        out: (T, B, H) = h_1..h_T    h_n, c_n: (B, H)
    Saved for backward: the activated gates of every step G (T, B, 4H) and the states
    Hs, Cs (T + 1, B, H) with Hs[0] = h0, Cs[0] = c0 (so h_{t-1} for all t is one slice).
    Kernels: backend ``linear``/``matmul`` (the input projections and weight gradients, one GEMM each)
    and ``lstm_sequence_forward/backward`` (the recurrence: every step in one kernel call).
    """

    fresh_grads = True  # every gradient is a new array (dx is a view of one, and so gets copied)

    def forward(self, x, h0, c0, w_ih, w_hh, b_ih, b_hh):
        K, xp = self.backend, self.xp
        T, B, I = x.shape
        H = w_hh.shape[1]
        x2 = x.reshape(T * B, I)
        # all steps' input projections in one GEMM, both biases folded into its epilogue
        if b_ih is not None:
            G = K.linear(x2, w_ih, b_ih + b_hh)
        else:
            G = K.matmul(x2, w_ih, trans_b=True)
        G = G.reshape(T, B, 4 * H)
        Hs = xp.empty((T + 1, B, H), x.dtype)
        Cs = xp.empty((T + 1, B, H), x.dtype)
        Hs[0] = h0
        Cs[0] = c0
        # every step in one kernel call: a_t = x_t W_ih^T + b + h_{t-1} W_hh^T, then the cell
        # (G[t] <- activations [i, f, g, o]; writes h_t, c_t)
        K.lstm_sequence_forward(G, w_hh, Hs, Cs)
        self.x2, self.G, self.Hs, self.Cs, self.w_ih, self.w_hh = x2, G, Hs, Cs, w_ih, w_hh
        return Hs[1:], Hs[T].copy(), Cs[T].copy()

    def backward(self, d_out, d_hn, d_cn):
        K, xp = self.backend, self.xp
        G, Hs, Cs, w_ih, w_hh = self.G, self.Hs, self.Cs, self.w_ih, self.w_hh
        T, B, H4 = G.shape
        H, dt = H4 // 4, G.dtype
        n = self.needs_input_grad
        # dH[t] = dL/dh_t: from the output, from h_n, and (added below, step by step) from step t + 1
        dH = xp.zeros((T, B, H), dt) if d_out is None else xp.array(d_out, dtype=dt, order="C")
        if d_hn is not None:
            dH[T - 1] += d_hn
        dc = xp.zeros((B, H), dt) if d_cn is None else xp.array(d_cn, dtype=dt, order="C")
        dG = xp.empty((T, B, H4), dt)
        # every step in one kernel call: da_t from the cell (dc <- dL/dc_{t-1}), dh_{t-1} += da_t W_hh
        K.lstm_sequence_backward(G, w_hh, Cs, dH, dc, dG)
        dG2 = dG.reshape(T * B, H4)
        dx = K.matmul(dG2, w_ih).reshape(T, B, -1) if n[0] else None  # (T B, 4H) (4H, I)
        dh0 = K.matmul(dG[0], w_hh) if n[1] else None
        dc0 = dc if n[2] else None
        dw_ih = K.matmul(dG2, self.x2, trans_a=True) if n[3] else None  # sum_t da_t^T x_t
        dw_hh = K.matmul(dG2, Hs[:T].reshape(T * B, H), trans_a=True) if n[4] else None  # sum_t da_t^T h_{t-1}
        db = K.sum_rows(dG2) if (n[5] or n[6]) else None
        return dx, dh0, dc0, dw_ih, dw_hh, db if n[5] else None, (db.copy() if n[6] else None)


class LSTM(Module):
    """Multi-layer LSTM over a sequence (PyTorch's ``nn.LSTM``).

    input: (T, B, I), or (B, T, I) with ``batch_first``, or unbatched (T, I)
    hx: optional (h_0, c_0), each (num_layers * D, B, H) (or (num_layers * D, H) unbatched); zeros if None
    returns output (T, B, D * H) (batch_first: (B, T, D * H)) and (h_n, c_n), each (num_layers * D, B, H);
    D = 2 if ``bidirectional`` else 1. ``dropout`` applies to the outputs of every layer but the last,
    in training mode. Parameters ~ U(-1/sqrt(H), 1/sqrt(H)).

    >>> lstm = nn.LSTM(10, 20, num_layers=2, batch_first=True)
    >>> out, (h, c) = lstm(pyengine.randn(3, 5, 10))
    >>> out.shape, h.shape
    (pyengine.Size([3, 5, 20]), pyengine.Size([2, 3, 20]))
    """

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
                 bidirectional=False, proj_size=0, device=None, dtype=None):
        super().__init__()
        dt = float_dtype(dtype, device, "LSTM")
        input_size = size_arg("LSTM", "input_size", input_size)
        hidden_size = size_arg("LSTM", "hidden_size", hidden_size, minimum=1)
        num_layers = size_arg("LSTM", "num_layers", num_layers, minimum=1)
        if isinstance(dropout, bool) or not isinstance(dropout, numbers.Number) or not 0 <= dropout <= 1:
            raise ValueError("dropout should be a number in range [0, 1] representing the probability of an "
                             "element being zeroed")
        if proj_size:
            raise NotImplementedError("LSTM: proj_size is not supported")
        if dropout > 0 and num_layers == 1:
            warnings.warn("dropout option adds dropout after all but last recurrent layer, so non-zero dropout "
                          f"expects num_layers greater than 1, but got dropout={dropout} and num_layers={num_layers}")
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.dropout = bias, batch_first, float(dropout)
        self.bidirectional, self.proj_size = bidirectional, 0
        D = 2 if bidirectional else 1
        H4 = 4 * hidden_size  # weight_ih of layer 0, of the layers above, weight_hh and both biases of all
        check_params("LSTM", dt, (D, H4, input_size), (D * (num_layers - 1), H4, hidden_size * D),
                     (D * num_layers, H4, hidden_size + 2 * bool(bias)))
        self._flat_weights_names = []
        for layer in range(num_layers):
            for direction in range(D):
                in_size = input_size if layer == 0 else hidden_size * D
                sfx = f"_l{layer}" + ("_reverse" if direction else "")
                shapes = [("weight_ih", (4 * hidden_size, in_size)), ("weight_hh", (4 * hidden_size, hidden_size))]
                if bias:
                    shapes += [("bias_ih", (4 * hidden_size,)), ("bias_hh", (4 * hidden_size,))]
                for name, shape in shapes:
                    setattr(self, name + sfx, Parameter(np.empty(shape, dt)))
                    self._flat_weights_names.append(name + sfx)
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

    @tensor_op("input", name="LSTM")
    def forward(self, input, hx=None):
        if input.ndim not in (2, 3):
            raise ValueError(f"LSTM: Expected input to be 2D or 3D, got {input.ndim}D instead")
        batched = input.ndim == 3
        D, L, H = (2 if self.bidirectional else 1), self.num_layers, self.hidden_size
        if not batched:
            input = input.unsqueeze(1)  # (T, 1, I)
        elif self.batch_first:
            input = input.transpose(0, 1)  # (T, B, I): a view; LSTMLayer makes it contiguous once
        T, B, I = input.shape
        if T == 0 or B == 0:
            raise ValueError(f"LSTM: expected a non-empty sequence and batch, got input of shape {tuple(input.shape)} "
                             "(as (T, B, I))")
        if I != self.input_size:
            raise RuntimeError(f"LSTM: input.size(-1) must be equal to input_size. Expected {self.input_size}, "
                               f"got {I}")
        weights = self.all_weights
        dt = weights[0][0].data.dtype
        if input.data.dtype != dt:
            raise RuntimeError(f"LSTM: input dtype {input.dtype} does not match the parameters' dtype "
                               f"{weights[0][0].dtype}; convert the input or the module (module.to(dtype))")
        if hx is None:
            zeros = np.zeros((B, H), dt)
            h0 = c0 = [zeros] * (L * D)  # arrays: constants to LSTMLayer, no gradient
        else:
            h0, c0 = hx
            want = 2 if not batched else 3
            if h0.ndim != want or c0.ndim != want:
                kind = "batched 3-D" if batched else "unbatched 2-D"
                raise RuntimeError(f"LSTM: for {kind} input, hx and cx should also be {want}-D but got "
                                   f"({h0.ndim}-D, {c0.ndim}-D) tensors")
            if not batched:
                h0, c0 = h0.unsqueeze(1), c0.unsqueeze(1)
            for name, s in (("hidden[0]", h0), ("hidden[1]", c0)):
                if tuple(s.shape) != (L * D, B, H):
                    raise RuntimeError(f"LSTM: Expected {name} size {(L * D, B, H)}, got {tuple(s.shape)}")
                if s.data.dtype != dt:
                    raise RuntimeError(f"LSTM: {name} has dtype {s.dtype}, expected {weights[0][0].dtype}")
        hs, cs = [], []
        x = input
        for layer in range(L):
            outs = []
            for d in range(D):
                k = layer * D + d
                w = weights[k]
                b_ih, b_hh = (w[2], w[3]) if self.bias else (None, None)
                xin = x if d == 0 else flip(x, 0)
                out, h_n, c_n = LSTMLayer.apply(xin, h0[k], c0[k], w[0], w[1], b_ih, b_hh)
                outs.append(out if d == 0 else flip(out, 0))
                hs.append(h_n)
                cs.append(c_n)
            x = outs[0] if D == 1 else cat(outs, dim=2)
            if self.dropout and self.training and layer < L - 1:
                x = F.dropout(x, self.dropout, True)
        h_n, c_n = stack(hs, 0), stack(cs, 0)
        if not batched:
            return x.squeeze(1), (h_n.squeeze(1), c_n.squeeze(1))
        if self.batch_first:
            x = x.transpose(0, 1)
        return x, (h_n, c_n)


class LSTMCell(Module):
    """One LSTM step: (h', c') = cell(x, (h, c)) (PyTorch's ``nn.LSTMCell``).

    input: (B, I) or (I,)   hx: optional (h, c), each (B, H) or (H,); zeros if None
    weight_ih: (4H, I), weight_hh: (4H, H), bias_ih, bias_hh: (4H,), all ~ U(-1/sqrt(H), 1/sqrt(H)).
    Runs the same fused Function as LSTM, with T = 1.

    >>> cell = nn.LSTMCell(10, 20)
    >>> h, c = cell(pyengine.randn(3, 10))
    """

    def __init__(self, input_size, hidden_size, bias=True, device=None, dtype=None):
        super().__init__()
        dt = float_dtype(dtype, device, "LSTMCell")
        input_size = size_arg("LSTMCell", "input_size", input_size)
        hidden_size = size_arg("LSTMCell", "hidden_size", hidden_size, minimum=1)
        check_params("LSTMCell", dt, (4 * hidden_size, input_size + hidden_size), (8 * hidden_size,))
        self.input_size, self.hidden_size, self.bias = input_size, hidden_size, bias
        self.weight_ih = Parameter(np.empty((4 * hidden_size, input_size), dt))
        self.weight_hh = Parameter(np.empty((4 * hidden_size, hidden_size), dt))
        if bias:
            self.bias_ih = Parameter(np.empty(4 * hidden_size, dt))
            self.bias_hh = Parameter(np.empty(4 * hidden_size, dt))
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
        return s if self.bias else s + ", bias=False"

    @tensor_op("input", name="LSTMCell")
    def forward(self, input, hx=None):
        if input.ndim not in (1, 2):
            raise ValueError(f"LSTMCell: Expected input to be 1D or 2D, got {input.ndim}D instead")
        if input.shape[-1] != self.input_size:
            raise RuntimeError(f"LSTMCell: input has inconsistent input_size: got {input.shape[-1]} expected "
                               f"{self.input_size}")
        batched = input.ndim == 2
        x = input if batched else input.unsqueeze(0)
        B, H, dt = x.shape[0], self.hidden_size, self.weight_ih.data.dtype
        if x.data.dtype != dt:
            raise RuntimeError(f"LSTMCell: input dtype {input.dtype} does not match the parameters' dtype "
                               f"{self.weight_ih.dtype}")
        if hx is None:
            h0 = c0 = np.zeros((B, H), dt)
        else:
            h0, c0 = hx
            if not batched:
                h0, c0 = h0.unsqueeze(0), c0.unsqueeze(0)
            for name, s in (("hx", h0), ("cx", c0)):
                if tuple(s.shape) != (B, H):
                    raise RuntimeError(f"LSTMCell: {name} has shape {tuple(s.shape)}, expected {(B, H)}")
        _, h, c = LSTMLayer.apply(x.unsqueeze(0), h0, c0, self.weight_ih, self.weight_hh, self.bias_ih,
                                  self.bias_hh)
        if not batched:
            return h.squeeze(0), c.squeeze(0)
        return h, c
