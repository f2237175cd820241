"""Adam (Kingma & Ba 2015) and AdamW (Loshchilov & Hutter 2019), as PyTorch computes them."""
from ..backend import get_backend
from .optimizer import Optimizer, _check_nonnegative, _check_real

__all__ = ["Adam", "AdamW"]


class Adam(Optimizer):
    r"""Adam: adaptive moment estimation (Kingma & Ba 2015), with PyTorch's options.

    For each parameter p with gradient g, at its step t = 1, 2, ...:

        g = -g                                   if maximize
        p = p * (1 - lr * weight_decay)          if decoupled_weight_decay (AdamW)
        g = g + weight_decay * p                 else (L2 penalty), if weight_decay != 0
        exp_avg    = beta1 * exp_avg    + (1 - beta1) * g
        exp_avg_sq = beta2 * exp_avg_sq + (1 - beta2) * g * g
        bias_correction1 = 1 - beta1 ** t
        bias_correction2 = 1 - beta2 ** t
        p = p - lr / bias_correction1 * exp_avg / (sqrt(exp_avg_sq) / sqrt(bias_correction2) + eps)

    that is ``p -= lr * m_hat / (sqrt(v_hat) + eps)`` with the bias-corrected moments
    ``m_hat = exp_avg / bias_correction1`` and ``v_hat = exp_avg_sq / bias_correction2``.

    ``state[p]`` holds ``step`` (int: t is counted per parameter, as in PyTorch, so a parameter
    that first gets a gradient later starts its own bias correction then), ``exp_avg`` and
    ``exp_avg_sq`` (Tensors). Parameters whose ``grad`` is None are skipped.

    The update runs in the backend kernel ``adam_update``: one call per param group and step,
    over all of the group's parameters that have a gradient (a group whose parameters are at
    different step counts t makes one call per distinct t).

    amsgrad (Reddi et al. 2018, PyTorch's variant): keeps ``max_exp_avg_sq = max(max_exp_avg_sq,
    exp_avg_sq)`` (NaN-propagating, as torch.maximum) in ``state[p]`` and divides by
    ``sqrt(max_exp_avg_sq) / sqrt(bias_correction2) + eps``; the same kernel call does it.

    Args:
        params: iterable of Tensors or of param-group dicts.
        lr: learning rate (default 1e-3).
        betas: (beta1, beta2), the decay rates of the moment estimates, each in [0, 1).
        eps: added to the denominator for numerical stability (default 1e-8).
        weight_decay: L2 penalty (Adam) or decoupled decay rate (AdamW) (default 0).
        amsgrad: use the AMSGrad variant.
        maximize: maximize the objective instead of minimizing it.
        decoupled_weight_decay: decay the weights directly (AdamW) instead of adding an L2
            term to the gradient.
        foreach, fused: accepted for compatibility with PyTorch programs and ignored.

    Example::

        opt = pyengine.optim.Adam(model.parameters(), lr=3e-4)
    """

    _name = "Adam"

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False, *,
                 maximize=False, decoupled_weight_decay=False, foreach=None, fused=None):
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                        maximize=maximize, decoupled_weight_decay=decoupled_weight_decay)
        super().__init__(params, defaults)

    def _validate_group(self, group):
        name = self._name
        for option in ("lr", "eps", "weight_decay"):
            _check_nonnegative(name, option, group[option])
        betas = group["betas"]
        if not isinstance(betas, (tuple, list)):
            raise TypeError(f"{name}: betas must be a pair (beta1, beta2), got {type(betas).__name__}")
        if len(betas) != 2:
            raise ValueError(f"{name}: betas must be a pair (beta1, beta2), got {betas!r}")
        group["betas"] = tuple(betas)
        for i, beta in enumerate(betas):
            beta = _check_real(name, f"betas[{i}]", beta)
            if not 0.0 <= beta < 1.0:
                raise ValueError(f"{name}: invalid beta parameter at index {i}: {beta}; expected 0 <= beta < 1")

    def step(self, closure=None):
        """One Adam/AdamW step for every parameter that has a gradient; returns ``closure()``'s loss if given."""
        loss = self._eval_closure(closure)
        kernels = get_backend("cpu")  # looked up once per step: picks up the compiled kernels when present
        for group in self.param_groups:
            lr = float(group["lr"])
            beta1, beta2 = (float(b) for b in group["betas"])
            eps = float(group["eps"])
            weight_decay = float(group["weight_decay"])
            amsgrad = bool(group["amsgrad"])
            maximize = bool(group["maximize"])
            decoupled = bool(group["decoupled_weight_decay"])

            # (step t, dtype) -> [params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs]; usually one batch
            batches = {}
            write_back = []
            for p, state in self._stepping(group):
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = self._buffer(p)
                    state["exp_avg_sq"] = self._buffer(p)
                if amsgrad and state.get("max_exp_avg_sq") is None:
                    state["max_exp_avg_sq"] = self._buffer(p)
                state["step"] += 1
                key = (state["step"], p._data.dtype)
                batch = batches.get(key)
                if batch is None:
                    batch = batches[key] = ([], [], [], [], [])
                batch[0].append(self._param_array(p, write_back))
                batch[1].append(self._grad_array(p))
                batch[2].append(state["exp_avg"]._data)
                batch[3].append(state["exp_avg_sq"]._data)
                if amsgrad:
                    batch[4].append(state["max_exp_avg_sq"]._data)

            for (step, _), (params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs) in batches.items():
                kernels.adam_update(params, grads, exp_avgs, exp_avg_sqs, step, lr, beta1, beta2, eps,
                                    weight_decay, decoupled, maximize, max_exp_avg_sqs if amsgrad else None)
            self._write_back(write_back)
        return loss


class AdamW(Adam):
    r"""AdamW: Adam with decoupled weight decay (Loshchilov & Hutter 2019).

    The same update as ``Adam`` except for the weight decay, which shrinks the weights directly
    instead of entering the gradient (and so the moment estimates):

        p = p * (1 - lr * weight_decay)
        then the Adam step with the plain gradient g.

    Default ``weight_decay=1e-2`` (PyTorch's). All other arguments as ``Adam``.
    """

    _name = "AdamW"

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False, *,
                 maximize=False, foreach=None, fused=None):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                         maximize=maximize, decoupled_weight_decay=True)

    def load_state_dict(self, state_dict):
        super().load_state_dict(state_dict)
        for group in self.param_groups:  # an AdamW stays AdamW, whatever the dict says
            group["decoupled_weight_decay"] = True

