"""bfloat16 compute: matmul / linear on bfloat16 tensors run on the bfloat16 GEMM (pyengine/amp/bf16_ops.py),
and ``autocast("cpu", dtype=bfloat16)`` follows PyTorch's CPU policy (pyengine/amp/autocast_mode.py).
Everything is compared with PyTorch: bfloat16 tensors with torch's bfloat16 ops, autocast regions with
torch.autocast, forward and gradients, on odd shapes (1, primes, broadcasting, non-contiguous operands)."""
import numpy as np
import pytest
import torch

import pyengine as pe
import pyengine.nn as nn
import pyengine.nn.functional as F
from pyengine.amp.bf16_ops import GeluBf16, LinearBf16, MatMulBf16


def pair(rng, *shape, bf16=True, grad=True):
    x = rng.standard_normal(shape).astype(np.float32)
    t = torch.tensor(x)
    p = pe.tensor(x)
    if bf16:
        t, p = t.bfloat16(), p.to(pe.bfloat16)
    return p.detach().requires_grad_(grad), t.detach().requires_grad_(grad)


def f32(x):
    return (x.float().detach().numpy() if isinstance(x, torch.Tensor) else x.float().detach().numpy()).astype(np.float64)


def close_bf16(p, t, k, what=""):
    """pyengine vs torch bfloat16 results: both sum in float32 and round once, so they differ by at most a
    few bfloat16 ulps of the result's scale (summation order), relative to sqrt(k)."""
    a, b = f32(p), f32(t)
    assert a.shape == b.shape, f"{what}shape {a.shape} vs {b.shape}"
    scale = np.abs(b).max() + 1e-3
    assert np.abs(a - b).max() <= 2 ** -7 * scale * 2, f"{what}max diff {np.abs(a - b).max():.3g} (scale {scale:.3g})"


MATMUL_SHAPES = [((1, 1), (1, 1)), ((5,), (5,)), ((7,), (7, 3)), ((4, 7), (7,)), ((3, 5, 7), (7, 4)),
                 ((13, 31), (31, 17)), ((2, 1, 5, 33), (3, 33, 7)), ((4, 1, 9), (4, 9, 2)), ((1, 6, 11), (5, 11, 3)),
                 ((2, 3, 37, 19), (2, 3, 19, 41))]


@pytest.mark.parametrize("sa,sb", MATMUL_SHAPES)
def test_bf16_matmul_matches_torch(sa, sb):
    rng = np.random.default_rng(len(sa) * 10 + sa[-1])
    a, ta = pair(rng, *sa)
    b, tb = pair(rng, *sb)
    y, ty = a @ b, ta @ tb
    assert y.dtype == pe.bfloat16 and type(y.grad_fn.fn) is MatMulBf16
    close_bf16(y, ty, sa[-1], "forward: ")
    gy = rng.standard_normal(ty.shape).astype(np.float32)
    y.backward(pe.tensor(gy).to(pe.bfloat16))
    ty.backward(torch.tensor(gy).bfloat16())
    assert a.grad.dtype == b.grad.dtype == pe.bfloat16
    close_bf16(a.grad, ta.grad, 64, "da: ")
    close_bf16(b.grad, tb.grad, 64, "db: ")


def test_bf16_matmul_non_contiguous_and_ops():
    rng = np.random.default_rng(1)
    a, ta = pair(rng, 23, 3, 11)
    b, tb = pair(rng, 3, 23, 17)
    at, tat = a.transpose(0, 1), ta.transpose(0, 1)          # (3, 23, 11): strided batch
    bt, tbt = b[:, ::2, :].transpose(1, 2), tb[:, ::2, :].transpose(1, 2)   # (3, 17, 12): no unit stride
    close_bf16(pe.bmm(at, pe.ones(3, 11, 5, dtype=pe.bfloat16)), torch.bmm(tat, torch.ones(3, 11, 5).bfloat16()), 11)
    close_bf16(pe.matmul(bt, bt.transpose(1, 2)), torch.matmul(tbt, tbt.transpose(1, 2)), 12)
    m, tm = pair(rng, 5, 9)
    close_bf16(pe.mm(m, m.t()), torch.mm(tm, tm.t()), 9)
    # mixed float dtypes are not the bfloat16 kernel's: they compute in float32 as before (pyengine/_lowp.py)
    assert type((m @ pe.ones(9, 2)).grad_fn.fn) is not MatMulBf16


@pytest.mark.parametrize("xs,out,bias", [((1, 1), 1, True), ((7, 13), 5, True), ((2, 3, 17), 11, False),
                                         ((4, 64), 96, True)])
def test_bf16_linear_matches_torch(xs, out, bias):
    rng = np.random.default_rng(xs[-1] * out)
    x, tx = pair(rng, *xs)
    w, tw = pair(rng, out, xs[-1])
    b, tb = pair(rng, out) if bias else (None, None)
    y, ty = F.linear(x, w, b), torch.nn.functional.linear(tx, tw, tb)
    assert y.dtype == pe.bfloat16 and type(y.grad_fn.fn) is LinearBf16
    close_bf16(y, ty, xs[-1], "forward: ")
    gy = rng.standard_normal(ty.shape).astype(np.float32)
    y.backward(pe.tensor(gy).to(pe.bfloat16))
    ty.backward(torch.tensor(gy).bfloat16())
    for p, t, name in ((x, tx, "dx"), (w, tw, "dw")) + (((b, tb, "db"),) if bias else ()):
        assert p.grad.dtype == pe.bfloat16
        close_bf16(p.grad, t.grad, 64, name + ": ")


def test_bf16_linear_bad_shapes_keep_the_ops_message():
    x, w = pe.ones(3, 4, dtype=pe.bfloat16), pe.ones(5, 3, dtype=pe.bfloat16)
    with pytest.raises(RuntimeError, match="linear: input"):
        F.linear(x, w)


@pytest.mark.parametrize("approximate", ["none", "tanh"])
@pytest.mark.parametrize("shape", [(1,), (7, 13), (2, 3, 4099)])
def test_bf16_gelu_matches_torch_and_the_float32_path(approximate, shape):
    rng = np.random.default_rng(sum(shape))
    x, tx = pair(rng, *shape)
    y, ty = F.gelu(x, approximate=approximate), torch.nn.functional.gelu(tx, approximate=approximate)
    assert y.dtype == pe.bfloat16 and type(y.grad_fn.fn) is GeluBf16
    close_bf16(y, ty, 1, "forward: ")
    gy = rng.standard_normal(shape).astype(np.float32)
    y.backward(pe.tensor(gy).to(pe.bfloat16))
    ty.backward(torch.tensor(gy).bfloat16())
    assert x.grad.dtype == pe.bfloat16
    close_bf16(x.grad, tx.grad, 1, "dx: ")
    # the same bits as through float32 (widen, GELU, round once)
    x32 = x.detach().float().requires_grad_()
    y32 = F.gelu(x32, approximate=approximate)
    np.testing.assert_array_equal(y._data.view(np.uint16), y32.to(pe.bfloat16)._data.view(np.uint16))
    y32.backward(pe.tensor(gy).to(pe.bfloat16).float())
    np.testing.assert_array_equal(x.grad._data.view(np.uint16), x32.grad.to(pe.bfloat16)._data.view(np.uint16))


def test_bf16_gelu_module_non_contiguous_and_errors():
    rng = np.random.default_rng(1)
    x, tx = pair(rng, 6, 10)
    xs, txs = x[:, ::3].t(), tx[:, ::3].t()
    y, ty = nn.GELU(approximate="tanh")(xs), torch.nn.GELU(approximate="tanh")(txs)
    close_bf16(y, ty, 1, "forward: ")
    (y * y).sum().backward()
    (ty * ty).sum().backward()
    close_bf16(x.grad, tx.grad, 1, "dx: ")
    with pytest.raises(ValueError, match="approximate"):
        F.gelu(x, approximate="fast")
    # a float32 gradient reaching the bfloat16 GELU (the output used in float32 downstream)
    z = F.gelu(x.detach().requires_grad_())
    (z.float() * pe.ones(6, 10)).sum().backward()


# ---------------------------------------------------------------------- autocast


def make_net(lib):
    class Net(lib.nn.Module):
        def __init__(self):
            super().__init__()
            self.l1, self.ln, self.l2 = lib.nn.Linear(13, 37), lib.nn.LayerNorm(37), lib.nn.Linear(37, 5)

        def forward(self, x):
            logits = self.l2(lib.nn.functional.gelu(self.ln(self.l1(x))))
            return logits, lib.nn.functional.softmax(logits, -1)
    return Net()


def _torch_net(p_net):
    t_net = make_net(torch)
    with torch.no_grad():
        for name, tp in t_net.named_parameters():
            tp.copy_(torch.tensor(dict(p_net.named_parameters())[name].detach().numpy()))
    return t_net


def test_autocast_model_matches_torch_autocast():
    pe.manual_seed(0)
    p_net = make_net(pe)
    t_net = _torch_net(p_net)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((11, 13)).astype(np.float32)
    target = rng.integers(0, 5, 11)
    with pe.autocast("cpu", dtype=pe.bfloat16):
        logits, probs = p_net(pe.tensor(x))
        loss = F.cross_entropy(logits, pe.tensor(target))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        tlogits, tprobs = t_net(torch.tensor(x))
        tloss = torch.nn.functional.cross_entropy(tlogits, torch.tensor(target))
    assert (str(logits.dtype), str(probs.dtype), str(loss.dtype)) == \
        (str(tlogits.dtype).replace("torch", "pyengine"), str(tprobs.dtype).replace("torch", "pyengine"),
         str(tloss.dtype).replace("torch", "pyengine")) == ("pyengine.bfloat16",) * 2 + ("pyengine.float32",)
    np.testing.assert_allclose(f32(logits), f32(tlogits), atol=0.05, rtol=0.02)
    np.testing.assert_allclose(f32(probs), f32(tprobs), atol=0.01)
    np.testing.assert_allclose(loss.item(), tloss.item(), rtol=0.01)
    loss.backward()
    tloss.backward()
    tparams = dict(t_net.named_parameters())
    for name, p in p_net.named_parameters():
        assert p.grad.dtype == pe.float32, name  # fp32 master weights get fp32 gradients
        g, tg = p.grad.numpy(), tparams[name].grad.numpy()
        assert np.abs(g - tg).max() <= 0.03 * np.abs(tg).max() + 1e-4, f"{name}: {np.abs(g - tg).max()}"


def test_autocast_policy_dtypes_match_torch():
    rng = np.random.default_rng(3)
    x, tx = pair(rng, 4, 8, bf16=False, grad=False)
    w, tw = pair(rng, 8, 8, bf16=False, grad=False)
    xb, txb = x.to(pe.bfloat16), tx.bfloat16()
    tgt = np.array([1, 0, 3, 2])
    cases = {
        "matmul": (lambda m, a, b: m.matmul(a, b)), "linear": (lambda m, a, b: m.nn.functional.linear(a, b)),
        "bmm": (lambda m, a, b: m.bmm(a[None], b[None])),
        "sdpa": (lambda m, a, b: m.nn.functional.scaled_dot_product_attention(a[None], b[None], b[None])),
        "softmax_bf16": (lambda m, a, b: m.nn.functional.softmax(a.bfloat16() if m is torch else a.to(pe.bfloat16), -1)),
        "softmax_f32": (lambda m, a, b: m.nn.functional.softmax(a, -1)),
        "layer_norm_bf16": (lambda m, a, b: m.nn.functional.layer_norm(
            a.bfloat16() if m is torch else a.to(pe.bfloat16), (8,))),
        "cross_entropy_bf16": (lambda m, a, b: m.nn.functional.cross_entropy(
            a.bfloat16() if m is torch else a.to(pe.bfloat16), m.tensor(tgt))),
        "mse_bf16": (lambda m, a, b: m.nn.functional.mse_loss(a.bfloat16() if m is torch else a.to(pe.bfloat16),
                                                              b.bfloat16() if m is torch else b.to(pe.bfloat16)[:4])),
        "add_mixed": (lambda m, a, b: (a.bfloat16() if m is torch else a.to(pe.bfloat16)) + a),
        "sum_bf16": (lambda m, a, b: (a.bfloat16() if m is torch else a.to(pe.bfloat16)).sum()),
    }
    for name, f in cases.items():
        with pe.autocast("cpu", dtype=pe.bfloat16):
            p = f(pe, x, w if name != "mse_bf16" else w)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            t = f(torch, tx, tw if name != "mse_bf16" else tw[:4])
        assert str(p.dtype).split(".")[-1] == str(t.dtype).split(".")[-1], name
        np.testing.assert_allclose(f32(p), f32(t), atol=0.05, rtol=0.02, err_msg=name)
    del xb, txb


def test_autocast_outside_and_disabled_change_nothing():
    x, w = pe.randn(3, 4), pe.randn(5, 4)
    assert F.linear(x, w).dtype == pe.float32
    with pe.autocast("cpu", enabled=False):
        assert F.linear(x, w).dtype == pe.float32
    with pe.autocast("cpu"):
        assert F.linear(x, w).dtype == pe.bfloat16  # CPU default dtype: bfloat16
        with pe.autocast("cpu", enabled=False):
            assert F.linear(x, w).dtype == pe.float32
        assert (x @ w.t()).dtype == pe.bfloat16
        assert (x.double() @ w.double().t()).dtype == pe.float64  # only float32 is cast
    assert (x @ w.t()).dtype == pe.float32


def test_autocast_caches_parameter_casts_within_a_region():
    w = pe.randn(6, 6, requires_grad=True)
    x = pe.randn(2, 6)
    with pe.autocast("cpu"):
        # matmul: the cast is a graph node, one for both uses
        z1, z2 = pe.matmul(x, w), pe.matmul(x, w)
        cast1, cast2 = (z.grad_fn.edges[1][0] for z in (z1, z2))
        assert cast1 is cast2
        # F.linear: one fused node per call (LinearAutocastBf16), the weight's bfloat16 array made once
        y1, y2 = F.linear(x, w), F.linear(x, w)
        assert type(y1.grad_fn.fn).__name__ == "LinearAutocastBf16"
        assert y1.grad_fn.fn.w16 is y2.grad_fn.fn.w16
        with pe.no_grad():
            w.add_(1.0)  # a new version: cast again
        y3, z3 = F.linear(x, w), pe.matmul(x, w)
        assert y3.grad_fn.fn.w16 is not y1.grad_fn.fn.w16 and z3.grad_fn.edges[1][0] is not cast1
        np.testing.assert_allclose(f32(y3), f32(F.linear(x.to(pe.bfloat16), w.detach().to(pe.bfloat16))))
    (y1.float().sum() + y2.float().sum() + z1.float().sum()).backward()
    assert w.grad.dtype == pe.float32
    np.testing.assert_allclose(w.grad.numpy(), 2 * np.broadcast_to(x.numpy().sum(0), (6, 6))
                               + np.broadcast_to(x.numpy().sum(0)[:, None], (6, 6)), rtol=0.02, atol=0.02)


@pytest.mark.parametrize("xdtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("shape", [(1, 7), (5, 3, 7), (7,)])
@pytest.mark.parametrize("bias", [True, False])
def test_autocast_fused_linear_matches_the_unfused_graph(xdtype, shape, bias):
    """The fused F.linear of autocast (casts inside one node) gives the forward of the cast-node graph bit for
    bit, and its gradients are the same float32 sums without the bfloat16 rounding of the unfused graph (a
    bfloat16 input's gradient: rounded once, the same bits); all of them near torch.autocast's."""
    rng = np.random.default_rng(5)
    xv = rng.standard_normal(shape).astype(np.float32)
    wv, bv = rng.standard_normal((11, 7)).astype(np.float32), rng.standard_normal(11).astype(np.float32)
    gv = rng.standard_normal(shape[:-1] + (11,)).astype(np.float32)

    def run(fused):
        x = pe.tensor(xv, requires_grad=True)
        xin = x if xdtype == "float32" else x.to(pe.bfloat16)
        w = pe.tensor(wv, requires_grad=True)
        b = pe.tensor(bv, requires_grad=True) if bias else None
        if fused:
            with pe.autocast("cpu", dtype=pe.bfloat16):
                y = F.linear(xin, w, b)
            assert type(y.grad_fn.fn).__name__.startswith("LinearAutocastBf16")
        else:
            y = F.linear(xin.to(pe.bfloat16), w.to(pe.bfloat16), None if b is None else b.to(pe.bfloat16))
        y.backward(pe.tensor(gv).to(pe.bfloat16))
        return y, x, w, b
    y, x, w, b = run(True)
    yu, xu, wu, bu = run(False)
    assert y.dtype == pe.bfloat16 and x.grad.dtype == w.grad.dtype == pe.float32
    np.testing.assert_array_equal(f32(y), f32(yu))
    if xdtype == "bfloat16":
        np.testing.assert_array_equal(x.grad.numpy(), xu.grad.numpy())
    for p, pu in [(x, xu), (w, wu)] + ([(b, bu)] if bias else []):
        np.testing.assert_allclose(p.grad.numpy(), pu.grad.numpy(), rtol=2 ** -7, atol=1e-6 * np.abs(pu.grad.numpy()).max())
    tx = torch.tensor(xv, requires_grad=True)
    tw, tb = torch.tensor(wv, requires_grad=True), (torch.tensor(bv, requires_grad=True) if bias else None)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ty = torch.nn.functional.linear(tx if xdtype == "float32" else tx.bfloat16(), tw, tb)
    ty.backward(torch.tensor(gv).bfloat16())
    np.testing.assert_array_equal(f32(y), f32(ty))
    for p, tp in [(x, tx), (w, tw)] + ([(b, tb)] if bias else []):
        np.testing.assert_allclose(p.grad.numpy(), tp.grad.numpy(), rtol=2 ** -7, atol=1e-6 * np.abs(tp.grad.numpy()).max())


def test_autocast_training_steps_reduce_the_loss():
    """fp32 master weights and optimizer state: a few Adam steps under autocast learn like fp32 ones."""
    pe.manual_seed(1)
    net = nn.Sequential(nn.Linear(16, 32), nn.GELU(), nn.Linear(32, 4))
    opt = pe.optim.AdamW(net.parameters(), lr=1e-2)
    rng = np.random.default_rng(1)
    x = pe.tensor(rng.standard_normal((64, 16)).astype(np.float32))
    y = pe.tensor(rng.integers(0, 4, 64))
    losses = []
    for _ in range(30):
        with pe.autocast("cpu", dtype=pe.bfloat16):
            loss = F.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(p.dtype == pe.float32 and p.grad.dtype == pe.float32 for p in net.parameters())
    assert losses[-1] < 0.5 * losses[0]


# ---------------------------------------------------------------------- pyengine train --dtype bf16


def test_train_dtype_bf16_learns_like_fp32(tmp_path, monkeypatch):
    """`pyengine train --dtype bf16`: the steps' forward runs under autocast (bfloat16 GEMMs, fp32 weights and
    optimizer state); the run learns as the fp32 one does, to within bfloat16's rounding."""
    from pyengine import lm
    from pyengine.cli import main as cli_main
    monkeypatch.setenv("PYENGINE_CACHE_DIR", str(tmp_path / "tokens"))
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("the quick brown fox jumps over the lazy dog. " * 40 + "pack my box with five dozen jugs. " * 40)
    base = dict(data=str(corpus), preset="tiny", max_steps=40, batch_size=8, block_size=16, n_layer=1, n_head=2,
                n_embd=32, eval_interval=40, eval_iters=4, lr=1e-2, warmup=5, log_interval=100)
    calls = []
    real = lm.autocast

    def spy(*a, **k):
        calls.append(k.get("dtype"))
        return real(*a, **k)
    monkeypatch.setattr(lm, "autocast", spy)
    fp32 = lm.train(lm.TrainConfig(out=str(tmp_path / "fp32"), **base), quiet=True)
    assert calls == []
    bf16 = lm.train(lm.TrainConfig(out=str(tmp_path / "bf16"), dtype="bf16", **base), quiet=True)
    assert len(calls) == 40 and set(calls) == {pe.bfloat16}
    assert abs(bf16["best_val_loss"] - fp32["best_val_loss"]) < 0.1, (bf16["best_val_loss"], fp32["best_val_loss"])
    model, _, _ = lm.load_checkpoint(bf16["best_checkpoint"])
    assert all(p.dtype == pe.float32 for p in model.parameters())
    with pytest.raises(ValueError, match="dtype must be 'fp32' or 'bf16'"):
        lm.train(lm.TrainConfig(out=str(tmp_path / "x"), dtype="fp16", **base), quiet=True)
    rc = cli_main(["train", "--data", str(corpus), "--steps", "3", "--out", str(tmp_path / "cli"), "--n-layer", "1",
                   "--n-head", "2", "--n-embd", "16", "--block-size", "16", "--batch-size", "4", "--eval-iters", "1",
                   "--dtype", "bf16"])
    assert rc == 0
