"""GEMM: pyengine's packed SIMD GEMM vs NumPy (OpenBLAS) vs PyTorch, float32 and float64; and the bfloat16 GEMM
(AMX / AVX512-BF16, float32 accumulation) vs our float32 GEMM and PyTorch's bfloat16 matmul."""
import numpy as np

from ..common import Threads, _loop_count, alternating_rounds, check_close, timeit, torch


def _case(res, kernels, name, m, k, n, threads, dtype=np.float32, ta=False, tb=False, batch=None, quick=False):
    rng = np.random.default_rng(0)
    shp_a = (k, m) if ta else (m, k)
    shp_b = (n, k) if tb else (k, n)
    if batch:
        shp_a, shp_b = (batch,) + shp_a, (batch,) + shp_b
    a = rng.standard_normal(shp_a).astype(dtype)
    b = rng.standard_normal(shp_b).astype(dtype)
    opa = np.swapaxes(a, -1, -2) if ta else a
    opb = np.swapaxes(b, -1, -2) if tb else b
    with Threads(threads):
        ours = kernels.matmul(a, b, trans_a=ta, trans_b=tb)
        check_close(f"gemm {name}", ours, np.matmul(opa.astype(np.float64), opb.astype(np.float64)),
                    rtol=1e-3 if dtype == np.float32 else 1e-10, atol=1e-3 * np.sqrt(k))
        rep = 3 if quick or m * n * k >= 2 ** 33 else 7
        fns = [lambda: kernels.matmul(a, b, trans_a=ta, trans_b=tb), lambda: np.matmul(opa, opb)]
        if torch is not None:
            ta_, tb_ = torch.from_numpy(opa), torch.from_numpy(opb)
            fns.append(lambda: torch.matmul(ta_, tb_))
        # the engines in alternating rounds: back-to-back blocks once put them in different moments of this
        # shared VM (a 1-thread 4096^3 row read 0.65x NumPy that way and 0.96x alternating, same build)
        for f in fns:
            f()
        times = alternating_rounds(fns, [_loop_count(fns[0], 0.05)] * len(fns), rep)
        t_ours, t_np = times[0], times[1]
        t_torch = times[2] if torch is not None else None
    flops = 2.0 * m * n * k * (batch or 1)
    res.add("gemm", name + ("" if dtype == np.float32 else " f64"), threads, t_ours, t_np, t_torch,
            work=flops, kind="compute")


def _case_bf16(res, kernels, s, threads, quick=False):
    """s^3 in bfloat16 (bfloat16 result, rounded once from the float32 sums) against our float32 GEMM on the
    same values, interleaved in one process; PyTorch's bfloat16 matmul in the torch column."""
    from pyengine import _dtype as D
    from pyengine.backend.cpu import gemm_bf16
    rng = np.random.default_rng(0)
    a32, b32 = rng.standard_normal((s, s)).astype(np.float32), rng.standard_normal((s, s)).astype(np.float32)
    a, b = a32.astype(D.BF16_NP), b32.astype(D.BF16_NP)
    rep = 3 if quick or s >= 4096 else 5
    with Threads(threads):
        ours = kernels.matmul_bf16(a, b)
        check_close(f"gemm bf16 {s}^3", ours, np.matmul(a.astype(np.float64), b.astype(np.float64)),
                    rtol=1e-3, atol=1e-3 * np.sqrt(s))
        t_bf16, t_f32 = [], []
        for _ in range(rep):  # alternate, so both see the same moments of a busy machine
            t_bf16.append(timeit(lambda: kernels.matmul_bf16(a, b, bf16_out=True), repeat=1, warmup=0)[0])
            t_f32.append(timeit(lambda: kernels.matmul(a32, b32), repeat=1, warmup=0)[0])
        t_ours, t_fp32 = float(np.min(t_bf16)), float(np.min(t_f32))
        t_torch = None
        if torch is not None:
            ta_, tb_ = torch.from_numpy(a32).bfloat16(), torch.from_numpy(b32).bfloat16()
            t_torch = timeit(lambda: torch.matmul(ta_, tb_), repeat=rep)[0]
    res.add("gemm", f"bf16 {s}^3 ({gemm_bf16.path()})", threads, t_ours, None, t_torch, work=2.0 * s ** 3,
            kind="compute", extra=f"our fp32 GEMM {t_fp32 * 1e3:.2f} ms: bf16 {t_fp32 / t_ours:.2f}x faster "
            f"(best of {rep}, alternating)")


GPT_DW = ((128, 128), (128, 384), (128, 512), (512, 128), (384, 384), (384, 1152), (384, 1536), (1536, 384))


def run(res, quick=False):
    from pyengine.backend import get_backend
    K = get_backend("cpu")
    squares = (256, 512, 1024, 2048) if quick else (256, 512, 1024, 2048, 4096)
    for threads in (1, 2):
        for s in squares:
            _case(res, K, f"{s}^3", s, s, s, threads, quick=quick)
        for (m, k, n) in ((2048, 128, 384), (2048, 128, 512), (2048, 512, 128), (4096, 768, 3072),
                          (8192, 768, 768)):
            _case(res, K, f"M{m} K{k} N{n}", m, k, n, threads, quick=quick)
        # the GPT's weight gradients dW = X^T dY (A stored transposed, K = batch x time): the L4 C128 model's
        # (C x C, C x 3C, C x 4C, 4C x C), then the L6 C384 model's
        for (m, n) in GPT_DW[:4] if quick else GPT_DW:
            _case(res, K, f"dW M{m} N{n} K2048 TN", m, 2048, n, threads, ta=True, quick=quick)
    for s in (64, 128):
        _case(res, K, f"small {s}^3", s, s, s, 1)
    _case(res, K, "batched 64 x 128x64x128", 128, 64, 128, 1, batch=64)
    for ta, tb in ((False, True), (True, False), (True, True)):
        _case(res, K, f"1024^3 {'T' if ta else 'N'}{'T' if tb else 'N'}", 1024, 1024, 1024, 1, ta=ta, tb=tb)
    for s in (512, 1024):
        _case(res, K, f"{s}^3", s, s, s, 1, dtype=np.float64)
    for threads in (1, 2):
        for s in ((1024, 2048) if quick else (1024, 2048, 4096)):
            _case_bf16(res, K, s, threads, quick=quick)
