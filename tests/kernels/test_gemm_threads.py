"""The 2-thread plan choice for A stored transposed with all of M in one row block (gemm.cpp, run: the per-unit
plans instead of the shared packed B, dev/gemm_notes.md "Two threads, third pass"): odd shapes on 2 and 3 threads
give bitwise the 1-thread result, within the float64 reference's bound, with alpha, beta and an out view."""
import numpy as np
import pytest

from pyengine import _C
from pyengine.backend import cpu
from pyengine.testing import results_on_threads

from .test_gemm import DTYPES, check_gemm, rand

# (M, K, N, trans_a, trans_b): M from 8 MR (the smallest that may share B) to one MC block, K short of the
# depth split's rule or C too large for it, N several column blocks; and a non-transposed control.
SHAPES = [(113, 517, 777, True, False), (300, 701, 523, True, True), (896, 389, 1031, True, False),
          (211, 1500, 1300, True, False), (300, 701, 523, False, False)]


@pytest.mark.parametrize("m,k,n,ta,tb", SHAPES)
def test_one_row_block_threads(isa, m, k, n, ta, tb):
    for dtype in DTYPES:
        rng = np.random.default_rng(m + k + n)
        a = rand(rng, (k, m) if ta else (m, k), dtype)
        b = rand(rng, (n, k) if tb else (k, n), dtype)
        c0 = rand(rng, (m, n), dtype)

        def run():
            buf = np.full((m, n + 2), np.nan, dtype)
            out = buf[:, 1:1 + n]
            out[...] = c0
            res = cpu.matmul(a, b, ta, tb, alpha=-0.5, beta=2.0, out=out)
            assert res is out and np.all(np.isnan(buf[:, 0])) and np.all(np.isnan(buf[:, -1]))
            return res.copy()

        r1, r2, r3 = results_on_threads(run)
        np.testing.assert_array_equal(r1, r2)
        np.testing.assert_array_equal(r1, r3)
        check_gemm(r1, a, b, ta, tb, -0.5, 2.0, c0)
        # the shared-B plan's 0 (per-unit plans) gives the same bits
        prev = _C.set_gemm_shared_b(0)
        try:
            (r0,) = results_on_threads(run, (2,))
        finally:
            _C.set_gemm_shared_b(prev)
        np.testing.assert_array_equal(r1, r0)
