"""pyengine.nn: Module semantics, containers, init, every layer against NumPy (and PyTorch with the
same weights where it is installed), LSTM and MultiheadAttention forward + gradients, nn.utils.

PyTorch is used for numeric comparison only; those tests skip cleanly without it. The LSTM
gradients are also checked against finite differences, so they are tested without torch.
"""
import copy
import math
import pickle
from collections import OrderedDict

import numpy as np
import pytest

import pyengine as pe
import pyengine.nn as nn
from pyengine.testing import assert_close, numeric_grad as _numeric_grad, to_numpy


def _torch():
    return pytest.importorskip("torch")


_np = to_numpy  # a pyengine or torch tensor as a NumPy array


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 3)
        self.scale = nn.Parameter(pe.ones(3))
        self.register_buffer("steps", pe.zeros((), dtype=pe.int64))
        self.register_buffer("cache", pe.zeros(2), persistent=False)
        self.blocks = nn.Sequential(nn.Linear(3, 3), nn.Tanh())

    def forward(self, x):
        return self.blocks(self.fc(x) * self.scale)


# ---------------------------------------------------------------------- Parameter


def test_parameter_basics():
    t = pe.randn(2, 3)
    p = nn.Parameter(t)
    assert isinstance(p, pe.Tensor) and p.requires_grad and p.is_leaf
    assert np.shares_memory(p._data, t._data)
    assert repr(p).startswith("Parameter containing:\ntensor(")
    assert not nn.Parameter(t, requires_grad=False).requires_grad
    assert type(p * 2) is pe.Tensor  # ops return plain tensors
    with pytest.raises(RuntimeError, match="floating point"):
        nn.Parameter(pe.tensor([1, 2]))
    q = copy.deepcopy(p)
    assert isinstance(q, nn.Parameter) and q.requires_grad and not np.shares_memory(q._data, p._data)
    r = pickle.loads(pickle.dumps(p))
    assert isinstance(r, nn.Parameter)
    assert_close(r._data, p._data)


# ---------------------------------------------------------------------- Module: registration


def test_registration_and_traversal():
    net = Net()
    names = [n for n, _ in net.named_parameters()]
    assert names == ["scale", "fc.weight", "fc.bias", "blocks.0.weight", "blocks.0.bias"]
    assert len(list(net.parameters())) == 5
    assert [n for n, _ in net.named_parameters(recurse=False)] == ["scale"]
    assert [n for n, _ in net.named_buffers()] == ["steps", "cache"]
    assert [n for n, _ in net.named_children()] == ["fc", "blocks"]
    assert [n for n, _ in net.named_modules()] == ["", "fc", "blocks", "blocks.0", "blocks.1"]
    assert net.fc.weight is net._modules["fc"]._parameters["weight"]
    assert net.get_submodule("blocks.0") is net.blocks[0]
    assert net.get_parameter("blocks.0.bias") is net.blocks[0].bias
    assert [n for n, _ in net.named_parameters(prefix="model")][0] == "model.scale"
    assert "fc" in dir(net) and "scale" in dir(net)


def test_shared_parameters_are_deduplicated():
    a = nn.Linear(3, 3)
    seq = nn.Sequential(a, nn.ReLU(), a)
    assert len(list(seq.parameters())) == 2
    assert len(list(seq.modules())) == 3  # Sequential, Linear once, ReLU
    tied = nn.Module()
    tied.emb = nn.Embedding(5, 3)
    tied.out = nn.Linear(3, 5, bias=False)
    tied.out.weight = tied.emb.weight
    assert [n for n, _ in tied.named_parameters()] == ["emb.weight"]
    assert list(tied.state_dict()) == ["emb.weight", "out.weight"]  # state dicts list both, as PyTorch


def test_setattr_rules_and_errors():
    net = Net()
    with pytest.raises(TypeError, match="cannot assign 'Tensor' as parameter 'scale'"):
        net.scale = pe.ones(3)
    with pytest.raises(TypeError, match="cannot assign 'int' as child module 'fc'"):
        net.fc = 3
    with pytest.raises(TypeError, match="cannot assign 'list' as buffer 'steps'"):
        net.steps = [1]
    net.steps = pe.ones((), dtype=pe.int64)  # a tensor may replace a buffer
    assert net.steps.item() == 1
    net.scale = None  # an optional parameter may be cleared
    assert net.scale is None and "scale" not in dict(net.named_parameters())
    net.extra = nn.Parameter(pe.zeros(1))
    assert "extra" in dict(net.named_parameters())
    del net.extra
    assert "extra" not in dict(net.named_parameters())
    with pytest.raises(AttributeError, match="'Net' object has no attribute 'nope'"):
        net.nope
    with pytest.raises(KeyError, match="attribute 'fc' already exists"):
        net.register_buffer("fc", pe.zeros(1))
    with pytest.raises(KeyError, match="name can.*t contain"):
        net.register_parameter("a.b", None)
    with pytest.raises(TypeError, match="not a Module subclass"):
        net.add_module("x", 3)
    with pytest.raises(ValueError, match="non-leaf"):
        net.register_parameter("y", _nonleaf_param())

    class Bad(nn.Module):
        def __init__(self):
            self.w = nn.Parameter(pe.ones(1))

    with pytest.raises(AttributeError, match="before Module.__init__"):
        Bad()
    with pytest.raises(NotImplementedError, match='missing the required "forward"'):
        nn.Module()(1)


def _nonleaf_param():
    p = nn.Parameter(pe.ones(2))
    q = nn.Parameter.__new__(nn.Parameter)
    y = p * 2
    q._data, q.grad, q.grad_fn, q._out_index, q._hooks, q._post_hooks = y._data, None, y.grad_fn, 0, None, None
    q.requires_grad = True
    return q


# ---------------------------------------------------------------------- Module: state dict


def test_state_dict_round_trip():
    pe.manual_seed(0)
    a, b = Net(), Net()
    a.steps = pe.tensor(7)
    sd = a.state_dict()
    assert isinstance(sd, OrderedDict)
    assert list(sd) == ["scale", "steps", "fc.weight", "fc.bias", "blocks.0.weight", "blocks.0.bias"]
    assert "cache" not in sd  # non-persistent
    assert not sd["fc.weight"].requires_grad and np.shares_memory(sd["fc.weight"]._data, a.fc.weight._data)
    w_before = b.fc.weight
    res = b.load_state_dict(sd)
    assert res.missing_keys == [] and res.unexpected_keys == [] and repr(res) == "<All keys matched successfully>"
    assert b.fc.weight is w_before  # copied in place
    assert not np.shares_memory(b.fc.weight._data, a.fc.weight._data)
    x = pe.randn(5, 4)
    assert_close(b(x).detach(), a(x).detach(), rtol=0, atol=0)
    assert b.steps.item() == 7
    # NumPy arrays load too, cast to the parameter's dtype
    b.load_state_dict({k: np.asarray(v._data, np.float64) if v._data.dtype.kind == "f" else v._data
                       for k, v in sd.items()})
    assert b.fc.weight.dtype == pe.float32


def test_load_state_dict_strict_errors():
    net = Net()
    sd = net.state_dict()
    sd.pop("fc.bias")
    sd["extra.weight"] = pe.zeros(2)
    sd["fc.weight"] = pe.zeros(4, 4)  # model has (3, 4)
    with pytest.raises(RuntimeError) as e:
        net.load_state_dict(sd)
    msg = str(e.value)
    assert msg.startswith("Error(s) in loading state_dict for Net:")
    assert 'Missing key(s) in state_dict: "fc.bias".' in msg
    assert 'Unexpected key(s) in state_dict: "extra.weight".' in msg
    assert ("size mismatch for fc.weight: copying a param with shape (4, 4) from checkpoint, the shape in "
            "current model is (3, 4).") in msg
    # non-strict: missing/unexpected are reported, size mismatches still raise
    with pytest.raises(RuntimeError, match="size mismatch for fc.weight"):
        net.load_state_dict(sd, strict=False)
    sd.pop("fc.weight")
    res = net.load_state_dict(sd, strict=False)
    assert res.missing_keys == ["fc.weight", "fc.bias"] and res.unexpected_keys == ["extra.weight"]
    with pytest.raises(TypeError, match="dict-like"):
        net.load_state_dict([1, 2])


def test_load_state_dict_assign():
    a, b = nn.Linear(3, 2), nn.Linear(3, 2)
    old = b.weight
    b.load_state_dict(a.state_dict(), assign=True)
    assert b.weight is not old and isinstance(b.weight, nn.Parameter) and b.weight.requires_grad
    assert_close(b.weight._data, a.weight._data)


def test_load_torch_state_dict():
    torch = _torch()
    tnet = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.LayerNorm(8), torch.nn.Linear(8, 2))
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.LayerNorm(8), nn.Linear(8, 2))
    assert list(net.state_dict()) == list(tnet.state_dict())
    net.load_state_dict(tnet.state_dict())
    x = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    assert_close(net(pe.tensor(x)).detach(), _np(tnet(torch.tensor(x))), rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------- Module: modes, grads, dtypes, hooks


def test_train_eval_and_dropout():
    net = nn.Sequential(nn.Linear(3, 3), nn.Sequential(nn.Dropout(0.5)))
    assert net.training and net[1][0].training
    assert net.eval() is net
    assert not net.training and not net[1][0].training
    x = pe.randn(4, 3)
    assert net[1](x) is x  # identity in eval
    net.train()
    assert net[1][0].training
    with pytest.raises(ValueError, match="boolean"):
        net.train("yes")
    pe.manual_seed(3)
    y = nn.Dropout(0.25)(pe.ones(200, 200)).numpy()
    zero = (y == 0).mean()
    assert abs(zero - 0.25) < 0.01 and np.allclose(y[y != 0], 1 / 0.75)
    with pytest.raises(ValueError, match="between 0 and 1"):
        nn.Dropout(1.5)


def test_zero_grad_apply_requires_grad():
    net = nn.Sequential(nn.Linear(3, 2), nn.Linear(2, 1))
    net(pe.randn(4, 3)).sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    net.zero_grad(set_to_none=False)
    assert all(p.grad is not None and not p.grad.numpy().any() for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())
    seen = []
    assert net.apply(lambda m: seen.append(type(m).__name__)) is net
    assert seen == ["Linear", "Linear", "Sequential"]
    net.apply(lambda m: nn.init.zeros_(m.bias) if isinstance(m, nn.Linear) else None)
    assert not net[0].bias.numpy(force=True).any()
    net.requires_grad_(False)
    assert not any(p.requires_grad for p in net.parameters())


def test_to_dtype_in_place():
    net = Net()
    net(pe.randn(2, 4)).sum().backward()
    w = net.fc.weight
    assert net.to(pe.float64) is net
    assert net.fc.weight is w and w.dtype == pe.float64 and w.grad.dtype == pe.float64
    assert net.steps.dtype == pe.int64  # integer buffers are not cast
    assert net(pe.randn(2, 4, dtype=pe.float64)).dtype == pe.float64
    net.float()
    assert w.dtype == pe.float32
    net.to("cpu")
    net.to(pe.zeros(1, dtype=pe.float64))
    assert w.dtype == pe.float64
    with pytest.raises(TypeError, match="floating point"):
        net.to(pe.int64)
    with pytest.raises(RuntimeError, match="not available"):
        net.to("cuda")


def test_forward_hooks():
    lin = nn.Linear(2, 2)
    calls = []
    h1 = lin.register_forward_pre_hook(lambda m, args: (args[0] * 0,))
    h2 = lin.register_forward_hook(lambda m, args, out: calls.append(out.shape) or out + 1)
    y = lin(pe.ones(3, 2))
    assert calls == [pe.Size([3, 2])]
    assert_close(y.detach(), np.broadcast_to(lin.bias.numpy(force=True) + 1, (3, 2)))
    h1.remove()
    h2.remove()
    assert_close(lin(pe.zeros(1, 2)).detach(), lin.bias.numpy(force=True)[None])


def test_nested_repr():
    net = Net()
    assert repr(net) == (
        "Net(\n"
        "  (fc): Linear(in_features=4, out_features=3, bias=True)\n"
        "  (blocks): Sequential(\n"
        "    (0): Linear(in_features=3, out_features=3, bias=True)\n"
        "    (1): Tanh()\n"
        "  )\n"
        ")")
    assert repr(nn.Embedding(10, 3, padding_idx=0)) == "Embedding(10, 3, padding_idx=0)"
    assert repr(nn.LayerNorm(8)) == "LayerNorm((8,), eps=1e-05, elementwise_affine=True)"
    assert repr(nn.GELU("tanh")) == "GELU(approximate='tanh')"
    assert repr(nn.Flatten()) == "Flatten(start_dim=1, end_dim=-1)"
    assert repr(nn.LSTM(3, 4, 2, batch_first=True)) == "LSTM(3, 4, num_layers=2, batch_first=True)"
    assert repr(nn.Softmax(dim=1)) == "Softmax(dim=1)"
    assert repr(nn.CrossEntropyLoss()) == "CrossEntropyLoss()"


def test_module_deepcopy_and_pickle():
    net = Net()
    for clone in (copy.deepcopy(net), pickle.loads(pickle.dumps(net))):
        assert clone.fc.weight is not net.fc.weight
        x = pe.randn(2, 4)
        assert_close(clone(x).detach(), net(x).detach(), rtol=0, atol=0)
        assert [n for n, _ in clone.named_parameters()] == [n for n, _ in net.named_parameters()]


# ---------------------------------------------------------------------- containers


def test_sequential():
    a, b, c = nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1)
    seq = nn.Sequential(a, b, c)
    assert len(seq) == 3 and seq[0] is a and seq[-1] is c and list(seq) == [a, b, c]
    sub = seq[1:]
    assert isinstance(sub, nn.Sequential) and list(sub) == [b, c] and list(sub._modules) == ["1", "2"]
    x = pe.randn(4, 2)
    assert_close(seq(x).detach(), c(b(a(x))).detach())
    d = nn.Identity()
    seq.append(d)
    assert seq[3] is d and len(seq) == 4
    del seq[1]
    assert list(seq._modules) == ["0", "1", "2"] and seq[1] is c
    seq[0] = nn.Linear(2, 3)
    assert seq[0] is not a
    with pytest.raises(IndexError, match="out of range"):
        seq[10]
    named = nn.Sequential(OrderedDict([("enc", nn.Linear(2, 2)), ("act", nn.ReLU())]))
    assert list(named._modules) == ["enc", "act"] and named.enc is named[0]
    seq.insert(0, nn.Identity())
    assert isinstance(seq[0], nn.Identity) and len(seq) == 4
    assert len(seq + nn.Sequential(nn.ReLU())) == 5


def test_module_list_and_dict():
    layers = nn.ModuleList([nn.Linear(2, 2) for _ in range(3)])
    assert len(layers) == 3 and len(list(layers.parameters())) == 6
    layers.append(nn.ReLU())
    layers.extend([nn.Tanh()])
    layers += [nn.Identity()]
    assert len(layers) == 6 and isinstance(layers[-1], nn.Identity)
    assert isinstance(layers[1:3], nn.ModuleList) and len(layers[1:3]) == 2
    del layers[0]
    assert list(layers._modules) == [str(i) for i in range(5)]
    layers.insert(1, nn.Sigmoid())
    assert isinstance(layers[1], nn.Sigmoid)
    assert isinstance(layers.pop(), nn.Identity) and len(layers) == 5
    with pytest.raises(IndexError):
        layers[9]
    d = nn.ModuleDict({"a": nn.Linear(2, 2), "b": nn.ReLU()})
    d["c"] = nn.Tanh()
    assert list(d) == ["a", "b", "c"] and "a" in d and len(d) == 3
    assert [k for k, _ in d.items()] == list(d.keys())
    assert list(d.state_dict()) == ["a.weight", "a.bias"]
    assert isinstance(d.pop("b"), nn.ReLU) and "b" not in d
    d.update([("e", nn.Identity())])
    assert list(d.keys()) == ["a", "c", "e"]


# ---------------------------------------------------------------------- init


def test_calculate_gain_and_fans():
    I = nn.init
    assert I.calculate_gain("linear") == 1 and I.calculate_gain("sigmoid") == 1
    assert I.calculate_gain("tanh") == pytest.approx(5 / 3)
    assert I.calculate_gain("relu") == pytest.approx(math.sqrt(2))
    assert I.calculate_gain("leaky_relu") == pytest.approx(math.sqrt(2 / (1 + 0.01 ** 2)))
    assert I.calculate_gain("leaky_relu", 0.2) == pytest.approx(math.sqrt(2 / 1.04))
    assert I.calculate_gain("selu") == 0.75
    with pytest.raises(ValueError, match="Unsupported nonlinearity"):
        I.calculate_gain("swish")
    assert I._calculate_fan_in_and_fan_out(pe.empty(5, 3)) == (3, 5)
    assert I._calculate_fan_in_and_fan_out(pe.empty(6, 4, 3, 3)) == (36, 54)
    with pytest.raises(ValueError, match="fewer than 2 dimensions"):
        I._calculate_fan_in_and_fan_out(pe.empty(5))
    with pytest.raises(ValueError, match="Mode fan_avg not supported"):
        I.kaiming_uniform_(pe.empty(3, 3), mode="fan_avg")


def test_init_statistics():
    I = nn.init
    pe.manual_seed(0)
    w = pe.empty(400, 300)
    I.kaiming_uniform_(w, a=math.sqrt(5))
    bound = math.sqrt(3) * math.sqrt(2 / (1 + 5)) / math.sqrt(300)  # = 1/sqrt(300)
    a = w.numpy()
    assert a.max() <= bound and a.min() >= -bound and a.max() > 0.99 * bound
    assert a.std() == pytest.approx(bound / math.sqrt(3), rel=0.02)
    I.kaiming_normal_(w, mode="fan_out", nonlinearity="relu")
    assert w.numpy().std() == pytest.approx(math.sqrt(2 / 400), rel=0.02)
    I.xavier_uniform_(w, gain=2.0)
    b = 2.0 * math.sqrt(6 / 700)
    assert np.abs(w.numpy()).max() <= b and w.numpy().std() == pytest.approx(b / math.sqrt(3), rel=0.02)
    I.xavier_normal_(w)
    assert w.numpy().std() == pytest.approx(math.sqrt(2 / 700), rel=0.02)
    I.normal_(w, 3.0, 0.5)
    assert w.numpy().mean() == pytest.approx(3.0, abs=0.01) and w.numpy().std() == pytest.approx(0.5, rel=0.02)
    I.uniform_(w, -2, 1)
    assert w.numpy().min() >= -2 and w.numpy().max() < 1 and w.numpy().mean() == pytest.approx(-0.5, abs=0.01)
    I.trunc_normal_(w, mean=0.0, std=1.0, a=-1.0, b=2.0)
    assert w.numpy().min() >= -1 and w.numpy().max() <= 2
    # truncated N(0,1) on [-1, 2]: mean = (phi(-1) - phi(2)) / (Phi(2) - Phi(-1))
    phi = lambda x: math.exp(-x * x / 2) / math.sqrt(2 * math.pi)  # noqa: E731
    Phi = lambda x: 0.5 * (1 + math.erf(x / math.sqrt(2)))  # noqa: E731
    assert w.numpy().mean() == pytest.approx((phi(-1) - phi(2)) / (Phi(2) - Phi(-1)), abs=0.01)
    small = pe.empty(2000)
    I.trunc_normal_(small, mean=0.0, std=1.0, a=3.0, b=3.5)  # a far tail: inverse-CDF path
    assert small.numpy().min() >= 3.0 and small.numpy().max() <= 3.5 and small.numpy().mean() < 3.25
    I.constant_(w, 0.3)
    assert np.all(w.numpy() == np.float32(0.3))
    I.ones_(w), I.zeros_(w)
    assert not w.numpy().any()
    I.eye_(w)
    assert_close(w.numpy(), np.eye(400, 300))
    o = I.orthogonal_(pe.empty(40, 30)).numpy()
    assert_close(o.T @ o, np.eye(30), atol=1e-5, rtol=0)
    o = I.orthogonal_(pe.empty(3, 8), gain=2.0).numpy()
    assert_close(o @ o.T, 4 * np.eye(3), atol=1e-5, rtol=0)


def test_init_reproducible_and_under_no_grad():
    pe.manual_seed(123)
    a = nn.Sequential(nn.Linear(5, 4), nn.LSTM(4, 3), nn.Embedding(7, 2))
    pe.manual_seed(123)
    b = nn.Sequential(nn.Linear(5, 4), nn.LSTM(4, 3), nn.Embedding(7, 2))
    for (n, p), (_, q) in zip(a.named_parameters(), b.named_parameters()):
        np.testing.assert_array_equal(p._data, q._data, err_msg=n)
        assert p.grad_fn is None and p.requires_grad
    g = pe.Generator().manual_seed(5)
    w1 = nn.init.normal_(pe.empty(3, 3), generator=g).numpy().copy()
    w2 = nn.init.normal_(pe.empty(3, 3), generator=pe.Generator().manual_seed(5)).numpy()
    np.testing.assert_array_equal(w1, w2)


def test_layer_default_inits():
    pe.manual_seed(1)
    lin = nn.Linear(50, 400)
    b = 1 / math.sqrt(50)
    assert np.abs(lin.weight._data).max() <= b and lin.weight._data.std() == pytest.approx(b / math.sqrt(3), rel=0.03)
    assert np.abs(lin.bias._data).max() <= b and lin.weight.dtype == pe.float32
    emb = nn.Embedding(1000, 64, padding_idx=3)
    assert emb.weight._data.std() == pytest.approx(1.0, rel=0.02) and not emb.weight._data[3].any()
    ln = nn.LayerNorm((3, 4))
    assert ln.weight.shape == (3, 4) and np.all(ln.weight._data == 1) and not ln.bias._data.any()
    assert nn.LayerNorm(4, elementwise_affine=False).weight is None and nn.LayerNorm(4, bias=False).bias is None
    lstm = nn.LSTM(30, 64, num_layers=2)
    for p in lstm.parameters():
        assert np.abs(p._data).max() <= 1 / 8 and np.abs(p._data).max() > 0.12
    mha = nn.MultiheadAttention(16, 4)
    assert not mha.in_proj_bias._data.any() and not mha.out_proj.bias._data.any()
    assert np.abs(mha.in_proj_weight._data).max() <= math.sqrt(6 / (16 + 48))
    assert nn.Linear(3, 2, dtype=pe.float64).weight.dtype == pe.float64
    with pytest.raises(TypeError, match="floating point"):
        nn.Linear(3, 2, dtype=pe.int64)


# ---------------------------------------------------------------------- layers: forward vs NumPy / PyTorch


def test_linear_forward_backward(rng):
    lin = nn.Linear(5, 3, dtype=pe.float64)
    x = rng.standard_normal((2, 7, 5))
    xt = pe.tensor(x, requires_grad=True)
    y = lin(xt)
    W, b = lin.weight._data, lin.bias._data
    assert_close(y.detach(), x @ W.T + b)
    g = rng.standard_normal(y.shape)
    y.backward(pe.tensor(g))
    assert_close(xt.grad, g @ W)
    assert_close(lin.weight.grad, g.reshape(-1, 3).T @ x.reshape(-1, 5))
    assert_close(lin.bias.grad, g.reshape(-1, 3).sum(0))
    assert nn.Linear(5, 3, bias=False).bias is None


def test_embedding_forward_backward(rng):
    emb = nn.Embedding(11, 4, padding_idx=-1, dtype=pe.float64)
    assert emb.padding_idx == 10
    idx = np.array([[1, 10, 3], [3, 3, 0]])
    y = emb(pe.tensor(idx))
    assert_close(y.detach(), emb.weight._data[idx])
    y.sum().backward()
    counts = np.bincount(idx.ravel(), minlength=11).astype(float)
    counts[10] = 0
    assert_close(emb.weight.grad, np.repeat(counts[:, None], 4, axis=1))
    pre = pe.tensor(rng.standard_normal((6, 3)))
    e2 = nn.Embedding.from_pretrained(pre)
    assert not e2.weight.requires_grad and e2.weight.shape == (6, 3)
    assert nn.Embedding.from_pretrained(pre, freeze=False).weight.requires_grad
    with pytest.raises(ValueError, match="padding_idx"):
        nn.Embedding(5, 2, padding_idx=5)


def test_layernorm_forward(rng):
    ln = nn.LayerNorm((3, 5), dtype=pe.float64)
    ln.weight._data[...] = rng.standard_normal((3, 5))
    ln.bias._data[...] = rng.standard_normal((3, 5))
    x = rng.standard_normal((2, 3, 5))
    xs = x.reshape(2, -1)
    ref = ((xs - xs.mean(1, keepdims=True)) / np.sqrt(xs.var(1, keepdims=True) + 1e-5)).reshape(x.shape)
    assert_close(ln(pe.tensor(x)).detach(), ref * ln.weight._data + ln.bias._data)


def test_linear_and_layernorm_take_any_leading_shape(rng):
    """The Functions view (*, C) inputs as rows themselves (no reshape nodes): non-contiguous 3-D and 1-D
    inputs give the NumPy values and gradients, and the input gradient is a fresh array of x's shape."""
    lin = nn.Linear(5, 3, dtype=pe.float64)
    ln = nn.LayerNorm(5, dtype=pe.float64)
    ln.weight._data[...] = rng.standard_normal(5)
    ln.bias._data[...] = rng.standard_normal(5)
    W, b, w, c = lin.weight._data, lin.bias._data, ln.weight._data, ln.bias._data
    for shape, perm in (((7, 2, 5), (1, 0, 2)), ((5,), (0,))):
        x0 = rng.standard_normal(shape)
        x = pe.tensor(x0, requires_grad=True)
        xp = x.permute(*perm)  # (2, 7, 5) non-contiguous, or the 1-D vector itself
        xv = x0.transpose(perm)
        mu, var = xv.mean(-1, keepdims=True), xv.var(-1, keepdims=True)
        rstd = 1 / np.sqrt(var + 1e-5)
        xhat = (xv - mu) * rstd
        h = ln(xp)
        assert_close(h.detach(), xhat * w + c)
        y = lin(h)
        assert_close(y.detach(), (xhat * w + c) @ W.T + b)
        gy = rng.standard_normal(y.shape)
        y.backward(pe.tensor(gy))
        gh = gy @ W
        gg = gh * w
        gx = rstd * (gg - gg.mean(-1, keepdims=True) - xhat * (gg * xhat).mean(-1, keepdims=True))
        assert_close(x.grad, gx.transpose(np.argsort(perm)))
        assert_close(lin.weight.grad, gy.reshape(-1, 3).T @ (xhat * w + c).reshape(-1, 5))
        assert_close(ln.weight.grad, (gh * xhat).reshape(-1, 5).sum(0))
        assert x.grad.shape == x.shape and not np.shares_memory(x.grad.numpy(), lin.weight.grad.numpy())
        for p in (lin.weight, lin.bias, ln.weight, ln.bias):
            p.grad = None


def _np_gelu(x, approximate):
    if approximate == "tanh":
        return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))
    return 0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))


def _np_softmax(x, axis):
    e = np.exp(x - x.max(axis, keepdims=True))
    return e / e.sum(axis, keepdims=True)


@pytest.mark.parametrize("module,ref", [
    (nn.ReLU(), lambda x: np.maximum(x, 0)),
    (nn.GELU(), lambda x: _np_gelu(x, "none")),
    (nn.GELU("tanh"), lambda x: _np_gelu(x, "tanh")),
    (nn.Tanh(), np.tanh),
    (nn.Sigmoid(), lambda x: 1 / (1 + np.exp(-x))),
    (nn.SiLU(), lambda x: x / (1 + np.exp(-x))),
    (nn.LeakyReLU(0.2), lambda x: np.where(x > 0, x, 0.2 * x)),
    (nn.Softmax(dim=1), lambda x: _np_softmax(x, 1)),
    (nn.Softmax(dim=-1), lambda x: _np_softmax(x, -1)),
    (nn.LogSoftmax(dim=1), lambda x: np.log(_np_softmax(x, 1))),
    (nn.Flatten(), lambda x: x.reshape(x.shape[0], -1)),
    (nn.Flatten(0, 1), lambda x: x.reshape(-1, x.shape[2])),
    (nn.Unflatten(1, (1, 3)), lambda x: x.reshape(x.shape[0], 1, 3, x.shape[2])),
    (nn.Identity(7, foo=1), lambda x: x),
], ids=lambda v: repr(v) if isinstance(v, nn.Module) else "")
def test_simple_layers_vs_numpy(module, ref, rng):
    x = rng.standard_normal((2, 3, 5)) * 2
    assert_close(module(pe.tensor(x)).detach(), ref(x), rtol=1e-9, atol=1e-12)


def test_layers_vs_torch_with_same_weights(rng):
    torch = _torch()
    cases = [
        (nn.Linear(7, 5), torch.nn.Linear(7, 5), (3, 4, 7)),
        (nn.LayerNorm(7), torch.nn.LayerNorm(7), (3, 4, 7)),
        (nn.LayerNorm(7, bias=False), torch.nn.LayerNorm(7, bias=False), (3, 7)),
        (nn.GELU(), torch.nn.GELU(), (3, 7)),
        (nn.LogSoftmax(1), torch.nn.LogSoftmax(1), (3, 7)),
    ]
    for ours, theirs, shape in cases:
        ours.double()
        theirs.double()
        with torch.no_grad():
            for p in theirs.parameters():
                p.normal_()
        ours.load_state_dict(theirs.state_dict())
        x = rng.standard_normal(shape)
        xt = torch.tensor(x, requires_grad=True)
        xp = pe.tensor(x, requires_grad=True)
        yt, yp = theirs(xt), ours(xp)
        assert_close(yp.detach(), _np(yt), msg=repr(ours))
        g = rng.standard_normal(yt.shape)
        yt.backward(torch.tensor(g))
        yp.backward(pe.tensor(g))
        assert_close(xp.grad, xt.grad.numpy(), msg=repr(ours))
        for (n, p), (_, q) in zip(ours.named_parameters(), theirs.named_parameters()):
            assert_close(p.grad, q.grad.numpy(), msg=f"{ours!r} {n}")
    emb_t = torch.nn.Embedding(9, 4, padding_idx=2)
    emb = nn.Embedding(9, 4, padding_idx=2)
    emb.load_state_dict(emb_t.state_dict())
    idx = rng.integers(0, 9, (3, 5))
    assert_close(emb(pe.tensor(idx)).detach(), _np(emb_t(torch.tensor(idx))))


# ---------------------------------------------------------------------- losses


def test_losses_vs_numpy(rng):
    x, y = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    assert nn.MSELoss()(pe.tensor(x), pe.tensor(y)).item() == pytest.approx(((x - y) ** 2).mean())
    assert nn.MSELoss(reduction="sum")(pe.tensor(x), pe.tensor(y)).item() == pytest.approx(((x - y) ** 2).sum())
    assert nn.L1Loss()(pe.tensor(x), pe.tensor(y)).item() == pytest.approx(np.abs(x - y).mean())
    assert_close(nn.L1Loss(reduction="none")(pe.tensor(x), pe.tensor(y)), np.abs(x - y))
    assert nn.MSELoss(size_average=False).reduction == "sum" and nn.MSELoss(reduce=False).reduction == "none"
    t = rng.integers(0, 3, 4)
    lp = x - np.log(np.exp(x).sum(1, keepdims=True))
    assert nn.CrossEntropyLoss()(pe.tensor(x), pe.tensor(t)).item() == pytest.approx(-lp[np.arange(4), t].mean())
    assert nn.NLLLoss()(pe.tensor(lp), pe.tensor(t)).item() == pytest.approx(-lp[np.arange(4), t].mean())
    w = np.array([0.2, 1.0, 3.0])
    want = (-lp[np.arange(4), t] * w[t]).sum() / w[t].sum()
    assert nn.NLLLoss(weight=pe.tensor(w))(pe.tensor(lp), pe.tensor(t)).item() == pytest.approx(want)
    with pytest.raises(ValueError, match="reduction"):
        nn.MSELoss(reduction="avg")


def test_losses_vs_torch(rng):
    torch = _torch()
    N, C = 6, 4
    logits = rng.standard_normal((N, C))
    t = rng.integers(0, C, N)
    t[1] = -100
    w = rng.uniform(0.5, 2, C)
    t2 = rng.integers(0, C, (N, 3))
    logits2 = rng.standard_normal((N, C, 3))
    p = rng.uniform(0.05, 0.95, (N, C))
    yb = rng.integers(0, 2, (N, C)).astype(float)
    pw = rng.uniform(0.5, 2, C)
    lp = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    cases = [
        ("CrossEntropyLoss", {}, logits, t),
        ("CrossEntropyLoss", {"weight": w}, logits, t),
        ("CrossEntropyLoss", {"label_smoothing": 0.1, "reduction": "sum"}, logits, t),
        ("CrossEntropyLoss", {"reduction": "none"}, logits2, t2),
        ("NLLLoss", {}, lp, t),
        ("NLLLoss", {"weight": w, "reduction": "none"}, lp, t),
        ("NLLLoss", {"weight": w}, logits2, t2),
        ("MSELoss", {}, logits, p),
        ("L1Loss", {"reduction": "sum"}, logits, p),
        ("BCELoss", {}, p, yb),
        ("BCELoss", {"weight": w}, p, yb),
        ("BCEWithLogitsLoss", {}, logits, yb),
        ("BCEWithLogitsLoss", {"pos_weight": pw, "reduction": "sum"}, logits, yb),
    ]
    for name, kw, inp, tgt in cases:
        tkw = {k: torch.tensor(v) if isinstance(v, np.ndarray) else v for k, v in kw.items()}
        pkw = {k: pe.tensor(v) if isinstance(v, np.ndarray) else v for k, v in kw.items()}
        xt = torch.tensor(inp, requires_grad=True)
        xp = pe.tensor(inp, requires_grad=True)
        lt = getattr(torch.nn, name)(**tkw)(xt, torch.tensor(tgt))
        lp_ = getattr(nn, name)(**pkw)(xp, pe.tensor(tgt))
        assert_close(lp_.detach(), _np(lt), msg=f"{name} {kw} ")
        lt.sum().backward()
        lp_.sum().backward()
        assert_close(xp.grad, xt.grad.numpy(), msg=f"{name} {kw} grad ")
    crit = nn.CrossEntropyLoss(weight=pe.tensor(w))
    assert list(crit.state_dict()) == ["weight"]  # a buffer, as in PyTorch


# ---------------------------------------------------------------------- LSTM


def _copy_lstm(torch, tl, **kw):
    pl = nn.LSTM(tl.input_size, tl.hidden_size, tl.num_layers, bias=tl.bias, batch_first=tl.batch_first,
                 bidirectional=tl.bidirectional, dtype=pe.float64, **kw)
    assert list(pl.state_dict()) == list(tl.state_dict())
    pl.load_state_dict(tl.state_dict())
    return pl


@pytest.mark.parametrize("layers,batch_first,bidirectional,bias,with_state", [
    (1, False, False, True, False),
    (1, True, False, False, True),
    (2, False, False, True, True),
    (3, True, True, True, True),
    (2, False, True, False, False),
])
def test_lstm_vs_torch_forward_and_grads(layers, batch_first, bidirectional, bias, with_state, rng):
    torch = _torch()
    T, B, I, H = 7, 3, 5, 6
    torch.manual_seed(0)
    tl = torch.nn.LSTM(I, H, layers, bias=bias, batch_first=batch_first, bidirectional=bidirectional).double()
    pl = _copy_lstm(torch, tl)
    D = 2 if bidirectional else 1
    x = rng.standard_normal((B, T, I) if batch_first else (T, B, I))
    xt, xp = torch.tensor(x, requires_grad=True), pe.tensor(x, requires_grad=True)
    if with_state:
        h0, c0 = rng.standard_normal((2, layers * D, B, H))
        ht, ct = torch.tensor(h0, requires_grad=True), torch.tensor(c0, requires_grad=True)
        hp, cp = pe.tensor(h0, requires_grad=True), pe.tensor(c0, requires_grad=True)
        ot, (hnt, cnt) = tl(xt, (ht, ct))
        op, (hnp, cnp) = pl(xp, (hp, cp))
    else:
        ot, (hnt, cnt) = tl(xt)
        op, (hnp, cnp) = pl(xp)
    for a, b in ((op, ot), (hnp, hnt), (cnp, cnt)):
        assert tuple(a.shape) == tuple(b.shape)
        assert_close(a.detach(), _np(b), rtol=1e-12, atol=1e-13)
    # a loss that uses every output
    go, gh, gc = (rng.standard_normal(tuple(t.shape)) for t in (ot, hnt, cnt))
    ((ot * torch.tensor(go)).sum() + (hnt * torch.tensor(gh)).sum() + (cnt * torch.tensor(gc)).sum()).backward()
    ((op * pe.tensor(go)).sum() + (hnp * pe.tensor(gh)).sum() + (cnp * pe.tensor(gc)).sum()).backward()
    assert_close(xp.grad, xt.grad.numpy(), rtol=1e-11, atol=1e-12)
    if with_state:
        assert_close(hp.grad, ht.grad.numpy(), rtol=1e-11, atol=1e-12)
        assert_close(cp.grad, ct.grad.numpy(), rtol=1e-11, atol=1e-12)
    tparams = dict(tl.named_parameters())
    for n, p in pl.named_parameters():
        assert_close(p.grad, tparams[n].grad.numpy(), rtol=1e-11, atol=1e-12, msg=n + " ")


def test_lstm_unbatched_and_cell_vs_torch(rng):
    torch = _torch()
    torch.manual_seed(1)
    tl = torch.nn.LSTM(4, 5, 2).double()
    pl = _copy_lstm(torch, tl)
    x = rng.standard_normal((6, 4))
    h0, c0 = rng.standard_normal((2, 2, 5))
    ot, (ht, ct) = tl(torch.tensor(x), (torch.tensor(h0), torch.tensor(c0)))
    op, (hp, cp) = pl(pe.tensor(x), (pe.tensor(h0), pe.tensor(c0)))
    assert op.shape == (6, 5) and hp.shape == (2, 5)
    for a, b in ((op, ot), (hp, ht), (cp, ct)):
        assert_close(a.detach(), _np(b), rtol=1e-12, atol=1e-13)
    op2, _ = pl(pe.tensor(x))
    assert_close(op2.detach(), _np(tl(torch.tensor(x))[0]), rtol=1e-12, atol=1e-13)

    tc = torch.nn.LSTMCell(4, 5).double()
    pc = nn.LSTMCell(4, 5, dtype=pe.float64)
    assert list(pc.state_dict()) == list(tc.state_dict())
    pc.load_state_dict(tc.state_dict())
    xb = rng.standard_normal((3, 4))
    hx = rng.standard_normal((3, 5))
    cx = rng.standard_normal((3, 5))
    xt, xp = torch.tensor(xb, requires_grad=True), pe.tensor(xb, requires_grad=True)
    h1t, c1t = tc(xt, (torch.tensor(hx), torch.tensor(cx)))
    h1p, c1p = pc(xp, (pe.tensor(hx), pe.tensor(cx)))
    assert_close(h1p.detach(), _np(h1t), rtol=1e-12, atol=1e-13)
    assert_close(c1p.detach(), _np(c1t), rtol=1e-12, atol=1e-13)
    (h1t.sum() + 2 * c1t.sum()).backward()
    (h1p.sum() + 2 * c1p.sum()).backward()
    assert_close(xp.grad, xt.grad.numpy(), rtol=1e-11, atol=1e-12)
    assert_close(pc.weight_hh.grad, tc.weight_hh.grad.numpy(), rtol=1e-11, atol=1e-12)
    h1u, c1u = pc(pe.tensor(xb[0]))  # unbatched, zero state
    h1ut, _ = tc(torch.tensor(xb[0]))
    assert h1u.shape == (5,)
    assert_close(h1u.detach(), _np(h1ut), rtol=1e-12, atol=1e-13)


def test_lstm_grads_vs_finite_differences(rng):
    """Without PyTorch: every gradient of a tiny 2-layer LSTM against central differences (float64)."""
    pe.manual_seed(0)
    lstm = nn.LSTM(3, 2, num_layers=2, dtype=pe.float64)
    x = pe.tensor(rng.standard_normal((4, 2, 3)), requires_grad=True)
    h0 = pe.tensor(rng.standard_normal((2, 2, 2)), requires_grad=True)
    c0 = pe.tensor(rng.standard_normal((2, 2, 2)), requires_grad=True)
    wo, wh, wc = rng.standard_normal((4, 2, 2)), rng.standard_normal((2, 2, 2)), rng.standard_normal((2, 2, 2))

    def loss():
        out, (h, c) = lstm(x, (h0, c0))
        return (out * pe.tensor(wo)).sum() + (h * pe.tensor(wh)).sum() + (c * pe.tensor(wc)).sum()

    loss().backward()
    with pe.no_grad():
        f = lambda: loss().item()  # noqa: E731
        for name, t in [("x", x), ("h0", h0), ("c0", c0)] + list(lstm.named_parameters()):
            assert_close(t.grad, _numeric_grad(f, t._data), rtol=1e-6, atol=1e-8, msg=name + " ")


# float32 against float64 and the reference backend: tests/test_rnn.py::test_float32_and_reference_backend
# (LSTM, GRU, RNN; dense and packed).


def test_lstm_dropout_between_layers(rng):
    pe.manual_seed(0)
    lstm = nn.LSTM(4, 8, num_layers=2, dropout=0.5)
    x = pe.tensor(rng.standard_normal((5, 2, 4)), dtype=pe.float32)
    a, _ = lstm(x)
    b, _ = lstm(x)
    assert not np.allclose(a.detach().numpy(), b.detach().numpy())
    lstm.eval()
    c, _ = lstm(x)
    d, _ = lstm(x)
    np.testing.assert_array_equal(c.detach().numpy(), d.detach().numpy())
    with pytest.warns(UserWarning, match="num_layers greater than 1"):
        nn.LSTM(2, 2, dropout=0.2)


def _graph_nodes(t):
    seen, stack = set(), [t.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        stack.extend(e[0] for e in node.edges if isinstance(e, tuple))
    return seen


def test_lstm_is_one_graph_node_per_layer():
    """The speed design: a layer over the whole sequence is one Function, not T steps of ops."""
    lstm = nn.LSTM(3, 4, num_layers=2)
    for T in (2, 50):
        _, (h, _) = lstm(pe.randn(T, 2, 3))
        assert h.grad_fn.name == "StackBackward"
        assert len(_graph_nodes(h)) == 3  # stack + one LSTMLayer per layer
    out, _ = lstm(pe.randn(50, 2, 3))
    assert out.grad_fn.name == "LSTMLayerBackward"


def test_lstm_errors():
    lstm = nn.LSTM(4, 3, num_layers=2)
    with pytest.raises(RuntimeError, match="input.size\\(-1\\) must be equal to input_size. Expected 4, got 5"):
        lstm(pe.randn(2, 3, 5))
    with pytest.raises(RuntimeError, match=r"Expected hidden\[0\] size \(2, 3, 3\), got \(1, 3, 3\)"):
        lstm(pe.randn(2, 3, 4), (pe.zeros(1, 3, 3), pe.zeros(2, 3, 3)))
    with pytest.raises(RuntimeError, match="should also be 3-D"):
        lstm(pe.randn(2, 3, 4), (pe.zeros(2, 3), pe.zeros(2, 3)))
    with pytest.raises(ValueError, match="dtype"):
        lstm(pe.randn(2, 3, 4, dtype=pe.float64))
    with pytest.raises(ValueError, match="2D or 3D"):
        lstm(pe.randn(4))
    with pytest.raises(ValueError, match="non-empty sequence"):
        lstm(pe.randn(0, 3, 4))
    with pytest.raises(ValueError, match="dropout should be a number in range"):
        nn.LSTM(2, 2, dropout=2)
    with pytest.raises(NotImplementedError, match="proj_size"):
        nn.LSTM(2, 2, proj_size=1)


def test_lstm_trains():
    """A tiny sequence classifier (the bench model, scaled down) learns with plain SGD."""
    pe.manual_seed(0)
    rng = np.random.default_rng(0)
    emb, lstm, head = nn.Embedding(20, 8), nn.LSTM(8, 16, batch_first=True), nn.Linear(16, 1)
    params = list(emb.parameters()) + list(lstm.parameters()) + list(head.parameters())
    x = rng.integers(0, 20, (32, 6))
    y = (x == 3).any(axis=1).astype(np.float32)[:, None]
    crit = nn.BCEWithLogitsLoss()
    losses = []
    for _ in range(60):  # ~0.75 -> ~0.16 (entropy of the labels alone: ~0.52)
        _, (h, _) = lstm(emb(pe.tensor(x)))
        loss = crit(head(h[-1]), pe.tensor(y))
        for p in params:
            p.grad = None
        loss.backward()
        nn.utils.clip_grad_norm_(params, 5.0)
        with pe.no_grad():
            for p in params:
                p._data -= 1.0 * p.grad._data
        losses.append(loss.item())
    assert losses[-1] < 0.3


# ---------------------------------------------------------------------- MultiheadAttention


def _mha_pair(torch, E, heads, **kw):
    torch.manual_seed(0)
    tm = torch.nn.MultiheadAttention(E, heads, **kw).double()
    with torch.no_grad():
        for p in tm.parameters():
            p.normal_(0, 0.3)  # non-zero biases too
    pm = nn.MultiheadAttention(E, heads, dtype=pe.float64, **kw)
    assert list(pm.state_dict()) == list(tm.state_dict())
    pm.load_state_dict(tm.state_dict())
    return tm, pm


@pytest.mark.parametrize("case", ["self", "self_batch_first", "cross_kdim", "masks_bool", "masks_float",
                                  "no_weights", "per_head", "unbatched", "causal"])
def test_multihead_attention_vs_torch(case, rng):
    torch = _torch()
    E, h, N, L, S = 12, 3, 2, 5, 7
    kw = {"batch_first": True} if case in ("self_batch_first",) else {}
    if case == "cross_kdim":
        kw.update(kdim=5, vdim=4)
    tm, pm = _mha_pair(torch, E, h, **kw)
    bf = kw.get("batch_first", False)
    self_attn = case in ("self", "self_batch_first", "no_weights", "per_head", "causal")
    q = rng.standard_normal((N, L, E) if bf else (L, N, E))
    if case == "unbatched":
        q = rng.standard_normal((L, E))
    k = q if self_attn else rng.standard_normal(q.shape[:-2] + (S, kw.get("kdim", E)) if case == "unbatched"
                                                else ((S, N, kw.get("kdim", E))))
    v = q if self_attn else rng.standard_normal(k.shape[:-1] + (kw.get("vdim", E),))
    S_ = k.shape[-2] if case == "unbatched" else (k.shape[1] if bf else k.shape[0])
    L_ = q.shape[-2] if case == "unbatched" else (q.shape[1] if bf else q.shape[0])
    call = {}
    if case == "masks_bool":
        am = rng.random((L_, S_)) < 0.3
        am[:, 0] = False
        kpm = np.zeros((N, S_), bool)
        kpm[1, -2:] = True
        call = dict(attn_mask=am, key_padding_mask=kpm)
    elif case == "masks_float":
        call = dict(attn_mask=rng.standard_normal((N * h, L_, S_)), key_padding_mask=rng.standard_normal((N, S_)))
    elif case == "no_weights":
        call = dict(need_weights=False)
    elif case == "per_head":
        call = dict(average_attn_weights=False)
    elif case == "causal":
        call = dict(attn_mask=np.triu(np.ones((L_, L_), bool), 1), is_causal=True)
    tcall = {k_: torch.tensor(v_) if isinstance(v_, np.ndarray) else v_ for k_, v_ in call.items()}
    pcall = {k_: pe.tensor(v_) if isinstance(v_, np.ndarray) else v_ for k_, v_ in call.items()}
    qt = torch.tensor(q, requires_grad=True)
    qp = pe.tensor(q, requires_grad=True)
    if self_attn:
        kt = vt = qt
        kp = vp = qp
    else:
        kt, vt = torch.tensor(k, requires_grad=True), torch.tensor(v, requires_grad=True)
        kp, vp = pe.tensor(k, requires_grad=True), pe.tensor(v, requires_grad=True)
    ot, wt = tm(qt, kt, vt, **tcall)
    op, wp = pm(qp, kp, vp, **pcall)
    assert tuple(op.shape) == tuple(ot.shape)
    assert_close(op.detach(), _np(ot), rtol=1e-10, atol=1e-12)
    if wt is None:
        assert wp is None
    else:
        assert_close(wp.detach(), _np(wt), rtol=1e-10, atol=1e-12)
    g = rng.standard_normal(tuple(ot.shape))
    (ot * torch.tensor(g)).sum().backward()
    (op * pe.tensor(g)).sum().backward()
    assert_close(qp.grad, qt.grad.numpy(), rtol=1e-9, atol=1e-11)
    if not self_attn:
        assert_close(kp.grad, kt.grad.numpy(), rtol=1e-9, atol=1e-11)
        assert_close(vp.grad, vt.grad.numpy(), rtol=1e-9, atol=1e-11)
    tparams = dict(tm.named_parameters())
    for n, p in pm.named_parameters():
        assert_close(p.grad, tparams[n].grad.numpy(), rtol=1e-9, atol=1e-11, msg=n + " ")


def test_multihead_attention_numpy_and_errors(rng):
    """Without PyTorch: one head, no biases, against softmax(q k^T / sqrt(E)) v in NumPy."""
    m = nn.MultiheadAttention(4, 1, bias=False, batch_first=True, dtype=pe.float64)
    x = rng.standard_normal((2, 3, 4))
    out, w = m(pe.tensor(x), pe.tensor(x), pe.tensor(x))
    Wq, Wk, Wv = np.split(m.in_proj_weight._data, 3)
    q, k, v = x @ Wq.T, x @ Wk.T, x @ Wv.T
    p = _np_softmax(q @ k.transpose(0, 2, 1) / 2.0, -1)
    assert_close(w.detach(), p)
    assert_close(out.detach(), (p @ v) @ m.out_proj.weight._data.T)
    with pytest.raises(ValueError, match="divisible by num_heads"):
        nn.MultiheadAttention(10, 3)
    with pytest.raises(RuntimeError, match="2D attn_mask"):
        m(pe.tensor(x), pe.tensor(x), pe.tensor(x), attn_mask=np.zeros((2, 2), bool))
    with pytest.raises(RuntimeError, match="embedding dimension of 4"):
        m(pe.randn(2, 3, 5, dtype=pe.float64), pe.tensor(x), pe.tensor(x))


# ---------------------------------------------------------------------- nn.utils


def _with_grads(rng, shapes):
    ps = [nn.Parameter(pe.tensor(rng.standard_normal(s))) for s in shapes]
    for p in ps:
        p.grad = pe.tensor(rng.standard_normal(p.shape))
    return ps


@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, math.inf])
def test_clip_grad_norm_vs_numpy(norm_type, rng):
    ps = _with_grads(rng, [(3, 5), (7,), (2, 2, 2)])
    before = [p.grad.numpy().copy() for p in ps]
    flat = np.concatenate([g.ravel() for g in before])
    want = np.abs(flat).max() if math.isinf(norm_type) else (np.abs(flat) ** norm_type).sum() ** (1 / norm_type)
    total = nn.utils.clip_grad_norm_(ps, max_norm=0.5, norm_type=norm_type)
    assert total.item() == pytest.approx(want, rel=1e-10)
    coef = 0.5 / (want + 1e-6)
    for p, g in zip(ps, before):
        assert_close(p.grad, g * coef)
    ps2 = _with_grads(rng, [(4,)])
    g2 = ps2[0].grad.numpy().copy()
    nn.utils.clip_grad_norm_(ps2, max_norm=1e6)
    np.testing.assert_array_equal(ps2[0].grad.numpy(), g2)  # below the limit: untouched
    ps3 = _with_grads(rng, [(2,)])
    ps3[0].grad._data[0] = np.inf
    with pytest.raises(RuntimeError, match="non-finite"):
        nn.utils.clip_grad_norm_(ps3, 1.0, error_if_nonfinite=True)
    assert nn.utils.clip_grad_norm_([nn.Parameter(pe.ones(2))], 1.0).item() == 0.0


def test_clip_grad_value_and_vectors(rng):
    ps = _with_grads(rng, [(3, 4), (5,)])
    before = [p.grad.numpy().copy() for p in ps]
    nn.utils.clip_grad_value_(ps, 0.3)
    for p, g in zip(ps, before):
        assert_close(p.grad, np.clip(g, -0.3, 0.3))
    vec = nn.utils.parameters_to_vector(ps)
    assert vec.shape == (17,)
    assert_close(vec.detach(), np.concatenate([p._data.ravel() for p in ps]))
    nn.utils.vector_to_parameters(vec * 2, ps)
    assert_close(ps[1]._data, vec.detach().numpy()[12:] * 2)
    with pytest.raises(TypeError, match="expected pyengine.Tensor"):
        nn.utils.vector_to_parameters(np.zeros(17), ps)


@pytest.mark.parametrize("is_causal", [False, True])
def test_sdpa_on_strided_head_views_equals_contiguous(is_causal):
    """q, k, v as x.view(B, T, H, hd).transpose(1, 2) views go to the kernel in place (no copy): output and
    gradients equal those of the same heads made contiguous first (float64)."""
    import pyengine.nn.functional as F
    rng = np.random.default_rng(0)
    B, T, H, hd = 2, 9, 3, 4
    x0 = rng.standard_normal((B, T, 3 * H * hd))
    w = rng.standard_normal((B, H, T, hd))
    results = []
    for contiguous in (False, True):
        x = pe.tensor(x0, dtype=pe.float64, requires_grad=True)
        q, k, v = (x[..., i * H * hd:(i + 1) * H * hd].reshape(B, T, H, hd).transpose(1, 2) for i in range(3))
        if contiguous:
            q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
        y = F.scaled_dot_product_attention(q, k, v, is_causal=is_causal)
        (y * pe.tensor(w)).sum().backward()
        results.append((y.detach().numpy(), x.grad.numpy()))
    for got, want in zip(*results):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
