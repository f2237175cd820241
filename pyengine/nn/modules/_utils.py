"""Small helpers shared by the layer modules."""
import numpy as np

from ... import _dtype as D
from ...device import as_device


def float_dtype(dtype, device=None, op="layer"):
    """The NumPy dtype of a layer's parameters: float32 unless ``dtype`` says otherwise."""
    as_device(device)
    npd = D.to_numpy_dtype(dtype)
    if npd is None:
        return np.dtype(np.float32)
    if npd.kind != "f":
        raise TypeError(f"{op}: parameters must have a floating point dtype, got {dtype}")
    return npd
