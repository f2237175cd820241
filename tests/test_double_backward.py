"""autograd.grad(create_graph=True) (pyengine/_double_backward.py) against PyTorch: gradient penalties and
second derivatives through linear layers, activations, broadcasting elementwise ops, reshapes and reductions."""
import numpy as np
import pytest
import torch

import pyengine as pe

RNG = np.random.default_rng(11)


def _run(lib, params, x, grad_out):
    nn = lib.nn
    D = nn.Sequential(nn.Linear(x.shape[1], 6), nn.LeakyReLU(0.2), nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 4),
                      nn.ReLU(), nn.Linear(4, 1), nn.Sigmoid())
    with lib.no_grad():
        for p, v in zip(D.parameters(), params):
            p.copy_(lib.tensor(v))
    xi = lib.tensor(x).requires_grad_(True)
    scale = lib.tensor(RNG_FIXED)
    d = D((xi * scale - 0.5) / 1.5)
    g, = lib.autograd.grad(d, xi, grad_outputs=lib.tensor(grad_out), create_graph=True, retain_graph=True)
    gp = ((g.reshape(g.shape[0], -1).norm(2, dim=1) - 1) ** 2).mean()
    (gp * 10 + d.sum() - g.exp().mean()).backward()
    return [g.detach().numpy(), gp.detach().numpy()] + [p.grad.numpy() for p in D.parameters()] + [xi.grad.numpy()]


RNG_FIXED = RNG.standard_normal((1, 7)).astype(np.float32)


@pytest.mark.parametrize("batch", [1, 5])
def test_gradient_penalty_matches_torch(batch):
    x = RNG.standard_normal((batch, 7)).astype(np.float32)
    shapes = [(6, 7), (6,), (5, 6), (5,), (4, 5), (4,), (1, 4), (1,)]
    params = [RNG.standard_normal(s).astype(np.float32) for s in shapes]
    grad_out = RNG.standard_normal((batch, 1)).astype(np.float32)
    for a, b in zip(_run(pe, params, x, grad_out), _run(torch, params, x, grad_out)):
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=1e-5)


def test_second_derivative_of_elementwise_and_reductions():
    x0 = RNG.standard_normal((3, 4)).astype(np.float32)
    res = []
    for lib in (torch, pe):
        x = lib.tensor(x0, requires_grad=True)
        y = (x.exp() * x - x / (x * x + 1) + x.sigmoid() ** 3).mean(dim=0).sum() + x.sum(dim=1, keepdim=True).pow(2).sum()
        g, = lib.autograd.grad(y, x, create_graph=True)
        h, = lib.autograd.grad((g * g).sum(), x)
        res.append((g.detach().numpy(), h.numpy()))
    for a, b in zip(*res):
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=1e-5)


def test_unsupported_node_is_named():
    x = pe.randn(2, 3, requires_grad=True)
    y = pe.nn.functional.softmax(x, dim=1)[:, 0].sum()
    with pytest.raises(NotImplementedError, match="create_graph=True"):
        pe.autograd.grad(y, x, create_graph=True)


def test_grad_keywords_of_pytorch():
    x = pe.randn(3, requires_grad=True)
    z = pe.randn(3, requires_grad=True)
    g = pe.autograd.grad((x * 2).sum(), [x, z], only_inputs=True, allow_unused=True, materialize_grads=True)
    np.testing.assert_array_equal(g[0].numpy(), np.full(3, 2.0, np.float32))
    np.testing.assert_array_equal(g[1].numpy(), np.zeros(3, np.float32))
