"""pyengine: a deep learning engine written from scratch.

A compiled C++ core (SIMD chosen at run time, OpenMP threads) under a PyTorch-style Python API:
Tensor with reverse-mode autograd, ``pyengine.nn``, ``pyengine.optim``, data loading,
checkpoints and a Keras-style front. See README.md.
"""
from . import backend  # noqa: F401
from ._dtype import (bfloat16, bool_, double, dtype, float, float16, float32, float64, half, int8, int16,  # noqa: F401
                     int32, int64, long, short, uint8)
from ._dtype import bool_ as bool  # noqa: F401,A001
from ._dtype import int as int  # noqa: F401,A001
from .autograd import (Function, enable_grad, inference_mode, is_grad_enabled, is_inference_mode_enabled,  # noqa: F401
                       no_grad, set_grad_enabled)
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
from . import serialization  # noqa: E402,F401
from . import sparse  # noqa: E402,F401
from .sparse import layout, sparse_coo, sparse_coo_tensor, spmm, strided  # noqa: E402,F401
from .serialization import load, save  # noqa: E402,F401

# PyTorch compatibility: device and accelerator modules of a CPU-only build, legacy API, no-op settings
# (docs/pytorch_compat.md)
from . import accelerator, amp, backends, cuda, onnx  # noqa: E402,F401
from ._compat import compile, get_float32_matmul_precision, set_float32_matmul_precision  # noqa: E402,F401,A004
from ._legacy import TENSOR_TYPES as _TENSOR_TYPES  # noqa: E402
from .amp import autocast, get_autocast_dtype, is_autocast_enabled  # noqa: E402,F401

FloatTensor, DoubleTensor, HalfTensor, BFloat16Tensor, ByteTensor, CharTensor, ShortTensor, IntTensor, \
    LongTensor, BoolTensor = _TENSOR_TYPES

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

