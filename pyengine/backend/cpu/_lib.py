"""Loads the compiled extension, with an error that says how to build it.

Before the extension (and with it libgomp) loads, GOMP_SPINCOUNT defaults to 3000: an idle OpenMP worker
spins briefly (~0.15 ms on the 2-vCPU EPYC VM) and then sleeps. libgomp's own default spins 300000 rounds
(~15 ms); on a machine shared with other work such workers fight the Python thread for cores (measured on 2
busy cores: a small GPT step took 16 ms with sleeping workers against 404 ms with libgomp's default spin).
Workers that sleep at once (OMP_WAIT_POLICY=PASSIVE, the default before) pay a wake-up at every kernel:
the 2-thread GPT step (L4 C128 T128 B16) took 72-84 ms against 68-69 ms with the brief spin, and a LayerNorm
of (2048, 128) ran slower on 2 threads than on 1 (bench/RESULTS.md, 2026-12-07). Setting OMP_WAIT_POLICY or
GOMP_SPINCOUNT yourself, or PYENGINE_OMP_DEFAULTS=0, keeps your choice. A libgomp that another library
loaded first (PyTorch imported before pyengine shares its copy) keeps the policy it read then; the kernels'
load-adapted thread count (csrc/common.cpp usable_threads) is told when its workers spin for long.

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

if os.environ.get("PYENGINE_OMP_DEFAULTS", "1") != "0" and _policy_unset:
    os.environ["GOMP_SPINCOUNT"] = "3000"  # opt out: PYENGINE_OMP_DEFAULTS=0

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
