"""pyengine: a deep learning engine written from scratch."""
from . import backend  # noqa: F401
from .backend import get_backend, set_backend  # noqa: F401

__version__ = "0.1.0"
