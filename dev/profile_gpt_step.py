"""Where the GPT training step (bench train: pyengine.models.GPT + AdamW) spends its time, per Function kind,
forward and backward, next to torch.profiler's self CPU time of the PyTorch twin, same process.

PYTHONPATH=. python dev/profile_gpt_step.py [threads] [steps] [--large] [--no-torch]
The step: small = L4 H4 C128 T128 B16, --large = L6 H6 C384 T256 B8 (bench/suites/train.py GPT_SHAPES).
Timers wrap Function.apply (forward incl. node building) and each class's backward; 'other' is the rest
(engine walk, zero_grad, non-Function Python). The optimizer is timed as one row.
"""
import collections
import sys
import time

import numpy as np

import pyengine as pe
from pyengine import autograd, lm
from bench.suites.train import GPT_SHAPES, _gpt_config

args = [a for a in sys.argv[1:] if not a.startswith("--")]
threads = int(args[0]) if args else 1
steps = int(args[1]) if len(args) > 1 else 5
shape = GPT_SHAPES["large" if "--large" in sys.argv else "small"]
pe.set_num_threads(threads)

fwd = collections.defaultdict(lambda: [0.0, 0])
bwd = collections.defaultdict(lambda: [0.0, 0])
depth = [0]
orig_apply = autograd.Function.apply.__func__


def timed_apply(cls, *a):
    if depth[0]:
        return orig_apply(cls, *a)
    depth[0] += 1
    t0 = time.perf_counter()
    try:
        return orig_apply(cls, *a)
    finally:
        r = fwd[cls.__name__]
        r[0] += time.perf_counter() - t0
        r[1] += 1
        depth[0] -= 1


def wrap_backward(cls):
    ob = cls.__dict__.get("backward")
    if ob is None or getattr(ob, "_timed", False):
        return

    def backward(self, *g):
        t0 = time.perf_counter()
        try:
            return ob(self, *g)
        finally:
            r = bwd[type(self).__name__]
            r[0] += time.perf_counter() - t0
            r[1] += 1
    backward._timed = True
    cls.backward = backward


def all_subclasses(c):
    for s in c.__subclasses__():
        yield s
        yield from all_subclasses(s)


cfg, B, T = _gpt_config(shape)
rng = np.random.default_rng(0)
x_np, y_np = rng.integers(0, 65, (B, T)), rng.integers(0, 65, (B, T))
pe.manual_seed(0)
model = pe.models.gpt.GPT(cfg) if hasattr(pe, "models") else None
if model is None:
    from pyengine.models.gpt import GPT
    model = GPT(cfg)
opt = lm.make_optimizer(model, 1e-3, 0.1)
x, y = pe.tensor(x_np), pe.tensor(y_np)


def step():
    _, loss = model(x, y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


for _ in range(2):
    step()
autograd.Function.apply = classmethod(timed_apply)
for c in list(all_subclasses(autograd.Function)):
    if "apply" not in c.__dict__:
        wrap_backward(c)
tot = {"fwd": 0.0, "bwd": 0.0, "opt": 0.0}
t_all = time.perf_counter()
for _ in range(steps):
    t0 = time.perf_counter(); _, loss = model(x, y); t1 = time.perf_counter()
    opt.zero_grad(set_to_none=True); loss.backward(); t2 = time.perf_counter()
    opt.step(); t3 = time.perf_counter()
    tot["fwd"] += t1 - t0; tot["bwd"] += t2 - t1; tot["opt"] += t3 - t2
t_all = time.perf_counter() - t_all
autograd.Function.apply = classmethod(orig_apply)
ms = 1e3 / steps
print(f"L{cfg.n_layer} C{cfg.n_embd} T{T} B{B} threads={threads}: step {t_all * ms:.1f} ms: forward "
      f"{tot['fwd'] * ms:.1f}, backward {tot['bwd'] * ms:.1f}, optimizer {tot['opt'] * ms:.1f}")
rows = sorted(set(fwd) | set(bwd), key=lambda k: -(fwd[k][0] + bwd[k][0]))
print(f"{'Function':24s} {'calls':>6s} {'fwd ms':>8s} {'bwd ms':>8s}")
sf = sb = 0.0
for k in rows:
    f, b = fwd[k], bwd[k]
    sf += f[0]; sb += b[0]
    print(f"{k:24s} {f[1] // steps:6d} {f[0] * ms:8.2f} {b[0] * ms:8.2f}")
print(f"{'(Functions total)':24s} {'':6s} {sf * ms:8.2f} {sb * ms:8.2f}")
print(f"{'(other: engine etc.)':24s} {'':6s} {(tot['fwd'] - sf) * ms:8.2f} {(tot['bwd'] - sb) * ms:8.2f}")

if "--no-torch" not in sys.argv:
    import torch
    from bench.torch_gpt import TorchGPT, load_pyengine_state, make_optimizer
    torch.set_num_threads(threads)
    tmodel = TorchGPT(cfg)
    load_pyengine_state(tmodel, model.state_dict())
    topt = make_optimizer(tmodel, 1e-3, 0.1)
    tx, ty = torch.from_numpy(x_np), torch.from_numpy(y_np)

    def tstep():
        _, loss = tmodel(tx, ty)
        topt.zero_grad(set_to_none=True)
        loss.backward()
        topt.step()
    for _ in range(2):
        tstep()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            tstep()
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25))
    best = {"pe": [], "torch": []}
    for _ in range(5):
        for name, f in (("pe", step), ("torch", tstep)):
            t0 = time.perf_counter()
            for _ in range(2):
                f()
            best[name].append((time.perf_counter() - t0) / 2)
    for k in best:
        best[k].sort()
    print(f"interleaved, 5 rounds of 2 steps, min/median ms: pyengine {best['pe'][0] * 1e3:.1f}/"
          f"{best['pe'][2] * 1e3:.1f}, PyTorch {best['torch'][0] * 1e3:.1f}/{best['torch'][2] * 1e3:.1f} "
          f"(ratio torch/pe: min {best['torch'][0] / best['pe'][0]:.2f}x, median {best['torch'][2] / best['pe'][2]:.2f}x)")
