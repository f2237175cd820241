"""LayerNorm (Ba, Kiros & Hinton 2016)."""
import numpy as np

from ..._checks import real_arg, size_arg
from .. import functional as F
from .. import init
from ..parameter import Parameter
from ._utils import float_dtype
from .module import Module

__all__ = ["LayerNorm"]


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
