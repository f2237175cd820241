"""Learning-rate schedulers (PyTorch's ``torch.optim.lr_scheduler`` names, semantics and values).

A scheduler owns the ``lr`` of its optimizer's param groups. Creating one records each group's
starting lr as ``group["initial_lr"]`` (``base_lrs``) and sets the lr for epoch 0; each
``scheduler.step()``, called AFTER ``optimizer.step()``, advances ``last_epoch`` by one and sets
the lr for the new epoch.

Like PyTorch's, most schedulers update the lr *recursively* (from the group's current lr: the
"chainable" form, so that two schedulers can act on the same optimizer) and also have a
closed form of ``last_epoch`` (used by the deprecated ``step(epoch)`` and by ``SequentialLR``
at its milestones). The two agree up to rounding; the recursive one is what ``step()`` uses, so
the values are PyTorch's to the last bit.

Example::

    opt = pyengine.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    sched = pyengine.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=100)
    for epoch in range(100):
        train_one_epoch(model, opt)
        sched.step()
"""
import math
import types
import warnings
from bisect import bisect_right
from collections import Counter

from .._checks import index_arg, int64_arg, named_init, real_arg, size_arg
from .optimizer import Optimizer

__all__ = ["LRScheduler", "LambdaLR", "MultiplicativeLR", "StepLR", "MultiStepLR", "ConstantLR", "LinearLR",
           "ExponentialLR", "CosineAnnealingLR", "SequentialLR", "OneCycleLR", "WarmupCosineLR"]

_EPOCH_DEPRECATION_WARNING = (
    "The epoch parameter in `scheduler.step()` was not necessary and is being deprecated where possible. "
    "Please use `scheduler.step()` to step the scheduler. During the deprecation, if epoch is different from None, "
    "the closed form is used instead of the new chainable form, where available.")


class LRScheduler:
    """Base class of the schedulers: subclasses implement ``get_lr()`` (the lrs for ``last_epoch``).

    Attributes: ``optimizer``, ``base_lrs`` (the groups' ``initial_lr``), ``last_epoch`` (the
    index of the current epoch: 0 after construction), ``get_last_lr()`` (the lrs set last).
    ``state_dict()`` holds every attribute but the optimizer; save the optimizer's state too.

    Args:
        optimizer: the Optimizer whose lrs are scheduled.
        last_epoch: -1 (default) to start a schedule; k >= 0 to resume one after epoch k (the
            groups must then hold ``initial_lr``, e.g. from a loaded optimizer state dict).
    """

    _is_initial = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        # pyengine's schedulers: an error from a constructor names the scheduler ("StepLR: ...")
        init = cls.__dict__.get("__init__")
        if init is not None and cls.__module__.startswith("pyengine."):
            cls.__init__ = named_init(init)

    def __init__(self, optimizer, last_epoch=-1):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(optimizer).__name__} is not an Optimizer")
        self.optimizer = optimizer
        if last_epoch == -1:
            for group in optimizer.param_groups:
                group.setdefault("initial_lr", group["lr"])
        else:
            for i, group in enumerate(optimizer.param_groups):
                if "initial_lr" not in group:
                    raise KeyError(f"param 'initial_lr' is not specified in param_groups[{i}] when resuming a "
                                   f"scheduler with last_epoch={last_epoch}: load the optimizer's state dict "
                                   "first, or use last_epoch=-1 for a fresh schedule")
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = last_epoch
        self._initial_step()

    def _initial_step(self):
        """Set the lrs of epoch ``last_epoch + 1`` (0 for a fresh schedule) at construction."""
        self._step_count = 0
        self._is_initial = True
        try:
            self.step()
        finally:
            self._is_initial = False

    def get_lr(self):
        """The lrs of the param groups for epoch ``last_epoch`` (from their current lrs)."""
        raise NotImplementedError

    def get_last_lr(self):
        """The lrs this scheduler set last, one per param group."""
        return self._last_lr

    def step(self, epoch=None):
        """Advance to the next epoch and set its lrs. Call it after ``optimizer.step()``.

        ``epoch`` (deprecated, as in PyTorch) jumps to that epoch with the closed form.
        """
        if self._step_count == 1 and not getattr(self.optimizer, "_opt_called", False):
            warnings.warn("Detected call of `lr_scheduler.step()` before `optimizer.step()`. Call them in the "
                          "opposite order: `optimizer.step()` before `lr_scheduler.step()`; otherwise the first "
                          "value of the learning rate schedule is skipped.", UserWarning, stacklevel=2)
        self._step_count += 1
        if epoch is not None:
            warnings.warn(_EPOCH_DEPRECATION_WARNING, UserWarning, stacklevel=2)
        self._update_lr(epoch)

    def _update_lr(self, epoch=None):
        if epoch is None:
            self.last_epoch += 1
            values = self.get_lr()
        else:
            self.last_epoch = epoch
            closed_form = getattr(self, "_get_closed_form_lr", None)
            values = closed_form() if closed_form is not None else self.get_lr()
        for group, lr in zip(self.optimizer.param_groups, values):
            group["lr"] = lr
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def _group_lrs(self):
        return [group["lr"] for group in self.optimizer.param_groups]

    def state_dict(self):
        """The scheduler's state: every attribute except the optimizer."""
        return {key: value for key, value in self.__dict__.items() if key != "optimizer"}

    def load_state_dict(self, state_dict):
        """Restore a state saved by ``state_dict()``."""
        self.__dict__.update(state_dict)

    def __repr__(self):
        return f"{self.__class__.__name__}(last_epoch={self.last_epoch}, last_lr={getattr(self, '_last_lr', None)})"


def _lambdas_state_dict(scheduler):
    """State of LambdaLR/MultiplicativeLR: plain functions and lambdas are not saved (as in PyTorch),
    callable objects' attributes are."""
    state = {key: value for key, value in scheduler.__dict__.items() if key not in ("optimizer", "lr_lambdas")}
    state["lr_lambdas"] = [None if isinstance(fn, types.FunctionType) else fn.__dict__.copy()
                           for fn in scheduler.lr_lambdas]
    return state


def _lambdas_load_state_dict(scheduler, state_dict):
    state = dict(state_dict)
    lr_lambdas = state.pop("lr_lambdas")
    scheduler.__dict__.update(state)
    for fn, saved in zip(scheduler.lr_lambdas, lr_lambdas):
        if saved is not None:
            fn.__dict__.update(saved)


def _format_lambdas(optimizer, lr_lambda):
    n = len(optimizer.param_groups)
    if isinstance(lr_lambda, (list, tuple)):
        if len(lr_lambda) != n:
            raise ValueError(f"Expected {n} lr_lambdas (one per param group), but got {len(lr_lambda)}")
        lambdas = list(lr_lambda)
    else:
        lambdas = [lr_lambda] * n
    for fn in lambdas:
        if not callable(fn):
            raise TypeError(f"lr_lambda should be a function, but got {type(fn).__name__}")
    return lambdas


class LambdaLR(LRScheduler):
    """``lr = base_lr * lr_lambda(last_epoch)``; ``lr_lambda`` is one function or a list (one per group).

    Example: linear warm-up over 10 epochs: ``LambdaLR(opt, lambda epoch: min(1.0, (epoch + 1) / 10))``.
    """

    def __init__(self, optimizer, lr_lambda, last_epoch=-1):
        self.optimizer = optimizer
        self.lr_lambdas = _format_lambdas(optimizer, lr_lambda)
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        return [base_lr * fn(self.last_epoch) for fn, base_lr in zip(self.lr_lambdas, self.base_lrs)]

    def state_dict(self):
        return _lambdas_state_dict(self)

    def load_state_dict(self, state_dict):
        _lambdas_load_state_dict(self, state_dict)


class MultiplicativeLR(LRScheduler):
    """Each step multiplies the lr by ``lr_lambda(last_epoch)``: ``lr_e = lr_{e-1} * lr_lambda(e)``."""

    def __init__(self, optimizer, lr_lambda, last_epoch=-1):
        self.optimizer = optimizer
        self.lr_lambdas = _format_lambdas(optimizer, lr_lambda)
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        if self._is_initial:
            return self._group_lrs()
        return [group["lr"] * fn(self.last_epoch) for fn, group in zip(self.lr_lambdas, self.optimizer.param_groups)]

    def state_dict(self):
        return _lambdas_state_dict(self)

    def load_state_dict(self, state_dict):
        _lambdas_load_state_dict(self, state_dict)


class StepLR(LRScheduler):
    """Decay by ``gamma`` every ``step_size`` epochs: ``lr = base_lr * gamma ** (last_epoch // step_size)``."""

    def __init__(self, optimizer, step_size, gamma=0.1, last_epoch=-1):
        # PyTorch takes any positive number here (programs pass step_size=1.0); an int stays an int
        self.step_size = step_size if isinstance(step_size, int) else real_arg("StepLR", "step_size", step_size)
        if isinstance(step_size, bool) or not self.step_size > 0:
            raise ValueError(f"StepLR(): step_size must be a positive number, got {step_size!r}")
        self.gamma = real_arg("StepLR", "gamma", gamma)
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        if self.last_epoch == 0 or self.last_epoch % self.step_size != 0:
            return self._group_lrs()
        return [group["lr"] * self.gamma for group in self.optimizer.param_groups]

    def _get_closed_form_lr(self):
        return [base_lr * self.gamma ** (self.last_epoch // self.step_size) for base_lr in self.base_lrs]


class MultiStepLR(LRScheduler):
    """Decay by ``gamma`` at each milestone epoch:
    ``lr = base_lr * gamma ** (number of milestones <= last_epoch)`` (a repeated milestone counts twice)."""

    def __init__(self, optimizer, milestones, gamma=0.1, last_epoch=-1):
        self.milestones = Counter(_epochs("MultiStepLR", milestones))
        self.gamma = real_arg("MultiStepLR", "gamma", gamma)
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        if self.last_epoch not in self.milestones:
            return self._group_lrs()
        factor = self.gamma ** self.milestones[self.last_epoch]
        return [group["lr"] * factor for group in self.optimizer.param_groups]

    def _get_closed_form_lr(self):
        milestones = sorted(self.milestones.elements())
        return [base_lr * self.gamma ** bisect_right(milestones, self.last_epoch) for base_lr in self.base_lrs]


class ConstantLR(LRScheduler):
    """``lr = base_lr * factor`` until epoch ``total_iters``, then ``base_lr``."""

    def __init__(self, optimizer, factor=1.0 / 3, total_iters=5, last_epoch=-1):
        factor = real_arg("ConstantLR", "factor", factor)
        if factor > 1.0 or factor < 0:
            raise ValueError(f"ConstantLR: factor must be between 0 and 1, got {factor}")
        self.factor = factor
        self.total_iters = size_arg("ConstantLR", "total_iters", total_iters)
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        if self.last_epoch == 0:
            return [group["lr"] * self.factor for group in self.optimizer.param_groups]
        if self.last_epoch != self.total_iters:
            return self._group_lrs()
        if self.factor == 0:  # the recursive form cannot undo a factor of 0: the closed form's base_lr
            return self._get_closed_form_lr()
        return [group["lr"] * (1.0 / self.factor) for group in self.optimizer.param_groups]

    def _get_closed_form_lr(self):
        return [base_lr * (self.factor + (self.last_epoch >= self.total_iters) * (1 - self.factor))
                for base_lr in self.base_lrs]


class LinearLR(LRScheduler):
    """Scale the lr linearly from ``start_factor`` to ``end_factor`` over ``total_iters`` epochs:

        lr = base_lr * (start_factor + (end_factor - start_factor) * min(last_epoch, total_iters) / total_iters)

    The usual warm-up: ``LinearLR(opt, start_factor=0.01, total_iters=warmup_steps)``.
    """

    def __init__(self, optimizer, start_factor=1.0 / 3, end_factor=1.0, total_iters=5, last_epoch=-1):
        start_factor = real_arg("LinearLR", "start_factor", start_factor)
        end_factor = real_arg("LinearLR", "end_factor", end_factor)
        total_iters = size_arg("LinearLR", "total_iters", total_iters)
        if start_factor > 1.0 or start_factor <= 0:
            raise ValueError(f"LinearLR: start_factor must be in (0, 1], got {start_factor}")
        if end_factor > 1.0 or end_factor < 0:
            raise ValueError(f"LinearLR: end_factor must be in [0, 1], got {end_factor}")
        if total_iters <= 0:
            raise ValueError(f"LinearLR: total_iters must be positive, got {total_iters}")
        self.start_factor = start_factor
        self.end_factor = end_factor
        self.total_iters = total_iters
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        if self.last_epoch == 0:
            return [group["lr"] * self.start_factor for group in self.optimizer.param_groups]
        if self._is_initial or self.last_epoch > self.total_iters:
            return self._group_lrs()
        # ratio of the factors of epochs e and e - 1
        delta = self.end_factor - self.start_factor
        ratio = 1.0 + delta / (self.total_iters * self.start_factor + (self.last_epoch - 1) * delta)
        return [group["lr"] * ratio for group in self.optimizer.param_groups]

    def _get_closed_form_lr(self):
        delta = self.end_factor - self.start_factor
        return [base_lr * (self.start_factor + delta * min(self.total_iters, self.last_epoch) / self.total_iters)
                for base_lr in self.base_lrs]


class ExponentialLR(LRScheduler):
    """Decay by ``gamma`` every epoch: ``lr = base_lr * gamma ** last_epoch``."""

    def __init__(self, optimizer, gamma, last_epoch=-1):
        self.gamma = real_arg("ExponentialLR", "gamma", gamma)
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        if self._is_initial:
            return self._group_lrs()
        return [group["lr"] * self.gamma for group in self.optimizer.param_groups]

    def _get_closed_form_lr(self):
        return [base_lr * self.gamma ** self.last_epoch for base_lr in self.base_lrs]


class CosineAnnealingLR(LRScheduler):
    r"""Cosine annealing (Loshchilov & Hutter 2017, SGDR without restarts):

        lr = eta_min + (base_lr - eta_min) * (1 + cos(pi * last_epoch / T_max)) / 2

    reaching ``eta_min`` at epoch ``T_max``. As in PyTorch, ``step()`` computes it recursively
    from the current lr, ``lr_e = eta_min + (lr_{e-1} - eta_min) * (1 + cos(pi e / T_max)) /
    (1 + cos(pi (e - 1) / T_max))``, and past ``T_max`` the lr follows the cosine back up.
    """

    def __init__(self, optimizer, T_max, eta_min=0.0, last_epoch=-1):
        T_max = size_arg("CosineAnnealingLR", "T_max", T_max)
        eta_min = real_arg("CosineAnnealingLR", "eta_min", eta_min)
        if T_max <= 0:
            raise ValueError(f"CosineAnnealingLR: T_max must be positive, got {T_max}")
        self.T_max = T_max
        self.eta_min = eta_min
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        e, T, eta_min = self.last_epoch, self.T_max, self.eta_min
        if self._is_initial:
            return self._group_lrs()
        if self._step_count == 1 and e > 0:  # resumed with last_epoch > 0: closed form
            return [eta_min + (base_lr - eta_min) * (1 + math.cos(e * math.pi / T)) / 2 for base_lr in self.base_lrs]
        if (e - 1 - T) % (2 * T) == 0:  # leaving the minimum: the ratio below would be 0/0
            return [group["lr"] + (base_lr - eta_min) * (1 - math.cos(math.pi / T)) / 2
                    for base_lr, group in zip(self.base_lrs, self.optimizer.param_groups)]
        ratio = (1 + math.cos(math.pi * e / T)) / (1 + math.cos(math.pi * (e - 1) / T))
        return [ratio * (group["lr"] - eta_min) + eta_min for group in self.optimizer.param_groups]

    def _get_closed_form_lr(self):
        return [self.eta_min + (base_lr - self.eta_min) * (1 + math.cos(math.pi * self.last_epoch / self.T_max)) / 2
                for base_lr in self.base_lrs]


class SequentialLR(LRScheduler):
    """Run ``schedulers`` one after another, switching at the epochs in ``milestones``.

    Scheduler i runs from milestone i-1 (restarted at its epoch 0 there) to milestone i.
    Example: 5 epochs of linear warm-up, then cosine annealing::

        warmup = LinearLR(opt, start_factor=0.1, total_iters=5)
        cosine = CosineAnnealingLR(opt, T_max=95)
        sched = SequentialLR(opt, schedulers=[warmup, cosine], milestones=[5])
    """

    def __init__(self, optimizer, schedulers, milestones, last_epoch=-1):
        milestones = _epochs("SequentialLR", milestones)
        if not isinstance(schedulers, (list, tuple)):
            raise TypeError(f"SequentialLR(): argument 'schedulers' must be a list of schedulers, not "
                            f"{type(schedulers).__name__}")
        if len(schedulers) < 1:
            raise ValueError("SequentialLR expects at least one scheduler, but got none")
        for i, scheduler in enumerate(schedulers):
            if not hasattr(scheduler, "optimizer"):
                raise TypeError(f"SequentialLR: scheduler at index {i} should have `optimizer` as its attribute")
            if scheduler.optimizer is not optimizer:
                raise ValueError(f"SequentialLR expects all schedulers to belong to the same optimizer, but "
                                 f"scheduler {type(scheduler).__name__} at index {i} belongs to another one")
        if len(milestones) != len(schedulers) - 1:
            raise ValueError(f"SequentialLR expects one milestone fewer than schedulers, but got "
                             f"{len(schedulers)} schedulers and {len(milestones)} milestones")
        self._schedulers = list(schedulers)
        self._milestones = list(milestones)
        self.last_epoch = last_epoch + 1
        self.optimizer = optimizer
        # the schedulers' constructors each took an initial step: restore the lrs and undo those steps
        for group in optimizer.param_groups:
            group["lr"] = group["initial_lr"]
        self._undo_initial_steps(self)
        # and take the initial step of the scheduler that runs at epoch 0 only
        idx = bisect_right(self._milestones, 0)
        self._schedulers[idx]._initial_step()
        self._last_lr = self._schedulers[idx].get_last_lr()

    @classmethod
    def _undo_initial_steps(cls, scheduler):
        if hasattr(scheduler, "_schedulers"):
            for s in scheduler._schedulers:
                cls._undo_initial_steps(s)
        elif hasattr(scheduler, "last_epoch"):
            scheduler.last_epoch -= 1

    def step(self):
        self.last_epoch += 1
        idx = bisect_right(self._milestones, self.last_epoch)
        scheduler = self._schedulers[idx]
        if idx > 0 and self._milestones[idx - 1] == self.last_epoch:
            scheduler._update_lr(0)  # restart the next scheduler at its epoch 0 (closed form)
        else:
            scheduler.step()
        self._last_lr = scheduler.get_last_lr()

    def state_dict(self):
        state = {key: value for key, value in self.__dict__.items() if key not in ("optimizer", "_schedulers")}
        state["_schedulers"] = [s.state_dict() for s in self._schedulers]
        return state

    def load_state_dict(self, state_dict):
        state = dict(state_dict)
        schedulers = state.pop("_schedulers")
        self.__dict__.update(state)
        for s, saved in zip(self._schedulers, schedulers):
            s.load_state_dict(saved)


class OneCycleLR(LRScheduler):
    """The 1cycle policy (Smith & Topin 2017): the lr rises from ``max_lr / div_factor`` to ``max_lr``
    over the first ``pct_start`` of ``total_steps`` (steps, i.e. batches), then anneals to
    ``initial_lr / final_div_factor``; momentum (SGD's ``momentum`` or Adam's ``beta1``) moves the
    opposite way between ``max_momentum`` and ``base_momentum`` when ``cycle_momentum``.

    ``anneal_strategy``: "cos" (``end + (start - end) / 2 * (1 + cos(pi * pct))``) or "linear".
    ``three_phase=True`` uses a symmetric rise and fall, then a final annihilation phase.
    Call ``step()`` after every batch, ``total_steps`` (or ``epochs * steps_per_epoch``) times.
    """

    def __init__(self, optimizer, max_lr, total_steps=None, epochs=None, steps_per_epoch=None, pct_start=0.3,
                 anneal_strategy="cos", cycle_momentum=True, base_momentum=0.85, max_momentum=0.95,
                 div_factor=25.0, final_div_factor=1e4, three_phase=False, last_epoch=-1):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(optimizer).__name__} is not an Optimizer")
        self.optimizer = optimizer
        if total_steps is not None:
            self.total_steps = size_arg("OneCycleLR", "total_steps", total_steps, minimum=1)
        elif epochs is not None and steps_per_epoch is not None:
            self.total_steps = (size_arg("OneCycleLR", "epochs", epochs, minimum=1)
                                * size_arg("OneCycleLR", "steps_per_epoch", steps_per_epoch, minimum=1))
        else:
            raise ValueError("OneCycleLR: you must define either total_steps OR (epochs AND steps_per_epoch)")
        if not isinstance(pct_start, float) or not 0 <= pct_start <= 1:
            raise ValueError(f"OneCycleLR: expected a float between 0 and 1 pct_start, but got {pct_start}")
        if anneal_strategy not in ("cos", "linear"):
            raise ValueError(f"OneCycleLR: anneal_strategy must be one of 'cos' or 'linear', got {anneal_strategy!r}")
        self._anneal_func_type = anneal_strategy

        # phases: (end_step, start_lr key, end_lr key, start_momentum key, end_momentum key)
        n = self.total_steps
        if three_phase:
            self._schedule_phases = [
                (float(pct_start * n) - 1, "initial_lr", "max_lr", "max_momentum", "base_momentum"),
                (float(2 * pct_start * n) - 2, "max_lr", "initial_lr", "base_momentum", "max_momentum"),
                (n - 1, "initial_lr", "min_lr", "max_momentum", "max_momentum"),
            ]
        else:
            self._schedule_phases = [
                (float(pct_start * n) - 1, "initial_lr", "max_lr", "max_momentum", "base_momentum"),
                (n - 1, "max_lr", "min_lr", "base_momentum", "max_momentum"),
            ]

        max_lrs = [real_arg("OneCycleLR", "max_lr", v) for v in _per_group("max_lr", optimizer, max_lr)]
        if last_epoch == -1:
            for group, group_max_lr in zip(optimizer.param_groups, max_lrs):
                group["initial_lr"] = group_max_lr / div_factor
                group["max_lr"] = group_max_lr
                group["min_lr"] = group["initial_lr"] / final_div_factor

        self.cycle_momentum = cycle_momentum
        if cycle_momentum:
            if "momentum" not in optimizer.defaults and "betas" not in optimizer.defaults:
                raise ValueError("OneCycleLR: optimizer must support momentum or beta1 with `cycle_momentum` enabled")
            self.use_beta1 = "betas" in optimizer.defaults
            max_momentums = _per_group("max_momentum", optimizer, max_momentum)
            base_momentums = _per_group("base_momentum", optimizer, base_momentum)
            if last_epoch == -1:
                for group, m_max, m_base in zip(optimizer.param_groups, max_momentums, base_momentums):
                    self._set_momentum(group, m_max)
                    group["max_momentum"] = m_max
                    group["base_momentum"] = m_base
        super().__init__(optimizer, last_epoch)

    def _set_momentum(self, group, momentum):
        if self.use_beta1:
            group["betas"] = (momentum, *group["betas"][1:])
        else:
            group["momentum"] = momentum

    def _anneal(self, start, end, pct):
        if self._anneal_func_type == "cos":
            return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)
        return (end - start) * pct + start

    def get_lr(self):
        step = self.last_epoch
        if step > self.total_steps:
            raise ValueError(f"OneCycleLR: tried to step {step} times; the specified number of total steps is "
                             f"{self.total_steps}")
        lrs = []
        for group in self.optimizer.param_groups:
            start_step = 0.0
            last = len(self._schedule_phases) - 1
            for i, (end_step, start_lr, end_lr, start_m, end_m) in enumerate(self._schedule_phases):
                if step <= end_step or i == last:
                    # a phase of no steps (pct_start = 1: the last phase): already at its end
                    pct = (step - start_step) / (end_step - start_step) if end_step > start_step else 1.0
                    lrs.append(self._anneal(group[start_lr], group[end_lr], pct))
                    if self.cycle_momentum:
                        self._set_momentum(group, self._anneal(group[start_m], group[end_m], pct))
                    break
                start_step = end_step
        return lrs


class WarmupCosineLR(LRScheduler):
    r"""Linear warm-up, then cosine decay to ``base_lr * min_lr_ratio`` at ``total_steps`` (GPT-2 / nanoGPT's
    schedule; the cosine of Loshchilov & Hutter 2017). Not in PyTorch, where ``SequentialLR(LinearLR,
    CosineAnnealingLR)`` comes close; this one is a closed form of ``last_epoch`` (a step count), so a run
    resumed at step k (``last_epoch=k - 1``) gets exactly the learning rates of an uninterrupted one:

        lr = base_lr * (e + 1) / warmup_steps                                 e < warmup_steps
        lr = min_lr + (1 + cos(pi * progress)) / 2 * (base_lr - min_lr)       afterwards, where
             min_lr = base_lr * min_lr_ratio,  progress = min(1, (e - warmup_steps) / max(1, total_steps - warmup_steps))

    The first step already runs at ``base_lr / warmup_steps`` (not 0) and step ``warmup_steps - 1`` at
    ``base_lr``; past ``total_steps`` the lr stays at ``min_lr``. Call ``step()`` once per optimizer step.

    Example::

        sched = WarmupCosineLR(opt, warmup_steps=100, total_steps=2000, min_lr_ratio=0.1)
    """

    def __init__(self, optimizer, warmup_steps, total_steps, min_lr_ratio=0.0, last_epoch=-1):
        warmup_steps = int64_arg("WarmupCosineLR", "warmup_steps", warmup_steps)
        total_steps = int64_arg("WarmupCosineLR", "total_steps", total_steps)
        min_lr_ratio = real_arg("WarmupCosineLR", "min_lr_ratio", min_lr_ratio)
        if warmup_steps < 0 or total_steps < 0:
            raise ValueError(f"WarmupCosineLR: warmup_steps and total_steps must be >= 0, got {warmup_steps} and "
                             f"{total_steps}")
        if not 0.0 <= min_lr_ratio <= 1.0:
            raise ValueError(f"WarmupCosineLR: min_lr_ratio must be in [0, 1], got {min_lr_ratio}")
        self.warmup_steps = warmup_steps
        self.total_steps = total_steps
        self.min_lr_ratio = min_lr_ratio
        super().__init__(optimizer, last_epoch)

    @staticmethod
    def lr_at(step, base_lr, warmup_steps, total_steps, min_lr_ratio=0.0):
        """The schedule's lr at ``step`` (0-based) for ``base_lr``, without an optimizer (e.g. to drive
        another framework's optimizer with the same schedule)."""
        if step < warmup_steps:
            return base_lr * (step + 1) / warmup_steps
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        min_lr = base_lr * min_lr_ratio
        return min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (base_lr - min_lr)

    def get_lr(self):
        return [self.lr_at(self.last_epoch, base_lr, self.warmup_steps, self.total_steps, self.min_lr_ratio)
                for base_lr in self.base_lrs]

    _get_closed_form_lr = get_lr


def _epochs(op, milestones):
    """A scheduler's milestones: a sequence of ints (epochs)."""
    if not isinstance(milestones, (list, tuple, range)):
        raise TypeError(f"{op}(): argument 'milestones' must be a list of ints, not {type(milestones).__name__}")
    return [index_arg(op, "milestones", m) for m in milestones]


def _per_group(name, optimizer, value):
    n = len(optimizer.param_groups)
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise ValueError(f"{name} must have one value per param group: got {len(value)} values for {n} groups")
        return list(value)
    return [value] * n
