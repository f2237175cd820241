"""Where the op-by-op GPT step (bench ops) spends its time: per Function kind, forward and backward.

PYTHONPATH=. python dev/profile_gpt_ops.py [threads] [steps] [--fast-pow] [--torch]
Wraps Function.apply (forward incl. node building) and each class's backward with timers; the
remainder (optimizer, engine bookkeeping, non-Function ops) is printed as 'other'.
--fast-pow: pe.pow(x, 3.0) computed as x * x * x (an estimate of the step once pow has a kernel: NumPy's
float32 power with exponent 3.0 is ~70 ms of the step's ~100 ms GELU per layer).
--torch: also time PyTorch's step, interleaved (seconds per step, min of the rounds).
"""
import sys
import time

import numpy as np

import pyengine as pe
import function_timers as timers  # dev/ is the script's directory: on sys.path
from bench.suites.ops import build_gpt

args = [a for a in sys.argv[1:] if not a.startswith("--")]
threads = int(args[0]) if args else 1
steps = int(args[1]) if len(args) > 1 else 5
if "--fast-pow" in sys.argv:
    _pow = pe.pow
    pe.pow = lambda x, e: x * x * x if e == 3.0 else _pow(x, e)
pe.set_num_threads(threads)
try:
    from threadpoolctl import threadpool_limits
    threadpool_limits(threads)
except ImportError:
    pass

timers.install()
fwd, bwd = timers.fwd, timers.bwd

V, T, B, L, H, C = 65, 128, 16, 4, 4, 128
rng = np.random.default_rng(0)
pe.manual_seed(0)
model = build_gpt(pe, V, T, L, H, C)
opt = pe.optim.AdamW(model.parameters(), lr=1e-3)
x, y = pe.tensor(rng.integers(0, V, (B, T))), pe.tensor(rng.integers(0, V, (B, T)))


def step():
    loss = model(x, y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


step()
fwd.clear(); bwd.clear()
tot = {"fwd": 0.0, "bwd": 0.0, "opt": 0.0}
t_all = time.perf_counter()
for _ in range(steps):
    t0 = time.perf_counter(); loss = model(x, y); t1 = time.perf_counter()
    opt.zero_grad(set_to_none=True); loss.backward(); t2 = time.perf_counter()
    opt.step(); t3 = time.perf_counter()
    tot["fwd"] += t1 - t0; tot["bwd"] += t2 - t1; tot["opt"] += t3 - t2
t_all = time.perf_counter() - t_all
ms = 1e3 / steps
print(f"threads={threads} step {t_all * ms:.1f} ms: forward {tot['fwd'] * ms:.1f}, backward {tot['bwd'] * ms:.1f}, "
      f"optimizer {tot['opt'] * ms:.1f}")
timers.print_table(steps, tot["fwd"], tot["bwd"])

if "--torch" in sys.argv:
    import torch
    from bench.suites.ops import _copy_weights
    torch.set_num_threads(threads)
    tmodel = build_gpt(torch, V, T, L, H, C)
    _copy_weights(model, tmodel)
    topt = torch.optim.AdamW(tmodel.parameters(), lr=1e-3)
    tx, ty = torch.from_numpy(x.numpy()), torch.from_numpy(y.numpy())

    def tstep():
        loss = tmodel(tx, ty)
        topt.zero_grad(set_to_none=True)
        loss.backward()
        topt.step()
    tstep()
    timers.uninstall()  # untimed from here
    best = {"pe": 1e9, "torch": 1e9}
    for _ in range(4):
        for name, f in (("pe", step), ("torch", tstep)):
            t0 = time.perf_counter()
            for _ in range(2):
                f()
            best[name] = min(best[name], (time.perf_counter() - t0) / 2)
    print(f"interleaved, min of 4 rounds of 2 steps: pyengine {best['pe'] * 1e3:.1f} ms, PyTorch "
          f"{best['torch'] * 1e3:.1f} ms ({best['torch'] / best['pe']:.2f}x)")
