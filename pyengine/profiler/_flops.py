"""Floating-point operation counts and memory traffic of kernel calls and of the ops that call no kernel.

Conventions (those of PyTorch's flop counter where it has one): a multiply-add is 2 FLOPs, so a GEMM of
(M, K) x (K, N) is 2*M*N*K, bias and scaling not counted; attention forward is its two GEMMs,
2*Tq*Tk*(D + Dv) per batch-head (masked or causal entries counted too, as PyTorch does); attention backward
recomputes the scores and makes four GEMMs: 2*Tq*Tk*(3*D + 2*Dv). Pointwise kernels and ops, losses, norms,
softmax and reductions count one FLOP per element of their main input ("elementwise = numel"): a lower
bound that ranks them, not an instruction count. Embedding, optimizer updates and the recurrent sequence
kernels have no count (None); their bytes still show what they move.

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

