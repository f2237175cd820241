"""Adadelta (Zeiler 2012), as PyTorch computes it."""
from ..backend import backend_of
from .optimizer import Optimizer, _check_nonnegative

__all__ = ["Adadelta"]


class Adadelta(Optimizer):
    r"""Adadelta: step sizes from running averages of squared gradients and squared updates (Zeiler 2012,
    "ADADELTA: An Adaptive Learning Rate Method"), with PyTorch's options.

    For each parameter p with gradient g:

        g = -g                                           if maximize
        g = g + weight_decay * p                         if weight_decay != 0
        square_avg = rho * square_avg + (1 - rho) * g * g
        delta = sqrt(acc_delta + eps) / sqrt(square_avg + eps) * g
        acc_delta = rho * acc_delta + (1 - rho) * delta * delta
        p = p - lr * delta

    ``state[p]`` holds ``step``, ``square_avg`` and ``acc_delta`` (Tensors of p's shape, starting at 0).
    The update is array math in Python (the backend's array module), one parameter at a time: there is
    no Adadelta kernel in the optim family yet.

    Args:
        params: iterable of Tensors or of param-group dicts.
        lr: scales the update (default 1.0).  rho: the averages' decay (default 0.9).
        eps: added inside the square roots (default 1e-6).  weight_decay: L2 penalty (default 0).
        maximize: maximize the objective instead of minimizing it.
        foreach, capturable: accepted for compatibility with PyTorch programs and ignored.
        differentiable: must be False (no autograd through the optimizer step).
    """

    def __init__(self, params, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0, foreach=None, *, capturable=False,
                 maximize=False, differentiable=False):
        if differentiable:
            raise NotImplementedError("Adadelta: differentiable=True (autograd through the step) is not supported")
        defaults = dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay, maximize=maximize)
        super().__init__(params, defaults)

    def _validate_group(self, group):
        for option in ("lr", "eps", "weight_decay"):
            _check_nonnegative("Adadelta", option, group[option])
        rho = _check_nonnegative("Adadelta", "rho", group["rho"])
        if rho > 1.0:
            raise ValueError(f"Adadelta: invalid rho={rho}; expected 0 <= rho <= 1")

    def step(self, closure=None):
        """One Adadelta step for every parameter that has a gradient; returns ``closure()``'s loss if given."""
        loss = self._eval_closure(closure)
        for group in self.param_groups:
            lr, rho, eps, wd = (float(group[k]) for k in ("lr", "rho", "eps", "weight_decay"))
            for p, state in self._stepping(group):
                if not state:
                    state["step"] = 0
                    state["square_avg"] = self._buffer(p)
                    state["acc_delta"] = self._buffer(p)
                state["step"] += 1
                xp = backend_of(p._data).xp
                g = self._grad_array(p)
                if group["maximize"]:
                    g = -g
                if wd != 0:
                    g = g + wd * p._data
                sq, acc = state["square_avg"]._data, state["acc_delta"]._data
                sq *= rho
                sq += (1 - rho) * g * g
                delta = xp.sqrt(acc + eps) / xp.sqrt(sq + eps) * g
                acc *= rho
                acc += (1 - rho) * delta * delta
                write_back = []
                arr = self._param_array(p, write_back)
                arr -= (lr * delta).astype(arr.dtype, copy=False)
                self._write_back(write_back)
        return loss
