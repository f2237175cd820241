"""Launched by tests/test_distributed.py as ``mpiexec -n W python equivalence.py`` (or alone: W = 1).

Data parallelism must not change the math: W ranks x batch B with DistributedDataParallel give the same
parameters as 1 process x batch W*B, in float64 to ~1e-12, for SGD (momentum) and AdamW, with one bucket
and with buckets that split the model, and with no_sync() gradient accumulation. A last case checks
parameters that get no gradient on some or all ranks. Rank 0 prints one line ``RESULT {json}``.
"""
import copy
import json

import numpy as np

import pyengine as pe
import pyengine.distributed as dist
import pyengine.nn as nn
import pyengine.nn.functional as F

D_IN, HIDDEN, D_OUT = 6, 32, 3


def make_mlp(seed):
    pe.manual_seed(seed)
    return nn.Sequential(nn.Linear(D_IN, HIDDEN), nn.Tanh(), nn.Linear(HIDDEN, HIDDEN), nn.Tanh(),
                         nn.Linear(HIDDEN, D_OUT)).to(pe.float64)


def make_opt(kind, params):
    if kind == "sgd":
        return pe.optim.SGD(params, lr=0.1, momentum=0.9)
    return pe.optim.AdamW(params, lr=1e-2, weight_decay=0.1)


def data(steps, rows):
    rng = np.random.default_rng(0)
    return rng.standard_normal((steps, rows, D_IN)), rng.standard_normal((steps, rows, D_OUT))


def run_case(opt_kind, bucket_cap_mb, accum, steps=5, micro=4):
    """Train W ranks x (accum micro-batches of `micro` rows); return the max |param - reference| on
    rank 0, the max difference between ranks, and the number of buckets."""
    rank, world = dist.get_rank(), dist.get_world_size()
    X, Y = data(steps, world * accum * micro)
    # every rank starts from a different initialisation: the wrap must broadcast rank 0's
    model = dist.DistributedDataParallel(make_mlp(1 + rank), bucket_cap_mb=bucket_cap_mb)
    opt = make_opt(opt_kind, model.parameters())
    for s in range(steps):
        opt.zero_grad()
        for k in range(accum):
            lo = (rank * accum + k) * micro  # this rank's k-th micro-batch of the global batch
            x, y = pe.tensor(X[s, lo:lo + micro]), pe.tensor(Y[s, lo:lo + micro])
            if k < accum - 1:
                with model.no_sync():
                    (F.mse_loss(model(x), y) / accum).backward()
            else:
                (F.mse_loss(model(x), y) / accum).backward()
        opt.step()
    mine = np.concatenate([p._data.reshape(-1) for p in model.parameters()])
    everyone = dist.all_gather(pe.tensor(mine), stack=True).numpy()
    across = float(np.max(np.abs(everyone - everyone[0])))

    ref_err = None
    if rank == 0:  # one process, the whole global batch, the same optimizer
        ref = make_mlp(1)
        ropt = make_opt(opt_kind, ref.parameters())
        for s in range(steps):
            ropt.zero_grad()
            F.mse_loss(ref(pe.tensor(X[s])), pe.tensor(Y[s])).backward()
            ropt.step()
        theirs = np.concatenate([p._data.reshape(-1) for p in ref.parameters()])
        ref_err = float(np.max(np.abs(mine - theirs)))
    return {"opt": opt_kind, "bucket_cap_mb": bucket_cap_mb, "accum": accum, "buckets": len(model.bucket_sizes),
            "max_err_vs_1proc": ref_err, "max_diff_across_ranks": across}


class Partial(nn.Module):
    """`extra` is used only on rank 0; `unused` never."""

    def __init__(self):
        super().__init__()
        self.body = nn.Linear(4, 4)
        self.extra = nn.Linear(4, 4)
        self.unused = nn.Linear(4, 4)

    def forward(self, x, use_extra):
        h = self.body(x)
        if use_extra:
            h = h + self.extra(x)
        return h


def run_partial():
    rank = dist.get_rank()
    pe.manual_seed(7 + rank)
    net = Partial().to(pe.float64)
    # tiny buckets: `unused` sits in a bucket of its own that no rank ever marks ready
    model = dist.DistributedDataParallel(net, bucket_cap_mb=1e-5)
    plain = copy.deepcopy(net)  # after the wrap: rank 0's weights
    x = pe.tensor(np.random.default_rng(rank).standard_normal((5, 4)))
    use_extra = rank == 0
    for _ in range(2):  # twice: the second iteration must find the state reset
        model.zero_grad()
        model(x, use_extra).pow(2).sum().backward()
    plain(x, use_extra).pow(2).sum().backward()
    errs = []
    for (name, p), (_, q) in zip(model.named_parameters(), plain.named_parameters()):
        local = np.zeros_like(q._data) if q.grad is None else q.grad._data
        expected = dist.all_gather(pe.tensor(local), stack=True).numpy().mean(axis=0)
        if name.startswith("unused"):
            errs.append(0.0 if p.grad is None else float("inf"))
        else:
            errs.append(float(np.max(np.abs(p.grad._data - expected))))
    return {"case": "partial", "buckets": len(model.bucket_sizes), "max_err": max(errs)}


def main():
    dist.init()
    results = [run_case("sgd", 4, 1), run_case("adamw", 4, 1),
               run_case("sgd", 5e-4, 1), run_case("adamw", 1e-6, 1),
               run_case("adamw", 5e-4, 3), run_case("sgd", 4, 2)]
    results.append(run_partial())
    if dist.is_main_process():
        progress = getattr(dist.init(), "progress", None)
        print("RESULT " + json.dumps({"world": dist.get_world_size(), "progress": progress, "cases": results}),
              flush=True)


if __name__ == "__main__":
    dist.run_main(main)
