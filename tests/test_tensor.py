"""Tensor creation, dtypes, conversion, NumPy interop, seeding."""
import numpy as np
import pytest

import pyengine as pe


def test_default_dtypes():
    assert pe.tensor([1.0, 2.0]).dtype == pe.float32
    assert pe.tensor([1, 2]).dtype == pe.int64
    assert pe.tensor([True]).dtype == pe.bool
    assert pe.tensor(np.zeros(2)).dtype == pe.float64
    assert pe.zeros(2, 3).dtype == pe.float32 and pe.zeros(2, 3).shape == (2, 3)
    assert pe.arange(5).dtype == pe.int64 and pe.arange(0.0, 1.0, 0.25).dtype == pe.float32
    assert pe.full((2,), 7).dtype == pe.int64


def test_factories():
    assert pe.ones(3).tolist() == [1.0, 1.0, 1.0]
    assert pe.eye(2).tolist() == [[1.0, 0.0], [0.0, 1.0]]
    assert pe.linspace(0, 1, 5).tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert pe.full((2, 2), 1.5).tolist() == [[1.5, 1.5], [1.5, 1.5]]
    x = pe.randn(3, 4, dtype=pe.float64)
    for f in (pe.zeros_like, pe.ones_like, pe.empty_like, pe.randn_like, pe.rand_like):
        y = f(x)
        assert y.shape == x.shape and y.dtype == pe.float64
    assert pe.full_like(x, 2.0).numpy().max() == 2.0
    r = pe.randint(0, 10, (100,))
    assert r.dtype == pe.int64 and 0 <= r.min().item() and r.max().item() < 10
    assert pe.randint(5, (3,)).shape == (3,)
    u = pe.rand(1000)
    assert 0 <= u.min().item() and u.max().item() < 1
    with pytest.raises(ValueError, match="zeros"):
        pe.zeros(-1)


def test_manual_seed_reproducible():
    pe.manual_seed(42)
    a = pe.randn(5).tolist(), pe.rand(3).tolist(), pe.randint(0, 100, (4,)).tolist()
    pe.manual_seed(42)
    b = pe.randn(5).tolist(), pe.rand(3).tolist(), pe.randint(0, 100, (4,)).tolist()
    assert a == b
    g = pe.Generator().manual_seed(7)
    state = g.get_state()
    x = pe.randn(3, generator=g).tolist()
    g.set_state(state)
    assert pe.randn(3, generator=g).tolist() == x


def test_from_numpy_shares_memory_and_asarray():
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    t = pe.from_numpy(a)
    a[0, 0] = 100
    assert t[0, 0].item() == 100
    t.numpy()[1, 1] = -1
    assert a[1, 1] == -1
    assert np.asarray(t) is a or np.shares_memory(np.asarray(t), a)
    c = pe.tensor(a)
    a[0, 1] = 55
    assert c[0, 1].item() != 55  # tensor() copies


def test_item_tolist_conversions():
    t = pe.tensor([[1.5]])
    assert t.item() == 1.5 and isinstance(t.item(), float)
    assert float(t) == 1.5 and int(pe.tensor(3)) == 3
    with pytest.raises(RuntimeError, match="elements"):
        pe.tensor([1.0, 2.0]).item()
    x = pe.tensor([1, 2, 3]).to(pe.float64)
    assert x.dtype == pe.float64 and x.double().dtype == pe.float64 and x.long().dtype == pe.int64
    assert pe.tensor([1.0]).to("cpu").device == pe.device("cpu")


def test_shape_methods_and_views():
    x = pe.arange(24).reshape(2, 3, 4)
    assert x.shape == (2, 3, 4) and x.size(1) == 3 and x.dim() == 3 and x.numel() == 24
    assert x.permute(2, 0, 1).shape == (4, 2, 3)
    assert x.transpose(0, 2).is_contiguous() is False
    assert x.view(6, 4).shape == (6, 4)
    with pytest.raises(RuntimeError, match="view"):
        x.transpose(0, 2).view(-1)
    assert x.transpose(0, 2).reshape(-1).shape == (24,)
    assert x.unsqueeze(1).shape == (2, 1, 3, 4) and x.unsqueeze(1).squeeze(1).shape == (2, 3, 4)
    assert x[:, None].shape == (2, 1, 3, 4) and x[..., -1].shape == (2, 3)
    assert x.flatten(1).shape == (2, 12)
    assert [c.shape for c in x.chunk(2, dim=2)] == [(2, 3, 2), (2, 3, 2)]
    assert [s.shape[1] for s in x.split([1, 2], dim=1)] == [1, 2]
    assert pe.stack([x, x], dim=1).shape == (2, 2, 3, 4)


def test_setitem_and_masks():
    x = pe.zeros(3, 3)
    x[1] = 5.0
    x[x > 4] = 2.0
    assert x.sum().item() == 6.0
    m = pe.tensor([[True, False], [False, True]])
    y = pe.ones(2, 2).masked_fill(m, 0.0)
    assert y.tolist() == [[0.0, 1.0], [1.0, 0.0]]


def test_one_hot_multinomial_where():
    oh = pe.one_hot(pe.tensor([0, 2, 1]), 3)
    assert oh.tolist() == [[1, 0, 0], [0, 0, 1], [0, 1, 0]]
    pe.manual_seed(0)
    probs = pe.tensor([[0.0, 1.0, 0.0], [0.5, 0.0, 0.5]])
    s = pe.multinomial(probs, 1000, replacement=True)
    assert (s[0] == 1).all().item()
    frac = (s[1] == 0).float().mean().item()
    assert 0.4 < frac < 0.6 and not (s[1] == 1).any().item()
    s2 = pe.multinomial(pe.tensor([0.2, 0.3, 0.5]), 3)
    assert sorted(s2.tolist()) == [0, 1, 2]
    w = pe.where(pe.tensor([True, False]), pe.tensor([1.0, 2.0]), 0.0)
    assert w.tolist() == [1.0, 0.0]


def test_int_and_float_promotion():
    assert (pe.tensor([1, 2]) * 1.5).dtype == pe.float32
    assert (pe.tensor([1.0], dtype=pe.float64) + pe.tensor([1.0])).dtype == pe.float64
    assert (pe.tensor([1, 2]) + 1).dtype == pe.int64
    assert (np.float32(2.0) * pe.tensor([1.0])).dtype == pe.float32


def test_repr_and_device():
    t = pe.tensor([1.0, 2.0], requires_grad=True)
    assert "requires_grad=True" in repr(t)
    assert "grad_fn=<MulBackward>" in repr(t * 2)
    assert t.device.type == "cpu"
    with pytest.raises(RuntimeError, match="not available"):
        pe.zeros(2, device="cuda")
