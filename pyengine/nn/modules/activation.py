"""Activation modules: thin wrappers of pyengine.nn.functional."""
from .. import functional as F
from .module import Module

__all__ = ["ReLU", "GELU", "Tanh", "Sigmoid", "SiLU", "LeakyReLU", "Softmax", "LogSoftmax"]


class ReLU(Module):
    """max(x, 0), elementwise. (``inplace`` is accepted for compatibility; the result is a new tensor.)"""

    def __init__(self, inplace=False):
        super().__init__()
        self.inplace = inplace

    def forward(self, input):
        return F.relu(input)

    def extra_repr(self):
        return "inplace=True" if self.inplace else ""


class GELU(Module):
    """x Phi(x) (Hendrycks & Gimpel 2016); ``approximate="tanh"`` uses the tanh formula."""

    def __init__(self, approximate="none"):
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(f"GELU: approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    def forward(self, input):
        return F.gelu(input, approximate=self.approximate)

    def extra_repr(self):
        return f"approximate={self.approximate!r}"


class Tanh(Module):
    def forward(self, input):
        return F.tanh(input)


class Sigmoid(Module):
    def forward(self, input):
        return F.sigmoid(input)


class SiLU(Module):
    """x sigmoid(x) (a.k.a. swish)."""

    def __init__(self, inplace=False):
        super().__init__()
        self.inplace = inplace

    def forward(self, input):
        return F.silu(input)

    def extra_repr(self):
        return "inplace=True" if self.inplace else ""


class LeakyReLU(Module):
    """x if x > 0 else negative_slope * x."""

    def __init__(self, negative_slope=0.01, inplace=False):
        super().__init__()
        self.negative_slope = negative_slope
        self.inplace = inplace

    def forward(self, input):
        return F.leaky_relu(input, self.negative_slope)

    def extra_repr(self):
        return f"negative_slope={self.negative_slope}" + (", inplace=True" if self.inplace else "")


def _legacy_softmax_dim(ndim):
    # PyTorch's choice when dim is not given (it warns that this is deprecated)
    return 0 if ndim in (0, 1, 3) else 1


class Softmax(Module):
    """exp(x_i) / sum_j exp(x_j) along ``dim``."""

    def __init__(self, dim=None):
        super().__init__()
        self.dim = dim

    def forward(self, input):
        return F.softmax(input, self.dim if self.dim is not None else _legacy_softmax_dim(input.ndim))

    def extra_repr(self):
        return f"dim={self.dim}"


class LogSoftmax(Module):
    """log(softmax(x)) along ``dim``, computed stably."""

    def __init__(self, dim=None):
        super().__init__()
        self.dim = dim

    def forward(self, input):
        return F.log_softmax(input, self.dim if self.dim is not None else _legacy_softmax_dim(input.ndim))

    def extra_repr(self):
        return f"dim={self.dim}"


# ---------------------------------------------------------------------- breadth (issue 13 item 2)


class _Pointwise(Module):
    """An activation without parameters: forward is ``fn(input, **its arguments)``."""

    fn = None
    args = ()

    def forward(self, input):
        return type(self).fn(input, **{k: getattr(self, k) for k in self.args})

    def extra_repr(self):
        return ", ".join(f"{k}={getattr(self, k)}" for k in self.args)


class Softplus(_Pointwise):
    """log(1 + e^(beta x)) / beta, linear past ``threshold``."""

    fn = staticmethod(F.softplus)
    args = ("beta", "threshold")

    def __init__(self, beta=1.0, threshold=20.0):
        super().__init__()
        self.beta, self.threshold = beta, threshold


class ELU(_Pointwise):
    fn = staticmethod(F.elu)
    args = ("alpha",)

    def __init__(self, alpha=1.0, inplace=False):
        super().__init__()
        self.alpha, self.inplace = alpha, inplace


class CELU(_Pointwise):
    fn = staticmethod(F.celu)
    args = ("alpha",)

    def __init__(self, alpha=1.0, inplace=False):
        super().__init__()
        self.alpha, self.inplace = alpha, inplace


class SELU(_Pointwise):
    fn = staticmethod(F.selu)

    def __init__(self, inplace=False):
        super().__init__()
        self.inplace = inplace


class Hardtanh(_Pointwise):
    fn = staticmethod(F.hardtanh)
    args = ("min_val", "max_val")

    def __init__(self, min_val=-1.0, max_val=1.0, inplace=False):
        super().__init__()
        self.min_val, self.max_val, self.inplace = min_val, max_val, inplace


class ReLU6(_Pointwise):
    fn = staticmethod(F.relu6)

    def __init__(self, inplace=False):
        super().__init__()
        self.inplace = inplace


class Hardswish(_Pointwise):
    fn = staticmethod(F.hardswish)

    def __init__(self, inplace=False):
        super().__init__()
        self.inplace = inplace


class Hardsigmoid(_Pointwise):
    fn = staticmethod(F.hardsigmoid)

    def __init__(self, inplace=False):
        super().__init__()
        self.inplace = inplace


class Mish(_Pointwise):
    fn = staticmethod(F.mish)

    def __init__(self, inplace=False):
        super().__init__()
        self.inplace = inplace


class Softsign(_Pointwise):
    fn = staticmethod(F.softsign)


class Tanhshrink(_Pointwise):
    fn = staticmethod(F.tanhshrink)


class LogSigmoid(_Pointwise):
    fn = staticmethod(F.logsigmoid)


class GLU(_Pointwise):
    """a * sigmoid(b) for the two halves of the input along ``dim``."""

    fn = staticmethod(F.glu)
    args = ("dim",)

    def __init__(self, dim=-1):
        super().__init__()
        self.dim = dim


__all__ += ["Softplus", "ELU", "CELU", "SELU", "Hardtanh", "ReLU6", "Hardswish", "Hardsigmoid", "Mish", "Softsign",
            "Tanhshrink", "LogSigmoid", "GLU"]
