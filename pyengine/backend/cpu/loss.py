"""Compiled loss kernels (csrc/cpu/loss*.cpp); the specification is reference/loss.py.

Same signatures and return conventions as the reference twins. Inputs are made C-contiguous here; dtypes
are not converted (float32 and float64 run natively, mixing them raises TypeError), except that integer
targets of cross-entropy become int64 and a Python number given as ``dloss`` takes the input's dtype.
"""
import numpy as np

from ._lib import _C

__all__ = ["cross_entropy_forward", "cross_entropy_backward", "mse_forward", "mse_backward",
           "bce_forward", "bce_backward", "bce_with_logits_forward", "bce_with_logits_backward"]

def _asc(a):
    """C-contiguous view or copy; unlike np.ascontiguousarray it keeps 0-d arrays 0-d."""
    a = np.asarray(a)
    return a if a.flags.c_contiguous else np.ascontiguousarray(a)

_empty = np.empty


def _class_targets(targets):
    targets = _asc(targets)
    if targets.dtype != np.int64 and targets.dtype.kind in "iu":
        targets = targets.astype(np.int64)
    return targets


def _dloss(dloss, like):
    if isinstance(dloss, np.ndarray):
        return _asc(dloss)
    return np.asarray(dloss, dtype=like.dtype)  # a Python number


def cross_entropy_forward(logits, targets, ignore_index=-100, label_smoothing=0.0):
    """Per-row softmax cross-entropy with label smoothing (Szegedy et al. 2016), fused in one kernel.

    logits: (N, C) float   targets: (N,) int64   ->   (loss (N,), lse (N,)) in the logits' dtype.
    loss_i = lse_i - (1 - eps) x_{i,t_i} - (eps / C) sum_j x_{i,j}; 0 where t_i == ignore_index.
    Raises IndexError if a target is out of range (and not ignore_index).
    """
    logits = _asc(logits)
    targets = _class_targets(targets)
    loss = _empty(logits.shape[:1], logits.dtype)
    lse = _empty(logits.shape[:1], logits.dtype)
    _C.cross_entropy_forward(logits, targets, int(ignore_index), float(label_smoothing), loss, lse)
    return loss, lse


def cross_entropy_backward(logits, targets, lse, dloss, ignore_index=-100, label_smoothing=0.0):
    """dlogits_{i,j} = dloss_i * (softmax(x_i)_j - (1 - eps) [j == t_i] - eps / C); 0 on ignored rows.

    logits: (N, C)  targets: (N,)  lse: (N,) from the forward  dloss: (N,) (or one value)  ->  dlogits: (N, C)
    """
    logits = _asc(logits)
    dlogits = _empty(logits.shape, logits.dtype)
    _C.cross_entropy_backward(logits, _class_targets(targets), _asc(lse), _dloss(dloss, logits),
                              int(ignore_index), float(label_smoothing), dlogits)
    return dlogits


def mse_forward(input, target):
    """sum((input - target)^2) as a 0-d array of the input dtype (accumulated in float64).

    input, target: same shape.
    """
    input = _asc(input)
    out = _empty((), input.dtype)
    _C.mse_forward(input, _asc(target), out)
    return out


def mse_backward(input, target, scale):
    """d/dinput of scale * sum((input - target)^2) = 2 * scale * (input - target)."""
    input = _asc(input)
    dinput = _empty(input.shape, input.dtype)
    _C.mse_backward(input, _asc(target), float(scale), dinput)
    return dinput


def bce_forward(probs, targets):
    """Elementwise -(y log p + (1 - y) log(1 - p)), each log clamped at -100 (as PyTorch).

    probs, targets: same shape; ValueError if some p lies outside [0, 1].
    """
    probs = _asc(probs)
    out = _empty(probs.shape, probs.dtype)
    _C.bce_forward(probs, _asc(targets), out)
    return out


def bce_backward(probs, targets, dloss):
    """dprobs = dloss * (p - y) / max(p (1 - p), 1e-12).   dloss: same shape, or size 1."""
    probs = _asc(probs)
    dprobs = _empty(probs.shape, probs.dtype)
    _C.bce_backward(probs, _asc(targets), _dloss(dloss, probs), dprobs)
    return dprobs


def bce_with_logits_forward(logits, targets):
    """Elementwise BCE on logits, the stable form: max(x, 0) - x y + log(1 + exp(-|x|)).

    logits, targets: same shape.
    """
    logits = _asc(logits)
    out = _empty(logits.shape, logits.dtype)
    _C.bce_with_logits_forward(logits, _asc(targets), out)
    return out


def bce_with_logits_backward(logits, targets, dloss):
    """dlogits = dloss * (sigmoid(x) - y).   dloss: same shape, or size 1."""
    logits = _asc(logits)
    dlogits = _empty(logits.shape, logits.dtype)
    _C.bce_with_logits_backward(logits, _asc(targets), _dloss(dloss, logits), dlogits)
    return dlogits
