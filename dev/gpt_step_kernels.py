"""The small GPT step's kernels one by one, pyengine vs PyTorch, at the step's shapes (L4 H4 C128 T128 B16:
N = B*T = 2048 rows), 1 thread: every Linear's forward GEMM, dx and dW GEMMs and bias column sum, LayerNorm,
tanh GELU, a residual add, and causal attention forward / forward+backward. Companion of
dev/profile_gpt_step.py (which times the whole step per Function); notes in dev/gpt_step_notes.md.

PYTHONPATH=. python dev/gpt_step_kernels.py
Times are the thread's CPU time (time.thread_time), min over rounds with the engines interleaved, so waiting
for a core on a busy machine drops out (cache sharing with other processes does not).
"""
import math
import time

import numpy as np
import torch

import pyengine as pe
from pyengine.backend import get_backend
from pyengine.models.gpt import _attend_into_tokens, _heads

K = get_backend("cpu")
pe.set_num_threads(1)
torch.set_num_threads(1)
clock = time.thread_time
rng = np.random.default_rng(0)
N, C, H, B, T = 2048, 128, 4, 16, 128


def best_pair(a, t, rounds=8, reps=4):
    a(); t()
    ra = rt = 1e9
    for _ in range(rounds):
        for f, is_a in ((a, True), (t, False)):
            t0 = clock()
            for _ in range(reps):
                f()
            dt = (clock() - t0) / reps
            if is_a:
                ra = min(ra, dt)
            else:
                rt = min(rt, dt)
    return ra, rt


def row(name, a, t, work, unit):
    ra, rt = best_pair(a, t)
    print(f"{name:30s} pe {ra * 1e3:7.3f} ms ({work / ra / 1e9:6.1f} {unit})  torch {rt * 1e3:7.3f} ms "
          f"({work / rt / 1e9:6.1f})  torch/pe {rt / ra:.2f}", flush=True)
    return ra, rt


per_step = {}
# (IN, OUT, Linears of this shape per step)
for IN, OUT, cnt in ((128, 384, 4), (128, 128, 4), (128, 512, 4), (512, 128, 4), (128, 65, 1)):
    x = rng.standard_normal((N, IN), dtype=np.float32)
    w = rng.standard_normal((OUT, IN), dtype=np.float32)
    g = rng.standard_normal((N, OUT), dtype=np.float32)
    b = np.zeros(OUT, np.float32)
    tx, tw, tg, tb = map(torch.from_numpy, (x, w, g, b))
    fl = 2 * N * IN * OUT
    for name, a, t, work, unit in (
            ("fwd x W^T + b", lambda: K.linear(x, w, b), lambda: torch.addmm(tb, tx, tw.t()), fl, "GF/s"),
            ("dx = g W", lambda: K.matmul(g, w), lambda: torch.mm(tg, tw), fl, "GF/s"),
            ("dW = g^T x", lambda: K.matmul(g, x, trans_a=True), lambda: torch.mm(tg.t(), tx), fl, "GF/s"),
            ("db = sum_rows g", lambda: K.sum_rows(g), lambda: tg.sum(0), N * OUT * 4, "GB/s")):
        ra, rt = row(f"{IN}->{OUT} {name}", a, t, work, unit)
        s = per_step.setdefault(name, [0.0, 0.0])
        s[0] += cnt * ra
        s[1] += cnt * rt

x = rng.standard_normal((N, C), dtype=np.float32)
g = rng.standard_normal((N, C), dtype=np.float32)
w, b = rng.standard_normal(C, dtype=np.float32), rng.standard_normal(C, dtype=np.float32)
h = rng.standard_normal((N, 4 * C), dtype=np.float32)
gh = rng.standard_normal((N, 4 * C), dtype=np.float32)
_, mean, rstd = K.layer_norm_forward(x, w, b, 1e-5)
tx, tg, tw, tb, th, tgh = map(torch.from_numpy, (x, g, w, b, h, gh))
tmean, trstd = torch.from_numpy(np.asarray(mean)).reshape(N, 1), torch.from_numpy(np.asarray(rstd)).reshape(N, 1)
mb = N * C * 4
for name, a, t, work, cnt in (
        ("LayerNorm fwd", lambda: K.layer_norm_forward(x, w, b, 1e-5),
         lambda: torch.native_layer_norm(tx, (C,), tw, tb, 1e-5), 2 * mb, 9),
        ("LayerNorm bwd", lambda: K.layer_norm_backward(g, x, w, mean, rstd),
         lambda: torch.ops.aten.native_layer_norm_backward(tg, tx, (C,), tmean, trstd, tw, tb, [True] * 3), 3 * mb, 9),
        ("GELU tanh fwd (N, 4C)", lambda: K.gelu_forward(h, "tanh"),
         lambda: torch.nn.functional.gelu(th, approximate="tanh"), 8 * mb, 4),
        ("GELU tanh bwd (N, 4C)", lambda: K.gelu_backward(h, gh, "tanh"),
         lambda: torch.ops.aten.gelu_backward(tgh, th, approximate="tanh"), 12 * mb, 4),
        ("residual add", lambda: np.add(x, g), lambda: tx + tg, 3 * mb, 9)):
    ra, rt = row(name, a, t, work, "GB/s")
    per_step[name] = [cnt * ra, cnt * rt]

hd = C // H
qkv = rng.standard_normal((B, T, 3 * C), dtype=np.float32)
dy = rng.standard_normal((B, T, C), dtype=np.float32)
scale = 1 / math.sqrt(hd)
y, lse = _attend_into_tokens(K, *_heads(qkv, H), 0, scale)
dqkv = np.empty_like(qkv)


def pe_fwd():
    _attend_into_tokens(K, *_heads(qkv, H), 0, scale)


def pe_fwd_bwd():
    pe_fwd()
    K.attention_backward(*_heads(qkv, H), y.transpose(0, 2, 1, 3), lse, dy.reshape(B, T, H, hd).transpose(0, 2, 1, 3),
                         None, 0, scale, dq=_heads(dqkv, H)[0], dk=_heads(dqkv, H)[1], dv=_heads(dqkv, H)[2])


tq, tdy = torch.from_numpy(qkv).requires_grad_(), torch.from_numpy(dy)


def t_heads():
    return (u.view(B, T, H, hd).transpose(1, 2) for u in tq.split(C, 2))


def t_fwd():
    with torch.no_grad():
        torch.nn.functional.scaled_dot_product_attention(*t_heads(), is_causal=True)


def t_fwd_bwd():
    o = torch.nn.functional.scaled_dot_product_attention(*t_heads(), is_causal=True)
    o.transpose(1, 2).reshape(B, T, C).backward(tdy)
    tq.grad = None


fl = B * H * T * T * hd * 2  # causal: QK^T and PV, half of each
row("attention fwd (causal)", pe_fwd, t_fwd, fl, "GF/s")
per_step["attention fwd+bwd"] = [4 * v for v in row("attention fwd+bwd", pe_fwd_bwd, t_fwd_bwd, 3.5 * fl, "GF/s")]
print("\nper step (x the step's calls), ms:")
for k, (a, t) in per_step.items():
    print(f"  {k:24s} pe {a * 1e3:7.2f}  torch {t * 1e3:7.2f}")
print(f"  {'sum':24s} pe {sum(v[0] for v in per_step.values()) * 1e3:7.2f}  "
      f"torch {sum(v[1] for v in per_step.values()) * 1e3:7.2f}")
