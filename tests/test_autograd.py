"""The autograd engine: accumulation, retain_graph, deep graphs, no_grad, hooks, errors."""
import numpy as np
import pytest

import pyengine as pe
from pyengine.testing import assert_close


def test_backward_twice_accumulates():
    x = pe.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = (x * x).sum()
    y.backward(retain_graph=True)
    assert_close(x.grad.numpy(), [2.0, 4.0, 6.0])
    y.backward()
    assert_close(x.grad.numpy(), [4.0, 8.0, 12.0])


def test_second_backward_without_retain_graph_raises():
    x = pe.tensor([1.0, 2.0], requires_grad=True)
    y = (x.exp() * 2).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="second time"):
        y.backward()


def test_new_graph_accumulates_into_grad():
    x = pe.randn(4, requires_grad=True)
    (x * 3).sum().backward()
    (x * 2).sum().backward()
    assert_close(x.grad.numpy(), np.full(4, 5.0))


def test_diamond_graph_sums_paths():
    x = pe.tensor(2.0, requires_grad=True)
    a = x * 3
    b = x * x
    (a + b + a * b).backward()  # d/dx (3x + x^2 + 3x^3) = 3 + 2x + 9x^2
    assert x.grad.item() == pytest.approx(3 + 4 + 36)


def test_deep_chain_no_recursion_limit():
    x = pe.tensor(1.0, requires_grad=True)
    y = x
    for _ in range(100_000):
        y = y + 0.0
    y.backward()
    assert x.grad.item() == 1.0


def test_no_grad_builds_no_graph():
    x = pe.randn(3, requires_grad=True)
    with pe.no_grad():
        y = x * 2
    assert y.grad_fn is None and not y.requires_grad
    with pe.no_grad():
        with pe.enable_grad():
            z = x * 2
    assert z.requires_grad and z.grad_fn is not None

    @pe.no_grad()
    def f(t):
        return t * 2
    assert f(x).grad_fn is None
    assert pe.is_grad_enabled()


def test_no_graph_when_no_input_requires_grad():
    y = pe.randn(3) * pe.randn(3)
    assert y.grad_fn is None and y.is_leaf


def test_backward_non_scalar_needs_gradient():
    x = pe.randn(2, 3, requires_grad=True)
    y = x * 2
    with pytest.raises(RuntimeError, match=r"scalar outputs.*\(2, 3\)"):
        y.backward()
    g = np.random.default_rng(0).standard_normal((2, 3)).astype(np.float32)
    y.backward(pe.tensor(g))
    assert_close(x.grad.numpy(), 2 * g)
    with pytest.raises(RuntimeError, match="shape"):
        (x * 2).backward(pe.ones(3))


def test_backward_on_tensor_without_grad_raises():
    with pytest.raises(RuntimeError, match="does not require grad"):
        pe.tensor([1.0]).sum().backward()


def test_detach_and_requires_grad_rules():
    x = pe.randn(3, requires_grad=True)
    d = (x * 2).detach()
    assert not d.requires_grad and d.grad_fn is None
    with pytest.raises(RuntimeError, match="floating point"):
        pe.tensor([1, 2]).requires_grad_()
    with pytest.raises(RuntimeError, match="requires grad"):
        x.numpy()
    assert x.detach().numpy().shape == (3,)


def test_retain_grad_and_hooks():
    x = pe.tensor([1.0, 2.0], requires_grad=True)
    h = x * 3
    h.retain_grad()
    seen = []
    handle = x.register_hook(lambda g: seen.append(g.numpy().copy()) or g * 10)
    (h * h).sum().backward()
    assert_close(h.grad.numpy(), 2 * np.array([3.0, 6.0]))
    assert_close(seen[0], [18.0, 36.0])
    assert_close(x.grad.numpy(), [180.0, 360.0])
    handle.remove()
    x.grad = None
    (x * 1).sum().backward()
    assert_close(x.grad.numpy(), [1.0, 1.0])


def test_post_accumulate_hook_sees_final_grad():
    w = pe.randn(3, requires_grad=True)
    calls = []
    w.register_post_accumulate_grad_hook(lambda p: calls.append(p.grad.numpy().copy()))
    (w * 2).sum().backward()
    assert len(calls) == 1 and np.allclose(calls[0], 2)


def test_autograd_grad_does_not_touch_dot_grad():
    x = pe.tensor([1.0, 2.0], requires_grad=True)
    (g,) = pe.autograd.grad((x ** 3).sum(), x)
    assert_close(g.numpy(), [3.0, 12.0])
    assert x.grad is None


def test_inplace_on_leaf_requiring_grad_raises_but_allowed_in_no_grad():
    w = pe.ones(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="in-place"):
        w += 1
    with pe.no_grad():
        w -= 0.5
    assert_close(w.detach().numpy(), np.full(3, 0.5))
    with pytest.raises(RuntimeError):
        w[0] = 2.0


def test_custom_function():
    class Cube(pe.Function):
        def forward(self, x):
            self.x = x
            return x ** 3

        def backward(self, g):
            return 3 * self.x ** 2 * g

    x = pe.tensor([1.0, -2.0], requires_grad=True)
    Cube.apply(x).sum().backward()
    assert_close(x.grad.numpy(), [3.0, 12.0])


def test_graph_released_after_backward():
    import gc
    import weakref
    x = pe.randn(1000, requires_grad=True)
    y = x.exp()
    node = y.grad_fn
    saved = weakref.ref(node.fn)
    y.sum().backward()
    gc.collect()
    assert saved() is None  # the function and its saved arrays are gone


def test_grad_dtype_matches_tensor():
    x = pe.randn(3, requires_grad=True)
    (x * 2.0).sum().backward()
    assert x.grad.dtype == pe.float32
    x64 = pe.randn(3, dtype=pe.float64, requires_grad=True)
    (x64 * x64).sum().backward()
    assert x64.grad.dtype == pe.float64


def test_max_dim_and_topk_return_indices():
    x = pe.tensor([[1.0, 5.0, 3.0], [7.0, 2.0, 0.0]], requires_grad=True)
    v, i = x.max(dim=1)
    assert i.tolist() == [1, 0] and v.tolist() == [5.0, 7.0]
    v.sum().backward()
    assert_close(x.grad.numpy(), [[0, 1, 0], [1, 0, 0]])
    vals, idx = pe.randn(4, 10).topk(3)
    assert tuple(vals.shape) == (4, 3) and idx.dtype == pe.int64


def test_leaf_gradient_delivered_as_soon_as_final():
    """A leaf's hooks run once its last producer has run, before the rest of the backward pass."""
    events = []

    class Probe(pe.Function):
        def forward(self, x):
            return x.copy()

        def backward(self, g):
            events.append("probe backward")
            return g

    x = pe.randn(3, 4, requires_grad=True)
    w1 = pe.randn(4, 4, requires_grad=True)
    w2 = pe.randn(4, 2, requires_grad=True)
    w2.register_post_accumulate_grad_hook(lambda p: events.append("w2 ready"))
    w1.register_post_accumulate_grad_hook(lambda p: events.append("w1 ready"))
    h = Probe.apply(x) @ w1
    (h.tanh() @ w2).sum().backward()
    assert events.index("w2 ready") < events.index("probe backward")
    assert "w1 ready" in events
    # a leaf used twice is delivered once, with both contributions
    a = pe.tensor([1.0, 2.0], requires_grad=True)
    calls = []
    a.register_post_accumulate_grad_hook(lambda p: calls.append(p.grad.tolist()))
    (a * a + a.exp()).sum().backward()
    assert len(calls) == 1
    np.testing.assert_allclose(calls[0], 2 * np.array([1.0, 2.0]) + np.exp([1.0, 2.0]), rtol=1e-6)


def test_adopted_leaf_gradients_are_exact_and_unshared():
    """Kernel-backed Functions (fresh_grads) hand their gradient arrays to leaves without a copy; a leaf fed
    by several of them and by an elementwise op gets the exact sum, and no two leaves share memory."""
    import pyengine.nn.functional as F
    rng = np.random.default_rng(0)
    x0, w0, v0 = rng.standard_normal((5, 3)), rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    x = pe.tensor(x0, dtype=pe.float64)
    W = pe.tensor(w0, dtype=pe.float64, requires_grad=True)
    V = pe.tensor(v0, dtype=pe.float64, requires_grad=True)
    b = pe.tensor(np.zeros(4), dtype=pe.float64, requires_grad=True)
    loss = F.linear(x, W, b).sum() + 2 * F.linear(x, W).sum() + (W * V).sum()
    loss.backward()
    np.testing.assert_allclose(W.grad.numpy(), 3 * np.ones((4, 5)) @ x0 + v0, rtol=1e-12)
    np.testing.assert_allclose(V.grad.numpy(), w0, rtol=1e-12)
    np.testing.assert_allclose(b.grad.numpy(), np.full(4, 5.0), rtol=1e-12)
    grads = [W.grad.numpy(), V.grad.numpy(), b.grad.numpy()]
    for i in range(3):
        for j in range(i + 1, 3):
            assert not np.shares_memory(grads[i], grads[j])
    # a second backward accumulates into the adopted arrays
    (F.linear(x, W, b).sum()).backward()
    np.testing.assert_allclose(W.grad.numpy(), 4 * np.ones((4, 5)) @ x0 + v0, rtol=1e-12)
    np.testing.assert_allclose(b.grad.numpy(), np.full(4, 10.0), rtol=1e-12)


def test_owned_gradients_pass_through_reshapes_and_shared_ones_do_not():
    """A reshape / clone / contiguous backward returns a view of the gradient it received (views_grad): the
    engine may add into it in place only if no one else holds that gradient. Sums must come out exact both
    when a kernel's fresh gradient crosses reshapes and when one gradient array feeds two branches."""
    import pyengine.nn.functional as F
    rng = np.random.default_rng(1)
    x0, w0 = rng.standard_normal((5, 3)), rng.standard_normal((4, 3))
    x = pe.tensor(x0, dtype=pe.float64, requires_grad=True)
    W = pe.tensor(w0, dtype=pe.float64, requires_grad=True)
    xr = x.reshape(15).reshape(5, 3)
    loss = F.linear(xr, W).sum() + (xr * 2).sum() + F.linear(xr.clone().contiguous(), W).sum()
    loss.backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * np.ones((5, 4)) @ w0 + 2, rtol=1e-12)
    np.testing.assert_allclose(W.grad.numpy(), 2 * np.ones((4, 5)) @ x0, rtol=1e-12)
    assert not np.shares_memory(x.grad.numpy(), W.grad.numpy())
    # Add's backward hands the same array to both inputs: neither branch owns it
    a = pe.tensor(rng.standard_normal(4), dtype=pe.float64, requires_grad=True)
    s = a * 1.0
    (s + s.reshape(2, 2).reshape(4)).sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), np.full(4, 2.0))
    b = pe.tensor(rng.standard_normal(4), dtype=pe.float64, requires_grad=True)
    h = F.linear(b.reshape(1, 4), pe.tensor(np.eye(4))).reshape(4)  # fresh dx, then views
    (h + h.reshape(2, 2).reshape(4) + h.clone()).sum().backward()
    np.testing.assert_array_equal(b.grad.numpy(), np.full(4, 3.0))


# ---------------------------------------------------------------------- the engine fits gradients to shapes


class _BroadcastingScale(pe.Function):
    """y = a * b with b broadcast; its backward returns both gradients in the output's shape and
    leaves the reduction to the engine (autograd.sum_to_shape)."""

    def forward(self, a, b):
        self.a, self.b = a, b
        return a * b

    def backward(self, g):
        return g * self.b, g * self.a


@pytest.mark.parametrize("sa,sb", [((4, 3), (3,)), ((4, 3), (1, 3)), ((2, 4, 3), (4, 1)), ((5,), (2, 3, 5)),
                                   ((1,), (7,)), ((2, 1, 3), (1, 4, 1))])
def test_engine_sums_gradients_to_input_shapes(sa, sb):
    rng = np.random.default_rng(0)
    a = pe.tensor(rng.standard_normal(sa), dtype=pe.float64, requires_grad=True)
    b = pe.tensor(rng.standard_normal(sb), dtype=pe.float64, requires_grad=True)
    y = _BroadcastingScale.apply(a, b)
    g = rng.standard_normal(tuple(y.shape))
    y.backward(pe.tensor(g, dtype=pe.float64))
    ga = np.broadcast_to(b.numpy(force=True), y.shape) * g
    gb = np.broadcast_to(a.numpy(force=True), y.shape) * g
    assert a.grad.shape == a.shape and b.grad.shape == b.shape

    def reduce_to(x, shape):
        x = x.sum(axis=tuple(range(x.ndim - len(shape))))
        return x.sum(axis=tuple(i for i, s in enumerate(shape) if s == 1), keepdims=True).reshape(shape)

    assert_close(a.grad.numpy(), reduce_to(ga, sa), rtol=1e-12, atol=1e-12)
    assert_close(b.grad.numpy(), reduce_to(gb, sb), rtol=1e-12, atol=1e-12)


def test_sum_to_shape_broadcasts_a_smaller_gradient_up():
    from pyengine.autograd import sum_to_shape
    g, fresh = sum_to_shape(np.arange(3.0), (2, 3))
    assert g.shape == (2, 3) and not fresh and (g == np.arange(3.0)).all()
    g, fresh = sum_to_shape(np.ones((2, 3)), (3,))
    assert fresh and (g == 2).all()


# ---------------------------------------------------------------------- backward(inputs=) and grad


def test_backward_inputs_accumulates_only_into_the_inputs():
    x = pe.randn(3, requires_grad=True)
    w = pe.randn(3, requires_grad=True)
    fired = []
    w.register_hook(lambda g: fired.append(1))
    h = x * w
    (h * h).sum().backward(inputs=[x])
    assert_close(x.grad.numpy(), (2 * (x * w * w)).detach().numpy(), rtol=1e-6, atol=1e-6)
    assert w.grad is None and not fired


def test_backward_inputs_non_leaf():
    x = pe.randn(4, requires_grad=True)
    h = x * 3
    y = (h * h).sum()
    y.backward(inputs=[h, x])
    assert_close(h.grad.numpy(), (2 * h).detach().numpy(), rtol=1e-6, atol=1e-6)
    assert_close(x.grad.numpy(), (18 * x).detach().numpy(), rtol=1e-6, atol=1e-6)


def test_backward_inputs_must_require_grad():
    x = pe.randn(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="does not require grad"):
        (x * 2).sum().backward(inputs=[pe.randn(3)])
    with pytest.raises(RuntimeError, match="non-empty"):
        (x * 2).sum().backward(inputs=[])


def test_grad_of_non_leaf_and_unused_inputs():
    x = pe.randn(3, requires_grad=True)
    h = x.exp()
    unused = pe.randn(3, requires_grad=True)
    (gh,) = pe.autograd.grad((h * 2).sum(), h, retain_graph=True)
    assert_close(gh.numpy(), np.full(3, 2.0))
    with pytest.raises(RuntimeError, match="allow_unused"):
        pe.autograd.grad((h * 2).sum(), [x, unused], retain_graph=True)
    gx, gu = pe.autograd.grad((h * 2).sum(), [x, unused], allow_unused=True)
    assert gu is None and x.grad is None
    assert_close(gx.numpy(), 2 * np.exp(x.detach().numpy()), rtol=1e-6, atol=1e-6)


# ---------------------------------------------------------------------- structure


def test_tensor_methods_are_declared_in_the_class():
    for name in ("__add__", "__matmul__", "sum", "reshape", "softmax", "add_", "T"):
        assert name in vars(pe.Tensor), name


@pytest.mark.parametrize("first", ["pyengine.ops", "pyengine.autograd", "pyengine.tensor", "pyengine.nn.functional",
                                   "pyengine.backend", "pyengine.optim"])
def test_any_import_order_works(first):
    import subprocess
    import sys
    code = (f"import {first}\nimport pyengine as pe\nx = pe.randn(2, 3, requires_grad=True)\n"
            "(x @ x.T + x.sum()).sum().backward()\nassert x.grad.shape == (2, 3)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_graphs_leave_no_reference_cycles():
    """Dropping a graph frees its arrays at once: no node may reach itself (a cycle would hold every saved
    array until the garbage collector runs; an op's version record once held its own node)."""
    import gc
    import pyengine.nn.functional as F
    rng = np.random.default_rng(0)

    def r(*s):
        return pe.tensor(rng.standard_normal(s).astype(np.float32), requires_grad=True)

    lin = pe.nn.Linear(4, 5)
    cases = [
        lambda: ((r(3, 4).exp() * r(4) + 1).tanh().sum(1).mean()),
        lambda: (r(2, 3, 4) @ r(4, 5)).relu().sum(),
        lambda: r(4, 6).view(2, 12).t()[1:3].sum(),
        lambda: F.cross_entropy(r(5, 7), pe.tensor([1, 2, 3, 4, 0])),
        lambda: F.layer_norm(lin(r(3, 4)), (5,)).sum(),
        lambda: (r(3, 3) * 1).add_(r(3, 3), alpha=2).pow_(2).sum(),
        lambda: r(4, 4).masked_fill(pe.tensor(np.eye(4, dtype=bool)), 0).softmax(-1).sum(),
        lambda: F.scaled_dot_product_attention(r(2, 3, 4), r(2, 5, 4), r(2, 5, 4)).sum(),
        lambda: (r(3).pow(2) + r(3).abs() ** r(3)).sum(),
    ]
    was = gc.isenabled()
    gc.disable()
    try:
        for i, f in enumerate(cases):
            gc.collect()
            y = f()
            y.backward()
            del y
            assert gc.collect() == 0, f"case {i}: a graph left reference cycles"
            y = f()  # a graph never run backward
            del y
            assert gc.collect() == 0, f"case {i}: an unused graph left reference cycles"
    finally:
        if was:
            gc.enable()


def test_version_record_of_a_tensor_without_counter():
    """Function.apply records a saved input that was never written in place (no version counter yet) as the
    tensor itself: a write after the forward is still refused, a view or detach made since (a counter at 0)
    is not a write, and the error names the tensor's producer now, as PyTorch's."""
    import re
    a = pe.tensor([1.0, 2.0], requires_grad=True)
    b = pe.tensor([3.0, 4.0])
    y = a * 2
    assert a._version is None and b._version is None and y._version is None
    c = a * b
    d = y * y
    b.detach()
    y.view(2, 1)  # counters made at 0: no write
    (c.sum() + d.sum()).backward()
    assert_close(a.grad.numpy(), np.array([3.0 + 8.0, 4.0 + 16.0], np.float32))  # b + 8a
    c, d = a * b, y.detach() * y
    b.add_(1)
    with pytest.raises(RuntimeError, match=re.escape("which is a leaf, is at version 1; expected version 0")):
        c.sum().backward()
    y2 = a * 2
    d = y2 * y2
    y2.add_(1)
    with pytest.raises(RuntimeError, match="which is output 0 of AddBackward, is at version 1"):
        d.sum().backward()
    e = a * b
    with pe.no_grad():  # an optimizer-style write to a leaf between forward and backward
        a.sub_(0.1)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        e.sum().backward()


def test_hot_operators_are_the_ops():
    """a + b, a * b, a.exp() ... call pyengine.ops' functions directly (one Python call less per op; the four
    arithmetic operators: their Functions' two-operand apply): the same results, gradients and errors as the ops."""
    from pyengine.ops.elementwise import OPERATORS
    for method, op in (("exp", pe.ops.exp), ("tanh", pe.ops.tanh), ("matmul", pe.ops.matmul), *OPERATORS.items()):
        assert vars(pe.Tensor)[method] is op
    torch = pytest.importorskip("torch")
    v = np.array([[1.0, -2.0], [0.5, 3.0]], np.float32)
    grads = []
    for m in (pe, torch):
        x = m.tensor(v, requires_grad=True)
        ((x + 1) * (x - 2.0) / 3 + (-x).exp() + x @ x + x.tanh()).sum().backward()
        grads.append(x.grad.numpy())
    assert_close(grads[0], grads[1], rtol=1e-5, atol=1e-6)
    x = pe.tensor(v, requires_grad=True)
    with pytest.raises(TypeError, match="mul"):
        x * "a"
    with pytest.raises(TypeError, match="matmul"):
        x @ 3


def _graph_of(t):
    """What a Function application leaves for backward: the node's edges, shapes, saved-version records and
    the Function's needs_input_grad (None without a node)."""
    node = t.grad_fn
    if node is None:
        return None

    def rec(r):
        return ("tensor", id(r)) if isinstance(r, pe.Tensor) else (r[1], id(r[2]), r[3], id(r[4]))
    edges = [e if e is None or isinstance(e, pe.Tensor) else (id(e[0]), e[1]) for e in node.edges]
    return (type(node.fn), [id(e) if isinstance(e, pe.Tensor) else e for e in edges], node.shapes, node.n_outputs,
            None if node.versions is None else [rec(r) for r in node.versions], node.fn.needs_input_grad)


def _ids(operands):
    """Object id -> its place among ``operands`` (the tensor, its producer, its array)."""
    ids = {}
    for k, o in enumerate(operands):
        if isinstance(o, pe.Tensor):
            ids.update({id(o): k, id(o._data): ("data", k)})
            if o.grad_fn is not None:
                ids[id(o.grad_fn)] = ("node", k)
    return ids


def _by_position(x, ids):
    """``x`` (from _graph_of) with the ids in it replaced by places among the operands, "other" for anything else
    (a temporary, a new node)."""
    if isinstance(x, (tuple, list)):
        return type(x)(_by_position(v, ids) for v in x)
    return ids.get(x, "other") if isinstance(x, int) and not isinstance(x, bool) and x > 1 << 20 else x


def test_operators_build_what_function_apply_builds():
    """The operators' two-operand apply (autograd.binary_apply) is Function.apply specialised: for every mix of
    Tensor and number operands, grad or not, dtypes (int * float promotes, float64, bfloat16), broadcasting,
    a view whose base was written in place, no_grad and inference_mode, the same values, dtype, graph and
    version records; and the same gradients and in-place checks afterwards."""
    from pyengine.ops import elementwise as E

    def operands():  # the same values at every call
        rng = np.random.default_rng(0)
        a = pe.tensor(rng.standard_normal((3, 1)).astype(np.float32), requires_grad=True)
        y = a * 2.0  # a non-leaf
        leaf = pe.tensor(rng.standard_normal((3, 5)).astype(np.float32), requires_grad=True)
        base = leaf * 1.0
        view = base[0]
        base.mul_(2.0)  # the view's grad_fn is stale until an op reads it
        return [a, y, view, leaf, pe.tensor(rng.standard_normal(5).astype(np.float32)),
                pe.tensor(rng.standard_normal((3, 5))), pe.tensor(np.arange(5)), pe.nn.Parameter(pe.ones(1)),
                pe.tensor(rng.standard_normal(5).astype(np.float32)).to(pe.bfloat16), 2.5, 3]

    for cls, fast in ((E.Add, E._add), (E.Sub, E._sub), (E.Mul, E._mul), (E.Div, E._div)):
        for mode in (None, pe.no_grad, pe.inference_mode):
            n = len(operands())
            for i in range(n):
                for j in range(n):
                    xs, ys = operands(), operands()
                    if not isinstance(xs[i], pe.Tensor) and not isinstance(xs[j], pe.Tensor):
                        continue
                    ids1, ids2 = _ids(xs), _ids(ys)  # before the ops (which refresh the view's grad_fn)
                    with mode() if mode else pe.enable_grad():
                        r1 = cls.apply(xs[i], xs[j])
                        r2 = fast(ys[i], ys[j])
                    if isinstance(ys[i], pe.Tensor) and ys[i].numel() > 1:  # errors as Function.apply's
                        with pytest.raises(ValueError, match=f"{cls.__name__.lower()}: shapes .* cannot be broadcast"):
                            fast(pe.ones(4, 7), ys[i])
                    where = f"{cls.__name__}({i}, {j}) {mode}"
                    assert r1.dtype == r2.dtype and r1.requires_grad == r2.requires_grad, where
                    np.testing.assert_array_equal(r1._data.astype(np.float32), r2._data.astype(np.float32),
                                                  err_msg=where)
                    g1, g2 = _graph_of(r1), _graph_of(r2)
                    if g1 is None or g2 is None:
                        assert g1 is g2, where
                        continue
                    assert g1[0] is g2[0] and _by_position(g1[1:], ids1) == _by_position(g2[1:], ids2), where
                    if r1.dtype.is_floating_point:
                        r1.sum().backward()
                        r2.sum().backward()
                        for p, q in zip(xs, ys):
                            if isinstance(p, pe.Tensor) and (p.grad is not None or q.grad is not None):
                                np.testing.assert_array_equal(p.grad._data.astype(np.float32),
                                                              q.grad._data.astype(np.float32), err_msg=where)
    x, w = pe.tensor([1.0, 2.0], requires_grad=True), pe.tensor([3.0, 4.0])
    y = x * w
    w.add_(1.0)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.sum().backward()
