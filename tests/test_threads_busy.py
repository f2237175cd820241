"""The load-adapted thread count (csrc/common.cpp usable_threads): kernels use fewer threads than
set_num_threads asks for while other processes keep the cores busy, never more, and not at all when turned off."""
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
    before, adapt = pe.get_num_threads(), _C.adapt_threads()
    yield
    pe.set_num_threads(before)
    _C.set_adapt_threads(adapt)


def test_usable_threads_bounds(threads):
    for n in (1, 2, 3, 7):
        pe.set_num_threads(n)
        _C.set_adapt_threads(True)
        assert 1 <= _C.usable_threads() <= n
        assert pe.get_num_threads() == n  # the setting itself is not changed by the load
        _C.set_adapt_threads(False)
        assert _C.usable_threads() == n
    assert _C.free_cores() >= 1


def test_busy_loops_take_the_cores(threads):
    """With one busy loop per core, every core is taken: one thread, whatever else runs on the machine."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(CORES)]
    try:
        pe.set_num_threads(max(2, CORES))
        _C.set_adapt_threads(True)
        deadline = time.monotonic() + 10
        seen = []
        while time.monotonic() < deadline:  # the loops start within a few ms; a sample lasts 50 ms
            time.sleep(0.06)
            seen.append(_C.usable_threads())
            if seen[-1] == 1 and len(seen) >= 2:
                break
        assert seen[-1] == 1, seen
        # kernels give the same answers as on one thread, and as with the adaptation off
        rng = np.random.default_rng(0)
        a, b = rng.standard_normal((67, 300)), rng.standard_normal((300, 129))
        got = (pe.tensor(a) @ pe.tensor(b)).numpy()
        np.testing.assert_allclose(got, a @ b, rtol=1e-10, atol=1e-10)
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()


def test_env_turns_it_off():
    code = "import pyengine; from pyengine import _C; print(_C.adapt_threads())"
    env = dict(os.environ, PYENGINE_ADAPT_THREADS="0")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "False", out.stderr
