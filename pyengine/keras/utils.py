"""keras.utils: label encoding, padding, seeding and the data helpers of custom train steps.

    to_categorical(y, num_classes)       integer labels -> one-hot rows (pyengine.preprocessing's)
    pad_sequences(sequences, maxlen)     lists of ids -> a padded (n, maxlen) array (pyengine.preprocessing's)
    set_random_seed(seed)                seed pyengine, NumPy and Python's random at once
    unpack_x_y_sample_weight(data)       (x,), (x, y) or (x, y, sample_weight) -> (x, y, sample_weight)
    Progbar                              the progress bar
"""
import random

from .. import random as _pe_random
from ..preprocessing import pad_sequences, to_categorical  # noqa: F401
from .progbar import Progbar  # noqa: F401

__all__ = ["to_categorical", "pad_sequences", "set_random_seed", "unpack_x_y_sample_weight", "Progbar"]


def set_random_seed(seed):
    """Seed every source of randomness a Keras program here uses: pyengine's generator (weight init,
    dropout, shuffling), NumPy's global one and Python's ``random``."""
    if not isinstance(seed, int):
        raise ValueError(f"set_random_seed: seed must be an int, got {seed!r}")
    random.seed(seed)
    _pe_random.manual_seed(seed)


def unpack_x_y_sample_weight(data):
    """Split a batch into (x, y, sample_weight), with None for what it lacks (Keras's helper for
    custom ``train_step``s)."""
    if isinstance(data, list):
        data = tuple(data)
    if not isinstance(data, tuple):
        return data, None, None
    if len(data) == 1:
        return data[0], None, None
    if len(data) == 2:
        return data[0], data[1], None
    if len(data) == 3:
        return data
    raise ValueError(f"Data is expected to be (x,), (x, y) or (x, y, sample_weight), got a tuple of {len(data)}")
