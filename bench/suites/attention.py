"""Causal attention fwd and fwd+bwd: pyengine's flash-style kernel vs torch SDPA."""
import numpy as np

import pyengine as pe
import pyengine.nn.functional as F

from ..common import Threads, check_close, timeit, torch


def _case(res, B, H, T, D, threads, quick):
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((B, H, T, D)).astype(np.float32) for _ in range(3))
    g = rng.standard_normal((B, H, T, D)).astype(np.float32)
    tq, tk, tv = (pe.tensor(a, requires_grad=True) for a in (q, k, v))
    tg = pe.tensor(g)

    def fwd():
        with pe.no_grad():
            return F.scaled_dot_product_attention(tq, tk, tv, is_causal=True)

    def fwd_bwd():
        F.scaled_dot_product_attention(tq, tk, tv, is_causal=True).backward(tg)

    rep = 3 if quick or T >= 2048 else 5
    with Threads(threads):
        if torch is not None:
            ref = torch.nn.functional.scaled_dot_product_attention(*(torch.from_numpy(a) for a in (q, k, v)),
                                                                   is_causal=True).numpy()
            check_close("attention", fwd().numpy(), ref, 1e-3, 1e-4)
        t_f = timeit(fwd, repeat=rep)[0]
        t_fb = timeit(fwd_bwd, repeat=rep)[0]
        tt_f = tt_fb = None
        if torch is not None:
            Q, K_, V = (torch.from_numpy(a.copy()).requires_grad_() for a in (q, k, v))
            G = torch.from_numpy(g)

            def torch_fwd():
                with torch.no_grad():
                    return torch.nn.functional.scaled_dot_product_attention(Q, K_, V, is_causal=True)
            tt_f = timeit(torch_fwd, repeat=rep)[0]
            tt_fb = timeit(lambda: torch.nn.functional.scaled_dot_product_attention(Q, K_, V, is_causal=True)
                           .backward(G), repeat=rep)[0]
    # causal: about half of the 4 B H T^2 D flops of the two GEMMs (fwd); bwd ~2.5x fwd
    flops = 2.0 * B * H * T * T * D
    extra = f"extra memory O(BHT): lse {B * H * T * 4 / 1024:.0f} KiB"
    res.add("attention", f"causal fwd B{B} H{H} T{T} D{D}", threads, t_f, None, tt_f, work=flops, extra=extra)
    res.add("attention", f"causal fwd+bwd B{B} H{H} T{T} D{D}", threads, t_fb, None, tt_fb, work=3.5 * flops)


def run(res, quick=False):
    for shape in ((8, 8, 256, 64), (4, 8, 1024, 64), (1, 12, 2048, 64)):
        _case(res, *shape, threads=2, quick=quick)
