"""Per-op cost on tiny inputs: where the time of a small model goes."""
import numpy as np

import pyengine as pe
import pyengine.nn.functional as F

from ..common import Threads, timeit, torch


def run(res, quick=False):
    rng = np.random.default_rng(0)
    with Threads(1):
        a = pe.tensor(rng.standard_normal((4, 8)).astype(np.float32), requires_grad=True)
        b = pe.tensor(rng.standard_normal((4, 8)).astype(np.float32))
        t_ours = timeit(lambda: a * b, min_time=0.2)[0]
        t_np = timeit(lambda: a._data * b._data, min_time=0.2)[0]
        t_torch = None
        if torch is not None:
            ta, tb = torch.from_numpy(a.detach().numpy()).requires_grad_(), torch.from_numpy(b.numpy())
            t_torch = timeit(lambda: ta * tb, min_time=0.2)[0]
        res.add("overhead", "mul (4x8) with grad tracking", 1, t_ours, t_np, t_torch, extra="per-op Python cost")

        # the same op while each engine's profiler records (pyengine.profiler / torch.profiler, CPU)
        from pyengine.profiler import profile
        with profile():  # short samples: every call leaves an event
            t_ours = timeit(lambda: a * b, repeat=5, min_time=0.02)[0]
        t_torch = None
        if torch is not None:
            with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]):
                t_torch = timeit(lambda: ta * tb, repeat=5, min_time=0.02)[0]
        res.add("overhead", "mul (4x8) with grad tracking, profiler recording", 1, t_ours, None, t_torch,
                extra="per-op cost while profiling")

        # tiny MLP 4-8-1, batch 4: forward + backward + SGD step
        x = pe.tensor(rng.standard_normal((4, 4)).astype(np.float32))
        y = pe.tensor(rng.standard_normal((4, 1)).astype(np.float32))
        params = [pe.tensor(rng.standard_normal(s).astype(np.float32) * 0.5, requires_grad=True)
                  for s in ((8, 4), (8,), (1, 8), (1,))]
        w1, b1, w2, b2 = params
        K = pe.get_backend("cpu")

        def step():
            for p in params:
                p.grad = None
            loss = F.mse_loss(F.linear(F.relu(F.linear(x, w1, b1)), w2, b2), y)
            loss.backward()
            K.sgd_update([p._data for p in params], [p.grad._data for p in params], [None] * 4, 0.01)

        t_ours = timeit(step, min_time=0.2)[0]
        t_torch = None
        if torch is not None:
            model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
            opt = torch.optim.SGD(model.parameters(), lr=0.01)
            tx, ty = torch.from_numpy(x.numpy()), torch.from_numpy(y.numpy())

            def tstep():
                opt.zero_grad()
                torch.nn.functional.mse_loss(model(tx), ty).backward()
                opt.step()
            t_torch = timeit(tstep, min_time=0.2)[0]
        res.add("overhead", "MLP 4-8-1 batch 4: fwd+bwd+SGD step", 1, t_ours, None, t_torch,
                extra="target: <= 0.7x PyTorch's time")
