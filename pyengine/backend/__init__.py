"""Backends: one module per device, all with the same kernel function names.

``reference``  NumPy twins (the specification)
``cpu``        the compiled C++ core (pyengine._C)
``cuda``       (later) CuPy arrays and CUDA kernels

Ops look their kernels up with ``get(device_type)``; ``set_backend("reference")`` (or the
environment variable PYENGINE_BACKEND=reference) swaps the CPU kernels for their NumPy twins,
so any result can be checked end to end.
"""
import os

from . import reference

_cpu = None
_active = {}


def _load_cpu():
    global _cpu
    if _cpu is None:
        from . import cpu as _cpu_mod
        _cpu = _cpu_mod
    return _cpu


def set_backend(name):
    """Choose the kernels for CPU tensors: "cpu" (compiled, the default) or "reference" (NumPy)."""
    if name == "reference":
        _active["cpu"] = reference
    elif name == "cpu":
        _active["cpu"] = _load_cpu()
    else:
        raise ValueError(f"set_backend: unknown backend {name!r}; expected 'cpu' or 'reference'")


def get_backend(device_type="cpu"):
    """The backend module used for tensors on ``device_type``."""
    try:
        return _active[device_type]
    except KeyError:
        raise RuntimeError(f"no backend for device type {device_type!r}") from None


set_backend(os.environ.get("PYENGINE_BACKEND", "cpu"))
