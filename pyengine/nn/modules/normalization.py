"""LayerNorm (Ba, Kiros & Hinton 2016), GroupNorm (Wu & He 2018)."""
import numpy as np

from ..._checks import real_arg, size_arg
from .. import functional as F
from .. import init
from ..parameter import Parameter
from ._utils import float_dtype
from .module import Module

__all__ = ["LayerNorm", "GroupNorm"]


class LayerNorm(Module):
    """y = (x - E[x]) / sqrt(Var[x] + eps) * weight + bias over the last ``len(normalized_shape)`` dims.

    x: (*, *normalized_shape) -> same shape.  weight (ones) and bias (zeros): normalized_shape,
    present when ``elementwise_affine`` (bias only when ``bias``).

    >>> ln = nn.LayerNorm(8)
    >>> ln(pyengine.randn(2, 5, 8)).shape
    pyengine.Size([2, 5, 8])
    """

    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, bias=True, device=None, dtype=None):
        super().__init__()
        dt = float_dtype(dtype, device, "LayerNorm")
        if not isinstance(normalized_shape, (tuple, list)):
            normalized_shape = (normalized_shape,)
        self.normalized_shape = tuple(size_arg("LayerNorm", "normalized_shape", s) for s in normalized_shape)
        self.eps = real_arg("LayerNorm", "eps", eps)
        self.elementwise_affine = elementwise_affine
        if elementwise_affine:
            self.weight = Parameter(np.empty(self.normalized_shape, dt))
            if bias:
                self.bias = Parameter(np.empty(self.normalized_shape, dt))
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self):
        if self.weight is not None:
            init.ones_(self.weight)
        if self.bias is not None:
            init.zeros_(self.bias)

    def forward(self, input):
        return F.layer_norm(input, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"


class GroupNorm(Module):
    """Normalize (N, C, *) over each of ``num_groups`` groups of channels (and the positions), then
    weight[c] y + bias[c] (ones, zeros; when ``affine``).

    >>> nn.GroupNorm(2, 4)(pyengine.randn(3, 4, 5)).shape
    pyengine.Size([3, 4, 5])
    """

    def __init__(self, num_groups, num_channels, eps=1e-5, affine=True, device=None, dtype=None):
        super().__init__()
        dt = float_dtype(dtype, device, "GroupNorm")
        self.num_groups = size_arg("GroupNorm", "num_groups", num_groups, 1)
        self.num_channels = size_arg("GroupNorm", "num_channels", num_channels)
        if self.num_channels % self.num_groups:
            raise ValueError(f"GroupNorm: num_channels ({self.num_channels}) must be divisible by num_groups "
                             f"({self.num_groups})")
        self.eps = real_arg("GroupNorm", "eps", eps)
        self.affine = bool(affine)
        if self.affine:
            self.weight = Parameter(np.ones(self.num_channels, dt))
            self.bias = Parameter(np.zeros(self.num_channels, dt))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def reset_parameters(self):
        if self.affine:
            init.ones_(self.weight)
            init.zeros_(self.bias)

    def forward(self, input):
        return F.group_norm(input, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}"
