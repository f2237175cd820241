"""pyengine.utils.tensorboard: ``SummaryWriter`` over the ``tensorboard`` package, as PyTorch's.

It needs TensorBoard (``pip install tensorboard``; not a dependency of pyengine): without it importing
this module raises ImportError, as PyTorch's does. Scalars, histograms, text and hyperparameters are
written as TensorBoard event files; Tensors may be passed wherever numbers or arrays go.

>>> from pyengine.utils.tensorboard import SummaryWriter
>>> writer = SummaryWriter("runs/exp1")
>>> writer.add_scalar("loss/train", loss.item(), step)
>>> writer.close()
"""
try:
    import tensorboard  # noqa: F401
except ImportError:
    raise ImportError("TensorBoard logging requires TensorBoard version 1.15 or above") from None

from .writer import SummaryWriter  # noqa: E402,F401

__all__ = ["SummaryWriter"]
