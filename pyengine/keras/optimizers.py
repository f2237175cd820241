"""Keras optimizers (Keras's names and defaults) over pyengine's fused update kernels.

    Adam(learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7)      -> pyengine.optim.Adam
    AdamW(learning_rate=0.001, weight_decay=0.004, ...)                    -> pyengine.optim.AdamW
    SGD(learning_rate=0.01, momentum=0.0, nesterov=False)                  -> pyengine.optim.SGD
    RMSprop(learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7)      -> pyengine.optim.RMSprop (alpha=rho)
    Adagrad(learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-7)  -> pyengine.optim.Adagrad

A Keras optimizer is created without variables; ``build(var_list)`` (done by ``fit`` on its first step)
makes the pyengine optimizer over the model's trainable weights. All take ``clipnorm`` (per weight),
``clipvalue`` and ``global_clipnorm``; ``learning_rate`` may be a number or a schedule
(``schedules.ExponentialDecay``, ``schedules.CosineDecay`` or any ``f(step) -> lr``).

>>> model.compile(optimizer=optimizers.Adam(learning_rate=3e-4), loss="mse")
>>> model.optimizer.learning_rate = 1e-4        # takes effect at the next step

Differences from Keras, all below 1e-6 in practice: Adam adds epsilon to sqrt(v_hat) (Kingma & Ba 2015, as
PyTorch) where Keras adds it to sqrt(v) before the bias correction; SGD's ``weight_decay`` is an L2 term
in the gradient (pyengine/PyTorch) rather than Keras 3's decoupled decay (the same without momentum);
Adagrad divides by sqrt(acc) + epsilon where Keras divides by sqrt(acc + epsilon) (with Keras's default
initial_accumulator_value=0.1, acc >= 0.1 and the steps differ by less than epsilon / sqrt(0.1) ~ 3e-7,
relatively).

RMSprop differs more, in the same way (PyTorch's placement of epsilon, kept so that there is one RMSprop):
the step is lr g / (sqrt(v) + epsilon) where Keras takes lr g / sqrt(v + epsilon) (centered: v - a^2 in
place of v). Where sqrt(v) >> sqrt(epsilon) ~ 3e-4 the two agree (relative difference about
epsilon / (2 v): 5e-4 at v = 1e-4, i.e. gradients of RMS 1e-2); for gradients of RMS ~1e-3 pyengine's steps
are ~5% larger, and for a weight whose gradients are far below 3e-4 Keras's epsilon damps the step
(to ~ lr g / 3e-4) where pyengine's stays ~ lr g / sqrt(v). With momentum, Keras accumulates
lr g / denominator and pyengine (PyTorch) g / denominator, multiplied by the current lr: the same for a
constant learning rate, not under a schedule. ``weight_decay`` is not supported for RMSprop and Adagrad
(NotImplementedError), as before.
"""
import math
import numbers

import numpy as np

from .. import optim
from ..nn.utils import clip_grad_norm_
from ..tensor import _wrap

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "schedules", "get", "serialize",
           "deserialize"]


# ---------------------------------------------------------------------- learning-rate schedules


class LearningRateSchedule:
    """``schedule(step) -> learning rate``; ``step`` counts optimizer steps from 0."""

    def __call__(self, step):
        raise NotImplementedError

    def get_config(self):
        return {}


class ExponentialDecay(LearningRateSchedule):
    """lr = initial_learning_rate * decay_rate ** (step / decay_steps) (floored with ``staircase``)."""

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False, name=None):
        self.initial_learning_rate, self.decay_steps = float(initial_learning_rate), decay_steps
        self.decay_rate, self.staircase = float(decay_rate), staircase

    def __call__(self, step):
        p = step / self.decay_steps
        return self.initial_learning_rate * self.decay_rate ** (math.floor(p) if self.staircase else p)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "decay_rate": self.decay_rate, "staircase": self.staircase}


class CosineDecay(LearningRateSchedule):
    """Cosine from initial_learning_rate down to alpha * initial over decay_steps (Loshchilov & Hutter 2017)."""

    def __init__(self, initial_learning_rate, decay_steps, alpha=0.0, name=None):
        self.initial_learning_rate, self.decay_steps, self.alpha = float(initial_learning_rate), decay_steps, alpha

    def __call__(self, step):
        t = min(step, self.decay_steps) / self.decay_steps
        return self.initial_learning_rate * ((1 - self.alpha) * 0.5 * (1 + math.cos(math.pi * t)) + self.alpha)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "alpha": self.alpha}


class schedules:  # noqa: N801 - a namespace, as keras.optimizers.schedules
    LearningRateSchedule = LearningRateSchedule
    ExponentialDecay = ExponentialDecay
    CosineDecay = CosineDecay


_SCHEDULES = {"ExponentialDecay": ExponentialDecay, "CosineDecay": CosineDecay}


# ---------------------------------------------------------------------- Keras optimizers


class Optimizer:
    """Base class: Keras hyperparameters, lazily bound to a pyengine optimizer over the weights.

    ``build(var_list)`` creates the pyengine optimizer; ``apply_gradients(zip(grads, vars))`` or (what
    ``fit`` does, after ``loss.backward()``) ``step()`` updates the weights. ``iterations`` counts steps.
    """

    _defaults = {}

    def __init__(self, learning_rate=0.001, weight_decay=None, clipnorm=None, clipvalue=None, global_clipnorm=None,
                 name=None, **kwargs):
        for k in ("jit_compile", "is_legacy_optimizer", "ema_momentum", "ema_overwrite_frequency"):
            kwargs.pop(k, None)  # compilation hints and EMA settings: nothing to do here
        for k in ("use_ema", "loss_scale_factor", "gradient_accumulation_steps", "decay"):
            if kwargs.pop(k, None):
                raise NotImplementedError(f"{type(self).__name__}: {k} is not supported")
        if "lr" in kwargs:  # the old Keras spelling
            learning_rate = kwargs.pop("lr")
        if kwargs:
            raise TypeError(f"{type(self).__name__}: unexpected keyword argument(s) {sorted(kwargs)}")
        if sum(c is not None for c in (clipnorm, clipvalue, global_clipnorm)) > 1:
            raise ValueError("Only one of clipnorm, clipvalue and global_clipnorm can be set")
        if isinstance(learning_rate, dict):
            learning_rate = _SCHEDULES[learning_rate["class_name"]](**learning_rate["config"])
        if not callable(learning_rate) and (not isinstance(learning_rate, numbers.Real) or learning_rate < 0):
            raise ValueError(f"{type(self).__name__}: learning_rate must be a non-negative number or a schedule, "
                             f"got {learning_rate!r}")
        self._learning_rate = learning_rate
        self.weight_decay, self.clipnorm, self.clipvalue, self.global_clipnorm = (
            weight_decay, clipnorm, clipvalue, global_clipnorm)
        self.name = name or type(self).__name__.lower()
        self.iterations = 0
        self._opt = None
        self._vars = []

    # -------------------------------------------------------------- learning rate
    def _current_lr(self):
        lr = self._learning_rate
        return float(lr(self.iterations)) if callable(lr) else float(lr)

    @property
    def learning_rate(self):
        """The learning rate of the next step (a float; set it to change the rate)."""
        return self._current_lr()

    @learning_rate.setter
    def learning_rate(self, value):
        self._learning_rate = value
        if self._opt is not None:
            for g in self._opt.param_groups:
                g["lr"] = self._current_lr()

    lr = learning_rate

    # -------------------------------------------------------------- building and stepping
    @property
    def built(self):
        return self._opt is not None

    def build(self, var_list):
        """Create the pyengine optimizer over ``var_list`` (the model's trainable weights)."""
        self._vars = list(var_list)
        if not self._vars:
            raise ValueError(f"{type(self).__name__}: no trainable weights to optimize")
        self._opt = self._make(self._vars, self._current_lr())

    def _make(self, params, lr):
        raise NotImplementedError

    def zero_grad(self):
        for v in self._vars:
            v.grad = None

    def step(self):
        """Update the weights from their ``.grad`` (clipped first when asked), then count the step."""
        if self._opt is None:
            raise RuntimeError(f"{type(self).__name__}.step: call build(var_list) first")
        grads = [v.grad._data for v in self._vars if v.grad is not None]
        if self.clipvalue is not None:
            for g in grads:
                np.clip(g, -self.clipvalue, self.clipvalue, out=g)
        elif self.clipnorm is not None:
            for g in grads:
                n = float(np.sqrt(np.dot(g.ravel(), g.ravel())))
                if n > self.clipnorm:
                    g *= self.clipnorm / n
        elif self.global_clipnorm is not None:
            clip_grad_norm_(self._vars, self.global_clipnorm)
        if callable(self._learning_rate):
            for group in self._opt.param_groups:
                group["lr"] = self._current_lr()
        self._opt.step()
        self.iterations += 1

    def apply_gradients(self, grads_and_vars):
        """Keras's entry point: set each variable's gradient, then step (building on first use)."""
        pairs = list(grads_and_vars)
        vars_ = [v for _, v in pairs]
        if self._opt is None:
            self.build(vars_)
        for g, v in pairs:
            v.grad = None if g is None else (g if hasattr(g, "data") and not isinstance(g, np.ndarray)
                                             else _wrap(np.asarray(g, v._data.dtype)))
        self.step()

    # -------------------------------------------------------------- state and config
    def state_dict(self):
        """Steps taken and the pyengine optimizer's state (moments, ...), for checkpoints."""
        return {"iterations": self.iterations, "optimizer": self._opt.state_dict() if self._opt else None}

    def load_state_dict(self, state):
        self.iterations = int(state["iterations"])
        if state.get("optimizer") is not None:
            if self._opt is None:
                raise RuntimeError(f"{type(self).__name__}.load_state_dict: build(var_list) first")
            self._opt.load_state_dict(state["optimizer"])
            for g in self._opt.param_groups:
                g["lr"] = self._current_lr()

    def get_config(self):
        lr = self._learning_rate
        if isinstance(lr, LearningRateSchedule):
            lr = {"class_name": type(lr).__name__, "config": lr.get_config()}
        elif callable(lr):
            lr = self._current_lr()
        config = {"name": self.name, "learning_rate": lr, "weight_decay": self.weight_decay,
                  "clipnorm": self.clipnorm, "clipvalue": self.clipvalue, "global_clipnorm": self.global_clipnorm}
        config.update({k: getattr(self, k) for k in self._defaults})
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return f"<keras.optimizers.{type(self).__name__} learning_rate={self.learning_rate:g}>"


class SGD(Optimizer):
    """Stochastic gradient descent, with optional (Nesterov) momentum. Keras default learning rate 0.01."""

    _defaults = {"momentum": 0.0, "nesterov": False}

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, **kwargs):
        super().__init__(learning_rate, **kwargs)
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"SGD: momentum must be in [0, 1], got {momentum}")
        self.momentum, self.nesterov = float(momentum), bool(nesterov)

    def _make(self, params, lr):
        return optim.SGD(params, lr=lr, momentum=self.momentum, nesterov=self.nesterov,
                         weight_decay=self.weight_decay or 0.0)


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015) with Keras's defaults: learning_rate 0.001, epsilon 1e-7.

    ``weight_decay`` is decoupled (as Keras 3 and AdamW)."""

    _defaults = {"beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7, "amsgrad": False}

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.beta_1, self.beta_2, self.epsilon, self.amsgrad = float(beta_1), float(beta_2), float(epsilon), amsgrad

    def _make(self, params, lr):
        common = dict(lr=lr, betas=(self.beta_1, self.beta_2), eps=self.epsilon, amsgrad=self.amsgrad)
        if self.weight_decay:
            return optim.AdamW(params, weight_decay=self.weight_decay, **common)
        return optim.Adam(params, **common)


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter 2019); Keras's default weight_decay 0.004."""

    def __init__(self, learning_rate=0.001, weight_decay=0.004, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 amsgrad=False, **kwargs):
        super().__init__(learning_rate, beta_1, beta_2, epsilon, amsgrad, weight_decay=weight_decay, **kwargs)

    def _make(self, params, lr):
        return optim.AdamW(params, lr=lr, betas=(self.beta_1, self.beta_2), eps=self.epsilon,
                           weight_decay=self.weight_decay or 0.0, amsgrad=self.amsgrad)


class RMSprop(Optimizer):
    """RMSprop with Keras's defaults (learning_rate 0.001, rho 0.9, epsilon 1e-7), run by
    ``pyengine.optim.RMSprop(alpha=rho, eps=epsilon)``: epsilon is added outside the square root (see the
    module docstring)."""

    _defaults = {"rho": 0.9, "momentum": 0.0, "epsilon": 1e-7, "centered": False}

    def __init__(self, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False, **kwargs):
        super().__init__(learning_rate, **kwargs)
        if self.weight_decay:
            raise NotImplementedError("RMSprop: weight_decay is not supported")
        self.rho, self.momentum, self.epsilon, self.centered = float(rho), float(momentum), float(epsilon), centered

    def _make(self, params, lr):
        return optim.RMSprop(params, lr=lr, alpha=self.rho, eps=self.epsilon, momentum=self.momentum,
                             centered=self.centered)


class Adagrad(Optimizer):
    """Adagrad with Keras's defaults (learning_rate 0.001, initial_accumulator_value 0.1, epsilon 1e-7), run by
    ``pyengine.optim.Adagrad(initial_accumulator_value=..., eps=epsilon)``."""

    _defaults = {"initial_accumulator_value": 0.1, "epsilon": 1e-7}

    def __init__(self, learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-7, **kwargs):
        super().__init__(learning_rate, **kwargs)
        if self.weight_decay:
            raise NotImplementedError("Adagrad: weight_decay is not supported")
        self.initial_accumulator_value, self.epsilon = float(initial_accumulator_value), float(epsilon)

    def _make(self, params, lr):
        return optim.Adagrad(params, lr=lr, initial_accumulator_value=self.initial_accumulator_value,
                             eps=self.epsilon)


class _Wrapped(Optimizer):
    """A ready pyengine optimizer passed to ``compile``: used as it is (it already holds its parameters)."""

    def __init__(self, opt):
        super().__init__(opt.param_groups[0]["lr"])
        self._opt = opt
        self._vars = [p for g in opt.param_groups for p in g["params"]]
        self.name = type(opt).__name__.lower()

    def build(self, var_list):
        pass

    def get_config(self):
        raise NotImplementedError("a pyengine.optim optimizer passed to compile() cannot be saved in the "
                                  "model file; use a keras optimizer (keras.optimizers.Adam, ...)")


_BY_NAME = {"sgd": SGD, "adam": Adam, "adamw": AdamW, "rmsprop": RMSprop, "adagrad": Adagrad}


def get(identifier):
    """A Keras optimizer for a name ("adam", "sgd", "adamw", "rmsprop", "adagrad"), a config dict, a Keras
    optimizer, or a pyengine.optim optimizer (used as it is)."""
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, optim.Optimizer):
        return _Wrapped(identifier)
    if isinstance(identifier, str):
        cls = _BY_NAME.get(identifier.lower())
        if cls is None:
            raise ValueError(f"Unknown optimizer: {identifier!r}. Known: {', '.join(sorted(_BY_NAME))}")
        return cls()
    if isinstance(identifier, dict) and str(identifier.get("class_name", "")).lower() in _BY_NAME:
        return _BY_NAME[identifier["class_name"].lower()].from_config(identifier.get("config", {}))
    if isinstance(identifier, type) and issubclass(identifier, Optimizer):
        return identifier()
    raise TypeError(f"Could not interpret optimizer identifier: {identifier!r}")


def serialize(opt):
    return {"class_name": type(opt).__name__, "config": opt.get_config()}


def deserialize(config):
    return get(config)
