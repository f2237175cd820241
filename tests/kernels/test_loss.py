"""Loss kernels (csrc/cpu/loss.cpp) against their reference twins (pyengine/backend/reference/loss.py),
at every SIMD level, in float32 and float64; against PyTorch where it is installed."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

from pyengine import _C
from pyengine.backend import reference as R
from pyengine.backend.cpu import loss as L
from pyengine.testing import ODD_SIZES, assert_close

DTYPES = [np.float32, np.float64]
EPS = {np.dtype(np.float32): np.finfo(np.float32).eps, np.dtype(np.float64): np.finfo(np.float64).eps}


def _tol(dtype, magnitude=1.0):
    """(rtol, atol) for a result of `dtype` whose inputs have size ~magnitude (a few ulps of it)."""
    eps = EPS[np.dtype(dtype)]
    return 64 * eps, 64 * eps * max(1.0, magnitude)


def _logits(rng, n, c, dtype, scale=3.0):
    return (rng.standard_normal((n, c)) * scale).astype(dtype)


def _targets(rng, n, c, ignore_index=-100, p_ignore=0.2):
    t = rng.integers(0, c, n).astype(np.int64)
    t[rng.random(n) < p_ignore] = ignore_index
    return t


def _check_ce(x, t, eps, dloss, ignore_index=-100):
    """CPU forward + backward against the reference evaluated in float64 on the same inputs."""
    dtype = x.dtype
    loss, lse = L.cross_entropy_forward(x, t, ignore_index, eps)
    assert loss.dtype == dtype and lse.dtype == dtype and loss.shape == lse.shape == (x.shape[0],)
    x64 = x.astype(np.float64)
    loss_r, lse_r = R.cross_entropy_forward(x64, t, ignore_index, eps)
    mag = float(np.abs(x64).max(initial=1.0))
    rtol, atol = _tol(dtype, mag)
    assert_close(lse, lse_r, rtol=rtol, atol=atol, msg="lse ")
    assert_close(loss, loss_r, rtol=rtol, atol=atol, msg="loss ")
    assert np.all(loss[t == ignore_index] == 0)
    g = L.cross_entropy_backward(x, t, lse, dloss, ignore_index, eps)
    assert g.dtype == dtype and g.shape == x.shape
    g_r = R.cross_entropy_backward(x64, t, lse.astype(np.float64), dloss.astype(np.float64), ignore_index, eps)
    # exp(x - lse) with x - lse rounded to dtype: relative error ~ ulp(|x - lse|), also in absolute terms
    # where p_t - 1 cancels
    rtol, atol = _tol(dtype, mag)
    assert_close(g, g_r, rtol=rtol * mag, atol=atol * float(np.abs(dloss).max(initial=1.0)), msg="dlogits ")
    assert np.all(g[t == ignore_index] == 0)
    return loss, lse, g


# ------------------------------------------------------------------ cross-entropy
@given(n=st.sampled_from(ODD_SIZES), c=st.sampled_from(ODD_SIZES), eps=st.sampled_from([0.0, 0.1]),
       dtype=st.sampled_from(DTYPES), seed=st.integers(0, 2**31 - 1))
def test_cross_entropy_matches_reference(isa, n, c, eps, dtype, seed):
    rng = np.random.default_rng(seed)
    x = _logits(rng, n, c, dtype)
    t = _targets(rng, n, c)
    dloss = rng.standard_normal(n).astype(dtype)
    x0, t0, d0 = x.copy(), t.copy(), dloss.copy()
    loss, lse, g = _check_ce(x, t, eps, dloss)
    # also against the reference in the input dtype (its own rounding) with the default tolerances
    loss_r, lse_r = R.cross_entropy_forward(x, t, -100, eps)
    assert_close(loss, loss_r, rtol=1e-4 if dtype == np.float32 else 1e-9, atol=1e-4 if dtype == np.float32 else 1e-11)
    assert np.array_equal(x, x0) and np.array_equal(t, t0) and np.array_equal(dloss, d0)  # inputs untouched


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_cross_entropy_gpt2_vocab(isa, dtype, eps):
    rng = np.random.default_rng(7)
    n, c = 6, 50304
    x = _logits(rng, n, c, dtype)
    t = _targets(rng, n, c, p_ignore=0.0)
    t[1] = -100
    t[2] = c - 1  # the last column, in the row's tail
    _check_ce(x, t, eps, rng.standard_normal(n).astype(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_cross_entropy_extreme_logits(isa, dtype, eps):
    rng = np.random.default_rng(3)
    n, c = 9, 97
    x = (rng.choice([-1e4, 1e4], size=(n, c)) * rng.random((n, c))).astype(dtype)
    x[0] = 1e4  # every logit equal and huge
    x[1] = -1e4
    x[2, 5] = 1e4  # one dominant logit
    x[2, :5] = -1e4
    t = rng.integers(0, c, n)
    loss, lse, g = _check_ce(x, t, eps, rng.standard_normal(n).astype(dtype))
    assert np.all(np.isfinite(loss)) and np.all(np.isfinite(lse)) and np.all(np.isfinite(g))
    assert loss[0] == pytest.approx(np.log(c), rel=1e-5)


def test_cross_entropy_custom_ignore_index(isa):
    rng = np.random.default_rng(4)
    x = _logits(rng, 13, 17, np.float32)
    t = rng.integers(0, 17, 13)
    for ignore_index in (0, 5, -1):  # an ignore_index inside [0, C) ignores that class
        _check_ce(x, t, 0.1, rng.standard_normal(13).astype(np.float32), ignore_index)
    t[:] = -100  # every row ignored
    loss, lse = L.cross_entropy_forward(x, t)
    assert np.all(loss == 0) and np.all(np.isfinite(lse))
    assert np.all(L.cross_entropy_backward(x, t, lse, np.ones(13, np.float32)) == 0)


def test_cross_entropy_streaming_stores(isa):
    # An output of >= 64 MiB is written with non-temporal stores (AVX-512), from each row's first 64-byte
    # boundary on; C odd puts the rows at every alignment. It must equal the same rows done in small calls.
    rng = np.random.default_rng(12)
    n, c = 1400, 12001
    x = _logits(rng, n, c, np.float32)
    t = _targets(rng, n, c)
    dloss = rng.standard_normal(n).astype(np.float32)
    loss, lse = L.cross_entropy_forward(x, t, -100, 0.1)
    g = L.cross_entropy_backward(x, t, lse, dloss, -100, 0.1)
    assert g.nbytes >= 64 * 2**20
    for lo in range(0, n, 350):
        part = L.cross_entropy_backward(x[lo:lo + 350], t[lo:lo + 350], lse[lo:lo + 350], dloss[lo:lo + 350],
                                        -100, 0.1)
        assert np.array_equal(g[lo:lo + 350], part)
    rows = rng.integers(0, n, 5)
    _check_ce(x[rows], t[rows], 0.1, dloss[rows])


def test_cross_entropy_threads_agree():
    rng = np.random.default_rng(5)
    x = _logits(rng, 300, 1000, np.float32)
    t = _targets(rng, 300, 1000)
    before = _C.num_threads()
    try:
        _C.set_num_threads(1)
        a = L.cross_entropy_forward(x, t, -100, 0.1)
        _C.set_num_threads(2)
        b = L.cross_entropy_forward(x, t, -100, 0.1)
    finally:
        _C.set_num_threads(before)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


def test_cross_entropy_scalar_dloss_and_int32_targets():
    rng = np.random.default_rng(6)
    x = _logits(rng, 7, 9, np.float64)
    t = rng.integers(0, 9, 7)
    loss, lse = L.cross_entropy_forward(x, t.astype(np.int32))
    g1 = L.cross_entropy_backward(x, t, lse, 0.5)
    g2 = L.cross_entropy_backward(x, t, lse, np.full(7, 0.5))
    assert np.array_equal(g1, g2)


@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_cross_entropy_matches_torch(eps):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(8)
    x = _logits(rng, 33, 65, np.float64)
    t = _targets(rng, 33, 65)
    dloss = rng.standard_normal(33)
    loss, lse = L.cross_entropy_forward(x, t, -100, eps)
    g = L.cross_entropy_backward(x, t, lse, dloss, -100, eps)
    tx = torch.tensor(x, requires_grad=True)
    tl = torch.nn.functional.cross_entropy(tx, torch.tensor(t), reduction="none", ignore_index=-100,
                                           label_smoothing=eps)
    tl.backward(torch.tensor(dloss))
    assert_close(loss, tl.detach().numpy(), rtol=1e-12, atol=1e-12)
    assert_close(g, tx.grad.numpy(), rtol=1e-12, atol=1e-13)


def test_cross_entropy_bad_inputs():
    rng = np.random.default_rng(9)
    x = _logits(rng, 4, 5, np.float32)
    t = np.array([0, 1, 4, -100])
    with pytest.raises(TypeError, match="cross_entropy"):
        L.cross_entropy_forward(x, t.astype(np.float32))  # float targets
    with pytest.raises(IndexError, match=r"cross_entropy: target 5 is out of range for 5 classes"):
        L.cross_entropy_forward(x, np.array([0, 1, 5, 2]))
    with pytest.raises(IndexError, match=r"target -3 .* 5 classes"):
        L.cross_entropy_forward(x, np.array([0, -3, 1, 2]))
    with pytest.raises(IndexError, match="cross_entropy"):
        L.cross_entropy_backward(x, np.array([0, 1, 2, 99]), np.zeros(4, np.float32), np.ones(4, np.float32))
    with pytest.raises(ValueError, match=r"cross_entropy: targets has shape \(3,\)"):
        L.cross_entropy_forward(x, t[:3])
    with pytest.raises(ValueError, match="cross_entropy: logits must be 2-D"):
        L.cross_entropy_forward(x[0], t[:1])
    with pytest.raises(ValueError, match="at least one class"):
        L.cross_entropy_forward(np.zeros((4, 0), np.float32), t)
    with pytest.raises(TypeError, match="cross_entropy: logits must be float32 or float64"):
        L.cross_entropy_forward(x.astype(np.int32), t)
    with pytest.raises(ValueError, match="label_smoothing"):
        L.cross_entropy_forward(x, t, -100, 1.5)
    loss, lse = L.cross_entropy_forward(x, t)
    with pytest.raises(TypeError, match="lse"):
        L.cross_entropy_backward(x, t, lse.astype(np.float64), np.ones(4, np.float32))
    with pytest.raises(ValueError, match="dloss"):
        L.cross_entropy_backward(x, t, lse, np.ones(3, np.float32))
    with pytest.raises(TypeError, match="dloss"):
        L.cross_entropy_backward(x, t, lse, np.ones(4, np.float64))
    with pytest.raises(ValueError, match="lse"):
        L.cross_entropy_backward(x, t, lse[:2], np.ones(4, np.float32))
    out = np.empty(4, np.float32)
    with pytest.raises(ValueError, match="writeable"):
        out.flags.writeable = False
        _C.cross_entropy_forward(x, t, -100, 0.0, out, np.empty(4, np.float32))
    with pytest.raises(ValueError, match="contiguous"):
        _C.cross_entropy_forward(np.asfortranarray(_logits(rng, 4, 5, np.float32)), t, -100, 0.0,
                                 np.empty(4, np.float32), np.empty(4, np.float32))


def test_cross_entropy_noncontiguous_input():
    rng = np.random.default_rng(10)
    x = _logits(rng, 9, 40, np.float32)[:, ::2]  # a strided view: the wrapper copies it
    t = rng.integers(0, 20, 9)
    assert_close(L.cross_entropy_forward(x, t)[0], R.cross_entropy_forward(x, t)[0], rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------ MSE
_shapes = st.one_of(st.tuples(st.sampled_from(ODD_SIZES)),
                    st.tuples(st.sampled_from(ODD_SIZES), st.sampled_from(ODD_SIZES)))


@given(shape=_shapes, dtype=st.sampled_from(DTYPES), scale=st.floats(-3, 3), seed=st.integers(0, 2**31 - 1))
def test_mse_matches_reference(isa, shape, dtype, scale, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(dtype)
    y = rng.standard_normal(shape).astype(dtype)
    x0, y0 = x.copy(), y.copy()
    s = L.mse_forward(x, y)
    assert s.shape == () and s.dtype == dtype
    assert_close(s, R.mse_forward(x, y), rtol=1e-6 if dtype == np.float32 else 1e-13, atol=0)
    assert_close(L.mse_backward(x, y, scale), R.mse_backward(x, y, scale), dtype=dtype)
    assert np.array_equal(x, x0) and np.array_equal(y, y0)


def test_mse_large_deterministic(isa):
    rng = np.random.default_rng(11)
    x = rng.standard_normal(1_000_003).astype(np.float32)
    y = rng.standard_normal(1_000_003).astype(np.float32)
    d = x.astype(np.float64) - y
    exact = float(np.sum(d * d))
    before = _C.num_threads()
    try:
        _C.set_num_threads(1)
        a = L.mse_forward(x, y)
        _C.set_num_threads(2)
        b = L.mse_forward(x, y)
    finally:
        _C.set_num_threads(before)
    assert a == b  # fixed blocks summed in order
    assert abs(float(a) - exact) <= 1e-6 * exact  # float64 accumulation, one float32 rounding
    assert_close(L.mse_backward(x, y, 0.25), R.mse_backward(x, y, 0.25))


def test_mse_bad_inputs():
    x = np.ones((3, 4), np.float32) * 0.5
    with pytest.raises(ValueError, match=r"mse_loss: input \(3, 4\) and target \(4, 3\)"):
        L.mse_forward(x, np.ones((4, 3), np.float32))
    with pytest.raises(TypeError, match="mse_loss"):
        L.mse_forward(x, np.ones((3, 4), np.float64))
    with pytest.raises(TypeError, match="mse_loss"):
        L.mse_backward(np.ones(3, np.int64), np.ones(3, np.int64), 1.0)


# ------------------------------------------------------------------ BCE
def _probs(rng, shape, dtype):
    p = rng.random(shape)
    flat = p.reshape(-1)
    flat[:: 7] = 0.0  # the clamped logs: log(0) -> -100
    flat[3:: 11] = 1.0
    return p.astype(dtype)


@given(shape=_shapes, dtype=st.sampled_from(DTYPES), seed=st.integers(0, 2**31 - 1), scalar_dloss=st.booleans())
def test_bce_matches_reference(isa, shape, dtype, seed, scalar_dloss):
    rng = np.random.default_rng(seed)
    p = _probs(rng, shape, dtype)
    y = rng.random(shape).astype(dtype)
    dloss = (np.array([rng.standard_normal()]) if scalar_dloss else rng.standard_normal(shape)).astype(dtype)
    p0, y0 = p.copy(), y.copy()
    with np.errstate(divide="ignore"):  # the reference takes log(0) before clamping
        ref = R.bce_forward(p, y)
    assert_close(L.bce_forward(p, y), ref, dtype=dtype)
    assert_close(L.bce_backward(p, y, dloss), R.bce_backward(p, y, dloss),
                 rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-6 if dtype == np.float32 else 1e-12)
    assert np.array_equal(p, p0) and np.array_equal(y, y0)


@given(shape=_shapes, dtype=st.sampled_from(DTYPES), seed=st.integers(0, 2**31 - 1), scalar_dloss=st.booleans())
def test_bce_with_logits_matches_reference(isa, shape, dtype, seed, scalar_dloss):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * 5).astype(dtype)
    x.reshape(-1)[::5] = 200.0  # exp would overflow in the naive form
    x.reshape(-1)[2::5] = -200.0
    y = rng.random(shape).astype(dtype)
    dloss = (np.array([rng.standard_normal()]) if scalar_dloss else rng.standard_normal(shape)).astype(dtype)
    out = L.bce_with_logits_forward(x, y)
    assert np.all(np.isfinite(out))
    assert_close(out, R.bce_with_logits_forward(x, y), rtol=1e-5 if dtype == np.float32 else 1e-12,
                 atol=1e-5 if dtype == np.float32 else 1e-12)
    with np.errstate(over="ignore"):
        ref = R.bce_with_logits_backward(x, y, dloss)
    g = L.bce_with_logits_backward(x, y, dloss)
    assert np.all(np.isfinite(g))
    assert_close(g, ref, dtype=dtype)


def test_bce_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(12)
    p = _probs(rng, (17, 5), np.float64)
    y = rng.random((17, 5))
    x = rng.standard_normal((17, 5)) * 4
    F = torch.nn.functional
    assert_close(L.bce_forward(p, y), F.binary_cross_entropy(torch.tensor(p), torch.tensor(y), reduction="none"),
                 rtol=1e-12, atol=1e-12)
    assert_close(L.bce_with_logits_forward(x, y),
                 F.binary_cross_entropy_with_logits(torch.tensor(x), torch.tensor(y), reduction="none"),
                 rtol=1e-12, atol=1e-12)
    tx = torch.tensor(x, requires_grad=True)
    F.binary_cross_entropy_with_logits(tx, torch.tensor(y), reduction="sum").backward()
    assert_close(L.bce_with_logits_backward(x, y, 1.0), tx.grad.numpy(), rtol=1e-12, atol=1e-14)


def test_bce_bad_inputs():
    p = np.full((2, 3), 0.5, np.float32)
    with pytest.raises(ValueError, match=r"binary_cross_entropy: input values must be in \[0, 1\]"):
        L.bce_forward(p + 1.0, p)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        L.bce_forward(p - 0.75, p)
    with pytest.raises(ValueError, match=r"binary_cross_entropy: input \(2, 3\) and target \(3, 2\)"):
        L.bce_forward(p, p.reshape(3, 2))
    with pytest.raises(TypeError, match="binary_cross_entropy"):
        L.bce_forward(p, p.astype(np.float64))
    with pytest.raises(ValueError, match="dloss"):
        L.bce_backward(p, p, np.ones(4, np.float32))
    with pytest.raises(TypeError, match="dloss"):
        L.bce_backward(p, p, np.ones((2, 3), np.float64))
    with pytest.raises(ValueError, match="binary_cross_entropy_with_logits: input"):
        L.bce_with_logits_forward(p, p[:1])
    with pytest.raises(ValueError, match="binary_cross_entropy_with_logits: dloss"):
        L.bce_with_logits_backward(p, p, np.ones(5, np.float32))
    with pytest.raises(TypeError, match="binary_cross_entropy_with_logits"):
        L.bce_with_logits_forward(p.astype(np.int32), p.astype(np.int32))
