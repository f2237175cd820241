"""Results do not depend on the thread count, bit for bit.

The kernels' thread count follows the machine's load (csrc/common.cpp usable_threads), so the same program on
the same inputs may run a kernel on 1 thread now and on 2 a moment later. Every reduction a kernel splits
between threads therefore has to add its parts in an order fixed by the shape, never by the team: this file
runs each threaded op forward and backward on 1, 2 and 3 threads (adaptation off, sizes past every threading
threshold) and compares the bits."""
import numpy as np
import pytest

import pyengine as pe
import pyengine.nn.functional as F
from pyengine import _C


@pytest.fixture
def exact_threads():
    before, adapt = pe.get_num_threads(), _C.adapt_threads()
    _C.set_adapt_threads(False)
    yield
    pe.set_num_threads(before)
    _C.set_adapt_threads(adapt)


def _rng(seed):
    return np.random.default_rng(seed)


def _t(a, grad=True):
    return pe.tensor(a, requires_grad=grad)


def _grads(f, inputs, g):
    """A case running y = f(*inputs) and y.backward(g): returns y and every input's gradient."""
    def run():
        ts = [_t(a) for a in inputs]
        y = f(*ts)
        y.backward(pe.tensor(g))
        return [y] + [t.grad for t in ts]
    return run


def _case_sum_dim0(dtype):
    x = _rng(1).standard_normal((4099, 37)).astype(dtype)  # column sums: rows split between threads
    def run():
        a = _t(x)
        y = a.sum(dim=0)
        return [y]
    return run


def _case_sum_dim0_few_rows(dtype):
    x = _rng(44).standard_normal((300, 5003)).astype(dtype)  # too few rows for two blocks: columns split
    def run():
        return [_t(x).sum(dim=0), _t(x[:, 3:]).sum(dim=0)]
    return run


def _case_sum_middle(dtype):
    x = _rng(2).standard_normal((3, 2053, 41)).astype(dtype)
    def run():
        return [_t(x).sum(dim=1), _t(x[:1]).sum(dim=1), _t(x[:, :, :1]).sum(dim=1)]
    return run


def _case_sum_all(dtype):
    x = _rng(3).standard_normal(1_000_003).astype(dtype)
    def run():
        return [_t(x).sum(), _t(x.reshape(-1, 1)).sum(dim=0)]
    return run


def _case_linear_bias_grad(dtype):
    x = _rng(4).standard_normal((2051, 67)).astype(dtype)
    w = _rng(5).standard_normal((131, 67)).astype(dtype)
    b = _rng(6).standard_normal(131).astype(dtype)
    g = _rng(7).standard_normal((2051, 131)).astype(dtype)
    return _grads(F.linear, (x, w, b), g)


def _case_layer_norm(dtype):
    x = _rng(8).standard_normal((2063, 97)).astype(dtype)
    w = _rng(9).standard_normal(97).astype(dtype)
    b = _rng(10).standard_normal(97).astype(dtype)
    g = _rng(11).standard_normal((2063, 97)).astype(dtype)
    return _grads(lambda xs, ws, bs: F.layer_norm(xs, (97,), ws, bs), (x, w, b), g)


def _case_attention(dtype):
    q, k, v, g = (_rng(12 + i).standard_normal((2, 3, 257, 32)).astype(dtype) for i in range(4))
    return _grads(lambda qs, ks, vs: F.scaled_dot_product_attention(qs, ks, vs, is_causal=True), (q, k, v), g)


def _case_attention_one_head(dtype):  # one head: the backward's split schedule on several threads
    q, k, v, g = (_rng(16 + i).standard_normal((1, 1, 513, 64)).astype(dtype) for i in range(4))
    return _grads(F.scaled_dot_product_attention, (q, k, v), g)


def _case_cross_entropy(dtype):
    x = _rng(20).standard_normal((1031, 257)).astype(dtype)
    t = _rng(21).integers(0, 257, 1031)
    def run():
        xs = _t(x)
        loss = F.cross_entropy(xs, pe.tensor(t))
        loss.backward()
        return [loss, xs.grad]
    return run


def _case_mse(dtype):
    x, y = (_rng(22 + i).standard_normal(300_007).astype(dtype) for i in range(2))
    def run():
        xs = _t(x)
        loss = F.mse_loss(xs, pe.tensor(y))
        loss.backward()
        return [loss, xs.grad]
    return run


def _case_embedding(dtype):
    w = _rng(24).standard_normal((101, 131)).astype(dtype)
    idx = _rng(25).integers(0, 101, (67, 61))
    g = _rng(26).standard_normal((67, 61, 131)).astype(dtype)
    def run():
        ws = _t(w)
        y = F.embedding(pe.tensor(idx), ws)
        y.backward(pe.tensor(g))
        return [y, ws.grad]
    return run


def _case_softmax(dtype):
    x = _rng(27).standard_normal((517, 263)).astype(dtype)
    g = _rng(28).standard_normal((517, 263)).astype(dtype)
    def run():
        out = []
        for dim in (0, 1):
            xs = _t(x)
            y = F.softmax(xs, dim=dim)
            y.backward(pe.tensor(g))
            out += [y, xs.grad]
        return out
    return run


def _case_conv2d(dtype):
    x = _rng(29).standard_normal((5, 19, 23, 29)).astype(dtype)
    w = _rng(30).standard_normal((17, 19, 3, 3)).astype(dtype)
    b = _rng(31).standard_normal(17).astype(dtype)
    g1 = _rng(32).standard_normal((5, 17, 23, 29)).astype(dtype)
    wd = _rng(33).standard_normal((19, 1, 3, 3)).astype(dtype)
    g2 = _rng(34).standard_normal((5, 19, 12, 15)).astype(dtype)
    w1 = _rng(35).standard_normal((7, 1, 5, 5)).astype(dtype)
    g3 = _rng(36).standard_normal((5, 7, 19, 25)).astype(dtype)
    def run():
        xs, ws, bs, wds, w1s = _t(x), _t(w), _t(b), _t(wd), _t(w1)
        y1 = F.conv2d(xs, ws, bs, padding=1)  # dense 3x3 stride 1 (Winograd where it applies)
        y2 = F.conv2d(xs, wds, stride=2, padding=1, groups=19)  # depthwise, stride 2
        y3 = F.conv2d(xs[:, :1], w1s)  # one input channel
        (y1 * pe.tensor(g1)).sum().backward()
        (y2 * pe.tensor(g2)).sum().backward()
        (y3 * pe.tensor(g3)).sum().backward()
        return [y1, y2, y3, xs.grad, ws.grad, bs.grad, wds.grad, w1s.grad]
    return run


def _case_conv2d_winograd(dtype):
    x = _rng(45).standard_normal((3, 32, 23, 26)).astype(dtype)  # 3x3 stride 1, >= 32 channels: Winograd
    w = _rng(46).standard_normal((40, 32, 3, 3)).astype(dtype)
    g = _rng(47).standard_normal((3, 40, 23, 26)).astype(dtype)
    def run():
        xs, ws = _t(x), _t(w)
        y = F.conv2d(xs, ws, padding=1)
        (y * pe.tensor(g)).sum().backward()
        return [y, xs.grad, ws.grad]
    return run


def _case_batch_norm_pool(dtype):
    x = _rng(37).standard_normal((9, 13, 30, 34)).astype(dtype)
    w = _rng(38).standard_normal(13).astype(dtype)
    b = _rng(39).standard_normal(13).astype(dtype)
    g = _rng(40).standard_normal((9, 13, 15, 17)).astype(dtype)
    def run():
        xs, ws, bs = _t(x), _t(w), _t(b)
        rm, rv = pe.zeros(13, dtype=xs.dtype), pe.ones(13, dtype=xs.dtype)
        y = F.max_pool2d(F.relu(F.batch_norm(xs, rm, rv, ws, bs, training=True)), 2)
        (y * pe.tensor(g)).sum().backward()
        return [y, xs.grad, ws.grad, bs.grad, rm, rv]
    return run


def _case_lstm(dtype):
    x = _rng(41).standard_normal((7, 33, 29)).astype(dtype)
    def run():
        pe.manual_seed(0)
        lstm = pe.nn.LSTM(29, 67, batch_first=True).to(dtype=pe.float64 if dtype == np.float64 else pe.float32)
        xs = _t(x)
        out, _ = lstm(xs)
        out.sum().backward()
        return [out, xs.grad] + [p.grad for p in lstm.parameters()]
    return run


def _case_adamw(dtype):
    p0 = _rng(42).standard_normal(200_003).astype(dtype)
    g = _rng(43).standard_normal(200_003).astype(dtype)
    def run():
        p = _t(p0.copy())
        opt = pe.optim.AdamW([p], lr=1e-2)
        for _ in range(3):
            p.grad = pe.tensor(g)
            opt.step()
        return [p]
    return run


CASES = {f.__name__[len("_case_"):]: f for f in (
    _case_sum_dim0, _case_sum_dim0_few_rows, _case_sum_middle, _case_sum_all, _case_linear_bias_grad,
    _case_layer_norm, _case_attention, _case_attention_one_head, _case_cross_entropy, _case_mse, _case_embedding,
    _case_softmax, _case_conv2d, _case_conv2d_winograd, _case_batch_norm_pool, _case_lstm, _case_adamw)}


def _bits(tensors):
    return [np.asarray(t._data if isinstance(t, pe.Tensor) else t).copy() for t in tensors]


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_same_bits_on_any_thread_count(exact_threads, name, dtype):
    run = CASES[name](dtype)
    results = {}
    for n in (1, 2, 3):
        pe.set_num_threads(n)
        results[n] = _bits(run())
    for n in (2, 3):
        for i, (a, b) in enumerate(zip(results[1], results[n])):
            assert a.dtype == b.dtype and a.shape == b.shape
            same = (a == b) | (np.isnan(a) & np.isnan(b))
            assert same.all(), (f"{name}: output {i} differs between 1 and {n} threads at {(~same).sum()} of "
                                f"{a.size} places (max |diff| {np.max(np.abs(a - b))})")
