"""pyengine.backends: PyTorch's ``torch.backends`` flags, as plain settable module attributes.

Programs set these to tune GPU libraries (``backends.cudnn.benchmark = True``,
``backends.cuda.matmul.allow_tf32 = True``); this build has no cuDNN, CUDA or MPS, so the flags are recorded
with PyTorch's defaults and change nothing. The ``is_available()`` functions answer for this build:
``cudnn``, ``cuda`` (``is_built()``) and ``mps`` False; ``openmp`` True (the kernels' threads); ``mkldnn``
False (pyengine has its own GEMM).
"""
from . import cpu, cuda, cudnn, mkldnn, mps, openmp  # noqa: F401

__all__ = ["cpu", "cuda", "cudnn", "mkldnn", "mps", "openmp"]
