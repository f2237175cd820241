"""Compiled LayerNorm kernels against the NumPy reference."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyengine import _C
from pyengine.backend import reference as ref
from pyengine.backend.cpu import norm as cpu
from pyengine.testing import ODD_SIZES, assert_close, tolerances

DTYPES = (np.float32, np.float64)
sizes = st.sampled_from(ODD_SIZES)
dtypes = st.sampled_from(DTYPES)
seeds = st.integers(0, 2**32 - 1)
affine = st.sampled_from([(True, True), (True, False), (False, True), (False, False)])


def rand(rng, shape, dtype, scale=1.0, offset=0.0):
    return (rng.standard_normal(shape) * scale + offset).astype(dtype)


def params(rng, c, dtype, has_w, has_b):
    w = rand(rng, c, dtype, 1.0, 1.0) if has_w else None
    b = rand(rng, c, dtype) if has_b else None
    return w, b


@pytest.fixture
def threads():
    before = _C.num_threads()
    yield
    _C.set_num_threads(before)


def check(x, w, b, dy, eps=1e-5, atol=None):
    """Forward and backward against the reference; backward uses the reference's saved stats.

    ``atol`` loosens y and dx for ill-conditioned rows (|mean| >> std), where any two correct
    implementations differ by about |mean| * rstd * machine eps.
    """
    y, mean, rstd = cpu.layer_norm_forward(x, w, b, eps)
    ry, rmean, rrstd = ref.layer_norm_forward(x, w, b, eps)
    for got, want in ((y, ry), (mean, rmean), (rstd, rrstd)):
        assert got.dtype == x.dtype and got.shape == want.shape
        assert_close(got, want, atol=atol if got is y else None)
    dx, dw, db = cpu.layer_norm_backward(dy, x, w, rmean, rrstd)
    rdx, rdw, rdb = ref.layer_norm_backward(dy, x, w, rmean, rrstd)
    # dx = rstd (g - mean(g) - xhat mean(g xhat)) subtracts terms of size rstd |g|; computed in the
    # input's dtype (as PyTorch does) it is exact to a few ulps of that size per row, not of dx itself
    g = dy.astype(np.float64) * (1.0 if w is None else w.astype(np.float64))
    row_scale = np.abs(g).max(axis=-1, keepdims=True) * rrstd.astype(np.float64)[:, None] if g.size else 0.0
    ulp = np.finfo(x.dtype).eps
    dx_atol = np.maximum(atol or tolerances(x.dtype)[1], 16 * ulp * row_scale)
    np.testing.assert_array_less(np.abs(dx.astype(np.float64) - rdx) - dx_atol,
                                 tolerances(x.dtype)[0] * np.abs(rdx) + 1e-300)
    if w is None:
        assert dw is None
    else:
        assert_close(dw, rdw)
    assert_close(db, rdb)
    return y, mean, rstd


@given(n=sizes, c=sizes, dtype=dtypes, wb=affine, seed=seeds, scale=st.sampled_from([1e-2, 1.0, 50.0]))
def test_layer_norm_matches_reference(isa, n, c, dtype, wb, seed, scale):
    rng = np.random.default_rng(seed)
    x = rand(rng, (n, c), dtype, scale, offset=rng.standard_normal() * scale)
    w, b = params(rng, c, dtype, *wb)
    check(x, w, b, rand(rng, (n, c), dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("eps", [0.0, 1e-12, 1e-5, 0.5])
def test_layer_norm_eps(isa, dtype, eps):
    rng = np.random.default_rng(1)
    x = rand(rng, (9, 31), dtype, 2.0)
    w, b = params(rng, 31, dtype, True, True)
    check(x, w, b, rand(rng, (9, 31), dtype), eps)


@pytest.mark.parametrize("dtype", DTYPES)
def test_layer_norm_large_mean_small_variance(isa, dtype):
    # |mean| >> std: a one-pass E[x^2] - mean^2 would cancel, and float rounding of the mean
    # would show after scaling by rstd. Stats are in float64; y must still match.
    # Condition number |mean| / std = 1e5 and 3e5: in float64 the inputs themselves carry
    # |mean| * 2^-53 absolute error, which rstd scales up to ~1e-11.
    rng = np.random.default_rng(4)
    atol = 1e-9 if dtype == np.float64 else None
    x = rand(rng, (7, 129), dtype, 1e-2, offset=1000.0)
    w, b = params(rng, 129, dtype, True, True)
    check(x, w, b, rand(rng, (7, 129), dtype), atol=atol)
    x = rand(rng, (5, 64), dtype, 1.0, offset=-3e5)
    check(x, None, None, rand(rng, (5, 64), dtype), atol=atol)


@pytest.mark.parametrize("dtype", DTYPES)
def test_layer_norm_constant_rows_and_single_column(isa, dtype):
    rng = np.random.default_rng(6)
    x = np.full((4, 33), 2.5, dtype)  # var = 0: rstd = 1/sqrt(eps), y = bias
    w, b = params(rng, 33, dtype, True, True)
    y, _, _ = check(x, w, b, rand(rng, (4, 33), dtype))
    assert_close(y, np.broadcast_to(b, y.shape))
    x1 = rand(rng, (17, 1), dtype)  # C = 1
    check(x1, *params(rng, 1, dtype, True, True), rand(rng, (17, 1), dtype))


def test_layer_norm_many_rows_on_threads(isa, threads):
    # Several threads, each with its own dweight / dbias partial sums: compare with the
    # reference and with one thread.
    rng = np.random.default_rng(8)
    n, c = 2053, 97
    x = rand(rng, (n, c), np.float32, 2.0, 0.5)
    w, b = params(rng, c, np.float32, True, True)
    dy = rand(rng, (n, c), np.float32)
    out = {}
    for t in (1, 2, 3):
        _C.set_num_threads(t)
        out[t] = check(x, w, b, dy) + cpu.layer_norm_backward(dy, x, w, *ref.layer_norm_forward(x, w, b)[1:])
    for t in (2, 3):
        for a, e in zip(out[t][:4], out[1][:4]):
            np.testing.assert_array_equal(a, e)  # forward and dx are per row: identical
        for a, e in zip(out[t][4:], out[1][4:]):
            assert_close(a, e)  # dweight / dbias: partial sums in another order


@pytest.mark.parametrize("dtype", DTYPES)
def test_non_contiguous_inputs_and_no_mutation(isa, dtype):
    rng = np.random.default_rng(9)
    x = np.asfortranarray(rand(rng, (13, 47), dtype, 3.0))
    dy = rand(rng, (47, 13), dtype).T
    w = rand(rng, 94, dtype)[::2]
    b = rand(rng, 94, dtype)[1::2]
    assert not (x.flags.c_contiguous or dy.flags.c_contiguous or w.flags.c_contiguous)
    copies = [a.copy() for a in (x, dy, w, b)]
    y, mean, rstd = cpu.layer_norm_forward(x, w, b)
    ry, rmean, rrstd = ref.layer_norm_forward(x, w, b)
    assert_close(y, ry)
    m2, r2 = np.repeat(rmean, 2)[::2], np.repeat(rrstd, 2)[::2]
    got = cpu.layer_norm_backward(dy, x, w, m2, r2)
    want = ref.layer_norm_backward(dy, x, w, rmean, rrstd)
    for a, e in zip(got, want):
        assert_close(a, e)
    for a, c in zip((x, dy, w, b), copies):
        np.testing.assert_array_equal(a, c)


def test_empty_rows():
    x = np.empty((0, 8), np.float32)
    w = np.ones(8, np.float32)
    y, mean, rstd = cpu.layer_norm_forward(x, w, None)
    assert y.shape == (0, 8) and mean.shape == (0,) and rstd.shape == (0,)
    dx, dw, db = cpu.layer_norm_backward(x, x, w, mean, rstd)
    assert dx.shape == (0, 8)
    np.testing.assert_array_equal(dw, 0)
    np.testing.assert_array_equal(db, 0)


def test_bad_inputs_raise():
    x = np.ones((4, 6), np.float32)
    w = np.ones(6, np.float32)
    m = np.zeros(4, np.float32)
    with pytest.raises(ValueError, match=r"layer_norm_forward: x must be 2-D, got shape \(24,\)"):
        cpu.layer_norm_forward(x.reshape(-1), None, None)
    with pytest.raises(TypeError, match="layer_norm_forward"):
        cpu.layer_norm_forward(x.astype(np.int64), None, None)
    with pytest.raises(TypeError, match="same dtype"):
        cpu.layer_norm_forward(x, w.astype(np.float64), None)
    with pytest.raises(ValueError, match=r"weight has shape \(5,\), expected \(6,\)"):
        cpu.layer_norm_forward(x, w[:5], None)
    with pytest.raises(ValueError, match="bias"):
        cpu.layer_norm_forward(x, None, np.ones((6, 1), np.float32))
    with pytest.raises(ValueError, match="eps"):
        cpu.layer_norm_forward(x, None, None, eps=-1.0)
    with pytest.raises(ValueError, match=r"dy has shape \(4, 5\)"):
        cpu.layer_norm_backward(x[:, :5], x, w, m, m)
    with pytest.raises(ValueError, match="mean"):
        cpu.layer_norm_backward(x, x, w, m[:3], m)
    with pytest.raises(TypeError, match="rstd"):
        cpu.layer_norm_backward(x, x, w, m, m.astype(np.float64))
    with pytest.raises(TypeError, match="weight"):
        _C.layer_norm_forward(x, [1.0] * 6, None, 1e-5, np.empty_like(x), m.copy(), m.copy())
    with pytest.raises(ValueError, match="writeable"):
        ro = np.empty_like(x)
        ro.flags.writeable = False
        _C.layer_norm_forward(x, None, None, 1e-5, ro, m.copy(), m.copy())
    with pytest.raises(TypeError, match="dweight"):
        _C.layer_norm_backward(x, x, w, m, m, np.empty_like(x), None, np.empty_like(w))
    with pytest.raises(ValueError, match="dweight"):
        _C.layer_norm_backward(x, x, None, m, m, np.empty_like(x), np.empty_like(w), np.empty_like(w))


@pytest.mark.parametrize("backend", [cpu, ref])
def test_backward_writes_into_a_given_dx(backend):
    """dx= takes an (N, C) view of an array the caller allocated in its own shape (what the LayerNorm
    Function does for (B, T, C) inputs): same values as a fresh dx, written in place, nothing else touched."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((6, 7)).astype(np.float32)
    w = rng.standard_normal(7).astype(np.float32)
    dy = rng.standard_normal((6, 7)).astype(np.float32)
    _, mean, rstd = backend.layer_norm_forward(x, w, None)
    want = backend.layer_norm_backward(dy, x, w, mean, rstd)
    big = np.full((2, 3, 7), np.nan, np.float32)
    got = backend.layer_norm_backward(dy, x, w, mean, rstd, dx=big.reshape(6, 7))
    assert np.shares_memory(got[0], big)
    np.testing.assert_array_equal(big.reshape(6, 7), want[0])
    for a, b in zip(got[1:], want[1:]):
        np.testing.assert_array_equal(a, b)
