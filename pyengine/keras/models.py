"""Keras models: ``Sequential``, the functional ``Model(inputs, outputs)``, subclassed ``Model``s, and
the training API they share (``compile``, ``fit``, ``evaluate``, ``predict``, ``save``, ``load_model``).

>>> model = Sequential([Embedding(10000, 64), LSTM(32), Dense(1, activation="sigmoid")])
>>> model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
>>> history = model.fit(x_train, y_train, epochs=3, batch_size=32, validation_split=0.1)
>>> history.history["val_accuracy"]
[0.81, 0.86, 0.87]
>>> model.save("classifier.safetensors"); model = load_model("classifier.safetensors")

How ``fit`` is built (Keras's design): a generic loop over epochs and batches that calls the callbacks'
hooks around ONE method, ``train_step(data)``: forward pass, ``compute_loss``, ``loss.backward()``, one
optimizer step, ``compute_metrics``. ``evaluate`` and ``predict`` are the same loop around ``test_step`` and
``predict_step`` (under ``no_grad``, inference mode). Override a step to change what training does and keep
the loop, the callbacks and the progress bar:

>>> class MyModel(Sequential):
...     def train_step(self, data):
...         x, y, sample_weight = unpack_x_y_sample_weight(data)
...         y_pred = self(x, training=True)
...         loss = self.compute_loss(x, y, y_pred, sample_weight)
...         self.optimizer.zero_grad(); loss.backward(); self.optimizer.step()
...         return self.compute_metrics(x, y, y_pred, sample_weight)

Stable losses without asking: when the last layer is ``Dense(..., activation="sigmoid")`` (or "softmax",
or an ``Activation`` layer) and the loss is the matching crossentropy, the forward pass keeps that layer's
logits and the loss is computed from them (BCE-with-logits, log-softmax), as Keras does.
"""
import json
import math
import numbers
import os

import numpy as np

import pyengine as pe
from .. import io as _io
from ..random import _rng
from ..tensor import Tensor
from . import layers as layers_module
from . import losses as losses_module
from . import metrics as metrics_module
from . import optimizers as optimizers_module
from .backend import snake_case, unique_object_name
from .callbacks import CallbackList
from .layers import InputLayer, KerasTensor, Layer, _as_tensor
from .utils import unpack_x_y_sample_weight

__all__ = ["Model", "Sequential", "Functional", "load_model", "model_from_json", "clone_model"]

_FORMAT = "pyengine.keras"
_FORMAT_VERSION = 1


# ---------------------------------------------------------------------- data: arrays and iterables -> batches


def _as_array(value, what):
    """A NumPy array of samples from a NumPy array, a nested list or a Tensor (float64 -> float32)."""
    if isinstance(value, Tensor):
        arr = value._data
    elif isinstance(value, np.ndarray):
        arr = value
    else:
        try:
            arr = np.asarray(value)
        except ValueError:
            arr = np.asarray(value, dtype=object)
    if arr.dtype == object:
        raise ValueError(f"{what}: could not turn the data into one array (sequences of different lengths?); "
                         "pad them first with keras.preprocessing.sequence.pad_sequences")
    if arr.ndim == 0:
        raise ValueError(f"{what}: expected an array of samples, got a scalar")
    if arr.dtype == np.float64 or arr.dtype == np.bool_ or arr.dtype == np.float16:
        arr = arr.astype(np.float32)
    return arr


def _to_batch_tensor(arr):
    return pe.from_numpy(np.ascontiguousarray(arr))


class _ArrayData:
    """Batches of in-memory arrays: x (one array, or a list for a multi-input model), y, sample_weight.

    Iterating gives ``(x, y, sample_weight)`` tuples of Tensors (None where absent), in a new random order each
    time when ``shuffle`` (pyengine's generator: ``pyengine.manual_seed`` makes it repeatable).
    """

    rank, world = 0, 1  # data-parallel fit: this rank takes every world-th sample of each epoch's order

    def __init__(self, x, y, sample_weight, batch_size, shuffle, n_inputs, what):
        if x is None:
            raise ValueError(f"{what}: x is required")
        multi = n_inputs > 1 and isinstance(x, (list, tuple))
        self.x = [_as_array(xi, what) for xi in x] if multi else _as_array(x, what)
        self.multi = multi
        self.y = None if y is None else _as_array(y, what)
        self.sample_weight = None if sample_weight is None else _as_array(sample_weight, what).astype(np.float32)
        sizes = {"x": [len(a) for a in self.x] if multi else [len(self.x)]}
        if self.y is not None:
            sizes["y"] = [len(self.y)]
        if self.sample_weight is not None:
            sizes["sample_weight"] = [len(self.sample_weight)]
        if len({n for v in sizes.values() for n in v}) > 1:
            detail = ", ".join(f"{k} sizes: {', '.join(map(str, v))}" for k, v in sizes.items())
            raise ValueError(f"{what}: data cardinality is ambiguous: {detail}. Make sure all arrays contain the "
                             "same number of samples.")
        self.n = sizes["x"][0]
        if batch_size is None:
            batch_size = 32
        if not isinstance(batch_size, numbers.Integral) or batch_size <= 0:
            raise ValueError(f"{what}: batch_size must be a positive integer, got {batch_size!r}")
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.steps = math.ceil(self.n / self.batch_size)

    def _take(self, a, idx):
        return None if a is None else _to_batch_tensor(a[idx])

    def shard(self, rank, world):
        """Data-parallel: each epoch every rank draws the same order (seeded from rank 0) and takes samples
        rank, rank + world, ... of it; the order is padded from its start so all ranks take equal steps."""
        self.rank, self.world = rank, world
        self.steps = math.ceil(math.ceil(self.n / world) / self.batch_size)
        return self

    def __iter__(self):
        order = _rng().permutation(self.n) if self.shuffle else None
        if self.world > 1:
            from .. import distributed as dist
            seed = np.array([int(_rng().integers(0, 2 ** 62))], dtype=np.int64)
            dist.broadcast(seed, 0)  # every rank shuffles alike
            order = np.random.default_rng(int(seed[0])).permutation(self.n) if self.shuffle else np.arange(self.n)
            per_rank = math.ceil(self.n / self.world)
            order = np.resize(order, per_rank * self.world)[self.rank::self.world]
        for i in range(self.steps):
            idx = slice(i * self.batch_size, (i + 1) * self.batch_size)
            if order is not None:
                idx = order[idx]
            x = [self._take(a, idx) for a in self.x] if self.multi else self._take(self.x, idx)
            yield x, self._take(self.y, idx), self._take(self.sample_weight, idx)

    def split_last(self, fraction):
        """(first part, last ``fraction``): Keras's ``validation_split`` takes the LAST samples, before shuffling."""
        if not 0.0 < fraction < 1.0:
            raise ValueError(f"validation_split must be in (0, 1), got {fraction}")
        at = int(math.floor(self.n * (1.0 - fraction)))
        if at == 0 or at == self.n:
            raise ValueError(f"validation_split={fraction} leaves no training or no validation samples "
                             f"({self.n} samples)")

        def part(sl):
            new = object.__new__(_ArrayData)
            new.__dict__.update(self.__dict__)
            new.x = [a[sl] for a in self.x] if self.multi else self.x[sl]
            new.y = None if self.y is None else self.y[sl]
            new.sample_weight = None if self.sample_weight is None else self.sample_weight[sl]
            new.n = len(new.x[0]) if self.multi else len(new.x)
            new.steps = math.ceil(new.n / new.batch_size)
            return new
        return part(slice(0, at)), part(slice(at, None))


class _IterableData:
    """Batches from an iterable: a pyengine DataLoader, a generator, any iterable of (x, y[, sample_weight]).

    A re-iterable object (a DataLoader, a list) starts over each epoch; a one-shot iterator (a generator)
    is read on across epochs, ``steps`` batches at a time (Keras's ``steps_per_epoch``).
    """

    def __init__(self, source, steps, what):
        self.source = source
        self.one_shot = iter(source) is source
        self._it = source if self.one_shot else None
        if steps is None:
            try:
                steps = len(source)
            except TypeError:
                steps = None
        if steps is None and self.one_shot:
            raise ValueError(f"{what}: a generator never says when an epoch ends; pass steps_per_epoch (fit) "
                             "or steps (evaluate/predict)")
        self.steps = steps
        self.shuffle = False

    @staticmethod
    def _tensor(v):
        if v is None or isinstance(v, Tensor):
            return v
        return _to_batch_tensor(_as_array(v, "batch"))

    def __iter__(self):
        it = self._it if self.one_shot else iter(self.source)
        for i, batch in enumerate(it):
            x, y, sw = unpack_x_y_sample_weight(batch)
            x = [self._tensor(v) for v in x] if isinstance(x, (list, tuple)) else self._tensor(x)
            yield x, self._tensor(y), self._tensor(sw)
            if self.steps is not None and i + 1 >= self.steps:
                break


def _is_batch_iterable(x):
    """A DataLoader / generator / iterable of batches, as opposed to in-memory samples."""
    if x is None or isinstance(x, (np.ndarray, Tensor, list, tuple, dict, str)):
        return False
    return hasattr(x, "__iter__")


def _class_weights(y, class_weight):
    """One weight per sample from ``class_weight`` ({class: weight}) and the labels."""
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] > 1:
        ids = np.argmax(y, axis=1)
    else:
        ids = np.rint(y.reshape(len(y), -1)[:, 0]).astype(np.int64)
    w = np.ones(len(y), np.float32)
    for cls, weight in class_weight.items():
        w[ids == int(cls)] = weight
    return w


def _dtype_name(x):
    """The dtype of an input batch (the first input's, for several), as a NumPy dtype name."""
    if isinstance(x, (list, tuple)) and x and isinstance(x[0], (Tensor, np.ndarray)):
        x = x[0]
    if isinstance(x, Tensor):
        return str(x._data.dtype)
    if isinstance(x, np.ndarray):
        return str(x.dtype)
    return None


class _Mode:
    """``with _Mode(model, training):`` sets the pyengine train/eval flag of every module for a loop and puts
    the previous one back (for plain pyengine modules inside Keras layers; Keras layers follow the
    ``training`` argument)."""

    def __init__(self, model, training):
        self.model, self.training = model, training

    def __enter__(self):
        self.previous = self.model.training
        self.model.train(self.training)

    def __exit__(self, *exc):
        self.model.train(self.previous)


def _verbosity(verbose):
    if verbose == "auto":
        return 1
    if verbose not in (0, 1, 2) or isinstance(verbose, bool):
        raise ValueError(f"verbose must be 0, 1, 2 or 'auto', got {verbose!r}")
    return verbose


def _logs(results):
    return {k: float(v) if isinstance(v, (numbers.Real, np.generic, Tensor)) else v for k, v in results.items()}


# ---------------------------------------------------------------------- Model


class Model(Layer):
    """A model: layers plus the training API (``compile``, ``fit``, ``evaluate``, ``predict``, ``save``).

    Three ways to make one, as in Keras:

    - ``Sequential([layer, layer, ...])``: a stack.
    - functional: ``inputs = Input(shape=(20,)); outputs = Dense(1)(Dense(8)(inputs));
      model = Model(inputs, outputs)``.
    - subclassing: assign layers in ``__init__`` (after ``super().__init__()``), compute in
      ``call(self, inputs, training=False)``.
    """

    _float_inputs = False  # the layers cast what they need (Embedding wants integer ids)

    def __new__(cls, *args, **kwargs):
        if cls is Model and (len(args) >= 2 or "outputs" in kwargs or
                             (args and isinstance(args[0], (KerasTensor, list, tuple, dict)))):
            return super().__new__(Functional)
        return super().__new__(cls)

    def __init__(self, *args, name=None, trainable=True, **kwargs):
        if args:
            raise TypeError(f"{type(self).__name__}.__init__ takes keyword arguments only (got {len(args)} "
                            "positional); a functional model is Model(inputs, outputs)")
        super().__init__(name=name or unique_object_name(snake_case(type(self).__name__)), trainable=trainable,
                         **kwargs)
        self.compiled = False
        self.optimizer = None
        self.loss = None
        self.history = None
        self.stop_training = False
        self._loss_obj = None
        self._metrics = []
        self._loss_tracker = metrics_module.Mean(name="loss")
        self._compile_config = None
        self._last_logits = None
        self._build_input_dtype = None

    # -------------------------------------------------------------- structure
    @property
    def layers(self):
        """The model's layers, in order."""
        return [m for m in self._modules.values() if isinstance(m, Layer)]

    def get_layer(self, name=None, index=None):
        """A layer by name or by index in ``layers``."""
        if index is not None:
            if not -len(self.layers) <= index < len(self.layers):
                raise ValueError(f"get_layer: index {index} is out of range for a model of {len(self.layers)} layers")
            return self.layers[index]
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise ValueError(f"No such layer: {name!r}. Existing layers are: {[layer.name for layer in self.layers]}")

    def _maybe_build(self, input_shape):
        # a subclassed model builds its layers by running them: nothing to do before the first call
        self._build_input_shape = layers_module._with_batch_none(input_shape)
        self.built = True

    def __call__(self, inputs, *args, **kwargs):
        if not self.built and self._build_input_dtype is None:
            self._build_input_dtype = _dtype_name(inputs)  # so that load_model can rebuild it the same way
        return super().__call__(inputs, *args, **kwargs)

    def build(self, input_shape):
        """Create the weights for inputs of ``input_shape`` (with None or an int for the batch), by running
        the model once on zeros of that shape."""
        shape = tuple(1 if d is None else int(d) for d in input_shape)
        dtype = self._build_input_dtype or "float32"
        with pe.no_grad():
            self(np.zeros(shape, dtype=dtype))

    # -------------------------------------------------------------- compile
    def compile(self, optimizer="rmsprop", loss=None, metrics=None, loss_weights=None, weighted_metrics=None,
                run_eagerly=None, steps_per_execution=None, jit_compile=None, **kwargs):
        """Choose the optimizer, the loss and the metrics for ``fit`` / ``evaluate``.

        optimizer: "adam", "sgd", "adamw", "rmsprop", "adagrad" or a ``keras.optimizers`` object.
        loss: "binary_crossentropy", "categorical_crossentropy", "sparse_categorical_crossentropy", "mse",
            "mae", ... a ``keras.losses`` object, or ``fn(y_true, y_pred)``.
        metrics: names ("accuracy", "mae", "mse", "AUC", ...), ``keras.metrics`` objects or functions.
            "accuracy" means the accuracy that fits the loss (binary / categorical / sparse categorical).
        """
        if kwargs:
            raise TypeError(f"compile: unexpected keyword argument(s) {sorted(kwargs)}")
        if isinstance(loss, (list, dict)) or isinstance(metrics, dict) or loss_weights is not None:
            raise NotImplementedError("compile: models with several outputs (lists/dicts of losses, "
                                      "loss_weights) are not supported yet")
        if weighted_metrics:
            raise NotImplementedError("compile: weighted_metrics is not supported")
        self.optimizer = optimizers_module.get(optimizer)
        self.loss = loss
        self._loss_obj = losses_module.get(loss) if loss is not None else None
        loss_name = _LOSS_NAMES.get(type(self._loss_obj))
        if metrics is not None and not isinstance(metrics, (list, tuple)):
            raise TypeError(f"compile: metrics must be a list, got {type(metrics).__name__}")
        self._metrics = [metrics_module.get(m, loss_name) for m in (metrics or [])]
        names = ["loss"] + [m.name for m in self._metrics]
        if len(set(names)) != len(names):
            raise ValueError(f"compile: two metrics have the same name: {names}")
        self._compile_config = {
            "optimizer": _try(lambda: optimizers_module.serialize(self.optimizer)),
            "loss": loss if isinstance(loss, str) or loss is None else _try(lambda: losses_module.serialize(
                self._loss_obj)),
            "metrics": [m if isinstance(m, str) else _try(lambda m=m: metrics_module.serialize(
                metrics_module.get(m, loss_name))) for m in (metrics or [])]}
        self.compiled = True

    def _assert_compiled(self, what):
        if not self.compiled:
            raise RuntimeError(f"You must call compile() before {what} the model "
                               "(e.g. model.compile(optimizer='adam', loss='mse')).")

    @property
    def metrics(self):
        """The metric objects: the loss tracker, then the compiled metrics."""
        return [self._loss_tracker] + list(self._metrics) if self.compiled else []

    @property
    def metrics_names(self):
        return [m.name for m in self.metrics]

    def reset_metrics(self):
        for m in self.metrics:
            m.reset_state()

    # -------------------------------------------------------------- the steps
    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """The scalar loss of a batch (a Tensor to call ``backward`` on), weight penalties included; also
        updates the ``loss`` tracker.

        When ``y_pred`` is this model's last output and its last layer ended in the activation the loss
        undoes (sigmoid for binary, softmax for categorical crossentropy), the loss is computed from the
        logits kept by the forward pass, which is exact where log(sigmoid(z)) would underflow.
        """
        if self._loss_obj is None:
            raise ValueError("No loss to compute: pass loss= to compile(), or override compute_loss/train_step")
        if y is None:
            raise ValueError("compute_loss: the labels y are missing: fit/evaluate need (x, y)")
        cache, self._last_logits = self._last_logits, None
        logits = None
        if cache is not None and cache[0] is y_pred and self._loss_obj._can_use_logits(cache[2]):
            logits = cache[1]
        loss = self._loss_obj._compute(y, y_pred, sample_weight, logits)
        for penalty in self.losses:
            loss = loss + penalty
        batch = y_pred.shape[0] if y_pred is not None and getattr(y_pred, "ndim", 0) else 1
        self._loss_tracker.update_state(float(loss._data), sample_weight=batch)
        return loss

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        """Update the compiled metrics with a batch; return every metric's result so far (loss first)."""
        if self._metrics:
            y_pred_np = y_pred._data if isinstance(y_pred, Tensor) else np.asarray(y_pred)
            y_np = y._data if isinstance(y, Tensor) else np.asarray(y)
            sw = None if sample_weight is None else (sample_weight._data if isinstance(sample_weight, Tensor)
                                                     else np.asarray(sample_weight))
            for m in self._metrics:
                m.update_state(y_np, y_pred_np, sw)
        return self.get_metrics_result()

    def get_metrics_result(self):
        return {m.name: m.result() for m in self.metrics}

    def train_step(self, data):
        """One optimisation step on a batch ``(x, y, sample_weight)``; returns the logs (running averages).

        forward (training=True) -> compute_loss -> backward -> optimizer step -> compute_metrics.
        """
        x, y, sample_weight = unpack_x_y_sample_weight(data)
        y_pred = self(x, training=True)
        loss = self.compute_loss(x, y, y_pred, sample_weight)
        if not self.optimizer.built:
            self.optimizer.build(self.trainable_weights)
        self.optimizer.zero_grad()
        loss.backward()
        if self._world > 1:
            self._average_gradients()
        self.optimizer.step()
        return self.compute_metrics(x, y, y_pred.detach(), sample_weight)

    _world = 1
    _reducer = None  # (ids of the trainable weights, their distributed.ddp.Reducer)

    def _average_gradients(self):
        """Data-parallel fit: average every gradient across ranks with DistributedDataParallel's bucketed
        allreduce (``distributed.ddp.Reducer``), made once per set of trainable weights."""
        from ..distributed.ddp import Reducer
        weights = self.trainable_weights
        ids = [id(w) for w in weights]
        if self._reducer is None or self._reducer[0] != ids:
            self._reducer = (ids, Reducer(weights))
        self._reducer[1]()

    def _join_data_parallel(self, train):
        """Under mpiexec: same weights on every rank (rank 0's), a shard of the data each."""
        from .. import distributed as dist
        rank, world = dist.init_if_launched()
        self._world = world
        if world == 1 or not isinstance(train, _ArrayData):
            if world > 1:
                raise NotImplementedError("fit under mpiexec needs array data (x, y), not a DataLoader/generator")
            return rank, world
        if not self.built:  # build the layers on one batch so that there are weights to broadcast
            x0, _, _ = next(iter(train))
            with pe.no_grad(), _Mode(self, False):
                self(x0, training=False)
        for w in self.weights:
            dist.broadcast(w, 0)
        train.shard(rank, world)
        return rank, world

    def test_step(self, data):
        """Loss and metrics of a batch, in inference mode (no weight update)."""
        x, y, sample_weight = unpack_x_y_sample_weight(data)
        y_pred = self(x, training=False)
        self.compute_loss(x, y, y_pred, sample_weight, training=False)
        return self.compute_metrics(x, y, y_pred, sample_weight)

    def predict_step(self, data):
        """The model's output for a batch, in inference mode."""
        x, _, _ = unpack_x_y_sample_weight(data)
        return self(x, training=False)

    # -------------------------------------------------------------- the loops
    def _n_inputs(self):
        return 1

    def _data(self, x, y, sample_weight, batch_size, shuffle, steps, what, class_weight=None):
        if _is_batch_iterable(x):
            if y is not None:
                raise ValueError(f"{what}: y must not be given when x is a DataLoader / generator of (x, y) "
                                 "batches")
            if class_weight is not None:
                raise NotImplementedError(f"{what}: class_weight needs array data")
            return _IterableData(x, steps, what)
        if class_weight is not None:
            if y is None:
                raise ValueError(f"{what}: class_weight needs y")
            cw = _class_weights(_as_array(y, what), class_weight)
            sample_weight = cw if sample_weight is None else _as_array(sample_weight, what) * cw
        data = _ArrayData(x, y, sample_weight, batch_size, shuffle, self._n_inputs(), what)
        if steps is not None:
            data.steps = min(int(steps), data.steps)
        return data

    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None, validation_split=0.0,
            validation_data=None, shuffle=True, class_weight=None, sample_weight=None, initial_epoch=0,
            steps_per_epoch=None, validation_steps=None, validation_batch_size=None, validation_freq=1):
        """Train for ``epochs`` epochs; return the ``History`` (``history.history[name]``: one value per epoch).

        x, y: arrays (NumPy, nested lists or Tensors) of samples, integer ids for an Embedding; or x alone as
            a DataLoader / generator of (x, y) batches.
        batch_size: samples per step (32). shuffle: reshuffle the training samples each epoch.
        validation_split: the LAST fraction of x/y (taken before shuffling) is held out and evaluated after
            each epoch (as Keras); or give validation_data=(x_val, y_val).
        callbacks: keras.callbacks objects (EarlyStopping, ModelCheckpoint, ...).
        verbose: 0 silent; 1 a progress bar in a terminal, one line per epoch elsewhere; 2 one line per epoch.
        """
        self._assert_compiled("training")
        verbose = _verbosity(verbose)
        if isinstance(initial_epoch, bool) or not isinstance(initial_epoch, numbers.Integral) or initial_epoch < 0:
            raise ValueError(f"fit: initial_epoch must be a non-negative int, got {initial_epoch!r}")
        train = self._data(x, y, sample_weight, batch_size, shuffle, steps_per_epoch, "fit", class_weight)
        val = None
        if validation_data is not None:
            if _is_batch_iterable(validation_data):
                val = _IterableData(validation_data, validation_steps, "fit (validation_data)")
            else:
                if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
                    raise ValueError("fit: validation_data must be (x_val, y_val) or (x_val, y_val, sample_weight)")
                vx, vy, vsw = unpack_x_y_sample_weight(tuple(validation_data))
                val = self._data(vx, vy, vsw, validation_batch_size or batch_size, False, validation_steps,
                                 "fit (validation_data)")
        elif validation_split:
            if not isinstance(train, _ArrayData):
                raise ValueError("fit: validation_split needs array data; give validation_data with a "
                                 "DataLoader or generator")
            train, val = train.split_last(validation_split)
            if validation_batch_size:
                val.batch_size = int(validation_batch_size)
                val.steps = math.ceil(val.n / val.batch_size)
            val.shuffle = False
        if train.steps == 0:
            raise ValueError("fit: there are no training samples")
        rank, world = self._join_data_parallel(train)
        if rank != 0:
            verbose = 0  # only rank 0 prints

        cbs = CallbackList(callbacks, add_history=True, add_progbar=verbose != 0, model=self, verbose=verbose,
                           epochs=epochs, steps=train.steps)
        self.stop_training = False
        cbs.on_train_begin()
        logs = {}
        for epoch in range(initial_epoch, epochs):
            self.reset_metrics()
            cbs.on_epoch_begin(epoch)
            with _Mode(self, True):
                for step, batch in enumerate(train):
                    cbs.on_train_batch_begin(step)
                    logs = _logs(self.train_step(batch))
                    cbs.on_train_batch_end(step, logs)
                    if self.stop_training:
                        break
            epoch_logs = dict(logs)
            if world > 1:  # metrics reduced across ranks: every rank sees (and decides on) the same logs
                from .. import distributed as dist
                keys = sorted(k for k, v in epoch_logs.items() if isinstance(v, (int, float)))
                for k, v in zip(keys, dist.all_reduce_scalar([epoch_logs[k] for k in keys], op="mean")):
                    epoch_logs[k] = v
            if val is not None and (epoch + 1) % validation_freq == 0:
                val_logs = self._test_loop(val, cbs)
                epoch_logs.update({"val_" + k: v for k, v in val_logs.items()})
            cbs.on_epoch_end(epoch, epoch_logs)
            logs = epoch_logs
            if self.stop_training:
                break
        cbs.on_train_end(logs)
        return cbs.history

    def _test_loop(self, data, cbs):
        self.reset_metrics()
        cbs.on_test_begin()
        logs = {}
        with pe.no_grad(), _Mode(self, False):
            for step, batch in enumerate(data):
                cbs.on_test_batch_begin(step)
                logs = _logs(self.test_step(batch))
                cbs.on_test_batch_end(step, logs)
        cbs.on_test_end(logs)
        return logs

    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", sample_weight=None, steps=None,
                 callbacks=None, return_dict=False):
        """The loss and metrics on (x, y), in inference mode: a float when there are no metrics, else the list
        ``[loss, metric, ...]`` (in ``metrics_names`` order), or a dict with ``return_dict=True``."""
        self._assert_compiled("evaluating")
        verbose = _verbosity(verbose)
        data = self._data(x, y, sample_weight, batch_size, False, steps, "evaluate")
        cbs = CallbackList(callbacks, add_progbar=verbose != 0, model=self, verbose=verbose, epochs=1,
                           steps=data.steps)
        logs = self._test_loop(data, cbs)
        if return_dict:
            return logs
        values = [logs[name] for name in self.metrics_names if name in logs]
        return values[0] if len(values) == 1 else values

    def predict(self, x, batch_size=None, verbose="auto", steps=None, callbacks=None):
        """The model's outputs for x as a NumPy array (batched, under ``no_grad``, inference mode)."""
        verbose = _verbosity(verbose)
        data = self._data(x, None, None, batch_size, False, steps, "predict")
        cbs = CallbackList(callbacks, add_progbar=verbose != 0, model=self, verbose=verbose, epochs=1,
                           steps=data.steps)
        outputs = []
        cbs.on_predict_begin()
        with pe.no_grad(), _Mode(self, False):
            for step, batch in enumerate(data):
                cbs.on_predict_batch_begin(step)
                out = self.predict_step(batch)
                self._last_logits = None
                outputs.append([o._data.copy() for o in out] if isinstance(out, (list, tuple)) else out._data.copy())
                cbs.on_predict_batch_end(step, {"outputs": out})
        cbs.on_predict_end()
        if not outputs:
            raise ValueError("predict: there are no samples")
        if isinstance(outputs[0], list):
            return [np.concatenate(parts) for parts in zip(*outputs)]
        return np.concatenate(outputs)

    def _one_batch(self, x, y, sample_weight, what):
        data = _ArrayData(x, y, sample_weight, 1, False, self._n_inputs(), what)
        data.batch_size, data.steps = max(data.n, 1), 1
        return next(iter(data))

    def train_on_batch(self, x, y=None, sample_weight=None, return_dict=False):
        """One ``train_step`` on one batch; returns the loss (and metrics) of that batch."""
        self._assert_compiled("training")
        self.reset_metrics()
        logs = _logs(self.train_step(self._one_batch(x, y, sample_weight, "train_on_batch")))
        return logs if return_dict else (list(logs.values()) if len(logs) > 1 else logs["loss"])

    def test_on_batch(self, x, y=None, sample_weight=None, return_dict=False):
        """``test_step`` on one batch; returns its loss (and metrics)."""
        self._assert_compiled("evaluating")
        self.reset_metrics()
        with pe.no_grad():
            logs = _logs(self.test_step(self._one_batch(x, y, sample_weight, "test_on_batch")))
        return logs if return_dict else (list(logs.values()) if len(logs) > 1 else logs["loss"])

    def predict_on_batch(self, x):
        with pe.no_grad():
            out = self(x, training=False)
        self._last_logits = None
        return [o._data.copy() for o in out] if isinstance(out, (list, tuple)) else out._data.copy()

    # -------------------------------------------------------------- summary
    def _summary_rows(self):
        """(name, type, output shape, params) per layer."""
        rows = []
        for layer in self.layers:
            try:
                shape = layer.output_shape
            except (AttributeError, NotImplementedError, TypeError, IndexError):
                shape = "?"
            rows.append((layer.name, type(layer).__name__, shape, layer.count_params() if layer.built else 0))
        return rows

    def summary(self, line_length=None, positions=None, print_fn=None, **kwargs):
        """Print the layer table: name (type), output shape, parameter count; then the totals.

        ``print_fn`` receives each line instead of ``print`` (e.g. ``lines.append``).
        """
        if not self.built:
            raise ValueError(f"This model ('{self.name}') has not yet been built. Build the model first by calling "
                             "build(input_shape) or by calling it on a batch of data (fit does), or start it "
                             "with an Input(shape=...)")
        print_fn = print_fn or print
        width = line_length or 65
        cols = [int(width * p) for p in (positions or (0.45, 0.85, 1.0))]
        heads = ["Layer (type)", "Output Shape", "Param #"]

        def line(fields):
            text, start = "", 0
            for field, end in zip(fields, cols):
                text += (" " + str(field)).ljust(end - start)[:end - start]
                start = end
            return text.rstrip()

        print_fn(f'Model: "{self.name}"')
        print_fn("_" * width)
        print_fn(line(heads))
        print_fn("=" * width)
        rows = self._summary_rows()
        for i, (name, kind, shape, params) in enumerate(rows):
            shape_text = str(shape).replace("'", "") if not isinstance(shape, list) else \
                ", ".join(str(s) for s in shape)
            print_fn(line([f"{name} ({kind})", shape_text, f"{params:,}"]))
            if i < len(rows) - 1:
                print_fn("")
        print_fn("=" * width)
        trainable = sum(int(np.prod(w.shape)) for w in self.trainable_weights)
        total = sum(int(np.prod(w.shape)) for w in self.weights)
        for label, n in (("Total", total), ("Trainable", trainable), ("Non-trainable", total - trainable)):
            print_fn(f"{label} params: {n:,} ({_readable_size(4 * n)})")
        print_fn("_" * width)

    # -------------------------------------------------------------- weights and files
    def get_weights(self):
        """Every weight as a NumPy array, layer by layer, in Keras's order and layouts."""
        if not self.built:
            raise ValueError(f"Model '{self.name}' is not built yet: it has no weights")
        return super().get_weights()

    def save(self, filepath, overwrite=True, include_optimizer=True, **kwargs):
        """Save architecture (JSON config), weights and optimizer state in ONE pyengine checkpoint
        (safetensors + JSON metadata; nothing is pickled), e.g. "model.safetensors". Reload with
        ``keras.models.load_model(filepath)``. Names ending in ".keras" or ".h5" are refused: those suffixes
        promise Keras's own formats (a zip archive / HDF5), which this file is not (see check_save_path)."""
        path = check_save_path(filepath, "save")
        if not overwrite and os.path.exists(path):
            raise FileExistsError(f"save: {path!r} exists and overwrite=False")
        if not self.built:
            raise ValueError(f"save: model '{self.name}' is not built yet (fit it, call it on data, or build it)")
        opt_state = None
        if include_optimizer and self.compiled and self.optimizer.built:
            opt_state = self.optimizer.state_dict()
        checkpoint = {
            "format": _FORMAT, "format_version": _FORMAT_VERSION,
            "model_config": json.dumps(_serialize_model(self)),
            "build_input_shape": json.dumps(_jsonable_shape(self._build_input_shape)),
            "build_input_dtype": self._build_input_dtype,
            "compile_config": json.dumps(self._compile_config) if self.compiled else None,
            "weights": dict(self.state_dict()),
            "optimizer": opt_state,
        }
        _io.save(checkpoint, path)

    def save_weights(self, filepath, overwrite=True):
        """Save the weights only, as the ``get_weights()`` list (a pyengine checkpoint); ``load_weights`` puts
        them back into any model of the same architecture, layer names aside (matched by order, as Keras)."""
        path = check_save_path(filepath, "save_weights")
        if not overwrite and os.path.exists(path):
            raise FileExistsError(f"save_weights: {path!r} exists and overwrite=False")
        if not self.built:
            raise ValueError(f"save_weights: model '{self.name}' is not built yet")
        _io.save({"format": _FORMAT + ".weights", "weights": self.get_weights()}, path)

    def load_weights(self, filepath, skip_mismatch=False):
        """Load weights saved by ``save_weights`` (or by ``save``) into this built model of the same architecture."""
        ckpt = _io.load(os.fspath(filepath))
        if not isinstance(ckpt, dict) or ckpt.get("format") not in (_FORMAT, _FORMAT + ".weights"):
            raise ValueError(f"load_weights: {os.fspath(filepath)!r} holds no keras model weights")
        if not self.built:
            raise ValueError(f"load_weights: build model '{self.name}' first (call it on data or build())")
        if ckpt["format"] == _FORMAT:  # a whole-model file: its state dict, matched by name
            self.load_state_dict(ckpt["weights"], strict=not skip_mismatch)
        else:
            self.set_weights(ckpt["weights"])

    def get_config(self):
        return {}

    def to_json(self, **kwargs):
        """The architecture as JSON (``model_from_json`` rebuilds it, untrained)."""
        return json.dumps(_serialize_model(self), **kwargs)

    def extra_repr(self):
        return f"name={self.name!r}"


_LOSS_NAMES = {losses_module.BinaryCrossentropy: "binary_crossentropy",
               losses_module.CategoricalCrossentropy: "categorical_crossentropy",
               losses_module.SparseCategoricalCrossentropy: "sparse_categorical_crossentropy"}


def _try(fn):
    try:
        return fn()
    except NotImplementedError:
        return None


def _readable_size(nbytes):
    units = ["B", "KB", "MB", "GB", "TB"]
    size, i = float(nbytes), 0
    while size >= 1024 and i < len(units) - 1:
        size /= 1024
        i += 1
    return f"{size:.2f} {units[i]}"


def _jsonable_shape(shape):
    if shape is None:
        return None
    if isinstance(shape, list) and shape and isinstance(shape[0], (list, tuple)):
        return [list(s) for s in shape]
    return list(shape)


# ---------------------------------------------------------------------- Sequential


class Sequential(Model):
    """A stack of layers, each feeding the next.

    >>> model = Sequential([Embedding(input_dim=10000, output_dim=256), LSTM(128), Dense(1, activation="sigmoid")])
    >>> model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    >>> model.fit(x_train, y_train, epochs=10, batch_size=32)

    Layers learn their input sizes from the first batch (or from an ``Input(shape=...)`` first, or
    ``input_shape=`` on the first layer, or ``model.build(input_shape)``).
    """

    def __init__(self, layers=None, name=None, trainable=True):
        super().__init__(name=name, trainable=trainable)
        self._layers = []
        self._input_layer = None
        for layer in layers or []:
            self.add(layer)

    @property
    def layers(self):
        return list(self._layers)

    def add(self, layer):
        """Append a layer (or start the model with ``Input(shape=...)``)."""
        if isinstance(layer, KerasTensor):
            layer = layer.node.layer if layer.node is not None else None
        if isinstance(layer, InputLayer):
            if self._layers or self._input_layer is not None:
                raise ValueError("Sequential: an Input can only come first")
            self._input_layer = layer
            self._batch_input_shape = layer._batch_input_shape
            self._build_input_dtype = layer.dtype if layer.dtype != "float32" else None
            self.build(self._batch_input_shape)
            return
        if not isinstance(layer, Layer):
            raise TypeError(f"Sequential.add: expected a keras Layer, got {type(layer).__name__} "
                            f"({layer!r})")
        if any(layer.name == other.name for other in self._layers):
            raise ValueError(f"All layers added to a Sequential model should have unique names. Name "
                             f"'{layer.name}' is already the name of a layer in this model.")
        self.add_module(layer.name, layer)
        self._layers.append(layer)
        if not self._layers[:-1] and layer._batch_input_shape is not None and self._input_layer is None:
            self._batch_input_shape = layer._batch_input_shape
        if self._batch_input_shape is not None:
            self.build(self._batch_input_shape)

    def pop(self):
        """Remove the last layer."""
        if not self._layers:
            raise TypeError("There are no layers in the model.")
        layer = self._layers.pop()
        del self._modules[layer.name]

    def build(self, input_shape=None):
        """Build every layer from ``input_shape`` (the batch dim may be None), passing each layer's output
        shape to the next; no data needed."""
        if input_shape is None:
            input_shape = self._batch_input_shape
        if input_shape is None:
            raise ValueError("Sequential.build: give the input shape, e.g. model.build((None, 20))")
        shape = (None,) + tuple(input_shape[1:])
        self._build_input_shape = shape
        for layer in self._layers:
            if not layer.built:
                layer._maybe_build(shape)
            shape = layer.compute_output_shape(shape)
        self.built = True

    def _maybe_build(self, input_shape):
        Layer._maybe_build(self, input_shape)  # checks the shape against a declared one, then builds

    def call(self, inputs, training=False):
        if not self._layers:
            raise ValueError(f"Sequential model '{self.name}' has no layers")
        x, mask = inputs, None
        *body, last = self._layers
        for layer in body:
            x, mask = layer(x, training=training, mask=mask), layer.compute_mask(x, mask)
        if last._logits_kind() is not None:
            x = _as_tensor(x, last._float_inputs)
            out, logits = last._call_with_logits(x, training)
            self._last_logits = (out, logits, last._logits_kind())
            return out
        return last(x, training=training, mask=mask)

    def compute_output_shape(self, input_shape):
        """The last layer's output shape for ``input_shape``, through every layer (Keras's ``output_shape``)."""
        shape = tuple(input_shape)
        for layer in self._layers:
            shape = layer.compute_output_shape(shape)
        return shape

    def _summary_rows(self):
        rows, shape = [], self._build_input_shape
        for layer in self._layers:
            shape = layer.compute_output_shape(shape)
            rows.append((layer.name, type(layer).__name__, shape, layer.count_params()))
        return rows

    def get_config(self):
        config = {"name": self.name, "layers": [layers_module.serialize(layer) for layer in self._layers]}
        if self._batch_input_shape is not None:
            config["build_input_shape"] = list(self._batch_input_shape)
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        model = cls(name=config.get("name"))
        for layer_config in config["layers"]:
            model.add(layers_module.deserialize(layer_config, custom_objects))
        if config.get("build_input_shape") and not model.built:
            model.build(tuple(config["build_input_shape"]))
        return model


# ---------------------------------------------------------------------- functional models


class Functional(Model):
    """A model made by calling layers on ``Input`` tensors: ``Model(inputs, outputs)``.

    >>> inputs = Input(shape=(20,))
    >>> hidden = Dense(16, activation="relu")(inputs)
    >>> model = Model(inputs, Dense(1, activation="sigmoid")(hidden))

    Any graph of layer calls works (shared layers, several inputs, Concatenate/Add); one output.
    """

    def __init__(self, inputs, outputs, name=None, trainable=True):
        super().__init__(name=name, trainable=trainable)
        self._inputs = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        outs = list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]
        for t in self._inputs + outs:
            if not isinstance(t, KerasTensor):
                raise TypeError(f"Model(inputs, outputs): expected KerasTensors from Input() and layer calls, got "
                                f"{type(t).__name__}")
        if len(outs) != 1:
            raise NotImplementedError("Model(inputs, outputs): models with several outputs are not supported yet")
        self._outputs = outs
        self._nodes = []
        seen = set()

        def visit(t):
            node = t.node
            if id(node) in seen:
                return
            for parent in node.inputs if isinstance(node.inputs, (list, tuple)) else [node.inputs]:
                visit(parent)
            seen.add(id(node))
            self._nodes.append(node)

        visit(outs[0])
        input_ids = {id(t) for t in self._inputs}
        for node in self._nodes:
            if isinstance(node.layer, InputLayer) and id(node.outputs[0]) not in input_ids:
                raise ValueError(f"Graph disconnected: the output depends on Input '{node.layer.name}', which is not "
                                 "among the model's inputs")
        self._all_layers = []
        for node in self._nodes:
            if node.layer not in self._all_layers:
                self._all_layers.append(node.layer)
        for layer in self._all_layers:
            if not isinstance(layer, InputLayer):
                if layer.name in self._modules:
                    raise ValueError(f"Model: two layers are named '{layer.name}'; layer names must be unique")
                self.add_module(layer.name, layer)
        shapes = [t.shape for t in self._inputs]
        self._build_input_shape = shapes[0] if len(shapes) == 1 else shapes
        self._build_input_dtype = self._inputs[0].dtype if len(self._inputs) == 1 else None
        self.built = True

    @property
    def layers(self):
        return list(self._all_layers)

    @property
    def inputs(self):
        return list(self._inputs)

    @property
    def outputs(self):
        return list(self._outputs)

    def _n_inputs(self):
        return len(self._inputs)

    def compute_output_shape(self, input_shape):
        """The output tensor's shape, with the batch dim of ``input_shape`` (the first input's)."""
        first = input_shape[0] if isinstance(input_shape, list) else input_shape
        return (first[0],) + tuple(self._outputs[0].shape[1:])

    def call(self, inputs, training=False):
        xs = list(inputs) if isinstance(inputs, (list, tuple)) and len(self._inputs) > 1 else [inputs]
        if len(xs) != len(self._inputs):
            raise ValueError(f"Model '{self.name}' expects {len(self._inputs)} inputs, got {len(xs)}")
        values = {id(t): x for t, x in zip(self._inputs, xs)}
        masks = {}   # padding masks by tensor (from Embedding(mask_zero=True)); several inputs: none
        out_node = self._outputs[0].node
        for node in self._nodes:
            layer = node.layer
            if isinstance(layer, InputLayer):
                continue
            several = isinstance(node.inputs, (list, tuple))
            args = [values[id(t)] for t in node.inputs] if several else values[id(node.inputs)]
            mask = None if several else masks.get(id(node.inputs))
            if node is out_node and layer._logits_kind() is not None and not several:
                if not layer.built:
                    layer._maybe_build(tuple(args.shape))
                out, logits = layer._call_with_logits(_as_tensor(args, layer._float_inputs), training)
                self._last_logits = (out, logits, layer._logits_kind())
            else:
                out = layer(args, training=training, mask=mask, **node.kwargs)
            out_mask = None if several else layer.compute_mask(args, mask)
            outs = out if len(node.outputs) > 1 else [out]
            for t, value in zip(node.outputs, outs):
                values[id(t)] = value
                masks[id(t)] = out_mask
        return values[id(self._outputs[0])]

    def _summary_rows(self):
        rows = []
        for layer in self._all_layers:
            shapes = [t.shape for node in layer._inbound_nodes if node in self._nodes for t in node.outputs] \
                if not isinstance(layer, InputLayer) else [layer._batch_input_shape]
            shape = shapes[0] if len(shapes) == 1 else shapes
            rows.append((layer.name, type(layer).__name__, shape, layer.count_params()))
        return rows

    def get_config(self):
        index = {id(node): i for i, node in enumerate(self._nodes)}
        layer_index = {id(layer): i for i, layer in enumerate(self._all_layers)}

        def ref(t):
            return [index[id(t.node)], t.index]

        nodes = []
        for node in self._nodes:
            inputs = [ref(t) for t in node.inputs] if isinstance(node.inputs, (list, tuple)) else \
                (ref(node.inputs) if node.inputs != [] else None)
            nodes.append({"layer": layer_index[id(node.layer)], "inputs": inputs,
                          "list": isinstance(node.inputs, (list, tuple)) and not isinstance(node.layer, InputLayer),
                          "kwargs": node.kwargs})
        return {"name": self.name, "layers": [layers_module.serialize(layer) for layer in self._all_layers],
                "nodes": nodes, "inputs": [ref(t) for t in self._inputs], "outputs": [ref(t) for t in self._outputs]}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        layer_objs = [layers_module.deserialize(c, custom_objects) for c in config["layers"]]
        node_outputs = []
        for spec in config["nodes"]:
            layer = layer_objs[spec["layer"]]
            if isinstance(layer, InputLayer):
                node_outputs.append([layer.output])
                continue
            if spec["list"]:
                args = [node_outputs[i][j] for i, j in spec["inputs"]]
            else:
                i, j = spec["inputs"]
                args = node_outputs[i][j]
            out = layer(args, **spec.get("kwargs", {}))
            node_outputs.append(out if isinstance(out, list) else [out])
        inputs = [node_outputs[i][j] for i, j in config["inputs"]]
        outputs = [node_outputs[i][j] for i, j in config["outputs"]]
        return cls(inputs if len(inputs) > 1 else inputs[0], outputs[0], name=config.get("name"))


# ---------------------------------------------------------------------- saving and loading


def _serialize_model(model):
    kind = "Sequential" if type(model) is Sequential else "Functional" if type(model) is Functional \
        else type(model).__name__
    return {"class_name": kind, "config": model.get_config()}


def _deserialize_model(config, custom_objects=None):
    kind = config.get("class_name")
    if kind == "Sequential":
        return Sequential.from_config(config["config"], custom_objects)
    if kind in ("Functional", "Model"):
        return Functional.from_config(config["config"], custom_objects)
    cls = (custom_objects or {}).get(kind)
    if cls is None:
        raise ValueError(f"Cannot rebuild a model of class '{kind}': pass custom_objects={{'{kind}': {kind}}} to "
                         "load_model (a subclassed model's class must be given; its get_config() returns its "
                         "constructor arguments)")
    if isinstance(cls, type) and issubclass(cls, (Sequential, Functional)):
        return cls.from_config(config["config"], custom_objects)
    return cls.from_config(config["config"]) if hasattr(cls, "from_config") else cls(**config["config"])


def model_from_json(json_string, custom_objects=None):
    """An untrained model from ``model.to_json()``."""
    return _deserialize_model(json.loads(json_string), custom_objects)


def clone_model(model, custom_objects=None):
    """A new model with the same architecture and freshly initialised weights."""
    return _deserialize_model(_serialize_model(model), custom_objects)


KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")


def check_save_path(filepath, what):
    """``filepath`` as a string, unless its name promises a Keras format: a ".keras" file is a Keras 3 zip
    archive (config.json, metadata.json, model.weights.h5) and ".h5"/".weights.h5" are HDF5, which real Keras
    opens. pyengine writes its own checkpoint (safetensors + JSON), so under those names Keras would fail on
    it, or a user would believe they hold a Keras file: refused, pointing at a name that says what it is.

    (Writing true Keras archives would need h5py and Keras's per-layer config schema and weight paths for
    every layer, checked against Keras itself, which is not a pyengine dependency.)"""
    path = os.fspath(filepath)
    if path.lower().endswith(KERAS_SUFFIXES):
        stem = path[:path.rfind(".")]
        if stem.lower().endswith(".weights"):
            stem = stem[:-len(".weights")]
        raise ValueError(f"{what}: {path!r} names a Keras file format ({os.path.splitext(path)[1]}: Keras's "
                         "zip archive / HDF5), which pyengine does not write: Keras could not open the file. "
                         f"Save to {stem + '.safetensors'!r} instead (pyengine's checkpoint: safetensors + "
                         "JSON, any safetensors reader sees the weights; reload with keras.models.load_model)")
    return path


def load_model(filepath, custom_objects=None, compile=True, safe_mode=True):
    """Rebuild a model saved by ``model.save(filepath)``: architecture, weights, and (``compile=True``) the
    compiled loss, metrics and optimizer with its state, so that ``fit`` continues where it stopped.

    >>> model.save("model.safetensors")
    >>> restored = load_model("model.safetensors")
    >>> np.allclose(restored.predict(x), model.predict(x))
    True
    """
    ckpt = _io.load(os.fspath(filepath))
    if not isinstance(ckpt, dict) or ckpt.get("format") != _FORMAT:
        hint = " (it holds weights only: build the model and call load_weights)" if isinstance(ckpt, dict) and \
            ckpt.get("format") == _FORMAT + ".weights" else ""
        raise ValueError(f"load_model: {os.fspath(filepath)!r} is not a model saved by Model.save{hint}")
    if ckpt.get("format_version") != _FORMAT_VERSION:
        raise ValueError(f"load_model: unsupported format version {ckpt.get('format_version')!r}")
    model = _deserialize_model(json.loads(ckpt["model_config"]), custom_objects)
    if not model.built:
        shape = json.loads(ckpt["build_input_shape"])
        model._build_input_dtype = ckpt.get("build_input_dtype")
        if shape is None:
            raise ValueError("load_model: the saved model has no input shape to rebuild it from")
        model.build(tuple(shape))
    model.load_state_dict(ckpt["weights"])
    compile_config = ckpt.get("compile_config")
    if compile and compile_config:
        cc = json.loads(compile_config)
        custom = custom_objects or {}
        loss = cc["loss"]
        if isinstance(loss, str) and loss in custom:
            loss = custom[loss]
        metrics = [custom.get(m, m) if isinstance(m, str) else m for m in cc["metrics"]]
        if cc["optimizer"] is None:
            raise ValueError("load_model: the model was compiled with an optimizer that cannot be restored; "
                             "load with compile=False and compile it again")
        model.compile(optimizer=optimizers_module.deserialize(cc["optimizer"]), loss=loss, metrics=metrics)
        if ckpt.get("optimizer") is not None:
            model.optimizer.build(model.trainable_weights)
            model.optimizer.load_state_dict(ckpt["optimizer"])
    return model
