"""pyengine.nn.parallel: PyTorch's ``torch.nn.parallel`` names.

``DistributedDataParallel`` is ``pyengine.distributed.DistributedDataParallel`` (processes over MPI).
``DataParallel`` and ``data_parallel`` split a batch over GPUs in PyTorch; on a machine without GPUs
PyTorch's ``DataParallel`` just calls its module, and so does this one (this build has no GPU backend).
"""
from ...distributed.ddp import DistributedDataParallel  # noqa: F401
from .data_parallel import DataParallel, data_parallel  # noqa: F401

__all__ = ["DataParallel", "DistributedDataParallel", "data_parallel"]
