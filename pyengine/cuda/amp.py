"""pyengine.cuda.amp: PyTorch's deprecated ``torch.cuda.amp`` names. ``GradScaler(...)`` is
``pyengine.amp.GradScaler("cuda", ...)`` (which warns and disables itself: no CUDA device) and
``autocast(...)`` is ``pyengine.amp.autocast("cuda", ...)``; both warn FutureWarning as PyTorch does."""
import warnings

from .. import _dtype as D
from ..amp import autocast_mode, grad_scaler


class GradScaler(grad_scaler.GradScaler):
    """``pyengine.amp.GradScaler("cuda", ...)``: disabled here (no CUDA), so a pass-through."""

    def __init__(self, init_scale=2.0 ** 16, growth_factor=2.0, backoff_factor=0.5, growth_interval=2000,
                 enabled=True):
        warnings.warn("`pyengine.cuda.amp.GradScaler(args...)` is deprecated. Please use "
                      "`pyengine.amp.GradScaler('cuda', args...)` instead.", FutureWarning, stacklevel=2)
        super().__init__("cuda", init_scale, growth_factor, backoff_factor, growth_interval, enabled)


class autocast(autocast_mode.autocast):
    """``pyengine.amp.autocast("cuda", ...)``: disabled here (no CUDA)."""

    def __init__(self, enabled=True, dtype=D.float16, cache_enabled=True):
        warnings.warn("`pyengine.cuda.amp.autocast(args...)` is deprecated. Please use "
                      "`pyengine.amp.autocast('cuda', args...)` instead.", FutureWarning, stacklevel=2)
        super().__init__("cuda", dtype=dtype, enabled=enabled, cache_enabled=cache_enabled)
