"""RMSprop (Tieleman & Hinton 2012), as PyTorch computes it."""
from ..backend import get_backend
from .optimizer import Optimizer, _check_nonnegative

__all__ = ["RMSprop"]


class RMSprop(Optimizer):
    r"""RMSprop: divide the gradient by a running root mean square of its recent values (Tieleman & Hinton
    2012, Coursera lecture 6e), with PyTorch's options and its placement of eps (outside the root).

    For each parameter p with gradient g, at every step:

        g = -g                                     if maximize
        g = g + weight_decay * p                   if weight_decay != 0
        square_avg = alpha * square_avg + (1 - alpha) * g * g
        if centered (Graves 2013):
            grad_avg = alpha * grad_avg + (1 - alpha) * g
            avg = sqrt(square_avg - grad_avg * grad_avg) + eps
        else:
            avg = sqrt(square_avg) + eps
        if momentum > 0:
            momentum_buffer = momentum * momentum_buffer + g / avg
            p = p - lr * momentum_buffer
        else:
            p = p - lr * g / avg

    ``state[p]`` holds ``step`` (int), ``square_avg``, and ``momentum_buffer`` (momentum > 0) and
    ``grad_avg`` (centered) as Tensors, all starting at zero, as PyTorch's. Parameters whose ``grad``
    is None are skipped. The update runs in the backend kernel ``rmsprop_update``: one call per
    param group and step.

    Args:
        params: iterable of Tensors or of param-group dicts.
        lr: learning rate (default 1e-2).
        alpha: smoothing constant of the running averages (default 0.99).
        eps: added to the denominator for numerical stability (default 1e-8).
        weight_decay: L2 penalty (default 0).
        momentum: momentum factor (default 0).
        centered: normalize by an estimate of the gradient's variance instead of its second moment.
        maximize: maximize the objective instead of minimizing it.
        capturable, foreach: accepted for compatibility with PyTorch programs and ignored (CUDA graphs;
            the update of a group is always one fused kernel call here).
        differentiable: must be False (no autograd through the optimizer step).

    Example::

        opt = pyengine.optim.RMSprop(model.parameters(), lr=1e-3, momentum=0.9)
    """

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0, centered=False,
                 capturable=False, foreach=None, maximize=False, differentiable=False):
        if differentiable:
            raise NotImplementedError("RMSprop: differentiable=True (autograd through the step) is not supported")
        defaults = dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
                        centered=centered, maximize=maximize)
        super().__init__(params, defaults)

    def _validate_group(self, group):
        for option in ("lr", "alpha", "eps", "weight_decay", "momentum"):
            _check_nonnegative("RMSprop", option, group[option])

    def step(self, closure=None):
        """One RMSprop step for every parameter that has a gradient; returns ``closure()``'s loss if given."""
        loss = self._eval_closure(closure)
        kernels = get_backend("cpu")  # looked up once per step: picks up the compiled kernels when present
        for group in self.param_groups:
            momentum = float(group["momentum"])
            centered = bool(group["centered"])
            params, grads, square_avgs, momentum_buffers, grad_avgs = [], [], [], [], []
            write_back = []
            for p, state in self._stepping(group):
                if not state:
                    state["step"] = 0
                    state["square_avg"] = self._buffer(p)
                # buffers an option needs, made when it is first on (a group's options may change)
                if momentum > 0 and state.get("momentum_buffer") is None:
                    state["momentum_buffer"] = self._buffer(p)
                if centered and state.get("grad_avg") is None:
                    state["grad_avg"] = self._buffer(p)
                state["step"] += 1
                params.append(self._param_array(p, write_back))
                grads.append(self._grad_array(p))
                square_avgs.append(state["square_avg"]._data)
                if momentum > 0:
                    momentum_buffers.append(state["momentum_buffer"]._data)
                if centered:
                    grad_avgs.append(state["grad_avg"]._data)
            if params:
                kernels.rmsprop_update(params, grads, square_avgs, momentum_buffers, grad_avgs, float(group["lr"]),
                                       float(group["alpha"]), float(group["eps"]), float(group["weight_decay"]),
                                       momentum, centered, bool(group["maximize"]))
            self._write_back(write_back)
        return loss
