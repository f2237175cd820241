"""Former home of DistributedSampler; PyTorch's path is ``pyengine.utils.data.distributed``."""
from .data.distributed import DistributedSampler  # noqa: F401

__all__ = ["DistributedSampler"]
