"""torch.sparse COO tensors (pyengine/sparse.py: the API on dense storage) against PyTorch: values, layouts,
sparse @ dense products and gradients, on odd shapes with duplicate indices."""
import numpy as np
import pytest
import torch

import pyengine as pe

RNG = np.random.default_rng(3)


def _coo(n, m, nnz):
    idx = np.stack([RNG.integers(0, n, nnz), RNG.integers(0, m, nnz)]).astype(np.int64)
    idx[:, -1] = idx[:, 0]  # one duplicate: values add up
    return idx, RNG.standard_normal(nnz).astype(np.float32)


@pytest.mark.parametrize("n,m,k", [(1, 1, 1), (7, 5, 3), (13, 11, 2)])
def test_sparse_mm_values_and_grads(n, m, k):
    idx, vals = _coo(n, m, 2 * n + 1)
    dense = RNG.standard_normal((m, k)).astype(np.float32)
    vt, dt = torch.tensor(vals, requires_grad=True), torch.tensor(dense, requires_grad=True)
    vp, dp = pe.tensor(vals, requires_grad=True), pe.tensor(dense, requires_grad=True)
    st = torch.sparse_coo_tensor(torch.tensor(idx), vt, (n, m))
    sp = pe.sparse_coo_tensor(pe.tensor(idx), vp, (n, m))
    assert sp.is_sparse and sp.layout is pe.sparse_coo and not dp.is_sparse and dp.layout is pe.strided
    np.testing.assert_allclose(sp.to_dense().detach().numpy(), st.to_dense().detach().numpy(), rtol=1e-6)
    yt, yp = torch.sparse.mm(st, dt), pe.sparse.mm(sp, dp)
    assert not yp.is_sparse
    np.testing.assert_allclose(yp.detach().numpy(), yt.detach().numpy(), rtol=1e-5, atol=1e-6)
    w = RNG.standard_normal(yt.shape).astype(np.float32)
    (yt * torch.tensor(w)).sum().backward()
    (yp * pe.tensor(w)).sum().backward()
    np.testing.assert_allclose(vp.grad.numpy(), vt.grad.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(dp.grad.numpy(), dt.grad.numpy(), rtol=1e-5, atol=1e-6)
    c = st.coalesce()
    np.testing.assert_array_equal(sp.indices().numpy(), c.indices().numpy())
    np.testing.assert_allclose(sp.values().detach().numpy(), c.values().detach().numpy(), rtol=1e-6)
    assert sp._nnz() == c._nnz()


def test_to_sparse_keeps_the_graph_and_products_are_dense():
    a = RNG.standard_normal((5, 3)).astype(np.float32)
    a[a < 0.3] = 0
    b = RNG.standard_normal((3, 4)).astype(np.float32)
    outs = []
    for lib in (torch, pe):
        x, w = lib.tensor(a, requires_grad=True), lib.tensor(b, requires_grad=True)
        s = x.to_sparse()
        y = lib.spmm(s, w) + (s @ w) + lib.mm(s, w)
        (y * y).sum().backward()
        assert s.is_sparse and not y.is_sparse
        outs.append((y.detach().numpy(), x.grad.numpy(), w.grad.numpy(), (lib.zeros(5, 3) + s).is_sparse))
    for o_t, o_p in zip(*outs):
        np.testing.assert_allclose(o_p, o_t, rtol=1e-5, atol=1e-5)


def test_sparse_coo_tensor_errors_and_default_size():
    s = pe.sparse_coo_tensor([[0, 3], [1, 2]], [1.0, 2.0])
    assert tuple(s.shape) == tuple(torch.sparse_coo_tensor([[0, 3], [1, 2]], [1.0, 2.0]).shape) == (4, 3)
    with pytest.raises(RuntimeError, match="out of bounds"):
        pe.sparse_coo_tensor([[0, 5]], [1.0, 2.0], (3,))
    with pytest.raises(RuntimeError, match="one value per index"):
        pe.sparse_coo_tensor([[0, 1]], [1.0], (3,))
