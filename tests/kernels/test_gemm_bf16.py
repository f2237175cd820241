"""bfloat16 GEMM and conversion kernels (csrc/cpu/gemm_bf16.cpp, backend/cpu/gemm_bf16.py) against their
NumPy twins (backend/reference/gemm_bf16.py), under every path this machine has (generic, avx512bf16, amx).

The conversions must match the twin bit for bit (round to nearest even, NaN quieted, denormals exact). The
GEMM sums in float32 in its own order (and the hardware paths flush float32 denormals), so it is held to the
float64 result within a float32 rounding bound.
"""
import math

import numpy as np
import pytest

from pyengine import _C
from pyengine import _dtype as D
from pyengine.backend import cpu, reference
from pyengine.backend.cpu import gemm_bf16 as kernel
from pyengine.backend.reference import gemm_bf16 as twin
from pyengine.testing import results_on_threads

BF16 = D.BF16_NP
PATHS = ["generic", "avx512bf16", "amx"]


def _paths():
    return PATHS[: PATHS.index(kernel.supported_path()) + 1]


@pytest.fixture(params=_paths())
def path(request):
    """Run a test once per bfloat16 path this machine allows."""
    before = kernel.path()
    assert kernel.set_path(request.param) == request.param
    yield request.param
    kernel.set_path(before)


def bf16(rng, shape):
    return rng.standard_normal(shape).astype(np.float32).astype(BF16)


def op(x, trans):
    return np.swapaxes(x, -1, -2) if trans else x


def check(actual, a, b, trans_a=False, trans_b=False, prev=None, msg=""):
    """actual (float32) vs the float64 result, within eps32 * (4 sqrt(K) + 8) * (|op(a)| @ |op(b)| + |prev|)."""
    a64, b64 = twin._widen(a).astype(np.float64), twin._widen(b).astype(np.float64)
    expected = np.matmul(op(a64, trans_a), op(b64, trans_b))
    bound = np.matmul(np.abs(op(a64, trans_a)), np.abs(op(b64, trans_b)))
    if prev is not None:
        expected = expected + prev.astype(np.float64)
        bound = bound + np.abs(prev.astype(np.float64))
    K = op(a, trans_a).shape[-1]
    tol = np.finfo(np.float32).eps * (4.0 * math.sqrt(max(K, 1)) + 8.0)
    assert np.shape(actual) == expected.shape, f"{msg}shape {np.shape(actual)} vs {expected.shape}"
    err = np.abs(np.asarray(actual, np.float64) - expected)
    assert np.all(err <= tol * bound + 1e-30), f"{msg}max error {err.max():.3g}"


SHAPES = [(1, 1, 1), (1, 7, 5), (5, 1, 3), (3, 5, 1), (16, 16, 32), (17, 31, 33), (32, 32, 64), (37, 41, 43),
          (64, 1, 97), (1, 97, 64), (61, 67, 71), (45, 33, 96), (70, 64, 32)]


@pytest.mark.parametrize("M,N,K", SHAPES)
@pytest.mark.parametrize("trans_a,trans_b", [(False, False), (True, False), (False, True), (True, True)])
def test_2d(path, M, N, K, trans_a, trans_b):
    rng = np.random.default_rng(M * 1000 + N * 10 + K)
    a = bf16(rng, (K, M) if trans_a else (M, K))
    b = bf16(rng, (N, K) if trans_b else (K, N))
    c = kernel.matmul_bf16(a, b, trans_a, trans_b)
    assert c.dtype == np.float32
    check(c, a, b, trans_a, trans_b, msg=f"{path} {M}x{N}x{K} ta={trans_a} tb={trans_b}: ")


@pytest.mark.parametrize("trans_a,trans_b", [(False, False), (True, True), (False, True)])
def test_blocks(path, trans_a, trans_b):
    """Past every cache block (KC = 512 deep, NC = 512 columns, MC = 256 rows), with edges in each."""
    M, N, K = 270, 530, 530
    rng = np.random.default_rng(7)
    a = bf16(rng, (K, M) if trans_a else (M, K))
    b = bf16(rng, (N, K) if trans_b else (K, N))
    check(kernel.matmul_bf16(a, b, trans_a, trans_b), a, b, trans_a, trans_b, msg=f"{path}: ")


def test_layouts(path):
    """Transposed views are read in place, strided ones copied; the result is the same."""
    rng = np.random.default_rng(3)
    a, b = bf16(rng, (40, 19)), bf16(rng, (33, 40))
    check(kernel.matmul_bf16(a.T, b.T), a.T, b.T)                 # views with a unit stride along rows
    a2, b2 = bf16(rng, (19, 80))[:, ::2], bf16(rng, (40, 66))[:, 1::2]
    check(kernel.matmul_bf16(a2, b2), a2, b2)                     # no unit stride: copied
    a4 = bf16(rng, (50, 128))[:, :64]                             # rows read in place with lda = 128
    b4 = bf16(rng, (64, 9))
    check(kernel.matmul_bf16(a4, b4), a4, b4)
    a3 = bf16(rng, (3, 19, 40)).transpose(0, 2, 1)                # a batch of transposed views
    b3 = bf16(rng, (19, 7))
    check(kernel.matmul_bf16(a3, b3), a3, b3)


@pytest.mark.parametrize("ba,bb", [(3, 3), (1, 4), (4, 1), (2, None), (None, 2)])
def test_batched(path, ba, bb):
    rng = np.random.default_rng(11)
    M, N, K = 13, 35, 29
    a = bf16(rng, (M, K) if ba is None else (ba, M, K))
    b = bf16(rng, (K, N) if bb is None else (bb, K, N))
    c = kernel.matmul_bf16(a, b)
    check(c, a, b)
    ct = kernel.matmul_bf16(np.swapaxes(a, -1, -2).copy(), b, trans_a=True)
    np.testing.assert_array_equal(ct, c)   # the same packed operand, the same sums


def test_accumulate_and_bf16_out(path):
    rng = np.random.default_rng(5)
    a, b = bf16(rng, (21, 45)), bf16(rng, (45, 34))
    prev = rng.standard_normal((21, 34)).astype(np.float32)
    out = prev.copy()
    assert kernel.matmul_bf16(a, b, out=out, accumulate=True) is out
    check(out, a, b, prev=prev)
    c32 = kernel.matmul_bf16(a, b)
    c16 = kernel.matmul_bf16(a, b, bf16_out=True)
    assert c16.dtype == BF16
    np.testing.assert_array_equal(c16.view(np.uint16), twin.f32_to_bf16(c32).view(np.uint16))
    o16 = prev.astype(BF16)
    kernel.matmul_bf16(a, b, out=o16, accumulate=True)
    acc = kernel.matmul_bf16(a, b, out=twin.bf16_to_f32(prev.astype(BF16)), accumulate=True)
    np.testing.assert_array_equal(o16.view(np.uint16), twin.f32_to_bf16(acc).view(np.uint16))
    ref = reference.matmul_bf16(a, b, out=prev.copy(), accumulate=True)  # the twin, within rounding
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)


def test_empty_and_k0(path):
    assert kernel.matmul_bf16(np.zeros((0, 5), BF16), np.zeros((5, 3), BF16)).shape == (0, 3)
    a, b = np.zeros((4, 0), BF16), np.zeros((0, 3), BF16)
    np.testing.assert_array_equal(kernel.matmul_bf16(a, b), np.zeros((4, 3), np.float32))
    out = np.ones((4, 3), np.float32)
    kernel.matmul_bf16(a, b, out=out, accumulate=True)
    np.testing.assert_array_equal(out, np.ones((4, 3), np.float32))


def test_threads_do_not_change_results(path):
    rng = np.random.default_rng(9)
    a, b = bf16(rng, (130, 600)), bf16(rng, (600, 100))
    before = cpu.get_num_threads()
    try:
        cpu.set_num_threads(1)
        one = kernel.matmul_bf16(a, b)
        cpu.set_num_threads(3)
        three = kernel.matmul_bf16(a, b)
    finally:
        cpu.set_num_threads(before)
    np.testing.assert_array_equal(one, three)


def test_paths_agree_with_generic():
    """Every path sums the same products in float32; results agree to float32 rounding."""
    rng = np.random.default_rng(2)
    a, b = bf16(rng, (45, 77)), bf16(rng, (77, 50))
    before = kernel.path()
    results = {}
    try:
        for p in _paths():
            kernel.set_path(p)
            results[p] = kernel.matmul_bf16(a, b)
    finally:
        kernel.set_path(before)
    for p, r in results.items():
        np.testing.assert_allclose(r, results["generic"], rtol=1e-5, atol=1e-5, err_msg=p)


def test_isa_generic_means_generic_path():
    before_isa, before = _C.isa(), kernel.path()
    try:
        _C.set_isa("generic")
        assert kernel.path() == "generic"
    finally:
        _C.set_isa(before_isa)
    assert kernel.path() == before


def test_errors():
    a = np.zeros((3, 4), BF16)
    with pytest.raises(TypeError, match="matmul_bf16: a must be bfloat16"):
        kernel.matmul_bf16(np.zeros((3, 4), np.float32), a.T)
    with pytest.raises(ValueError, match="shapes do not match"):
        kernel.matmul_bf16(a, a)
    with pytest.raises(ValueError, match="batch sizes do not match"):
        kernel.matmul_bf16(np.zeros((2, 3, 4), BF16), np.zeros((3, 4, 5), BF16))
    with pytest.raises(ValueError, match="accumulate=True needs out"):
        kernel.matmul_bf16(a, a.T, accumulate=True)
    with pytest.raises(ValueError, match="out has shape"):
        kernel.matmul_bf16(a, a.T, out=np.zeros((3, 4), np.float32))
    with pytest.raises(TypeError, match="out must be float32 or bfloat16"):
        kernel.matmul_bf16(a, a.T, out=np.zeros((3, 3), np.float64))
    with pytest.raises(ValueError, match="2-D or 3-D"):
        kernel.matmul_bf16(np.zeros(4, BF16), a)
    with pytest.raises(TypeError, match="f32_to_bf16: x must be float32"):
        kernel.f32_to_bf16(np.zeros(3))
    with pytest.raises(TypeError, match="bf16_to_f32: x must be bfloat16"):
        kernel.bf16_to_f32(np.zeros(3, np.float32))
    with pytest.raises(ValueError, match="set_bf16_path"):
        kernel.set_path("fast")


# ------------------------------------------------------------------ conversions

def special_floats(rng, n):
    """Random bit patterns (every magnitude, NaNs, denormals), normal values, and the delicate cases."""
    x = rng.integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32).view(np.float32)
    specials = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, -np.nan, 1.0, -1.0,
                         np.finfo(np.float32).max, -np.finfo(np.float32).max,
                         np.finfo(np.float32).tiny, 1e-45, -1e-45, 3e-39, -3e-39], np.float32)
    steps = np.arange(64, dtype=np.uint32) << np.uint32(16)
    ties = (steps | np.uint32(0x3F808000)).view(np.float32)   # exactly half way: even neighbour
    below = (steps | np.uint32(0x3F807FFF)).view(np.float32)  # just under half way: down
    snan = np.array([0x7F800001, 0xFF800001, 0x7FA00000], np.uint32).view(np.float32)
    return np.concatenate([specials, ties, below, snan, x, rng.standard_normal(n).astype(np.float32)])


@pytest.mark.parametrize("n", [1, 31, 32, 33, 1000, 300001])
def test_f32_to_bf16_is_exact_rne(path, n):
    rng = np.random.default_rng(n)
    x = special_floats(rng, n)
    y = kernel.f32_to_bf16(x)
    assert y.dtype == BF16 and y.shape == x.shape
    np.testing.assert_array_equal(y.view(np.uint16), twin.f32_to_bf16(x).view(np.uint16))
    # the twin is ml_dtypes' rounding for every value but NaN payloads
    num = ~np.isnan(x)
    np.testing.assert_array_equal(twin.f32_to_bf16(x)[num].view(np.uint16), x[num].astype(BF16).view(np.uint16))
    assert np.all(np.isnan(twin.f32_to_bf16(x)[~num].astype(np.float32)))
    back = kernel.bf16_to_f32(y)
    np.testing.assert_array_equal(back.view(np.uint32), twin.bf16_to_f32(y).view(np.uint32))
    np.testing.assert_array_equal(back.view(np.uint32), y.astype(np.float32).view(np.uint32))


def test_conversions_shapes_and_out(path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((7, 9)).astype(np.float32)
    out = np.empty((7, 9), BF16)
    assert kernel.f32_to_bf16(x.T).shape == (9, 7)
    assert kernel.f32_to_bf16(x, out=out) is out
    np.testing.assert_array_equal(out.view(np.uint16), x.astype(BF16).view(np.uint16))
    y = kernel.bf16_to_f32(out[:, ::2])  # strided input: copied first
    np.testing.assert_array_equal(y, out[:, ::2].astype(np.float32))
    for m in (kernel, twin):  # 0-d stays 0-d
        assert m.f32_to_bf16(np.asarray(np.float32(1.5))).shape == ()
        assert m.bf16_to_f32(np.asarray(np.float32(1.5)).astype(BF16)).shape == ()


@pytest.mark.parametrize("K", [0, 1, 40, 600])
@pytest.mark.parametrize("trans_b", [False, True])
def test_bias_and_bf16_result(path, K, trans_b):
    """bias (float32, every row) is added before the one rounding; a bfloat16 result is rounded as each block
    finishes, bit for bit the rounding of the float32 result (one or several depth passes)."""
    rng = np.random.default_rng(K + 1)
    M, N = 37, 45
    a = bf16(rng, (M, K))
    b = bf16(rng, (N, K) if trans_b else (K, N))
    bias = rng.standard_normal(N).astype(np.float32)
    c32 = kernel.matmul_bf16(a, b, trans_b=trans_b, bias=bias)
    check(c32, a, b, trans_b=trans_b, prev=np.broadcast_to(bias, (M, N)))
    c16 = kernel.matmul_bf16(a, b, trans_b=trans_b, bias=bias, bf16_out=True)
    np.testing.assert_array_equal(c16.view(np.uint16), twin.f32_to_bf16(c32).view(np.uint16))
    ref = reference.matmul_bf16(a, b, trans_b=trans_b, bias=bias, bf16_out=True)
    assert np.abs(ref.astype(np.float32) - c16.astype(np.float32)).max() <= 2 ** -7 * (np.abs(ref.astype(np.float32)).max() + 1)
    prev = rng.standard_normal((M, N)).astype(np.float32)
    out16 = prev.astype(BF16)
    kernel.matmul_bf16(a, b, trans_b=trans_b, bias=bias, out=out16, accumulate=True)
    acc = kernel.matmul_bf16(a, b, trans_b=trans_b, bias=bias, out=twin.bf16_to_f32(prev.astype(BF16)),
                             accumulate=True)
    np.testing.assert_array_equal(out16.view(np.uint16), twin.f32_to_bf16(acc).view(np.uint16))
    with pytest.raises(TypeError, match="bias must be float32"):
        kernel.matmul_bf16(a, b, trans_b=trans_b, bias=bias.astype(np.float64))
    with pytest.raises(ValueError, match="bias"):
        kernel.matmul_bf16(a, b, trans_b=trans_b, bias=bias[:-1])


# ------------------------------------------------------------------ GELU on bfloat16

ISAS = ["generic", "avx2", "avx512"]


@pytest.fixture(params=ISAS[: ISAS.index(_C.isa_supported()) + 1])
def isa(request):
    """Run a test once per SIMD level this machine has (the float32 GELU kernels the bfloat16 ones call; below
    avx512 the conversions take the generic path)."""
    before = _C.isa()
    _C.set_isa(request.param)
    yield request.param
    _C.set_isa(before)


@pytest.mark.parametrize("approximate", ["none", "tanh"])
@pytest.mark.parametrize("shape", [(0,), (1,), (7,), (4095,), (4097,), (3, 4096 + 5), (2, 3, 3001)])
def test_gelu_bf16_is_the_float32_path_rounded(isa, approximate, shape):
    """Bit for bit what the op did through float32 (widen, float32 GELU kernel, round), and within one
    bfloat16 rounding (plus the float32 kernel's error) of the float64 twin."""
    rng = np.random.default_rng(sum(shape) + len(approximate))
    x = (3 * rng.standard_normal(shape)).astype(np.float32).astype(BF16)
    dy = rng.standard_normal(shape).astype(np.float32).astype(BF16)
    if x.size > 8:
        x.reshape(-1)[:8] = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 30.0, -30.0, 1e-30], np.float32).astype(BF16)
    y, dx = kernel.gelu_bf16_forward(x, approximate), kernel.gelu_bf16_backward(x, dy, approximate)
    assert y.dtype == BF16 and dx.dtype == BF16 and y.shape == x.shape and dx.shape == x.shape
    xf, gf = kernel.bf16_to_f32(x), kernel.bf16_to_f32(dy)
    np.testing.assert_array_equal(y.view(np.uint16), kernel.f32_to_bf16(cpu.gelu_forward(xf, approximate)).view(np.uint16))
    np.testing.assert_array_equal(dx.view(np.uint16),
                                  kernel.f32_to_bf16(cpu.gelu_backward(xf, gf, approximate)).view(np.uint16))
    for got, want in ((y, twin.gelu_bf16_forward(x, approximate)), (dx, twin.gelu_bf16_backward(x, dy, approximate))):
        g, w = got.astype(np.float64), want.astype(np.float64)
        assert np.array_equal(np.isnan(g), np.isnan(w))
        ok = ~np.isnan(w) & (g != w)  # (equal infinities: no difference)
        assert np.all(np.abs(g[ok] - w[ok]) <= 2 ** -7 * np.abs(w[ok]) + 1e-6)


def test_gelu_bf16_layouts_and_errors():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((9, 14)).astype(np.float32).astype(BF16)
    xs = x[:, ::2]  # strided: copied first
    np.testing.assert_array_equal(kernel.gelu_bf16_forward(xs, "tanh").view(np.uint16),
                                  kernel.gelu_bf16_forward(np.ascontiguousarray(xs), "tanh").view(np.uint16))
    assert kernel.gelu_bf16_forward(np.asarray(np.float32(1.0)).astype(BF16)).shape == ()
    for m in (kernel, twin):
        with pytest.raises(TypeError, match="bfloat16"):
            m.gelu_bf16_forward(x.astype(np.float32))
        with pytest.raises(ValueError, match="approximate"):
            m.gelu_bf16_forward(x, "fast")
        with pytest.raises((ValueError, RuntimeError), match="dy"):
            m.gelu_bf16_backward(x, x[:, :3])


def test_gelu_bf16_threads_do_not_change_results():
    rng = np.random.default_rng(5)
    x = rng.standard_normal(50001).astype(np.float32).astype(BF16)
    before = _C.num_threads()
    try:
        outs = []
        for t in (1, 2, 3):
            _C.set_num_threads(t)
            outs.append((kernel.gelu_bf16_forward(x, "tanh").view(np.uint16),
                         kernel.gelu_bf16_backward(x, x, "none").view(np.uint16)))
    finally:
        _C.set_num_threads(before)
    for o in outs[1:]:
        np.testing.assert_array_equal(o[0], outs[0][0])
        np.testing.assert_array_equal(o[1], outs[0][1])


@pytest.mark.parametrize("shape", [(1, 1), (7, 3), (2048, 65), (13, 64), (300, 385)])
def test_sum_rows_bf16(path, shape):
    rng = np.random.default_rng(shape[1])
    x = rng.standard_normal(shape).astype(np.float32).astype(BF16)
    got, want = kernel.sum_rows_bf16(x), twin.sum_rows_bf16(x)
    assert got.dtype == np.float32 and got.shape == (shape[1],)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(kernel.sum_rows_bf16(x[::2]), twin.sum_rows_bf16(np.ascontiguousarray(x[::2])))
    before = _C.num_threads()
    try:
        outs = []
        for t in (1, 2, 3):
            _C.set_num_threads(t)
            outs.append(kernel.sum_rows_bf16(x).view(np.uint32))
    finally:
        _C.set_num_threads(before)
    for o in outs[1:]:
        np.testing.assert_array_equal(o, outs[0])
    for m in (kernel, twin):
        with pytest.raises(TypeError, match="bfloat16"):
            m.sum_rows_bf16(x.astype(np.float32))
        with pytest.raises(ValueError, match="2-D"):
            m.sum_rows_bf16(x[0])


@pytest.mark.parametrize("K", [40, 600])
@pytest.mark.parametrize("trans_a,trans_b", [(False, True), (True, False)])
def test_bf16_result_across_blocks(path, K, trans_a, trans_b):
    """The bfloat16 epilogue runs one block late (block j's tiles are stored while block j - 1 is rounded): over
    many blocks -- row blocks past MC = 256, column blocks past NC = 512, edges of both -- every value is the
    rounding of the float32 result, with and without a bias."""
    rng = np.random.default_rng(K + 7)
    M, N = 300, 545
    a = bf16(rng, (K, M) if trans_a else (M, K))
    b = bf16(rng, (N, K) if trans_b else (K, N))
    bias = rng.standard_normal(N).astype(np.float32)
    for bs in (None, bias):
        c32 = kernel.matmul_bf16(a, b, trans_a, trans_b, bias=bs)
        c16 = kernel.matmul_bf16(a, b, trans_a, trans_b, bias=bs, bf16_out=True)
        np.testing.assert_array_equal(c16.view(np.uint16), twin.f32_to_bf16(c32).view(np.uint16))


@pytest.mark.parametrize("trans_a,trans_b", [(False, True), (True, False), (False, False)])
def test_shared_packed_b_any_thread_count(path, trans_a, trans_b):
    """op(B) is packed once by all the threads and read by every unit (units split M and N, and N crosses the
    512-column blocks off their grid): the same bits on 1, 2 and 3 threads, load adaptation off; a broadcast
    B (batch stride 0) too."""
    rng = np.random.default_rng(11)
    M, N, K = 200, 1100, 600
    a = bf16(rng, (K, M) if trans_a else (M, K))
    b = bf16(rng, (N, K) if trans_b else (K, N))
    bias = rng.standard_normal(N).astype(np.float32)
    a3 = bf16(rng, (3, 40, K)) if not trans_a else None
    outs = results_on_threads(lambda: [kernel.matmul_bf16(a, b, trans_a, trans_b),
                                       kernel.matmul_bf16(a, b, trans_a, trans_b, bf16_out=True,
                                                          bias=bias).view(np.uint16)]
                              + ([kernel.matmul_bf16(a3, b, False, trans_b)] if a3 is not None else []))
    check(outs[0][0], a, b, trans_a, trans_b, msg=f"{path}: ")
    if a3 is not None:
        check(outs[0][2], a3, b, False, trans_b, msg=f"{path} batched: ")
    for o in outs[1:]:
        for x, y in zip(o, outs[0]):
            np.testing.assert_array_equal(x, y)


def _at_offset(x, offset_bytes):
    """A copy of x whose data starts offset_bytes past a 64-byte boundary (NumPy aligns to 16 only)."""
    buf = np.empty(x.nbytes + 128, np.uint8)
    start = (-buf.ctypes.data) % 64 + offset_bytes
    y = buf[start:start + x.nbytes].view(x.dtype).reshape(x.shape)
    y[...] = x
    return y


@pytest.mark.parametrize("K,lda", [(64, 64), (96, 96), (384, 384), (64, 80), (544, 544)])
def test_a_in_place_at_any_alignment(path, K, lda):
    """A read in place (not transposed, K a multiple of 32) whose rows do not start on 64-byte lines: the AMX
    path copies each strip to a tile-ordered buffer first; the same products in the same order, so the same bits
    as from a line-aligned A, for float32 and bfloat16 (+ bias) results and a batch."""
    rng = np.random.default_rng(K + lda)
    M, N = 70, 45
    a_full = bf16(rng, (2, M, lda))
    b = bf16(rng, (N, K))
    bias = rng.standard_normal(N).astype(np.float32)
    ref = {}
    for off in (0, 2, 16, 48):
        a = _at_offset(a_full, off)[:, :, :K]
        assert a.ctypes.data % 64 == off
        c = kernel.matmul_bf16(a[0], b, trans_b=True)
        c16 = kernel.matmul_bf16(a, b, trans_b=True, bf16_out=True, bias=bias)
        if off == 0:
            check(c, a[0], b, trans_b=True)
            ref = {"c": c, "c16": c16}
        np.testing.assert_array_equal(c, ref["c"], err_msg=f"{path} offset {off}")
        np.testing.assert_array_equal(c16.view(np.uint16), ref["c16"].view(np.uint16), err_msg=f"{path} offset {off}")
