"""Keras losses on pyengine Tensors (differentiable), by name or as objects.

Functions return one loss per sample (the mean over the last axis, as Keras); loss objects reduce
that to a scalar, by default the mean over the batch ("sum_over_batch_size"), weighted by
``sample_weight`` when given.

    binary_crossentropy       -mean(y log p + (1 - y) log(1 - p))            p clipped to [1e-7, 1 - 1e-7]
    categorical_crossentropy  -sum(y log p)                                  y one-hot, p renormalised and clipped
    sparse_categorical_crossentropy  -log p[y]                               y integer class ids
    mean_squared_error (mse), mean_absolute_error (mae), mean_absolute_percentage_error (mape),
    mean_squared_logarithmic_error (msle), huber, kl_divergence (kld), hinge

``from_logits=True`` takes logits instead of probabilities (computed with log-sum-exp, stable). A model
compiled with a crossentropy whose last layer is ``Dense(activation="sigmoid")`` (or "softmax") gets the
same stable path without asking: ``Model.compute_loss`` hands the layer's logits to the loss (Keras
does the same through the output tensor's ``_keras_logits``).

>>> from pyengine.keras import losses
>>> bce = losses.BinaryCrossentropy()
>>> float(bce(np.array([[1.0], [0.0]]), pyengine.tensor([[0.9], [0.2]])))   # -(log .9 + log .8) / 2
0.164252...
"""
import numpy as np

import pyengine as pe
from ..nn import functional as F
from ..tensor import Tensor, _wrap
from .backend import epsilon

__all__ = ["Loss", "LossFunctionWrapper", "BinaryCrossentropy", "CategoricalCrossentropy",
           "SparseCategoricalCrossentropy", "MeanSquaredError", "MeanAbsoluteError",
           "MeanAbsolutePercentageError", "MeanSquaredLogarithmicError", "Huber", "KLDivergence", "Hinge",
           "binary_crossentropy", "categorical_crossentropy", "sparse_categorical_crossentropy",
           "mean_squared_error", "mean_absolute_error", "mean_absolute_percentage_error",
           "mean_squared_logarithmic_error", "huber", "kl_divergence", "hinge", "mse", "mae", "mape", "msle",
           "kld", "get", "serialize", "deserialize"]


# ---------------------------------------------------------------------- helpers


def _tensor(x, dtype=np.float32):
    if isinstance(x, Tensor):
        return x if x._data.dtype == dtype else _wrap(x._data.astype(dtype)) if x.grad_fn is None else x.to(
            pe.float32)
    return pe.from_numpy(np.ascontiguousarray(np.asarray(x), dtype=dtype))


def _align(y_true, y_pred):
    """Keras's squeeze_or_expand_dimensions: (B,) labels against (B, 1) outputs become (B, 1), and back."""
    if y_true.ndim == y_pred.ndim - 1 and y_pred.shape[-1] == 1:
        return y_true.reshape(*y_true.shape, 1)
    if y_true.ndim == y_pred.ndim + 1 and y_true.shape[-1] == 1:
        return y_true.reshape(*y_true.shape[:-1])
    return y_true


def _check_same_shape(name, y_true, y_pred):
    if tuple(y_true.shape) != tuple(y_pred.shape):
        raise ValueError(f"{name}: y_true and y_pred must have the same shape, got y_true {tuple(y_true.shape)} "
                         f"and y_pred {tuple(y_pred.shape)}")


def _sparse_targets(y_true, y_pred):
    """Integer class ids shaped like y_pred without its class axis."""
    arr = y_true._data if isinstance(y_true, Tensor) else np.asarray(y_true)
    want = tuple(y_pred.shape[:-1])
    if arr.shape != want and arr.shape == want + (1,):
        arr = arr.reshape(want)
    if arr.shape != want:
        raise ValueError(f"sparse_categorical_crossentropy: y_true must hold one class id per sample, shape "
                         f"{want}, got {arr.shape} (one-hot labels go with categorical_crossentropy)")
    if arr.dtype.kind == "f":
        if not np.array_equal(arr, np.round(arr)):
            raise ValueError("sparse_categorical_crossentropy: y_true must hold integer class ids, got "
                             "non-integral values (one-hot labels go with categorical_crossentropy)")
    ids = arr.astype(np.int64, copy=False)
    C = y_pred.shape[-1]
    if ids.size and (ids.min() < 0 or ids.max() >= C):
        raise ValueError(f"sparse_categorical_crossentropy: class id {int(ids.max() if ids.max() >= C else ids.min())}"
                         f" is outside [0, {C}) for y_pred with {C} classes")
    return ids


def _clip(p):
    eps = epsilon()
    return pe.clamp(p, eps, 1.0 - eps)


# ---------------------------------------------------------------------- loss functions (one value per sample)


def binary_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0):
    """-mean over the last axis of y log p + (1 - y) log(1 - p); (B, d) -> (B,)."""
    y_pred = _tensor(y_pred)
    y_true = _align(_tensor(y_true), y_pred)
    _check_same_shape("binary_crossentropy", y_true, y_pred)
    if label_smoothing:
        y_true = y_true * (1.0 - label_smoothing) + 0.5 * label_smoothing
    if from_logits:
        loss = F.binary_cross_entropy_with_logits(y_pred, y_true, reduction="none")
    else:
        loss = F.binary_cross_entropy(_clip(y_pred), y_true, reduction="none")
    return loss.mean(dim=-1) if loss.ndim else loss


def categorical_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0):
    """-sum over classes of y log p, for one-hot (or soft) labels y; (B, C) -> (B,)."""
    y_pred = _tensor(y_pred)
    y_true = _tensor(y_true)
    _check_same_shape("categorical_crossentropy", y_true, y_pred)
    if label_smoothing:
        y_true = y_true * (1.0 - label_smoothing) + label_smoothing / y_pred.shape[-1]
    if from_logits:
        logp = pe.log_softmax(y_pred, dim=-1)
    else:
        logp = pe.log(_clip(y_pred / y_pred.sum(dim=-1, keepdim=True)))
    return -(y_true * logp).sum(dim=-1)


def sparse_categorical_crossentropy(y_true, y_pred, from_logits=False):
    """-log p[y] for integer labels y; y_pred (B, C) (or (B, T, C)) -> (B,) (or (B, T)).

    On logits this is pyengine's fused log-softmax + NLL kernel (``F.cross_entropy``).
    """
    y_pred = _tensor(y_pred)
    ids = _sparse_targets(y_true, y_pred)
    C = y_pred.shape[-1]
    logits = y_pred if from_logits else pe.log(_clip(y_pred))  # log-softmax of log p renormalises p, as Keras
    loss = F.cross_entropy(logits.reshape(-1, C), ids.reshape(-1), reduction="none")
    return loss.reshape(*ids.shape)


def mean_squared_error(y_true, y_pred):
    """mean over the last axis of (y - p)^2."""
    y_pred = _tensor(y_pred)
    y_true = _align(_tensor(y_true), y_pred)
    _check_same_shape("mean_squared_error", y_true, y_pred)
    d = y_pred - y_true
    return (d * d).mean(dim=-1)


def mean_absolute_error(y_true, y_pred):
    """mean over the last axis of |y - p|."""
    y_pred = _tensor(y_pred)
    y_true = _align(_tensor(y_true), y_pred)
    _check_same_shape("mean_absolute_error", y_true, y_pred)
    return pe.abs(y_pred - y_true).mean(dim=-1)


def mean_absolute_percentage_error(y_true, y_pred):
    """100 * mean |(y - p) / max(|y|, eps)|."""
    y_pred = _tensor(y_pred)
    y_true = _align(_tensor(y_true), y_pred)
    _check_same_shape("mean_absolute_percentage_error", y_true, y_pred)
    denom = pe.clamp(pe.abs(y_true), epsilon(), None)
    return (pe.abs(y_true - y_pred) / denom).mean(dim=-1) * 100.0


def mean_squared_logarithmic_error(y_true, y_pred):
    """mean (log(1 + max(p, eps)) - log(1 + max(y, eps)))^2."""
    y_pred = _tensor(y_pred)
    y_true = _align(_tensor(y_true), y_pred)
    _check_same_shape("mean_squared_logarithmic_error", y_true, y_pred)
    d = pe.log(pe.clamp(y_pred, epsilon(), None) + 1.0) - pe.log(pe.clamp(y_true, epsilon(), None) + 1.0)
    return (d * d).mean(dim=-1)


def huber(y_true, y_pred, delta=1.0):
    """mean of 0.5 e^2 where |e| <= delta, else delta (|e| - 0.5 delta); e = y - p (Huber 1964)."""
    y_pred = _tensor(y_pred)
    y_true = _align(_tensor(y_true), y_pred)
    _check_same_shape("huber", y_true, y_pred)
    a = pe.abs(y_pred - y_true)
    quad = pe.clamp(a, None, delta)
    return (quad * quad * 0.5 + (a - quad) * delta).mean(dim=-1)


def kl_divergence(y_true, y_pred):
    """sum y log(y / p), both clipped to [eps, 1]."""
    y_pred = _tensor(y_pred)
    y_true = _tensor(y_true)
    _check_same_shape("kl_divergence", y_true, y_pred)
    yt, yp = pe.clamp(y_true, epsilon(), 1.0), pe.clamp(y_pred, epsilon(), 1.0)
    return (yt * pe.log(yt / yp)).sum(dim=-1)


def hinge(y_true, y_pred):
    """mean max(1 - y p, 0), labels in {-1, 1} (0/1 labels are mapped to -1/1, as Keras)."""
    y_pred = _tensor(y_pred)
    y_true = _align(_tensor(y_true), y_pred)
    _check_same_shape("hinge", y_true, y_pred)
    yt = y_true._data
    if np.isin(yt, (0.0, 1.0)).all():
        y_true = pe.from_numpy(np.ascontiguousarray(2.0 * yt - 1.0, dtype=np.float32))
    return pe.relu(1.0 - y_true * y_pred).mean(dim=-1)


mse = MSE = mean_squared_error
mae = MAE = mean_absolute_error
mape = MAPE = mean_absolute_percentage_error
msle = MSLE = mean_squared_logarithmic_error
kld = KLD = kl_divergence


# ---------------------------------------------------------------------- loss objects


def _reduce(loss, sample_weight, reduction):
    if sample_weight is not None:
        sw = _tensor(sample_weight).reshape(-1)
        if loss.ndim == 0 or sw.shape[0] != loss.shape[0]:
            raise ValueError(f"sample_weight has {sw.shape[0]} values but the loss has shape {tuple(loss.shape)}")
        loss = loss * sw.reshape(sw.shape[0], *([1] * (loss.ndim - 1)))
    if reduction in (None, "none"):
        return loss
    total = loss.sum()
    if reduction == "sum":
        return total
    return total / max(1, int(np.prod(loss.shape)))  # "sum_over_batch_size" (Keras's default)


class Loss:
    """Base class: ``loss(y_true, y_pred, sample_weight=None)`` -> a scalar Tensor.

    Subclasses implement ``call(y_true, y_pred)`` (one value per sample). Those that can take logits say
    which activation makes their probabilities (``_logits_kind``), so that a model ending in that
    activation can hand them its logits instead (the stable path).
    """

    _logits_kind = None

    def __init__(self, reduction="sum_over_batch_size", name=None):
        if reduction == "auto":
            reduction = "sum_over_batch_size"
        if reduction not in ("sum_over_batch_size", "sum", "none", None):
            raise ValueError(f"{type(self).__name__}: reduction must be 'sum_over_batch_size', 'sum' or 'none', "
                             f"got {reduction!r}")
        self.reduction = reduction
        self.name = name or _snake(type(self).__name__)

    def __call__(self, y_true, y_pred, sample_weight=None):
        return self._compute(y_true, y_pred, sample_weight)

    def _compute(self, y_true, y_pred, sample_weight=None, logits=None):
        """The reduced loss, from ``logits`` (of ``_logits_kind``'s activation) when given. The default
        reduction without sample weights goes through one fused kernel where there is one."""
        if sample_weight is None and self.reduction == "sum_over_batch_size":
            loss = self._batch_mean(y_true, y_pred, logits)
            if loss is not None:
                return loss
        per_sample = self.call(y_true, y_pred) if logits is None else self._call_logits(y_true, logits)
        return _reduce(per_sample, sample_weight, self.reduction)

    def call(self, y_true, y_pred):
        raise NotImplementedError

    def _call_logits(self, y_true, logits):
        """The per-sample loss computed from the logits of ``_logits_kind``'s activation."""
        raise NotImplementedError

    def _batch_mean(self, y_true, y_pred, logits=None):
        """The mean loss over the batch in one fused kernel, or None where this loss has none. (The mean of
        per-sample means over equal-sized last axes is the mean over all elements.)"""
        return None

    def _can_use_logits(self, kind):
        return kind is not None and kind == self._logits_kind and not getattr(self, "from_logits", False)

    def get_config(self):
        return {"reduction": self.reduction, "name": self.name}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _snake(name):
    from .backend import snake_case
    return snake_case(name)


class LossFunctionWrapper(Loss):
    """A loss object around a function ``fn(y_true, y_pred, **kwargs)`` returning per-sample losses."""

    def __init__(self, fn, reduction="sum_over_batch_size", name=None, **kwargs):
        super().__init__(reduction, name or getattr(fn, "__name__", "loss"))
        self.fn, self._fn_kwargs = fn, kwargs

    def call(self, y_true, y_pred):
        out = self.fn(y_true, y_pred, **self._fn_kwargs)
        return out if isinstance(out, Tensor) else _tensor(out)

    def get_config(self):
        return {**super().get_config(), **self._fn_kwargs}


class BinaryCrossentropy(LossFunctionWrapper):
    """Crossentropy of 0/1 labels (any shape, e.g. (B, 1)) against probabilities (or logits)."""

    _logits_kind = "sigmoid"

    def __init__(self, from_logits=False, label_smoothing=0.0, reduction="sum_over_batch_size",
                 name="binary_crossentropy", **kwargs):
        super().__init__(binary_crossentropy, reduction, name, from_logits=from_logits,
                         label_smoothing=label_smoothing)
        self.from_logits = from_logits

    def _call_logits(self, y_true, logits):
        return binary_crossentropy(y_true, logits, from_logits=True,
                                   label_smoothing=self._fn_kwargs["label_smoothing"])

    def _batch_mean(self, y_true, y_pred, logits=None):
        if self._fn_kwargs["label_smoothing"]:
            return None
        x = logits if logits is not None else _tensor(y_pred)
        y = _align(_tensor(y_true), x)
        _check_same_shape("binary_crossentropy", y, x)
        if logits is not None or self.from_logits:
            return F.binary_cross_entropy_with_logits(x, y)
        return F.binary_cross_entropy(_clip(x), y)


class CategoricalCrossentropy(LossFunctionWrapper):
    """Crossentropy of one-hot labels (B, C) against class probabilities (or logits) (B, C)."""

    _logits_kind = "softmax"

    def __init__(self, from_logits=False, label_smoothing=0.0, axis=-1, reduction="sum_over_batch_size",
                 name="categorical_crossentropy", **kwargs):
        if axis != -1:
            raise NotImplementedError("CategoricalCrossentropy: only axis=-1 is supported")
        super().__init__(categorical_crossentropy, reduction, name, from_logits=from_logits,
                         label_smoothing=label_smoothing)
        self.from_logits = from_logits

    def _call_logits(self, y_true, logits):
        return categorical_crossentropy(y_true, logits, from_logits=True,
                                        label_smoothing=self._fn_kwargs["label_smoothing"])


class SparseCategoricalCrossentropy(LossFunctionWrapper):
    """Crossentropy of integer labels (B,) against class probabilities (or logits) (B, C)."""

    _logits_kind = "softmax"

    def __init__(self, from_logits=False, ignore_class=None, reduction="sum_over_batch_size",
                 name="sparse_categorical_crossentropy", **kwargs):
        if ignore_class is not None:
            raise NotImplementedError("SparseCategoricalCrossentropy: ignore_class is not supported")
        super().__init__(sparse_categorical_crossentropy, reduction, name, from_logits=from_logits)
        self.from_logits = from_logits

    def _call_logits(self, y_true, logits):
        return sparse_categorical_crossentropy(y_true, logits, from_logits=True)

    def _batch_mean(self, y_true, y_pred, logits=None):
        x = logits if logits is not None else _tensor(y_pred)
        ids = _sparse_targets(y_true, x)
        if logits is None and not self.from_logits:
            x = pe.log(_clip(x))
        return F.cross_entropy(x.reshape(-1, x.shape[-1]), ids.reshape(-1))


class MeanSquaredError(LossFunctionWrapper):
    def __init__(self, reduction="sum_over_batch_size", name="mean_squared_error"):
        super().__init__(mean_squared_error, reduction, name)

    def _batch_mean(self, y_true, y_pred, logits=None):
        y_pred = _tensor(y_pred)
        y_true = _align(_tensor(y_true), y_pred)
        _check_same_shape("mean_squared_error", y_true, y_pred)
        return F.mse_loss(y_pred, y_true)


class MeanAbsoluteError(LossFunctionWrapper):
    def __init__(self, reduction="sum_over_batch_size", name="mean_absolute_error"):
        super().__init__(mean_absolute_error, reduction, name)


class MeanAbsolutePercentageError(LossFunctionWrapper):
    def __init__(self, reduction="sum_over_batch_size", name="mean_absolute_percentage_error"):
        super().__init__(mean_absolute_percentage_error, reduction, name)


class MeanSquaredLogarithmicError(LossFunctionWrapper):
    def __init__(self, reduction="sum_over_batch_size", name="mean_squared_logarithmic_error"):
        super().__init__(mean_squared_logarithmic_error, reduction, name)


class Huber(LossFunctionWrapper):
    def __init__(self, delta=1.0, reduction="sum_over_batch_size", name="huber_loss"):
        super().__init__(huber, reduction, name, delta=delta)


class KLDivergence(LossFunctionWrapper):
    def __init__(self, reduction="sum_over_batch_size", name="kl_divergence"):
        super().__init__(kl_divergence, reduction, name)


class Hinge(LossFunctionWrapper):
    def __init__(self, reduction="sum_over_batch_size", name="hinge"):
        super().__init__(hinge, reduction, name)


# ---------------------------------------------------------------------- lookup

_BY_NAME = {
    "binary_crossentropy": BinaryCrossentropy, "bce": BinaryCrossentropy,
    "categorical_crossentropy": CategoricalCrossentropy,
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
    "mean_squared_error": MeanSquaredError, "mse": MeanSquaredError,
    "mean_absolute_error": MeanAbsoluteError, "mae": MeanAbsoluteError,
    "mean_absolute_percentage_error": MeanAbsolutePercentageError, "mape": MeanAbsolutePercentageError,
    "mean_squared_logarithmic_error": MeanSquaredLogarithmicError, "msle": MeanSquaredLogarithmicError,
    "huber": Huber, "huber_loss": Huber, "kl_divergence": KLDivergence, "kld": KLDivergence,
    "kullback_leibler_divergence": KLDivergence, "hinge": Hinge,
}
_CLASSES = {c.__name__: c for c in set(_BY_NAME.values())}
_FUNCTIONS = {binary_crossentropy, categorical_crossentropy, sparse_categorical_crossentropy, mean_squared_error,
              mean_absolute_error, mean_absolute_percentage_error, mean_squared_logarithmic_error, huber,
              kl_divergence, hinge}
_CLASS_OF_FUNCTION = {binary_crossentropy: BinaryCrossentropy, categorical_crossentropy: CategoricalCrossentropy,
                      sparse_categorical_crossentropy: SparseCategoricalCrossentropy,
                      mean_squared_error: MeanSquaredError, mean_absolute_error: MeanAbsoluteError,
                      mean_absolute_percentage_error: MeanAbsolutePercentageError,
                      mean_squared_logarithmic_error: MeanSquaredLogarithmicError, huber: Huber,
                      kl_divergence: KLDivergence, hinge: Hinge}


def get(identifier):
    """A Loss object for a name ("mse", "binary_crossentropy", "BinaryCrossentropy"), a Loss, a Keras loss
    function, or any callable ``fn(y_true, y_pred)`` returning per-sample (or scalar) losses."""
    if isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, str):
        cls = _BY_NAME.get(identifier) or _BY_NAME.get(identifier.lower()) or _CLASSES.get(identifier)
        if cls is None:
            raise ValueError(f"Unknown loss function: {identifier!r}. Known names: {', '.join(sorted(_BY_NAME))}; "
                             "or pass a Loss object or a function fn(y_true, y_pred)")
        return cls()
    if isinstance(identifier, dict) and identifier.get("class_name") in _CLASSES:
        return _CLASSES[identifier["class_name"]].from_config(identifier.get("config", {}))
    if isinstance(identifier, type) and issubclass(identifier, Loss):
        return identifier()
    if identifier in _CLASS_OF_FUNCTION:
        return _CLASS_OF_FUNCTION[identifier]()
    if callable(identifier):
        return LossFunctionWrapper(identifier)
    raise TypeError(f"Could not interpret loss identifier: {identifier!r}")


def serialize(loss):
    """A JSON-able description of a loss: its name for built-ins, else its class/function name."""
    if isinstance(loss, Loss) and type(loss) in _CLASSES.values():
        return {"class_name": type(loss).__name__, "config": loss.get_config()}
    if isinstance(loss, LossFunctionWrapper):
        return getattr(loss.fn, "__name__", None)
    return type(loss).__name__


def deserialize(config, custom_objects=None):
    if isinstance(config, str) and custom_objects and config in custom_objects:
        return get(custom_objects[config])
    return get(config)
