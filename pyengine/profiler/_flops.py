"""Floating-point operation counts and memory traffic of kernel calls and of the ops that call no kernel.

Conventions (those of PyTorch's flop counter where it has one): a multiply-add is 2 FLOPs, so a GEMM of
(M, K) x (K, N) is 2*M*N*K, bias and scaling not counted; attention forward is its two GEMMs,
2*Tq*Tk*(D + Dv) per batch-head (masked or causal entries counted too, as PyTorch does); attention backward
recomputes the scores and makes four GEMMs: 2*Tq*Tk*(3*D + 2*Dv). Pointwise kernels and ops, losses, norms,
softmax and reductions count one FLOP per element of their main input ("elementwise = numel"): a lower
bound that ranks them, not an instruction count. The recurrent sequence kernels (LSTM, GRU, Elman RNN, one
layer over all steps) count their recurrent GEMMs, 2 * rows * G * H with rows the packed steps' rows and w_hh
(G, H) (G = 4H, 3H, H): the forward's h_{t-1} W_hh^T and the backward's dG_t W_hh (the gates' pointwise
work is not counted, like a GEMM's bias). Embedding and optimizer updates have no count (None); their bytes
still show what they move.

Bytes: the nbytes of every array a kernel receives (lists of arrays included) plus those it returns that it
did not receive, i.e. each operand read or written once: the traffic an ideal cache would allow.
"""
import numpy as np

from ..tensor import Tensor


def _arg(args, kwargs, i, name, default=None):
    if len(args) > i:
        return args[i]
    return kwargs.get(name, default)


def _first_array(out):
    return out[0] if isinstance(out, tuple) else out


def _matmul(args, kwargs, out):
    a = args[0]
    trans_a = _arg(args, kwargs, 2, "trans_a", False)
    k = a.shape[-2] if trans_a else a.shape[-1]
    return 2 * _first_array(out).size * k


def _linear(args, kwargs, out):
    return 2 * _first_array(out).size * args[0].shape[-1]


def _recurrence(w_pos, rows_pos, rows_name="G"):
    """A sequence kernel's recurrent GEMMs: 2 * rows * w_hh.size, w_hh at args[w_pos] and the gate rows' array
    (rows = its first dimension, every packed step's rows) at args[rows_pos]."""
    def count(args, kwargs, out):
        w = _arg(args, kwargs, w_pos, "w_hh")
        g = _arg(args, kwargs, rows_pos, rows_name)
        if not (isinstance(w, np.ndarray) and isinstance(g, np.ndarray)) or g.ndim < 1:
            return None
        return 2 * g.shape[0] * w.size
    return count


def _attention_dims(args):
    q, k, v = args[0], args[1], args[2]
    d, dv, tk = q.shape[-1], v.shape[-1], k.shape[-2]
    rows = q.size // d if d else 0  # batch-heads x Tq
    return rows, tk, d, dv


def _attention_forward(args, kwargs, out):
    rows, tk, d, dv = _attention_dims(args)
    return 2 * rows * tk * (d + dv)


def _attention_backward(args, kwargs, out):
    rows, tk, d, dv = _attention_dims(args)
    return 2 * rows * tk * (3 * d + 2 * dv)


def _numel_of(i):
    def count(args, kwargs, out):
        x = args[i] if len(args) > i else None
        return x.size if isinstance(x, np.ndarray) else None
    return count


KERNEL_FLOPS = {
    "matmul": _matmul,
    "linear": _linear,
    "attention_forward": _attention_forward,
    "attention_backward": _attention_backward,
    "lstm_sequence_forward": _recurrence(1, 0),  # (G, w_hh, ...)
    "lstm_sequence_backward": _recurrence(1, 0),
    "gru_sequence_forward": _recurrence(2, 0),  # (G, Q, w_hh, ...)
    "gru_sequence_backward": _recurrence(2, 0),
    "rnn_sequence_forward": _recurrence(1, 0),  # (G, w_hh, ...)
    "rnn_sequence_backward": _recurrence(0, 4, "dG"),  # (w_hh, Hs, dH, dh, dG, ...)
}
for _name in ("relu_forward", "relu_backward", "gelu_forward", "gelu_backward", "softmax_forward",
              "softmax_backward", "cross_entropy_forward", "cross_entropy_backward", "mse_forward", "mse_backward",
              "bce_forward", "bce_backward", "bce_with_logits_forward", "bce_with_logits_backward",
              "layer_norm_forward", "lstm_cell_forward", "lstm_cell_backward", "sum_rows", "add_into"):
    KERNEL_FLOPS[_name] = _numel_of(0)
KERNEL_FLOPS["layer_norm_backward"] = _numel_of(1)  # (dy, x, ...): x's elements


def traffic_bytes(args, kwargs, out):
    seen = set()
    total = 0

    def add(x):
        nonlocal total
        if isinstance(x, np.ndarray) and id(x) not in seen:
            seen.add(id(x))
            total += x.nbytes
        elif isinstance(x, (list, tuple)):
            for y in x:
                if isinstance(y, np.ndarray) and id(y) not in seen:
                    seen.add(id(y))
                    total += y.nbytes

    for a in args:
        add(a)
    for a in kwargs.values():
        add(a)
    add(out)
    return total


# Ops that compute in NumPy without a kernel: one FLOP per output element (reductions: per input element).
_POINTWISE_OPS = frozenset((
    "Add", "Sub", "Mul", "Div", "Pow", "Maximum", "Minimum", "Where", "Neg", "Exp", "Log", "Sqrt", "Rsqrt",
    "Abs", "Sin", "Cos", "Tanh", "Sigmoid", "Silu", "Clamp", "Lerp", "Log1p", "Expm1", "Log2", "Log10",
    "Reciprocal", "Softplus", "Elu", "Hardtanh", "Hardswish", "Hardsigmoid", "Mish", "Softsign", "Tanhshrink",
    "Logsigmoid", "Hypot", "Atan2", "LogAddExp", "Remainder", "RoundedDiv", "MaskedFill"))
_REDUCTION_OPS = frozenset(("Sum", "Mean", "Var", "Prod", "Cumsum", "Cumprod", "LogSumExp", "MaxMin",
                            "MaxMinDim", "VectorNorm"))


def op_flops(name, args, res):
    """FLOPs of one op's forward when no kernel under it counted them; None when unknown."""
    if name in _POINTWISE_OPS:
        y = res[0] if type(res) is tuple else res
        return y._data.size if isinstance(y, Tensor) else None
    if name in _REDUCTION_OPS:
        x = args[0] if args else None
        return x._data.size if isinstance(x, Tensor) else None
    if name == "MatMul" and len(args) >= 2 and isinstance(args[0], Tensor):
        y = res[0] if type(res) is tuple else res
        a = args[0]._data
        return 2 * max(y._data.size, 1) * a.shape[-1] if a.ndim else None
    if name == "Einsum":
        return None
    return None


def human(n, unit=""):
    """1234567 -> '1.235M' (SI prefixes)."""
    if n is None:
        return ""
    n = float(n)
    for prefix in ("", "K", "M", "G", "T", "P"):
        if abs(n) < 1000 or prefix == "P":
            return f"{n:.3f}{prefix}{unit}" if prefix else f"{n:.0f}{unit}"
        n /= 1000
    return f"{n:.3f}P{unit}"  # pragma: no cover

