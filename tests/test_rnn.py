"""pyengine.nn's recurrent modules (RNN, GRU, LSTM and their cells) and nn.utils.rnn (packed sequences) against
PyTorch with the same weights: outputs, final states, every parameter gradient and the input and state
gradients, dense and packed (unsorted lengths), multi-layer, bidirectional, batch_first, unbatched; state
dicts one to one; finite-difference gradients of the layer Functions (float64, without PyTorch); errors.
The LSTM's dense cases are in tests/test_nn.py; here it takes part in everything packed."""
import copy

import numpy as np
import pytest

import pyengine as pe
import pyengine.nn as nn
from pyengine.nn.utils import rnn as prnn
from pyengine.testing import assert_close, numeric_grad, to_numpy

MODULES = [("RNN", {}), ("RNN", {"nonlinearity": "relu"}), ("GRU", {}), ("LSTM", {})]
IDS = ["rnn_tanh", "rnn_relu", "gru", "lstm"]
TIGHT = dict(rtol=1e-11, atol=1e-12)


def _pair(torch, name, kw, I, H, **more):
    """A float64 torch module and the pyengine module holding its state dict."""
    torch.manual_seed(0)
    tm = getattr(torch.nn, name)(I, H, **kw, **more).double()
    pm = getattr(nn, name)(I, H, **kw, **more, dtype=pe.float64)
    assert list(pm.state_dict()) == list(tm.state_dict())
    pm.load_state_dict(tm.state_dict())
    return tm, pm


def _states(h, lstm):
    return list(h) if lstm else [h]


def _check_grads(pm, tm, pairs, tol=TIGHT):
    for a, b, what in pairs:
        assert_close(a.grad, b.grad.numpy(), msg=what + " grad ", **tol)
    tparams = dict(tm.named_parameters())
    for n, p in pm.named_parameters():
        assert_close(p.grad, tparams[n].grad.numpy(), msg=n + " ", **tol)


@pytest.mark.parametrize("name,kw", MODULES, ids=IDS)
@pytest.mark.parametrize("layers,batch_first,bidirectional,bias,with_state", [
    (1, False, False, True, False),
    (1, True, False, False, True),
    (2, False, True, True, True),
    (3, True, True, False, False),
])
def test_dense_vs_torch(name, kw, layers, batch_first, bidirectional, bias, with_state, rng):
    torch = pytest.importorskip("torch")
    T, B, I, H = 5, 3, 4, 6
    lstm = name == "LSTM"
    tm, pm = _pair(torch, name, kw, I, H, num_layers=layers, bias=bias, batch_first=batch_first,
                   bidirectional=bidirectional)
    D = 2 if bidirectional else 1
    x = rng.standard_normal((B, T, I) if batch_first else (T, B, I))
    xt, xp = torch.tensor(x, requires_grad=True), pe.tensor(x, requires_grad=True)
    pairs = [(xp, xt, "x")]
    if with_state:
        h0 = rng.standard_normal((2 if lstm else 1, layers * D, B, H))
        ht = [torch.tensor(h, requires_grad=True) for h in h0]
        hp = [pe.tensor(h, requires_grad=True) for h in h0]
        pairs += [(p, t, f"hx[{i}]") for i, (p, t) in enumerate(zip(hp, ht))]
        ot, hnt = tm(xt, tuple(ht) if lstm else ht[0])
        op, hnp = pm(xp, tuple(hp) if lstm else hp[0])
    else:
        ot, hnt = tm(xt)
        op, hnp = pm(xp)
    outs = [(op, ot)] + list(zip(_states(hnp, lstm), _states(hnt, lstm)))
    for a, b in outs:
        assert tuple(a.shape) == tuple(b.shape)
        assert_close(a.detach(), to_numpy(b), rtol=1e-12, atol=1e-13)
    ws = [rng.standard_normal(tuple(b.shape)) for _, b in outs]  # a loss that uses every output
    sum((b * torch.tensor(w)).sum() for (_, b), w in zip(outs, ws)).backward()
    sum((a * pe.tensor(w)).sum() for (a, _), w in zip(outs, ws)).backward()
    _check_grads(pm, tm, pairs)


@pytest.mark.parametrize("name,kw", MODULES, ids=IDS)
@pytest.mark.parametrize("layers,bidirectional,batch_first", [(1, False, False), (2, True, True), (1, True, False)])
def test_packed_unsorted_vs_torch(name, kw, layers, bidirectional, batch_first, rng):
    """Unsorted lengths through pack_padded_sequence(enforce_sorted=False) with an initial state: the packed
    output, h_n in the original batch order (the reverse direction runs over each sequence's own length),
    and the gradients of the padded input (through the packing), the state and every parameter."""
    torch = pytest.importorskip("torch")
    lengths, I, H = [3, 6, 1, 6, 4], 3, 5
    T, B = max(lengths), len(lengths)
    lstm = name == "LSTM"
    tm, pm = _pair(torch, name, kw, I, H, num_layers=layers, bidirectional=bidirectional, batch_first=batch_first)
    D = 2 if bidirectional else 1
    x = rng.standard_normal((B, T, I) if batch_first else (T, B, I))
    h0 = rng.standard_normal((2 if lstm else 1, layers * D, B, H))
    xt, xp = torch.tensor(x, requires_grad=True), pe.tensor(x, requires_grad=True)
    ht = [torch.tensor(h, requires_grad=True) for h in h0]
    hp = [pe.tensor(h, requires_grad=True) for h in h0]
    pt = torch.nn.utils.rnn.pack_padded_sequence(xt, lengths, batch_first=batch_first, enforce_sorted=False)
    pp = prnn.pack_padded_sequence(xp, lengths, batch_first=batch_first, enforce_sorted=False)
    ot, hnt = tm(pt, tuple(ht) if lstm else ht[0])
    op, hnp = pm(pp, tuple(hp) if lstm else hp[0])
    assert isinstance(op, prnn.PackedSequence)
    np.testing.assert_array_equal(to_numpy(op.batch_sizes), to_numpy(ot.batch_sizes))
    np.testing.assert_array_equal(to_numpy(op.sorted_indices), to_numpy(ot.sorted_indices))
    np.testing.assert_array_equal(to_numpy(op.unsorted_indices), to_numpy(ot.unsorted_indices))
    outs = [(op.data, ot.data)] + list(zip(_states(hnp, lstm), _states(hnt, lstm)))
    for a, b in outs:
        assert tuple(a.shape) == tuple(b.shape)
        assert_close(a.detach(), to_numpy(b), rtol=1e-12, atol=1e-13)
    padt, lt = torch.nn.utils.rnn.pad_packed_sequence(ot, batch_first=batch_first)
    padp, lp = prnn.pad_packed_sequence(op, batch_first=batch_first)
    assert_close(padp.detach(), to_numpy(padt), rtol=1e-12, atol=1e-13)
    np.testing.assert_array_equal(to_numpy(lp), to_numpy(lt))
    ws = [rng.standard_normal(tuple(b.shape)) for b in [padt] + [b for _, b in outs[1:]]]
    ((padt * torch.tensor(ws[0])).sum() + sum((b * torch.tensor(w)).sum() for (_, b), w in zip(outs[1:], ws[1:]))
     ).backward()
    ((padp * pe.tensor(ws[0])).sum() + sum((a * pe.tensor(w)).sum() for (a, _), w in zip(outs[1:], ws[1:]))
     ).backward()
    _check_grads(pm, tm, [(xp, xt, "x")] + [(p, t, f"hx[{i}]") for i, (p, t) in enumerate(zip(hp, ht))])


@pytest.mark.parametrize("name,kw", MODULES, ids=IDS)
def test_packed_is_each_sequence_alone(name, kw, rng):
    """Without PyTorch: a packed batch gives each sequence what running it alone gives (outputs, h_n)."""
    pe.manual_seed(0)
    m = getattr(nn, name)(3, 4, num_layers=2, bidirectional=True, dtype=pe.float64, **kw)
    seqs = [rng.standard_normal((n, 3)) for n in (2, 5, 3)]
    out, h = m(prnn.pack_sequence([pe.tensor(s) for s in seqs], enforce_sorted=False))
    outs = prnn.unpack_sequence(out)
    for b, s in enumerate(seqs):
        o1, h1 = m(pe.tensor(s))  # unbatched
        assert_close(outs[b].detach(), o1.detach().numpy(), rtol=1e-12, atol=1e-13)
        for a, e in zip(_states(h, name == "LSTM"), _states(h1, name == "LSTM")):
            assert_close(a[:, b].detach(), e.detach().numpy(), rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("name,kw", MODULES, ids=IDS)
def test_unbatched_vs_torch(name, kw, rng):
    torch = pytest.importorskip("torch")
    lstm = name == "LSTM"
    tm, pm = _pair(torch, name, kw, 4, 5, num_layers=2)
    x = rng.standard_normal((6, 4))
    h0 = rng.standard_normal((2 if lstm else 1, 2, 5))
    ot, ht = tm(torch.tensor(x), tuple(torch.tensor(h) for h in h0) if lstm else torch.tensor(h0[0]))
    op, hp = pm(pe.tensor(x), tuple(pe.tensor(h) for h in h0) if lstm else pe.tensor(h0[0]))
    assert op.shape == (6, 5)
    for a, b in [(op, ot)] + list(zip(_states(hp, lstm), _states(ht, lstm))):
        assert tuple(a.shape) == tuple(b.shape)
        assert_close(a.detach(), to_numpy(b), rtol=1e-12, atol=1e-13)
    assert_close(pm(pe.tensor(x))[0].detach(), to_numpy(tm(torch.tensor(x))[0]), rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("name,kw", [("RNNCell", {}), ("RNNCell", {"nonlinearity": "relu"}), ("GRUCell", {}),
                                     ("GRUCell", {"bias": False})], ids=["rnn_tanh", "rnn_relu", "gru", "gru_nobias"])
def test_cells_vs_torch(name, kw, rng):
    torch = pytest.importorskip("torch")
    tc, pc = _pair(torch, name, kw, 4, 5)
    xb, hx = rng.standard_normal((3, 4)), rng.standard_normal((3, 5))
    xt, xp = torch.tensor(xb, requires_grad=True), pe.tensor(xb, requires_grad=True)
    htt, hpp = torch.tensor(hx, requires_grad=True), pe.tensor(hx, requires_grad=True)
    h1t, h1p = tc(xt, htt), pc(xp, hpp)
    assert_close(h1p.detach(), to_numpy(h1t), rtol=1e-12, atol=1e-13)
    w = rng.standard_normal((3, 5))
    (h1t * torch.tensor(w)).sum().backward()
    (h1p * pe.tensor(w)).sum().backward()
    _check_grads(pc, tc, [(xp, xt, "x"), (hpp, htt, "hx")])
    h1u = pc(pe.tensor(xb[0]))  # unbatched, zero state
    assert h1u.shape == (5,)
    assert_close(h1u.detach(), to_numpy(tc(torch.tensor(xb[0]))), rtol=1e-12, atol=1e-13)
    h2u = pc(pe.tensor(xb[0]), pe.tensor(hx[0]))
    assert_close(h2u.detach(), to_numpy(tc(torch.tensor(xb[0]), torch.tensor(hx[0]))), rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("name,kw", MODULES, ids=IDS)
def test_dropout_between_layers(name, kw, rng):
    """Training: dropout on the outputs of all layers but the last (two calls differ); eval: none, as torch."""
    torch = pytest.importorskip("torch")
    tm, pm = _pair(torch, name, kw, 4, 8, num_layers=2, dropout=0.5)
    x = rng.standard_normal((5, 2, 4))
    a, _ = pm(pe.tensor(x))
    b, _ = pm(pe.tensor(x))
    assert not np.allclose(a.detach().numpy(), b.detach().numpy())
    tm.eval()
    pm.eval()
    assert_close(pm(pe.tensor(x))[0].detach(), to_numpy(tm(torch.tensor(x))[0]), rtol=1e-12, atol=1e-13)
    with pytest.warns(UserWarning, match="num_layers greater than 1"):
        getattr(nn, name)(2, 2, dropout=0.2, **kw)


@pytest.mark.parametrize("name,kw", MODULES + [("RNNCell", {}), ("GRUCell", {}), ("LSTMCell", {})],
                         ids=IDS + ["rnn_cell", "gru_cell", "lstm_cell"])
def test_state_dict_round_trip(name, kw, tmp_path):
    """PyTorch -> pyengine -> file -> pyengine -> PyTorch: the same names, shapes, dtypes and values."""
    torch = pytest.importorskip("torch")
    big = {} if name.endswith("Cell") else dict(num_layers=2, bidirectional=True)
    torch.manual_seed(3)
    tm = getattr(torch.nn, name)(3, 4, **kw, **big)
    pm = getattr(nn, name)(3, 4, **kw, **big)
    sd = pm.state_dict()
    assert [(k, tuple(v.shape), str(v.dtype)) for k, v in sd.items()] == \
           [(k, tuple(v.shape), str(v.dtype).replace("torch.", "pyengine.")) for k, v in tm.state_dict().items()]
    pm.load_state_dict({k: v.numpy() for k, v in tm.state_dict().items()})
    pe.save(pm.state_dict(), tmp_path / "m.safetensors")
    pm2 = getattr(nn, name)(3, 4, **kw, **big)
    pm2.load_state_dict(pe.load(tmp_path / "m.safetensors"))
    tm2 = getattr(torch.nn, name)(3, 4, **kw, **big)
    tm2.load_state_dict({k: torch.from_numpy(v.numpy().copy()) for k, v in pm2.state_dict().items()})
    for (k, a), b in zip(tm.state_dict().items(), tm2.state_dict().values()):
        assert torch.equal(a, b), k


@pytest.mark.parametrize("name,kw", MODULES + [("GRUCell", {}), ("RNNCell", {})],
                         ids=IDS + ["gru_cell", "rnn_cell"])
def test_init_is_uniform_in_one_over_sqrt_h(name, kw):
    pe.manual_seed(0)
    H = 25
    m = getattr(nn, name)(7, H, **kw)
    for n, p in m.named_parameters():
        a = p.detach().numpy()
        assert a.dtype == np.float32
        assert np.abs(a).max() <= 1 / np.sqrt(H) and np.abs(a).max() > 0.9 / np.sqrt(H), n
        assert abs(a.mean()) < 0.05, n


@pytest.mark.parametrize("name,kw", MODULES, ids=IDS)
def test_grads_vs_finite_differences(name, kw, rng):
    """Without PyTorch: every gradient of a tiny 2-layer bidirectional module, packed with unsorted lengths,
    against central differences (float64): the input, the initial states and every parameter."""
    pe.manual_seed(0)
    lstm = name == "LSTM"
    m = getattr(nn, name)(2, 2, num_layers=2, bidirectional=True, dtype=pe.float64, **kw)
    x = pe.tensor(rng.standard_normal((3, 3, 2)), requires_grad=True)
    hx = [pe.tensor(rng.standard_normal((4, 3, 2)), requires_grad=True) for _ in range(2 if lstm else 1)]
    lengths = [2, 3, 1]
    w_out = rng.standard_normal((3, 3, 4))
    w_h = [rng.standard_normal((4, 3, 2)) for _ in hx]

    def loss():
        out, h = m(prnn.pack_padded_sequence(x, lengths, enforce_sorted=False), tuple(hx) if lstm else hx[0])
        padded, _ = prnn.pad_packed_sequence(out)
        total = (padded * pe.tensor(w_out)).sum()
        return total + sum((a * pe.tensor(w)).sum() for a, w in zip(_states(h, lstm), w_h))

    loss().backward()
    with pe.no_grad():
        for what, t in [("x", x)] + [(f"hx[{i}]", h) for i, h in enumerate(hx)] + list(m.named_parameters()):
            assert_close(t.grad, numeric_grad(lambda: loss().item(), t._data), rtol=1e-6, atol=1e-8,
                         msg=f"{name} {what} ")


@pytest.mark.parametrize("name,kw", MODULES, ids=IDS)
def test_float32_and_reference_backend(name, kw, rng):
    """float32 tracks float64; the compiled kernels and the NumPy twins give the same model, packed too."""
    pe.manual_seed(2)
    m = getattr(nn, name)(5, 9, num_layers=2, batch_first=True, bidirectional=True, **kw)
    x = rng.standard_normal((3, 11, 5))
    out32, _ = m(pe.tensor(x, dtype=pe.float32))
    m64 = copy.deepcopy(m).double()
    out64, _ = m64(pe.tensor(x))
    assert out32.dtype == pe.float32
    assert_close(out32.detach(), out64.detach().numpy().astype(np.float32), rtol=1e-4, atol=2e-6)

    def run(packed):
        m64.zero_grad()
        xt = pe.tensor(x, requires_grad=True)
        inp = prnn.pack_padded_sequence(xt, [11, 4, 7], batch_first=True, enforce_sorted=False) if packed else xt
        out, h = m64(inp)
        out = prnn.pad_packed_sequence(out, batch_first=True)[0] if packed else out
        h = h[0] if name == "LSTM" else h
        (out.sum() + (h * h).sum()).backward()
        return [out.detach().numpy(), xt.grad.numpy()] + [p.grad.numpy().copy() for p in m64.parameters()]

    for packed in (False, True):
        got = run(packed)
        try:
            pe.set_backend("reference")
            want = run(packed)
        finally:
            pe.set_backend("cpu")
        for a, b in zip(got, want):
            assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_one_graph_node_per_layer_and_direction():
    """The speed design: a layer over the whole sequence is one Function, not T steps of ops."""
    gru = nn.GRU(3, 4, num_layers=2)
    out, h = gru(pe.randn(50, 2, 3))
    assert out.grad_fn.name == "GRULayerBackward"
    assert h.grad_fn.name == "StackBackward"
    rnn = nn.RNN(3, 4, bidirectional=True)
    out, _ = rnn(prnn.pack_sequence([pe.randn(5, 3), pe.randn(2, 3)]))
    assert out.data.grad_fn.name == "CatBackward"


def test_errors_name_the_module():
    gru, rnn, lstm = nn.GRU(4, 3, num_layers=2), nn.RNN(4, 3), nn.LSTM(4, 3)
    with pytest.raises(RuntimeError, match=r"GRU: input.size\(-1\) must be equal to input_size. Expected 4, got 5"):
        gru(pe.randn(2, 3, 5))
    with pytest.raises(RuntimeError, match=r"RNN: Expected hidden size \(1, 3, 3\), got \(1, 2, 3\)"):
        rnn(pe.randn(2, 3, 4), pe.zeros(1, 2, 3))
    with pytest.raises(RuntimeError, match=r"GRU: for batched 3-D input, hx should also be 3-D but got \(2-D\)"):
        gru(pe.randn(2, 3, 4), pe.zeros(2, 3))
    with pytest.raises(RuntimeError, match=r"GRU: for unbatched 2-D input, hx should also be 2-D"):
        gru(pe.randn(2, 4), pe.zeros(2, 1, 3))
    with pytest.raises(RuntimeError, match=r"LSTM: hx must be a tuple \(h_0, c_0\)"):
        lstm(pe.randn(2, 3, 4), (pe.zeros(1, 3, 3),))
    with pytest.raises(RuntimeError, match="GRU: hidden has dtype pyengine.float64, expected the weights' "
                                           "pyengine.float32"):
        gru(pe.randn(2, 3, 4), pe.zeros(2, 3, 3, dtype=pe.float64))
    with pytest.raises(ValueError, match=r"GRU: input dtype \(pyengine.int64\) does not match weight dtype"):
        gru(pe.zeros(2, 3, 4, dtype=pe.int64))
    with pytest.raises(ValueError, match=r"RNN: input dtype \(pyengine.float64\)"):
        rnn(pe.randn(2, 3, 4, dtype=pe.float64))
    with pytest.raises(ValueError, match="GRU: Expected input to be 2D or 3D, got 4D instead"):
        gru(pe.randn(1, 2, 3, 4))
    with pytest.raises(ValueError, match="RNN: expected a non-empty sequence"):
        rnn(pe.randn(0, 3, 4))
    with pytest.raises(RuntimeError, match="GRU: packed input data must have 2 dimensions"):
        gru(prnn.PackedSequence(pe.randn(3, 1, 4), pe.tensor([2, 1])))
    with pytest.raises(ValueError, match=r"GRU: batch_sizes \[2, 2\] do not describe the 3 rows"):
        gru(prnn.PackedSequence(pe.randn(3, 4), pe.tensor([2, 2])))
    with pytest.raises(ValueError, match="Unknown nonlinearity 'gelu'"):
        nn.RNN(2, 2, nonlinearity="gelu")
    with pytest.raises(ValueError, match="RNNCell: Unknown nonlinearity 'sigmoid'"):
        nn.RNNCell(2, 2, nonlinearity="sigmoid")
    with pytest.raises(ValueError, match="proj_size argument is only supported for LSTM, not RNN or GRU"):
        nn.GRU(2, 3, proj_size=1)
    with pytest.raises(NotImplementedError, match="LSTM: proj_size is not supported"):
        nn.LSTM(2, 3, proj_size=1)
    with pytest.raises(ValueError, match=r"GRU\(\): argument 'hidden_size' must be >= 1, got 0"):
        nn.GRU(2, 0)
    with pytest.raises(TypeError, match=r"RNN\(\): argument 'input_size' must be int, not float"):
        nn.RNN(2.0, 3)
    with pytest.raises(TypeError, match="GRU: batch_first should be of type bool"):
        nn.GRU(2, 3, batch_first="yes")
    with pytest.raises(ValueError, match="dropout should be a number in range"):
        nn.GRU(2, 2, dropout=1.5)
    with pytest.raises(TypeError, match="GRU: parameters must have a floating point dtype"):
        nn.GRU(2, 2, dtype=pe.int64)
    cell = nn.GRUCell(4, 3)
    with pytest.raises(RuntimeError, match="GRUCell: input has inconsistent input_size: got 5 expected 4"):
        cell(pe.randn(2, 5))
    with pytest.raises(RuntimeError, match=r"GRUCell: hidden has shape \(3, 3\), expected \(2, 3\)"):
        cell(pe.randn(2, 4), pe.zeros(3, 3))
    with pytest.raises(ValueError, match="GRUCell: Expected input to be 1D or 2D, got 3D instead"):
        cell(pe.randn(1, 2, 4))
    with pytest.raises(ValueError, match="GRUCell: Expected hidden to be 1D or 2D, got 3D instead"):
        cell(pe.randn(2, 4), pe.zeros(1, 2, 3))
    with pytest.raises(ValueError, match=r"RNNCell: input dtype \(pyengine.int64\)"):
        nn.RNNCell(4, 3)(pe.zeros(2, 4, dtype=pe.int64))
    with pytest.raises(RuntimeError, match=r"LSTMCell: hx\[1\] has shape \(2, 4\), expected \(2, 3\)"):
        nn.LSTMCell(4, 3)(pe.randn(2, 4), (pe.zeros(2, 3), pe.zeros(2, 4)))


def test_gru_trains():
    """A tiny sequence classifier learns with plain SGD on a GRU, over packed variable-length inputs."""
    pe.manual_seed(0)
    rng = np.random.default_rng(0)
    emb, gru, head = nn.Embedding(20, 8), nn.GRU(8, 16, batch_first=True), nn.Linear(16, 1)
    params = [p for m in (emb, gru, head) for p in m.parameters()]
    x, lengths = rng.integers(0, 20, (32, 6)), rng.integers(1, 7, 32)
    y = np.array([(row[:n] == 3).any() for row, n in zip(x, lengths)], np.float32)[:, None]  # a 3 in the sequence?
    crit, opt = nn.BCEWithLogitsLoss(), pe.optim.SGD(params, lr=1.0)
    losses = []
    for _ in range(60):
        packed = prnn.pack_padded_sequence(emb(pe.tensor(x)), lengths, batch_first=True, enforce_sorted=False)
        loss = crit(head(gru(packed)[1][-1]), pe.tensor(y))
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(params, 5.0)
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.3 < losses[0]


# ---------------------------------------------------------------------- nn.utils.rnn


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("enforce_sorted,lengths", [(True, [5, 3, 3, 1]), (False, [2, 5, 1, 5, 3])])
def test_pack_and_pad_vs_torch(batch_first, enforce_sorted, lengths, rng):
    torch = pytest.importorskip("torch")
    B, T = len(lengths), max(lengths)
    x = rng.standard_normal((B, T, 2, 3) if batch_first else (T, B, 2, 3))
    xt, xp = torch.tensor(x, requires_grad=True), pe.tensor(x, requires_grad=True)
    pt = torch.nn.utils.rnn.pack_padded_sequence(xt, lengths, batch_first, enforce_sorted)
    pp = prnn.pack_padded_sequence(xp, pe.tensor(lengths), batch_first, enforce_sorted)
    for a, b in zip(pp, pt):
        assert (a is None) == (b is None)
        if a is not None:
            assert tuple(a.shape) == tuple(b.shape) and a.dtype.name == str(b.dtype)[6:]
            np.testing.assert_array_equal(to_numpy(a), to_numpy(b))
    for total in (None, T + 2):
        padt, lt = torch.nn.utils.rnn.pad_packed_sequence(pt, batch_first, padding_value=-1.5, total_length=total)
        padp, lp = prnn.pad_packed_sequence(pp, batch_first, padding_value=-1.5, total_length=total)
        np.testing.assert_array_equal(to_numpy(padp), to_numpy(padt))
        np.testing.assert_array_equal(to_numpy(lp), to_numpy(lt))
        assert lp.dtype == pe.int64
    w = rng.standard_normal(tuple(padt.shape))
    (padt * torch.tensor(w)).sum().backward()
    (padp * pe.tensor(w)).sum().backward()
    np.testing.assert_array_equal(xp.grad.numpy(), xt.grad.numpy())


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("padding_side", ["right", "left"])
def test_pad_sequence_and_pack_sequence_vs_torch(batch_first, padding_side, rng):
    torch = pytest.importorskip("torch")
    arrays = [rng.standard_normal((n, 3)) for n in (2, 4, 1)]
    st = [torch.tensor(a, requires_grad=True) for a in arrays]
    sp = [pe.tensor(a, requires_grad=True) for a in arrays]
    padt = torch.nn.utils.rnn.pad_sequence(st, batch_first, 7.0, padding_side)
    padp = prnn.pad_sequence(sp, batch_first, 7.0, padding_side)
    np.testing.assert_array_equal(to_numpy(padp), to_numpy(padt))
    w = rng.standard_normal(tuple(padt.shape))
    (padt * torch.tensor(w)).sum().backward()
    (padp * pe.tensor(w)).sum().backward()
    for a, b in zip(sp, st):
        np.testing.assert_array_equal(a.grad.numpy(), b.grad.numpy())
    pt = torch.nn.utils.rnn.pack_sequence([torch.tensor(a) for a in arrays], enforce_sorted=False)
    pp = prnn.pack_sequence([pe.tensor(a) for a in arrays], enforce_sorted=False)
    np.testing.assert_array_equal(to_numpy(pp.data), to_numpy(pt.data))
    np.testing.assert_array_equal(to_numpy(pp.batch_sizes), to_numpy(pt.batch_sizes))
    for a, b in zip(prnn.unpack_sequence(pp), arrays):
        np.testing.assert_array_equal(to_numpy(a), b)
    assert [tuple(s.shape) for s in prnn.unpad_sequence(padp.detach(), [2, 4, 1], batch_first)] == [(2, 3), (4, 3),
                                                                                                      (1, 3)]


def test_packed_sequence_helpers_and_errors():
    p = prnn.pack_sequence([pe.tensor([1.0, 2.0, 3.0]), pe.tensor([4.0, 5.0]), pe.tensor([6.0])])
    np.testing.assert_array_equal(p.data.numpy(), [1, 4, 6, 2, 5, 3])
    np.testing.assert_array_equal(p.batch_sizes.numpy(), [3, 2, 1])
    assert p.sorted_indices is None and p.unsorted_indices is None
    assert p.to(pe.float64).data.dtype == pe.float64 and p.float() is p
    q = prnn.PackedSequence((p.data, p.batch_sizes), sorted_indices=pe.tensor([2, 0, 1]))
    np.testing.assert_array_equal(q.unsorted_indices.numpy(), [1, 2, 0])
    np.testing.assert_array_equal(prnn.invert_permutation(pe.tensor([2, 0, 1])).numpy(), [1, 2, 0])
    assert prnn.invert_permutation(None) is None
    x = pe.randn(4, 3, 2)
    with pytest.raises(RuntimeError, match="must be sorted in decreasing order when `enforce_sorted` is True"):
        prnn.pack_padded_sequence(x, [2, 4, 1])
    with pytest.raises(RuntimeError, match="Length of all samples has to be greater than 0"):
        prnn.pack_padded_sequence(x, [4, 2, 0])
    with pytest.raises(ValueError, match=r"Expected `len\(lengths\)` to be equal to batch_size, but got 2"):
        prnn.pack_padded_sequence(x, [4, 2])
    with pytest.raises(RuntimeError, match="pack_padded_sequence: a length \\(5\\) is larger than"):
        prnn.pack_padded_sequence(x, [5, 2, 1])
    with pytest.raises(TypeError, match="lengths must be a 1-D sequence of integers"):
        prnn.pack_padded_sequence(x, [4.0, 2.0, 1.0])
    with pytest.raises(ValueError, match="Expected total_length to be at least the length of the longest"):
        prnn.pad_packed_sequence(prnn.pack_padded_sequence(x, [4, 2, 1]), total_length=3)
    with pytest.raises(RuntimeError, match="pad_sequence: every sequence must be"):
        prnn.pad_sequence([pe.zeros(2, 3), pe.zeros(2, 4)])


@pytest.mark.parametrize("B,T,out_grad", [(1, 1, True), (5, 7, False), (3, 11, True), (17, 2, False)])
def test_lstm_batch_first_embedding_classifier_vs_torch(B, T, out_grad, rng):
    """The bench's text classifier, float32: Embedding -> LSTM(batch_first) -> the last state (and, with out_grad,
    the output too). A batch_first LSTM projects its input in the input's own (b, t) row order (no transposed
    copy of x nor of dx): the embedding's, the LSTM's and the head's gradients as PyTorch's; the same values
    as the transposed-copy path (LSTMLayer.gates_batch_major off)."""
    torch = pytest.importorskip("torch")
    V, I, H = 13, 6, 5
    ids = rng.integers(0, V, (B, T))
    w = rng.standard_normal((B, T, H)).astype(np.float32)

    def run(lib, emb_w, sd):
        emb, lstm = lib.nn.Embedding(V, I), lib.nn.LSTM(I, H, batch_first=True)
        with lib.no_grad():
            emb.weight.copy_(lib.tensor(emb_w))
        lstm.load_state_dict(sd)
        out, (h, c) = lstm(emb(lib.tensor(ids)))
        loss = (h[-1] * h[-1]).sum() + c[-1].sum()
        if out_grad:
            loss = loss + (out * lib.tensor(w)).sum()
        loss.backward()
        return [out, h, c, emb.weight.grad] + [p.grad for p in lstm.parameters()]

    torch.manual_seed(0)
    sd = torch.nn.LSTM(I, H, batch_first=True).state_dict()
    emb_w = rng.standard_normal((V, I)).astype(np.float32)
    want = run(torch, emb_w, sd)
    got = run(pe, emb_w, sd)
    for i, (a, b) in enumerate(zip(got, want)):
        assert_close(to_numpy(a.detach()), b.detach().numpy(), rtol=2e-5, atol=2e-6, msg=f"[{i}] ")
    from pyengine.nn.modules.rnn import LSTMLayer
    seen = []
    fwd = LSTMLayer.forward

    def spy(self, *a, **k):
        r = fwd(self, *a, **k)
        seen.append(self.gates_bm)
        return r
    LSTMLayer.forward = spy
    try:
        run(pe, emb_w, sd)
        LSTMLayer.gates_batch_major = False
        copied = run(pe, emb_w, sd)
    finally:
        LSTMLayer.gates_batch_major = True
        LSTMLayer.forward = fwd
    assert seen == [B > 1 and T > 1, False]  # (1, B, I) or (T, 1, I) is C-ordered either way: no copy
    for i, (a, b) in enumerate(zip(got, copied)):
        assert_close(to_numpy(a.detach()), to_numpy(b.detach()), rtol=1e-6, atol=1e-7, msg=f"copy path [{i}] ")
