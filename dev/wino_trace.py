"""Where a Winograd forward / input-gradient call's time goes, per thread and stage (dev/conv_winograd_notes.md).

Usage: PYTHONPATH=. python dev/wino_trace.py [--pass fwd|dgrad] [--calls N] [--threads 1,2] [SHAPE ...]
  SHAPE: C,H,O (batch 8, padding 1; default 512,7,512).
Runs with PE_WINO_TRACE (conv_winograd.cpp) pointing at a temporary file and thread adaptation off. Per shape,
thread count and thread: medians over the calls, in ms, of the call's wall time and of the thread's time in
the filter (weight) transform, input transform, GEMMs and output transform, wall and (in brackets) thread CPU
time; "rest" = total - the thread's stages (waiting at the ends of the parallel loops, allocation).
"""
import argparse
import os
import statistics
import tempfile

path = os.path.join(tempfile.mkdtemp(prefix="wino_trace"), "trace.txt")
os.environ["PE_WINO_TRACE"] = path
os.environ["PYENGINE_ADAPT_THREADS"] = "0"

import numpy as np  # noqa: E402

import pyengine as pe  # noqa: E402
from pyengine import _C  # noqa: E402

STAGES = ["filter", "input", "gemm", "output"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pass", dest="pas", default="fwd", choices=["fwd", "dgrad"])
    ap.add_argument("--calls", type=int, default=9)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("shapes", nargs="*", default=["512,7,512"])
    a = ap.parse_args()
    rng = np.random.default_rng(0)
    one = (1, 1)
    for sh in a.shapes:
        C, H, O = (int(v) for v in sh.split(","))
        x = rng.standard_normal((8, C, H, H)).astype(np.float32)
        w = (rng.standard_normal((O, C, 3, 3)) * 0.05).astype(np.float32)
        dy = rng.standard_normal((8, O, H, H)).astype(np.float32)
        y = np.empty((8, O, H, H), np.float32)
        dx = np.empty((8, C, H, H), np.float32)
        for th in (int(t) for t in a.threads.split(",")):
            pe.set_num_threads(th)
            f = ((lambda: _C.conv2d_forward(x, w, None, one, one, one, 1, y)) if a.pas == "fwd"
                 else (lambda: _C.conv2d_backward_input(dy, w, one, one, one, 1, dx)))
            f()
            f()
            open(path, "w").close()
            for _ in range(a.calls):
                f()
            rows = {}
            plan = "?"
            for line in open(path):
                p = line.split()
                plan = p[1]
                tid = int(p[8])
                vals = [float(v) / 1e3 for v in p[9:18]]
                rows.setdefault(tid, []).append(vals)
            print(f"{a.pas} {C}->{O} {H}x{H} N8 {th}t plan {plan} ({a.calls} calls, ms, wall [cpu])")
            for tid in sorted(rows):
                r = rows[tid]
                med = [statistics.median(col) for col in zip(*r)]
                total = med[0]
                stages = med[1:5]
                cpu = med[5:9]
                rest = total - sum(stages)
                print(f"  t{tid} total {total:6.2f} " + " ".join(
                    f"{n} {s:5.2f} [{c:5.2f}]" for n, s, c in zip(STAGES, stages, cpu)) + f" rest {rest:5.2f}")


if __name__ == "__main__":
    main()
