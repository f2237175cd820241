"""Where a training step's time goes on a busy machine (issue 16 item 5; notes in dev/busy_notes.md).

pyengine's GPT step (4x128, T64, B12, AdamW) on 2 threads, alone and beside N pure busy loops, in rounds that
alternate the conditions; for each thread mode (2 threads with the adaptation off, 1 thread, adapted with each
--grains value as busy_min_grains): ms per
step, context switches per step (voluntary: a thread went to sleep, e.g. an OpenMP worker between kernels;
involuntary: the scheduler took the core away), and with --profile the kernels (pyengine.profiler's
``cpu::*`` events) whose time grows the most under load.

    PYTHONPATH=. python dev/busy_probe.py [--busy 1] [--rounds 5] [--steps 8] [--grains 1 16 128] [--profile]

(PYENGINE_OMP_DEFAULTS=0 with OMP_WAIT_POLICY unset: libgomp's default, spinning workers.)
"""
import argparse
import collections
import os
import statistics
import subprocess
import sys
import time

import numpy as np

import pyengine as pe  # first: pyengine's OpenMP defaults (a brief spin), as in `pyengine train`
from pyengine import _C, lm
from pyengine.models.gpt import GPT, GPTConfig


def ctx_switches():
    vol = inv = 0
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/status") as f:
                for line in f:
                    if line.startswith("voluntary_ctxt_switches"):
                        vol += int(line.split()[1])
                    elif line.startswith("nonvoluntary_ctxt_switches"):
                        inv += int(line.split()[1])
        except OSError:
            pass
    return vol, inv


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--busy", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--grains", type=int, nargs="*", default=[16],
                    help="busy_min_grains values to try with the adaptation on")
    args = ap.parse_args()
    cfg = GPTConfig(vocab_size=65, block_size=64, n_layer=4, n_head=4, n_embd=128, dropout=0.0, bias=False,
                    gelu="none")
    pe.manual_seed(0)
    model = GPT(cfg)
    opt = lm.make_optimizer(model, 1e-3, 0.1)
    rng = np.random.default_rng(0)
    data = [(pe.tensor(rng.integers(0, 65, (12, 64))), pe.tensor(rng.integers(0, 65, (12, 64)))) for _ in range(4)]

    def step(i):
        _, loss = model(*data[i % 4])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    modes = {"2 threads, adaptation off": (2, False, 16), "1 thread": (1, False, 16)}
    for g in args.grains:
        modes[f"2 threads, adapted, busy_min_grains {g}"] = (2, True, g)
    for i in range(3):
        step(i)
    res = collections.defaultdict(list)
    for r in range(args.rounds):
        for cond in (["alone", "busy"] if r % 2 == 0 else ["busy", "alone"]):
            procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
                     for _ in range(args.busy if cond == "busy" else 0)]
            time.sleep(0.3 if procs else 0.0)
            try:
                for name, (n, adapt, grains) in (modes.items() if r % 2 == 0 else reversed(modes.items())):
                    pe.set_num_threads(n)
                    _C.set_adapt_threads(adapt)
                    _C.set_busy_min_grains(grains)
                    c0 = ctx_switches()
                    t0 = time.perf_counter()
                    for i in range(args.steps):
                        step(i)
                    dt = (time.perf_counter() - t0) / args.steps
                    c1 = ctx_switches()
                    res[name, cond].append((dt, (c1[0] - c0[0]) / args.steps, (c1[1] - c0[1]) / args.steps))
            finally:
                for p in procs:
                    p.kill()
                    p.wait()
        print(f"round {r + 1}: " + "; ".join(f"{k[0]} {k[1]} {1e3 * v[-1][0]:.1f}" for k, v in res.items()),
              flush=True)
    print(f"\nload now: {open('/proc/loadavg').read().strip()}; {args.busy} busy loop(s) in 'busy'")
    print("| mode | alone ms | busy ms | slowdown (medians) | per round | ctx vol/inv per step alone | busy |")
    print("|---|---|---|---|---|---|---|")
    for name in modes:
        a, b = res[name, "alone"], res[name, "busy"]
        ma, mb = statistics.median(x[0] for x in a), statistics.median(x[0] for x in b)
        pr = [y[0] / x[0] for x, y in zip(a, b)]
        cs = lambda v: f"{statistics.median(x[1] for x in v):.0f}/{statistics.median(x[2] for x in v):.0f}"  # noqa
        print(f"| {name} | {1e3 * ma:.1f} | {1e3 * mb:.1f} | {mb / ma:.2f}x | {min(pr):.2f}-{max(pr):.2f}x "
              f"| {cs(a)} | {cs(b)} |")

    if args.profile:
        from pyengine.profiler import profile
        pe.set_num_threads(2)
        _C.set_adapt_threads(False)
        totals = {}
        for cond in ("alone", "busy"):
            procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
                     for _ in range(args.busy if cond == "busy" else 0)]
            time.sleep(0.3 if procs else 0.0)
            try:
                with profile() as prof:
                    for i in range(args.steps):
                        step(i)
            finally:
                for p in procs:
                    p.kill()
                    p.wait()
            totals[cond] = {e.key: (e.count, e.self_cpu_time_total) for e in prof.key_averages()
                            if e.key.startswith("cpu::")}
        rows = sorted(totals["busy"], key=lambda k: totals["alone"].get(k, (0, 0))[1] - totals["busy"][k][1])
        print("\nkernels, 2 threads, adaptation off: us per step alone -> busy (calls per step)")
        for k in rows[:15]:
            ca, ta = totals["alone"].get(k, (0, 0.0))
            cb, tb = totals["busy"][k]
            print(f"  {k:40s} {ta / args.steps:9.0f} -> {tb / args.steps:9.0f}  ({cb / args.steps:.0f} calls)")
    _C.set_adapt_threads(True)
    _C.set_busy_min_grains(16)


if __name__ == "__main__":
    main()
