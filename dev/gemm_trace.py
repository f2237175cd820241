"""Where a multi-thread GEMM's time goes, per thread (dev/gemm_notes.md, "Two threads, third pass").

Usage: PYTHONPATH=. python dev/gemm_trace.py [THREADS] [CALLS] [SHAPES]
  THREADS: comma-separated thread counts (default 2,1); CALLS: traced calls per shape (default 5);
  SHAPES: comma-separated names of dev/gemm_2t_bench.py's SHAPES (default all).
Runs with PE_GEMM_TRACE (csrc/cpu/gemm_trace.h) pointing at a temporary file and thread adaptation off
(PYENGINE_ADAPT_THREADS=0: on a busy machine it would run the "2-thread" calls on one). Per shape, thread
count and thread, medians over the calls, in ms: start (entry to the region after the call began), end,
cpu (thread CPU time in the region; end - start - cpu = time the OS held the thread back), and the phases
(pack A, pack B, kernel, B packed privately (ownB), barrier, final sum) in thread CPU time and in wall time; per
call: GFLOP/s by wall clock and GFLOP per CPU-second of kernel time of all threads (the micro-kernels'
speed while they run, independent of waits, packing and of the time other processes take the core).
"""
import os
import sys
import tempfile

path = os.path.join(tempfile.mkdtemp(prefix="gemm_trace"), "trace.txt")
os.environ["PE_GEMM_TRACE"] = path
os.environ["PYENGINE_ADAPT_THREADS"] = "0"

import numpy as np  # noqa: E402

from pyengine import _C  # noqa: E402
from pyengine.backend import get_backend  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
from gemm_2t_bench import SHAPES, operands  # noqa: E402
from trace_lines import summary, traced_rows  # noqa: E402

COLS = ["start", "end", "cpu", "packA", "packB", "kernel", "ownB", "barrier", "sum"]


def main():
    ths = [int(t) for t in sys.argv[1].split(",")] if len(sys.argv) > 1 else [2, 1]
    calls = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    names = sys.argv[3].split(",") if len(sys.argv) > 3 else list(SHAPES)
    K = get_backend("cpu")
    rng = np.random.default_rng(0)
    for name in names:
        a, b, _, ta, flops = operands(name, rng)
        for th in ths:
            _C.set_num_threads(th)
            rows = traced_rows(path, lambda: K.matmul(a, b, trans_a=ta), calls)
            if not rows:
                print(f"{name} {th}t: no traced driver ran")
                continue
            wall, gflops, kernel, meds = summary(rows, flops)
            print(f"{name} {th}t plan {rows[0][0]}: call {wall:.2f} ms = {gflops:.0f} GFLOP/s wall; "
                  f"kernel {kernel:.0f} GFLOP per kernel CPU-second", flush=True)
            for tid, med in meds.items():
                print(f"   t{tid}: start {med[0]:.2f} end {med[1]:.2f} cpu {med[2]:.2f} (held {med[1] - med[0] - med[2]:.2f})"
                      f" | cpu: " + " ".join(f"{c} {x:.2f}" for c, x in zip(COLS[3:], med[9:15])) +
                      f" other {med[2] - sum(med[9:15]):.2f} | wall: " +
                      " ".join(f"{c} {x:.2f}" for c, x in zip(COLS[3:], med[3:9]) if x > 0) + f" | units {med[15]:g}",
                      flush=True)

if __name__ == "__main__":
    main()
