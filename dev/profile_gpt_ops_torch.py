"""PyTorch's side of dev/profile_gpt_ops.py: the same op-by-op GPT step under torch.profiler."""
import sys
import time

import numpy as np
import torch

from bench.suites.ops import build_gpt

threads = int(sys.argv[1]) if len(sys.argv) > 1 else 1
steps = int(sys.argv[2]) if len(sys.argv) > 2 else 5
torch.set_num_threads(threads)
V, T, B, L, H, C = 65, 128, 16, 4, 4, 128
rng = np.random.default_rng(0)
torch.manual_seed(0)
model = build_gpt(torch, V, T, L, H, C)
opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
x, y = torch.from_numpy(rng.integers(0, V, (B, T))), torch.from_numpy(rng.integers(0, V, (B, T)))


def step():
    loss = model(x, y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


step()
t0 = time.perf_counter()
for _ in range(steps):
    step()
print(f"threads={threads} step {(time.perf_counter() - t0) * 1e3 / steps:.1f} ms")
with torch.profiler.profile() as prof:
    for _ in range(steps):
        step()
print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=30))
