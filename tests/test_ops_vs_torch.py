"""Ops as a model written op by op uses them (minGPT's attention: split, view, transpose, matmul, masked_fill,
softmax, dropout; reductions over any dims), against PyTorch on the same values: forward and gradients, odd
shapes, negative dims, non-contiguous inputs, float32 and float64.
"""
import math

import numpy as np
import pytest

import pyengine as pe
import pyengine.nn.functional as F

torch = pytest.importorskip("torch")

DTYPES = (np.float32, np.float64)
TOL = {np.float32: dict(rtol=2e-4, atol=2e-5), np.float64: dict(rtol=1e-10, atol=1e-12)}


def both(arrays):
    """The same leaves in both engines, requiring grad."""
    return ([pe.tensor(a, requires_grad=True) for a in arrays],
            [torch.tensor(a, requires_grad=True) for a in arrays])


def check(fn, arrays, dtype, seed=0, fn_torch=None):
    """fn(engine, *leaves) in both engines: outputs equal (NaN where torch has NaN), then the gradients of
    a random weighting of the output (the NaN-free positions only)."""
    ps, ts = both(arrays)
    yp, yt = fn(pe, *ps), (fn_torch or fn)(torch, *ts)
    a, b = yp.detach().numpy(), yt.detach().numpy()
    assert a.shape == b.shape and a.dtype == b.dtype, (a.shape, b.shape, a.dtype, b.dtype)
    np.testing.assert_allclose(a, b, **TOL[dtype], equal_nan=True)
    w = np.random.default_rng(seed).standard_normal(a.shape).astype(dtype)
    w[~np.isfinite(b)] = 0
    with np.errstate(invalid="ignore"):  # -inf * 0 (a masked log-softmax entry) is NaN, left out of the sum
        (yp * pe.tensor(w)).sum().backward()
    (yt * torch.tensor(w)).sum().backward()
    for p, t in zip(ps, ts):
        gp, gt = p.grad, t.grad
        assert (gp is None) == (gt is None)
        if gp is not None:
            np.testing.assert_allclose(gp.numpy(), gt.numpy(), **TOL[dtype], equal_nan=True)


def rand(shape, dtype, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


# ------------------------------------------------------------------ matmul on views


def _heads(m, x, B, T, H, D, i):
    C = H * D
    return x.split(C, dim=2)[i].view(B, T, H, D).transpose(1, 2)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("B,T,H,D", [(2, 7, 3, 5), (1, 1, 1, 1), (3, 13, 2, 4)])
def test_attention_matmuls_on_head_views(B, T, H, D, dtype):
    """q @ k^T and att @ v on (B, H, T, D) views of a packed (B, T, 3C) array, and heads merged back."""
    x = rand((B, T, 3 * H * D), dtype)

    def scores(m, x):
        q, k = _heads(m, x, B, T, H, D, 0), _heads(m, x, B, T, H, D, 1)
        return q @ k.transpose(-2, -1)

    def attend(m, x):
        att = scores(m, x)
        y = att @ _heads(m, x, B, T, H, D, 2)
        return y.transpose(1, 2).contiguous().view(B, T, H * D)
    check(scores, [x], dtype)
    check(attend, [x], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_matmul_strided_and_broadcast_batches(dtype):
    """Batches that no single stride describes, broadcast batch dims, three batch dims, stepped views."""
    a, b = rand((3, 5, 4, 6), dtype), rand((5, 3, 6, 7), dtype, 1)
    check(lambda m, a, b: a.transpose(0, 1) @ b, [a, b], dtype)                       # (5, 3, 4, 6) view
    check(lambda m, a, b: a.transpose(0, 1) @ b.transpose(-2, -1).transpose(-2, -1), [a, b], dtype)
    check(lambda m, a, b: a[:, ::2] @ b[::2].transpose(0, 1), [a, b], dtype)        # stepped batches
    c = rand((1, 5, 6, 2), dtype, 2)
    check(lambda m, a, c: a.transpose(0, 1) @ c.transpose(0, 1), [a, c], dtype)     # (5, 1) x (5, 3)... bcast
    d, e = rand((2, 3, 4, 5, 6), dtype), rand((2, 1, 4, 6, 3), dtype, 3)
    check(lambda m, d, e: d @ e, [d, e], dtype)                                     # three batch dims
    check(lambda m, d, e: d.transpose(1, 2) @ e.transpose(1, 2), [d, e], dtype)
    check(lambda m, d, e: d.permute(2, 0, 1, 3, 4) @ e.permute(2, 0, 1, 3, 4), [d, e], dtype)


# ------------------------------------------------------------------ softmax / log_softmax


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("log", [False, True])
@pytest.mark.parametrize("shape,dim", [((7,), 0), ((5, 11), 0), ((5, 11), -1), ((3, 1, 13), 1), ((2, 7, 3, 5), -3),
                                       ((2, 7, 3, 5), 2), ((4, 300), 0), ((1, 1), 1)])
def test_softmax_any_dim(shape, dim, log, dtype):
    x = rand(shape, dtype) * 3

    def f(m, x):
        return (m.log_softmax if log else m.softmax)(x, dim=dim)
    check(f, [x], dtype)
    check(lambda m, x: f(m, x.transpose(0, -1)) if x.ndim > 1 else f(m, x), [x], dtype)   # non-contiguous


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("log", [False, True])
def test_softmax_causal_mask(log, dtype):
    """minGPT's attention: a -inf causal mask broadcast over (B, H), then softmax along the last dim and
    along another dim; a fully masked row (here: row 0 of a shifted mask) is NaN, as in PyTorch."""
    T = 9
    x = rand((2, 3, T, T), dtype)
    tril = np.tril(np.ones((T, T), dtype)).reshape(1, 1, T, T)
    shifted = np.tril(np.ones((T, T), dtype), -1).reshape(1, 1, T, T)

    def f(mask, dim):
        def g(m, x):
            att = x.masked_fill(m.tensor(mask) == 0, float("-inf"))
            return (F.log_softmax if log else F.softmax)(att, dim=dim) if m is pe else \
                (torch.nn.functional.log_softmax if log else torch.nn.functional.softmax)(att, dim=dim)
        return g
    for dim in (-1, 2):
        check(f(tril, dim), [x], dtype)
        check(f(shifted, dim), [x], dtype)
    ps, _ = both([x])
    y = F.softmax(ps[0].masked_fill(pe.tensor(shifted) == 0, float("-inf")), dim=-1).detach().numpy()
    assert np.isnan(y[:, :, 0]).all() and not np.isnan(y[:, :, 1:]).any()


# ------------------------------------------------------------------ reductions


REDUCTIONS = {
    "sum": lambda m, x, d, k: x.sum(dim=d, keepdim=k),
    "mean": lambda m, x, d, k: x.mean(dim=d, keepdim=k),
    "amax": lambda m, x, d, k: x.amax(dim=d, keepdim=k),
    "amin": lambda m, x, d, k: m.amin(x, dim=d, keepdim=k),
    "var": lambda m, x, d, k: x.var(dim=d, keepdim=k),
    "max": lambda m, x, d, k: x.max(dim=d, keepdim=k)[0] if isinstance(d, int) else x.amax(dim=d, keepdim=k),
    "min": lambda m, x, d, k: x.min(dim=d, keepdim=k).values if isinstance(d, int) else x.amin(dim=d, keepdim=k),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", sorted(REDUCTIONS))
@pytest.mark.parametrize("shape,dim", [((7,), 0), ((5, 11), -1), ((5, 11), 0), ((3, 1, 13), (0, 2)),
                                       ((2, 7, 3, 5), (-1, -2)), ((2, 7, 3, 5), (1, 3)), ((4, 300, 2), 1)])
def test_reductions_over_dims(op, shape, dim, dtype):
    x = rand(shape, dtype)
    for keepdim in (False, True):
        check(lambda m, x: REDUCTIONS[op](m, x, dim, keepdim), [x], dtype)
        if len(shape) > 1:  # a non-contiguous input
            check(lambda m, x: REDUCTIONS[op](m, x.transpose(0, -1), dim, keepdim), [x], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_full_and_empty_reductions(dtype):
    x = rand((3, 5, 4), dtype)
    check(lambda m, x: x.sum(), [x], dtype)
    check(lambda m, x: x.mean(), [x], dtype)
    e = np.zeros((0, 3), dtype)
    for m in (pe, torch):
        assert np.isnan(m.tensor(e).mean(dim=0).numpy()).all()
        assert (m.tensor(e).sum(dim=0).numpy() == 0).all()


# ------------------------------------------------------------------ masked_fill, dropout


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("xshape,mshape", [((2, 3, 5, 5), (1, 1, 5, 5)), ((2, 3, 5, 5), (5, 5)), ((4, 7), (4, 7)),
                                           ((2, 3, 4), (2, 1, 4)), ((2, 3, 4), (3, 1)), ((6,), ()), ((3, 1), (1,))])
def test_masked_fill_broadcast_masks(xshape, mshape, dtype):
    x = rand(xshape, dtype)
    mask = np.random.default_rng(1).random(mshape) < 0.4
    for value in (0.0, -1.5, float("-inf")):
        check(lambda m, x: x.masked_fill(m.tensor(mask), value), [x], dtype)
        if mask.ndim == len(xshape) > 1:  # a non-contiguous x and mask
            check(lambda m, x: x.transpose(0, -1).masked_fill(m.tensor(mask).transpose(0, -1), value), [x], dtype)
    with pytest.raises(RuntimeError, match="masked_fill"):
        pe.tensor(x).masked_fill(pe.tensor(np.ones((9,) + xshape, bool)), 0.0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_dropout_mask_and_gradient(dtype):
    """The kept fraction is 1 - p, kept values are scaled by 1 / (1 - p), and the gradient uses the same
    mask and scale (PyTorch's RNG differs: the draws are compared in distribution only)."""
    pe.manual_seed(3)
    x = pe.tensor(rand((64, 257), dtype) + 5.0, requires_grad=True)
    for p in (0.1, 0.5):
        x.grad = None
        y = F.dropout(x, p, training=True)
        a = y.detach().numpy()
        keep = a != 0
        assert abs(keep.mean() - (1 - p)) < 0.02 and y.dtype == x.dtype
        np.testing.assert_allclose(a[keep], x.detach().numpy()[keep] / (1 - p), **TOL[dtype])
        w = rand(a.shape, dtype, 2)
        (y * pe.tensor(w)).sum().backward()
        np.testing.assert_allclose(x.grad.numpy(), w * keep / (1 - p), **TOL[dtype])
    assert F.dropout(x, 0.0, training=True) is x and F.dropout(x, 0.5, training=False) is x
    pe.manual_seed(4)
    a1 = F.dropout(x, 0.5).detach().numpy()
    pe.manual_seed(4)
    np.testing.assert_array_equal(F.dropout(x, 0.5).detach().numpy(), a1)   # seeded: reproducible


def test_zero_dim_reductions():
    for m in (pe, torch):
        x = m.tensor(2.5)
        for d in (0, -1):
            assert float(x.sum(d)) == 2.5 and float(x.mean(d, keepdim=True)) == 2.5 and x.sum(d).ndim == 0
