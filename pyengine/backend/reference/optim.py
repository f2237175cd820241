"""Optimizer updates, in place on lists of parameters (one call per param group)."""
import numpy as np

__all__ = ["adam_update", "sgd_update"]


def adam_update(params, grads, exp_avgs, exp_avg_sqs, step, lr, beta1, beta2, eps,
                weight_decay=0.0, decoupled=False, maximize=False):
    """Adam (Kingma & Ba 2015) / AdamW (Loshchilov & Hutter 2019), as PyTorch computes them.

    For each parameter p with gradient g (lists of same-shape arrays, updated in place):
        g = -g if maximize
        AdamW: p = p * (1 - lr * weight_decay)      Adam: g = g + weight_decay * p
        m = beta1 m + (1 - beta1) g
        v = beta2 v + (1 - beta2) g^2
        p = p - lr / (1 - beta1^step) * m / (sqrt(v) / sqrt(1 - beta2^step) + eps)
    ``step`` is the 1-based step count after this update.
    """
    bias_correction1 = 1.0 - beta1 ** step
    bias_correction2 = 1.0 - beta2 ** step
    for p, g, m, v in zip(params, grads, exp_avgs, exp_avg_sqs):
        g = -g if maximize else g
        if weight_decay != 0.0:
            if decoupled:
                p *= 1.0 - lr * weight_decay
            else:
                g = g + weight_decay * p
        m *= beta1
        m += (1.0 - beta1) * g
        v *= beta2
        v += (1.0 - beta2) * g * g
        denom = np.sqrt(v) / np.sqrt(bias_correction2) + eps
        p -= (lr / bias_correction1) * m / denom


def sgd_update(params, grads, momentum_buffers, lr, momentum=0.0, dampening=0.0, nesterov=False,
               weight_decay=0.0, maximize=False, first_step=False):
    """SGD with momentum (Sutskever et al. 2013), as PyTorch computes it, in place.

        g = -g if maximize
        g = g + weight_decay * p
        if momentum:  b = g if first_step else momentum * b + (1 - dampening) * g
                      g = g + momentum * b if nesterov else b
        p = p - lr * g
    momentum_buffers: list of arrays (ignored when momentum == 0).
    """
    for i, (p, g) in enumerate(zip(params, grads)):
        if maximize:
            g = -g
        if weight_decay != 0.0:
            g = g + weight_decay * p
        if momentum != 0.0:
            b = momentum_buffers[i]
            if first_step:
                b[...] = g
            else:
                b *= momentum
                b += (1.0 - dampening) * g
            g = g + momentum * b if nesterov else b
        p -= lr * g
