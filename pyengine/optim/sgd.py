"""SGD with momentum, dampening, Nesterov momentum, weight decay and maximize (PyTorch's algorithm)."""

from ..backend import get_backend
from .optimizer import Optimizer, _check_nonnegative, _check_real

__all__ = ["SGD"]


class SGD(Optimizer):
    r"""Stochastic gradient descent, optionally with momentum (Sutskever et al. 2013), as PyTorch computes it.

    For each parameter p with gradient g, at every step:

        g = -g                        if maximize
        g = g + weight_decay * p      if weight_decay != 0
        if momentum != 0:
            b = g                                        at the parameter's first step
            b = momentum * b + (1 - dampening) * g       afterwards
            g = g + momentum * b      if nesterov  else  g = b
        p = p - lr * g

    The momentum buffer ``b`` is ``state[p]["momentum_buffer"]``. Parameters whose ``grad`` is
    None are skipped. The update runs in the backend kernel ``sgd_update`` (one call per param
    group: two when some parameters of the group take their first momentum step and others not).

    Args:
        params: iterable of Tensors or of param-group dicts.
        lr: learning rate (default 1e-3).
        momentum: momentum factor (default 0).
        dampening: dampening of the momentum (default 0).
        weight_decay: L2 penalty coefficient (default 0).
        nesterov: use Nesterov momentum (needs momentum > 0 and dampening == 0).
        maximize: maximize the objective instead of minimizing it.
        foreach, fused: accepted for compatibility with PyTorch programs and ignored: the update
            of a whole group is always one fused kernel call here.

    Example::

        opt = pyengine.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        opt.zero_grad(); loss_fn(model(x), y).backward(); opt.step()
    """

    def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0, nesterov=False, *,
                 maximize=False, foreach=None, fused=None):
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                        nesterov=nesterov, maximize=maximize)
        super().__init__(params, defaults)

    def _validate_group(self, group):
        for option in ("lr", "weight_decay"):
            _check_nonnegative("SGD", option, group[option])
        momentum = _check_nonnegative("SGD", "momentum", group["momentum"])
        dampening = _check_real("SGD", "dampening", group["dampening"])
        if group["nesterov"] and (momentum <= 0 or dampening != 0):
            raise ValueError(f"SGD: Nesterov momentum requires a momentum > 0 and zero dampening "
                             f"(got momentum={momentum}, dampening={dampening})")

    def step(self, closure=None):
        """One SGD step for every parameter that has a gradient; returns ``closure()``'s loss if given."""
        loss = self._eval_closure(closure)
        kernels = get_backend("cpu")  # looked up once per step: picks up the compiled kernels when present
        for group in self.param_groups:
            lr = float(group["lr"])
            momentum = float(group["momentum"])
            dampening = float(group["dampening"])
            weight_decay = float(group["weight_decay"])
            nesterov = bool(group["nesterov"])
            maximize = bool(group["maximize"])  # the kernel negates the gradient first, as PyTorch

            # (dtype, first momentum step) -> [params, grads, momentum_buffers]; usually one batch
            batches = {}
            write_back = []
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = self._grad_array(p)
                first_step = False
                buf = None
                if momentum != 0.0:
                    state = self.state[p]
                    buf = state.get("momentum_buffer")
                    if buf is None:
                        first_step = True  # the kernel sets the buffer to the gradient
                        buf = self._buffer(p)
                        state["momentum_buffer"] = buf
                key = (p._data.dtype, first_step)
                batch = batches.get(key)
                if batch is None:
                    batch = batches[key] = ([], [], [])
                batch[0].append(self._param_array(p, write_back))
                batch[1].append(g)
                if buf is not None:
                    batch[2].append(buf._data)

            for (_, first_step), (params, grads, momentum_buffers) in batches.items():
                kernels.sgd_update(params, grads, momentum_buffers, lr, momentum, dampening, nesterov,
                                   weight_decay, maximize, first_step)
            self._write_back(write_back)
        return loss
