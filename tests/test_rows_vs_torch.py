"""max/min along a dim (reduce.max_dim kernels) and softmax rows (activation, float intrinsics) against PyTorch:
forward and gradients, odd shapes, non-contiguous inputs, ties and NaN, 1 and 2 threads."""
import numpy as np
import pytest

import pyengine as pe

torch = pytest.importorskip("torch")


def _pair(a, transpose=False):
    p, t = pe.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)
    if transpose:
        return p, t, p.transpose(0, -1), t.transpose(0, -1)
    return p, t, p, t


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("shape,dim", [((1,), 0), ((7, 1), 1), ((5, 64), -1), ((3, 13, 17), 1), ((64, 32, 64), -1),
                                       ((4, 3, 300), 0), ((2, 1031), -1)])
@pytest.mark.parametrize("op", ["max", "min"])
@pytest.mark.parametrize("keepdim", [False, True])
@pytest.mark.parametrize("transpose", [False, True])
def test_max_min_dim_like_torch(threads, shape, dim, op, keepdim, transpose):
    rng = np.random.default_rng(sum(shape) + dim)
    a = np.round(rng.standard_normal(shape) * 2).astype(np.float32)  # ties: the first extreme is chosen
    before = pe.get_num_threads()
    pe.set_num_threads(threads)
    try:
        p, t, pv, tv = _pair(a, transpose)
        pr, tr = getattr(pv, op)(dim=dim, keepdim=keepdim), getattr(tv, op)(dim=dim, keepdim=keepdim)
        np.testing.assert_array_equal(pr[0].detach().numpy(), tr[0].detach().numpy())
        np.testing.assert_array_equal(pr[1].numpy(), tr[1].numpy())
        assert pr[1].dtype == pe.int64
        w = rng.standard_normal(tuple(tr[0].shape)).astype(np.float32)
        (pr[0] * pe.tensor(w)).sum().backward()
        (tr[0] * torch.tensor(w)).sum().backward()
        np.testing.assert_array_equal(p.grad.numpy(), t.grad.numpy())
    finally:
        pe.set_num_threads(before)


def test_max_dim_nan_and_indices_are_the_callers():
    a = np.array([[1.0, np.nan, 3.0, np.nan], [2.0, 2.0, -1.0, 0.5]], np.float32)
    p = pe.tensor(a, requires_grad=True)
    v, i = p.max(dim=1)
    tv, ti = torch.tensor(a).max(dim=1)
    np.testing.assert_array_equal(v.detach().numpy(), tv.numpy())
    np.testing.assert_array_equal(i.numpy(), ti.numpy())
    i.zero_()  # the returned indices are the caller's: backward still routes to the recorded ones
    v.sum().backward()
    np.testing.assert_array_equal(p.grad.numpy(), [[0, 1, 0, 0], [1, 0, 0, 0]])


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("shape", [(1, 1), (3, 5), (7, 16), (4, 31), (256, 512), (2, 3, 1031), (5, 33)])
@pytest.mark.parametrize("log", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_rows_like_torch(threads, shape, log, dtype):
    rng = np.random.default_rng(shape[-1])
    a = (rng.standard_normal(shape) * 4).astype(dtype)
    a.reshape(-1)[::11] = -np.inf if shape[-1] > 1 else a.reshape(-1)[::11]  # masked entries
    before = pe.get_num_threads()
    pe.set_num_threads(threads)
    try:
        p, t = pe.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)
        f = (pe.log_softmax, torch.log_softmax) if log else (pe.softmax, torch.softmax)
        yp, yt = f[0](p, dim=-1), f[1](t, dim=-1)
        tol = dict(rtol=2e-6, atol=2e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(yp.detach().numpy(), yt.detach().numpy(), **tol)
        w = rng.standard_normal(shape).astype(dtype)
        keep = np.isfinite(yt.detach().numpy())  # log-softmax of a masked entry is -inf: weight it 0
        w = np.where(keep, w, 0).astype(dtype)
        with np.errstate(invalid="ignore"):  # -inf * 0 in the (unused) forward sum of log-softmax
            (yp * pe.tensor(w)).sum().backward()
        (yt * torch.tensor(w)).sum().backward()
        np.testing.assert_allclose(p.grad.numpy(), t.grad.numpy(), rtol=1e-4 if dtype == np.float32 else 1e-10,
                                   atol=1e-5 if dtype == np.float32 else 1e-12)
        # the broadcast gradient of a sum (strided dy: the threaded copy in the wrapper)
        p.grad = None
        t.grad = None
        f[0](p, dim=-1).sum().backward()
        f[1](t, dim=-1).sum().backward()
        np.testing.assert_allclose(p.grad.numpy(), t.grad.numpy(), rtol=1e-4, atol=1e-5)
    finally:
        pe.set_num_threads(before)
