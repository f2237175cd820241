"""Losses: fused softmax + cross-entropy, MSE, binary cross-entropy (plain and with logits)."""
import numpy as np

__all__ = ["cross_entropy_forward", "cross_entropy_backward", "mse_forward", "mse_backward",
           "bce_forward", "bce_backward", "bce_with_logits_forward", "bce_with_logits_backward"]


def _check_targets(op, targets, n_classes, ignore_index):
    valid = targets != ignore_index
    bad = valid & ((targets < 0) | (targets >= n_classes))
    if np.any(bad):
        raise IndexError(f"{op}: target {int(targets[bad][0])} is out of range for {n_classes} classes")
    return valid


def cross_entropy_forward(logits, targets, ignore_index=-100, label_smoothing=0.0):
    """Per-row cross-entropy of softmax(logits), with label smoothing (Szegedy et al. 2016).

    logits: (N, C) float   targets: (N,) int64
    With lse = log sum_j exp(x_j) and eps = label_smoothing:
        loss_i = lse_i - (1 - eps) x_{i,t_i} - (eps / C) sum_j x_{i,j}
    Rows whose target == ignore_index get loss 0.
    Returns (loss (N,), lse (N,)), both in the logits' dtype.
    """
    n, c = logits.shape
    valid = _check_targets("cross_entropy", targets, c, ignore_index)
    m = np.max(logits, axis=1)
    with np.errstate(invalid="ignore"):  # a row holding +inf: inf - inf is NaN, as in the kernel
        lse = m + np.log(np.sum(np.exp(logits - m[:, None]), axis=1))
    t = np.where(valid, targets, 0)
    x_t = logits[np.arange(n), t]
    loss = lse - (1.0 - label_smoothing) * x_t
    if label_smoothing:  # only then: 0 * sum_j x_j would make a row holding -inf NaN (the kernel skips it too)
        loss = loss - (label_smoothing / c) * np.sum(logits, axis=1)
    loss = np.where(valid, loss, 0).astype(logits.dtype)
    return loss, lse.astype(logits.dtype)


def cross_entropy_backward(logits, targets, lse, dloss, ignore_index=-100, label_smoothing=0.0):
    """dlogits_{i,j} = dloss_i * (softmax(x_i)_j - (1 - eps) [j == t_i] - eps / C); 0 on ignored rows.

    logits: (N, C)  targets: (N,)  lse: (N,) from the forward  dloss: (N,)  ->  dlogits: (N, C)
    """
    n, c = logits.shape
    valid = _check_targets("cross_entropy", targets, c, ignore_index)
    p = np.exp(logits - lse[:, None])
    p -= label_smoothing / c
    t = np.where(valid, targets, 0)
    p[np.arange(n), t] -= 1.0 - label_smoothing
    # an ignored row's gradient is 0, even where its softmax is NaN (NaN or inf logits): where, not * 0
    return np.where(valid[:, None], p * np.where(valid, dloss, 0)[:, None], 0).astype(logits.dtype)


def mse_forward(input, target):
    """sum((input - target)^2) as a 0-d array of the input dtype (accumulated in float64).

    input, target: same shape.
    """
    d = input.astype(np.float64) - target
    return np.asarray(np.sum(d * d), dtype=input.dtype)


def mse_backward(input, target, scale):
    """d/dinput of scale * sum((input - target)^2) = 2 * scale * (input - target)."""
    return (2.0 * scale * (input - target)).astype(input.dtype)


def bce_forward(probs, targets):
    """Elementwise -(y log p + (1 - y) log(1 - p)), each log clamped at -100 (as PyTorch).

    probs, targets: same shape; probs in [0, 1].
    """
    if np.any((probs < 0) | (probs > 1)):
        raise ValueError("binary_cross_entropy: input values must be in [0, 1]")
    log_p = np.maximum(np.log(probs), -100)
    log_1mp = np.maximum(np.log1p(-probs), -100)
    return (-(targets * log_p + (1 - targets) * log_1mp)).astype(probs.dtype)


def bce_backward(probs, targets, dloss):
    """dprobs = dloss * (p - y) / max(p (1 - p), 1e-12).   dloss: same shape, or size 1."""
    dloss = dloss if dloss.shape == probs.shape else dloss.reshape(())
    return (dloss * (probs - targets) / np.maximum(probs * (1 - probs), 1e-12)).astype(probs.dtype)


def bce_with_logits_forward(logits, targets):
    """Elementwise BCE on logits, the stable form: max(x, 0) - x y + log(1 + exp(-|x|)).

    logits, targets: same shape.
    """
    x = logits
    return (np.maximum(x, 0) - x * targets + np.log1p(np.exp(-np.abs(x)))).astype(x.dtype)


def bce_with_logits_backward(logits, targets, dloss):
    """dlogits = dloss * (sigmoid(x) - y).   dloss: same shape, or size 1."""
    dloss = dloss if dloss.shape == logits.shape else dloss.reshape(())
    s = 1.0 / (1.0 + np.exp(-logits))
    return (dloss * (s - targets)).astype(logits.dtype)
