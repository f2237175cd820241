"""GEMM kernels (csrc/cpu/gemm*.cpp, backend/cpu/gemm.py) against the NumPy reference.

The backend's contract: 2-D, batched 3-D or 4-D operands (a batch dim of 1 broadcasts), any layout, out of
any layout. 1-D operands and more batch dims are the matmul op's (tests/test_ops.py holds it to np.matmul).

Run as a script (python tests/kernels/test_gemm.py) to print a 1-thread GFLOP/s
comparison with NumPy/OpenBLAS instead.
"""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyengine import _C
from pyengine.backend import cpu, reference
from pyengine.testing import ODD_SIZES, assert_close, results_on_threads

DTYPES = (np.float32, np.float64)
sizes = st.sampled_from(ODD_SIZES)
dtypes = st.sampled_from(DTYPES)
seeds = st.integers(0, 2**32 - 1)
scalars = st.sampled_from([1.0, -0.5, 2.0, 0.0])
betas = st.sampled_from([0.0, 1.0, 0.5, -2.0])


def rand(rng, shape, dtype):
    return rng.standard_normal(shape).astype(dtype)


def op(x, trans):
    return np.swapaxes(x, -1, -2) if trans else x


def check_gemm(actual, a, b, trans_a=False, trans_b=False, alpha=1.0, beta=0.0, out0=None, msg=""):
    """actual vs the reference computed in float64, within the float32/float64 error bound.

    Rounding error of a length-K dot product is bounded by ~eps * K * sum|a_i b_i|; random
    data gives ~eps * sqrt(K) * that, so the bound below scales with sqrt(K) and with
    |alpha| |op(a)| @ |op(b)| + |beta * out| elementwise.
    """
    dtype = np.asarray(actual).dtype
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    o64 = None if out0 is None else out0.astype(np.float64)
    expected = reference.matmul(a64, b64, trans_a, trans_b, alpha, beta, None if o64 is None else o64.copy())
    K = op(a, trans_a).shape[-1] if a.ndim > 1 else a.shape[0]
    bound = abs(alpha) * np.matmul(np.abs(op(a64, trans_a)), np.abs(op(b64, trans_b)))
    if beta != 0.0:
        bound = bound + abs(beta) * np.abs(o64)
    eps = np.finfo(dtype).eps
    tol = eps * (4.0 * math.sqrt(max(K, 1)) + 8.0)
    err = np.abs(np.asarray(actual, np.float64) - expected)
    ok = err <= tol * bound + np.finfo(dtype).tiny
    assert np.shape(actual) == np.shape(expected), f"{msg}shape {np.shape(actual)} vs {np.shape(expected)}"
    assert np.all(ok), (f"{msg}max error {err.max():.3g}, worst err/bound "
                        f"{(err / np.maximum(bound, 1e-300)).max():.3g} > tol {tol:.3g}")


# ------------------------------------------------------------------ 2-D, all transposes, alpha/beta

@settings(deadline=None)
@given(m=sizes, k=sizes, n=sizes, ta=st.booleans(), tb=st.booleans(), dtype=dtypes, alpha=scalars, beta=betas,
       seed=seeds)
def test_matmul_2d(isa, m, k, n, ta, tb, dtype, alpha, beta, seed):
    rng = np.random.default_rng(seed)
    a = rand(rng, (k, m) if ta else (m, k), dtype)
    b = rand(rng, (n, k) if tb else (k, n), dtype)
    a0, b0 = a.copy(), b.copy()
    out0 = rand(rng, (m, n), dtype) if beta != 0.0 else None
    out = None if out0 is None else out0.copy()
    res = cpu.matmul(a, b, ta, tb, alpha, beta, out)
    assert res.dtype == dtype and res.shape == (m, n)
    if out is not None:
        assert res is out
    check_gemm(res, a, b, ta, tb, alpha, beta, out0)
    np.testing.assert_array_equal(a, a0)  # inputs untouched
    np.testing.assert_array_equal(b, b0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m,k,n", [(1, 1, 1), (1, 37, 1), (1, 300, 257), (257, 300, 1), (5, 1, 7), (64, 1, 33),
                                   (31, 0, 9), (0, 5, 3), (3, 5, 0)])
def test_matmul_edge_sizes(isa, m, k, n, dtype):
    rng = np.random.default_rng(m * 1000 + k * 10 + n)
    for ta in (False, True):
        for tb in (False, True):
            a = rand(rng, (k, m) if ta else (m, k), dtype)
            b = rand(rng, (n, k) if tb else (k, n), dtype)
            check_gemm(cpu.matmul(a, b, ta, tb), a, b, ta, tb, msg=f"ta={ta} tb={tb}: ")
            out0 = rand(rng, (m, n), dtype)
            out = out0.copy()
            cpu.matmul(a, b, ta, tb, 0.5, 1.5, out=out)
            check_gemm(out, a, b, ta, tb, 0.5, 1.5, out0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m,k,n,ta,tb", [(211, 263, 241, False, False), (300, 200, 257, True, False),
                                         (255, 290, 229, False, True), (233, 251, 300, True, True),
                                         (67, 777, 45, False, False), (470, 130, 530, True, True)])
def test_matmul_larger(isa, m, k, n, ta, tb, dtype):
    """Sizes over the micro-tiles and (K = 777, M = 470, N = 530) over the cache blocks."""
    rng = np.random.default_rng(k)
    a = rand(rng, (k, m) if ta else (m, k), dtype)
    b = rand(rng, (n, k) if tb else (k, n), dtype)
    out0 = rand(rng, (m, n), dtype)
    out = out0.copy()
    cpu.matmul(a, b, ta, tb, -1.5, 0.5, out)
    check_gemm(out, a, b, ta, tb, -1.5, 0.5, out0)


@pytest.fixture
def tiny_blocks(isa):
    """Cache blocks of a few micro-tiles (and KC = 7), so that small matrices cross every
    block boundary: several depth passes, row blocks and column blocks."""
    saved = {dt: _C.gemm_blocking(isa, dt) for dt in DTYPES}
    for dt in DTYPES:
        t = saved[dt]
        _C.set_gemm_blocking(isa, dt, 2 * t["mr"], 7, 2 * t["nr"])
    yield isa
    for dt in DTYPES:
        t = saved[dt]
        _C.set_gemm_blocking(isa, dt, t["mc"], t["kc"], t["nc"])


@pytest.mark.parametrize("kc", [16, 37])
@pytest.mark.parametrize("ta,tb", [(False, False), (True, False), (False, True), (True, True)])
def test_packing_row_sweeps(isa, kc, ta, tb):
    """A transposed and B not are packed 16 source rows at a time across a whole block (pack_a / pack_b
    in gemm.cpp): depth blocks of exactly 16 and of 37 (16 + 16 + 5), a last one of 26 (16 + 10), and row
    and column blocks with partial micro-panels."""
    saved = {dt: _C.gemm_blocking(isa, dt) for dt in DTYPES}
    try:
        for dt in DTYPES:
            t = saved[dt]
            _C.set_gemm_blocking(isa, dt, 3 * t["mr"], kc, 2 * t["nr"])
        for dtype in DTYPES:
            m, k, n = 4 * _C.gemm_blocking(isa, dtype)["mr"] + 5, 100, 5 * _C.gemm_blocking(isa, dtype)["nr"] + 3
            rng = np.random.default_rng(kc)
            a = rand(rng, (k, m) if ta else (m, k), dtype)
            b = rand(rng, (n, k) if tb else (k, n), dtype)
            out0 = rand(rng, (m, n), dtype)
            out = out0.copy()
            cpu.matmul(a, b, ta, tb, 0.75, 1.0, out)
            check_gemm(out, a, b, ta, tb, 0.75, 1.0, out0)
    finally:
        for dt in DTYPES:
            t = saved[dt]
            _C.set_gemm_blocking(isa, dt, t["mc"], t["kc"], t["nc"])


@settings(deadline=None)
@given(m=sizes, k=sizes, n=sizes, ta=st.booleans(), tb=st.booleans(), dtype=dtypes, beta=betas, seed=seeds)
def test_matmul_across_blocks(tiny_blocks, m, k, n, ta, tb, dtype, beta, seed):
    rng = np.random.default_rng(seed)
    a = rand(rng, (k, m) if ta else (m, k), dtype)
    b = rand(rng, (n, k) if tb else (k, n), dtype)
    out0 = rand(rng, (m, n), dtype)
    out = out0.copy()
    cpu.matmul(a, b, ta, tb, 1.25, beta, out)
    check_gemm(out, a, b, ta, tb, 1.25, beta, out0)
    # and the bias epilogue, which only the first depth pass applies
    bias = rand(rng, (n,), dtype)
    w = rand(rng, (n, k), dtype)
    x = rand(rng, (m, k), dtype)
    assert_close(cpu.linear(x, w, bias), reference.linear(x.astype(np.float64), w, bias),
                 rtol=10 * np.finfo(dtype).eps * math.sqrt(k), atol=10 * np.finfo(dtype).eps * math.sqrt(k) * 4)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("m, k, n", [(29, 40, 128), (14, 512, 97), (200, 7, 33), (43, 129, 129), (3, 50, 64)])
def test_narrow_c_reads_a_in_place(isa, threads, m, k, n):
    """Narrow C (N <= 128) with A not transposed: the AVX-512 path reads full MR-row strips of A straight
    from its rows and packs only the last partial strip. A is a column slice of a wider array (lda > K),
    K crosses depth blocks, C is a view inside a NaN-filled buffer that must stay NaN outside it."""
    before = _C.num_threads()
    _C.set_num_threads(threads)
    try:
        for dtype in DTYPES:
            rng = np.random.default_rng(m * k + n)
            wide = rand(rng, (m, k + 9), dtype)
            a, b = wide[:, 3:3 + k], rand(rng, (k, n), dtype)
            buf = np.full((m + 2, n + 5), np.nan, dtype)
            out = buf[1:1 + m, 2:2 + n]
            out[...] = rand(rng, (m, n), dtype)
            out0 = out.copy()
            res = cpu.matmul(a, b, alpha=0.5, beta=-1.0, out=out)
            assert res is out
            check_gemm(res, a, b, alpha=0.5, beta=-1.0, out0=out0)
            outside = np.ones(buf.shape, bool)
            outside[1:1 + m, 2:2 + n] = False
            assert np.all(np.isnan(buf[outside]))
    finally:
        _C.set_num_threads(before)


@pytest.mark.parametrize("m, k, n", [(2048, 128, 384), (101, 128, 512), (29, 64, 500), (4103, 9, 141),
                                     (57, 60, 130), (43, 100, 1100)])
def test_short_rows_read_a_in_place(isa, m, k, n):
    """A with short rows (up to 512 bytes) and B one column block (N <= NC) is read in place whatever N (the GPT's
    forward x W^T: M 2048, K 128, N 384), one row block of up to 4096 rows. Same bits as the packed-A path
    (set_gemm_short_rows_a(False)) and on 1, 2, 3 threads; A is a column slice of a wider array (lda > K), C a
    view inside a NaN-filled buffer; linear's bias in the epilogue; vs the reference."""
    for dtype in DTYPES:
        rng = np.random.default_rng(m + k * n)
        wide = rand(rng, (m, k + 5), dtype)
        a, b, w = wide[:, 2:2 + k], rand(rng, (k, n), dtype), rand(rng, (n, k), dtype)
        bias = rand(rng, (n,), dtype)
        c0 = rand(rng, (m, n), dtype)

        def run():
            buf = np.full((m + 1, n + 3), np.nan, dtype)
            out = buf[1:, 1:1 + n]
            out[...] = c0
            res = cpu.matmul(a, b, alpha=-0.5, beta=2.0, out=out)
            assert res is out and np.all(np.isnan(buf[0])) and np.all(np.isnan(buf[:, 0]))
            assert np.all(np.isnan(buf[:, -2:]))
            return res.copy(), cpu.linear(a, w, bias)

        got = results_on_threads(run)
        prev = _C.set_gemm_short_rows_a(False)
        try:
            packed = results_on_threads(run, (1, 2))
        finally:
            _C.set_gemm_short_rows_a(prev)
        assert prev is True
        for r, lin in got[1:] + packed:
            np.testing.assert_array_equal(r, got[0][0])
            np.testing.assert_array_equal(lin, got[0][1])
        check_gemm(got[0][0], a, b, alpha=-0.5, beta=2.0, out0=c0)
        assert_close(got[0][1], reference.linear(a.astype(np.float64), w, bias),
                     rtol=10 * np.finfo(dtype).eps * math.sqrt(k), atol=40 * np.finfo(dtype).eps * math.sqrt(k))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("batch,m,k,n", [(1, 1, 1000, 3), (1, 3, 1000, 1), (1, 1, 77, 1100), (1, 1100, 77, 1),
                                         (3, 1, 70, 40), (3, 40, 70, 1), (2, 1, 0, 5), (2, 5, 0, 1)])
def test_matvec(isa, batch, m, k, n, dtype):
    """M == 1 or N == 1 take the matrix-vector path: every transpose, strided vectors,
    broadcast batches, alpha/beta and the bias."""
    rng = np.random.default_rng(m + 7 * k + 13 * n)
    for ta in (False, True):
        for tb in (False, True):
            a = rand(rng, (batch,) + ((k, m) if ta else (m, k)), dtype)
            b = rand(rng, (1,) + ((n, k) if tb else (k, n)), dtype)    # b broadcast over the batch
            out0 = rand(rng, (batch, m, n), dtype)
            out = out0.copy()
            cpu.matmul(a, b, ta, tb, -0.5, 0.75, out)
            check_gemm(out, a, b, ta, tb, -0.5, 0.75, out0, msg=f"ta={ta} tb={tb}: ")
            check_gemm(cpu.matmul(a, b, ta, tb), a, b, ta, tb, msg=f"ta={ta} tb={tb}: ")
    x, w, bias = rand(rng, (m, k), dtype), rand(rng, (n, k), dtype), rand(rng, (n,), dtype)
    tol = 1e-4 if dtype == np.float32 else 1e-10
    assert_close(cpu.linear(x, w, bias), reference.linear(x.astype(np.float64), w, bias), rtol=tol, atol=tol * 10)
    assert_close(cpu.linear(x, w.T.copy().T, bias), reference.linear(x.astype(np.float64), w, bias),
                 rtol=tol, atol=tol * 10)


def test_beta_zero_ignores_out(isa):
    rng = np.random.default_rng(0)
    for dtype in DTYPES:
        a, b = rand(rng, (33, 17), dtype), rand(rng, (17, 40), dtype)
        out = np.full((33, 40), np.nan, dtype)
        cpu.matmul(a, b, out=out)
        assert np.isfinite(out).all()
        check_gemm(out, a, b)
        out[:] = np.inf
        cpu.matmul(a, b, alpha=2.0, beta=0.0, out=out)
        check_gemm(out, a, b, alpha=2.0)


def test_nan_propagates(isa):
    a = np.ones((20, 20), np.float32)
    a[3, 4] = np.nan
    b = np.ones((20, 20), np.float32)
    res = cpu.matmul(a, b)
    assert np.isnan(res[3]).all() and np.isfinite(np.delete(res, 3, axis=0)).all()


# ------------------------------------------------------------------ batches and broadcasting

BATCH_CASES = [
    ((4,), (4,)), ((4,), ()), ((), (4,)), ((1,), (5,)), ((5,), (1,)), ((1,), (1,)), ((0,), (0,)), ((0,), ()),
    ((), (0,)), ((1,), (0,)), ((0,), (1,)),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("ba,bb", BATCH_CASES)
def test_matmul_batched(isa, ba, bb, dtype):
    rng = np.random.default_rng(len(ba) * 10 + len(bb))
    m, k, n = 13, 9, 17
    for ta, tb in ((False, False), (True, True), (False, True)):
        a = rand(rng, ba + ((k, m) if ta else (m, k)), dtype)
        b = rand(rng, bb + ((n, k) if tb else (k, n)), dtype)
        res = cpu.matmul(a, b, ta, tb, 0.5)
        check_gemm(res, a, b, ta, tb, 0.5)
        out0 = rand(rng, res.shape, dtype)
        out = out0.copy()
        assert cpu.matmul(a, b, ta, tb, 1.0, 2.0, out=out) is out
        check_gemm(out, a, b, ta, tb, 1.0, 2.0, out0)


@settings(deadline=None)
@given(batch=st.sampled_from([1, 2, 3, 7, 16]), m=sizes, k=sizes, n=sizes, ta=st.booleans(), tb=st.booleans(),
       bcast=st.sampled_from(["none", "a", "b"]), dtype=dtypes, seed=seeds)
def test_matmul_batched_random(isa, batch, m, k, n, ta, tb, bcast, dtype, seed):
    rng = np.random.default_rng(seed)
    a = rand(rng, ((1,) if bcast == "a" else (batch,)) + ((k, m) if ta else (m, k)), dtype)
    b = rand(rng, ((1,) if bcast == "b" else (batch,)) + ((n, k) if tb else (k, n)), dtype)
    check_gemm(cpu.matmul(a, b, ta, tb), a, b, ta, tb)


def test_empty_batch_is_empty(isa):
    """A batch of 0 gives an empty result: never a batch of 1 computed from an empty buffer."""
    for a_shape, b_shape in (((3, 2), (0, 2, 4)), ((0, 3, 2), (2, 4)), ((1, 3, 2), (0, 2, 4)),
                             ((1, 2**20), (0, 2**20, 1))):
        a, b = np.ones(a_shape, np.float32), np.ones(b_shape, np.float32)
        res = cpu.matmul(a, b)
        assert res.shape == reference.matmul(a, b).shape == (0,) + res.shape[1:], (a_shape, b_shape)


def test_out_must_match(isa):
    """out has exactly the result's shape: no batch broadcast into out (the op never asks for one)."""
    a, b = np.ones((6, 5)), np.ones((5, 4))
    for backend in (cpu, reference):
        with pytest.raises(ValueError, match="out"):
            backend.matmul(a, b, beta=1.0, out=np.ones((3, 6, 4)))


def _one_and_two_threads(fn, units=None):
    """fn() on 1 thread, then on 2 threads; units: _C.set_gemm_shared_b's units per thread (0: B packed per row
    block), None: the default."""
    before = _C.num_threads()
    before_shared = _C.set_gemm_shared_b(4)  # returns the current value
    units = before_shared if units is None else units
    _C.set_gemm_shared_b(units)
    try:
        _C.set_num_threads(1)
        r1 = fn()
        _C.set_num_threads(2)
        r2 = fn()
    finally:
        _C.set_num_threads(before)
        assert _C.set_gemm_shared_b(before_shared) == units
    return r1, r2


@pytest.mark.parametrize("m, k, n, ta, tb, batch", [
    (113, 250, 77, False, False, None),  # narrow C: A read in place
    (300, 389, 530, True, True, None),   # crosses a depth block and a column block
    (127, 19, 1030, False, True, None),
    (500, 33, 300, True, False, 3),      # a few matrices, B broadcast over the batch
    (2000, 17, 64, False, False, None),  # many row blocks
])
@pytest.mark.parametrize("units", [None, 1, 0])
def test_shared_b_threads(isa, m, k, n, ta, tb, batch, units):
    """Few tall matrices on 2 threads (work above 2 x kGrainFma) share one packed B (run_shared_b): the result
    equals the 1-thread one bitwise, with alpha, beta, an out view inside a NaN-filled buffer and a bias.
    units=1: fewer, larger units; units=0: B packed per row block (the plan for many matrices) on the same shapes."""
    for dtype in DTYPES:
        rng = np.random.default_rng(m + k + n)
        a = rand(rng, ((batch,) if batch else ()) + ((k, m) if ta else (m, k)), dtype)
        b = rand(rng, (n, k) if tb else (k, n), dtype)
        out_shape = ((batch,) if batch else ()) + (m, n)
        c0 = rand(rng, out_shape, dtype)

        def run():
            buf = np.full(out_shape[:-1] + (n + 3,), np.nan, dtype)
            out = buf[..., 1:1 + n]
            out[...] = c0
            res = cpu.matmul(a, b, ta, tb, alpha=-0.5, beta=2.0, out=out)
            assert res is out and np.all(np.isnan(buf[..., 0])) and np.all(np.isnan(buf[..., -2:]))
            return res.copy()

        r1, r2 = _one_and_two_threads(run, units)
        np.testing.assert_array_equal(r1, r2)
        check_gemm(r2, a, np.broadcast_to(b, a.shape[:-2] + b.shape), ta, tb, -0.5, 2.0, c0)
        if not ta and not batch:
            w = b if tb else np.ascontiguousarray(b.T)
            bias = rand(rng, (n,), dtype)
            l1, l2 = _one_and_two_threads(lambda: cpu.linear(a, w, bias), units)
            np.testing.assert_array_equal(l1, l2)
            assert_close(l2, reference.linear(a.astype(np.float64), w, bias),
                         rtol=10 * np.finfo(dtype).eps * math.sqrt(k), atol=40 * np.finfo(dtype).eps * math.sqrt(k))


def test_set_gemm_shared_b_checks():
    with pytest.raises(ValueError, match="set_gemm_shared_b"):
        _C.set_gemm_shared_b(-1)


@pytest.mark.parametrize("k, n", [(6000, 1100), (12500, 600)])
def test_shared_b_slabs(k, n):
    """B too large to share at once (24 MiB): several column slabs (6000 x 1100), or groups of depth blocks
    (12500 x 600) on the native ISA; 2 threads equal 1 thread bitwise and the reference."""
    rng = np.random.default_rng(k)
    a, b = rand(rng, (113, k), np.float32), rand(rng, (k, n), np.float32)
    r1, r2 = _one_and_two_threads(lambda: cpu.matmul(a, b))
    np.testing.assert_array_equal(r1, r2)
    check_gemm(r2, a, b)


def _check_no_waits(m, k, n, ta, tb, batch, own_b):
    rng = np.random.default_rng(m + k + n)
    a = rand(rng, ((batch,) if batch else ()) + ((k, m) if ta else (m, k)), np.float32)
    b = rand(rng, ((batch,) if batch else ()) + ((n, k) if tb else (k, n)), np.float32)
    c0 = rand(rng, ((batch,) if batch else ()) + (m, n), np.float32)
    prev = _C.set_gemm_own_b(own_b)
    try:
        r1, r2, r3 = results_on_threads(lambda: cpu.matmul(a, b, ta, tb, alpha=1.5, beta=-1.0, out=c0.copy()))
    finally:
        assert _C.set_gemm_own_b(prev) == own_b
    np.testing.assert_array_equal(r1, r2)
    np.testing.assert_array_equal(r1, r3)
    check_gemm(r2, a, b, ta, tb, 1.5, -1.0, c0)


@pytest.mark.parametrize("m, k, n, ta, tb, batch", [
    (500, 33, 300, True, False, 3),       # 3 matrices: 3 phases, the third reuses the first's slab buffer
    (211, 389, 1031, False, True, None),  # one phase, column ranges straddling column blocks
    (127, 700, 523, False, False, 2),     # 2 phases of 2 depth blocks
])
@pytest.mark.parametrize("own_b", [False, True])
def test_shared_b_no_waits(isa, m, k, n, ta, tb, batch, own_b):
    """run_shared_b never waits for a peer: a thread that finds a shared B block claimed but unwritten, or the
    slab buffer still in use, packs a private copy; one that runs out of units of a phase (a slab, a matrix)
    goes on into the next (two slab buffers). own_b: every block packed privately (set_gemm_own_b). 1, 2 and 3
    threads give the same bits, within the float64 reference's bound."""
    _check_no_waits(m, k, n, ta, tb, batch, own_b)


@pytest.mark.parametrize("own_b", [False, True])
def test_shared_b_no_waits_slabs(own_b):
    """As test_shared_b_no_waits with B of 48 MiB (113 x 6000 x 2100): 3 column slabs in two buffers, the third
    slab reusing the first's; native ISA only (the largest case)."""
    _check_no_waits(113, 6000, 2100, False, False, None, own_b)


@pytest.fixture
def depth_split():
    """run_depth_split on (it is off by default) for the test, the previous setting restored after."""
    prev = _C.set_gemm_depth_split(True)
    yield
    _C.set_gemm_depth_split(prev)


@pytest.mark.parametrize("m, k, n, ta, tb", [
    (128, 2048, 128, True, False),   # the GPT's weight gradient dW = X^T dY
    (37, 1500, 53, True, False),     # a last chunk of 476: passes of unequal depth
    (113, 1100, 61, False, True),    # 3 chunks, the last 76 deep
    (17, 1024, 600, True, True),     # C wider than one column block (NC)
    (300, 1400, 5, False, False),
])
def test_depth_split(isa, depth_split, m, k, n, ta, tb):
    """Small C, long depth (run_depth_split): depth chunks of a fixed size summed in chunk order, so 1, 2 and 3
    threads give the same bits; alpha, beta, a bias, an out view inside a NaN-filled buffer; vs the reference and
    vs the row/column plans (set_gemm_depth_split(False))."""
    for dtype in DTYPES:
        rng = np.random.default_rng(m * k + n)
        a = rand(rng, (k, m) if ta else (m, k), dtype)
        b = rand(rng, (n, k) if tb else (k, n), dtype)
        c0 = rand(rng, (m, n), dtype)

        def run(alpha=-0.5, beta=2.0):
            buf = np.full((m, n + 3), np.nan, dtype)
            out = buf[:, 1:1 + n]
            out[...] = c0 if beta != 0.0 else np.nan
            res = cpu.matmul(a, b, ta, tb, alpha=alpha, beta=beta, out=out)
            assert res is out and np.all(np.isnan(buf[:, 0])) and np.all(np.isnan(buf[:, -2:]))
            return res.copy()

        r1, r2, r3 = results_on_threads(run)
        np.testing.assert_array_equal(r1, r2)
        np.testing.assert_array_equal(r1, r3)
        check_gemm(r1, a, b, ta, tb, -0.5, 2.0, c0)
        z1, z2 = results_on_threads(lambda: run(1.0, 0.0), (1, 2))  # beta 0: out (NaN) never read
        np.testing.assert_array_equal(z1, z2)
        check_gemm(z1, a, b, ta, tb)
        assert _C.set_gemm_depth_split(False) is True
        try:
            check_gemm(run(), a, b, ta, tb, -0.5, 2.0, c0)
        finally:
            _C.set_gemm_depth_split(True)
        if not ta:
            w = b if tb else np.ascontiguousarray(b.T)
            bias = rand(rng, (n,), dtype)
            l1, l2, l3 = results_on_threads(lambda: cpu.linear(a, w, bias))
            np.testing.assert_array_equal(l1, l2)
            np.testing.assert_array_equal(l1, l3)
            assert_close(l1, reference.linear(a.astype(np.float64), w, bias),
                         rtol=10 * np.finfo(dtype).eps * math.sqrt(k), atol=40 * np.finfo(dtype).eps * math.sqrt(k))


def test_depth_split_tiny_blocks(tiny_blocks, depth_split):
    """run_depth_split with KC = 7 and NC = 2 NR: many depth passes per chunk, several column blocks."""
    rng = np.random.default_rng(5)
    for dtype in DTYPES:
        a, b = rand(rng, (1030, 41), dtype), rand(rng, (1030, 70), dtype)
        r1, r2 = results_on_threads(lambda: cpu.matmul(a, b, True, False), (1, 2))
        np.testing.assert_array_equal(r1, r2)
        check_gemm(r1, a, b, True, False)


def test_small_batched_threads(isa):
    """A batch large enough to go multi-threaded gives bitwise the 1-thread result."""
    rng = np.random.default_rng(2)
    a, b = rand(rng, (64, 128, 64), np.float32), rand(rng, (64, 64, 128), np.float32)
    big_a, big_b = rand(rng, (250, 300), np.float64), rand(rng, (300, 270), np.float64)
    before = _C.num_threads()
    try:
        _C.set_num_threads(1)
        r1, q1 = cpu.matmul(a, b), cpu.matmul(big_a, big_b)
        _C.set_num_threads(2)
        r2, q2 = cpu.matmul(a, b), cpu.matmul(big_a, big_b)
    finally:
        _C.set_num_threads(before)
    np.testing.assert_array_equal(r1, r2)
    np.testing.assert_array_equal(q1, q2)
    check_gemm(r2, a, b)
    check_gemm(q2, big_a, big_b)


# ------------------------------------------------------------------ the small-problem path
# small_avx512 in csrc/cpu/gemm_avx512.cpp, run_small in gemm.cpp: one thread, K within one depth pass, B small; A and B read in
# place (B packed whole when transposed), rows cut into equal strips. Every result is held to the float64
# reference and, bit for bit, to the packed path (_C.set_gemm_small(False)): both sum each element over p
# ascending in one FMA chain when K <= KC. Under the generic and AVX2 levels there is no small kernel (the
# tests then check the packed path alone).

# rows: 2..14 (one strip of that height), 15 (8 + 7), 27-29, 64 (5 x 13/12), 65, 97 (7 strips: 14 x 6 + 13);
# columns: within one vector, one vector and a part, a full tile, a full tile and a part; depth up to KC (384
# float / 256 double on AVX-512).
SMALL_SHAPES = [(2, 1, 2), (3, 7, 5), (5, 2, 17), (7, 13, 31), (8, 64, 16), (9, 3, 33), (13, 17, 32), (14, 9, 15),
          (15, 31, 47), (27, 64, 64), (28, 5, 65), (29, 97, 63), (64, 64, 64), (65, 65, 65), (67, 67, 67),
          (97, 97, 97), (48, 256, 7), (33, 384, 40), (200, 16, 97), (6, 250, 130)]
SMALL_SHAPES_TRANS = [(False, False), (False, True), (True, False), (True, True)]


def _small_matmul(a, b, ta, tb, alpha=1.0, beta=0.0, c0=None, small=True):
    """cpu.matmul of op(a) @ op(b) with the stored operands passed transposed as views; out (when c0 is given:
    beta != 0) a view inside a NaN frame that must stay NaN."""
    prev = _C.set_gemm_small(small)
    try:
        va = np.swapaxes(a, -1, -2) if ta else a
        vb = np.swapaxes(b, -1, -2) if tb else b
        m, n = va.shape[-2], vb.shape[-1]
        lead = np.broadcast_shapes(va.shape[:-2], vb.shape[:-2])
        buf = np.full(lead + (m + 2, n + 5), np.nan, a.dtype)
        out = buf[..., 1:1 + m, 2:2 + n]
        if c0 is not None:
            out[...] = c0
        res = cpu.matmul(va, vb, alpha=alpha, beta=beta, out=out)
        assert res is out
        frame = buf.copy()
        frame[..., 1:1 + m, 2:2 + n] = np.nan
        assert np.all(np.isnan(frame)), "wrote outside out"
        return out.copy()
    finally:
        _C.set_gemm_small(prev)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("ta, tb", SMALL_SHAPES_TRANS)
def test_small_vs_packed_and_reference(isa, ta, tb, dtype):
    """Every small shape, every transpose, alpha/beta: same bits as the packed path, within the float64
    reference's bound. The stored operands are column slices of wider arrays (row stride > row length)."""
    for m, k, n in SMALL_SHAPES:
        rng = np.random.default_rng(m * 1000 + k * 10 + n)
        sa, sb = ((k, m) if ta else (m, k)), ((n, k) if tb else (k, n))
        a = rand(rng, (sa[0], sa[1] + 3), dtype)[:, 1:1 + sa[1]]
        b = rand(rng, (sb[0], sb[1] + 7), dtype)[:, 5:5 + sb[1]]
        c0 = rand(rng, (m, n), dtype)
        opa, opb = (a.T if ta else a), (b.T if tb else b)
        for alpha, beta, c in ((1.0, 0.0, None), (-0.5, 2.0, c0), (2.0, 1.0, c0)):
            got = _small_matmul(a, b, ta, tb, alpha, beta, c)
            ref = _small_matmul(a, b, ta, tb, alpha, beta, c, small=False)
            np.testing.assert_array_equal(got, ref, err_msg=f"{m}x{k}x{n} alpha {alpha} beta {beta}")
            check_gemm(got, opa, opb, alpha=alpha, beta=beta, out0=c, msg=f"{m}x{k}x{n}: ")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m, k, n", [(5, 7, 3), (14, 33, 32), (29, 64, 65), (64, 64, 64), (97, 40, 17)])
def test_small_linear_bias(isa, m, k, n, dtype):
    """linear's bias added in the small tile's epilogue (B = W transposed: packed once), full and masked
    column tiles; same bits as the packed path."""
    rng = np.random.default_rng(m + k + n)
    x, w, bias = rand(rng, (m, k), dtype), rand(rng, (n, k), dtype), rand(rng, (n,), dtype)
    got = cpu.linear(x, w, bias)
    prev = _C.set_gemm_small(False)
    try:
        ref = cpu.linear(x, w, bias)
    finally:
        _C.set_gemm_small(prev)
    np.testing.assert_array_equal(got, ref)
    exp = x.astype(np.float64) @ w.T.astype(np.float64) + bias
    np.testing.assert_allclose(got, exp, rtol=1e-4 if dtype == np.float32 else 1e-12,
                               atol=1e-4 if dtype == np.float32 else 1e-12)


@pytest.mark.parametrize("ta, tb", SMALL_SHAPES_TRANS)
@pytest.mark.parametrize("bcast", ["none", "a", "b"])
def test_small_batched(isa, ta, tb, bcast):
    """Batches of small matrices, one operand broadcast over the batch (batch stride 0: a transposed B is then
    packed once for all); on 1, 2 and 3 threads (more work than one thread's grain: the packed plans there)
    the same bits."""
    for dtype in DTYPES:
        rng = np.random.default_rng(len(bcast) + 2 * ta + tb)
        bt, m, k, n = 24, 29, 64, 33
        sa, sb = ((k, m) if ta else (m, k)), ((n, k) if tb else (k, n))
        a = rand(rng, ((1,) if bcast == "a" else (bt,)) + sa, dtype)
        b = rand(rng, ((1,) if bcast == "b" else (bt,)) + sb, dtype)
        opa, opb = np.swapaxes(a, -1, -2) if ta else a, np.swapaxes(b, -1, -2) if tb else b
        c0 = rand(rng, (bt, m, n), dtype)
        got = results_on_threads(lambda: _small_matmul(a, b, ta, tb, 0.5, -1.0, c0))
        for r in got[1:] + [_small_matmul(a, b, ta, tb, 0.5, -1.0, c0, small=False)]:
            np.testing.assert_array_equal(r, got[0])
        check_gemm(got[0], np.broadcast_to(opa, (bt, m, k)), np.broadcast_to(opb, (bt, k, n)), alpha=0.5,
                   beta=-1.0, out0=c0)


def test_small_4d_heads(isa):
    """4-D operands (two batch levels): attention's per-head products of a (B, T, H, D) array, read in place."""
    rng = np.random.default_rng(3)
    B, T, H, D = 2, 19, 3, 16
    q, kk = rand(rng, (B, T, H, D), np.float32), rand(rng, (B, T, H, D), np.float32)
    qh, kh = q.transpose(0, 2, 1, 3), kk.transpose(0, 2, 3, 1)       # (B, H, T, D) @ (B, H, D, T)
    got = cpu.matmul(qh, kh)
    prev = _C.set_gemm_small(False)
    try:
        ref = cpu.matmul(qh, kh)
    finally:
        _C.set_gemm_small(prev)
    np.testing.assert_array_equal(got, ref)
    check_gemm(got, qh, kh)


def test_small_beta_zero_ignores_nan_out_and_nan_propagates(isa):
    """beta 0: out is never read (NaN there stays out of the result); a NaN in A reaches its row only."""
    rng = np.random.default_rng(5)
    a, b = rand(rng, (29, 40), np.float32), rand(rng, (40, 45), np.float32)
    out = np.full((29, 45), np.nan, np.float32)
    cpu.matmul(a, b, out=out)
    assert np.isfinite(out).all()
    a[3, 7] = np.nan
    r = cpu.matmul(a, b)
    assert np.isnan(r[3]).all() and np.isfinite(np.delete(r, 3, axis=0)).all()


def test_set_gemm_small_returns_previous():
    assert _C.set_gemm_small(False) is True
    assert _C.set_gemm_small(True) is False


# ------------------------------------------------------------------ layouts: views, 1-D, out, aliasing

def _views(x):
    """Views of a 2-D array with the same values in other memory layouts."""
    r, c = x.shape
    t = np.ascontiguousarray(x.T).T                       # column-major: row stride 1
    big = np.zeros((2 * r + 1, 3 * c + 2), x.dtype)
    big[::2, ::3][:r, :c] = x
    stepped = big[::2, ::3][:r, :c]                       # both strides non-unit: needs a copy
    wide = np.zeros((r, c + 5), x.dtype)
    wide[:, 2:c + 2] = x
    padded = wide[:, 2:c + 2]                             # row stride > cols
    rev = np.ascontiguousarray(x[::-1])[::-1]             # negative row stride
    return {"contig": x, "colmajor": t, "stepped": stepped, "padded": padded, "reversed": rev}


@pytest.mark.parametrize("dtype", DTYPES)
def test_matmul_views(isa, dtype):
    rng = np.random.default_rng(3)
    m, k, n = 23, 19, 35
    for ta in (False, True):
        for tb in (False, True):
            a = rand(rng, (k, m) if ta else (m, k), dtype)
            b = rand(rng, (n, k) if tb else (k, n), dtype)
            for na, va in _views(a).items():
                for nb, vb in _views(b).items():
                    snap_a, snap_b = va.copy(), vb.copy()
                    check_gemm(cpu.matmul(va, vb, ta, tb, -1.0), a, b, ta, tb, -1.0,
                               msg=f"{na} @ {nb}, ta={ta}, tb={tb}: ")
                    np.testing.assert_array_equal(va, snap_a)
                    np.testing.assert_array_equal(vb, snap_b)


def test_matmul_transposed_views_no_copy(isa):
    """x.T and a sliced row block go to the kernel as they are (flip of the transpose flag)."""
    rng = np.random.default_rng(4)
    a, b = rand(rng, (40, 30), np.float32), rand(rng, (50, 30), np.float32)
    check_gemm(cpu.matmul(a, b.T), a, b, False, True)          # b.T: row stride 1
    check_gemm(cpu.matmul(a.T, b.T, True, False), a.T, b.T, True, False)
    check_gemm(cpu.matmul(a[5:25, 3:20], b.T[3:20, ::1]), a[5:25, 3:20], b.T[3:20])
    # and what the kernel cannot read in place is copied inside the same call
    check_gemm(cpu.matmul(a[::2, ::2], b.T[::2]), a[::2, ::2], b.T[::2])
    assert_close(cpu.linear(a, b.T.copy().T), a.astype(np.float64) @ b.T, rtol=1e-5, atol=1e-5)


def test_matmul_batched_views(isa):
    rng = np.random.default_rng(5)
    a = rand(rng, (6, 11, 7), np.float32)
    b = rand(rng, (6, 7, 9), np.float32)
    check_gemm(cpu.matmul(a[::2], b[::2]), a[::2], b[::2])            # batch stride x2
    check_gemm(cpu.matmul(a[::-1], b), a[::-1], b)                    # negative batch stride
    at = np.swapaxes(a, 1, 2)                                         # (6, 7, 11) view, row stride 1
    check_gemm(cpu.matmul(at, b, True, False), at, b, True, False)
    check_gemm(cpu.matmul(a[:, ::2, :], b), a[:, ::2, :], b)          # stepped rows
    bb = np.broadcast_to(b[0], (6, 7, 9))                             # batch stride 0
    check_gemm(cpu.matmul(a, bb), a, bb)


@settings(deadline=None)
@given(b0=st.sampled_from([1, 2, 3]), b1=st.sampled_from([1, 2, 5]), m=sizes, k=sizes, n=sizes, ta=st.booleans(),
       tb=st.booleans(), bcast=st.sampled_from(["none", "a0", "b1", "a2d"]), dtype=dtypes, seed=seeds)
def test_matmul_4d_random(isa, b0, b1, m, k, n, ta, tb, bcast, dtype, seed):
    """Two batch dims, each equal or 1 (broadcast), or a 2-D operand against a 4-D one."""
    rng = np.random.default_rng(seed)
    ba = (1, b1) if bcast == "a0" else (b0, b1)
    bb = (b0, 1) if bcast == "b1" else (b0, b1)
    a = rand(rng, (() if bcast == "a2d" else ba) + ((k, m) if ta else (m, k)), dtype)
    b = rand(rng, bb + ((n, k) if tb else (k, n)), dtype)
    res = cpu.matmul(a, b, ta, tb)
    check_gemm(res, a, b, ta, tb)
    out0 = rand(rng, res.shape, dtype)
    out = out0.copy()
    assert cpu.matmul(a, b, ta, tb, 0.5, -1.0, out=out) is out
    check_gemm(out, a, b, ta, tb, 0.5, -1.0, out0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_matmul_4d_heads_in_place(isa, dtype):
    """Attention's heads: q, k, v (B, H, T, D) viewed from a packed (B, T, 3C) array, whose (B, H) batch no
    single stride describes; q @ k^T, att @ v and their gradients, into heads-layout outputs."""
    rng = np.random.default_rng(7)
    B, T, H, D = 3, 11, 4, 5
    C = H * D
    qkv = rand(rng, (B, T, 3 * C), dtype)
    snap = qkv.copy()
    q, k, v = (qkv[:, :, i * C:(i + 1) * C].reshape(B, T, H, D).transpose(0, 2, 1, 3) for i in range(3))
    assert not np.shares_memory(q, k) and np.shares_memory(q, qkv)
    s = cpu.matmul(q, k, trans_b=True)                                   # (B, H, T, T)
    check_gemm(s, q, k, False, True)
    check_gemm(cpu.matmul(q, np.swapaxes(k, -1, -2)), q, np.swapaxes(k, -1, -2))   # a transposed 4-D view
    check_gemm(cpu.matmul(s, v), s, v)
    # out in the (B, T, H, D) order (strides of a transposed contiguous array), and out = a view of a packed one
    out = np.empty((B, T, H, D), dtype).transpose(0, 2, 1, 3)
    assert cpu.matmul(s, v, out=out) is out
    check_gemm(out, s, v)
    packed = np.zeros((B, T, 3 * C), dtype)
    dq = packed[:, :, :C].reshape(B, T, H, D).transpose(0, 2, 1, 3)
    cpu.matmul(s, k, out=dq)
    check_gemm(dq, s, k)
    assert not packed[:, :, C:].any()                                    # nothing written outside out
    np.testing.assert_array_equal(qkv, snap)
    with pytest.raises(ValueError, match="overlapping"):                 # heads written over each other
        it = np.dtype(dtype).itemsize
        cpu.matmul(s, v, out=np.lib.stride_tricks.as_strided(np.zeros(B * T * D, dtype), (B, H, T, D),
                                                               (T * D * it, 0, D * it, it)))


@pytest.mark.parametrize("dtype", DTYPES)
def test_matmul_out_layouts(isa, dtype):
    rng = np.random.default_rng(6)
    a, b = rand(rng, (21, 13), dtype), rand(rng, (13, 18), dtype)
    out0 = rand(rng, (21, 18), dtype)
    for name, out in _views(out0).items():
        out = out.copy() if name == "contig" else out
        snap = out.copy()
        assert cpu.matmul(a, b, alpha=2.0, beta=-1.0, out=out) is out, name
        check_gemm(out, a, b, alpha=2.0, beta=-1.0, out0=snap, msg=f"out {name}: ")
    # a transposed out (row stride 1) and a batched one
    base = rand(rng, (18, 21), dtype)
    out = base.T
    snap = out.copy()
    cpu.matmul(a, b, beta=0.5, out=out)
    check_gemm(base.T, a, b, beta=0.5, out0=snap)
    a3, b3 = rand(rng, (4, 21, 13), dtype), rand(rng, (4, 13, 18), dtype)
    out3 = np.zeros((4, 21, 40), dtype)[:, :, 3:21]
    snap = out3.copy()
    cpu.matmul(a3, b3, beta=1.0, out=out3)
    check_gemm(out3, a3, b3, beta=1.0, out0=snap)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m,k,n", [(13, 5, 33), (29, 40, 17), (1, 9, 40), (40, 9, 1), (15, 1, 65)])
def test_no_write_outside_out(isa, m, k, n, dtype):
    """The kernel writes exactly the m x n elements of out: a sentinel frame around the
    view (and between its rows) is left as it was, for every edge-tile shape."""
    rng = np.random.default_rng(m * n)
    a, b = rand(rng, (m, k), dtype), rand(rng, (k, n), dtype)
    for beta in (0.0, 1.0):
        buf = np.full((m + 6, n + 40), 7.0, dtype)
        out = buf[3:3 + m, 19:19 + n]
        out[...] = 1.0
        cpu.matmul(a, b, beta=beta, out=out)
        check_gemm(out, a, b, beta=beta, out0=np.ones((m, n), dtype))
        frame = buf.copy()
        frame[3:3 + m, 19:19 + n] = 7.0
        assert (frame == 7.0).all()
        # and the bias epilogue into a fresh output
        bias = rand(rng, (n,), dtype)
        y = np.empty((2, m, n), dtype)[1]
        assert _C.linear(a, b.T, bias, out=y) is y
        assert_close(y, a.astype(np.float64) @ b + bias, rtol=1e-4, atol=1e-4)


def test_matmul_out_aliases_input(isa):
    rng = np.random.default_rng(7)
    for dtype in DTYPES:
        a, b = rand(rng, (16, 16), dtype), rand(rng, (16, 16), dtype)
        a0, b0 = a.copy(), b.copy()
        assert cpu.matmul(a, b, beta=1.0, out=a) is a        # a <- a @ b + a
        check_gemm(a, a0, b0, beta=1.0, out0=a0)
        c = a0.copy()
        cpu.matmul(c, c, out=c)                               # c <- c @ c
        check_gemm(c, a0, a0)
        d = a0.copy()
        cpu.matmul(d.T, b0, out=d)                            # d <- d.T @ b, through a view
        check_gemm(d, a0.T, b0)


# ------------------------------------------------------------------ linear

@settings(deadline=None)
@given(n=sizes, fin=sizes, fout=sizes, dtype=dtypes, use_bias=st.booleans(), seed=seeds)
def test_linear(isa, n, fin, fout, dtype, use_bias, seed):
    rng = np.random.default_rng(seed)
    x, w = rand(rng, (n, fin), dtype), rand(rng, (fout, fin), dtype)
    bias = rand(rng, (fout,), dtype) if use_bias else None
    snap = (x.copy(), w.copy())
    y = cpu.linear(x, w, bias)
    assert y.dtype == dtype and y.shape == (n, fout)
    exp = reference.linear(x.astype(np.float64), w.astype(np.float64), bias)
    eps = np.finfo(dtype).eps
    bound = np.abs(x).astype(np.float64) @ np.abs(w.T) + (0 if bias is None else np.abs(bias))
    assert np.all(np.abs(y - exp) <= eps * (4 * math.sqrt(fin) + 8) * bound)
    np.testing.assert_array_equal(x, snap[0])
    np.testing.assert_array_equal(w, snap[1])


@pytest.mark.parametrize("dtype", DTYPES)
def test_linear_layouts(isa, dtype):
    rng = np.random.default_rng(9)
    x, w, bias = rand(rng, (37, 29), dtype), rand(rng, (45, 29), dtype), rand(rng, (45,), dtype)
    tol = dict(rtol=1e-4, atol=1e-4) if dtype == np.float32 else {}
    exp = reference.linear(x, w, bias)
    for nx, vx in _views(x).items():
        for nw, vw in _views(w).items():
            assert_close(cpu.linear(vx, vw, bias), exp, msg=f"x {nx}, w {nw}: ", **tol)
    assert_close(cpu.linear(x, w, _views(np.tile(bias, (2, 1)))["stepped"][0]), exp, **tol)  # strided bias
    assert_close(cpu.linear(x, w), reference.linear(x, w), **tol)
    out = np.zeros((45, 37), dtype).T                                                      # transposed out
    assert cpu.linear(x, w, bias, out=out) is out
    assert_close(out, exp, **tol)


# ------------------------------------------------------------------ bad inputs

def test_bad_inputs():
    f32, f64 = np.ones((3, 4), np.float32), np.ones((4, 5), np.float64)
    a, b = np.ones((3, 4), np.float32), np.ones((4, 5), np.float32)
    with pytest.raises(ValueError, match="matmul"):
        cpu.matmul(a, np.ones((5, 4), np.float32))                     # K mismatch
    with pytest.raises(ValueError, match="matmul"):
        cpu.matmul(a, b, trans_a=True)
    with pytest.raises(TypeError, match="matmul"):
        cpu.matmul(f32, f64)                                           # dtype mismatch
    with pytest.raises(TypeError, match="matmul"):
        cpu.matmul(np.ones((3, 4), np.int64), np.ones((4, 5), np.int64))
    with pytest.raises(TypeError, match="matmul"):
        cpu.matmul(np.ones((3, 4), np.float16), np.ones((4, 5), np.float16))
    with pytest.raises(ValueError, match="beta"):
        cpu.matmul(a, b, beta=1.0)                                     # beta needs out
    with pytest.raises(ValueError, match="matmul"):
        cpu.matmul(np.ones((2, 3, 4), np.float32), np.ones((3, 4, 5), np.float32))  # batch mismatch
    with pytest.raises(ValueError, match="matmul"):
        cpu.matmul(a, b, out=np.empty((3, 4), np.float32))             # out shape
    with pytest.raises(TypeError, match="matmul"):
        cpu.matmul(a, b, out=np.empty((3, 5), np.float64))             # out dtype
    for backend in (cpu, reference):                                   # the op's business, not the kernel's
        with pytest.raises(ValueError, match="2-D, 3-D or 4-D"):
            backend.matmul(np.ones(4, np.float32), b)                  # 1-D
        with pytest.raises(ValueError, match="2-D, 3-D or 4-D"):
            backend.matmul(np.ones((2, 2, 2, 3, 4), np.float32), b)   # 5-D
        with pytest.raises(ValueError, match="3-D and a 4-D"):
            backend.matmul(np.ones((2, 2, 3, 4), np.float32), np.ones((2, 4, 5), np.float32))
        with pytest.raises(ValueError, match="batch"):
            backend.matmul(np.ones((2, 3, 3, 4), np.float32), np.ones((2, 2, 4, 5), np.float32))
        with pytest.raises(ValueError, match="linear"):
            backend.linear(np.ones((2, 3, 4), np.float32), np.ones((5, 4), np.float32))  # 3-D x
    with pytest.raises(ValueError, match="linear"):
        cpu.linear(a, np.ones((5, 3), np.float32))                     # IN mismatch
    with pytest.raises(TypeError, match="linear"):
        cpu.linear(a, np.ones((5, 4), np.float64))
    with pytest.raises(TypeError, match="linear"):
        cpu.linear(a, np.ones((5, 4), np.float32), np.ones(5, np.float64))
    with pytest.raises(ValueError, match="linear"):
        cpu.linear(a, np.ones(4, np.float32))                          # 1-D weight


def test_binding_checks():
    """The _C functions check everything before touching memory."""
    a, b, c = np.ones((3, 4), np.float32), np.ones((4, 5), np.float32), np.zeros((3, 5), np.float32)
    with pytest.raises(ValueError, match="matmul"):
        _C.matmul(np.ones((3, 4, 1, 3, 4), np.float32), b)             # 5-D
    with pytest.raises(ValueError, match="writeable"):
        c.flags.writeable = False
        _C.matmul(a, b, out=c)
    c = np.zeros((3, 5), np.float32)
    with pytest.raises(ValueError, match="overlapping"):
        _C.matmul(np.ones((2, 3, 4), np.float32), b, out=np.lib.stride_tricks.as_strided(c, (2, 3, 5), (0, 20, 4)))
    with pytest.raises(ValueError, match="batch"):
        _C.matmul(np.ones((2, 3, 4), np.float32), np.ones((3, 4, 5), np.float32))
    with pytest.raises(ValueError, match="bias"):
        _C.linear(a, b.T, np.ones(4, np.float32))
    with pytest.raises(ValueError, match="beta"):
        _C.matmul(a, b, beta=1.0)
    with pytest.raises(TypeError):
        _C.matmul(a.tolist(), b)
    with pytest.raises(TypeError, match="out"):
        _C.matmul(a, b, out=[[0.0] * 5] * 3)
    # a strided batch and a broadcast operand (batch stride 0) in place, no copy needed
    rng = np.random.default_rng(10)
    a3, b2 = rand(rng, (10, 6, 7), np.float64)[::2], rand(rng, (9, 7), np.float64)
    out = np.empty((5, 6, 9))
    assert _C.matmul(a3, np.broadcast_to(b2, (5, 9, 7)), False, True, 2.0, 0.0, out) is out
    assert_close(out, 2.0 * a3 @ b2.T)


if __name__ == "__main__":
    # A quick 1-thread GFLOP/s comparison with NumPy/OpenBLAS. It runs in a subprocess with
    # OpenBLAS pinned to 1 thread (OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE removed for a fair
    # timing), alternates the two libraries and keeps the best CPU time (time.thread_time) of
    # many runs, which is robust to other processes sharing the machine.
    import os
    import subprocess
    import sys

    code = r"""
import time, numpy as np
from pyengine import _C
_C.set_num_threads(1)
print(f"1 thread, isa={_C.isa()}: GFLOP/s of C = A @ B (square), best of 15")
for dt in (np.float32, np.float64):
    for s in (256, 512, 1024):
        a = np.random.rand(s, s).astype(dt); b = np.random.rand(s, s).astype(dt); c = np.empty((s, s), dt)
        fs = {"pyengine": lambda: _C.matmul(a, b, out=c), "numpy": lambda: np.matmul(a, b, out=c)}
        best = dict.fromkeys(fs, 1e9)
        inner = max(1, int(2e8 / s**3))
        for _ in range(15):
            for k, f in fs.items():
                f()
                t = time.thread_time()
                for _ in range(inner):
                    f()
                best[k] = min(best[k], (time.thread_time() - t) / inner)
        g = {k: 2 * s**3 / v / 1e9 for k, v in best.items()}
        print(f"  {np.dtype(dt).name:8s} {s:5d}: pyengine {g['pyengine']:6.1f}   numpy {g['numpy']:6.1f}   "
              f"ratio {g['pyengine'] / g['numpy']:.2f}", flush=True)
"""
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    env.update(OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    subprocess.run([sys.executable, "-c", code], env=env, check=True)
