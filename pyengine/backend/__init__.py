"""Backends: one module per device, all with the same kernel function names.

``reference``  NumPy twins (the specification)
``cpu``        the compiled C++ core (pyengine._C)
``cuda``       (later) CuPy arrays and CUDA kernels

Every backend module has ``name``, ``xp`` (its array module: NumPy, or CuPy on the GPU) and one
function per kernel (``reference.KERNELS``). Code above the backends asks for one in a single
way, ``get_backend(device)``; a Function is handed the backend of its inputs as ``self.backend``
(and its array module as ``self.xp``) before its forward runs (see autograd.Function.apply).

``set_backend("reference")`` (or the environment variable PYENGINE_BACKEND=reference) swaps the
CPU kernels for their NumPy twins, so any result can be checked end to end.
"""
import os

from . import reference

_cpu = None
_by_device = {}  # device type -> the backend module its tensors use


def _load_cpu():
    global _cpu
    if _cpu is None:
        from . import cpu as _cpu_mod
        _cpu = _cpu_mod
    return _cpu


def set_backend(name):
    """Choose the kernels for CPU tensors: "cpu" (compiled, the default) or "reference" (NumPy)."""
    if name == "reference":
        _by_device["cpu"] = reference
    elif name == "cpu":
        _by_device["cpu"] = _load_cpu()
    else:
        raise ValueError(f"set_backend: unknown backend {name!r}; expected 'cpu' or 'reference'")


def get_backend(device="cpu"):
    """The backend module used for tensors on ``device`` (a ``pyengine.device`` or its type name)."""
    try:
        return _by_device[getattr(device, "type", device)]
    except KeyError:
        raise RuntimeError(f"no backend for device {device!r}: this build of pyengine has the CPU backend "
                           "only") from None


def backend_of(*xs):
    """The backend of the device that the tensors or arrays ``xs`` live on: where an op learns which
    kernels and array module to use (Function.apply hands it to every Function as ``self.backend``).

    Every array is a NumPy array on the CPU today; a second device resolves here (and an op mixing
    devices is refused here, naming both)."""
    return _by_device["cpu"]


def xp_of(*xs):
    """The array module (NumPy, or CuPy on the GPU) of the tensors or arrays ``xs``."""
    return backend_of(*xs).xp


set_backend(os.environ.get("PYENGINE_BACKEND", "cpu"))
