"""Where the GPT training step (bench train: pyengine.models.GPT + AdamW) spends its time, per Function kind,
forward and backward, next to torch.profiler's self CPU time of the PyTorch twin, same process.

PYTHONPATH=. python dev/profile_gpt_step.py [threads] [steps] [--large] [--no-torch]
The step: small = L4 H4 C128 T128 B16, --large = L6 H6 C384 T256 B8 (bench/suites/train.py GPT_SHAPES).
Timers (dev/function_timers.py) wrap Function.apply (forward incl. node building) and each class's backward;
'other' is the rest (engine walk, zero_grad, non-Function Python). The optimizer is timed as one row.
Then both engines' steps interleaved: 5 rounds of 2 steps each, min and median. Notes: dev/gpt_step_notes.md.
"""
import sys
import time

import numpy as np

import pyengine as pe
import function_timers as timers  # dev/ is the script's directory: on sys.path
from pyengine import lm
from pyengine.models.gpt import GPT
from bench.suites.train import GPT_SHAPES, _gpt_config

args = [a for a in sys.argv[1:] if not a.startswith("--")]
threads = int(args[0]) if args else 1
steps = int(args[1]) if len(args) > 1 else 5
shape = GPT_SHAPES["large" if "--large" in sys.argv else "small"]
pe.set_num_threads(threads)

cfg, B, T = _gpt_config(shape)
rng = np.random.default_rng(0)
x_np, y_np = rng.integers(0, 65, (B, T)), rng.integers(0, 65, (B, T))
pe.manual_seed(0)
model = GPT(cfg)
opt = lm.make_optimizer(model, 1e-3, 0.1)


def stepper(model, opt, x, y):
    """One training step of either engine (the same calls in both): forward, zero_grad, backward, update."""
    def step():
        _, loss = model(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step


step = stepper(model, opt, pe.tensor(x_np), pe.tensor(y_np))
for _ in range(2):
    step()
timers.install()
tot = {"fwd": 0.0, "bwd": 0.0, "opt": 0.0}
x, y = pe.tensor(x_np), pe.tensor(y_np)
t_all = time.perf_counter()
for _ in range(steps):
    t0 = time.perf_counter(); _, loss = model(x, y); t1 = time.perf_counter()
    opt.zero_grad(set_to_none=True); loss.backward(); t2 = time.perf_counter()
    opt.step(); t3 = time.perf_counter()
    tot["fwd"] += t1 - t0; tot["bwd"] += t2 - t1; tot["opt"] += t3 - t2
t_all = time.perf_counter() - t_all
timers.uninstall()
ms = 1e3 / steps
print(f"L{cfg.n_layer} C{cfg.n_embd} T{T} B{B} threads={threads}: step {t_all * ms:.1f} ms: forward "
      f"{tot['fwd'] * ms:.1f}, backward {tot['bwd'] * ms:.1f}, optimizer {tot['opt'] * ms:.1f}")
timers.print_table(steps, tot["fwd"], tot["bwd"], width=24)

if "--no-torch" not in sys.argv:
    import torch
    from bench.torch_gpt import TorchGPT, load_pyengine_state, make_optimizer
    torch.set_num_threads(threads)
    tmodel = TorchGPT(cfg)
    load_pyengine_state(tmodel, model.state_dict())
    tstep = stepper(tmodel, make_optimizer(tmodel, 1e-3, 0.1), torch.from_numpy(x_np), torch.from_numpy(y_np))
    for _ in range(2):
        tstep()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            tstep()
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25))
    times = {"pe": [], "torch": []}
    for _ in range(5):
        for name, f in (("pe", step), ("torch", tstep)):
            t0 = time.perf_counter()
            for _ in range(2):
                f()
            times[name].append((time.perf_counter() - t0) / 2)
    pe_t, t_t = sorted(times["pe"]), sorted(times["torch"])
    print(f"interleaved, 5 rounds of 2 steps, min/median ms: pyengine {pe_t[0] * 1e3:.1f}/{pe_t[2] * 1e3:.1f}, "
          f"PyTorch {t_t[0] * 1e3:.1f}/{t_t[2] * 1e3:.1f} (PyTorch/pyengine: min {t_t[0] / pe_t[0]:.2f}x, "
          f"median {t_t[2] / pe_t[2]:.2f}x)")
