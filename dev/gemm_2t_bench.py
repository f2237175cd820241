"""GEMM on 2 threads (and 1), pyengine vs NumPy (OpenBLAS), interleaved in one process (dev/gemm_notes.md,
"Two threads, third pass").

Usage: PYTHONPATH=. python dev/gemm_2t_bench.py [THREADS] [ROUNDS] [SHAPES] [GAP]
  THREADS: comma-separated thread counts (default 2,1); ROUNDS: default 5 (4096^3: at most 3);
  SHAPES: comma-separated names from SHAPES (default: the brief's seven, DEFAULT).
  GAP: seconds slept before each timed batch (default 0.3), so that neither engine's batch starts while the other's
  idle workers still spin: OpenBLAS's worker polls for ~0.12 s of CPU after each call, which on 2 vCPUs leaves
  our 2 threads short of a core (2 threads read 0.70-0.86x NumPy with GAP 0 and 0.93-1.67x with 0.3, same build,
  alternating; dev/gemm_notes.md, "Two threads: nothing waits on a peer"). bench/common.py's alternating_rounds
  pauses SETTLE_S (0.15 s) for the same reason; this script had no pause before.
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
    # not in DEFAULT: more shapes with one row block on 2 threads (dev/gemm_notes.md, "third pass")
    "dW M384 N1536 K2048 TN": (384, 2048, 1536, True), "dW M1536 N384 K2048 TN": (1536, 2048, 384, True),
    "M2048 K128 N384": (2048, 128, 384, False), "M2048 K128 N512": (2048, 128, 512, False),
    "M2048 K512 N128": (2048, 512, 128, False), "512^3": (512, 512, 512, False),
    "M768 K768 N768": (768, 768, 768, False), "M512 K2048 N2048": (512, 2048, 2048, False),
    "dW M768 N3072 K2048 TN": (768, 2048, 3072, True),
    "M2048 K1536 N384": (2048, 1536, 384, False),  # the large GPT step's dx of mlp c_proj
    # the LSTM classifier step's (B 32, T 100, I 256, H 128): input projection, dx, dW_ih, dW_hh
    "M3200 K256 N512": (3200, 256, 512, False), "M3200 K512 N256": (3200, 512, 256, False),
    "dW M512 N256 K3200 TN": (512, 3200, 256, True), "dW M512 N128 K3200 TN": (512, 3200, 128, True),
}
DEFAULT = list(SHAPES)[:7]


def operands(name, rng):
    """(a, b, op(a), trans_a, flops) of a SHAPES entry, float32 random."""
    m, k, n, ta = SHAPES[name]
    a = rng.standard_normal((k, m) if ta else (m, k)).astype(np.float32)
    b = rng.standard_normal((k, n)).astype(np.float32)
    return a, b, (a.T if ta else a), ta, 2.0 * m * n * k


def timed(f, inner):
    """(wall, process CPU) seconds per call of `inner` calls of f."""
    c0, t0 = time.process_time(), time.perf_counter()
    for _ in range(inner):
        f()
    return (time.perf_counter() - t0) / inner, (time.process_time() - c0) / inner


def main():
    ths = [int(t) for t in sys.argv[1].split(",")] if len(sys.argv) > 1 else [2, 1]
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    names = sys.argv[3].split(",") if len(sys.argv) > 3 and sys.argv[3] else DEFAULT
    gap = float(sys.argv[4]) if len(sys.argv) > 4 else 0.3
    K = get_backend("cpu")
    peak = {t: _C.probe_peak_gflops(t) for t in ths}
    print("probe peak now: " + ", ".join(f"{t}t {p:.0f}" for t, p in peak.items()), flush=True)
    rng = np.random.default_rng(0)
    for name in names:
        a, b, opa, ta, flops = operands(name, rng)
        inner = max(1, int(4e9 / flops))
        r = min(rounds, 3) if flops >= 2 ** 37 else rounds
        for th in ths:
            with Threads(th):
                fs = [lambda: K.matmul(a, b, trans_a=ta), lambda: np.matmul(opa, b)]
                for f in fs:
                    f()
                ts = [[], []]
                for _ in range(r):
                    for i, f in enumerate(fs):
                        if gap:
                            time.sleep(gap)
                        ts[i].append(timed(f, inner)[0])
            bo, bn = flops / min(ts[0]) / 1e9, flops / min(ts[1]) / 1e9
            mo, mn = flops / statistics.median(ts[0]) / 1e9, flops / statistics.median(ts[1]) / 1e9
            print(f"{name:24s} {th}t ours {bo:5.0f}/{mo:5.0f} numpy {bn:5.0f}/{mn:5.0f} ratio best {bo / bn:.2f} "
                  f"med {mo / mn:.2f}  {100 * bo / peak[th]:3.0f}% of probe", flush=True)


if __name__ == "__main__":
    main()
