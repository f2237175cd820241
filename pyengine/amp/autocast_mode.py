"""autocast: PyTorch's mixed-precision region (``torch.autocast`` / ``torch.amp.autocast``), accepted with
PyTorch's signature and state, as a NO-OP for now.

Inside ``with pyengine.autocast("cpu"):`` PyTorch runs matmuls and linear layers in bfloat16. pyengine
does not cast inside the region yet: every op runs in its inputs' dtype (float32 for a float32 model), so a
program written for autocast runs unchanged and computes in full precision. What the region reports is
PyTorch's: ``is_autocast_enabled("cpu")`` is True inside it, ``get_autocast_dtype("cpu")`` its dtype.
Asking for ``device_type="cuda"`` warns and disables the region, as PyTorch does on a machine without CUDA.
"""
import functools
import threading
import warnings

from .. import _dtype as D

_DEVICE_TYPES = ("cpu", "cuda", "xpu", "mps", "hpu", "mtia", "xla", "ipu", "meta", "privateuseone")
_DEFAULT_DTYPE = {"cpu": D.bfloat16, "cuda": D.float16}


class _State(threading.local):
    def __init__(self):
        self.enabled = {}   # device type -> bool
        self.dtype = {}     # device type -> dtype


_state = _State()


def is_autocast_available(device_type):
    """Whether autocast can run on ``device_type`` here: the CPU only."""
    return device_type == "cpu"


def is_autocast_enabled(device_type=None):
    """Whether an autocast region for ``device_type`` ("cuda" when omitted, as PyTorch) is active."""
    return _state.enabled.get(device_type or "cuda", False)


def get_autocast_dtype(device_type):
    return _state.dtype.get(device_type, _DEFAULT_DTYPE.get(device_type, D.float16))


class autocast:
    """``autocast(device_type, dtype=None, enabled=True, cache_enabled=None)``: a context manager and a
    decorator (see the module docstring: pyengine accepts it and computes in the inputs' dtype)."""

    def __init__(self, device_type, dtype=None, enabled=True, cache_enabled=None):
        if not isinstance(device_type, str):
            raise ValueError(f"Expected `device_type` of type `str`, got: `{type(device_type)}`")
        if device_type not in _DEVICE_TYPES:
            raise RuntimeError(f"Expected one of {', '.join(_DEVICE_TYPES)} device type at start of device "
                               f"string: {device_type}")
        if dtype is not None and not isinstance(dtype, D.dtype):
            raise TypeError(f"autocast: dtype must be a pyengine dtype, got {dtype!r}")
        self.device = device_type
        self.fast_dtype = dtype if dtype is not None else _DEFAULT_DTYPE.get(device_type, D.float16)
        self._enabled = bool(enabled)
        self._cache_enabled = cache_enabled
        if self._enabled and device_type != "cpu":
            warnings.warn(f"User provided device_type of '{device_type}', but {device_type.upper()} is not "
                          "available. Disabling", UserWarning, stacklevel=2)
            self._enabled = False
        if self._enabled and device_type == "cpu" and self.fast_dtype not in (D.bfloat16, D.float16):
            warnings.warn("In CPU autocast, but the target dtype is not supported. Disabling autocast.\n"
                          "CPU Autocast only supports dtype of torch.bfloat16, torch.float16 currently.",
                          UserWarning, stacklevel=2)
            self._enabled = False

    def __enter__(self):
        self._prev = (_state.enabled.get(self.device), _state.dtype.get(self.device))
        _state.enabled[self.device] = self._enabled
        _state.dtype[self.device] = self.fast_dtype
        return self

    def __exit__(self, *exc):
        for store, prev in zip((_state.enabled, _state.dtype), self._prev):
            if prev is None:
                store.pop(self.device, None)
            else:
                store[self.device] = prev
        return False

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with autocast(self.device, self.fast_dtype, self._enabled, self._cache_enabled):
                return fn(*args, **kwargs)
        return wrapper


def custom_fwd(fwd=None, *, device_type="cuda", cast_inputs=None):
    """PyTorch's decorator for a custom Function's forward under autocast; pyengine does not cast, so it
    returns ``fwd`` as it is."""
    if fwd is None:
        return functools.partial(custom_fwd, device_type=device_type, cast_inputs=cast_inputs)
    return fwd


def custom_bwd(bwd=None, *, device_type="cuda"):
    """PyTorch's decorator for a custom Function's backward under autocast: returns ``bwd`` as it is."""
    if bwd is None:
        return functools.partial(custom_bwd, device_type=device_type)
    return bwd
