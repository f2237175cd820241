"""Session-wide state of the Keras front: the counters behind automatic layer names.

Layers and models are named like Keras names them: the snake_case class name, then ``_1``, ``_2``...
for later instances (``dense``, ``dense_1``). ``clear_session()`` restarts the counts.
"""
import re
from collections import defaultdict

__all__ = ["clear_session", "unique_object_name", "snake_case", "floatx", "epsilon"]

_name_counts = defaultdict(int)
_EPSILON = 1e-7


def snake_case(name):
    """'GlobalAveragePooling1D' -> 'global_average_pooling1d', 'LSTM' -> 'lstm' (as Keras)."""
    s = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", s).lower()


def unique_object_name(base):
    """``base`` the first time, then ``base_1``, ``base_2``..."""
    n = _name_counts[base]
    _name_counts[base] += 1
    return base if n == 0 else f"{base}_{n}"


def clear_session():
    """Reset the automatic names (``dense``, ``dense_1``, ...) as Keras's ``clear_session`` does."""
    _name_counts.clear()


def floatx():
    return "float32"


def epsilon():
    """The fuzz factor Keras adds/clips with in losses and metrics: 1e-7."""
    return _EPSILON
