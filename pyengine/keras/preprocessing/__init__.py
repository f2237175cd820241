"""keras.preprocessing: ``text.Tokenizer`` and ``sequence.pad_sequences`` (pyengine.preprocessing's)."""
from . import sequence, text  # noqa: F401
