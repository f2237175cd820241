"""GEMM: pyengine's packed SIMD GEMM vs NumPy (OpenBLAS) vs PyTorch, float32 and float64."""
import numpy as np

from ..common import Threads, check_close, timeit, torch


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
        t_ours = timeit(lambda: kernels.matmul(a, b, trans_a=ta, trans_b=tb), repeat=rep)[0]
        t_np = timeit(lambda: np.matmul(opa, opb), repeat=rep)[0]
        t_torch = None
        if torch is not None:
            ta_, tb_ = torch.from_numpy(opa), torch.from_numpy(opb)
            t_torch = timeit(lambda: torch.matmul(ta_, tb_), repeat=rep)[0]
    flops = 2.0 * m * n * k * (batch or 1)
    res.add("gemm", name + ("" if dtype == np.float32 else " f64"), threads, t_ours, t_np, t_torch,
            work=flops, kind="compute")


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
    for s in (64, 128):
        _case(res, K, f"small {s}^3", s, s, s, 1)
    _case(res, K, "batched 64 x 128x64x128", 128, 64, 128, 1, batch=64)
    for ta, tb in ((False, True), (True, False), (True, True)):
        _case(res, K, f"1024^3 {'T' if ta else 'N'}{'T' if tb else 'N'}", 1024, 1024, 1024, 1, ta=ta, tb=tb)
    for s in (512, 1024):
        _case(res, K, f"{s}^3", s, s, s, 1, dtype=np.float64)
