"""GEMM on 2 threads (and 1), pyengine vs NumPy (OpenBLAS), interleaved in one process (dev/gemm_notes.md,
"Two threads, third pass").

Usage: PYTHONPATH=. python dev/gemm_2t_bench.py [THREADS] [ROUNDS] [SHAPES]
  THREADS: comma-separated thread counts (default 2,1); ROUNDS: default 5 (4096^3: at most 3);
  SHAPES: comma-separated names from SHAPES (default all).
Per shape and thread count: best / median wall GFLOP/s of ours and NumPy, ratio ours/NumPy of the best and of
the medians, ours as % of the live probe's peak for that thread count (on a busy machine the probe reads low too).
"""
import statistics
import sys
import time

import numpy as np

from bench.common import Threads
from pyengine import _C
from pyengine.backend import get_backend

# name: (M, K, N, trans_a)
SHAPES = {
    "1024^3": (1024, 1024, 1024, False), "2048^3": (2048, 2048, 2048, False),
    "4096^3": (4096, 4096, 4096, False), "M4096 K768 N3072": (4096, 768, 3072, False),
    "M8192 K768 N768": (8192, 768, 768, False), "dW M384 N1152 K2048 TN": (384, 2048, 1152, True),
    "dW M384 N384 K2048 TN": (384, 2048, 384, True),
}


def main():
    ths = [int(t) for t in sys.argv[1].split(",")] if len(sys.argv) > 1 else [2, 1]
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    names = sys.argv[3].split(",") if len(sys.argv) > 3 else list(SHAPES)
    K = get_backend("cpu")
    peak = {t: _C.probe_peak_gflops(t) for t in ths}
    print("probe peak now: " + ", ".join(f"{t}t {p:.0f}" for t, p in peak.items()), flush=True)
    rng = np.random.default_rng(0)
    for name in names:
        m, k, n, ta = SHAPES[name]
        a = rng.standard_normal((k, m) if ta else (m, k)).astype(np.float32)
        b = rng.standard_normal((k, n)).astype(np.float32)
        opa = a.T if ta else a
        flops = 2.0 * m * n * k
        inner = max(1, int(4e9 / flops))
        r = min(rounds, 3) if m * n * k >= 2 ** 36 else rounds
        for th in ths:
            with Threads(th):
                fs = [lambda: K.matmul(a, b, trans_a=ta), lambda: np.matmul(opa, b)]
                for f in fs:
                    f()
                ts = [[], []]
                for _ in range(r):
                    for i, f in enumerate(fs):
                        t0 = time.perf_counter()
                        for _ in range(inner):
                            f()
                        ts[i].append((time.perf_counter() - t0) / inner)
            bo, bn = flops / min(ts[0]) / 1e9, flops / min(ts[1]) / 1e9
            mo, mn = flops / statistics.median(ts[0]) / 1e9, flops / statistics.median(ts[1]) / 1e9
            print(f"{name:24s} {th}t ours {bo:5.0f}/{mo:5.0f} numpy {bn:5.0f}/{mn:5.0f} ratio best {bo / bn:.2f} "
                  f"med {mo / mn:.2f}  {100 * bo / peak[th]:3.0f}% of probe", flush=True)


if __name__ == "__main__":
    main()
