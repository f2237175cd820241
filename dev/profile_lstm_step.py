"""Where the LSTM classifier step (bench train suite, "LSTM classifier step") spends its time, next to PyTorch.

PYTHONPATH=. python dev/profile_lstm_step.py [threads] [steps] [--torch] [--gru]
Model: Embedding(10000, 256) -> LSTM(256, 128, batch_first) -> Linear(128, 1) on h_n[-1], BCE with logits,
batch 32, length 100, Adam (bench/suites/train.py, recurrent_classifier).
Prints: per Function, forward and backward ms per step (dev/function_timers.py), and inside them the backend
kernels (each backend function the step calls, wrapped with a timer); with --torch, both engines' whole step
in alternating rounds (min and median ms) and torch.profiler's per-op table of PyTorch's step.
"""
import collections
import sys
import time

import numpy as np

import pyengine as pe
import function_timers as timers  # dev/ is the script's directory: on sys.path
from bench.suites.train import classifier_batches, recurrent_classifier
from pyengine.backend import cpu as K

args = [a for a in sys.argv[1:] if not a.startswith("--")]
threads = int(args[0]) if args else 1
steps = int(args[1]) if len(args) > 1 else 20
kind = "GRU" if "--gru" in sys.argv else "LSTM"
pe.set_num_threads(threads)
try:
    import torch
    torch.set_num_threads(threads)
except ImportError:
    torch = None
try:
    from threadpoolctl import threadpool_limits
    threadpool_limits(threads)
except ImportError:
    pass

batches = classifier_batches()
step = recurrent_classifier(pe, kind, batches)
tstep = recurrent_classifier(torch, kind, batches) if torch is not None and "--torch" in sys.argv else None
# whole step, alternating rounds
for i in range(3):
    step(i)
    if tstep:
        tstep(i)
rounds, per = 7, max(1, steps // 7)
ours, theirs = [], []
for r in range(rounds):
    for f, acc in ((step, ours), (tstep, theirs)):
        if f is None:
            continue
        t0 = time.perf_counter()
        for i in range(per):
            f(i)
        acc.append((time.perf_counter() - t0) / per * 1e3)
print(f"{kind} step, {threads} thread(s): pyengine min {min(ours):.2f} med {np.median(ours):.2f} ms", end="")
if theirs:
    print(f"; PyTorch min {min(theirs):.2f} med {np.median(theirs):.2f} ms; ratio (torch/ours) of medians "
          f"{np.median(theirs) / np.median(ours):.2f}x, per round {min(t / o for t, o in zip(theirs, ours)):.2f}-"
          f"{max(t / o for t, o in zip(theirs, ours)):.2f}x")
else:
    print()

# per Function and per backend kernel
kt = collections.defaultdict(lambda: [0.0, 0])
per_step = collections.defaultdict(list)  # kernel -> its ms in each profiled step (min over steps: the quiet value)


def wrap(name):
    f = getattr(K, name)

    def timed(*a, **k):
        t0 = time.perf_counter()
        try:
            return f(*a, **k)
        finally:
            r = kt[name]
            r[0] += time.perf_counter() - t0
            r[1] += 1
    setattr(K, name, timed)


for name in K.KERNELS:
    wrap(name)
timers.install()
step(0)
timers.fwd.clear(), timers.bwd.clear(), kt.clear()
t_all = 0.0
for i in range(steps):
    t0 = time.perf_counter()
    step(i)
    t_all += time.perf_counter() - t0
    for k, (s_, c) in kt.items():
        per_step[k].append(s_)  # cumulative; differenced below
timers.uninstall()
ms = 1e3 / steps
sf, sb = (sum(v[0] for v in d.values()) for d in (timers.fwd, timers.bwd))
print(f"\nprofiled step: {t_all * ms:.2f} ms, of which Functions' forward {sf * ms:.2f}, backward {sb * ms:.2f}; "
      f"the rest (optimizer, engine) {(t_all - sf - sb) * ms:.2f}")
timers.print_table(steps, sf, sb)
print(f"\n{'backend kernel':28s} {'calls':>6s} {'mean ms':>8s} {'min ms':>8s} {'med ms':>8s}")
for k, (s, c) in sorted(kt.items(), key=lambda kv: -kv[1][0]):
    cum = np.array(per_step[k])
    d = np.diff(np.concatenate([[0.0], cum])) * 1e3
    print(f"{k:28s} {c // steps:6d} {s * ms:8.2f} {d.min():8.2f} {np.median(d):8.2f}")

if tstep:
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for i in range(steps):
            tstep(i)
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25))
