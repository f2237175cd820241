"""Compiled optim kernels (csrc/cpu/optim*.cpp); the specification is reference/optim.py.

Same signatures as the reference twins: in place over lists of arrays, one call per param group. The
binding checks every list item (dtype, shape, contiguity, writability); params and state are updated in
place, so they must already be C-contiguous; a non-contiguous gradient is copied.
"""
from ._lib import _C

__all__ = ["adam_update", "sgd_update", "rmsprop_update", "adagrad_update"]


def adam_update(params, grads, exp_avgs, exp_avg_sqs, step, lr, beta1, beta2, eps,
                weight_decay=0.0, decoupled=False, maximize=False, max_exp_avg_sqs=None):
    """Adam (Kingma & Ba 2015) / AdamW (Loshchilov & Hutter 2019), as PyTorch computes them, in place.

    params, grads, exp_avgs, exp_avg_sqs: lists of same-shape float arrays (one param group).
    ``step`` is the 1-based step count after this update. One fused pass per parameter:
        g = -g if maximize;  AdamW: p *= 1 - lr wd;  Adam: g += wd p
        m = beta1 m + (1 - beta1) g;  v = beta2 v + (1 - beta2) g^2
        AMSGrad (``max_exp_avg_sqs``, a list, given): v_max = max(v_max, v) (NaN-propagating), used for v
        p -= lr / (1 - beta1^step) * m / (sqrt(v) / sqrt(1 - beta2^step) + eps)
    """
    _C.adam_update(params, grads, exp_avgs, exp_avg_sqs, int(step), float(lr), float(beta1), float(beta2),
                   float(eps), float(weight_decay), bool(decoupled), bool(maximize), max_exp_avg_sqs)


def sgd_update(params, grads, momentum_buffers, lr, momentum=0.0, dampening=0.0, nesterov=False,
               weight_decay=0.0, maximize=False, first_step=False):
    """SGD with momentum (Sutskever et al. 2013), as PyTorch computes it, in place.

        g = -g if maximize
        g = g + weight_decay * p
        if momentum:  b = g if first_step else momentum * b + (1 - dampening) * g
                      g = g + momentum * b if nesterov else b
        p = p - lr * g
    momentum_buffers: list of arrays (ignored when momentum == 0; may then be None).
    """
    _C.sgd_update(params, grads, momentum_buffers, float(lr), float(momentum), float(dampening), bool(nesterov),
                  float(weight_decay), bool(maximize), bool(first_step))


def rmsprop_update(params, grads, square_avgs, momentum_buffers, grad_avgs, lr, alpha, eps,
                   weight_decay=0.0, momentum=0.0, centered=False, maximize=False):
    """RMSprop (Tieleman & Hinton 2012), as PyTorch computes it, in place; one fused pass per parameter:

        g = -g if maximize;  g += wd p;  v = alpha v + (1 - alpha) g^2
        avg = sqrt(v - a^2) + eps with a = alpha a + (1 - alpha) g (centered), else sqrt(v) + eps
        p -= lr b with b = momentum b + g / avg (momentum != 0), else p -= lr g / avg
    momentum_buffers / grad_avgs: lists of arrays, used only with momentum / centered (else may be None).
    """
    _C.rmsprop_update(params, grads, square_avgs, momentum_buffers, grad_avgs, float(lr), float(alpha), float(eps),
                      float(weight_decay), float(momentum), bool(centered), bool(maximize))


def adagrad_update(params, grads, state_sums, step, lr, lr_decay=0.0, weight_decay=0.0, eps=1e-10,
                   maximize=False):
    """Adagrad (Duchi et al. 2011), as PyTorch computes it, in place; one fused pass per parameter:

        g = -g if maximize;  g += wd p;  s += g^2
        p -= lr / (1 + (step - 1) lr_decay) * g / (sqrt(s) + eps)
    ``step`` is the 1-based step count after this update.
    """
    _C.adagrad_update(params, grads, state_sums, int(step), float(lr), float(lr_decay), float(weight_decay),
                      float(eps), bool(maximize))
