"""Where the stride-2 3x3 forward's time goes (the phase-plane path, csrc/cpu/conv_phase.h), per thread.

Usage: PYTHONPATH=. python dev/conv_s2_trace.py [THREADS] [CALLS]
  THREADS: comma-separated thread counts (default 1,2); CALLS: traced calls per shape (default 7).
Runs ResNet-18's three 3x3 stride-2 pad-1 rows at batch 8 with PE_GEMM_TRACE (gemm_trace.h) on and thread
adaptation off. The phase path reuses the GEMM trace's columns as: packA = W panels, packB = B blocks from
the phase planes, kernel = micro-kernel, ownB = phase-plane split, sum = copy out (barrier: unused).
Per shape and thread count, medians over the calls, in ms of thread CPU time (wall for the call): each
stage, 'other' (the thread's CPU time outside the stages), and the kernel's GFLOP per CPU-second of its own
time (useful flops: the tile overhang shows as a lower rate).
"""
import os
import sys
import tempfile

path = os.path.join(tempfile.mkdtemp(prefix="conv_s2_trace"), "trace.txt")
os.environ["PE_GEMM_TRACE"] = path
os.environ["PYENGINE_ADAPT_THREADS"] = "0"

import numpy as np  # noqa: E402

from pyengine import _C  # noqa: E402
from pyengine.backend import get_backend  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
from trace_lines import summary, traced_rows  # noqa: E402

SHAPES = [(64, 56, 128), (128, 28, 256), (256, 14, 512)]  # C, H, O
STAGES = ["packA", "packB", "kernel", "split", "-", "copy"]


def main():
    ths = [int(t) for t in sys.argv[1].split(",")] if len(sys.argv) > 1 else [1, 2]
    calls = int(sys.argv[2]) if len(sys.argv) > 2 else 7
    K = get_backend("cpu")
    rng = np.random.default_rng(0)
    for C, H, O in SHAPES:
        x = rng.standard_normal((8, C, H, H)).astype(np.float32)
        w = (rng.standard_normal((O, C, 3, 3)) * 0.05).astype(np.float32)
        b = rng.standard_normal(O).astype(np.float32)
        Ho = (H - 1) // 2 + 1
        flops = 2.0 * 8 * O * Ho * Ho * C * 9
        for th in ths:
            _C.set_num_threads(th)
            rows = traced_rows(path, lambda: K.conv2d_forward(x, w, b, (2, 2), (1, 1), (1, 1), 1, (Ho, Ho)), calls,
                               "phase_fwd")
            if not rows:
                print(f"{C}->{O} {H}x{H} {th}t: the phase path did not run")
                continue
            wall, gflops, kernel, meds = summary(rows, flops)
            print(f"{C}->{O} {H}x{H} {th}t: call {wall:.2f} ms wall = {gflops:.0f} GFLOP/s; kernel "
                  f"{kernel:.0f} GFLOP per kernel CPU-second", flush=True)
            for tid, med in meds.items():
                print(f"   t{tid}: start {med[0]:.2f} end {med[1]:.2f} cpu {med[2]:.2f} | " +
                      " ".join(f"{c} {x:.2f}" for c, x in zip(STAGES, med[9:15]) if c != "-") +
                      f" other {med[2] - sum(med[9:15]):.2f} | units {med[15]:g}", flush=True)


if __name__ == "__main__":
    main()
