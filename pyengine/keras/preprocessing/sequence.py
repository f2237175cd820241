"""keras.preprocessing.sequence: ``pad_sequences`` (``pyengine.preprocessing.pad_sequences``, Keras semantics)."""
from ...preprocessing import pad_sequences  # noqa: F401

__all__ = ["pad_sequences"]
