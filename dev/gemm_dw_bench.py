"""The GPT's weight-gradient GEMMs dW = X^T dY (dev/gemm_notes.md, "Weight-gradient shapes"): pyengine with the
depth split (run_depth_split) on and off vs NumPy (OpenBLAS) vs PyTorch, in one process, alternating call by call.

Usage: PYTHONPATH=. python dev/gemm_dw_bench.py [THREADS] [ROUNDS] [MxKxN,...]
Cells: best/median GFLOP/s per CPU-second (thread_time on 1 thread, process_time on more: idle OpenMP workers
sleep, OpenBLAS's and PyTorch's spin), then the same by wall clock.
"""
import sys
import time

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from pyengine import _C
from pyengine.backend import get_backend

SHAPES = [(128, 2048, 128), (128, 2048, 384), (128, 2048, 512), (512, 2048, 128), (384, 2048, 384),
          (384, 2048, 1152), (384, 2048, 1536), (1536, 2048, 384)]


def main():
    threads = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 9
    shapes = ([tuple(int(x) for x in s.split("x")) for s in sys.argv[3].split(",")] if len(sys.argv) > 3
              else SHAPES)
    kernels = get_backend("cpu")
    _C.set_num_threads(threads)
    torch.set_num_threads(threads)
    before = _C.set_gemm_depth_split(False)

    def ours(split):
        def f(a, b):
            _C.set_gemm_depth_split(split)
            kernels.matmul(a, b, trans_a=True)
        return f

    variants = {"split": ours(True), "rows": ours(False), "numpy": lambda a, b: np.matmul(a.T, b),
                "torch": lambda a, b: torch.matmul(torch.from_numpy(a).T, torch.from_numpy(b))}
    clock = time.thread_time if threads == 1 else time.process_time
    rng = np.random.default_rng(0)
    try:
        with threadpool_limits(threads):
            for (m, k, n) in shapes:
                a = rng.standard_normal((k, m)).astype(np.float32)
                b = rng.standard_normal((k, n)).astype(np.float32)
                flops = 2.0 * m * n * k
                inner = max(1, int(1e8 / flops))
                cpu = {v: [] for v in variants}
                wall = {v: [] for v in variants}
                for r in range(rounds):
                    items = list(variants.items())
                    for name, f in (items if r % 2 == 0 else items[::-1]):
                        f(a, b)
                        c0, w0 = clock(), time.perf_counter()
                        for _ in range(inner):
                            f(a, b)
                        cpu[name].append((clock() - c0) / inner)
                        wall[name].append((time.perf_counter() - w0) / inner)

                def cells(d):
                    return "  ".join(f"{v} {flops / min(t) / 1e9:.0f}/{flops / np.median(t) / 1e9:.0f}"
                                     for v, t in d.items())
                print(f"M{m} N{n} K{k} {threads}t: cpu {cells(cpu)} | wall {cells(wall)}", flush=True)
    finally:
        _C.set_gemm_depth_split(before)


if __name__ == "__main__":
    main()
