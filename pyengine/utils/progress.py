"""Progress output shared by every loop that reports as it goes (keras' Progbar, the ``pyengine train``
command): whether a stream is a terminal, durations written as Keras writes them, and the live line.

In a terminal (``stream.isatty()``) a progress line is redrawn in place with ``\\r``; written to a file, a
pipe or a captured log, redrawing would leave one line per update, so callers print whole lines there
instead (``LiveLine.is_terminal`` tells them which).

>>> line = LiveLine()
>>> for step in range(3):
...     line.show(f"step {step + 1}/3")      # redrawn in place in a terminal
>>> line.print("done")                       # ends the live line, then a whole line
"""
import sys

__all__ = ["is_terminal", "format_duration", "format_rate", "LiveLine", "RateMeter"]


def is_terminal(stream):
    """True when ``stream`` is an interactive terminal (where ``\\r`` redraws a line)."""
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def format_duration(seconds):
    """A duration as Keras writes an ETA: 42s, 3:05, 1:02:03 (rounded to the second)."""
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
    if seconds >= 60:
        return f"{seconds // 60}:{seconds % 60:02d}"
    return f"{seconds}s"


def format_rate(rate, unit="tok/s"):
    """``1,234 tok/s``; ``- tok/s`` while nothing has been measured (None), never a meaningless 0."""
    return f"- {unit}" if rate is None else f"{rate:,.0f} {unit}"


class RateMeter:
    """Items per second of *working* time: the caller adds what each piece of work did and how long that
    work alone took (a training step, not the evaluation or the checkpoint after it), so pauses never
    dilute the rate. ``rate`` is None until ``window`` seconds have been measured, then the rate of the
    last full window; ``overall`` is over all the time added.

    >>> meter = RateMeter()
    >>> meter.add(768, 0.05)     # 768 tokens in a 50 ms step
    >>> meter.rate is None       # not a second measured yet
    True
    """

    def __init__(self, window=1.0):
        self.window = window
        self.rate = None
        self.total_items, self.total_seconds = 0, 0.0
        self._items, self._seconds = 0, 0.0

    def add(self, items, seconds, last=False):
        """Count ``items`` done in ``seconds`` of work; ``last=True`` closes a partial window (the final step)."""
        self.total_items += items
        self.total_seconds += seconds
        self._items += items
        self._seconds += seconds
        if self._seconds >= self.window or (last and self._seconds > 0):
            self.rate = self._items / self._seconds
            self._items, self._seconds = 0, 0.0

    @property
    def overall(self):
        return self.total_items / self.total_seconds if self.total_seconds > 0 else None


class LiveLine:
    """A line of progress on ``stream`` (None: ``sys.stdout`` at each write, so redirection and capture
    work), rewritten in place with ``\\r``.

    ``show(text)`` redraws the line, padding with spaces what a longer previous text left (no terminal
    escape codes); ``show(text, end=True)`` draws it a last time and ends it with a newline;
    ``print(text)`` writes a whole line, first blanking a live line so that the two never mix.
    """

    def __init__(self, stream=None):
        self._stream = stream
        self._width = 0  # characters of the live line now on screen (0: none)

    @property
    def stream(self):
        return self._stream if self._stream is not None else sys.stdout

    @property
    def is_terminal(self):
        return is_terminal(self.stream)

    def write(self, text):
        s = self.stream
        s.write(text)
        s.flush()

    def show(self, text, end=False):
        pad = " " * max(self._width - len(text), 0)
        self._width = 0 if end else len(text)
        self.write("\r" + text + pad + ("\n" if end else ""))

    def print(self, text):
        if self._width:
            self.write("\r" + " " * self._width + "\r")
            self._width = 0
        self.write(text + "\n")
