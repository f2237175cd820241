"""Optimizer updates, in place on lists of parameters (one call per param group).

Each function is the specification of the compiled kernel of the same name (csrc/cpu/optim.cpp) and
follows PyTorch's algorithm (torch.optim's docs) step by step, so the trajectories match torch.optim.
NaN propagates through every update (np.maximum, as torch.maximum, returns NaN if either side is NaN).
"""
import numpy as np

__all__ = ["adam_update", "sgd_update", "rmsprop_update", "adagrad_update"]


def adam_update(params, grads, exp_avgs, exp_avg_sqs, step, lr, beta1, beta2, eps,
                weight_decay=0.0, decoupled=False, maximize=False, max_exp_avg_sqs=None):
    """Adam (Kingma & Ba 2015) / AdamW (Loshchilov & Hutter 2019), as PyTorch computes them.

    For each parameter p with gradient g (lists of same-shape arrays, updated in place):
        g = -g if maximize
        AdamW: p = p * (1 - lr * weight_decay)      Adam: g = g + weight_decay * p
        m = beta1 m + (1 - beta1) g
        v = beta2 v + (1 - beta2) g^2
        AMSGrad (max_exp_avg_sqs given; Reddi et al. 2018, PyTorch's variant):
            v_max = max(v_max, v);  v_max replaces v below
        p = p - lr / (1 - beta1^step) * m / (sqrt(v) / sqrt(1 - beta2^step) + eps)
    ``step`` is the 1-based step count after this update.
    """
    bias_correction1 = 1.0 - beta1 ** step
    bias_correction2 = 1.0 - beta2 ** step
    if max_exp_avg_sqs is None:
        max_exp_avg_sqs = [None] * len(params)
    for p, g, m, v, v_max in zip(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs):
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
        if v_max is not None:
            np.maximum(v_max, v, out=v_max)
            v = v_max
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


def rmsprop_update(params, grads, square_avgs, momentum_buffers, grad_avgs, lr, alpha, eps,
                   weight_decay=0.0, momentum=0.0, centered=False, maximize=False):
    """RMSprop (Tieleman & Hinton 2012, lecture 6e), as PyTorch computes it (torch.optim.RMSprop's
    algorithm; centered: Graves 2013), in place:

        g = -g if maximize
        g = g + weight_decay * p
        v = alpha v + (1 - alpha) g^2                                  (v: square_avgs)
        centered:  a = alpha a + (1 - alpha) g;  avg = sqrt(max(v - a^2, 0)) + eps   (a: grad_avgs)
        else:      avg = sqrt(v) + eps
        momentum:  b = momentum b + g / avg;  p = p - lr b              (b: momentum_buffers)
        else:      p = p - lr g / avg
    momentum_buffers are used only when momentum != 0, grad_avgs only when centered (else may be None).
    """
    for i, (p, g, v) in enumerate(zip(params, grads, square_avgs)):
        if maximize:
            g = -g
        if weight_decay != 0.0:
            g = g + weight_decay * p
        v *= alpha
        v += (1.0 - alpha) * g * g
        if centered:
            a = grad_avgs[i]
            a *= alpha
            a += (1.0 - alpha) * g
            var = v - a * a
            # v = inf with a finite a (a gradient of 1e30 in float32): the kernel's FMA keeps a^2 exact and gets
            # inf, where a^2 rounded to inf here would give inf - inf = NaN
            var = np.where(np.isinf(v) & np.isfinite(a), v, var)
            avg = np.sqrt(np.where(var < 0, 0, var)) + eps  # a variance: rounding must not make it NaN
        else:
            avg = np.sqrt(v) + eps
        if momentum != 0.0:
            b = momentum_buffers[i]
            b *= momentum
            b += g / avg
            p -= lr * b
        else:
            p -= lr * g / avg


def adagrad_update(params, grads, state_sums, step, lr, lr_decay=0.0, weight_decay=0.0, eps=1e-10,
                   maximize=False):
    """Adagrad (Duchi, Hazan & Singer 2011), as PyTorch computes it (torch.optim.Adagrad's algorithm),
    in place:

        g = -g if maximize
        g = g + weight_decay * p
        clr = lr / (1 + (step - 1) * lr_decay)
        s = s + g^2                                                    (s: state_sums)
        p = p - clr * g / (sqrt(s) + eps)
    ``step`` is the 1-based step count after this update.
    """
    clr = lr / (1.0 + (step - 1) * lr_decay)
    for p, g, s in zip(params, grads, state_sums):
        if maximize:
            g = -g
        if weight_decay != 0.0:
            g = g + weight_decay * p
        s += g * g
        p -= clr * g / (np.sqrt(s) + eps)
