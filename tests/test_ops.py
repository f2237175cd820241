"""Generated tests for every differentiable op, from one registry (PyTorch's OpInfo idea).

Each OpInfo declares the op (on pyengine tensors), an independent NumPy reference, how to draw
its inputs, and its domain. For every op hypothesis draws shapes with sizes 1, primes and
values around the SIMD widths, broadcasting pairs, and non-contiguous layouts, then checks:
  * forward == the NumPy reference (float32 with dtype-scaled tolerances, and float64);
  * the gradient == central finite differences in float64 (eps 1e-6);
  * inputs are not mutated.
"""
import math
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import pyengine as pe
import pyengine.nn.functional as F
from pyengine.testing import assert_close

SMALL_SIZES = (1, 2, 3, 5, 7, 8, 9, 16, 17)
EPS = 1e-6


# ---------------------------------------------------------------------- input generation


@st.composite
def shapes(draw, min_ndim=0, max_ndim=3, max_numel=48, sizes=SMALL_SIZES):
    ndim = draw(st.integers(min_ndim, max_ndim))
    shape = []
    for _ in range(ndim):
        rest = max_numel // max(1, int(np.prod(shape)) if shape else 1)
        choices = [s for s in sizes if s <= max(rest, 1)]
        shape.append(draw(st.sampled_from(choices)))
    return tuple(shape)


@st.composite
def broadcast_partner(draw, shape):
    """A shape that broadcasts with ``shape``: drop some leading dims, set some dims to 1."""
    drop = draw(st.integers(0, len(shape)))
    out = list(shape[drop:])
    for i in range(len(out)):
        if draw(st.booleans()) and draw(st.booleans()):
            out[i] = 1
    if draw(st.booleans()):
        return tuple(out)
    return tuple(shape) if draw(st.booleans()) else tuple(out)


def make_array(rng, shape, layout, low=-2.0, high=2.0, dtype=np.float64):
    """Random values in [low, high] with the requested memory layout (same logical shape)."""
    if layout == "transposed" and len(shape) >= 2:
        base = rng.uniform(low, high, tuple(reversed(shape))).astype(dtype)
        return base.T  # non-contiguous: reversed strides
    if layout == "strided" and len(shape) >= 1:
        big = list(shape)
        big[-1] *= 2
        base = rng.uniform(low, high, tuple(big)).astype(dtype)
        return base[..., ::2]  # non-contiguous: step 2 in the last dim
    return rng.uniform(low, high, shape).astype(dtype)


layouts = st.sampled_from(["contiguous", "transposed", "strided"])


# ---------------------------------------------------------------------- the registry


@dataclass
class OpInfo:
    name: str
    op: Callable  # (*tensors) -> tensor
    ref: Callable  # (*float64 arrays) -> array
    arity: int = 1
    domain: tuple = (-2.0, 2.0)
    broadcast: bool = False  # binary ops: draw broadcasting partners
    shape_fn: Optional[Callable] = None  # (draw) -> list of shapes (overrides the default)
    min_ndim: int = 0
    grad: bool = True
    rtol32: float = 1e-5
    atol32: float = 1e-5
    grad_rtol: float = 1e-5
    grad_atol: float = 1e-6
    avoid: Optional[Callable] = None  # arrays -> bool: reject inputs near kinks
    grad_argnums: Optional[tuple] = None  # inputs whose gradient is checked (None = all)
    extra: dict = field(default_factory=dict)


def _np_erf(x):
    return np.vectorize(math.erf)(x)


def _np_gelu(x):
    return 0.5 * x * (1 + _np_erf(x / math.sqrt(2)))


def _np_gelu_tanh(x):
    return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))


def _np_softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _near_zero(*arrs):
    return any(np.any(np.abs(a) < 1e-3) for a in arrs)


def _ties(a, axis=None):
    s = np.sort(a, axis=-1 if axis is None else axis) if a.size > 1 else a
    return a.size > 1 and np.any(np.abs(np.diff(s.reshape(-1) if axis is None else s, axis=-1)) < 1e-4)


def matmul_shapes(draw):
    """Every case the matmul op reduces to the backend's 2-D / 3-D / 4-D GEMM: 1-D promotion on either side,
    batches folded into rows, batches of 1 broadcast, broadcasts only a copy can express, empty batches."""
    kind = draw(st.sampled_from(["2d", "vec_mat", "mat_vec", "vec_vec", "batched", "broadcast", "fold",
                                 "fold_b1", "a_batch1", "vec_batched", "batched_vec", "both_broadcast",
                                 "lead_ones", "empty_batch", "empty_b_batch", "two_batch", "three_batch",
                                 "three_batch_bcast"]))
    m, k, n = (draw(st.sampled_from(SMALL_SIZES)) for _ in range(3))
    b = draw(st.sampled_from((1, 2, 3)))
    return {"2d": [(m, k), (k, n)], "vec_mat": [(k,), (k, n)], "mat_vec": [(m, k), (k,)],
            "vec_vec": [(k,), (k,)], "batched": [(b, m, k), (b, k, n)],
            "broadcast": [(b, 1, m, k), (2, k, n)], "fold": [(b, 2, m, k), (k, n)],
            "fold_b1": [(b, 3, m, k), (1, 1, k, n)], "a_batch1": [(1, m, k), (3, k, n)],
            "vec_batched": [(k,), (b, k, n)], "batched_vec": [(2, b, m, k), (k,)],
            "both_broadcast": [(2, 1, m, k), (1, 3, k, n)], "lead_ones": [(m, k), (1, 1, k, n)],
            "empty_batch": [(0, m, k), (k, n)], "empty_b_batch": [(m, k), (0, k, n)],
            "two_batch": [(2, b, m, k), (2, b, k, n)], "three_batch": [(2, b, 3, m, k), (2, b, 3, k, n)],
            "three_batch_bcast": [(2, 1, 3, m, k), (1, b, 1, k, n)]}[kind]


def reduce_shapes(draw):
    return [draw(shapes(min_ndim=1))]


def cat_shapes(draw):
    base = list(draw(shapes(min_ndim=1, max_ndim=3, max_numel=24)))
    d = draw(st.integers(0, len(base) - 1))
    out = []
    for _ in range(draw(st.integers(1, 3))):
        s = list(base)
        s[d] = draw(st.sampled_from((1, 2, 3)))
        out.append(tuple(s))
    return out, d


OPS = [
    # binary arithmetic with broadcasting
    OpInfo("add", lambda a, b: a + b, np.add, 2, broadcast=True),
    OpInfo("sub", lambda a, b: a - b, np.subtract, 2, broadcast=True),
    OpInfo("mul", lambda a, b: a * b, np.multiply, 2, broadcast=True),
    OpInfo("div", lambda a, b: a / b, np.divide, 2, broadcast=True, domain=(0.5, 2.0)),
    OpInfo("pow", lambda a, b: a ** b, np.power, 2, broadcast=True, domain=(0.5, 2.0), grad_rtol=1e-4),
    OpInfo("pow_scalar", lambda a: a ** 3, lambda a: a ** 3),
    OpInfo("rsub_scalar", lambda a: 2.5 - a, lambda a: 2.5 - a),
    OpInfo("rdiv_scalar", lambda a: 1.5 / a, lambda a: 1.5 / a, domain=(0.5, 2.0)),
    OpInfo("maximum", pe.maximum, np.maximum, 2, broadcast=True,
           avoid=lambda a, b: np.any(np.abs(a - b) < 1e-3)),
    OpInfo("minimum", pe.minimum, np.minimum, 2, broadcast=True,
           avoid=lambda a, b: np.any(np.abs(a - b) < 1e-3)),
    OpInfo("matmul", lambda a, b: a @ b, np.matmul, 2, shape_fn=matmul_shapes, rtol32=1e-4, atol32=1e-5),
    # unary math
    OpInfo("neg", lambda a: -a, np.negative),
    OpInfo("exp", pe.exp, np.exp),
    OpInfo("log", pe.log, np.log, domain=(0.1, 3.0)),
    OpInfo("sqrt", pe.sqrt, np.sqrt, domain=(0.1, 3.0)),
    OpInfo("rsqrt", pe.rsqrt, lambda a: 1 / np.sqrt(a), domain=(0.1, 3.0)),
    OpInfo("abs", pe.abs, np.abs, avoid=_near_zero),
    OpInfo("sin", pe.sin, np.sin),
    OpInfo("cos", pe.cos, np.cos),
    OpInfo("tanh", pe.tanh, np.tanh),
    OpInfo("sigmoid", pe.sigmoid, lambda a: 1 / (1 + np.exp(-a))),
    OpInfo("silu", pe.silu, lambda a: a / (1 + np.exp(-a))),
    OpInfo("relu", pe.relu, lambda a: np.maximum(a, 0), avoid=_near_zero),
    OpInfo("gelu", pe.gelu, _np_gelu, rtol32=1e-5, atol32=2e-6),
    OpInfo("gelu_tanh", lambda a: F.gelu(a, approximate="tanh"), _np_gelu_tanh, atol32=2e-6),
    OpInfo("clamp", lambda a: pe.clamp(a, -0.5, 0.7), lambda a: np.clip(a, -0.5, 0.7),
           avoid=lambda a: np.any(np.abs(a + 0.5) < 1e-3) or np.any(np.abs(a - 0.7) < 1e-3)),
    OpInfo("leaky_relu", lambda a: F.leaky_relu(a, 0.1), lambda a: np.where(a > 0, a, 0.1 * a), avoid=_near_zero),
    # reductions
    OpInfo("sum", lambda a: a.sum(), np.sum),
    OpInfo("sum_dim", lambda a: a.sum(dim=-1), lambda a: a.sum(axis=-1), shape_fn=reduce_shapes),
    OpInfo("sum_dims_keepdim", lambda a: a.sum(dim=(0, -1), keepdim=True),
           lambda a: a.sum(axis=(0, -1), keepdims=True) if a.ndim > 1 else a.sum(axis=0, keepdims=True),
           shape_fn=reduce_shapes),
    OpInfo("mean", lambda a: a.mean(), np.mean),
    OpInfo("mean_dim", lambda a: a.mean(dim=0, keepdim=True), lambda a: a.mean(axis=0, keepdims=True),
           shape_fn=reduce_shapes),
    OpInfo("var", lambda a: a.var(dim=-1), lambda a: a.var(axis=-1, ddof=1),
           shape_fn=lambda d: [(d(st.sampled_from((2, 3, 5))), d(st.sampled_from((2, 7, 9))))]),
    OpInfo("std_biased", lambda a: a.std(dim=0, unbiased=False), lambda a: a.std(axis=0),
           shape_fn=lambda d: [(d(st.sampled_from((2, 3, 8))), d(st.sampled_from((1, 3, 5))))]),
    OpInfo("max", lambda a: a.max(), np.max, avoid=_ties),
    OpInfo("min_dim", lambda a: a.min(dim=-1).values, lambda a: a.min(axis=-1), shape_fn=reduce_shapes,
           avoid=lambda a: _ties(a, -1)),
    OpInfo("max_dim_keepdim", lambda a: a.max(dim=0, keepdim=True)[0], lambda a: a.max(axis=0, keepdims=True),
           shape_fn=reduce_shapes, avoid=lambda a: _ties(a, 0)),
    OpInfo("amax", lambda a: pe.amax(a, dim=-1), lambda a: a.max(axis=-1), shape_fn=reduce_shapes,
           avoid=lambda a: _ties(a, -1)),
    OpInfo("logsumexp", lambda a: pe.logsumexp(a, dim=-1), lambda a: np.log(np.exp(a).sum(axis=-1)),
           shape_fn=reduce_shapes),
    OpInfo("softmax", lambda a: a.softmax(-1), lambda a: _np_softmax(a, -1), shape_fn=reduce_shapes),
    OpInfo("softmax_dim0", lambda a: pe.softmax(a, 0), lambda a: _np_softmax(a, 0), shape_fn=reduce_shapes),
    OpInfo("log_softmax", lambda a: a.log_softmax(-1), lambda a: np.log(_np_softmax(a, -1)), shape_fn=reduce_shapes),
    OpInfo("topk", lambda a: a.topk(1, dim=-1).values, lambda a: np.sort(a, axis=-1)[..., ::-1][..., :1],
           shape_fn=reduce_shapes, avoid=lambda a: _ties(a, -1)),
    # shape ops
    OpInfo("reshape", lambda a: a.reshape(-1), lambda a: a.reshape(-1)),
    OpInfo("transpose", lambda a: a.transpose(0, -1), lambda a: np.swapaxes(a, 0, -1), min_ndim=1),
    OpInfo("permute", lambda a: a.permute(*reversed(range(a.ndim))), lambda a: a.transpose()),
    OpInfo("T", lambda a: a.T, lambda a: a.T),
    OpInfo("unsqueeze_squeeze", lambda a: a.unsqueeze(0).unsqueeze(-1).squeeze(0), lambda a: a[..., None]),
    OpInfo("expand", lambda a: a.unsqueeze(0).expand(3, *a.shape), lambda a: np.broadcast_to(a, (3,) + a.shape)),
    OpInfo("flatten", lambda a: a.flatten(), lambda a: a.reshape(-1)),
    OpInfo("contiguous", lambda a: a.contiguous(), lambda a: np.array(a, order="C")),
    OpInfo("getitem_slice", lambda a: a[::2, 1:], lambda a: a[::2, 1:], min_ndim=2),
    OpInfo("getitem_int_none_ellipsis", lambda a: a[0, None, ...], lambda a: a[0, None, ...], min_ndim=1),
    OpInfo("getitem_repeated_index", lambda a: a[pe.tensor([0, 0, a.shape[0] - 1, 0])],
           lambda a: a[np.array([0, 0, a.shape[0] - 1, 0])], min_ndim=1),
    OpInfo("getitem_bool_mask", lambda a: a[a > 0.3], lambda a: a[a > 0.3],
           avoid=lambda a: np.any(np.abs(a - 0.3) < 1e-3)),
    OpInfo("masked_fill", lambda a: a.masked_fill(a > 0.5, -1.0), lambda a: np.where(a > 0.5, -1.0, a),
           avoid=lambda a: np.any(np.abs(a - 0.5) < 1e-3)),
    OpInfo("where", lambda a, b: pe.where(a > b, a, b * 2), lambda a, b: np.where(a > b, a, b * 2), 2,
           broadcast=True, avoid=lambda a, b: np.any(np.abs(a - b) < 1e-3)),
    OpInfo("tril", lambda a: a.tril(), np.tril, min_ndim=2),
    OpInfo("triu_1", lambda a: pe.triu(a, 1), lambda a: np.triu(a, 1), min_ndim=2),
    OpInfo("split", lambda a: a.split(2, dim=0)[-1] * 2, lambda a: np.split(a, range(2, a.shape[0], 2))[-1] * 2,
           min_ndim=1),
    OpInfo("chunk", lambda a: pe.cat(a.chunk(2, -1)[::-1], -1),
           lambda a: np.concatenate(np.array_split(a, -(-a.shape[-1] // max(1, -(-a.shape[-1] // 2))), -1)[::-1], -1),
           min_ndim=1),
    OpInfo("gather", lambda a: a.gather(-1, pe.tensor(np.zeros(a.shape[:-1] + (2,), np.int64) + a.shape[-1] - 1)),
           lambda a: np.repeat(a[..., -1:], 2, axis=-1), min_ndim=1),
]


def _draw_shapes(draw, info):
    if info.shape_fn is not None:
        return list(info.shape_fn(draw))
    s = draw(shapes(min_ndim=info.min_ndim))
    if info.arity == 1:
        return [s]
    other = draw(broadcast_partner(s)) if info.broadcast else s
    return [s, other] if draw(st.booleans()) else [other, s]


@st.composite
def op_case(draw, info):
    shapes_ = _draw_shapes(draw, info)
    seed = draw(st.integers(0, 2 ** 31 - 1))
    lays = [draw(layouts) for _ in shapes_]
    return shapes_, lays, seed


def _inputs(info, shapes_, lays, seed, dtype):
    rng = np.random.default_rng(seed)
    lo, hi = info.domain
    return [make_array(rng, s, lay, lo, hi, dtype) for s, lay in zip(shapes_, lays)]


def _call(info, arrays, requires_grad=False):
    ts = [pe.tensor(a, requires_grad=requires_grad) if not requires_grad else pe.from_numpy(a).requires_grad_()
          for a in arrays]
    return ts, info.op(*ts)


def numerical_grad(f, arrays, i, g):
    """Central differences of sum(f(arrays) * g) w.r.t. arrays[i] (float64)."""
    x = arrays[i]
    grad = np.zeros(x.shape)
    if x.size == 0:
        return grad
    it = np.nditer(x, flags=["multi_index"])
    for _ in it:
        idx = it.multi_index
        orig = x[idx]
        x[idx] = orig + EPS
        fp = np.sum(f(arrays) * g)
        x[idx] = orig - EPS
        fm = np.sum(f(arrays) * g)
        x[idx] = orig
        grad[idx] = (fp - fm) / (2 * EPS)
    return grad


@pytest.mark.parametrize("info", OPS, ids=[o.name for o in OPS])
@given(data=st.data())
def test_op_forward(info, data):
    shapes_, lays, seed = data.draw(op_case(info))
    for dtype in (np.float32, np.float64):
        arrays = _inputs(info, shapes_, lays, seed, dtype)
        if info.avoid is not None and info.avoid(*[a.astype(np.float64) for a in arrays]):
            return
        before = [a.copy() for a in arrays]
        _, out = _call(info, arrays)
        expected = info.ref(*[a.astype(np.float64) for a in arrays])
        assert out.dtype.np_dtype == dtype, f"{info.name}: output dtype {out.dtype} for {dtype} inputs"
        rtol, atol = (info.rtol32, info.atol32) if dtype == np.float32 else (1e-10, 1e-12)
        assert_close(out.numpy(), np.asarray(expected), rtol=rtol, atol=atol, msg=f"{info.name} {shapes_} {lays}: ")
        for a, b in zip(arrays, before):
            np.testing.assert_array_equal(a, b, err_msg=f"{info.name} mutated its input")


@pytest.mark.parametrize("info", [o for o in OPS if o.grad], ids=[o.name for o in OPS if o.grad])
@given(data=st.data())
def test_op_grad(info, data):
    shapes_, lays, seed = data.draw(op_case(info))
    arrays = _inputs(info, shapes_, lays, seed, np.float64)
    if info.avoid is not None and info.avoid(*arrays):
        return
    ts, out = _call(info, [a.copy() for a in arrays], requires_grad=True)
    g = np.random.default_rng(seed + 1).uniform(-1, 1, tuple(out.shape))
    out.backward(pe.tensor(g, dtype=pe.float64))

    def f(arrs):
        return info.op(*[pe.tensor(a) for a in arrs]).numpy()

    work = [a.copy() for a in arrays]
    for i, t in enumerate(ts):
        if info.grad_argnums is not None and i not in info.grad_argnums:
            continue
        num = numerical_grad(f, work, i, g)
        assert t.grad is not None, f"{info.name}: no gradient reached input {i}"
        assert t.grad.shape == t.shape
        assert_close(t.grad.numpy(), num, rtol=info.grad_rtol, atol=info.grad_atol,
                     msg=f"{info.name} d/dinput{i} {shapes_} {lays}: ")


# ---------------------------------------------------------------------- ops with special signatures


@given(data=st.data())
def test_cat_stack_grad(data):
    shapes_, d = data.draw(st.composite(lambda draw: cat_shapes(draw))())
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal(s) for s in shapes_]
    ts = [pe.tensor(a, dtype=pe.float64, requires_grad=True) for a in arrays]
    out = pe.cat(ts, dim=d)
    assert_close(out.detach().numpy(), np.concatenate(arrays, axis=d))
    g = rng.standard_normal(out.shape)
    out.backward(pe.tensor(g))
    splits = np.split(g, np.cumsum([s[d] for s in shapes_])[:-1], axis=d)
    for t, e in zip(ts, splits):
        assert_close(t.grad.numpy(), e)
    same = [pe.tensor(rng.standard_normal(shapes_[0]), requires_grad=True) for _ in range(3)]
    s = pe.stack(same, dim=-1)
    assert tuple(s.shape) == tuple(shapes_[0]) + (3,)
    (s * pe.arange(3).float()).sum().backward()
    for i, t in enumerate(same):
        assert_close(t.grad.numpy(), np.full(shapes_[0], float(i)))


# ---------------------------------------------------------------------- nn.functional ops in the same registry


def _targets(n, c, seed=0, ignore=None):
    t = np.random.default_rng(seed + n * 31 + c).integers(0, c, n)
    if ignore is not None and n > 1:
        t[::3] = ignore
    return t


def _np_ce(x, t, ignore_index=-100, ls=0.0, reduction="mean"):
    lse = np.log(np.exp(x - x.max(1, keepdims=True)).sum(1)) + x.max(1)
    valid = t != ignore_index
    tt = np.where(valid, t, 0)
    loss = lse - (1 - ls) * x[np.arange(len(t)), tt] - ls / x.shape[1] * x.sum(1)
    loss = np.where(valid, loss, 0)
    return {"none": loss, "sum": loss.sum(), "mean": loss.sum() / valid.sum()}[reduction]


def _np_layer_norm(x, w, b, eps=1e-5):
    mu = x.mean(-1, keepdims=True)
    var = x.var(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def _np_sdpa(q, k, v, causal=False, mask=None):
    s = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])
    if causal:
        s = np.where(np.tril(np.ones(s.shape[-2:], bool)), s, -np.inf)
    if mask is not None:
        s = np.where(mask, s, -np.inf)
    return _np_softmax(s, -1) @ v


def _rows_cols(draw):
    return [(draw(st.sampled_from((1, 2, 3, 5, 8))), draw(st.sampled_from((1, 2, 3, 7, 16, 17))))]


def _attn_shapes(draw):
    b, h = draw(st.sampled_from((1, 2))), draw(st.sampled_from((1, 3)))
    t, s, d = (draw(st.sampled_from((1, 2, 5, 9))) for _ in range(3))
    return [(b, h, t, d), (b, h, s, d), (b, h, s, draw(st.sampled_from((1, 4))))]


def _self_attn_shapes(draw):
    b, t, d = draw(st.sampled_from((1, 2))), draw(st.sampled_from((1, 3, 9, 17))), draw(st.sampled_from((1, 4, 8)))
    return [(b, 2, t, d)] * 3


_MASK = np.random.default_rng(5).random((17, 17)) > 0.3
np.fill_diagonal(_MASK, True)

OPS_NN = [
    OpInfo("linear", F.linear, lambda x, w, b: x @ w.T + b, 3,
           shape_fn=lambda d: (lambda n, i, o: [(n, i), (o, i), (o,)])(*(d(st.sampled_from((1, 2, 3, 5, 8, 17)))
                                                                        for _ in range(3))), rtol32=1e-4),
    OpInfo("linear_3d", F.linear, lambda x, w, b: x @ w.T + b, 3,
           shape_fn=lambda d: [(2, 3, 5), (4, 5), (4,)], rtol32=1e-4),
    OpInfo("cross_entropy", lambda x: F.cross_entropy(x, pe.tensor(_targets(*x.shape))),
           lambda x: _np_ce(x, _targets(*x.shape)), shape_fn=_rows_cols),
    OpInfo("cross_entropy_ignore_smooth_sum",
           lambda x: F.cross_entropy(x, pe.tensor(_targets(*x.shape, ignore=-1)), ignore_index=-1,
                                     label_smoothing=0.1, reduction="sum"),
           lambda x: _np_ce(x, _targets(*x.shape, ignore=-1), -1, 0.1, "sum"), shape_fn=_rows_cols),
    OpInfo("cross_entropy_none", lambda x: F.cross_entropy(x, pe.tensor(_targets(*x.shape)), reduction="none"),
           lambda x: _np_ce(x, _targets(*x.shape), reduction="none"), shape_fn=_rows_cols),
    OpInfo("nll_loss", lambda x: F.nll_loss(x, pe.tensor(_targets(*x.shape))),
           lambda x: -x[np.arange(x.shape[0]), _targets(*x.shape)].mean(), shape_fn=_rows_cols),
    OpInfo("mse_loss", F.mse_loss, lambda a, b: np.mean((a - b) ** 2), 2),
    OpInfo("mse_loss_sum_broadcast", lambda a, b: F.mse_loss(a, b, reduction="sum"),
           lambda a, b: np.sum((a - b) ** 2), 2, broadcast=True),
    OpInfo("binary_cross_entropy", F.binary_cross_entropy,
           lambda p, y: np.mean(-(y * np.log(p) + (1 - y) * np.log(1 - p))), 2, domain=(0.05, 0.95),
           grad_argnums=(0,)),
    OpInfo("bce_with_logits", F.binary_cross_entropy_with_logits,
           lambda x, y: np.mean(np.maximum(x, 0) - x * y + np.log1p(np.exp(-np.abs(x)))), 2, grad_argnums=(0,)),
    OpInfo("bce_with_logits_pos_weight",
           lambda x, y: F.binary_cross_entropy_with_logits(x, y, pos_weight=pe.tensor(2.0, dtype=x.dtype)),
           lambda x, y: np.mean(-(2 * y * np.log(1 / (1 + np.exp(-x))) + (1 - y) * np.log(1 - 1 / (1 + np.exp(-x))))),
           2, domain=(-1.5, 1.5), grad_argnums=(0,)),
    OpInfo("layer_norm", lambda x, w, b: F.layer_norm(x, (x.shape[-1],), w, b),
           _np_layer_norm, 3, shape_fn=lambda d: (lambda n, c: [(n, c), (c,), (c,)])(
               d(st.sampled_from((1, 2, 5))), d(st.sampled_from((2, 3, 8, 17, 33)))), rtol32=1e-4, atol32=1e-4,
           grad_rtol=1e-4, grad_atol=1e-5),
    OpInfo("embedding", lambda w: F.embedding(pe.tensor([[0, 2, 0], [1, 1, w.shape[0] - 1]]), w),
           lambda w: w[np.array([[0, 2, 0], [1, 1, w.shape[0] - 1]])],
           shape_fn=lambda d: [(d(st.sampled_from((3, 5, 9))), d(st.sampled_from((1, 4, 17))))]),
    OpInfo("sdpa", F.scaled_dot_product_attention, _np_sdpa, 3, shape_fn=_attn_shapes, rtol32=1e-4, atol32=1e-5),
    OpInfo("sdpa_causal", lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True),
           lambda q, k, v: _np_sdpa(q, k, v, causal=True), 3, shape_fn=_self_attn_shapes, rtol32=1e-4, atol32=1e-5),
    OpInfo("sdpa_bool_mask",
           lambda q, k, v: F.scaled_dot_product_attention(q, k, v, attn_mask=pe.tensor(_MASK[:q.shape[-2], :k.shape[-2]])),
           lambda q, k, v: _np_sdpa(q, k, v, mask=_MASK[:q.shape[-2], :k.shape[-2]]), 3, shape_fn=_self_attn_shapes,
           rtol32=1e-4, atol32=1e-5),
]


@pytest.mark.parametrize("info", OPS_NN, ids=[o.name for o in OPS_NN])
@given(data=st.data())
def test_nn_op_forward(info, data):
    test_op_forward.hypothesis.inner_test(info, data)


@pytest.mark.parametrize("info", OPS_NN, ids=[o.name for o in OPS_NN])
@given(data=st.data())
def test_nn_op_grad(info, data):
    test_op_grad.hypothesis.inner_test(info, data)
