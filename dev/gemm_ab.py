"""A/B of a GEMM tuning hook in one process, alternating call by call, with NumPy in the same rounds
(dev/gemm_notes.md, "Two threads, third pass").

Usage: PYTHONPATH=. python dev/gemm_ab.py HOOK THREADS ROUNDS [SHAPES]
  HOOK: a _C.set_gemm_* tuning hook, optionally with the two values to compare ("on", "off"):
  set_gemm_depth_split (True / False) or set_gemm_shared_b=4,2;
  SHAPES: names of dev/gemm_2t_bench.py's SHAPES (default all).
Cells: wall GFLOP/s best / median, and e = GFLOP per CPU-second of the process (best round): what the
threads achieve while they run, the trustworthy number on a busy machine; then the median over rounds of
the paired speed ratio on / off (wall and CPU time) and how many rounds "on" was faster. Thread adaptation is off
(PYENGINE_ADAPT_THREADS=0) so that 2 threads means 2 threads.
"""
import os
import statistics
import sys

os.environ["PYENGINE_ADAPT_THREADS"] = "0"

import numpy as np  # noqa: E402

from bench.common import Threads  # noqa: E402
from pyengine import _C  # noqa: E402
from pyengine.backend import get_backend  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
from gemm_2t_bench import SHAPES, operands, timed  # noqa: E402


def main():
    hname, _, vals = sys.argv[1].partition("=")
    hook = getattr(_C, hname)
    von, voff = (eval(v) for v in vals.split(",")) if vals else (True, False)
    th, rounds = int(sys.argv[2]), int(sys.argv[3])
    names = sys.argv[4].split(",") if len(sys.argv) > 4 else list(SHAPES)
    K = get_backend("cpu")
    rng = np.random.default_rng(0)
    default = hook(von)
    for name in names:
        a, b, opa, ta, flops = operands(name, rng)
        inner = max(1, int(2e9 / flops))
        cfg = {"on": lambda: (hook(von), K.matmul(a, b, trans_a=ta)), "off": lambda: (hook(voff), K.matmul(a, b, trans_a=ta)),
               "numpy": lambda: np.matmul(opa, b)}
        wall = {c: [] for c in cfg}
        cpu = {c: [] for c in cfg}
        with Threads(th):
            for c, f in cfg.items():
                f()
            for _ in range(rounds):
                for c, f in cfg.items():
                    f()
                    w, c_ = timed(f, inner)
                    wall[c].append(w)
                    cpu[c].append(c_)
            hook(von)
            x = K.matmul(a, b, trans_a=ta)
            hook(voff)
            same = np.array_equal(x, K.matmul(a, b, trans_a=ta))
        cells = [f"{name:24s} {th}t"]
        for c in cfg:
            cells.append(f"{c} {flops / min(wall[c]) / 1e9:4.0f}/{flops / statistics.median(wall[c]) / 1e9:4.0f} "
                         f"e{flops / min(cpu[c]) / 1e9:4.0f}")
        pw = statistics.median(y / x for x, y in zip(wall["on"], wall["off"]))
        pc = statistics.median(y / x for x, y in zip(cpu["on"], cpu["off"]))
        wins = sum(x < y for x, y in zip(wall["on"], wall["off"]))
        print(" | ".join(cells) + f" | on/off paired median: wall {pw:.3f} cpu {pc:.3f}, on faster in {wins}/{rounds}"
              f" | bits same: {same}", flush=True)
    hook(default)


if __name__ == "__main__":
    main()
