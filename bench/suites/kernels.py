"""Memory-bound kernels: softmax-cross-entropy, LayerNorm, GELU, softmax, optimizer steps (AdamW, AMSGrad,
RMSprop, Adagrad), embedding."""
import numpy as np

import pyengine as pe
import pyengine.nn.functional as F
from pyengine.backend import get_backend, reference

from ..common import Threads, check_close, timeit, torch


def _ce(res, N, V, threads):
    K = get_backend("cpu")
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((N, V)).astype(np.float32)
    targets = rng.integers(0, V, N)
    dloss = np.full(N, 1.0 / N, np.float32)

    def ours():
        loss, lse = K.cross_entropy_forward(logits, targets, -100, 0.0)
        return K.cross_entropy_backward(logits, targets, lse, dloss, -100, 0.0)

    with Threads(threads):
        ref_loss, _ = reference.cross_entropy_forward(logits[:64], targets[:64])
        check_close("cross_entropy", K.cross_entropy_forward(logits[:64], targets[:64], -100, 0.0)[0], ref_loss,
                    1e-4, 1e-4)
        t_ours = timeit(ours)[0]
        t_torch = None
        if torch is not None:
            tl = torch.from_numpy(logits).requires_grad_()
            tt = torch.from_numpy(targets)

            def tf():
                tl.grad = None
                torch.nn.functional.cross_entropy(tl, tt).backward()
            t_torch = timeit(tf)[0]
    # bytes: read logits twice (fwd, bwd) + write dlogits
    res.add("kernels", f"softmax-CE fwd+bwd N={N} V={V}", threads, t_ours, None, t_torch,
            work=3 * logits.nbytes, kind="memory")


def _layernorm(res, threads):
    N, C = 8192, 768
    rng = np.random.default_rng(0)
    x = pe.tensor(rng.standard_normal((N, C)).astype(np.float32), requires_grad=True)
    w = pe.tensor(rng.standard_normal(C).astype(np.float32), requires_grad=True)
    b = pe.tensor(rng.standard_normal(C).astype(np.float32), requires_grad=True)
    g = pe.tensor(rng.standard_normal((N, C)).astype(np.float32))

    def ours():
        F.layer_norm(x, (C,), w, b).backward(g)

    with Threads(threads):
        t_ours = timeit(ours)[0]
        t_torch = None
        if torch is not None:
            tx = torch.from_numpy(x.detach().numpy().copy()).requires_grad_()
            tw = torch.from_numpy(w.detach().numpy().copy()).requires_grad_()
            tb = torch.from_numpy(b.detach().numpy().copy()).requires_grad_()
            tg = torch.from_numpy(g.numpy())
            t_torch = timeit(lambda: torch.nn.functional.layer_norm(tx, (C,), tw, tb).backward(tg))[0]
    # fwd: read x, write y; bwd: read dy, x, write dx
    res.add("kernels", "LayerNorm fwd+bwd 8192x768", threads, t_ours, None, t_torch,
            work=5 * N * C * 4, kind="memory")


def _gelu(res, threads):
    n = 8 * 1024 * 1024
    rng = np.random.default_rng(0)
    x = pe.tensor(rng.standard_normal(n).astype(np.float32), requires_grad=True)
    g = pe.tensor(rng.standard_normal(n).astype(np.float32))
    with Threads(threads):
        t_ours = timeit(lambda: F.gelu(x).backward(g))[0]
        t_torch = None
        if torch is not None:
            tx = torch.from_numpy(x.detach().numpy().copy()).requires_grad_()
            tg = torch.from_numpy(g.numpy())
            t_torch = timeit(lambda: torch.nn.functional.gelu(tx).backward(tg))[0]
    res.add("kernels", "GELU fwd+bwd 8M", threads, t_ours, None, t_torch, work=5 * n * 4, kind="memory")


# Optimizer steps over 10M float32 parameters, one tensor: (row label, state arrays, our kernel call
# (K, p, g, state, step), torch.optim class and options, words of memory read + written per parameter)
OPTIM_CASES = [
    ("AdamW step 10M params", 2,
     lambda K, p, g, s, t: K.adam_update([p], [g], [s[0]], [s[1]], t, 1e-3, 0.9, 0.999, 1e-8, 0.01, True),
     "AdamW", dict(lr=1e-3), 7),  # read p, g, m, v; write p, m, v
    ("AdamW amsgrad step 10M params", 3,
     lambda K, p, g, s, t: K.adam_update([p], [g], [s[0]], [s[1]], t, 1e-3, 0.9, 0.999, 1e-8, 0.01, True,
                                         max_exp_avg_sqs=[s[2]]),
     "AdamW", dict(lr=1e-3, amsgrad=True), 9),  # and the running max: read and written
    ("RMSprop step 10M params", 1,
     lambda K, p, g, s, t: K.rmsprop_update([p], [g], [s[0]], None, None, 1e-2, 0.99, 1e-8),
     "RMSprop", dict(lr=1e-2), 5),  # read p, g, square_avg; write p, square_avg
    ("Adagrad step 10M params", 1,
     lambda K, p, g, s, t: K.adagrad_update([p], [g], [s[0]], t, 1e-2),
     "Adagrad", dict(lr=1e-2), 5),  # read p, g, sum; write p, sum
]


def _optim_step(res, threads, label, n_state, update, torch_cls, torch_kw, words):
    n = 10_000_000
    rng = np.random.default_rng(0)
    K = get_backend("cpu")
    p = rng.standard_normal(n).astype(np.float32)
    g = rng.standard_normal(n).astype(np.float32)
    state = [np.zeros(n, np.float32) for _ in range(n_state)]
    step = [0]

    def ours():
        step[0] += 1
        update(K, p, g, state, step[0])

    with Threads(threads):
        t_ours = timeit(ours)[0]
        t_torch = None
        if torch is not None:
            tp = torch.nn.Parameter(torch.from_numpy(p.copy()))
            tp.grad = torch.from_numpy(g)
            opt = getattr(torch.optim, torch_cls)([tp], **torch_kw)
            t_torch = timeit(opt.step)[0]
    res.add("kernels", label, threads, t_ours, None, t_torch, work=words * n * 4, kind="memory")


def _embedding(res, threads):
    V, C, N = 50304, 768, 8192
    rng = np.random.default_rng(0)
    w = pe.tensor(rng.standard_normal((V, C)).astype(np.float32), requires_grad=True)
    idx = pe.tensor(rng.integers(0, V, N))
    g = pe.tensor(rng.standard_normal((N, C)).astype(np.float32))

    def ours():
        w.grad = None
        F.embedding(idx, w).backward(g)

    with Threads(threads):
        t_ours = timeit(ours)[0]
        t_torch = None
        if torch is not None:
            tw = torch.from_numpy(w.detach().numpy().copy()).requires_grad_()
            ti, tg = torch.from_numpy(idx.numpy()), torch.from_numpy(g.numpy())

            def tf():
                tw.grad = None
                torch.nn.functional.embedding(ti, tw).backward(tg)
            t_torch = timeit(tf)[0]
    res.add("kernels", "embedding fwd+bwd V=50304 C=768 N=8192", threads, t_ours, None, t_torch,
            work=(3 * N * C + V * C) * 4, kind="memory", extra="bwd zero-fills the (V, C) gradient")


def run(res, quick=False):
    for threads in (1, 2):
        _ce(res, 8192, 65, threads)
        _ce(res, 8192, 50304, threads)
        _layernorm(res, threads)
        _gelu(res, threads)
        for case in OPTIM_CASES:
            _optim_step(res, threads, *case)
        _embedding(res, threads)
