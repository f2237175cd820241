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


def _adam_state(rng, shapes, dtype):
    params = _group(rng, shapes, dtype)
    exp_avgs = [0.1 * a for a in _group(rng, shapes, dtype)]
    exp_avg_sqs = [0.01 * np.abs(a) for a in _group(rng, shapes, dtype)]
    return params, exp_avgs, exp_avg_sqs


def _run_adam(rng, shapes, dtype, steps, kw):
    p, m, v = _adam_state(rng, shapes, dtype)
    p_r, m_r, v_r = copy.deepcopy(p), copy.deepcopy(m), copy.deepcopy(v)
    for step in range(1, steps + 1):
        grads = _group(rng, shapes, dtype)
        g0 = copy.deepcopy(grads)
        O.adam_update(p, grads, m, v, step, **kw)
        R.adam_update(p_r, grads, m_r, v_r, step, **kw)
        assert all(np.array_equal(a, b) for a, b in zip(grads, g0))  # grads untouched
    for name, a, b in (("params", p, p_r), ("exp_avgs", m, m_r), ("exp_avg_sqs", v, v_r)):
        for x, y in zip(a, b):
            assert x.dtype == dtype
            assert_close(x, y, msg=f"{name} ", **TOL[dtype])


_shape_lists = st.lists(st.one_of(st.tuples(st.sampled_from(ODD_SIZES)),
                                  st.tuples(st.sampled_from(ODD_SIZES), st.sampled_from(ODD_SIZES))),
                        min_size=1, max_size=4)


@given(shapes=_shape_lists, dtype=st.sampled_from(DTYPES), decoupled=st.booleans(), maximize=st.booleans(),
       weight_decay=st.sampled_from([0.0, 0.01, 0.1]), seed=st.integers(0, 2**31 - 1))
def test_adam_matches_reference(isa, shapes, dtype, decoupled, maximize, weight_decay, seed):
    kw = dict(lr=1e-2, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=weight_decay, decoupled=decoupled,
              maximize=maximize)
    _run_adam(np.random.default_rng(seed), shapes, dtype, 3, kw)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("decoupled", [False, True])
def test_adam_big_group(isa, dtype, decoupled):
    # several chunks per tensor (threads share them) and tensors of uneven sizes
    kw = dict(lr=3e-3, beta1=0.8, beta2=0.99, eps=1e-6, weight_decay=0.05, decoupled=decoupled, maximize=False)
    _run_adam(np.random.default_rng(1), [(300_007,), (129, 1000), (5,)], dtype, 2, kw)


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
def test_adam_matches_torch(decoupled, maximize, weight_decay):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    shapes = [(64,), (13, 7)]
    p = _group(rng, shapes, np.float64)
    m = [np.zeros(s) for s in shapes]
    v = [np.zeros(s) for s in shapes]
    tp = [torch.tensor(a.copy(), requires_grad=True) for a in p]
    cls = torch.optim.AdamW if decoupled else torch.optim.Adam
    opt = cls(tp, lr=1e-2, betas=(0.9, 0.999), eps=1e-8, weight_decay=weight_decay, maximize=maximize,
              foreach=False)
    for step in range(1, 31):
        g = _group(rng, shapes, np.float64)
        for t, a in zip(tp, g):
            t.grad = torch.tensor(a)
        opt.step()
        O.adam_update(p, g, m, v, step, 1e-2, 0.9, 0.999, 1e-8, weight_decay, decoupled, maximize)
    for a, t in zip(p, tp):
        assert_close(a, t.detach().numpy(), rtol=1e-12, atol=1e-12)
    for a, t in zip(m, tp):
        assert_close(a, opt.state[t]["exp_avg"].numpy(), rtol=1e-12, atol=1e-14)


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
    # nothing was touched by the failed calls
    assert all(np.all(a == 0) for a in m + v)
