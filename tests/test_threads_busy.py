"""The load-adapted thread count (csrc/common.cpp usable_threads): kernels use fewer threads than
set_num_threads asks for while other processes take the cores, never more, and all of them when turned off."""
import os
import subprocess
import sys
import time

import numpy as np
import pytest

import pyengine as pe
from pyengine import _C

CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


@pytest.fixture
def threads():
    before, adapt, spin = pe.get_num_threads(), _C.adapt_threads(), _C.workers_spin()
    yield
    pe.set_num_threads(before)
    _C.set_adapt_threads(adapt)
    _C.set_workers_spin(spin)


def test_usable_threads_bounds(threads):
    for n in (1, 2, 3, 7):
        pe.set_num_threads(n)
        _C.set_adapt_threads(True)
        assert 1 <= _C.usable_threads() <= n
        assert pe.get_num_threads() == n  # the setting itself does not follow the load
        _C.set_adapt_threads(False)
        assert _C.usable_threads() == n
    assert _C.busy_threads() >= 0
    before = _C.busy_min_grains()
    _C.set_busy_min_grains(0)
    assert _C.busy_min_grains() == 1
    _C.set_busy_min_grains(before)


def test_one_reading_does_not_take_a_core():
    """The window's rule (csrc/common.cpp window_busy): a count of other processes' runnable threads takes
    cores only when at least two samples of the window saw it (a kernel thread runnable for a moment, or one
    of our own workers read in mid-change, did not); the result is the largest such count."""
    assert _C.window_busy([]) == 0
    assert _C.window_busy([1]) == 0
    assert _C.window_busy([0, 1, 0, 0]) == 0
    assert _C.window_busy([3, 0, 0, 0]) == 0
    assert _C.window_busy([1, 0, 1, 0]) == 1
    assert _C.window_busy([2, 1, 0, 0]) == 1
    assert _C.window_busy([2, 0, 2, 5]) == 2
    assert _C.window_busy([4, 4, 4, 4]) == 4


def test_busy_loops_take_the_cores(threads):
    """One busy loop per core takes every core: a spinning team drops to one thread, a sleeping one keeps
    its threads (they time-share with the loops either way); results are those of one thread."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(CORES)]
    try:
        n = max(2, CORES)
        pe.set_num_threads(n)
        _C.set_adapt_threads(True)
        _C.set_workers_spin(True)
        deadline = time.monotonic() + 10
        seen = []
        while time.monotonic() < deadline:  # the loops start within ms; one sample per 50 ms
            time.sleep(0.06)
            seen.append((_C.busy_threads(), _C.usable_threads()))
            if len(seen) >= 2 and seen[-1][0] >= CORES:
                break
        assert seen[-1][0] >= CORES and seen[-1][1] == 1, seen
        rng = np.random.default_rng(0)
        a, b = rng.standard_normal((67, 300)), rng.standard_normal((300, 129))
        np.testing.assert_allclose((pe.tensor(a) @ pe.tensor(b)).numpy(), a @ b, rtol=1e-10, atol=1e-10)
        _C.set_workers_spin(False)
        assert _C.usable_threads() == n  # for a large kernel (small ones: busy_min_grains)
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()


def test_defaults_from_the_environment():
    """PYENGINE_ADAPT_THREADS=0 turns the adaptation off; pyengine's own default (a brief spin, then sleep)
    counts as sleeping workers, as PASSIVE does; libgomp's long default spin, or one that PyTorch's libgomp
    (loaded first) kept, counts as spinning."""
    show = "from pyengine import _C; print(_C.adapt_threads(), _C.workers_spin())"
    clean = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    env = dict(clean, PYENGINE_ADAPT_THREADS="0")
    out = subprocess.run([sys.executable, "-c", "import pyengine; " + show], env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.stdout.split() == ["False", "False"], out.stderr
    out = subprocess.run([sys.executable, "-c", "import torch; import pyengine; " + show], env=clean,
                         capture_output=True, text=True, timeout=300)
    assert out.stdout.split() == ["True", "True"], out.stderr
    for setting, spins in (({"OMP_WAIT_POLICY": "PASSIVE"}, "False"), ({"GOMP_SPINCOUNT": "10k"}, "False"),
                           ({"GOMP_SPINCOUNT": "20000"}, "True"), ({"GOMP_SPINCOUNT": "infinite"}, "True"),
                           ({"GOMP_SPINCOUNT": "1M"}, "True"), ({"GOMP_SPINCOUNT": "0"}, "False"),
                           ({"OMP_WAIT_POLICY": "ACTIVE"}, "True"), ({"PYENGINE_OMP_DEFAULTS": "0"}, "True")):
        out = subprocess.run([sys.executable, "-c", "import pyengine; " + show], env=dict(clean, **setting),
                             capture_output=True, text=True, timeout=300)
        assert out.stdout.split() == ["True", spins], (setting, out.stderr)
    out = subprocess.run([sys.executable, "-c", "import os, pyengine; print(os.environ.get('GOMP_SPINCOUNT'))"],
                         env=clean, capture_output=True, text=True, timeout=300)
    assert out.stdout.split() == ["3000"], out.stderr
