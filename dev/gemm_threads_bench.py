"""GEMM on 1 and 2 threads, pyengine vs NumPy (OpenBLAS), in one process, interleaved (dev/gemm_notes.md, "Two threads").

Usage: PYTHONPATH=. python dev/gemm_threads_bench.py [SHAPES|all] [ROUNDS] [UNITS]
  SHAPES: comma-separated names from SHAPES below (default all); ROUNDS: default 5;
  UNITS: comma-separated _C.set_gemm_shared_b values for the 2-thread pyengine runs (default 4,0:
  the shared packed B with 4 units per thread, and B packed per row block, the plan before it).
Per configuration: best / median GFLOP/s (wall clock), and "e": GFLOP per CPU-second of all the process's
threads (best round). e is what the threads achieve while they run; the wall-clock numbers also count the time a
thread waits for a core, which on a shared machine is most of it. Idle OpenMP workers sleep (OMP_WAIT_POLICY=PASSIVE,
pyengine's default), so they add no CPU time; OpenBLAS's workers spin, so its 2-thread e is low.
"""
import statistics
import sys
import time

import numpy as np
from threadpoolctl import threadpool_limits

from pyengine import _C
from pyengine.backend import get_backend

# name: (M, K, N, batch), the rows of bench/suites/gemm.py plus an LSTM step
SHAPES = {
    "1024^3": (1024, 1024, 1024, None), "2048^3": (2048, 2048, 2048, None), "4096^3": (4096, 4096, 4096, None),
    "M2048 K128 N384": (2048, 128, 384, None), "M2048 K128 N512": (2048, 128, 512, None),
    "M2048 K512 N128": (2048, 512, 128, None), "M4096 K768 N3072": (4096, 768, 3072, None),
    "M8192 K768 N768": (8192, 768, 768, None), "batched 64 x 128x64x128": (128, 64, 128, 64),
    "LSTM step 32x128x512": (32, 128, 512, None),
}


def main():
    names = list(SHAPES) if len(sys.argv) < 2 or sys.argv[1] == "all" else sys.argv[1].split(",")
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    units = [int(u) for u in sys.argv[3].split(",")] if len(sys.argv) > 3 else [4, 0]
    kernels = get_backend("cpu")
    default_units = _C.set_gemm_shared_b(4)
    cfgs = [("pe", 1, None), ("np", 1, None)] + [("pe", 2, u) for u in units] + [("np", 2, None)]
    rng = np.random.default_rng(0)
    print(f"isa {_C.isa()}; cells: best/median GFLOP/s, e = GFLOP per CPU-second; pe2uN: 2 threads, "
          f"set_gemm_shared_b(N)")
    for name in names:
        m, k, n, batch = SHAPES[name]
        lead = (batch,) if batch else ()
        a = rng.standard_normal(lead + (m, k)).astype(np.float32)
        b = rng.standard_normal(lead + (k, n)).astype(np.float32)
        flops = 2.0 * m * n * k * (batch or 1)
        inner = max(1, int(2e8 / flops))  # calls per timing: >= ~1 ms
        wall = {c: [] for c in cfgs}
        cpu = {c: [] for c in cfgs}
        for _ in range(rounds):
            for c in cfgs:
                eng, threads, u = c
                if eng == "pe":
                    _C.set_num_threads(threads)
                    if u is not None:
                        _C.set_gemm_shared_b(u)
                    f = lambda: kernels.matmul(a, b)  # noqa: E731
                else:
                    f = lambda: np.matmul(a, b)  # noqa: E731
                with threadpool_limits(threads):
                    f()
                    c0, t0 = time.process_time(), time.perf_counter()
                    for _ in range(inner):
                        f()
                    wall[c].append((time.perf_counter() - t0) / inner)
                    cpu[c].append((time.process_time() - c0) / inner)
        _C.set_gemm_shared_b(default_units)
        cells = [f"{name:24s}"]
        for c in cfgs:
            label = f"{c[0]}{c[1]}" + (f"u{c[2]}" if c[2] is not None else "")
            best, med = flops / min(wall[c]) / 1e9, flops / statistics.median(wall[c]) / 1e9
            eff = flops / max(min(cpu[c]), 1e-9) / 1e9
            cells.append(f"{label} {best:4.0f}/{med:4.0f} e{eff:4.0f}")
        print(" | ".join(cells), flush=True)


if __name__ == "__main__":
    main()
