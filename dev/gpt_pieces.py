"""The op-by-op GPT's pieces at its sizes (B16 T128 C128 H4), forward + backward, pyengine vs PyTorch.

PYTHONPATH=. python dev/gpt_pieces.py [threads] [filter]
Short interleaved runs (min of 5): for finding which piece of bench ops' GPT row is slow.
"""
import math
import sys
import time

import numpy as np
import torch

import pyengine as pe

threads = int(sys.argv[1]) if len(sys.argv) > 1 else 1
filt = sys.argv[2] if len(sys.argv) > 2 else ""
pe.set_num_threads(threads)
torch.set_num_threads(threads)
B, T, C, H = 16, 128, 128, 4
D = C // H
rng = np.random.default_rng(0)
mask_np = np.tril(np.ones((T, T), np.float32)).reshape(1, 1, T, T)


def pieces(m):
    F = m.nn.functional
    bias = m.tensor(mask_np)

    def attn_scores(qkv):
        q, k, v = qkv.split(C, dim=2)
        k = k.view(B, T, H, D).transpose(1, 2)
        q = q.view(B, T, H, D).transpose(1, 2)
        return q @ k.transpose(-2, -1)

    def attn_av(att, qkv):
        q, k, v = qkv.split(C, dim=2)
        v = v.view(B, T, H, D).transpose(1, 2)
        y = att @ v
        return y.transpose(1, 2).contiguous().view(B, T, C)

    return [
        ("split+view+T+qk^T", [(B, T, 3 * C)], attn_scores),
        ("att@v+merge heads", [(B, H, T, T), (B, T, 3 * C)], attn_av),
        ("scale mul", [(B, H, T, T)], lambda a: a * 0.17),
        ("masked_fill causal", [(B, H, T, T)], lambda a: a.masked_fill(bias[:, :, :T, :T] == 0, float("-inf"))),
        ("softmax -1", [(B, H, T, T)], lambda a: F.softmax(a, dim=-1)),
        ("softmax -1 masked", [(B, H, T, T)],
         lambda a: F.softmax(a.masked_fill(bias[:, :, :T, :T] == 0, float("-inf")), dim=-1)),
        ("dropout p=0", [(B, H, T, T)], lambda a: F.dropout(a, 0.0, True)),
        ("layer_norm", [(B, T, C), (C,), (C,)], lambda x, w, b: F.layer_norm(x, (C,), w, b)),
        ("linear 128->384", [(B, T, C), (3 * C, C), (3 * C,)], lambda x, w, b: F.linear(x, w, b)),
        ("linear 128->512", [(B, T, C), (4 * C, C), (4 * C,)], lambda x, w, b: F.linear(x, w, b)),
        ("linear 512->128", [(B, T, 4 * C), (C, 4 * C), (C,)], lambda x, w, b: F.linear(x, w, b)),
        ("add residual", [(B, T, C), (B, T, C)], lambda a, b: a + b),
        ("gelu tanh ops", [(B, T, 4 * C)],
         lambda x: 0.5 * x * (1.0 + m.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * m.pow(x, 3.0))))),
    ]


def timed(fn, n=5):
    fn()
    best = 1e9
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best * 1e3


tot_p = tot_t = 0.0
for (name, shapes, fp), (_, _, ft) in zip(pieces(pe), pieces(torch)):
    if filt and filt not in name:
        continue
    arrs = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    ps = [pe.tensor(a, requires_grad=True) for a in arrs]
    ts = [torch.tensor(a, requires_grad=True) for a in arrs]
    gy = None

    def run(m, fn, xs):
        for x in xs:
            x.grad = None
        y = fn(*xs)
        y.backward(m.ones_like(y))

    def fwd(fn, xs):
        fn(*xs)
    yp, yt = fp(*ps).detach().numpy(), ft(*ts).detach().numpy()
    ok = np.allclose(yp, yt, rtol=1e-4, atol=1e-4, equal_nan=True)
    res = []
    for _ in range(2):  # interleaved
        res.append((timed(lambda: fwd(fp, ps)), timed(lambda: run(pe, fp, ps)),
                    timed(lambda: fwd(ft, ts)), timed(lambda: run(torch, ft, ts))))
    fpm, bpm, ftm, btm = (min(r[i] for r in res) for i in range(4))
    tot_p += bpm
    tot_t += btm
    print(f"{name:22s} fwd pe {fpm:7.3f} torch {ftm:7.3f} | fwd+bwd pe {bpm:7.3f} torch {btm:7.3f} ms "
          f"({btm / bpm:4.2f}x){'' if ok else '  MISMATCH'}")
print(f"total fwd+bwd pe {tot_p:.2f} torch {tot_t:.2f}")
