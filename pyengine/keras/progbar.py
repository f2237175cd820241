"""The Keras progress bar, aware of where it writes.

In a terminal (``stream.isatty()``) it is a live bar redrawn in place with ``\\r``::

    Epoch 1/10
     12/32 [==========>...................] - ETA: 3s - loss: 0.6931 - accuracy: 0.5000

and, when the epoch ends, the bar's final state with the time taken and the validation values. Written to a
file, a pipe or a notebook cell log, redrawing would leave one line per update, so it prints ONE line
when the epoch ends instead::

    Epoch 1/10 - 3s - 94ms/step - loss: 0.6931 - accuracy: 0.5000 - val_loss: 0.6920

``verbose=2`` asks for that one line even in a terminal; ``verbose=0`` prints nothing.

>>> bar = Progbar(target=100)
>>> for step in range(100):
...     bar.update(step + 1, [("loss", 0.5)])

Terminal detection, the ETA's format and the live line come from ``pyengine.utils.progress``.
"""
import time

from ..utils.progress import LiveLine, format_duration, is_terminal

__all__ = ["Progbar", "is_terminal"]


def _format_value(v):
    if isinstance(v, str):
        return v
    v = float(v)
    return f"{v:.4f}" if abs(v) > 1e-3 or v == 0 else f"{v:.4e}"


def _format_per_step(seconds, unit):
    if seconds >= 1:
        return f"{seconds:.0f}s/{unit}"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.0f}ms/{unit}"
    return f"{seconds * 1e6:.0f}us/{unit}"


class Progbar:
    """Progress of a loop of ``target`` steps (None if unknown).

    Args:
        target: the number of steps, or None.
        width: the bar's width in characters.
        verbose: 1 (a live bar in a terminal, one final line elsewhere), 2 (one final line), 0 (silent).
        interval: the least time in seconds between two redraws of the live bar.
        stateful_metrics: names whose values are shown as given; the others are averaged over the steps
            (``fit`` passes every name: its logs are running epoch averages already).
        unit_name: "step" (shown as ms/step).
        prefix: a title, e.g. "Epoch 3/10": its own line above a live bar, the start of the final line.
        stream: where to write; None means ``sys.stdout`` at each write (so redirection and capture work).
    """

    def __init__(self, target, width=30, verbose=1, interval=0.05, stateful_metrics=None, unit_name="step",
                 prefix=None, stream=None):
        self.target = target
        self.width = width
        self.verbose = verbose
        self.interval = interval
        if stateful_metrics is None:
            stateful_metrics = set()
        elif isinstance(stateful_metrics, (list, tuple)):
            stateful_metrics = set(stateful_metrics)
        self.stateful_metrics = stateful_metrics  # anything with `in`
        self.unit_name = unit_name
        self.prefix = prefix
        self._line = LiveLine(stream)
        self.live = verbose == 1 and self._line.is_terminal
        self._values = {}         # name -> [weighted sum, count] (or [value, 1] for stateful ones)
        self._seen = 0
        self._start = time.time()
        self._last_draw = 0.0
        self._started = False
        self._finalized = False

    @property
    def stream(self):
        return self._line.stream

    def update(self, current, values=None, finalize=None):
        """Set the progress to ``current`` steps and record ``values`` (a dict or (name, value) pairs).

        ``finalize`` (default: ``current >= target``) draws the final state and ends the line.
        """
        if finalize is None:
            finalize = self.target is not None and current >= self.target
        items = values.items() if isinstance(values, dict) else (values or [])
        for name, v in items:
            if name in self.stateful_metrics or isinstance(v, str):
                self._values[name] = [v, 1]
            else:
                step = max(current - self._seen, 1)
                acc = self._values.setdefault(name, [0.0, 0])
                acc[0] += float(v) * step
                acc[1] += step
        self._seen = current
        if self.verbose == 0 or self._finalized:
            return
        now = time.time()
        if self.live:
            if not self._started and self.prefix:
                self._line.print(self.prefix)
            self._started = True
            if finalize or now - self._last_draw >= self.interval:
                self._draw_live(current, now, finalize)
                self._last_draw = now
        elif finalize:
            self._line.print(self._final_line(current, now))
        if finalize:
            self._finalized = True

    def add(self, n, values=None):
        """Advance by ``n`` steps."""
        self.update(self._seen + n, values)

    # -------------------------------------------------------------- drawing
    def _values_text(self):
        parts = []
        for name, (total, count) in self._values.items():
            v = total if isinstance(total, str) or name in self.stateful_metrics else total / max(count, 1)
            parts.append(f" - {name}: {_format_value(v)}")
        return "".join(parts)

    def _bar(self, current):
        if self.target is None:
            return f"{current}/Unknown"
        digits = len(str(self.target))
        text = f"{current:>{digits}}/{self.target} ["
        filled = int(self.width * min(current, self.target) / self.target) if self.target else self.width
        if filled > 0:
            text += "=" * (filled - 1) + (">" if current < self.target else "=")
        return text + "." * (self.width - filled) + "]"

    def _timing(self, current, now):
        elapsed = now - self._start
        per = elapsed / current if current else 0.0
        return f" - {elapsed:.0f}s {_format_per_step(per, self.unit_name)}" if current else f" - {elapsed:.0f}s"

    def _draw_live(self, current, now, finalize):
        text = self._bar(current)
        if finalize:
            text += self._timing(current, now)
        elif self.target is not None and current:
            eta = (now - self._start) / current * (self.target - current)
            text += f" - ETA: {format_duration(eta)}"
        self._line.show(text + self._values_text(), end=finalize)

    def _final_line(self, current, now):
        head = self.prefix if self.prefix else (f"{current}/{self.target}" if self.target else f"{current}")
        elapsed = now - self._start
        per = elapsed / current if current else 0.0
        return f"{head} - {elapsed:.0f}s - {_format_per_step(per, self.unit_name)}" + self._values_text()
