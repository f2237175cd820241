"""pyengine.cuda: PyTorch's ``torch.cuda`` as it behaves on a machine without a CUDA device.

This build of pyengine has the CPU backend only, so programs that branch on CUDA take their CPU path:

    is_available() -> False          device_count() -> 0           is_initialized() -> False
    is_bf16_supported() -> False     manual_seed(s), manual_seed_all(s), seed(), seed_all(): harmless no-ops
    empty_cache(), ipc_collect(), reset_peak_memory_stats(): no-ops   memory_allocated() & co. -> 0

What needs a device raises PyTorch's AssertionError, naming pyengine ("pyengine not compiled with CUDA
enabled"; the error is also a RuntimeError): ``init``, ``synchronize``, ``current_device``,
``set_device(i)`` for i >= 0 (a negative index is a no-op, as PyTorch), ``get_device_name``,
``get_device_capability``, ``get_device_properties``, entering ``device(i)``, and building a
``cuda.FloatTensor`` (a TypeError there, as PyTorch's). ``isinstance(t, pyengine.cuda.FloatTensor)`` is
False for every tensor. ``cuda.amp`` holds the (deprecated in PyTorch) ``GradScaler`` and ``autocast``.
"""
from ..device import device as _device
from ..device import no_cuda as _no_cuda
from .. import _legacy
from . import amp  # noqa: F401


def is_available():
    """False: this build has no CUDA backend."""
    return False


def device_count():
    return 0


def is_initialized():
    return False


def init():
    raise _no_cuda("cuda.init()")


def is_bf16_supported(including_emulation=True):
    return False


def manual_seed(seed):
    """Seed the CUDA generators: there are none, so nothing happens (PyTorch queues it lazily likewise)."""


def manual_seed_all(seed):
    """Seed every CUDA device's generator: there are none."""


def seed():
    """Seed the CUDA generator from fresh entropy: there is none."""


def seed_all():
    """Seed every CUDA device's generator from fresh entropy: there are none."""


def _index(dev, op):
    """The device index of ``dev`` (int, str or device), with PyTorch's ValueError for a non-CUDA one."""
    if isinstance(dev, str):
        dev = _device(dev)
    if isinstance(dev, _device):
        if dev.type != "cuda":
            raise ValueError(f"Expected a cuda device, but got: {dev}")
        return dev.index if dev.index is not None else 0
    if dev is None:
        return -1
    if not isinstance(dev, int) or isinstance(dev, bool):
        raise ValueError(f"{op}: expected a device index, a device or a device string, got {dev!r}")
    return dev


def set_device(device):
    """Select a CUDA device: a negative index is a no-op (as PyTorch); any other raises (no device)."""
    if _index(device, "set_device") >= 0:
        raise _no_cuda(f"cuda.set_device({device!r})")


def current_device():
    raise _no_cuda("cuda.current_device()")


def synchronize(device=None):
    raise _no_cuda("cuda.synchronize()")


def get_device_name(device=None):
    raise _no_cuda("cuda.get_device_name()")


def get_device_capability(device=None):
    raise _no_cuda("cuda.get_device_capability()")


def get_device_properties(device=None):
    raise _no_cuda("cuda.get_device_properties()")


class device:
    """``with pyengine.cuda.device(i):`` select device i for the block; a negative index or None does
    nothing, any other index raises on entering (no CUDA device)."""

    def __init__(self, device):
        self.idx = _index(device, "cuda.device")

    def __enter__(self):
        if self.idx >= 0:
            raise _no_cuda(f"cuda.device({self.idx})")
        return self

    def __exit__(self, *exc):
        return False


def empty_cache():
    """Release cached GPU memory: none is held."""


def ipc_collect():
    """Nothing to collect."""


def reset_peak_memory_stats(device=None):
    """No device memory is tracked."""


def memory_allocated(device=None):
    return 0


def max_memory_allocated(device=None):
    return 0


def memory_reserved(device=None):
    return 0


def max_memory_reserved(device=None):
    return 0


def get_rng_state(device="cuda"):
    raise _no_cuda("cuda.get_rng_state()")


def get_rng_state_all():
    return []


def set_rng_state(new_state, device="cuda"):
    raise _no_cuda("cuda.set_rng_state()")


def set_rng_state_all(new_states):
    """Set every CUDA device's generator state: there are none."""


# PyTorch's legacy CUDA tensor types: classes no tensor is an instance of; building one is a TypeError
FloatTensor, DoubleTensor, HalfTensor, BFloat16Tensor, ByteTensor, CharTensor, ShortTensor, IntTensor, \
    LongTensor, BoolTensor = _legacy.CUDA_TENSOR_TYPES
