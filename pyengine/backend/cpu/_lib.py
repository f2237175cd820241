"""Loads the compiled extension, with an error that says how to build it.

Before the extension (and with it libgomp) loads, OMP_WAIT_POLICY defaults to PASSIVE: idle OpenMP
workers sleep instead of spinning between kernels. On a machine shared with other work, spinning workers
fight the Python thread for cores; measured here on 2 busy cores, a small GPT step took 16 ms with PASSIVE
against 404 ms with libgomp's default spin (on an idle machine the difference is within 10%). Setting
OMP_WAIT_POLICY or GOMP_SPINCOUNT yourself, or PYENGINE_OMP_DEFAULTS=0, keeps your choice. A libgomp that
another library loaded first (PyTorch imported before pyengine shares its copy) keeps the policy it read then;
the kernels' load-adapted thread count (csrc/common.cpp usable_threads) is told when its workers spin.

Loading _C also raises glibc's mmap/trim thresholds (see csrc/bindings.cpp) so that the arrays a training
step frees are reused instead of returned to the OS and faulted in again; PYENGINE_MALLOC_TUNING=0 opts out.
"""
import os


def _libgomp_loaded():
    try:
        with open("/proc/self/maps") as f:
            return any("libgomp" in line for line in f)
    except OSError:  # pragma: no cover - not Linux
        return False


# A libgomp loaded before us (PyTorch imported first shares its copy) read its wait policy already.
_policy_unset = "OMP_WAIT_POLICY" not in os.environ and "GOMP_SPINCOUNT" not in os.environ
_preloaded = _policy_unset and _libgomp_loaded()

if os.environ.get("PYENGINE_OMP_DEFAULTS", "1") != "0" and "GOMP_SPINCOUNT" not in os.environ:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # opt out: PYENGINE_OMP_DEFAULTS=0

try:
    from pyengine import _C  # noqa: F401,E402
except ImportError as e:  # pragma: no cover - exercised only on a broken install
    raise ImportError(
        "pyengine's compiled core (pyengine._C) is not built. Install with `pip install .` "
        "(or `pip install -e .`), or build in place with ./dev_build.sh; "
        "or run on the NumPy twins with PYENGINE_BACKEND=reference."
    ) from e

if _preloaded:
    _C.set_workers_spin(True)  # that libgomp spins (its default): the thread-count adaptation must know


def followable(x):
    """True when the kernels can read ``x`` in place: non-negative strides that are multiples of the item
    size, the last axis contiguous (length-1 axes are never stepped along). The bindings check the same
    (check_followable in csrc/binding_utils.h); callers copy anything else once."""
    item = x.itemsize
    for d, (n, s) in enumerate(zip(x.shape, x.strides)):
        if n > 1 and (s < 0 or s % item or (d == x.ndim - 1 and s != item)):
            return False
    return True
