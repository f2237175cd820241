"""MultiheadAttention lives in activation.py, where PyTorch keeps it (torch.nn.modules.activation); this
module keeps the older import path working."""
from .activation import MultiheadAttention  # noqa: F401

__all__ = ["MultiheadAttention"]
