"""Training steps per second of a small LSTM text classifier: pyengine vs PyTorch, in one process.

Model: Embedding(10000, 256) -> LSTM(256 -> 128) -> last hidden state -> Linear(128, 1)
       -> BCEWithLogits; batch 32, sequence length 100, Adam(lr=1e-3).

    python bench/bench_lstm.py [--threads 2] [--steps 10] [--rounds 3] [--phases]

PyTorch is optional (skipped when not installed). ``--phases`` also prints where a pyengine step
spends its time (forward / backward / optimizer). Uses ``pyengine.optim.Adam`` when it exists,
otherwise a small local Adam (Kingma & Ba 2015) on the parameters' arrays.

Measured (2026-11-28, 2-CPU Xeon shared with other jobs, load average 2-4 during the runs; medians of 5
interleaved rounds of 10 steps; round-to-round spread is up to 2x for both libraries):
  all kernels compiled (after merging k-gemm):
      --threads 2: pyengine 22.5 / 18.6 steps/s vs PyTorch 15.5 / 13.5 (two runs): 1.45x / 1.38x
                   (best rounds 35.5 vs 23.3: 1.52x); ms/step forward 14-17, backward 27-32, Adam 3.5-6.5
      --threads 1: 17.3 vs 13.6 steps/s: 1.27x
  before the compiled GEMM (NumPy/OpenBLAS fallback, np.add.at embedding backward), --threads 1: 0.89x.
  The step is GEMM-bound (3.8 GFLOP). The fused gate kernels cost ~13 us (forward) and ~8 us (backward)
  per step at B=32, H=128: about 2 ms of a step. Running the per-step GEMMs (32x128 @ 128x512) on one
  thread while the rest uses two made no measurable difference (1.39x vs 1.38x in back-to-back runs),
  although alone that GEMM takes 36 us on one thread and 90-120 us split over two on a busy machine.
"""
import argparse
import os
import sys
import time

_p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
_p.add_argument("--threads", type=int, default=2)
_p.add_argument("--steps", type=int, default=10, help="steps per round")
_p.add_argument("--rounds", type=int, default=5)
_p.add_argument("--warmup", type=int, default=3)
_p.add_argument("--phases", action="store_true", help="time forward / backward / optimizer of pyengine")
ARGS = _p.parse_args()
# BLAS thread pools read these at import: set them before NumPy / torch are imported
for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, str(ARGS.threads))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import numpy as np  # noqa: E402

import pyengine as pe  # noqa: E402
import pyengine.nn as nn  # noqa: E402

VOCAB, EMB, HIDDEN, BATCH, SEQ, LR = 10000, 256, 128, 32, 100, 1e-3


class LocalAdam:
    """Adam on p.data with preallocated moments, all in place (used until pyengine.optim lands)."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
        self.params = list(params)
        self.lr, (self.b1, self.b2), self.eps, self.t = lr, betas, eps, 0
        self.m = [np.zeros_like(p.data) for p in self.params]
        self.v = [np.zeros_like(p.data) for p in self.params]
        self.tmp = [np.empty_like(p.data) for p in self.params]

    def zero_grad(self):
        for p in self.params:
            p.grad = None

    def step(self):
        self.t += 1
        bc1, bc2 = 1 - self.b1 ** self.t, 1 - self.b2 ** self.t
        step_size = self.lr / bc1
        for p, m, v, tmp in zip(self.params, self.m, self.v, self.tmp):
            g = p.grad.data
            m *= self.b1
            m += (1 - self.b1) * g
            np.multiply(g, g, out=tmp)
            tmp *= 1 - self.b2
            v *= self.b2
            v += tmp
            np.sqrt(v, out=tmp)
            tmp *= 1 / np.sqrt(bc2)
            tmp += self.eps
            np.divide(m, tmp, out=tmp)
            tmp *= step_size
            p.data -= tmp


def make_batch(rng):
    x = rng.integers(0, VOCAB, (BATCH, SEQ))
    y = rng.integers(0, 2, (BATCH, 1)).astype(np.float32)
    return x, y


def pyengine_runner(batches):
    """A function running len(batches) training steps of the pyengine model; returns (last loss, phase ms)."""
    pe.set_num_threads(ARGS.threads)
    pe.manual_seed(0)
    emb = nn.Embedding(VOCAB, EMB)
    lstm = nn.LSTM(EMB, HIDDEN, batch_first=True)
    head = nn.Linear(HIDDEN, 1)
    params = list(emb.parameters()) + list(lstm.parameters()) + list(head.parameters())
    try:
        from pyengine import optim
        opt = optim.Adam(params, lr=LR)
        opt_name = "pyengine.optim.Adam"
    except (ImportError, AttributeError):
        opt = LocalAdam(params, lr=LR)
        opt_name = "local NumPy Adam"
    crit = nn.BCEWithLogitsLoss()
    data = [(pe.tensor(x), pe.tensor(y)) for x, y in batches]

    def run(n):
        phases = {"forward": 0.0, "backward": 0.0, "optimizer": 0.0}
        for x, y in data[:n]:
            t0 = time.perf_counter()
            _, (h, _) = lstm(emb(x))
            loss = crit(head(h[-1]), y)
            t1 = time.perf_counter()
            opt.zero_grad()
            loss.backward()
            t2 = time.perf_counter()
            opt.step()
            t3 = time.perf_counter()
            phases["forward"] += t1 - t0
            phases["backward"] += t2 - t1
            phases["optimizer"] += t3 - t2
        return loss.item(), {k: 1e3 * v / n for k, v in phases.items()}

    return run, opt_name


def torch_runner(batches):
    try:
        import torch
    except ImportError:
        return None, None
    torch.set_num_threads(ARGS.threads)
    torch.manual_seed(0)
    emb = torch.nn.Embedding(VOCAB, EMB)
    lstm = torch.nn.LSTM(EMB, HIDDEN, batch_first=True)
    head = torch.nn.Linear(HIDDEN, 1)
    params = list(emb.parameters()) + list(lstm.parameters()) + list(head.parameters())
    opt = torch.optim.Adam(params, lr=LR)
    crit = torch.nn.BCEWithLogitsLoss()
    data = [(torch.tensor(x), torch.tensor(y)) for x, y in batches]

    def run(n):
        for x, y in data[:n]:
            _, (h, _) = lstm(emb(x))
            loss = crit(head(h[-1]), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        return loss.item(), None

    return run, torch.__version__


def main():
    rng = np.random.default_rng(0)
    batches = [make_batch(rng) for _ in range(max(ARGS.steps, ARGS.warmup))]
    from pyengine.backend import cpu
    gemm = "compiled" if "matmul" not in cpu.MISSING else "NumPy reference fallback (OpenBLAS)"
    print(f"LSTM classifier: Embedding({VOCAB}, {EMB}) -> LSTM({EMB} -> {HIDDEN}) -> Linear({HIDDEN}, 1), "
          f"batch {BATCH}, length {SEQ}, Adam; {ARGS.threads} threads; {ARGS.rounds} interleaved rounds of "
          f"{ARGS.steps} steps")
    print(f"pyengine kernels: GEMM {gemm}; not yet compiled: {', '.join(cpu.MISSING) or 'none'}")
    if hasattr(os, "getloadavg"):
        print(f"load average before: {os.getloadavg()[0]:.2f} ({os.cpu_count()} CPUs)")
    runners = {"pyengine": pyengine_runner(batches), "PyTorch": torch_runner(batches)}
    rates = {k: [] for k in runners}
    phases, losses = [], {}
    for name, (run, _) in runners.items():
        if run is not None:
            run(ARGS.warmup)
    for _ in range(ARGS.rounds):  # interleaved, so that a change in machine load hits both
        for name, (run, _) in runners.items():
            if run is None:
                continue
            t = time.perf_counter()
            losses[name], ph = run(ARGS.steps)
            rates[name].append(ARGS.steps / (time.perf_counter() - t))
            if ph is not None:
                phases.append(ph)
    med = {k: float(np.median(v)) for k, v in rates.items() if v}
    print(f"pyengine : {med['pyengine']:7.2f} steps/s   (rounds: {', '.join(f'{r:.2f}' for r in rates['pyengine'])}; "
          f"loss {losses['pyengine']:.4f}, {runners['pyengine'][1]})")
    if ARGS.phases:
        print("           ms/step: " + ", ".join(f"{k} {np.median([p[k] for p in phases]):.1f}" for k in phases[0]))
    if "PyTorch" not in med:
        print("PyTorch  : not installed")
        return
    print(f"PyTorch  : {med['PyTorch']:7.2f} steps/s   (rounds: {', '.join(f'{r:.2f}' for r in rates['PyTorch'])}; "
          f"loss {losses['PyTorch']:.4f}, torch {runners['PyTorch'][1]})")
    best = {k: max(v) for k, v in rates.items() if v}
    print(f"ratio    : {med['pyengine'] / med['PyTorch']:.2f}x PyTorch (medians); "
          f"{best['pyengine'] / best['PyTorch']:.2f}x (best rounds: {best['pyengine']:.2f} vs {best['PyTorch']:.2f} "
          "steps/s; the least disturbed runs on a shared machine)")
    if hasattr(os, "getloadavg"):
        print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
