"""Where the bfloat16 autocast GPT step (the train suite's bf16 row: L6 H6 C384, T256, B8, AdamW) spends its
time: per Function kind, forward and backward, and the step against PyTorch's autocast step.

PYTHONPATH=. python dev/profile_gpt_bf16.py [threads] [steps] [--cpu-time] [--torch] [--gemm]
--cpu-time: time with the calling thread's CPU time (time.thread_time) instead of the wall clock; with
  threads=1 this is the steadier measure on a shared, busy machine (time spent descheduled is not counted).
--torch: the step against PyTorch's (same weights, torch.autocast("cpu", bfloat16)), alternating, per round.
--gemm: the step's GEMM shapes (forward, dx, dW of the 384 -> 1536 MLP layer, and its bias sum) on the bfloat16
  kernel against torch's bfloat16 matmul, interleaved, min of 25.
CastLowp rows are split by the dtype the backward converts to ([float32]: gradients of bfloat16 views of float32
tensors, weights included; [bfloat16]: gradients of float32 tensors cast down).
"""
import collections
import sys
import time

import numpy as np

import pyengine as pe
from pyengine import autograd, lm
from pyengine.models.gpt import GPT
from bench.suites.train import _batches, _gpt_config

args = [a for a in sys.argv[1:] if not a.startswith("--")]
threads = int(args[0]) if args else 2
steps = int(args[1]) if len(args) > 1 else 3
clock = time.thread_time if "--cpu-time" in sys.argv else time.perf_counter
pe.set_num_threads(threads)

fwd = collections.defaultdict(lambda: [0.0, 0])
bwd = collections.defaultdict(lambda: [0.0, 0])
depth = [0]
orig_apply = autograd.Function.apply.__func__


def timed_apply(cls, *a):
    if depth[0]:
        return orig_apply(cls, *a)
    depth[0] += 1
    t0 = clock()
    try:
        return orig_apply(cls, *a)
    finally:
        r = fwd[cls.__name__]
        r[0] += clock() - t0
        r[1] += 1
        depth[0] -= 1


def wrap_backward(cls):
    ob = cls.__dict__.get("backward")
    if ob is None or getattr(ob, "_timed", False):
        return

    def backward(self, *g):
        t0 = clock()
        try:
            return ob(self, *g)
        finally:
            name = type(self).__name__ + (f"[{self.src}]" if hasattr(self, "src") else "")
            r = bwd[name]
            r[0] += clock() - t0
            r[1] += 1
    backward._timed = True
    cls.backward = backward


def all_subclasses(c):
    for s in c.__subclasses__():
        yield s
        yield from all_subclasses(s)


import pyengine.amp.bf16_ops  # noqa: E402,F401  (its Functions defined before the wrapping)

autograd.Function.apply = classmethod(timed_apply)
for c in list(all_subclasses(autograd.Function)):
    if "apply" not in c.__dict__:
        wrap_backward(c)

cfg, B, T = _gpt_config((6, 6, 384, 256, 8))
batches = _batches(B, T)
pe.manual_seed(0)
model = GPT(cfg)
opt = lm.make_optimizer(model, 1e-4, 0.1)


def step(i, parts=None):
    x, y = batches[i % 4]
    t0 = clock()
    with pe.autocast("cpu", dtype=pe.bfloat16):
        _, loss = model(pe.tensor(x), pe.tensor(y))
    t1 = clock()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    t2 = clock()
    opt.step()
    t3 = clock()
    if parts is not None:
        parts["forward"] += t1 - t0
        parts["backward"] += t2 - t1
        parts["optimizer"] += t3 - t2


step(0)
fwd.clear()
bwd.clear()
parts = collections.Counter()
for i in range(steps):
    step(i, parts)
ms = 1e3 / steps
total = sum(parts.values())
print(f"threads={threads} ({'CPU time' if clock is time.thread_time else 'wall'}) step {total * ms:.1f} ms: "
      + ", ".join(f"{k} {v * ms:.1f}" for k, v in parts.items()))
print(f"{'Function':28s} {'calls':>5s} {'fwd ms':>8s} {'bwd ms':>8s} {'share':>6s}")
sf = sb = 0.0
for k in sorted(set(fwd) | set(bwd), key=lambda k: -(fwd[k][0] + bwd[k][0])):
    f, b = fwd[k], bwd[k]
    sf += f[0]
    sb += b[0]
    print(f"{k:28s} {max(f[1], b[1]) // steps:5d} {f[0] * ms:8.2f} {b[0] * ms:8.2f} {(f[0] + b[0]) / total:6.1%}")
print(f"{'(other: engine, optimizer)':28s} {'':5s} {(parts['forward'] - sf) * ms:8.2f} "
      f"{(parts['backward'] - sb) * ms:8.2f}")
autograd.Function.apply = classmethod(orig_apply)

if "--torch" in sys.argv:
    import torch
    from bench.torch_gpt import TorchGPT, load_pyengine_state, make_optimizer
    torch.set_num_threads(threads)
    tmodel = TorchGPT(cfg)
    load_pyengine_state(tmodel, model.state_dict())
    topt = make_optimizer(tmodel, 1e-4, 0.1)
    tb = [(torch.from_numpy(x), torch.from_numpy(y)) for x, y in batches]

    def tstep(i):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            _, loss = tmodel(*tb[i % 4])
        topt.zero_grad(set_to_none=True)
        loss.backward()
        topt.step()
    tstep(0)
    ratios = []
    for r in range(4):
        t0 = clock()
        step(r)
        t1 = clock()
        tstep(r)
        t2 = clock()
        ratios.append((t2 - t1) / (t1 - t0))
        print(f"round {r}: pyengine {(t1 - t0) * 1e3:.0f} ms, PyTorch {(t2 - t1) * 1e3:.0f} ms: {ratios[-1]:.2f}x")
    ratios.sort()
    print(f"PyTorch / pyengine: median {ratios[len(ratios) // 2]:.2f}x, range {ratios[0]:.2f}-{ratios[-1]:.2f}x")

if "--gemm" in sys.argv:
    import ml_dtypes
    import torch
    from pyengine.backend.cpu import gemm_bf16 as G
    torch.set_num_threads(threads)
    rng = np.random.default_rng(0)
    M, K, N = B * T, cfg.n_embd, 4 * cfg.n_embd

    def T16(a):
        return torch.from_numpy(a.view(np.int16)).view(torch.bfloat16)
    x = rng.standard_normal((M, K)).astype(ml_dtypes.bfloat16)
    w = rng.standard_normal((N, K)).astype(ml_dtypes.bfloat16)
    g = rng.standard_normal((M, N)).astype(ml_dtypes.bfloat16)
    tx, tw, tg = T16(x), T16(w), T16(g)
    fs = {"fwd": (lambda: G.matmul_bf16(x, w, trans_b=True, bf16_out=True), lambda: tx @ tw.t()),
          "dx": (lambda: G.matmul_bf16(g, w, bf16_out=True), lambda: tg @ tw),
          "dW": (lambda: G.matmul_bf16(g, x, trans_a=True, bf16_out=True), lambda: tg.t() @ tx),
          "db": (lambda: G.f32_to_bf16(G.sum_rows_bf16(g)), lambda: tg.sum(0))}
    best = {(k, e): 1e9 for k in fs for e in (0, 1)}
    for _ in range(25):
        for k, pair in fs.items():
            for e, f in enumerate(pair):
                t0 = clock()
                f()
                best[k, e] = min(best[k, e], clock() - t0)
    print(f"GEMMs of the {K} -> {N} layer, M = {M} (min of 25, interleaved):")
    for k in fs:
        print(f"  {k:3s} pyengine {best[k, 0] * 1e3:6.2f} ms  PyTorch {best[k, 1] * 1e3:6.2f} ms  "
              f"({best[k, 1] / best[k, 0]:.2f}x)")
