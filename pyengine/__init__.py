"""pyengine: a deep learning engine written from scratch.

A compiled C++ core (SIMD chosen at run time, OpenMP threads) under a PyTorch-style Python API:
Tensor with reverse-mode autograd, ``pyengine.nn``, ``pyengine.optim``, data loading,
checkpoints and a Keras-style front. See README.md.
"""
from . import backend  # noqa: F401
from ._dtype import (bool_, double, dtype, float, float16, float32, float64, half, int8, int16, int32,  # noqa: F401
                     int64, long, short, uint8)
from ._dtype import bool_ as bool  # noqa: F401,A001
from ._dtype import int as int  # noqa: F401,A001
from .autograd import Function, enable_grad, is_grad_enabled, no_grad, set_grad_enabled  # noqa: F401
from .backend import get_backend, set_backend  # noqa: F401
from .device import device  # noqa: F401
from .random import Generator, get_rng_state, initial_seed, manual_seed, seed, set_rng_state  # noqa: F401
from .tensor import (Size, Tensor, arange, as_tensor, empty, empty_like, eye, from_numpy, full,  # noqa: F401
                     full_like, is_tensor, linspace, numel, ones, ones_like, rand, rand_like, randint,
                     randint_like, randn, randn_like, randperm, tensor, zeros, zeros_like)
from . import autograd  # noqa: E402,F401
from .ops import *  # noqa: E402,F401,F403
from .ops import abs, all, any, max, min, pow, round, sum  # noqa: E402,F401,A004
from .ops.shape import multinomial, one_hot  # noqa: E402,F401

from . import distributed, keras, linalg, models, nn, optim, preprocessing, profiler, text, utils  # noqa: E402,F401
from .io import load, save  # noqa: E402,F401

__version__ = "0.1.0"


def set_num_threads(n):
    """Threads used by the compiled kernels (OpenMP); 1 runs everything on the calling thread."""
    import builtins
    n = builtins.int(n)
    if n < 1:
        raise ValueError(f"set_num_threads: n must be >= 1, got {n}")
    from .backend import _load_cpu
    try:
        _load_cpu().set_num_threads(n)
    except ImportError:
        pass


def get_num_threads():
    """Threads the compiled kernels use."""
    from .backend import _load_cpu
    try:
        return _load_cpu().get_num_threads()
    except ImportError:
        return 1

