"""pyengine.keras: a tf.keras-compatible front on pyengine, so that a Keras program runs with only its
imports changed.

>>> from pyengine.keras import Sequential
>>> from pyengine.keras.layers import Embedding, LSTM, Dense
>>> model = Sequential([
...     Embedding(input_dim=10000, output_dim=256),
...     LSTM(128),
...     Dense(1, activation='sigmoid')
... ])
>>> model.compile(optimizer='adam', loss='binary_crossentropy', metrics=['accuracy'])
>>> model.fit(x_train, y_train, epochs=10, batch_size=32)

Modules, as in Keras: ``layers``, ``models`` (Sequential, Model, load_model), ``losses``, ``metrics``,
``optimizers``, ``callbacks``, ``activations``, ``initializers``, ``regularizers``, ``utils``
(to_categorical, set_random_seed), ``preprocessing`` (text.Tokenizer, sequence.pad_sequences), ``backend``.

Underneath, every layer and model is a ``pyengine.nn.Module`` and every weight a Parameter, trained with
pyengine's autograd and fused kernels; ``fit`` is a generic loop with callbacks around one ``train_step``.
``Embedding(mask_zero=True)`` masks padding for the LSTM / Bidirectional / GlobalAveragePooling1D layers that
follow (padding at the start or end of sequences, as pad_sequences makes). What is not supported raises
NotImplementedError naming the feature (e.g. LSTM(recurrent_dropout=...), GRU(reset_after=False), models with several
outputs).
"""
from . import (activations, backend, callbacks, datasets, initializers, layers, losses, metrics, models,  # noqa: F401
               optimizers, preprocessing, regularizers, utils)
from .layers import Input  # noqa: F401
from .models import Model, Sequential, load_model  # noqa: F401

__all__ = ["Sequential", "Model", "Input", "load_model", "activations", "backend", "callbacks", "datasets",
           "initializers", "layers", "losses", "metrics", "models", "optimizers", "preprocessing", "regularizers", "utils"]
