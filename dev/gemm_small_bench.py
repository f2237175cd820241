"""Small GEMMs on 1 thread: pyengine vs NumPy (OpenBLAS) vs PyTorch, and optionally a baseline build of
pyengine's _C (another .so file, loaded as a second module) in the same process.

    PYTHONPATH=. python dev/gemm_small_bench.py [ROUNDS] [--base /path/to/_C.so] [--only SUBSTR]

Every engine runs the same call in interleaved rounds (the order reversed every other round); each sample is
~2 ms of back-to-back calls; printed: best and median microseconds per call, and the NumPy / ours ratios (best,
median), > 1 = ours faster. `set_gemm_small(False)` (the packed path) is a column of its own when the build has it.
"""
import argparse
import importlib.machinery
import importlib.util
import statistics
import time

import numpy as np

import pyengine as pe
from pyengine import _C

try:
    import torch
except ImportError:  # pragma: no cover
    torch = None
try:
    from threadpoolctl import threadpool_limits
except ImportError:  # pragma: no cover
    threadpool_limits = None


def load_base(path):
    loader = importlib.machinery.ExtensionFileLoader("gsmall_base._C", path)
    spec = importlib.util.spec_from_file_location("gsmall_base._C", path, loader=loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    mod.set_num_threads(1)
    return mod


CASES = [  # name, m, k, n, trans_a, trans_b, dtype, batch
    *[(f"{s}^3", s, s, s, False, False, np.float32, None) for s in (8, 16, 32, 48, 64, 80, 96, 128, 192, 256)],
    *[(f"{s}^3", s, s, s, False, False, np.float32, None) for s in (65, 67, 97)],
    ("160^3", 160, 160, 160, False, False, np.float32, None),
    ("M256 K256 N128", 256, 256, 128, False, False, np.float32, None),
    ("M64 K64 N1024", 64, 64, 1024, False, False, np.float32, None),
    ("M1024 K64 N64", 1024, 64, 64, False, False, np.float32, None),
    ("M64 K1024 N64", 64, 1024, 64, False, False, np.float32, None),
    ("64^3 NT", 64, 64, 64, False, True, np.float32, None),
    ("64^3 TN", 64, 64, 64, True, False, np.float32, None),
    ("64^3 TT", 64, 64, 64, True, True, np.float32, None),
    ("97^3 TN", 97, 97, 97, True, False, np.float32, None),
    ("batched 64 x 128x64x128", 128, 64, 128, False, False, np.float32, 64),
    ("batched 32 x 64^3", 64, 64, 64, False, False, np.float32, 32),
    ("32^3 f64", 32, 32, 32, False, False, np.float64, None),
    ("64^3 f64", 64, 64, 64, False, False, np.float64, None),
    ("97^3 f64", 97, 97, 97, False, False, np.float64, None),
    ("128^3 f64", 128, 128, 128, False, False, np.float64, None),
]


def bench(fns, rounds, sample_s=0.002):
    for f in fns:
        f()
    counts = []
    for f in fns:
        n = 1
        while True:
            t0 = time.perf_counter()
            for _ in range(n):
                f()
            if time.perf_counter() - t0 >= sample_s or n >= 1 << 14:
                break
            n *= 2
        counts.append(n)
    samples = [[] for _ in fns]
    for r in range(rounds):
        order = range(len(fns)) if r % 2 == 0 else reversed(range(len(fns)))
        for i in order:
            f, n = fns[i], counts[i]
            t0 = time.perf_counter()
            for _ in range(n):
                f()
            samples[i].append((time.perf_counter() - t0) / n)
    return [(min(s), statistics.median(s)) for s in samples]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("rounds", nargs="?", type=int, default=15)
    ap.add_argument("--base", default=None)
    ap.add_argument("--only", default=None)
    ap.add_argument("--no-torch", action="store_true")
    args = ap.parse_args()
    pe.set_num_threads(1)
    if threadpool_limits is not None:
        threadpool_limits(1)
    use_torch = torch is not None and not args.no_torch
    if use_torch:
        torch.set_num_threads(1)
    base = load_base(args.base) if args.base else None
    has_switch = hasattr(_C, "set_gemm_small")
    rng = np.random.default_rng(0)
    names = ["ours"] + (["packed"] if has_switch else []) + (["base"] if base else []) + ["numpy"] + \
        (["torch"] if use_torch else [])
    print(f"isa {_C.isa()}, 1 thread, {args.rounds} rounds; us per call best/median; ratio = numpy/ours, "
          f"torch/ours (best, median)")
    for name, m, k, n, ta, tb, dt, batch in CASES:
        if args.only and args.only not in name:
            continue
        lead = (batch,) if batch else ()
        # the stored operands: op(a) = a.T when ta (and b likewise)
        a = rng.standard_normal(lead + ((k, m) if ta else (m, k))).astype(dt)
        b = rng.standard_normal(lead + ((n, k) if tb else (k, n))).astype(dt)
        opa, opb = (np.swapaxes(x, -1, -2) if t else x for x, t in ((a, ta), (b, tb)))
        ref = np.matmul(opa.astype(np.float64), opb.astype(np.float64))
        tol = 1e-3 * np.sqrt(k) if dt == np.float32 else 1e-9 * np.sqrt(k)
        assert np.allclose(_C.matmul(a, b, ta, tb), ref, rtol=1e-3, atol=tol), name
        fns = [lambda: _C.matmul(a, b, ta, tb)]
        if has_switch:
            def packed():
                _C.set_gemm_small(False)
                _C.matmul(a, b, ta, tb)
                _C.set_gemm_small(True)
            fns.append(packed)
        if base:
            fns.append(lambda: base.matmul(a, b, ta, tb))
        fns.append(lambda: np.matmul(opa, opb))
        if use_torch:
            xa, xb = torch.from_numpy(opa), torch.from_numpy(opb)
            fns.append(lambda: torch.matmul(xa, xb))
        res = bench(fns, args.rounds)
        d = dict(zip(names, res))
        flops = 2.0 * m * n * k * (batch or 1)
        cols = "  ".join(f"{nm} {b * 1e6:7.2f}/{md * 1e6:7.2f}" for nm, (b, md) in d.items())
        o = d["ours"]
        rat = f"np/ours {d['numpy'][0] / o[0]:.2f}/{d['numpy'][1] / o[1]:.2f}"
        if use_torch:
            rat += f"  torch/ours {d['torch'][0] / o[0]:.2f}/{d['torch'][1] / o[1]:.2f}"
        if base:
            rat += f"  base/ours {d['base'][0] / o[0]:.2f}/{d['base'][1] / o[1]:.2f}"
        print(f"{name:24s} {flops / o[0] / 1e9:6.1f} GF/s  {cols}  {rat}", flush=True)


if __name__ == "__main__":
    main()
