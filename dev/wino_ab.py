"""Winograd 3x3 stride-1 forward / input gradient: this build vs another build (A/B) vs PyTorch, one process.

Usage: PYTHONPATH=. python dev/wino_ab.py [--ref PATH_TO_OTHER_C.so ...] [--pass fwd|dgrad] [--rounds R]
                                          [--threads 1,2] [SHAPE ...]
  SHAPE: C,H,O (batch 8, padding 1; default 512,7,512 256,14,256 128,28,128).
Every engine runs in alternating rounds (bench.common.alternating_rounds, order reversed every other round);
prints, per shape and thread count, the median ms of each and the ratios torch / ours and refN / ours (above
1: this build is faster), plus the min and max of the per-round ratios (--ref may be given several times), and
the best (least disturbed) round of each. Thread adaptation is off
(PYENGINE_ADAPT_THREADS=0) so that "2 threads" means two threads on a busy machine too.
With PE_WINO_TRACE=<file> in the environment, this build appends its per-thread stage times there
(conv_winograd.cpp; dev/wino_trace.py runs and summarises them).
"""
import argparse
import importlib.machinery
import importlib.util
import os
import statistics
import time

os.environ.setdefault("PYENGINE_ADAPT_THREADS", "0")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.grad as G  # noqa: E402

import pyengine as pe  # noqa: E402
from pyengine import _C  # noqa: E402


def load_ref(path, i):
    loader = importlib.machinery.ExtensionFileLoader(f"pe_ref{i}._C", path)
    spec = importlib.util.spec_from_loader(f"pe_ref{i}._C", loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


def calls(mod, pas, x, w, dy, y, dx):
    one = (1, 1)
    if pas == "fwd":
        return lambda: mod.conv2d_forward(x, w, None, one, one, one, 1, y)
    return lambda: mod.conv2d_backward_input(dy, w, one, one, one, 1, dx)


def count(f, min_time=0.03):
    f()
    t0 = time.perf_counter()
    f()
    dt = time.perf_counter() - t0
    return max(1, int(min_time / max(dt, 1e-6)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ref", action="append", default=[])
    ap.add_argument("--pass", dest="pas", default="fwd", choices=["fwd", "dgrad"])
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("shapes", nargs="*", default=["512,7,512", "256,14,256", "128,28,128"])
    a = ap.parse_args()
    refs = [load_ref(path, i) for i, path in enumerate(a.ref)]
    for ref in refs:
        ref.set_adapt_threads(False)
    rng = np.random.default_rng(0)
    for sh in a.shapes:
        C, H, O = (int(v) for v in sh.split(","))
        x = rng.standard_normal((8, C, H, H)).astype(np.float32)
        w = (rng.standard_normal((O, C, 3, 3)) * 0.05).astype(np.float32)
        dy = rng.standard_normal((8, O, H, H)).astype(np.float32)
        y = np.empty((8, O, H, H), np.float32)
        dx = np.empty((8, C, H, H), np.float32)
        tx, tw, tdy = torch.tensor(x), torch.tensor(w), torch.tensor(dy)
        if a.pas == "fwd":
            tf = lambda: torch.nn.functional.conv2d(tx, tw, padding=1)  # noqa: E731
        else:
            tf = lambda: G.conv2d_input(tx.shape, tw, tdy, padding=1)  # noqa: E731
        fns = {"ours": calls(_C, a.pas, x, w, dy, y, dx), "torch": tf}
        outs = {}
        for i, ref in enumerate(refs):
            outs[f"ref{i}"] = (np.empty_like(y), np.empty_like(dx))
            fns[f"ref{i}"] = calls(ref, a.pas, x, w, dy, *outs[f"ref{i}"])
        for th in (int(t) for t in a.threads.split(",")):
            pe.set_num_threads(th)
            torch.set_num_threads(th)
            for ref in refs:
                ref.set_num_threads(th)
            names = list(fns)
            ns = {k: count(fns[k]) for k in names}
            samples = {k: [] for k in names}
            cpus = {k: [] for k in names}
            for r in range(a.rounds):
                order = names if r % 2 == 0 else names[::-1]
                for k in order:
                    if th > 1:
                        time.sleep(0.02)
                    t0, c0 = time.perf_counter(), time.thread_time()
                    for _ in range(ns[k]):
                        fns[k]()
                    samples[k].append((time.perf_counter() - t0) / ns[k])
                    cpus[k].append((time.thread_time() - c0) / ns[k])
            med = {k: statistics.median(v) * 1e3 for k, v in samples.items()}
            line = f"{a.pas} {C}->{O} {H}x{H} N8 {th}t: " + " ".join(f"{k} {med[k]:.2f}ms" for k in names)
            for other in names[1:]:
                rs = [t / o for t, o in zip(samples[other], samples["ours"])]
                line += f" | {other}/ours {med[other] / med['ours']:.2f} [{min(rs):.2f}-{max(rs):.2f}]"
            print(line, flush=True)
            best = {k: min(v) * 1e3 for k, v in samples.items()}  # the least disturbed round of each
            print("      best: " + " ".join(f"{k} {best[k]:.2f}ms" for k in names) + "".join(
                f" | {k}/ours {best[k] / best['ours']:.2f}" for k in names[1:]), flush=True)
            if th == 1:  # on one thread the calling thread's CPU time: robust to time the OS gives others
                cm = {k: statistics.median(v) * 1e3 for k, v in cpus.items()}
                line = "      cpu: " + " ".join(f"{k} {cm[k]:.2f}ms" for k in names)
                for other in names[1:]:
                    rs = [t / o for t, o in zip(cpus[other], cpus["ours"])]
                    line += f" | {other}/ours {cm[other] / cm['ours']:.2f} [{min(rs):.2f}-{max(rs):.2f}]"
                print(line, flush=True)
            mine = y if a.pas == "fwd" else dx
            for yr, dxr in outs.values():
                np.testing.assert_allclose(mine, yr if a.pas == "fwd" else dxr, rtol=1e-3,
                                           atol=1e-3 * float(np.abs(mine).max()))


if __name__ == "__main__":
    main()
