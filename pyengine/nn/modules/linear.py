"""Linear, NonDynamicallyQuantizableLinear and Identity."""
import numpy as np

from ..._checks import size_arg
from .. import functional as F
from ..parameter import Parameter
from ._utils import check_params, default_init_, float_dtype
from .module import Module

__all__ = ["Identity", "Linear", "NonDynamicallyQuantizableLinear"]


class Identity(Module):
    """Returns its input unchanged (arguments are accepted and ignored)."""

    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, input):
        return input


class Linear(Module):
    """y = x W^T + b.

    x: (*, in_features) -> y: (*, out_features);  weight: (out_features, in_features), bias: (out_features,)
    Initialised as PyTorch: weight ~ kaiming_uniform(a=sqrt(5)) = U(-1/sqrt(in), 1/sqrt(in)),
    bias ~ U(-1/sqrt(in), 1/sqrt(in)).

    >>> fc = nn.Linear(4, 3)
    >>> fc(pyengine.randn(2, 4)).shape
    pyengine.Size([2, 3])
    """

    def __init__(self, in_features, out_features, bias=True, device=None, dtype=None):
        super().__init__()
        dt = float_dtype(dtype, device, "Linear")
        in_features = size_arg("Linear", "in_features", in_features)
        out_features = size_arg("Linear", "out_features", out_features)
        check_params("Linear", dt, (out_features, in_features), (out_features,))
        self.in_features = in_features
        self.out_features = out_features
        self.weight = Parameter(np.empty((out_features, in_features), dt))
        if bias:
            self.bias = Parameter(np.empty(out_features, dt))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self):
        default_init_(self.weight, self.bias)

    def forward(self, input):
        return F.linear(input, self.weight, self.bias)

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class NonDynamicallyQuantizableLinear(Linear):
    """A Linear, under the name PyTorch gives MultiheadAttention's ``out_proj`` (PyTorch uses the name to keep
    dynamic quantization off it; here it is only the name, so that the module tree matches)."""
