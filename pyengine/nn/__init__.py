"""pyengine.nn: modules, parameters and layers (PyTorch's names and semantics)."""
from . import functional  # noqa: F401
