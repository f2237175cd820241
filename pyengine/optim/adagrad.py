"""Adagrad (Duchi, Hazan & Singer 2011), as PyTorch computes it."""
from ..backend import get_backend
from .optimizer import Optimizer, _check_nonnegative

__all__ = ["Adagrad"]


class Adagrad(Optimizer):
    r"""Adagrad: per-coordinate learning rates from the sum of squared past gradients (Duchi, Hazan &
    Singer 2011, "Adaptive Subgradient Methods for Online Learning and Stochastic Optimization"), with
    PyTorch's options.

    For each parameter p with gradient g, at its step t = 1, 2, ...:

        g = -g                                  if maximize
        g = g + weight_decay * p                if weight_decay != 0
        clr = lr / (1 + (t - 1) * lr_decay)
        sum = sum + g * g
        p = p - clr * g / (sqrt(sum) + eps)

    ``state[p]`` holds ``step`` (int, counted per parameter) and ``sum`` (a Tensor that starts at
    ``initial_accumulator_value``); as in PyTorch it is made for every parameter when the optimizer is
    built (and, for groups added later, at their first step). Parameters whose ``grad`` is None are
    skipped. The update runs in the backend kernel ``adagrad_update``: one call per param group and
    step (one per distinct t when the group's parameters are at different step counts).

    Args:
        params: iterable of Tensors or of param-group dicts.
        lr: learning rate (default 1e-2).
        lr_decay: learning-rate decay (default 0).
        weight_decay: L2 penalty (default 0).
        initial_accumulator_value: the starting value of ``sum`` (default 0).
        eps: added to the denominator for numerical stability (default 1e-10).
        maximize: maximize the objective instead of minimizing it.
        foreach, fused: accepted for compatibility with PyTorch programs and ignored.
        differentiable: must be False (no autograd through the optimizer step).

    Example::

        opt = pyengine.optim.Adagrad(model.parameters(), lr=0.1)
    """

    def __init__(self, params, lr=1e-2, lr_decay=0, weight_decay=0, initial_accumulator_value=0, eps=1e-10,
                 foreach=None, *, maximize=False, differentiable=False, fused=None):
        if differentiable:
            raise NotImplementedError("Adagrad: differentiable=True (autograd through the step) is not supported")
        defaults = dict(lr=lr, lr_decay=lr_decay, eps=eps, weight_decay=weight_decay,
                        initial_accumulator_value=initial_accumulator_value, maximize=maximize)
        super().__init__(params, defaults)
        for group in self.param_groups:
            for p in group["params"]:
                self._init_state(p, group)

    def _validate_group(self, group):
        for option in ("lr", "lr_decay", "weight_decay", "initial_accumulator_value", "eps"):
            _check_nonnegative("Adagrad", option, group[option])

    def _init_state(self, p, group):
        state = self.state[p]
        if not state:
            state["step"] = 0
            state["sum"] = self._buffer(p, group["initial_accumulator_value"])
        return state

    def step(self, closure=None):
        """One Adagrad step for every parameter that has a gradient; returns ``closure()``'s loss if given."""
        loss = self._eval_closure(closure)
        kernels = get_backend("cpu")  # looked up once per step: picks up the compiled kernels when present
        for group in self.param_groups:
            batches = {}  # step t -> (params, grads, sums); usually one batch
            write_back = []
            for p, state in self._stepping(group):
                self._init_state(p, group)
                state["step"] += 1
                batch = batches.setdefault(state["step"], ([], [], []))
                batch[0].append(self._param_array(p, write_back))
                batch[1].append(self._grad_array(p))
                batch[2].append(state["sum"]._data)
            for step, (params, grads, sums) in batches.items():
                kernels.adagrad_update(params, grads, sums, step, float(group["lr"]), float(group["lr_decay"]),
                                       float(group["weight_decay"]), float(group["eps"]), bool(group["maximize"]))
            self._write_back(write_back)
        return loss
