"""DataParallel on a machine without GPUs: PyTorch's behaviour there (see the package docstring)."""
from ..modules.module import Module


class DataParallel(Module):
    """``DataParallel(module, device_ids=None, output_device=None, dim=0)``: with no GPU (always, in this
    build) ``forward`` calls ``module`` as it is, as PyTorch does. The wrapped module is ``self.module``,
    so state-dict keys carry the ``module.`` prefix, as PyTorch's."""

    def __init__(self, module, device_ids=None, output_device=None, dim=0):
        super().__init__()
        if not isinstance(module, Module):
            raise TypeError(f"DataParallel: expected an nn.Module, got {type(module).__name__}")
        self.module = module
        self.device_ids = []
        self.dim = dim

    def forward(self, *inputs, **kwargs):
        return self.module(*inputs, **kwargs)


def data_parallel(module, inputs, device_ids=None, output_device=None, dim=0, module_kwargs=None):
    """PyTorch's functional DataParallel. It needs a GPU device type; without one PyTorch raises
    RuntimeError, and so does this (call ``module(*inputs)`` instead)."""
    raise RuntimeError("device type could not be determined: data_parallel runs a module over GPUs and this "
                       "build of pyengine has none; call module(*inputs) instead")
