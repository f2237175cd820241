"""BatchNorm1d, BatchNorm2d (Ioffe & Szegedy 2015), with PyTorch's parameters and buffers."""
import numpy as np

from ...tensor import Tensor, _wrap
from ..._checks import real_arg, size_arg
from .. import functional as F
from .. import init
from ..parameter import Parameter
from ._utils import float_dtype
from .module import Module

__all__ = ["BatchNorm1d", "BatchNorm2d"]


class _BatchNorm(Module):
    """Per-channel normalization of (N, C, *) by the batch's statistics in training (updating the running
    ones: (1 - momentum) running + momentum batch, var unbiased; momentum=None: the cumulative average over
    num_batches_tracked batches), by the running ones in eval mode (or the batch's when
    track_running_stats=False). weight (ones), bias (zeros): (C,) when affine; buffers running_mean (zeros),
    running_var (ones), num_batches_tracked (int64 0) when track_running_stats."""

    _dims = (2, 3)

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True, device=None,
                 dtype=None):
        super().__init__()
        op = type(self).__name__
        dt = float_dtype(dtype, device, op)
        self.num_features = size_arg(op, "num_features", num_features)
        self.eps = real_arg(op, "eps", eps)
        self.momentum = None if momentum is None else real_arg(op, "momentum", momentum)
        self.affine, self.track_running_stats = bool(affine), bool(track_running_stats)
        C = self.num_features
        if self.affine:
            self.weight = Parameter(np.ones(C, dt))
            self.bias = Parameter(np.zeros(C, dt))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if self.track_running_stats:
            self.register_buffer("running_mean", _wrap(np.zeros(C, dt)))
            self.register_buffer("running_var", _wrap(np.ones(C, dt)))
            self.register_buffer("num_batches_tracked", _wrap(np.zeros((), np.int64)))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)

    def reset_running_stats(self):
        if self.track_running_stats:
            self.running_mean._data[...] = 0
            self.running_var._data[...] = 1
            self.num_batches_tracked._data[...] = 0

    def reset_parameters(self):
        self.reset_running_stats()
        if self.affine:
            init.ones_(self.weight)
            init.zeros_(self.bias)

    def forward(self, input):
        op = type(self).__name__
        if not isinstance(input, Tensor):
            raise TypeError(f"{op}: input must be a Tensor, not {type(input).__name__}")
        if input.ndim not in self._dims:
            raise ValueError(f"{op}: expected {' or '.join(f'{d}D' for d in self._dims)} input, "
                             f"got {input.ndim}D input {tuple(input.shape)}")
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked._data[...] += 1
            if self.momentum is None:
                factor = 1.0 / float(self.num_batches_tracked._data)
        use_batch = self.training or (self.running_mean is None and self.running_var is None)
        keep = not self.training or self.track_running_stats
        return F.batch_norm(input, self.running_mean if keep else None, self.running_var if keep else None,
                            self.weight, self.bias, use_batch, factor, self.eps)

    def extra_repr(self):
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    """Batch norm over (N, C) or (N, C, L) input."""

    _dims = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Batch norm over (N, C, H, W) input."""

    _dims = (4,)
