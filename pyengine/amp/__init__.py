"""pyengine.amp: PyTorch's ``torch.amp`` names: ``GradScaler`` (loss scaling; works on "cpu", passes
through when disabled or asked for "cuda") and ``autocast`` (accepted, a no-op for now: see
``autocast_mode``)."""
from .autocast_mode import (autocast, custom_bwd, custom_fwd, get_autocast_dtype, is_autocast_available,  # noqa: F401
                            is_autocast_enabled)
from .grad_scaler import GradScaler  # noqa: F401

__all__ = ["GradScaler", "autocast", "custom_fwd", "custom_bwd", "is_autocast_available",
           "is_autocast_enabled", "get_autocast_dtype"]
