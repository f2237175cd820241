"""Conv1d, Conv2d, ConvTranspose1d, ConvTranspose2d (PyTorch's parameter names and shapes), Unfold, Fold."""
import numpy as np

from ..._checks import size_arg
from .. import functional as F
from ..parameter import Parameter
from ._utils import check_params, default_init_, float_dtype
from .module import Module

__all__ = ["Conv1d", "Conv2d", "ConvTranspose1d", "ConvTranspose2d", "Unfold", "Fold"]

_PAD_MODES = {"reflect": "reflect", "replicate": "replicate", "circular": "circular"}


def _ntuple(op, name, v, n):
    if isinstance(v, (tuple, list)):
        if len(v) != n:
            raise ValueError(f"{op}: {name} must be an int or a tuple of {n} ints, got {v!r}")
        return tuple(v)
    return (v,) * n


class _ConvNd(Module):
    """weight (out, in / groups, *kernel) [transposed: (in, out / groups, *kernel)], bias (out,);
    initialised as PyTorch: kaiming_uniform(a=sqrt(5)), bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""

    _nd = 2
    _transposed = False

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1, bias=True,
                 padding_mode="zeros", device=None, dtype=None, output_padding=0):
        super().__init__()
        op, nd = type(self).__name__, self._nd
        dt = float_dtype(dtype, device, op)
        in_channels = size_arg(op, "in_channels", in_channels)
        out_channels = size_arg(op, "out_channels", out_channels)
        groups = size_arg(op, "groups", groups, 1)
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"{op}: in_channels ({in_channels}) and out_channels ({out_channels}) must be divisible "
                             f"by groups ({groups})")
        kernel_size = tuple(size_arg(op, "kernel_size", k, 1) for k in _ntuple(op, "kernel_size", kernel_size, nd))
        if isinstance(padding, str):
            if padding not in ("same", "valid") or self._transposed:
                raise ValueError(f"{op}: invalid padding string {padding!r}, should be one of {{'valid', 'same'}}")
            if padding == "same" and any(s != 1 for s in _ntuple(op, "stride", stride, nd)):
                raise ValueError(f"{op}: padding='same' is not supported for strided convolutions")
        else:
            padding = tuple(size_arg(op, "padding", p) for p in _ntuple(op, "padding", padding, nd))
        if padding_mode not in ("zeros", "reflect", "replicate", "circular") or (
                self._transposed and padding_mode != "zeros"):
            raise ValueError(f"{op}: padding_mode must be 'zeros'{'' if self._transposed else ', reflect, replicate or circular'}, "
                             f"got {padding_mode!r}")
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, kernel_size
        self.stride = tuple(size_arg(op, "stride", s, 1) for s in _ntuple(op, "stride", stride, nd))
        self.padding = padding
        self.dilation = tuple(size_arg(op, "dilation", d, 1) for d in _ntuple(op, "dilation", dilation, nd))
        self.output_padding = tuple(size_arg(op, "output_padding", p) for p in
                                    _ntuple(op, "output_padding", output_padding, nd))
        self.groups, self.padding_mode, self.transposed = groups, padding_mode, self._transposed
        shape = ((in_channels, out_channels // groups) if self._transposed else
                 (out_channels, in_channels // groups)) + kernel_size
        check_params(op, dt, shape, (out_channels,))
        self.weight = Parameter(np.empty(shape, dt))
        if bias:
            self.bias = Parameter(np.empty(out_channels, dt))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self):
        default_init_(self.weight, self.bias)

    def _padded(self, input):
        """The explicit padding of padding_mode != 'zeros' (then the convolution pads nothing)."""
        if self.padding_mode == "zeros":
            return input, self.padding
        if self.padding == "valid":
            return input, 0
        if self.padding == "same":
            total = [d * (k - 1) for d, k in zip(self.dilation, self.kernel_size)]
            pads = []
            for t in reversed(total):
                pads += [t // 2, t - t // 2]
        else:
            pads = [p for p in reversed(self.padding) for _ in (0, 1)]
        return F.pad(input, pads, mode=_PAD_MODES[self.padding_mode]), 0

    def extra_repr(self):
        s = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}")
        if self.padding != (0,) * self._nd:
            s += f", padding={self.padding}"
        if self.dilation != (1,) * self._nd:
            s += f", dilation={self.dilation}"
        if self.output_padding != (0,) * self._nd:
            s += f", output_padding={self.output_padding}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode}"
        return s


class Conv2d(_ConvNd):
    """2-D convolution: (N, C_in, H, W) or (C_in, H, W) -> (N, C_out, H_out, W_out).

    weight (out_channels, in_channels / groups, KH, KW), bias (out_channels,). padding: int, (h, w), 'valid'
    or 'same'; padding_mode: 'zeros', 'reflect', 'replicate' or 'circular'.

    >>> nn.Conv2d(3, 8, 3, padding=1)(pyengine.randn(2, 3, 5, 5)).shape
    pyengine.Size([2, 8, 5, 5])
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1, bias=True,
                 padding_mode="zeros", device=None, dtype=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         padding_mode, device, dtype)

    def forward(self, input):
        x, pad = self._padded(input)
        return F.conv2d(x, self.weight, self.bias, self.stride, pad, self.dilation, self.groups)


class Conv1d(_ConvNd):
    """1-D convolution: (N, C_in, L) or (C_in, L) -> (N, C_out, L_out); weight (out, in / groups, K)."""

    _nd = 1

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1, bias=True,
                 padding_mode="zeros", device=None, dtype=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         padding_mode, device, dtype)

    def forward(self, input):
        x, pad = self._padded(input)
        return F.conv1d(x, self.weight, self.bias, self.stride, pad, self.dilation, self.groups)


class ConvTranspose2d(_ConvNd):
    """2-D transposed convolution: (N, C_in, H, W) -> (N, C_out, (H - 1) s - 2 p + d (K - 1) + output_padding + 1, ..).

    weight (in_channels, out_channels / groups, KH, KW), bias (out_channels,).
    """

    _transposed = True

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, output_padding=0, groups=1,
                 bias=True, dilation=1, padding_mode="zeros", device=None, dtype=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         padding_mode, device, dtype, output_padding)

    def forward(self, input, output_size=None):
        return F.conv_transpose2d(input, self.weight, self.bias, self.stride, self.padding,
                                  self._output_padding(input, output_size), self.groups, self.dilation)

    def _output_padding(self, input, output_size):
        if output_size is None:
            return self.output_padding
        op = type(self).__name__
        want = tuple(output_size)[-self._nd:]
        sp = tuple(input.shape)[-self._nd:]
        res = []
        for n, o, k, s, p, d in zip(sp, want, self.kernel_size, self.stride, self.padding, self.dilation):
            lo = (n - 1) * s - 2 * p + d * (k - 1) + 1
            if not lo <= o < lo + s:
                raise ValueError(f"{op}: requested output size {tuple(output_size)} is not reachable from input "
                                 f"{tuple(input.shape)} (each dim must be in [{lo}, {lo + s - 1}])")
            res.append(o - lo)
        return tuple(res)


class ConvTranspose1d(ConvTranspose2d):
    """1-D transposed convolution: (N, C_in, L) -> (N, C_out, L_out); weight (in, out / groups, K)."""

    _nd = 1

    def forward(self, input, output_size=None):
        return F.conv_transpose1d(input, self.weight, self.bias, self.stride, self.padding,
                                  self._output_padding(input, output_size), self.groups, self.dilation)


class Unfold(Module):
    """F.unfold as a module: (N, C, H, W) -> (N, C KH KW, L)."""

    def __init__(self, kernel_size, dilation=1, padding=0, stride=1):
        super().__init__()
        self.kernel_size, self.dilation, self.padding, self.stride = kernel_size, dilation, padding, stride

    def forward(self, input):
        return F.unfold(input, self.kernel_size, self.dilation, self.padding, self.stride)

    def extra_repr(self):
        return (f"kernel_size={self.kernel_size}, dilation={self.dilation}, padding={self.padding}, "
                f"stride={self.stride}")


class Fold(Module):
    """F.fold as a module: (N, C KH KW, L) -> (N, C, *output_size)."""

    def __init__(self, output_size, kernel_size, dilation=1, padding=0, stride=1):
        super().__init__()
        self.output_size, self.kernel_size = output_size, kernel_size
        self.dilation, self.padding, self.stride = dilation, padding, stride

    def forward(self, input):
        return F.fold(input, self.output_size, self.kernel_size, self.dilation, self.padding, self.stride)

    def extra_repr(self):
        return (f"output_size={self.output_size}, kernel_size={self.kernel_size}, dilation={self.dilation}, "
                f"padding={self.padding}, stride={self.stride}")
