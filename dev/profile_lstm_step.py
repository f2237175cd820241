"""Where the LSTM classifier step (bench train suite, "LSTM classifier step") spends its time, next to PyTorch.

PYTHONPATH=. python dev/profile_lstm_step.py [threads] [steps] [--torch] [--gru]
Model: Embedding(10000, 256) -> LSTM(256, 128, batch_first) -> Linear(128, 1) on h_n[-1], BCE with logits,
batch 32, length 100, Adam (bench/suites/train.py, _recurrent_classifier_step).
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

rng = np.random.default_rng(0)
batches = [(rng.integers(0, 10000, (32, 100)), rng.integers(0, 2, (32, 1)).astype(np.float32)) for _ in range(4)]


def last_state(out):
    return (out[1][0] if kind == "LSTM" else out[1])[-1]


pe.manual_seed(0)
nn = pe.nn
emb, rnn, head = nn.Embedding(10000, 256), getattr(nn, kind)(256, 128, batch_first=True), nn.Linear(128, 1)
params = list(emb.parameters()) + list(rnn.parameters()) + list(head.parameters())
opt, crit = pe.optim.Adam(params, lr=1e-3), nn.BCEWithLogitsLoss()
data = [(pe.tensor(x), pe.tensor(y)) for x, y in batches]


def step(i):
    x, y = data[i % 4]
    loss = crit(head(last_state(rnn(emb(x)))), y)
    opt.zero_grad()
    loss.backward()
    opt.step()


tstep = None
if torch is not None and "--torch" in sys.argv:
    torch.manual_seed(0)
    temb, trnn = torch.nn.Embedding(10000, 256), getattr(torch.nn, kind)(256, 128, batch_first=True)
    thead = torch.nn.Linear(128, 1)
    tparams = list(temb.parameters()) + list(trnn.parameters()) + list(thead.parameters())
    topt, tcrit = torch.optim.Adam(tparams, lr=1e-3), torch.nn.BCEWithLogitsLoss()
    tdata = [(torch.from_numpy(x), torch.from_numpy(y)) for x, y in batches]

    def tstep(i):
        x, y = tdata[i % 4]
        loss = tcrit(thead(last_state(trnn(temb(x)))), y)
        topt.zero_grad()
        loss.backward()
        topt.step()

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
tot = {"fwd": 0.0, "bwd": 0.0, "opt": 0.0}
for i in range(steps):
    x, y = data[i % 4]
    t0 = time.perf_counter()
    loss = crit(head(last_state(rnn(emb(x)))), y)
    t1 = time.perf_counter()
    opt.zero_grad()
    loss.backward()
    t2 = time.perf_counter()
    opt.step()
    t3 = time.perf_counter()
    tot["fwd"] += t1 - t0
    tot["bwd"] += t2 - t1
    tot["opt"] += t3 - t2
    for k, (s_, c) in kt.items():
        per_step[k].append(s_)  # cumulative; differenced below
timers.uninstall()
ms = 1e3 / steps
print(f"\nprofiled step: forward {tot['fwd'] * ms:.2f}  backward {tot['bwd'] * ms:.2f}  optimizer {tot['opt'] * ms:.2f} ms")
timers.print_table(steps, tot["fwd"], tot["bwd"])
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
