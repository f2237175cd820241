"""PE_GEMM_TRACE (csrc/cpu/gemm_trace.h): the dev-only per-thread timing of the multi-thread GEMM drivers writes
one well-formed line per thread and call, for each traced plan, and leaves the results' bits unchanged."""
import os
import subprocess
import sys

import numpy as np

from pyengine import _C
from pyengine.backend import get_backend

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# (M, K, N, trans_a, plan on 2 threads); the plans' rules are in csrc/cpu/gemm.cpp (run)
# (210 x 700 x 300, A transposed, one row block: the per-unit plans on 2 threads, not the shared B)
CASES = [(300, 257, 190, False, "shared_b"), (96, 2053, 80, True, "depth_split"), (7, 300, 2000, False, "units"),
         (210, 700, 300, True, "units")]

CHILD = """
import sys, numpy as np
from pyengine import _C
from pyengine.backend import get_backend
cpu = get_backend("cpu")
_C.set_num_threads(int(sys.argv[1]))
rng = np.random.default_rng(0)
for m, k, n, ta in {cases}:
    a = rng.standard_normal((k, m) if ta else (m, k)).astype(np.float32)
    b = rng.standard_normal((k, n)).astype(np.float32)
    np.save(sys.argv[2] + f"/{{m}}.npy", cpu.matmul(a, b, trans_a=ta))
"""


def _run_child(tmp_path, threads, trace):
    env = dict(os.environ, PYTHONPATH=ROOT, PYENGINE_ADAPT_THREADS="0")
    env.pop("PE_GEMM_TRACE", None)
    if trace:
        env["PE_GEMM_TRACE"] = str(trace)
    code = CHILD.format(cases=[c[:4] for c in CASES])
    r = subprocess.run([sys.executable, "-c", code, str(threads), str(tmp_path)], env=env, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return {c[0]: np.load(tmp_path / f"{c[0]}.npy") for c in CASES}


def test_trace_lines_and_bits(tmp_path):
    trace = tmp_path / "trace.txt"
    traced = _run_child(tmp_path, 2, trace)
    lines = [line.split() for line in trace.read_text().splitlines()]
    plans = {}
    for f in lines:
        assert len(f) == 22, f  # plan M N K threads tid, 3 times, 6 phases wall, 6 phases CPU, units
        plan, (m, n, k, threads, tid) = f[0], map(int, f[1:6])
        start, end, cpu = map(float, f[6:9])
        phases, units = [float(x) for x in f[9:21]], int(f[21])
        # (a worker that wakes after the others took every unit runs none)
        assert 0 <= tid < threads <= 2 and 0 <= start <= end and cpu >= 0 and units >= 0
        assert min(phases) >= 0 and (phases[2] > 0 or units == 0)  # kernel time when it ran units
        plans.setdefault((plan, m, k, n), []).append(units)
    for m, k, n, _, plan in CASES:
        assert (plan, m, k, n) in plans, (plan, sorted(plans))
    # every depth chunk of 512 is one unit, run by one of the threads
    assert sum(plans[("depth_split", 96, 2053, 80)]) == (2053 + 511) // 512
    # tracing changes no bits: the same products untraced here and on 1 thread
    cpu = get_backend("cpu")
    rng = np.random.default_rng(0)
    untraced1 = _run_child(tmp_path, 1, None)
    for m, k, n, ta, _ in CASES:
        a = rng.standard_normal((k, m) if ta else (m, k)).astype(np.float32)
        b = rng.standard_normal((k, n)).astype(np.float32)
        np.testing.assert_array_equal(traced[m], cpu.matmul(a, b, trans_a=ta))
        np.testing.assert_array_equal(traced[m], untraced1[m])
    assert _C.num_threads() >= 1
