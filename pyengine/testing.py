"""Helpers for comparing arrays and tensors in tests (like torch.testing), and central differences."""
import numpy as np

# Sizes that catch edge cases in kernels: 1, primes, and values just below/at/above
# the SIMD widths (8 floats = AVX2, 16 = AVX-512) and the kernels' block sizes.
ODD_SIZES = (1, 2, 3, 5, 7, 8, 9, 13, 15, 16, 17, 31, 32, 33, 47, 63, 64, 65, 97, 127, 129)

# Default tolerances by dtype, scaled to the precision of the type.
_TOL = {np.dtype(np.float32): (2e-5, 1e-5), np.dtype(np.float64): (1e-9, 1e-11),
        np.dtype(np.float16): (1e-3, 1e-3)}


def tolerances(dtype):
    """(rtol, atol) for comparing results computed in ``dtype``."""
    return _TOL.get(np.dtype(dtype), (0.0, 0.0))


def to_numpy(t):
    """A pyengine tensor, a PyTorch tensor (on the CPU), an array or a number as a NumPy array (detached)."""
    if hasattr(t, "detach"):
        t = t.detach()
        return t.numpy() if hasattr(t, "numpy") else np.asarray(t)
    return np.asarray(t)


def assert_close(actual, expected, rtol=None, atol=None, dtype=None, msg=""):
    """Assert |actual - expected| <= atol + rtol * |expected| elementwise (NaNs must match).

    Accepts NumPy arrays, Tensors (anything np.asarray takes), numbers. Tolerances default to
    the dtype's (``dtype`` or that of ``actual``); shapes must be equal.
    """
    a = np.asarray(actual)
    e = np.asarray(expected)
    if a.shape != e.shape:
        raise AssertionError(f"{msg}shape mismatch: actual {a.shape} vs expected {e.shape}")
    d_rtol, d_atol = tolerances(dtype if dtype is not None else a.dtype)
    rtol = d_rtol if rtol is None else rtol
    atol = d_atol if atol is None else atol
    np.testing.assert_allclose(a, e, rtol=rtol, atol=atol, equal_nan=True, err_msg=msg)


def numeric_grad(f, arr, eps=1e-6):
    """Central differences of the scalar ``f()`` with respect to every element of ``arr``, which is perturbed
    in place (and restored): g[k] = (f(arr[k] + eps) - f(arr[k] - eps)) / (2 eps). Use float64."""
    g = np.zeros_like(arr)
    for k in np.ndindex(arr.shape):
        old = arr[k]
        arr[k] = old + eps
        lp = f()
        arr[k] = old - eps
        lm = f()
        arr[k] = old
        g[k] = (lp - lm) / (2 * eps)
    return g


def results_on_threads(run, counts=(1, 2, 3)):
    """[run() on each thread count in ``counts``], with the load-adaptive thread count off (on a busy machine
    it could run every count on one thread and hide a result that depends on the threads); the thread
    settings are restored afterwards. For tests that a kernel gives the same bits whatever the threads."""
    from . import _C
    before, adapt = _C.num_threads(), _C.adapt_threads()
    _C.set_adapt_threads(False)
    try:
        results = []
        for n in counts:
            _C.set_num_threads(n)
            results.append(run())
        return results
    finally:
        _C.set_num_threads(before)
        _C.set_adapt_threads(adapt)
