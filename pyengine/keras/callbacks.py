"""Callbacks: code that ``fit`` / ``evaluate`` / ``predict`` run at fixed points of their loops.

``fit`` is a plain loop (see ``Model.fit``); every hook below is called from it with a ``logs`` dict of
the current values (``{"loss": 0.31, "accuracy": 0.88, "val_loss": ...}``):

    on_train_begin / on_train_end
    on_epoch_begin(epoch) / on_epoch_end(epoch, logs)        logs: the epoch's averages, plus val_*
    on_train_batch_begin(batch) / on_train_batch_end(batch, logs)   logs: running averages so far
    on_test_* and on_predict_* (begin/end, batch_begin/batch_end) likewise for evaluate and predict

A callback reaches the model as ``self.model`` (``self.model.stop_training = True`` ends ``fit`` after the
current batch) and the loop's settings as ``self.params`` (``epochs``, ``steps``, ``verbose``).

    History             records the logs of every epoch (``fit`` returns it)
    ProgbarLogger       the progress bar (added by ``fit`` when verbose > 0)
    EarlyStopping       stop when a monitored value stops improving; optionally restore the best weights
    ModelCheckpoint     save the model (or its weights) every epoch, or only when it improves
    LambdaCallback      hooks from plain functions
    LearningRateScheduler, ReduceLROnPlateau, TerminateOnNaN, CSVLogger

>>> early = EarlyStopping(monitor="val_loss", patience=3, restore_best_weights=True)
>>> ckpt = ModelCheckpoint("model-{epoch:02d}.safetensors", save_best_only=True)
>>> model.fit(x, y, validation_split=0.2, epochs=50, callbacks=[early, ckpt])
"""
import csv
import math
import os
import warnings

import numpy as np

from .progbar import Progbar

__all__ = ["Callback", "CallbackList", "History", "ProgbarLogger", "EarlyStopping", "ModelCheckpoint",
           "LambdaCallback", "LearningRateScheduler", "ReduceLROnPlateau", "TerminateOnNaN", "CSVLogger"]


class Callback:
    """Base class: override the hooks you need; each gets ``logs`` (a dict, maybe empty)."""

    def __init__(self):
        self.model = None
        self.params = {}

    def set_model(self, model):
        self.model = model

    def set_params(self, params):
        self.params = params

    def on_train_begin(self, logs=None): pass
    def on_train_end(self, logs=None): pass
    def on_epoch_begin(self, epoch, logs=None): pass
    def on_epoch_end(self, epoch, logs=None): pass
    def on_train_batch_begin(self, batch, logs=None): self.on_batch_begin(batch, logs)
    def on_train_batch_end(self, batch, logs=None): self.on_batch_end(batch, logs)
    def on_batch_begin(self, batch, logs=None): pass
    def on_batch_end(self, batch, logs=None): pass
    def on_test_begin(self, logs=None): pass
    def on_test_end(self, logs=None): pass
    def on_test_batch_begin(self, batch, logs=None): pass
    def on_test_batch_end(self, batch, logs=None): pass
    def on_predict_begin(self, logs=None): pass
    def on_predict_end(self, logs=None): pass
    def on_predict_batch_begin(self, batch, logs=None): pass
    def on_predict_batch_end(self, batch, logs=None): pass


_HOOKS = ("on_train_begin", "on_train_end", "on_epoch_begin", "on_epoch_end", "on_train_batch_begin",
          "on_train_batch_end", "on_test_begin", "on_test_end", "on_test_batch_begin", "on_test_batch_end",
          "on_predict_begin", "on_predict_end", "on_predict_batch_begin", "on_predict_batch_end")


class CallbackList:
    """Calls a hook on every callback in order. ``fit`` adds, as Keras does, a ProgbarLogger first (when
    verbose) and a History last (so it records what the other callbacks added to the logs)."""

    def __init__(self, callbacks=None, add_history=False, add_progbar=False, model=None, **params):
        self.callbacks = list(callbacks or [])
        for cb in self.callbacks:
            if not isinstance(cb, Callback):
                raise TypeError(f"callbacks must be keras.callbacks.Callback instances, got {type(cb).__name__}")
        if add_progbar and not any(isinstance(cb, ProgbarLogger) for cb in self.callbacks):
            self.callbacks.insert(0, ProgbarLogger())
        if add_history and not any(isinstance(cb, History) for cb in self.callbacks):
            self.callbacks.append(History())
        self.model = model
        self.params = params
        for cb in self.callbacks:
            cb.set_model(model)
            cb.set_params(params)

    @property
    def history(self):
        return next((cb for cb in self.callbacks if isinstance(cb, History)), None)

    def _call(self, hook, *args):
        for cb in self.callbacks:
            getattr(cb, hook)(*args)


def _make_dispatch(hook):
    if hook.startswith("on_epoch") or "batch" in hook:
        def dispatch(self, index, logs=None):
            self._call(hook, index, logs if logs is not None else {})
    else:
        def dispatch(self, logs=None):
            self._call(hook, logs if logs is not None else {})
    dispatch.__name__ = hook
    return dispatch


for _hook in _HOOKS:
    setattr(CallbackList, _hook, _make_dispatch(_hook))


class History(Callback):
    """Records each epoch's logs: ``history.history["loss"]`` is the list of per-epoch losses, ``history.epoch``
    the epoch numbers. ``fit`` returns it (and sets ``model.history``)."""

    def __init__(self):
        super().__init__()
        self.history = {}
        self.epoch = []

    def on_train_begin(self, logs=None):
        self.epoch = []

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for k, v in (logs or {}).items():
            self.history.setdefault(k, []).append(v)

    def set_model(self, model):
        super().set_model(model)
        if model is not None:
            model.history = self


class ProgbarLogger(Callback):
    """Prints progress through a ``Progbar``: per epoch in ``fit``, once for ``evaluate`` / ``predict``
    (nothing for the validation pass inside ``fit``, as Keras)."""

    def __init__(self, count_mode="steps", stateful_metrics=None):
        super().__init__()
        self.progbar = None
        self._in_fit = False
        self._stateful = stateful_metrics

    def _bar(self, prefix=None):
        return Progbar(self.params.get("steps"), verbose=self.params.get("verbose", 1), prefix=prefix,
                       stateful_metrics=self._stateful if self._stateful is not None else _AllNames())

    def on_train_begin(self, logs=None):
        self._in_fit = True

    def on_train_end(self, logs=None):
        self._in_fit = False

    def on_epoch_begin(self, epoch, logs=None):
        self.progbar = self._bar(f"Epoch {epoch + 1}/{self.params.get('epochs', 1)}")
        self._seen = 0

    def on_train_batch_end(self, batch, logs=None):
        self._seen = batch + 1
        self.progbar.update(batch + 1, logs, finalize=False)

    def on_epoch_end(self, epoch, logs=None):
        self.progbar.update(self._seen, logs, finalize=True)

    def on_test_begin(self, logs=None):
        if not self._in_fit:
            self.progbar, self._seen = self._bar(), 0

    def on_test_batch_end(self, batch, logs=None):
        if not self._in_fit:
            self._seen = batch + 1
            self.progbar.update(batch + 1, logs, finalize=False)

    def on_test_end(self, logs=None):
        if not self._in_fit:
            self.progbar.update(self._seen, logs, finalize=True)

    on_predict_begin = on_test_begin

    def on_predict_batch_end(self, batch, logs=None):
        if not self._in_fit:
            self._seen = batch + 1
            self.progbar.update(batch + 1, None, finalize=False)

    def on_predict_end(self, logs=None):
        if not self._in_fit:
            self.progbar.update(self._seen, None, finalize=True)


class _AllNames:
    """A set that contains every name (fit's logs are running averages already: show them as they are)."""

    def __contains__(self, name):
        return True

    def __iter__(self):
        return iter(())


def _monitor_op(mode, monitor):
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
    if mode == "auto":
        name = monitor.lower()
        mode = "max" if any(s in name for s in ("acc", "auc", "precision", "recall")) else "min"
    return mode


class EarlyStopping(Callback):
    """Stop training when ``monitor`` has not improved by more than ``min_delta`` for ``patience`` epochs.

    ``mode`` "min", "max" or "auto" (max for accuracy-like names). With ``restore_best_weights`` the model
    gets the weights of its best epoch back when training ends (whether this callback or the last epoch
    ended it, as current Keras). ``baseline``: stop unless the value beats it within ``patience`` epochs.
    ``stopped_epoch`` and ``best_epoch`` (0-based) tell what happened.

    >>> model.fit(x, y, validation_split=0.2, epochs=100,
    ...           callbacks=[EarlyStopping(patience=5, restore_best_weights=True)])
    """

    def __init__(self, monitor="val_loss", min_delta=0, patience=0, verbose=0, mode="auto", baseline=None,
                 restore_best_weights=False, start_from_epoch=0):
        super().__init__()
        self.monitor, self.patience, self.verbose = monitor, int(patience), verbose
        self.min_delta = abs(float(min_delta))
        self.baseline, self.restore_best_weights, self.start_from_epoch = baseline, restore_best_weights, \
            start_from_epoch
        self.mode = _monitor_op(mode, monitor)

    def _better(self, current, reference):
        if reference is None:
            return True
        if self.mode == "min":
            return current < reference - self.min_delta
        return current > reference + self.min_delta

    def on_train_begin(self, logs=None):
        self.wait = 0
        self.stopped_epoch = 0
        self.best = None
        self.best_weights = None
        self.best_epoch = 0

    def on_epoch_end(self, epoch, logs=None):
        current = (logs or {}).get(self.monitor)
        if current is None:
            warnings.warn(f"EarlyStopping: monitor {self.monitor!r} is not in the logs (available: "
                          f"{', '.join(sorted(logs or {}))}); pass validation data for val_* values", stacklevel=2)
            return
        if epoch < self.start_from_epoch:
            return
        self.wait += 1
        if self._better(current, self.best):
            self.best, self.best_epoch = current, epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            if self.baseline is None or self._better(current, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.stopped_epoch > 0 and self.verbose > 0:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose > 0:
                print(f"Restoring model weights from the end of the best epoch: {self.best_epoch + 1}.")
            self.model.set_weights(self.best_weights)


class ModelCheckpoint(Callback):
    """Save the model (``save_weights_only``: its weights) at the end of every epoch, or every
    ``save_freq`` batches.

    ``filepath`` may hold ``str.format`` fields filled from the epoch (1-based) and the logs:
    ``"ckpt-{epoch:02d}-{val_loss:.3f}.safetensors"``. With ``save_best_only`` a file is written only when
    ``monitor`` improves (so a fixed name always holds the best model).
    """

    def __init__(self, filepath, monitor="val_loss", verbose=0, save_best_only=False, save_weights_only=False,
                 mode="auto", save_freq="epoch", initial_value_threshold=None):
        super().__init__()
        self.filepath = os.fspath(filepath)
        from .models import check_save_path
        check_save_path(self.filepath, "ModelCheckpoint")  # refused now, not after the first epoch
        self.monitor, self.verbose = monitor, verbose
        self.save_best_only, self.save_weights_only = save_best_only, save_weights_only
        self.mode = _monitor_op(mode, monitor)
        if save_freq != "epoch" and not (isinstance(save_freq, int) and save_freq > 0):
            raise ValueError(f"ModelCheckpoint: save_freq must be 'epoch' or a positive int, got {save_freq!r}")
        self.save_freq = save_freq
        self.best = initial_value_threshold
        self._batches = 0
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.save_freq != "epoch":
            self._batches += 1
            if self._batches % self.save_freq == 0:
                self._save(self._epoch, logs, batch=batch)

    def on_epoch_end(self, epoch, logs=None):
        if self.save_freq == "epoch":
            self._save(epoch, logs)

    def _save(self, epoch, logs, batch=None):
        from .. import distributed as dist
        if dist.is_initialized() and not dist.is_main_process():
            return  # data-parallel fit: rank 0 writes the checkpoints
        logs = dict(logs or {})
        try:
            path = self.filepath.format(epoch=epoch + 1, batch=(batch or 0) + 1, **logs)
        except KeyError as e:
            raise KeyError(f"ModelCheckpoint: filepath {self.filepath!r} names {e}, which is not in the logs "
                           f"(available: epoch, batch, {', '.join(sorted(logs))})") from None
        if self.save_best_only:
            current = logs.get(self.monitor)
            if current is None:
                warnings.warn(f"ModelCheckpoint: can save best model only with {self.monitor!r} in the logs "
                              f"(available: {', '.join(sorted(logs))}); skipping", stacklevel=2)
                return
            better = self.best is None or (current < self.best if self.mode == "min" else current > self.best)
            if not better:
                if self.verbose > 0:
                    print(f"\nEpoch {epoch + 1}: {self.monitor} did not improve from {self.best:.5f}")
                return
            if self.verbose > 0:
                prev = "inf" if self.best is None else f"{self.best:.5f}"
                print(f"\nEpoch {epoch + 1}: {self.monitor} improved from {prev} to {current:.5f}, saving model "
                      f"to {path}")
            self.best = current
        elif self.verbose > 0:
            print(f"\nEpoch {epoch + 1}: saving model to {path}")
        directory = os.path.dirname(os.path.abspath(path))
        os.makedirs(directory, exist_ok=True)
        if self.save_weights_only:
            self.model.save_weights(path)
        else:
            self.model.save(path)


class LambdaCallback(Callback):
    """A callback from functions: ``LambdaCallback(on_epoch_end=lambda epoch, logs: print(epoch, logs))``.

    Accepted: on_epoch_begin/end(epoch, logs), on_train_batch_begin/end(batch, logs) (also spelt
    on_batch_begin/end), on_train_begin/end(logs), and the test/predict hooks.
    """

    def __init__(self, **hooks):
        super().__init__()
        for name, fn in hooks.items():
            if name in ("on_batch_begin", "on_batch_end"):
                name = name.replace("on_batch", "on_train_batch")
            if name not in _HOOKS:
                raise TypeError(f"LambdaCallback: unknown hook {name!r}; expected one of {', '.join(_HOOKS)}")
            if fn is not None:
                setattr(self, name, fn)


class LearningRateScheduler(Callback):
    """Set the learning rate at each epoch start to ``schedule(epoch, lr)`` (or ``schedule(epoch)``);
    the rate used is logged as ``learning_rate``."""

    def __init__(self, schedule, verbose=0):
        super().__init__()
        self.schedule, self.verbose = schedule, verbose

    def on_epoch_begin(self, epoch, logs=None):
        opt = self.model.optimizer
        try:
            lr = self.schedule(epoch, opt.learning_rate)
        except TypeError:
            lr = self.schedule(epoch)
        if not isinstance(lr, (float, int, np.floating, np.integer)):
            raise ValueError(f"LearningRateScheduler: the schedule must return a number, got {lr!r}")
        opt.learning_rate = float(lr)
        if self.verbose > 0:
            print(f"\nEpoch {epoch + 1}: LearningRateScheduler setting learning rate to {float(lr)}.")

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = float(self.model.optimizer.learning_rate)


class ReduceLROnPlateau(Callback):
    """Multiply the learning rate by ``factor`` when ``monitor`` has not improved for ``patience`` epochs
    (then wait ``cooldown`` epochs; never below ``min_lr``)."""

    def __init__(self, monitor="val_loss", factor=0.1, patience=10, verbose=0, mode="auto", min_delta=1e-4,
                 cooldown=0, min_lr=0.0, **kwargs):
        super().__init__()
        if factor >= 1.0:
            raise ValueError("ReduceLROnPlateau does not support a factor >= 1.0")
        self.monitor, self.factor, self.patience, self.verbose = monitor, float(factor), patience, verbose
        self.mode = _monitor_op(mode, monitor)
        self.min_delta, self.cooldown, self.min_lr = abs(min_delta), cooldown, float(min_lr)
        self.best, self.wait, self.cooldown_counter = None, 0, 0

    def on_train_begin(self, logs=None):
        self.best, self.wait, self.cooldown_counter = None, 0, 0

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        opt = self.model.optimizer
        logs["learning_rate"] = float(opt.learning_rate)
        current = logs.get(self.monitor)
        if current is None:
            warnings.warn(f"ReduceLROnPlateau: monitor {self.monitor!r} is not in the logs", stacklevel=2)
            return
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        better = self.best is None or (current < self.best - self.min_delta if self.mode == "min"
                                       else current > self.best + self.min_delta)
        if better:
            self.best, self.wait = current, 0
        elif self.cooldown_counter <= 0:
            self.wait += 1
            if self.wait >= self.patience:
                old = float(opt.learning_rate)
                if old > self.min_lr:
                    new = max(old * self.factor, self.min_lr)
                    opt.learning_rate = new
                    if self.verbose > 0:
                        print(f"\nEpoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to {new}.")
                    self.cooldown_counter, self.wait = self.cooldown, 0


class TerminateOnNaN(Callback):
    """Stop training as soon as a batch loss is NaN or infinite."""

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss):
            print(f"Batch {batch}: Invalid loss, terminating training")
            self.model.stop_training = True


class CSVLogger(Callback):
    """Append each epoch's logs to a CSV file (columns: epoch, then the log names in sorted order)."""

    def __init__(self, filename, separator=",", append=False):
        super().__init__()
        self.filename, self.sep, self.append = os.fspath(filename), separator, append
        self._keys = None

    def on_train_begin(self, logs=None):
        exists = self.append and os.path.exists(self.filename) and os.path.getsize(self.filename) > 0
        self._file = open(self.filename, "a" if self.append else "w", newline="")
        self._writer = None
        self._header_written = exists

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self._keys is None:
            self._keys = sorted(logs)
        if self._writer is None:
            self._writer = csv.DictWriter(self._file, fieldnames=["epoch"] + self._keys, delimiter=self.sep)
            if not self._header_written:
                self._writer.writeheader()
        self._writer.writerow({"epoch": epoch, **{k: logs.get(k, "NA") for k in self._keys}})
        self._file.flush()

    def on_train_end(self, logs=None):
        self._file.close()
