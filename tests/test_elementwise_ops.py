"""The elementwise ops on inputs big enough for the compiled kernels (backend/cpu/elementwise.py sends
smaller ones to NumPy), against PyTorch: forward and gradients, float32 and float64, with transposed,
sliced and broadcast operands."""
import numpy as np
import pytest
import torch

import pyengine as pe
from pyengine.backend.cpu import elementwise as cpu_ew
from pyengine.testing import assert_close

N, C = 131, 263  # 34k elements: above the kernels' threshold
assert N * C >= cpu_ew.SMALL


def _layout(arr, layout):
    """The same values in another memory layout (the values are arr's)."""
    if layout == "transposed":
        return np.ascontiguousarray(arr.T).T
    if layout == "sliced":
        wide = np.zeros(arr.shape[:-1] + (arr.shape[-1] * 2,), arr.dtype)
        wide[..., ::2] = arr
        return wide[..., ::2]
    return arr


def _run(fn, arrays, dtype, layouts, grad=True):
    """fn on pyengine and torch tensors made from ``arrays``; compares the outputs and the gradients."""
    pts, tts = [], []
    for a, lay in zip(arrays, layouts):
        a = a.astype(dtype)
        p = pe.tensor(_layout(a, lay) if a.ndim == 2 else a, requires_grad=grad)
        pts.append(p)
        tts.append(torch.tensor(a, requires_grad=grad))
    yp, yt = fn(pe, *pts), fn(torch, *tts)
    assert yp.dtype.__str__().split(".")[-1] == str(yt.dtype).split(".")[-1]
    assert_close(yp.detach().numpy(), yt.detach().numpy(), rtol=5e-6 if dtype == np.float32 else 1e-12,
                 atol=1e-6 if dtype == np.float32 else 1e-12)
    if not grad:
        return
    g = np.random.default_rng(7).standard_normal(tuple(yt.shape)).astype(dtype)
    yp.backward(pe.tensor(g))
    yt.backward(torch.tensor(g))
    for p, t in zip(pts, tts):
        if t.grad is None:  # an input only compared
            assert p.grad is None
            continue
        assert_close(p.grad.numpy(), t.grad.numpy(), rtol=2e-5 if dtype == np.float32 else 1e-10,
                     atol=1e-5 if dtype == np.float32 else 1e-10)


def _data(seed, positive=False):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((N, C))
    b = rng.standard_normal((N, C))
    row = rng.standard_normal(C)
    col = rng.standard_normal((N, 1))
    if positive:
        a, b, row, col = np.abs(a) + 0.5, np.abs(b) + 0.5, np.abs(row) + 0.5, np.abs(col) + 0.5
    return a, b, row, col


BINARY = {
    "add": lambda m, a, b: a + b,
    "sub": lambda m, a, b: a - b,
    "mul": lambda m, a, b: a * b,
    "div": lambda m, a, b: a / b,
    "pow": lambda m, a, b: m.pow(a, b),
    "maximum": lambda m, a, b: m.maximum(a, b),
    "minimum": lambda m, a, b: m.minimum(a, b),
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("op", sorted(BINARY))
@pytest.mark.parametrize("case", ["same", "transposed", "row", "col", "sliced"])
def test_binary_ops_match_pytorch(op, case, dtype):
    a, b, row, col = _data(1, positive=op in ("div", "pow"))
    if op in ("maximum", "minimum"):
        b[::3] = a[::3]  # ties: the gradient is split
    other = {"same": b, "transposed": b, "sliced": b, "row": row, "col": col}[case]
    layouts = ("contiguous", case if case in ("transposed", "sliced") else "contiguous")
    _run(BINARY[op], [a, other], dtype, layouts)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("op,number", [("add", 1.5), ("sub", -2), ("mul", 3.0), ("div", 0.7), ("rsub", 1.0),
                                       ("rdiv", 2.0), ("pow", 2), ("pow", 3.0), ("pow", 0.5), ("pow", 2.5),
                                       ("pow", -1.0), ("rpow", 2.0)])
def test_ops_with_a_number_match_pytorch(op, number, dtype):
    a = _data(2, positive=op in ("pow", "rdiv"))[0]
    if op == "rpow":
        a = a * 0.1
    fn = {"add": lambda m, x: x + number, "sub": lambda m, x: x - number, "mul": lambda m, x: number * x,
          "div": lambda m, x: x / number, "rsub": lambda m, x: number - x, "rdiv": lambda m, x: number / x,
          "pow": lambda m, x: m.pow(x, number), "rpow": lambda m, x: number ** x}[op]
    _run(fn, [a], dtype, ["transposed"])


UNARY = {
    "neg": (lambda m, x: -x, False), "exp": (lambda m, x: m.exp(x), False),
    "log": (lambda m, x: m.log(x), True), "sqrt": (lambda m, x: m.sqrt(x), True),
    "rsqrt": (lambda m, x: m.rsqrt(x), True), "abs": (lambda m, x: m.abs(x), False),
    "tanh": (lambda m, x: m.tanh(x), False), "sigmoid": (lambda m, x: m.sigmoid(x), False),
    "silu": (lambda m, x: m.nn.functional.silu(x), False),
    "clamp": (lambda m, x: m.clamp(x, -0.5, 0.7), False),
    "maximum_number": (lambda m, x: m.clamp(x, min=0.25) * 2.0, False),
    "gelu_tanh_by_ops": (lambda m, x: 0.5 * x * (1.0 + m.tanh(0.7978845608 * (x + 0.044715 * m.pow(x, 3.0)))),
                         False),
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layout", ["contiguous", "transposed", "sliced"])
@pytest.mark.parametrize("op", sorted(UNARY))
def test_unary_ops_match_pytorch(op, layout, dtype):
    fn, positive = UNARY[op]
    a = _data(3, positive=positive)[0] * (1 if positive else 3)
    _run(fn, [a], dtype, [layout])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_where_and_comparisons_match_pytorch(dtype):
    a, b, row, _ = _data(4)
    _run(lambda m, x, y, r: m.where(x > r, x, y * 2.0), [a, b, row], dtype, ["transposed", "sliced", "contiguous"])
    pa, pb = pe.tensor(_layout(a.astype(dtype), "transposed")), pe.tensor(b.astype(dtype))
    ta, tb = torch.tensor(a.astype(dtype)), torch.tensor(b.astype(dtype))
    for name in ("eq", "ne", "lt", "le", "gt", "ge"):
        np.testing.assert_array_equal(getattr(pe, name)(pa, pb).numpy(), getattr(torch, name)(ta, tb).numpy())
        np.testing.assert_array_equal(getattr(pa, name)(0.5).numpy(), getattr(ta, name)(0.5).numpy())


def test_special_values_match_pytorch():
    # NaN and inf through the kernels' exp, log, tanh, sigmoid, sqrt, max (float32)
    x = np.resize(np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0, -1.0, 50.0, -50.0, 100.0, -100.0],
                           np.float32), N * C)
    px, tx = pe.tensor(x), torch.tensor(x)
    for name in ("exp", "log", "tanh", "sigmoid", "sqrt", "abs", "neg"):
        with np.errstate(all="ignore"):
            got = getattr(pe, name)(px).numpy()
        want = getattr(torch, name)(tx).numpy()
        assert_close(got, want, atol=1e-38, msg=name + ": ")
    assert_close(pe.maximum(px, pe.tensor(np.float32(0.5))).numpy(), torch.maximum(tx, torch.tensor(0.5)).numpy())


def test_fresh_gradients_of_one_tensor_used_twice_add_up():
    # Mul's two gradients are fresh arrays the engine may add into in place; of 0-d inputs NumPy gives
    # immutable scalars, which must be summed, not added into
    for shape in [(), (3,), (N, C)]:
        x = pe.tensor(np.full(shape, 2.0, np.float32), requires_grad=True)
        a = x * 3
        (a * a).sum().backward()
        assert_close(x.grad.numpy(), np.full(shape, 36.0, np.float32))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("op", ["add", "sub", "mul", "div"])
@pytest.mark.parametrize("bshape", [(), (1,), (5,), (37, 5), (37, 1), (1, 37, 1), (7, 1, 5), (7, 37, 1), (1, 1, 1)])
@pytest.mark.parametrize("seed_grad", ["sum", "mean", "full"])
def test_broadcast_operand_gradients_match_pytorch(op, bshape, seed_grad, dtype):
    """The arithmetic ops sum a broadcast operand's gradient themselves (ops.elementwise._summed_to): adjacent
    axes, axes apart, a stride-0 gradient (from sum / mean) and a real one, on both operands' sides."""
    rng = np.random.default_rng(11)
    a = rng.standard_normal((7, 37, 5))
    b = np.abs(rng.standard_normal(bshape)) + 0.5
    fn = BINARY[op]
    for x, y in ((a, b), (b, a)):
        if op == "div":
            y = np.abs(y) + 0.5
        ps = [pe.tensor(v.astype(dtype), requires_grad=True) for v in (x, y)]
        ts = [torch.tensor(v.astype(dtype), requires_grad=True) for v in (x, y)]
        outs = []
        for m, (u, v) in ((pe, ps), (torch, ts)):
            out = fn(m, u, v)
            if seed_grad == "full":
                out.backward(m.tensor(np.random.default_rng(3).standard_normal(tuple(out.shape)).astype(dtype)))
            else:
                getattr(out, seed_grad)().backward()
            outs.append(out)
        for p, t in zip(ps, ts):
            assert p.grad.shape == tuple(t.grad.shape)
            assert_close(p.grad.numpy(), t.grad.numpy(), rtol=2e-5 if dtype == np.float32 else 1e-10,
                         atol=1e-5 if dtype == np.float32 else 1e-10)
