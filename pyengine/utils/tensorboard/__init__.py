"""pyengine.utils.tensorboard: ``SummaryWriter`` over the ``tensorboard`` package, as PyTorch's.

It needs TensorBoard (``pip install tensorboard``; not a dependency of pyengine): without it importing
this module raises ModuleNotFoundError ("No module named 'tensorboard'"), and with a TensorBoard older than
1.15 ImportError, as PyTorch's does. Scalars, histograms, text and hyperparameters are
written as TensorBoard event files; Tensors may be passed wherever numbers or arrays go.

>>> from pyengine.utils.tensorboard import SummaryWriter
>>> writer = SummaryWriter("runs/exp1")
>>> writer.add_scalar("loss/train", loss.item(), step)
>>> writer.close()
"""
import tensorboard  # noqa: E402  (absent: ModuleNotFoundError, as PyTorch's import)

if tuple(int(x) for x in tensorboard.__version__.split(".")[:2] if x.isdigit()) < (1, 15):
    raise ImportError("TensorBoard logging requires TensorBoard version 1.15 or above")

from .writer import SummaryWriter  # noqa: E402,F401

__all__ = ["SummaryWriter"]
