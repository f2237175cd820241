"""Small helpers shared by the layer modules."""
import math

import numpy as np

from ... import _dtype as D
from ..._checks import check_alloc
from ...device import as_device
from .. import init


def float_dtype(dtype, device=None, op="layer"):
    """The NumPy dtype of a layer's parameters: float32 unless ``dtype`` says otherwise."""
    as_device(device)
    npd = D.to_numpy_dtype(dtype)
    if npd is None:
        return np.dtype(np.float32)
    if npd.kind != "f":
        raise TypeError(f"{op}: parameters must have a floating point dtype, got {dtype}")
    return npd


def check_params(op, dtype, *shapes):
    """MemoryError naming the layer when parameters of these shapes cannot fit this machine's memory, before
    any is allocated (and filled: initialising them touches every page)."""
    check_alloc(op, sum(math.prod(s) for s in shapes) * np.dtype(dtype).itemsize, "its parameters")


def default_init_(weight, bias):
    """PyTorch's default initialisation of a Linear or convolution layer: weight kaiming_uniform_(a=sqrt(5)),
    i.e. U(-1/sqrt(fan_in), 1/sqrt(fan_in)), and the bias (if any) uniform over that same bound."""
    init.kaiming_uniform_(weight, a=math.sqrt(5))
    if bias is not None:
        fan_in, _ = init._calculate_fan_in_and_fan_out(weight)
        bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
        init.uniform_(bias, -bound, bound)
