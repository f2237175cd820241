"""Top-level PyTorch names with nothing to compute on this build: ``compile``, the float32 matmul precision
setting, and the device type of ``pyengine.accelerator``. See docs/pytorch_compat.md."""
import functools

_MATMUL_PRECISIONS = ("highest", "high", "medium")
_matmul_precision = "highest"


def compile(model=None, *, fullgraph=False, dynamic=None, backend="inductor", mode=None, options=None,  # noqa: A001
            disable=False, **kwargs):
    """PyTorch's ``torch.compile`` with its eager backend: returns ``model`` (a Module or a function)
    unchanged, so ``model = pyengine.compile(model)`` runs as before. Used as a decorator with arguments
    (``@pyengine.compile(mode="max-autotune")``) it returns a decorator that does the same. pyengine's kernels
    are compiled ahead of time; there is no graph compiler (yet) to hand the model to."""
    if model is None:
        return functools.partial(compile, fullgraph=fullgraph, dynamic=dynamic, backend=backend, mode=mode,
                                 options=options, disable=disable, **kwargs)
    if not callable(model):
        raise RuntimeError(f"compile: expected a Module or a callable, got {type(model).__name__}")
    if mode is not None and options is not None:
        raise RuntimeError("Either mode or options can be specified, but both can't be specified at the same time.")
    return model


def set_float32_matmul_precision(precision):
    """PyTorch's setting (``"highest"``, ``"high"``, ``"medium"``): lets float32 matmuls use TF32 or bfloat16
    on GPUs. pyengine's CPU GEMM always computes in float32; the setting is recorded and reported only.
    An unknown value warns and changes nothing, as PyTorch."""
    global _matmul_precision
    if precision not in _MATMUL_PRECISIONS:
        import warnings
        warnings.warn(f"{precision} is not one of 'highest', 'high', or 'medium'; the current "
                      "set_float32_matmul_precision call has no effect.", UserWarning, stacklevel=2)
        return
    _matmul_precision = precision


def get_float32_matmul_precision():
    return _matmul_precision
