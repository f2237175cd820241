"""PyTorch-style custom autograd Functions: static forward(ctx, ...) / backward(ctx, ...) on Tensors."""
import numpy as np
import pytest

import pyengine as pe


class Legendre3(pe.autograd.Function):
    """The PyTorch tutorial's P3(x) = (5x^3 - 3x) / 2, with its hand-written backward."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return 0.5 * (5 * x ** 3 - 3 * x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * 1.5 * (5 * x ** 2 - 1)


class ScaleAndArgmax(pe.autograd.Function):
    """Two outputs, one non-differentiable; an argument that is not a tensor; setup_context style."""

    @staticmethod
    def forward(x, k):
        return x * k, x.argmax()

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.k = inputs[1]
        ctx.mark_non_differentiable(output[1])

    @staticmethod
    def backward(ctx, g, g_idx):
        assert ctx.needs_input_grad == (True, False)
        return g * ctx.k, None


def test_tutorial_custom_function_trains_and_matches_the_formula():
    x = pe.randn(7, dtype=pe.float64, requires_grad=True)
    y = Legendre3.apply(x)
    assert y.grad_fn.name == "Legendre3Backward"
    y.sum().backward()
    xs = x.detach().numpy()
    np.testing.assert_allclose(x.grad.numpy(), 1.5 * (5 * xs ** 2 - 1), rtol=1e-12)


def test_two_outputs_non_differentiable_and_setup_context():
    x = pe.randn(5, requires_grad=True)
    y, i = ScaleAndArgmax.apply(x, 3.0)
    assert not i.requires_grad and y.requires_grad
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), np.full(5, 3.0))


def test_saved_tensor_written_in_place_is_an_error():
    x = pe.randn(3, requires_grad=True)
    h = x * 1
    y = Legendre3.apply(h)
    h.add_(1)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.sum().backward()


def test_wrong_number_of_gradients_is_an_error():
    class Bad(pe.autograd.Function):
        @staticmethod
        def forward(ctx, a, b):
            return a + b

        @staticmethod
        def backward(ctx, g):
            return (g,)
    a, b = pe.randn(2, requires_grad=True), pe.randn(2, requires_grad=True)
    with pytest.raises(RuntimeError, match="incorrect number of gradients"):
        Bad.apply(a, b).sum().backward()


def test_no_graph_without_grad_and_matches_pytorch():
    x = pe.randn(4)
    assert Legendre3.apply(x).grad_fn is None
    torch = pytest.importorskip("torch")

    class TL(torch.autograd.Function):
        forward = staticmethod(Legendre3.forward)
        backward = staticmethod(Legendre3.backward)
    xv = np.random.default_rng(0).standard_normal(6)
    a, b = pe.tensor(xv, requires_grad=True), torch.tensor(xv, requires_grad=True)
    (Legendre3.apply(a) ** 2).sum().backward()
    (TL.apply(b) ** 2).sum().backward()
    np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-12)
