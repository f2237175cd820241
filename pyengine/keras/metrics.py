"""Keras metrics: stateful running values over an epoch, computed in NumPy (no gradient needed).

A metric accumulates with ``update_state(y_true, y_pred, sample_weight=None)``, reports ``result()`` and
starts over with ``reset_state()``; ``fit`` resets them at each epoch start, so the value logged for an
epoch is its average over all of the epoch's batches (weighted by batch size), as in Keras.

    Accuracy ("accuracy", "acc")   resolved as Keras does: binary_accuracy for binary_crossentropy (or one
                                   output unit), sparse_categorical_accuracy for integer labels, else
                                   categorical_accuracy
    BinaryAccuracy, CategoricalAccuracy, SparseCategoricalAccuracy, TopKCategoricalAccuracy
    MeanSquaredError ("mse"), MeanAbsoluteError ("mae"), RootMeanSquaredError, MeanAbsolutePercentageError
    ("mape"), BinaryCrossentropy, CategoricalCrossentropy, SparseCategoricalCrossentropy
    Precision, Recall, AUC (ROC, 200 thresholds), Mean, Sum

>>> m = BinaryAccuracy()
>>> m.update_state([[1], [0], [1]], [[0.8], [0.6], [0.3]])
>>> m.result()
0.3333333333333333
"""
import numpy as np

from ..tensor import Tensor
from .backend import epsilon, snake_case

__all__ = ["Metric", "Mean", "Sum", "MeanMetricWrapper", "Accuracy", "BinaryAccuracy", "CategoricalAccuracy",
           "SparseCategoricalAccuracy", "TopKCategoricalAccuracy", "MeanSquaredError", "MeanAbsoluteError",
           "RootMeanSquaredError", "MeanAbsolutePercentageError", "BinaryCrossentropy",
           "CategoricalCrossentropy", "SparseCategoricalCrossentropy", "Precision", "Recall", "AUC",
           "binary_accuracy", "categorical_accuracy", "sparse_categorical_accuracy", "accuracy", "get",
           "serialize"]


def _np(x):
    if isinstance(x, Tensor):
        return x._data
    return np.asarray(x)


def _align(y_true, y_pred):
    """(B,) labels against (B, 1) predictions -> (B, 1), and the reverse (Keras's squeeze/expand)."""
    if y_true.ndim == y_pred.ndim - 1 and y_pred.shape[-1] == 1:
        return y_true[..., None]
    if y_true.ndim == y_pred.ndim + 1 and y_true.shape[-1] == 1:
        return y_true[..., 0]
    return y_true


# ---------------------------------------------------------------------- per-sample functions (NumPy)


def binary_accuracy(y_true, y_pred, threshold=0.5):
    """mean over the last axis of [y == (p > threshold)]."""
    y_pred = _np(y_pred)
    y_true = _align(_np(y_true), y_pred)
    return np.mean(y_true == (y_pred > threshold).astype(y_true.dtype), axis=-1)


def categorical_accuracy(y_true, y_pred):
    """[argmax y == argmax p] for one-hot labels."""
    return (np.argmax(_np(y_true), -1) == np.argmax(_np(y_pred), -1)).astype(np.float64)


def sparse_categorical_accuracy(y_true, y_pred):
    """[y == argmax p] for integer labels (B,) or (B, 1)."""
    y_pred = _np(y_pred)
    y_true = _np(y_true)
    if y_true.ndim == y_pred.ndim and y_true.shape[-1] == 1:
        y_true = y_true[..., 0]
    return (y_true.astype(np.int64) == np.argmax(y_pred, -1)).astype(np.float64)


def top_k_categorical_accuracy(y_true, y_pred, k=5):
    y_pred = _np(y_pred)
    top = np.argsort(-y_pred, axis=-1)[..., :k]
    return np.any(top == np.argmax(_np(y_true), -1)[..., None], axis=-1).astype(np.float64)


def accuracy(y_true, y_pred):
    """[y == p] elementwise (Keras's plain ``Accuracy`` metric: exact equality)."""
    y_pred = _np(y_pred)
    y_true = _align(_np(y_true), y_pred)
    return np.mean(y_true == y_pred, axis=-1) if y_pred.ndim > 1 else (y_true == y_pred).astype(np.float64)


def _regression(fn):
    def metric(y_true, y_pred):
        y_pred = _np(y_pred).astype(np.float64)
        y_true = _align(_np(y_true), y_pred).astype(np.float64)
        return np.mean(fn(y_true, y_pred), axis=-1)
    metric.__name__ = fn.__name__
    return metric


@_regression
def mean_squared_error(y_true, y_pred):
    return (y_true - y_pred) ** 2


@_regression
def mean_absolute_error(y_true, y_pred):
    return np.abs(y_true - y_pred)


@_regression
def mean_absolute_percentage_error(y_true, y_pred):
    return 100.0 * np.abs((y_true - y_pred) / np.maximum(np.abs(y_true), epsilon()))


def binary_crossentropy(y_true, y_pred):
    y_pred = np.clip(_np(y_pred).astype(np.float64), epsilon(), 1 - epsilon())
    y_true = _align(_np(y_true), y_pred).astype(np.float64)
    return -np.mean(y_true * np.log(y_pred) + (1 - y_true) * np.log(1 - y_pred), axis=-1)


def categorical_crossentropy(y_true, y_pred):
    p = _np(y_pred).astype(np.float64)
    p = np.clip(p / p.sum(-1, keepdims=True), epsilon(), 1 - epsilon())
    return -np.sum(_np(y_true) * np.log(p), axis=-1)


def sparse_categorical_crossentropy(y_true, y_pred):
    p = np.clip(_np(y_pred).astype(np.float64), epsilon(), 1 - epsilon())
    p = p / p.sum(-1, keepdims=True)
    y = _np(y_true)
    if y.ndim == p.ndim and y.shape[-1] == 1:
        y = y[..., 0]
    return -np.log(np.take_along_axis(p, y.astype(np.int64)[..., None], -1)[..., 0])


mse, mae, mape = mean_squared_error, mean_absolute_error, mean_absolute_percentage_error


# ---------------------------------------------------------------------- metric objects


class Metric:
    """Base class of stateful metrics: ``update_state``, ``result``, ``reset_state``.

    Calling a metric updates it and returns the result so far.
    """

    def __init__(self, name=None, dtype=None):
        self.name = name or snake_case(type(self).__name__)
        self.reset_state()

    def update_state(self, y_true, y_pred, sample_weight=None):
        raise NotImplementedError

    def result(self):
        raise NotImplementedError

    def reset_state(self):
        raise NotImplementedError

    reset_states = reset_state

    def __call__(self, y_true, y_pred, sample_weight=None):
        self.update_state(y_true, y_pred, sample_weight)
        return self.result()

    def get_config(self):
        return {"name": self.name}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name!r}>"


class Mean(Metric):
    """The (weighted) mean of the values given to ``update_state(values, sample_weight=None)``."""

    def reset_state(self):
        self.total, self.count = 0.0, 0.0

    def update_state(self, values, sample_weight=None):
        v = np.asarray(_np(values), dtype=np.float64)
        if v.ndim == 0:
            v = v.reshape(1)
        if sample_weight is None:
            self.total += float(v.sum())
            self.count += v.size
        else:
            w = np.broadcast_to(np.asarray(_np(sample_weight), dtype=np.float64).reshape(
                (-1,) + (1,) * max(0, v.ndim - 1)), v.shape)
            self.total += float((v * w).sum())
            self.count += float(w.sum())

    def result(self):
        return self.total / self.count if self.count else 0.0


class Sum(Metric):
    def reset_state(self):
        self.total = 0.0

    def update_state(self, values, sample_weight=None):
        v = np.asarray(_np(values), dtype=np.float64)
        self.total += float((v if sample_weight is None else v * _np(sample_weight)).sum())

    def result(self):
        return self.total


class MeanMetricWrapper(Mean):
    """The running mean of ``fn(y_true, y_pred)`` (one value per sample) over everything seen."""

    def __init__(self, fn, name=None, dtype=None, **kwargs):
        self.fn, self._fn_kwargs = fn, kwargs
        super().__init__(name or fn.__name__, dtype)

    def update_state(self, y_true, y_pred, sample_weight=None):
        super().update_state(self.fn(y_true, y_pred, **self._fn_kwargs), sample_weight)

    def get_config(self):
        return {"name": self.name, **self._fn_kwargs}


def _wrapper(fn, default_name, doc):
    class _M(MeanMetricWrapper):
        def __init__(self, name=default_name, dtype=None, **kwargs):
            super().__init__(fn, name, dtype, **kwargs)
    _M.__doc__ = doc
    return _M


Accuracy = _wrapper(accuracy, "accuracy", "How often predictions equal labels exactly.")
CategoricalAccuracy = _wrapper(categorical_accuracy, "categorical_accuracy",
                               "How often argmax(prediction) equals argmax(one-hot label).")
SparseCategoricalAccuracy = _wrapper(sparse_categorical_accuracy, "sparse_categorical_accuracy",
                                     "How often argmax(prediction) equals the integer label.")
MeanSquaredError = _wrapper(mean_squared_error, "mean_squared_error", "mean (y - p)^2")
MeanAbsoluteError = _wrapper(mean_absolute_error, "mean_absolute_error", "mean |y - p|")
MeanAbsolutePercentageError = _wrapper(mean_absolute_percentage_error, "mean_absolute_percentage_error",
                                       "100 mean |(y - p) / y|")
BinaryCrossentropy = _wrapper(binary_crossentropy, "binary_crossentropy", "binary crossentropy on probabilities")
CategoricalCrossentropy = _wrapper(categorical_crossentropy, "categorical_crossentropy",
                                   "categorical crossentropy on probabilities")
SparseCategoricalCrossentropy = _wrapper(sparse_categorical_crossentropy, "sparse_categorical_crossentropy",
                                         "sparse categorical crossentropy on probabilities")
for _cls, _n in ((Accuracy, "Accuracy"), (CategoricalAccuracy, "CategoricalAccuracy"),
                 (SparseCategoricalAccuracy, "SparseCategoricalAccuracy"), (MeanSquaredError, "MeanSquaredError"),
                 (MeanAbsoluteError, "MeanAbsoluteError"),
                 (MeanAbsolutePercentageError, "MeanAbsolutePercentageError"),
                 (BinaryCrossentropy, "BinaryCrossentropy"), (CategoricalCrossentropy, "CategoricalCrossentropy"),
                 (SparseCategoricalCrossentropy, "SparseCategoricalCrossentropy")):
    _cls.__name__ = _cls.__qualname__ = _n


class BinaryAccuracy(MeanMetricWrapper):
    """How often (p > threshold) equals the 0/1 label."""

    def __init__(self, name="binary_accuracy", dtype=None, threshold=0.5):
        super().__init__(binary_accuracy, name, dtype, threshold=threshold)


class TopKCategoricalAccuracy(MeanMetricWrapper):
    """How often the one-hot label's class is among the k highest predictions."""

    def __init__(self, k=5, name="top_k_categorical_accuracy", dtype=None):
        super().__init__(top_k_categorical_accuracy, name, dtype, k=k)


class RootMeanSquaredError(Mean):
    """sqrt of the running mean of (y - p)^2."""

    def __init__(self, name="root_mean_squared_error", dtype=None):
        super().__init__(name, dtype)

    def update_state(self, y_true, y_pred, sample_weight=None):
        super().update_state(mean_squared_error(y_true, y_pred), sample_weight)

    def result(self):
        return float(np.sqrt(super().result()))


class _Confusion(Metric):
    """True/false positives and false negatives of (p > threshold) against 0/1 labels."""

    def __init__(self, thresholds=None, name=None, dtype=None):
        self.threshold = 0.5 if thresholds is None else float(thresholds)
        super().__init__(name, dtype)

    def reset_state(self):
        self.tp = self.fp = self.fn = 0.0

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_pred = _np(y_pred)
        y_true = _align(_np(y_true), y_pred).astype(bool)
        pred = y_pred > self.threshold
        w = 1.0 if sample_weight is None else np.broadcast_to(
            _np(sample_weight).reshape((-1,) + (1,) * (y_pred.ndim - 1)), y_pred.shape)
        self.tp += float(np.sum(w * (pred & y_true)))
        self.fp += float(np.sum(w * (pred & ~y_true)))
        self.fn += float(np.sum(w * (~pred & y_true)))

    def get_config(self):
        return {"name": self.name, "thresholds": self.threshold}


class Precision(_Confusion):
    """tp / (tp + fp) of (p > 0.5) against 0/1 labels."""

    def result(self):
        d = self.tp + self.fp
        return self.tp / d if d else 0.0


class Recall(_Confusion):
    """tp / (tp + fn) of (p > 0.5) against 0/1 labels."""

    def result(self):
        d = self.tp + self.fn
        return self.tp / d if d else 0.0


class AUC(Metric):
    """Area under the ROC curve, from counts at ``num_thresholds`` evenly spaced thresholds in [0, 1]
    (Keras's approximation; the trapezoidal rule between thresholds)."""

    def __init__(self, num_thresholds=200, name="auc", dtype=None, **kwargs):
        self.num_thresholds = int(num_thresholds)
        eps = epsilon()
        inner = np.linspace(0, 1, self.num_thresholds)[1:-1]
        self.thresholds = np.concatenate([[-eps], inner, [1 + eps]])
        super().__init__(name, dtype)

    def reset_state(self):
        self.tp = np.zeros(self.num_thresholds)
        self.fp = np.zeros(self.num_thresholds)
        self.pos = self.neg = 0.0

    def update_state(self, y_true, y_pred, sample_weight=None):
        p = _np(y_pred).reshape(-1).astype(np.float64)
        y = _align(_np(y_true), _np(y_pred)).reshape(-1).astype(bool)
        w = np.ones_like(p) if sample_weight is None else np.broadcast_to(
            _np(sample_weight).reshape(-1, *([1] * (_np(y_pred).ndim - 1))), _np(y_pred).shape).reshape(-1)
        above = p[None, :] > self.thresholds[:, None]          # (thresholds, samples)
        self.tp += (above & y).astype(np.float64) @ w
        self.fp += (above & ~y).astype(np.float64) @ w
        self.pos += float(w[y].sum())
        self.neg += float(w[~y].sum())

    def result(self):
        if not self.pos or not self.neg:
            return 0.0
        tpr, fpr = self.tp / self.pos, self.fp / self.neg
        return float(np.sum((fpr[:-1] - fpr[1:]) * (tpr[:-1] + tpr[1:]) / 2))

    def get_config(self):
        return {"name": self.name, "num_thresholds": self.num_thresholds}


# ---------------------------------------------------------------------- lookup


_ACCURACY_NAMES = ("accuracy", "acc")
_BY_NAME = {
    "binary_accuracy": BinaryAccuracy, "categorical_accuracy": CategoricalAccuracy,
    "sparse_categorical_accuracy": SparseCategoricalAccuracy,
    "top_k_categorical_accuracy": TopKCategoricalAccuracy,
    "mse": MeanSquaredError, "mean_squared_error": MeanSquaredError,
    "mae": MeanAbsoluteError, "mean_absolute_error": MeanAbsoluteError,
    "mape": MeanAbsolutePercentageError, "mean_absolute_percentage_error": MeanAbsolutePercentageError,
    "rmse": RootMeanSquaredError, "root_mean_squared_error": RootMeanSquaredError,
    "binary_crossentropy": BinaryCrossentropy, "categorical_crossentropy": CategoricalCrossentropy,
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
    "precision": Precision, "recall": Recall, "auc": AUC,
}
_CLASSES = {c.__name__: c for c in (Mean, Sum, Accuracy, BinaryAccuracy, CategoricalAccuracy,
                                    SparseCategoricalAccuracy, TopKCategoricalAccuracy, MeanSquaredError,
                                    MeanAbsoluteError, RootMeanSquaredError, MeanAbsolutePercentageError,
                                    BinaryCrossentropy, CategoricalCrossentropy, SparseCategoricalCrossentropy,
                                    Precision, Recall, AUC)}


class _ResolvedAccuracy(MeanMetricWrapper):
    """"accuracy" before it knows which one: picks binary / sparse categorical / categorical accuracy by the
    loss, or else by the shapes of the first batch (Keras's rule)."""

    def __init__(self, name="accuracy", loss_name=None):
        fn = {"binary_crossentropy": binary_accuracy, "categorical_crossentropy": categorical_accuracy,
              "sparse_categorical_crossentropy": sparse_categorical_accuracy}.get(loss_name)
        super().__init__(fn or self._resolve, name)

    def _resolve(self, y_true, y_pred):
        y_true, y_pred = _np(y_true), _np(y_pred)
        if y_pred.shape[-1] == 1 or y_pred.ndim == 1:
            self.fn = binary_accuracy
        elif y_true.ndim < y_pred.ndim or y_true.shape[-1] == 1:
            self.fn = sparse_categorical_accuracy
        else:
            self.fn = categorical_accuracy
        return self.fn(y_true, y_pred)


def get(identifier, loss_name=None):
    """A Metric for a name ("accuracy", "mae", "AUC"), a Metric, a Metric class, or a function
    ``fn(y_true, y_pred)`` returning per-sample values. ``loss_name`` (the compiled loss's name) decides
    what "accuracy" means. The metric's ``name`` (the key in ``History``) is the string given."""
    if isinstance(identifier, Metric):
        return identifier
    if isinstance(identifier, type) and issubclass(identifier, Metric):
        return identifier()
    if isinstance(identifier, str):
        if identifier in _ACCURACY_NAMES:
            return _ResolvedAccuracy(identifier, loss_name)
        cls = _BY_NAME.get(identifier) or _BY_NAME.get(identifier.lower()) or _CLASSES.get(identifier)
        if cls is None:
            raise ValueError(f"Unknown metric: {identifier!r}. Known names: "
                             f"{', '.join(sorted(_BY_NAME) + list(_ACCURACY_NAMES))}")
        return cls(name=identifier) if identifier in _BY_NAME else cls()
    if isinstance(identifier, dict) and identifier.get("class_name") in _CLASSES:
        return _CLASSES[identifier["class_name"]].from_config(identifier.get("config", {}))
    if callable(identifier):
        return MeanMetricWrapper(identifier, getattr(identifier, "__name__", "metric"))
    raise TypeError(f"Could not interpret metric identifier: {identifier!r}")


def serialize(metric):
    if isinstance(metric, _ResolvedAccuracy):
        return metric.name
    if type(metric) in _CLASSES.values():
        return {"class_name": type(metric).__name__, "config": metric.get_config()}
    return metric.name
