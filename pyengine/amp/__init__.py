"""pyengine.amp: PyTorch's ``torch.amp`` names: ``GradScaler`` (loss scaling; works on "cpu", passes
through when disabled or asked for "cuda") and ``autocast`` (PyTorch's CPU mixed precision: see
``autocast_mode``; the bfloat16 matmul/linear it runs are in ``bf16_ops``)."""
from .autocast_mode import (autocast, custom_bwd, custom_fwd, get_autocast_dtype, is_autocast_available,  # noqa: F401
                            is_autocast_enabled)


def __getattr__(name):
    # GradScaler loads on first use: tensor_op (pyengine/_checks.py) imports this package for autocast's op
    # policy while the ops are being defined, before grad_scaler's imports (autograd, tensor) can load
    if name == "GradScaler":
        from .grad_scaler import GradScaler
        return GradScaler
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["GradScaler", "autocast", "custom_fwd", "custom_bwd", "is_autocast_available",
           "is_autocast_enabled", "get_autocast_dtype"]
