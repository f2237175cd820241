"""keras.datasets: the data sets Keras' tutorials load (``mnist``), from Keras' cache directory."""
from . import mnist  # noqa: F401
