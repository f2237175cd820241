"""pyengine.nn.utils: gradient clipping, flattening parameters into one vector, and (``nn.utils.rnn``) packed
sequences."""
import math

import numpy as np

from ...autograd import no_grad
from ...ops import cat
from ...tensor import Tensor, _wrap

__all__ = ["clip_grad_norm_", "clip_grad_value_", "parameters_to_vector", "vector_to_parameters"]


def _grads(parameters):
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    return [p.grad._data for p in parameters if p.grad is not None]


def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False, foreach=None):
    """Scale all gradients together so that their joint norm is at most ``max_norm``, in place.

    total_norm = (sum_p ||g_p||^q)^(1/q) over all parameters (q = norm_type; inf: max |g|);
    if total_norm > max_norm every g is multiplied by max_norm / (total_norm + 1e-6).
    Returns total_norm (before clipping) as a 0-d tensor.

    >>> loss.backward(); nn.utils.clip_grad_norm_(model.parameters(), 1.0); opt.step()
    """
    grads = _grads(parameters)
    max_norm, norm_type = float(max_norm), float(norm_type)
    if not grads:
        return _wrap(np.asarray(0.0, np.float32))
    dt = grads[0].dtype
    if math.isinf(norm_type):
        total = max(float(np.abs(g).max()) if g.size else 0.0 for g in grads)
    elif norm_type == 2.0:
        # one BLAS dot per gradient: ||g||^2 = g . g
        total = math.sqrt(sum(float(np.dot(g.ravel(), g.ravel())) for g in grads))
    else:
        total = sum(float(np.sum(np.abs(g.astype(np.float64)) ** norm_type)) for g in grads) ** (1.0 / norm_type)
    if error_if_nonfinite and not math.isfinite(total):
        raise RuntimeError(f"The total norm of order {norm_type} for gradients from `parameters` is non-finite, so "
                           "it cannot be clipped. To disable this error and scale the gradients by the non-finite "
                           "norm anyway, set `error_if_nonfinite=False`")
    clip_coef = max_norm / (total + 1e-6)
    if clip_coef < 1.0:
        for g in grads:
            g *= g.dtype.type(clip_coef)
    return _wrap(np.asarray(total, dt))


def clip_grad_value_(parameters, clip_value, foreach=None):
    """Clamp every gradient element into [-clip_value, clip_value], in place."""
    v = float(clip_value)
    for g in _grads(parameters):
        np.clip(g, -v, v, out=g)


def parameters_to_vector(parameters):
    """All parameters flattened and concatenated into one 1-D tensor (differentiable)."""
    return cat([p.reshape(-1) for p in parameters], dim=0)


def vector_to_parameters(vec, parameters):
    """Copy consecutive slices of the 1-D ``vec`` into ``parameters`` (in place)."""
    if not isinstance(vec, Tensor):
        raise TypeError(f"expected pyengine.Tensor, but got: {type(vec).__name__}")
    parameters = list(parameters)
    total = sum(p.numel() for p in parameters)
    if vec.ndim != 1 or vec.numel() != total:
        raise ValueError(f"vector_to_parameters: vec has shape {tuple(vec.shape)}, expected ({total},)")
    i = 0
    with no_grad():
        for p in parameters:
            n = p.numel()
            p._data[...] = vec._data[i:i + n].reshape(p._data.shape)
            i += n


from . import rnn  # noqa: E402,F401  (nn.utils.rnn: PackedSequence, pack_padded_sequence, ...)
