"""The GPT step's GEMMs (L4 H4 C128 T128 B16: M = B*T = 2048 rows) one by one: the forward x W^T + b (linear), dx = g W
and dW = g^T x of each Linear shape, and three squares; pyengine with short-rows A in place on ("after") and off
("before", _C.set_gemm_short_rows_a(False)) vs PyTorch vs NumPy, all in one process, alternating every round.
Notes: dev/gemm_notes.md, "Short depth".

Usage: PYTHONPATH=. python dev/gemm_gpt_shapes.py [THREADS] [ROUNDS]
Cells: GFLOP/s of the best round: thread CPU time on 1 thread (waiting for a core on a busy machine drops out),
wall clock on more (0.03 s pause before each block: OpenBLAS's spinning workers).
"""
import sys
import time

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from pyengine import _C
from pyengine.backend import get_backend


def rows(K, rng):
    out = []
    for IN, OUT in ((128, 384), (128, 128), (128, 512), (512, 128), (128, 65)):
        x = rng.standard_normal((2048, IN), dtype=np.float32)
        w = rng.standard_normal((OUT, IN), dtype=np.float32)
        g = rng.standard_normal((2048, OUT), dtype=np.float32)
        b = rng.standard_normal(OUT, dtype=np.float32)
        tx, tw, tg, tb = map(torch.from_numpy, (x, w, g, b))
        fl = 2 * 2048 * IN * OUT
        out += [(f"fwd x W^T + b {IN}->{OUT}", fl, lambda x=x, w=w, b=b: K.linear(x, w, b),
                 lambda tb=tb, tx=tx, tw=tw: torch.addmm(tb, tx, tw.t()), lambda x=x, w=w, b=b: x @ w.T + b),
                (f"dx = g W {IN}->{OUT}", fl, lambda g=g, w=w: K.matmul(g, w), lambda tg=tg, tw=tw: torch.mm(tg, tw),
                 lambda g=g, w=w: g @ w),
                (f"dW = g^T x {IN}->{OUT}", fl, lambda g=g, x=x: K.matmul(g, x, trans_a=True),
                 lambda tg=tg, tx=tx: torch.mm(tg.t(), tx), lambda g=g, x=x: g.T @ x)]
    for s in (64, 256, 1024):
        a = rng.standard_normal((s, s), dtype=np.float32)
        bb = rng.standard_normal((s, s), dtype=np.float32)
        ta, tbb = torch.from_numpy(a), torch.from_numpy(bb)
        out.append((f"{s}^3", 2 * s ** 3, lambda a=a, bb=bb: K.matmul(a, bb), lambda ta=ta, tbb=tbb: torch.mm(ta, tbb),
                    lambda a=a, bb=bb: a @ bb))
    return out


def main():
    th = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 11
    K = get_backend("cpu")
    _C.set_num_threads(th)
    torch.set_num_threads(th)
    clock = time.thread_time if th == 1 else time.perf_counter
    print("| shape | before GF/s | after GF/s | PyTorch | NumPy | after/before | PyTorch time / after | NumPy / after |")
    print("|---|---|---|---|---|---|---|---|")
    prev = _C.set_gemm_short_rows_a(True)
    try:
        with threadpool_limits(th):
            for name, fl, ours, tf, nf in rows(K, np.random.default_rng(0)):
                fns = [("before", lambda: (_C.set_gemm_short_rows_a(False), ours())),
                       ("after", lambda: (_C.set_gemm_short_rows_a(True), ours())), ("torch", tf), ("numpy", nf)]
                reps = max(1, int(1e8 / fl))
                best = {n: float("inf") for n, _ in fns}
                for _, f in fns:
                    f()
                for _ in range(rounds):
                    for n, f in fns:
                        if th > 1:
                            time.sleep(0.03)
                        t0 = clock()
                        for _ in range(reps):
                            f()
                        best[n] = min(best[n], (clock() - t0) / reps)
                gf = {n: fl / best[n] / 1e9 for n in best}
                print(f"| {name} | {gf['before']:.0f} | {gf['after']:.0f} | {gf['torch']:.0f} | {gf['numpy']:.0f} | "
                      f"{best['before'] / best['after']:.2f} | {best['torch'] / best['after']:.2f}x | "
                      f"{best['numpy'] / best['after']:.2f}x |", flush=True)
    finally:
        _C.set_gemm_short_rows_a(prev)


if __name__ == "__main__":
    main()
