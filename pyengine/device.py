"""Devices. Every Tensor has one; each device type has one backend (pyengine.backend)."""


class device:
    """Where a tensor's memory lives: ``device("cpu")``; ``device("cuda", 0)`` once the CUDA
    backend exists."""

    __slots__ = ("type", "index")

    def __init__(self, type, index=None):
        if isinstance(type, device):
            type, index = type.type, type.index
        elif isinstance(type, str) and ":" in type:
            type, idx = type.split(":", 1)
            index = int(idx)
        if type not in ("cpu", "cuda"):
            raise RuntimeError(f"Expected one of cpu, cuda device type at start of device string: {type}")
        self.type = type
        self.index = index

    def __eq__(self, other):
        if isinstance(other, str):
            other = device(other)
        return isinstance(other, device) and self.type == other.type and (self.index or 0) == (other.index or 0)

    def __hash__(self):
        return hash((self.type, self.index or 0))

    def __repr__(self):
        return f"device(type='{self.type}')" if self.index is None else \
            f"device(type='{self.type}', index={self.index})"

    def __str__(self):
        return self.type if self.index is None else f"{self.type}:{self.index}"


CPU = device("cpu")


class NotCompiledError(AssertionError, RuntimeError):
    """Raised when a CUDA device is asked for and this build has none. PyTorch raises AssertionError
    ("Torch not compiled with CUDA enabled") there; this is that AssertionError, and a RuntimeError too (what
    pyengine raised before), so either ``except`` catches it."""


def no_cuda(what=None):
    """The error for asking ``what`` of a CUDA device on this CPU-only build (PyTorch's words, naming pyengine)."""
    return NotCompiledError("pyengine not compiled with CUDA enabled" + (f": {what}" if what else "") +
                            " (device not available: this build of pyengine has the CPU backend only)")


def as_device(d):
    """Normalise a device argument (str, device or None) and check it is available."""
    if d is None:
        return CPU
    d = d if isinstance(d, device) else device(d)
    if d.type != "cpu":
        raise no_cuda(f"cannot use device '{d}'")
    return d
