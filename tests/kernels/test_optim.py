"""Optimizer kernels (csrc/cpu/optim.cpp) against their reference twins (pyengine/backend/reference/optim.py),
at every SIMD level, in float32 and float64; against torch.optim in float64 where PyTorch is installed."""
import copy

import numpy as np
import pytest
from hypothesis import given, strategies as st

from pyengine import _C
from pyengine.backend import reference as R
from pyengine.backend.cpu import optim as O
from pyengine.testing import ODD_SIZES, assert_close

DTYPES = [np.float32, np.float64]
# float64: the kernel follows the reference's order of operations; the AVX levels may fuse a multiply-add.
TOL = {np.float32: dict(rtol=2e-5, atol=2e-6), np.float64: dict(rtol=1e-13, atol=1e-14)}


def _group(rng, shapes, dtype):
    """A param group: params, and positive second moments where needed."""
    return [rng.standard_normal(s).astype(dtype) for s in shapes]


def _adam_state(rng, shapes, dtype, amsgrad=False):
    params = _group(rng, shapes, dtype)
    exp_avgs = [0.1 * a for a in _group(rng, shapes, dtype)]
    exp_avg_sqs = [0.01 * np.abs(a) for a in _group(rng, shapes, dtype)]
    # AMSGrad's running max: about half above the second moment, half below, so both sides of max() run
    max_exp_avg_sqs = [0.01 * np.abs(a) for a in _group(rng, shapes, dtype)] if amsgrad else None
    return params, exp_avgs, exp_avg_sqs, max_exp_avg_sqs


def _run_adam(rng, shapes, dtype, steps, kw, amsgrad=False):
    p, m, v, w = _adam_state(rng, shapes, dtype, amsgrad)
    p_r, m_r, v_r, w_r = copy.deepcopy((p, m, v, w))
    for step in range(1, steps + 1):
        grads = _group(rng, shapes, dtype)
        g0 = copy.deepcopy(grads)
        O.adam_update(p, grads, m, v, step, max_exp_avg_sqs=w, **kw)
        R.adam_update(p_r, grads, m_r, v_r, step, max_exp_avg_sqs=w_r, **kw)
        assert all(np.array_equal(a, b) for a, b in zip(grads, g0))  # grads untouched
    state = (("params", p, p_r), ("exp_avgs", m, m_r), ("exp_avg_sqs", v, v_r))
    if amsgrad:
        state += (("max_exp_avg_sqs", w, w_r),)
    for name, a, b in state:
        for x, y in zip(a, b):
            assert x.dtype == dtype
            assert_close(x, y, msg=f"{name} ", **TOL[dtype])


_shape_lists = st.lists(st.one_of(st.tuples(st.sampled_from(ODD_SIZES)),
                                  st.tuples(st.sampled_from(ODD_SIZES), st.sampled_from(ODD_SIZES))),
                        min_size=1, max_size=4)


@given(shapes=_shape_lists, dtype=st.sampled_from(DTYPES), decoupled=st.booleans(), maximize=st.booleans(),
       weight_decay=st.sampled_from([0.0, 0.01, 0.1]), amsgrad=st.booleans(), seed=st.integers(0, 2**31 - 1))
def test_adam_matches_reference(isa, shapes, dtype, decoupled, maximize, weight_decay, amsgrad, seed):
    kw = dict(lr=1e-2, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=weight_decay, decoupled=decoupled,
              maximize=maximize)
    _run_adam(np.random.default_rng(seed), shapes, dtype, 3, kw, amsgrad)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("decoupled,amsgrad", [(False, False), (True, False), (True, True)])
def test_adam_big_group(isa, dtype, decoupled, amsgrad):
    # several chunks per tensor (threads share them) and tensors of uneven sizes
    kw = dict(lr=3e-3, beta1=0.8, beta2=0.99, eps=1e-6, weight_decay=0.05, decoupled=decoupled, maximize=False)
    _run_adam(np.random.default_rng(1), [(300_007,), (129, 1000), (5,)], dtype, 2, kw, amsgrad)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("beta2,step", [(0.999, 1), (0.999, 7), (0.99, 300), (0.9, 2), (0.99999, 3)])
def test_adam_bias_correction_division_is_exact(isa, dtype, beta2, step):
    """sqrt(v) / sqrt(1 - beta2^t) is a correctly rounded division in the parameter's dtype at every level
    (the FMA levels compute it as a multiply by the reciprocal plus one FMA correction): with g = 0, eps = 0
    and p = 0 the new p is -(step_size m) / (sqrt(v) / b) bit for bit, over second moments of every
    magnitude (all bit patterns: subnormal, huge, 0, inf, NaN)."""
    rng = np.random.default_rng(step)
    n = 100_003
    if dtype == np.float32:
        bits = rng.integers(0, 0x7F800000, n, dtype=np.uint32, endpoint=True)
    else:
        bits = rng.integers(0, 0x7FF0000000000000, n, dtype=np.uint64, endpoint=True)
    v = bits.view(dtype).copy()
    v[:5] = [0.0, np.inf, np.nan, np.finfo(dtype).smallest_subnormal, np.finfo(dtype).max]
    m = rng.standard_normal(n).astype(dtype)
    p = np.zeros(n, dtype)
    lr, beta1 = 1e-2, 0.9
    m_new, v_new = m * dtype(beta1), v * dtype(beta2)
    b = dtype(np.sqrt(1.0 - beta2 ** step))
    with np.errstate(divide="ignore", invalid="ignore"):  # v = 0 and inf, as the kernel meets them
        want = dtype(0) - dtype(lr / (1.0 - beta1 ** step)) * m_new / (np.sqrt(v_new) / b)
    O.adam_update([p], [np.zeros(n, dtype)], [m], [v], step, lr, beta1, beta2, 0.0)
    np.testing.assert_array_equal(v, v_new)
    np.testing.assert_array_equal(m, m_new)
    np.testing.assert_array_equal(p.view(bits.dtype), want.view(bits.dtype))


def _rmsprop_state(rng, shapes, dtype):
    """square_avgs, momentum_buffers, grad_avgs with v - a^2 >= 0.01 (the running averages keep v >= a^2;
    a margin keeps sqrt(v - a^2), ill-conditioned near 0, off the last bits where an FMA differs)."""
    grad_avgs = [0.1 * a for a in _group(rng, shapes, dtype)]
    square_avgs = [a * a + 0.01 * (1 + np.abs(b)) for a, b in zip(grad_avgs, _group(rng, shapes, dtype))]
    momentum_buffers = [0.1 * a for a in _group(rng, shapes, dtype)]
    return square_avgs, momentum_buffers, grad_avgs


def _run_rmsprop(rng, shapes, dtype, steps, kw):
    p = _group(rng, shapes, dtype)
    state = _rmsprop_state(rng, shapes, dtype)
    p_r, state_r = copy.deepcopy(p), copy.deepcopy(state)
    for _ in range(steps):
        grads = _group(rng, shapes, dtype)
        g0 = copy.deepcopy(grads)
        O.rmsprop_update(p, grads, *state, **kw)
        R.rmsprop_update(p_r, grads, *state_r, **kw)
        assert all(np.array_equal(a, b) for a, b in zip(grads, g0))
    for name, a, b in zip(("params", "square_avgs", "momentum_buffers", "grad_avgs"), (p,) + state, (p_r,) + state_r):
        for x, y in zip(a, b):
            assert x.dtype == dtype
            assert_close(x, y, msg=f"{name} ", **TOL[dtype])


@given(shapes=_shape_lists, dtype=st.sampled_from(DTYPES), centered=st.booleans(),
       momentum=st.sampled_from([0.0, 0.9]), weight_decay=st.sampled_from([0.0, 0.01]), maximize=st.booleans(),
       seed=st.integers(0, 2**31 - 1))
def test_rmsprop_matches_reference(isa, shapes, dtype, centered, momentum, weight_decay, maximize, seed):
    kw = dict(lr=1e-2, alpha=0.9, eps=1e-8, weight_decay=weight_decay, momentum=momentum, centered=centered,
              maximize=maximize)
    _run_rmsprop(np.random.default_rng(seed), shapes, dtype, 3, kw)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("centered,momentum", [(False, 0.0), (True, 0.9)])
def test_rmsprop_big_group(isa, dtype, centered, momentum):
    kw = dict(lr=1e-3, alpha=0.99, eps=1e-6, weight_decay=0.05, momentum=momentum, centered=centered)
    _run_rmsprop(np.random.default_rng(8), [(300_007,), (129, 1000), (5,)], dtype, 2, kw)


def _run_adagrad(rng, shapes, dtype, steps, kw):
    p = _group(rng, shapes, dtype)
    sums = [np.abs(a) for a in _group(rng, shapes, dtype)]
    p_r, sums_r = copy.deepcopy(p), copy.deepcopy(sums)
    for step in range(1, steps + 1):
        grads = _group(rng, shapes, dtype)
        g0 = copy.deepcopy(grads)
        O.adagrad_update(p, grads, sums, step, **kw)
        R.adagrad_update(p_r, grads, sums_r, step, **kw)
        assert all(np.array_equal(a, b) for a, b in zip(grads, g0))
    for name, a, b in (("params", p, p_r), ("state_sums", sums, sums_r)):
        for x, y in zip(a, b):
            assert x.dtype == dtype
            assert_close(x, y, msg=f"{name} ", **TOL[dtype])


@given(shapes=_shape_lists, dtype=st.sampled_from(DTYPES), lr_decay=st.sampled_from([0.0, 0.1]),
       weight_decay=st.sampled_from([0.0, 0.01]), maximize=st.booleans(), seed=st.integers(0, 2**31 - 1))
def test_adagrad_matches_reference(isa, shapes, dtype, lr_decay, weight_decay, maximize, seed):
    kw = dict(lr=1e-2, lr_decay=lr_decay, weight_decay=weight_decay, eps=1e-10, maximize=maximize)
    _run_adagrad(np.random.default_rng(seed), shapes, dtype, 3, kw)


@pytest.mark.parametrize("dtype", DTYPES)
def test_adagrad_big_group(isa, dtype):
    kw = dict(lr=1e-2, lr_decay=0.01, weight_decay=0.05, eps=1e-10, maximize=False)
    _run_adagrad(np.random.default_rng(9), [(300_007,), (129, 1000), (5,)], dtype, 2, kw)


# ------------------------------------------------------------------ NaN propagation
def _nan_at(rng, arrays, frac=0.2):
    """Put NaN at a random fifth of the elements of each array (at least one); returns the masks."""
    masks = []
    for a in arrays:
        mask = rng.random(a.shape) < frac
        mask.reshape(-1)[0] = True
        a[mask] = np.nan
        masks.append(mask)
    return masks


NAN_SHAPES = [(1,), (7,), (13, 5), (97,)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("where", ["grad", "exp_avg_sq", "max_exp_avg_sq"])
def test_adam_amsgrad_propagates_nan(isa, dtype, where):
    """A NaN gradient or second moment reaches p, and AMSGrad's running max keeps it (torch.maximum and
    np.maximum propagate NaN; std::max(w, NaN) would silently drop it)."""
    rng = np.random.default_rng(10)
    p, m, v, w = _adam_state(rng, NAN_SHAPES, dtype, amsgrad=True)
    g = _group(rng, NAN_SHAPES, dtype)
    masks = _nan_at(rng, {"grad": g, "exp_avg_sq": v, "max_exp_avg_sq": w}[where])
    p_r, m_r, v_r, w_r = copy.deepcopy((p, m, v, w))
    kw = dict(lr=1e-2, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.01, decoupled=True)
    O.adam_update(p, g, m, v, 2, max_exp_avg_sqs=w, **kw)
    R.adam_update(p_r, g, m_r, v_r, 2, max_exp_avg_sqs=w_r, **kw)
    for x, y, mask in zip(p, p_r, masks):
        np.testing.assert_array_equal(np.isnan(x), mask)
        assert_close(x, y, **TOL[dtype])  # NaNs must match
    for x, y, mask in zip(w, w_r, masks):
        np.testing.assert_array_equal(np.isnan(x), mask)
        assert_close(x, y, **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("centered,momentum", [(False, 0.0), (True, 0.9)])
def test_rmsprop_propagates_nan(isa, dtype, centered, momentum):
    rng = np.random.default_rng(11)
    p = _group(rng, NAN_SHAPES, dtype)
    state = _rmsprop_state(rng, NAN_SHAPES, dtype)
    g = _group(rng, NAN_SHAPES, dtype)
    masks = _nan_at(rng, g)
    p_r, state_r = copy.deepcopy(p), copy.deepcopy(state)
    kw = dict(lr=1e-2, alpha=0.9, eps=1e-8, weight_decay=0.01, momentum=momentum, centered=centered)
    O.rmsprop_update(p, g, *state, **kw)
    R.rmsprop_update(p_r, g, *state_r, **kw)
    for x, y, mask in zip(p + state[0], p_r + state_r[0], masks + masks):
        np.testing.assert_array_equal(np.isnan(x), mask)
        assert_close(x, y, **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_adagrad_propagates_nan(isa, dtype):
    rng = np.random.default_rng(12)
    p = _group(rng, NAN_SHAPES, dtype)
    sums = [np.abs(a) for a in _group(rng, NAN_SHAPES, dtype)]
    g = _group(rng, NAN_SHAPES, dtype)
    masks = _nan_at(rng, g)
    p_r, sums_r = copy.deepcopy(p), copy.deepcopy(sums)
    O.adagrad_update(p, g, sums, 3, 1e-2, 0.01, 0.01, 1e-10)
    R.adagrad_update(p_r, g, sums_r, 3, 1e-2, 0.01, 0.01, 1e-10)
    for x, y, mask in zip(p + sums, p_r + sums_r, masks + masks):
        np.testing.assert_array_equal(np.isnan(x), mask)
        assert_close(x, y, **TOL[dtype])


SGD_COMBOS = [dict(momentum=m, dampening=d, nesterov=n, weight_decay=w, maximize=x)
              for m in (0.0, 0.9) for d in (0.0, 0.1) for n in (False, True) for w in (0.0, 0.01)
              for x in (False, True) if not (n and d) and not (m == 0.0 and (d or n))]


@pytest.mark.parametrize("combo", SGD_COMBOS, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()))
@pytest.mark.parametrize("dtype", DTYPES)
def test_sgd_matches_reference(isa, combo, dtype):
    rng = np.random.default_rng(2)
    shapes = [(1,), (17,), (33, 65), (70_001,)]
    p = _group(rng, shapes, dtype)
    b = [np.full(s, np.nan, dtype) for s in shapes]  # garbage: the first step must overwrite it
    p_r, b_r = copy.deepcopy(p), copy.deepcopy(b)
    for k in range(4):
        grads = _group(rng, shapes, dtype)
        g0 = copy.deepcopy(grads)
        O.sgd_update(p, grads, b, lr=0.05, first_step=k == 0, **combo)
        R.sgd_update(p_r, grads, b_r, lr=0.05, first_step=k == 0, **combo)
        assert all(np.array_equal(a, c) for a, c in zip(grads, g0))
    for x, y in zip(p + (b if combo["momentum"] else []), p_r + (b_r if combo["momentum"] else [])):
        assert_close(x, y, **TOL[dtype])


def test_sgd_without_momentum_ignores_buffers():
    rng = np.random.default_rng(3)
    p = _group(rng, [(5,), (7, 3)], np.float64)
    p_r = copy.deepcopy(p)
    g = _group(rng, [(5,), (7, 3)], np.float64)
    O.sgd_update(p, g, None, lr=0.1, weight_decay=0.1)
    R.sgd_update(p_r, g, [None, None], lr=0.1, weight_decay=0.1)
    for x, y in zip(p, p_r):
        assert_close(x, y, **TOL[np.float64])


def test_mixed_dtypes_empty_and_noncontiguous_grads():
    rng = np.random.default_rng(4)
    shapes = [(9,), (0,), (4, 6)]
    p = [rng.standard_normal(9).astype(np.float32), np.zeros(0), rng.standard_normal((4, 6))]
    m = [np.zeros_like(a) for a in p]
    v = [np.zeros_like(a) for a in p]
    big = [rng.standard_normal(18).astype(np.float32), np.zeros(0), rng.standard_normal((4, 12))]
    g = [big[0][::2], big[1], big[2][:, ::2]]  # strided views: copied by the binding
    p_r, m_r, v_r = copy.deepcopy(p), copy.deepcopy(m), copy.deepcopy(v)
    O.adam_update(p, g, m, v, 1, 1e-3, 0.9, 0.999, 1e-8)
    R.adam_update(p_r, g, m_r, v_r, 1, 1e-3, 0.9, 0.999, 1e-8)
    for x, y in zip(p, p_r):
        assert_close(x, y, **TOL[x.dtype.type])
    O.adam_update([], [], [], [], 1, 1e-3, 0.9, 0.999, 1e-8)  # an empty group is a no-op
    assert len(shapes) == 3


# ------------------------------------------------------------------ against torch.optim (float64)
@pytest.mark.parametrize("decoupled", [False, True])
@pytest.mark.parametrize("maximize", [False, True])
@pytest.mark.parametrize("weight_decay", [0.0, 0.05])
@pytest.mark.parametrize("amsgrad", [False, True])
def test_adam_matches_torch(decoupled, maximize, weight_decay, amsgrad):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    shapes = [(64,), (13, 7)]
    p = _group(rng, shapes, np.float64)
    m = [np.zeros(s) for s in shapes]
    v = [np.zeros(s) for s in shapes]
    w = [np.zeros(s) for s in shapes] if amsgrad else None
    tp = [torch.tensor(a.copy(), requires_grad=True) for a in p]
    cls = torch.optim.AdamW if decoupled else torch.optim.Adam
    opt = cls(tp, lr=1e-2, betas=(0.9, 0.9), eps=1e-8, weight_decay=weight_decay, maximize=maximize,
              amsgrad=amsgrad, foreach=False)
    for step in range(1, 31):
        # gradients shrinking at times: the second moment falls below its running max (AMSGrad's case)
        scale = 1.0 if step % 10 < 5 else 0.1
        g = [scale * a for a in _group(rng, shapes, np.float64)]
        for t, a in zip(tp, g):
            t.grad = torch.tensor(a)
        opt.step()
        O.adam_update(p, g, m, v, step, 1e-2, 0.9, 0.9, 1e-8, weight_decay, decoupled, maximize, w)
    for a, t in zip(p, tp):
        assert_close(a, t.detach().numpy(), rtol=1e-12, atol=1e-12)
    for a, t in zip(m, tp):
        assert_close(a, opt.state[t]["exp_avg"].numpy(), rtol=1e-12, atol=1e-14)
    if amsgrad:
        for a, b, t in zip(w, v, tp):
            assert_close(a, opt.state[t]["max_exp_avg_sq"].numpy(), rtol=1e-12, atol=1e-16)
            assert np.mean(a > b) > 0.5  # the max was used, not the current moment


@pytest.mark.parametrize("centered", [False, True])
@pytest.mark.parametrize("momentum", [0.0, 0.9])
@pytest.mark.parametrize("weight_decay,maximize", [(0.0, False), (0.05, True)])
def test_rmsprop_matches_torch(centered, momentum, weight_decay, maximize):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(13)
    shapes = [(1,), (31,), (13, 7)]
    p = _group(rng, shapes, np.float64)
    state = tuple([np.zeros(s) for s in shapes] for _ in range(3))  # square_avgs, momentum_buffers, grad_avgs
    tp = [torch.tensor(a.copy(), requires_grad=True) for a in p]
    opt = torch.optim.RMSprop(tp, lr=1e-2, alpha=0.9, eps=1e-8, weight_decay=weight_decay, momentum=momentum,
                              centered=centered, maximize=maximize, foreach=False)
    for _ in range(20):
        g = _group(rng, shapes, np.float64)
        for t, a in zip(tp, g):
            t.grad = torch.tensor(a)
        opt.step()
        O.rmsprop_update(p, g, *state, 1e-2, 0.9, 1e-8, weight_decay, momentum, centered, maximize)
    for a, t in zip(p, tp):
        assert_close(a, t.detach().numpy(), rtol=1e-12, atol=1e-12)
    for a, t in zip(state[0], tp):
        assert_close(a, opt.state[t]["square_avg"].numpy(), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("lr_decay", [0.0, 0.1])
@pytest.mark.parametrize("weight_decay,maximize", [(0.0, False), (0.05, True)])
def test_adagrad_matches_torch(lr_decay, weight_decay, maximize):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(14)
    shapes = [(1,), (31,), (13, 7)]
    p = _group(rng, shapes, np.float64)
    sums = [np.full(s, 0.1) for s in shapes]
    tp = [torch.tensor(a.copy(), requires_grad=True) for a in p]
    opt = torch.optim.Adagrad(tp, lr=1e-1, lr_decay=lr_decay, weight_decay=weight_decay,
                              initial_accumulator_value=0.1, eps=1e-10, maximize=maximize, foreach=False)
    for step in range(1, 21):
        g = _group(rng, shapes, np.float64)
        for t, a in zip(tp, g):
            t.grad = torch.tensor(a)
        opt.step()
        O.adagrad_update(p, g, sums, step, 1e-1, lr_decay, weight_decay, 1e-10, maximize)
    for a, t in zip(p, tp):
        assert_close(a, t.detach().numpy(), rtol=1e-12, atol=1e-12)
    for a, t in zip(sums, tp):
        assert_close(a, opt.state[t]["sum"].numpy(), rtol=1e-12, atol=1e-14)


def _sgd_vs_torch(torch, combo):
    rng = np.random.default_rng(6)
    shapes = [(31,), (8, 9)]
    p = _group(rng, shapes, np.float64)
    b = [np.empty(s) for s in shapes]
    tp = [torch.tensor(a.copy(), requires_grad=True) for a in p]
    opt = torch.optim.SGD(tp, lr=0.05, foreach=False, **combo)
    for k in range(10):
        g = _group(rng, shapes, np.float64)
        for t, a in zip(tp, g):
            t.grad = torch.tensor(a)
        opt.step()
        O.sgd_update(p, g, b, 0.05, first_step=k == 0, **combo)
    for a, t in zip(p, tp):
        assert_close(a, t.detach().numpy(), rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("combo", SGD_COMBOS,
                         ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()))
def test_sgd_matches_torch(combo):
    torch = pytest.importorskip("torch")
    _sgd_vs_torch(torch, combo)


# ------------------------------------------------------------------ bad inputs
def _adam(params, grads, m, v, step=1):
    O.adam_update(params, grads, m, v, step, 1e-3, 0.9, 0.999, 1e-8)


def test_optim_bad_inputs():
    rng = np.random.default_rng(7)
    p = _group(rng, [(4,), (3, 2)], np.float32)
    g = _group(rng, [(4,), (3, 2)], np.float32)
    m = [np.zeros_like(a) for a in p]
    v = [np.zeros_like(a) for a in p]
    with pytest.raises(ValueError, match=r"adam_update: grads has 1 arrays but params has 2"):
        _adam(p, g[:1], m, v)
    with pytest.raises(ValueError, match=r"adam_update: exp_avg_sqs has 3 arrays"):
        _adam(p, g, m, v + v[:1])
    with pytest.raises(ValueError, match=r"grads\[1\] has shape \(2, 3\) but params\[1\] has shape \(3, 2\)"):
        _adam(p, [g[0], g[1].reshape(2, 3)], m, v)
    with pytest.raises(TypeError, match=r"adam_update: grads\[0\] \(float64\) and params\[0\] \(float32\) must have the same dtype"):
        _adam(p, [g[0].astype(np.float64), g[1]], m, v)
    with pytest.raises(TypeError, match=r"adam_update: params\[0\] must be float32 or float64"):
        _adam([np.zeros(4, np.int64), p[1]], g, m, v)
    with pytest.raises(TypeError, match=r"exp_avgs\[1\] must be a numpy array"):
        _adam(p, g, [m[0], [0.0] * 6], v)
    with pytest.raises(TypeError, match="params must be a list of arrays"):
        _adam(p[0], g, m, v)
    with pytest.raises(ValueError, match="step must be >= 1"):
        _adam(p, g, m, v, step=0)
    with pytest.raises(ValueError, match=r"params\[0\] must be C-contiguous"):
        _adam([np.zeros(8, np.float32)[::2], p[1]], g, m, v)
    ro = p[0].copy()
    ro.flags.writeable = False
    with pytest.raises(ValueError, match=r"params\[0\] must be writeable"):
        _adam([ro, p[1]], g, m, v)
    with pytest.raises(ValueError, match=r"exp_avg_sqs\[0\] is the same array as exp_avgs\[0\]"):
        _adam(p, g, m, m)
    with pytest.raises(TypeError, match="momentum_buffers must be a list"):
        O.sgd_update(p, g, None, lr=0.1, momentum=0.9)
    with pytest.raises(ValueError, match="momentum_buffers has 1 arrays"):
        O.sgd_update(p, g, m[:1], lr=0.1, momentum=0.9)
    with pytest.raises(ValueError, match=r"sgd_update: momentum_buffers\[0\] has shape"):
        O.sgd_update(p, g, [np.zeros(5, np.float32), m[1]], lr=0.1, momentum=0.9)
    with pytest.raises(ValueError, match=r"adam_update: max_exp_avg_sqs has 1 arrays but params has 2"):
        O.adam_update(p, g, m, v, 1, 1e-3, 0.9, 0.999, 1e-8, max_exp_avg_sqs=v[:1])
    with pytest.raises(ValueError, match=r"adam_update: max_exp_avg_sqs\[1\] is the same array as exp_avg_sqs\[1\]"):
        O.adam_update(p, g, m, v, 1, 1e-3, 0.9, 0.999, 1e-8, max_exp_avg_sqs=[np.zeros(4, np.float32), v[1]])
    with pytest.raises(TypeError, match="adam_update: max_exp_avg_sqs must be a list of arrays"):
        O.adam_update(p, g, m, v, 1, 1e-3, 0.9, 0.999, 1e-8, max_exp_avg_sqs=np.zeros(4))
    with pytest.raises(ValueError, match=r"rmsprop_update: square_avgs\[1\] has shape \(6,\)"):
        O.rmsprop_update(p, g, [v[0], v[1].reshape(6)], None, None, 1e-2, 0.99, 1e-8)
    with pytest.raises(TypeError, match="rmsprop_update: momentum_buffers must be a list"):
        O.rmsprop_update(p, g, v, None, None, 1e-2, 0.99, 1e-8, momentum=0.9)
    with pytest.raises(TypeError, match="rmsprop_update: grad_avgs must be a list"):
        O.rmsprop_update(p, g, v, None, None, 1e-2, 0.99, 1e-8, centered=True)
    with pytest.raises(ValueError, match=r"rmsprop_update: grad_avgs\[0\] is the same array as square_avgs\[0\]"):
        O.rmsprop_update(p, g, v, None, v, 1e-2, 0.99, 1e-8, centered=True)
    with pytest.raises(TypeError, match=r"adagrad_update: state_sums\[0\] \(float64\) and params\[0\] \(float32\)"):
        O.adagrad_update(p, g, [np.zeros(4), v[1]], 1, 1e-2)
    with pytest.raises(ValueError, match="adagrad_update: step must be >= 1"):
        O.adagrad_update(p, g, v, 0, 1e-2)
    # nothing was touched by the failed calls
    assert all(np.all(a == 0) for a in m + v)
