"""Ops breadth with PyTorch semantics (issue 13 item 2): every op added there, forward and gradient against
PyTorch on random float64 data with odd shapes (1, primes), negative dims, non-contiguous inputs
(transposed and strided views) and broadcasting; then the in-place forms, the nn modules, and the errors
(each names the op and the shapes).

A case is ``lambda m, *tensors: ...`` run once with m = pyengine and once with m = torch on the same
values; every float input requires grad, and a random upstream gradient is sent back through every float
output. The values, the integer outputs (indices) and every input's gradient must agree.
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pyengine as pe

torch = pytest.importorskip("torch")

RNG = np.random.default_rng(20261206)


def arr(*shape, layout="c", low=-2.0, high=2.0, dtype=np.float64):
    """Random values of ``shape``: "c" contiguous, "t" a transposed view (last two dims), "s" every other
    element of a wider buffer (a strided view)."""
    if layout == "t" and len(shape) >= 2:
        base = RNG.uniform(low, high, shape[:-2] + (shape[-1], shape[-2])).astype(dtype)
        return np.swapaxes(base, -1, -2)
    if layout == "s" and len(shape) >= 1:
        base = RNG.uniform(low, high, shape[:-1] + (2 * shape[-1],)).astype(dtype)
        return base[..., ::2]
    return RNG.uniform(low, high, shape).astype(dtype)


def pos(*shape, layout="c"):
    return arr(*shape, layout=layout, low=0.2, high=2.0)


def _leaf(m, a):
    if isinstance(a, np.ndarray):
        t = m.from_numpy(a)  # keeps the strides: a non-contiguous input stays one
        if a.dtype.kind == "f":
            t.requires_grad_(True)
        return t
    return a


def _outputs(r):
    if isinstance(r, (tuple, list)):
        return [o for x in r for o in _outputs(x)]
    return [r]


def _np(t):
    if isinstance(t, (pe.Tensor, torch.Tensor)):
        return np.asarray(t.detach().numpy())
    return np.asarray(t)


def run(m, fn, arrays, seed):
    ins = [_leaf(m, a) for a in arrays]
    out = _outputs(fn(m, *ins))
    floats = [o for o in out if isinstance(o, (pe.Tensor, torch.Tensor)) and o.requires_grad]
    if floats:
        g = np.random.default_rng(seed)
        total = None
        for o in floats:
            up = g.standard_normal(tuple(o.shape))
            term = (o * m.from_numpy(np.asarray(up, dtype=_np(o).dtype))).sum()
            total = term if total is None else total + term
        total.backward()
    grads = [None if not isinstance(t, (pe.Tensor, torch.Tensor)) or t.grad is None else _np(t.grad)
             for t in ins]
    return [_np(o) for o in out], [o.requires_grad for o in out if hasattr(o, "requires_grad")], grads


def check(fn, *arrays, rtol=1e-7, atol=1e-9, grad=True):
    """fn on pyengine and on torch: the same values, the same requires_grad, the same input gradients."""
    seed = int(RNG.integers(1 << 30))
    ours = run(pe, fn, arrays, seed)
    theirs = run(torch, fn, arrays, seed)
    assert len(ours[0]) == len(theirs[0])
    for a, b in zip(ours[0], theirs[0]):
        assert a.shape == b.shape, (a.shape, b.shape)
        if a.dtype.kind in "iub":
            np.testing.assert_array_equal(a, b)
        else:
            np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)
    assert ours[1] == theirs[1], ("requires_grad differs", ours[1], theirs[1])
    if grad:
        for i, (a, b) in enumerate(zip(ours[2], theirs[2])):
            assert (a is None) == (b is None), (i, a, b)
            if a is not None:
                np.testing.assert_allclose(a, b, rtol=max(rtol, 1e-6), atol=max(atol, 1e-8), err_msg=f"grad {i}")


def idx(*values):
    return np.array(values, np.int64)


# ---------------------------------------------------------------------- cases: name -> (fn, arrays)

CASES = {
    # pointwise math
    "log1p": (lambda m, x: m.log1p(x), [pos(3, 5, layout="t")]),
    "expm1": (lambda m, x: m.expm1(x), [arr(7, 1)]),
    "log2": (lambda m, x: m.log2(x), [pos(2, 3, layout="s")]),
    "log10": (lambda m, x: m.log10(x), [pos(5)]),
    "rsqrt": (lambda m, x: m.rsqrt(x), [pos(3, 2)]),
    "reciprocal": (lambda m, x: m.reciprocal(x), [pos(3, 7, layout="t")]),
    "sign": (lambda m, x: m.sign(x), [arr(3, 5)]),
    "trunc": (lambda m, x: m.trunc(x * 3), [arr(3, 5)]),
    "floor": (lambda m, x: m.floor(x * 3), [arr(3, 5)]),
    "round": (lambda m, x: m.round(x * 3), [arr(2, 3)]),
    "frac": (lambda m, x: m.frac(x * 3), [arr(3, 5, layout="s")]),
    "lerp scalar": (lambda m, a, b: m.lerp(a, b, 0.3), [arr(3, 1), arr(4)]),
    "lerp tensor": (lambda m, a, b, w: m.lerp(a, b, w), [arr(2, 3), arr(3), arr(2, 1)]),
    "hypot": (lambda m, a, b: m.hypot(a, b), [arr(3, 1, layout="t"), arr(5)]),
    "atan2": (lambda m, a, b: m.atan2(a, b), [arr(2, 5), arr(5, layout="s")]),
    "logaddexp": (lambda m, a, b: m.logaddexp(a, b), [arr(3, 4), arr(1, 4)]),
    "remainder": (lambda m, a, b: m.remainder(a * 3, b), [arr(3, 4), pos(4)]),
    "fmod": (lambda m, a, b: m.fmod(a * 3, b), [arr(3, 4, layout="t"), pos(3, 1)]),
    "% operator": (lambda m, a: a * 3 % 1.5, [arr(2, 5)]),
    "div floor": (lambda m, a, b: m.div(a, b, rounding_mode="floor"), [arr(2, 3), pos(3)]),
    "div trunc": (lambda m, a, b: m.div(a, b, rounding_mode="trunc"), [arr(2, 3), pos(3)]),
    "logsumexp neg dim": (lambda m, x: m.logsumexp(x, -2, keepdim=True), [arr(3, 5, 2, layout="t")]),
    "clamp_min": (lambda m, x: m.clamp_min(x, -0.5), [arr(3, 7)]),
    "clamp_max": (lambda m, x: m.clamp_max(x, 0.25), [arr(3, 7, layout="t")]),
    "nan_to_num": (lambda m, x: m.nan_to_num(x / m.tensor([0.0, 1.0, -0.0], dtype=m.float64), posinf=5.0,
                                             neginf=-7.0), [arr(2, 3)]),
    # activations
    **{f"F.{n}": (lambda m, x, n=n: getattr(m.nn.functional, n)(x), [arr(3, 5, layout="t", low=-5, high=5)])
       for n in ("softplus", "elu", "selu", "celu", "leaky_relu", "hardtanh", "relu6", "hardswish", "hardsigmoid",
                 "silu", "mish", "softsign", "tanhshrink", "logsigmoid")},
    "F.softplus beta": (lambda m, x: m.nn.functional.softplus(x, beta=2.0, threshold=3.0), [arr(4, 6, low=-4, high=4)]),
    "F.elu alpha": (lambda m, x: m.nn.functional.elu(x, alpha=0.7), [arr(5)]),
    "F.celu alpha": (lambda m, x: m.nn.functional.celu(x, alpha=1.7), [arr(5)]),
    "F.hardtanh range": (lambda m, x: m.nn.functional.hardtanh(x, -0.5, 1.5), [arr(7)]),
    "F.glu": (lambda m, x: m.nn.functional.glu(x, -2), [arr(4, 3, layout="t")]),
    # shape
    "narrow": (lambda m, x: m.narrow(x, -1, 1, 3), [arr(2, 5, layout="t")]),
    "narrow negative start": (lambda m, x: x.narrow(0, -2, 2), [arr(5, 3)]),
    "roll": (lambda m, x: m.roll(x, (1, -2), (0, -1)), [arr(3, 5, layout="s")]),
    "roll flat": (lambda m, x: m.roll(x, 4), [arr(3, 5)]),
    "flip": (lambda m, x: m.flip(x, (0, -1)), [arr(3, 2, 5)]),
    "repeat": (lambda m, x: x.repeat(2, 1, 3), [arr(3, 2, layout="t")]),
    "tile": (lambda m, x: m.tile(x, (2,)), [arr(3, 2)]),
    "repeat_interleave int": (lambda m, x: m.repeat_interleave(x, 3, dim=-1), [arr(2, 3)]),
    "repeat_interleave tensor": (lambda m, x: m.repeat_interleave(x, m.tensor([2, 0, 1]), dim=0),
                                 [arr(3, 2, layout="t")]),
    "repeat_interleave flat": (lambda m, x: x.repeat_interleave(2), [arr(2, 3)]),
    "unfold": (lambda m, x: x.unfold(-1, 3, 2), [arr(2, 7, layout="t")]),
    "unfold overlapping": (lambda m, x: x.unfold(0, 3, 1), [arr(5, 2)]),
    "meshgrid ij": (lambda m, a, b: m.meshgrid(a, b, indexing="ij"), [arr(3), arr(5)]),
    "meshgrid xy": (lambda m, a, b, c: m.meshgrid(a, b, c, indexing="xy"), [arr(3), arr(2), arr(4)]),
    "diff": (lambda m, x: m.diff(x, dim=-1), [arr(3, 5, layout="t")]),
    "diff n=2 prepend": (lambda m, x, p: m.diff(x, n=2, dim=0, prepend=p), [arr(4, 3), arr(1, 3)]),
    "diag vector": (lambda m, x: m.diag(x, 1), [arr(3)]),
    "diag matrix": (lambda m, x: m.diag(x, -1), [arr(4, 3, layout="t")]),
    "diagonal": (lambda m, x: m.diagonal(x, 1, -1, 0), [arr(3, 2, 4)]),
    "triu": (lambda m, x: m.triu(x, 1), [arr(3, 4)]),
    "tril": (lambda m, x: m.tril(x, -1), [arr(2, 3, 4, layout="t")]),
    "trace": (lambda m, x: m.trace(x), [arr(3, 5)]),
    "kron": (lambda m, a, b: m.kron(a, b), [arr(2, 3), arr(3, 1)]),
    "movedim": (lambda m, x: m.movedim(x, (0, -1), (-1, 1)), [arr(2, 3, 5)]),
    # scans, order statistics
    "cumsum": (lambda m, x: m.cumsum(x, -1), [arr(3, 5, layout="t")]),
    "cumsum dtype": (lambda m, x: m.cumsum(x.float(), 0, dtype=m.float64), [arr(4, 2)]),
    "cumprod": (lambda m, x: m.cumprod(x, 0), [arr(5, 3, layout="s")]),
    "cumprod with zeros": (lambda m, x: m.cumprod(x * m.tensor([1.0, 0.0, 1.0, 0.0, 1.0], dtype=m.float64), -1),
                           [arr(2, 5)]),
    "prod": (lambda m, x: m.prod(x, 1), [arr(3, 5)]),
    "prod all with a zero": (lambda m, x: (x * m.tensor([1.0, 0.0, 2.0], dtype=m.float64)).prod(), [arr(2, 3)]),
    "median": (lambda m, x: m.median(x), [arr(3, 5)]),
    "median dim": (lambda m, x: m.median(x, -1, keepdim=True), [arr(3, 6, layout="t")]),
    "kthvalue": (lambda m, x: m.kthvalue(x, 2, 0), [arr(5, 3)]),
    "mode": (lambda m, x: m.mode(m.round(x * 1.5), -1), [arr(3, 9)]),
    "mode dim 0": (lambda m, x: m.mode(m.round(x), 0, keepdim=True), [arr(7, 3, layout="t")]),
    "std correction": (lambda m, x: m.std(x, -1, correction=2), [arr(3, 5, layout="t")]),
    "var correction 0": (lambda m, x: x.var(0, correction=0, keepdim=True), [arr(4, 3)]),
    "topk": (lambda m, x: m.topk(x, 2, -1), [arr(3, 5, layout="s")]),
    "sort": (lambda m, x: m.sort(x, 0, descending=True), [arr(5, 3)]),
    "argsort": (lambda m, x: m.argsort(x, -1), [arr(3, 5)]),
    # products
    "einsum matmul": (lambda m, a, b: m.einsum("ij,jk->ik", a, b), [arr(2, 3, layout="t"), arr(3, 5)]),
    "einsum implicit": (lambda m, a, b: m.einsum("bij,bjk", a, b), [arr(2, 3, 4), arr(2, 4, 5)]),
    "einsum ellipsis broadcast": (lambda m, a, b: m.einsum("...ij,...jk->...ik", a, b),
                                  [arr(2, 1, 3, 4), arr(5, 4, 2)]),
    "einsum diagonal": (lambda m, a: m.einsum("ii->i", a), [arr(3, 3, layout="t")]),
    "einsum trace": (lambda m, a: m.einsum("ii", a), [arr(4, 4)]),
    "einsum three": (lambda m, a, b, c: m.einsum("ab,bc,cd->da", a, b, c), [arr(2, 3), arr(3, 4), arr(4, 5)]),
    "einsum outer sum": (lambda m, a, b: m.einsum("ij,kl->", a, b), [arr(2, 3), arr(1, 5)]),
    "einsum list": (lambda m, a, b: m.einsum("i,i", [a, b]), [arr(5), arr(5, layout="s")]),
    "addmm": (lambda m, i, a, b: m.addmm(i, a, b, beta=0.5, alpha=2.0), [arr(3), arr(2, 4, layout="t"), arr(4, 3)]),
    "baddbmm": (lambda m, i, a, b: m.baddbmm(i, a, b), [arr(2, 3, 5), arr(2, 3, 4), arr(2, 4, 5)]),
    "addbmm": (lambda m, i, a, b: m.addbmm(i, a, b, alpha=-1.0), [arr(3, 1), arr(2, 3, 4), arr(2, 4, 5)]),
    "addmv": (lambda m, i, a, v: m.addmv(i, a, v, beta=2.0), [arr(3), arr(3, 4), arr(4)]),
    "bmm": (lambda m, a, b: m.bmm(a, b), [arr(2, 3, 4, layout="t"), arr(2, 4, 1)]),
    "mm": (lambda m, a, b: m.mm(a, b), [arr(3, 4), arr(4, 5, layout="s")]),
    "mv": (lambda m, a, v: m.mv(a, v), [arr(3, 4, layout="t"), arr(4)]),
    "outer": (lambda m, a, b: m.outer(a, b), [arr(3), arr(5, layout="s")]),
    "ger": (lambda m, a, b: m.ger(a, b), [arr(2), arr(3)]),
    "inner": (lambda m, a, b: m.inner(a, b), [arr(2, 3), arr(4, 3)]),
    "dot": (lambda m, a, b: m.dot(a, b), [arr(5), arr(5, layout="s")]),
    "cross": (lambda m, a, b: m.cross(a, b, dim=-1), [arr(2, 3), arr(1, 3)]),
    "linalg.cross": (lambda m, a, b: m.linalg.cross(a, b), [arr(4, 3, layout="t"), arr(4, 3)]),
    # norms and distances
    "linalg.vector_norm": (lambda m, x: m.linalg.vector_norm(x), [arr(3, 5)]),
    "vector_norm ord 3 dim": (lambda m, x: m.linalg.vector_norm(x, 3, dim=-1, keepdim=True), [arr(3, 5, layout="t")]),
    "vector_norm ord 1": (lambda m, x: m.linalg.vector_norm(x, 1, dim=(0, 1)), [arr(3, 5, 2)]),
    "vector_norm inf": (lambda m, x: m.linalg.vector_norm(x, float("inf"), dim=0), [arr(4, 3)]),
    "vector_norm -inf": (lambda m, x: m.linalg.vector_norm(x, float("-inf"), dim=1), [arr(4, 3)]),
    "vector_norm 0.5": (lambda m, x: m.linalg.vector_norm(x, 0.5), [pos(7)]),
    "vector_norm of zeros": (lambda m, x: m.linalg.vector_norm(x * 0.0, dim=1), [arr(2, 3)]),
    "linalg.norm": (lambda m, x: m.linalg.norm(x), [arr(3, 4, 2)]),
    "linalg.norm fro": (lambda m, x: m.linalg.norm(x, "fro"), [arr(3, 4, layout="t")]),
    "linalg.norm nuc": (lambda m, x: m.linalg.norm(x, "nuc"), [arr(3, 4)]),
    "linalg.norm inf": (lambda m, x: m.linalg.norm(x, float("inf")), [arr(3, 4)]),
    "linalg.norm 1 dims": (lambda m, x: m.linalg.norm(x, 1, dim=(-1, 0)), [arr(3, 2, 4)]),
    "Tensor.norm": (lambda m, x: x.norm(), [arr(3, 5)]),
    "Tensor.norm p dim": (lambda m, x: x.norm(p=3, dim=-1, keepdim=True), [arr(3, 5)]),
    "norm nuc": (lambda m, x: m.norm(x, p="nuc"), [arr(4, 3)]),
    "cdist": (lambda m, a, b: m.cdist(a, b), [arr(3, 4), arr(5, 4, layout="s")]),
    "cdist p=1 batched": (lambda m, a, b: m.cdist(a, b, p=1.0), [arr(2, 3, 4), arr(2, 5, 4)]),
    "F.cosine_similarity": (lambda m, a, b: m.nn.functional.cosine_similarity(a, b, dim=-1),
                            [arr(3, 5, layout="t"), arr(1, 5)]),
    "F.pairwise_distance": (lambda m, a, b: m.nn.functional.pairwise_distance(a, b), [arr(3, 5), arr(3, 5)]),
    "F.normalize": (lambda m, x: m.nn.functional.normalize(x, dim=0), [arr(3, 5, layout="t")]),
    "F.normalize p=1": (lambda m, x: m.nn.functional.normalize(x, p=1.0, dim=-1), [arr(2, 7)]),
    # index / scatter / gather
    "index_select": (lambda m, x: m.index_select(x, -1, m.tensor(idx(2, 0, 2))), [arr(3, 4, layout="t")]),
    "index_add": (lambda m, x, s: m.index_add(x, 0, m.tensor(idx(1, 3, 1)), s, alpha=2.0), [arr(4, 3), arr(3, 3)]),
    "index_copy": (lambda m, x, s: m.index_copy(x, 1, m.tensor(idx(2, 0)), s), [arr(3, 4), arr(3, 2)]),
    "index_fill": (lambda m, x: m.index_fill(x, -1, m.tensor(idx(0, 2)), -1.5), [arr(3, 4, layout="s")]),
    "gather": (lambda m, x: m.gather(x, 1, m.tensor(idx(0, 2, 2, 1, 0, 0).reshape(3, 2))), [arr(3, 4, layout="t")]),
    "scatter src": (lambda m, x, s: m.scatter(x, 1, m.tensor(idx(0, 2, 3, 1, 0, 3).reshape(3, 2)), s),
                    [arr(3, 4), arr(3, 2, layout="t")]),
    "scatter value": (lambda m, x: m.scatter(x, 0, m.tensor(idx(1, 0, 2).reshape(1, 3)), 2.5), [arr(3, 3)]),
    "scatter_add": (lambda m, x, s: m.scatter_add(x, -1, m.tensor(idx(0, 0, 2, 1, 1, 1).reshape(2, 3)), s),
                    [arr(2, 3), arr(2, 3, layout="s")]),
    "masked_select": (lambda m, x: m.masked_select(x, m.tensor(np.array([True, False, True]))), [arr(2, 3)]),
    "masked_scatter": (lambda m, x, s: x.masked_scatter(m.tensor(np.array([[True, False, True], [False, True, True]])),
                                                        s), [arr(2, 3), arr(5)]),
    "take": (lambda m, x: m.take(x, m.tensor(idx(0, -1, 5, 5).reshape(2, 2))), [arr(2, 3, layout="t")]),
    "take_along_dim": (lambda m, x: m.take_along_dim(x, m.tensor(idx(0, 2, 1).reshape(3, 1)), dim=1), [arr(3, 4)]),
    "take_along_dim broadcast": (lambda m, x: m.take_along_dim(x, m.tensor(idx(1, 0).reshape(1, 2)), dim=-1),
                                 [arr(3, 4)]),
    "take_along_dim flat": (lambda m, x: m.take_along_dim(x, m.tensor(idx(3, 0))), [arr(2, 3)]),
    # losses
    "F.smooth_l1_loss": (lambda m, a, b: m.nn.functional.smooth_l1_loss(a, b, beta=0.5), [arr(3, 5), arr(3, 5)]),
    "F.huber_loss": (lambda m, a, b: m.nn.functional.huber_loss(a, b, reduction="sum", delta=0.7),
                     [arr(3, 5, layout="t"), arr(5)]),
    "F.l1_loss": (lambda m, a, b: m.nn.functional.l1_loss(a, b), [arr(3, 2), arr(3, 2)]),
    "F.kl_div": (lambda m, a, b: m.nn.functional.kl_div(a.log_softmax(-1), b.softmax(-1), reduction="batchmean"),
                 [arr(3, 5), arr(3, 5)]),
    "F.kl_div log_target": (lambda m, a, b: m.nn.functional.kl_div(a, b, reduction="sum", log_target=True),
                            [arr(3, 4), arr(3, 4)]),
    "F.bce_with_logits pos_weight": (lambda m, x, y, w: m.nn.functional.binary_cross_entropy_with_logits(
        x, y.sigmoid(), pos_weight=w.detach()), [arr(4, 3), arr(4, 3), pos(3)]),
    "F.bce_with_logits target grad": (lambda m, x, y: m.nn.functional.binary_cross_entropy_with_logits(
        x, y.sigmoid(), reduction="sum"), [arr(4, 3, layout="t"), arr(4, 3)]),
    "F.binary_cross_entropy target grad": (lambda m, x, y: m.nn.functional.binary_cross_entropy(
        x.sigmoid(), y.sigmoid()), [arr(2, 5), arr(2, 5)]),
    "F.nll_loss weight ignore": (lambda m, x, w: m.nn.functional.nll_loss(
        x.log_softmax(1), m.tensor(idx(0, 2, 1, 2, 4)), weight=w.detach(), ignore_index=4), [arr(5, 5), pos(5)]),
    "F.nll_loss spatial": (lambda m, x: m.nn.functional.nll_loss(x.log_softmax(1), m.tensor(idx(0, 2, 1, 2).reshape(2, 2)),
                                                                 reduction="none"), [arr(2, 3, 2)]),
    "F.cross_entropy probs": (lambda m, x, p: m.nn.functional.cross_entropy(x, p.softmax(1)), [arr(4, 5), arr(4, 5)]),
    "F.cross_entropy probs smoothing weight": (lambda m, x, p, w: m.nn.functional.cross_entropy(
        x, p.softmax(1), weight=w.detach(), label_smoothing=0.2), [arr(3, 4, 2), arr(3, 4, 2), pos(4)]),
    "F.cross_entropy weight smoothing": (lambda m, x, w: m.nn.functional.cross_entropy(
        x, m.tensor(idx(0, 3, 1, 3)), weight=w.detach(), label_smoothing=0.1, ignore_index=1), [arr(4, 5), pos(5)]),
    "F.cross_entropy weight smoothing sum": (lambda m, x, w: m.nn.functional.cross_entropy(
        x, m.tensor(idx(0, 3, 1)), weight=w.detach(), label_smoothing=0.3, reduction="sum"), [arr(3, 5), pos(5)]),
    "F.cross_entropy weight smoothing none": (lambda m, x, w: m.nn.functional.cross_entropy(
        x, m.tensor(idx(0, 3, 1)), weight=w.detach(), label_smoothing=0.3, reduction="none"), [arr(3, 5), pos(5)]),
    "F.margin_ranking_loss": (lambda m, a, b: m.nn.functional.margin_ranking_loss(
        a, b, m.tensor(np.array([1.0, -1.0, 1.0])), margin=0.3), [arr(3), arr(3)]),
    "F.triplet_margin_loss": (lambda m, a, p, n: m.nn.functional.triplet_margin_loss(a, p, n, margin=2.0),
                              [arr(4, 3), arr(4, 3), arr(4, 3)]),
    "F.triplet_margin_loss swap p=1": (lambda m, a, p, n: m.nn.functional.triplet_margin_loss(
        a, p, n, margin=2.0, p=1.0, swap=True, reduction="none"), [arr(4, 3), arr(4, 3), arr(4, 3)]),
    "F.cosine_embedding_loss": (lambda m, a, b: m.nn.functional.cosine_embedding_loss(
        a, b, m.tensor(np.array([1, -1, -1, 1])), margin=-0.2), [arr(4, 3), arr(4, 3)]),
    "F.pad constant": (lambda m, x: m.nn.functional.pad(x, (1, 2, 0, 1), value=0.5), [arr(2, 3, 4, layout="t")]),
    "F.pad crop": (lambda m, x: m.nn.functional.pad(x, (-1, 2)), [arr(2, 4)]),
    "F.pad reflect": (lambda m, x: m.nn.functional.pad(x, (2, 1), mode="reflect"), [arr(2, 3, 4)]),
    "F.pad reflect 2d": (lambda m, x: m.nn.functional.pad(x, (1, 1, 2, 0), mode="reflect"), [arr(1, 2, 3, 4)]),
    "F.pad replicate": (lambda m, x: m.nn.functional.pad(x, (3, 1, 1, 2), mode="replicate"), [arr(1, 2, 3, 2)]),
    "F.pad circular": (lambda m, x: m.nn.functional.pad(x, (2, 1), mode="circular"), [arr(1, 2, 3)]),
}


@pytest.mark.parametrize("name", list(CASES))
def test_matches_pytorch(name):
    fn, arrays = CASES[name]
    check(fn, *arrays)


NO_GRAD = {  # integer / bool results, as PyTorch (no graph node)
    "unique": (lambda m, x: m.unique(m.round(x).detach(), return_inverse=True, return_counts=True), [arr(3, 5)]),
    "unique dim": (lambda m, x: m.unique(m.round(x).detach(), dim=0), [np.repeat(arr(2, 3), 2, axis=0)]),
    "bincount": (lambda m: m.bincount(m.tensor(idx(1, 3, 3, 0)), minlength=6), []),
    "bincount weights": (lambda m, w: m.bincount(m.tensor(idx(1, 3, 3, 0)), weights=w.detach()), [arr(4)]),
    "histc": (lambda m, x: m.histc(x.detach(), bins=7, min=-1.0, max=1.5), [arr(20)]),
    "searchsorted": (lambda m, v: m.searchsorted(m.tensor(np.array([-1.0, 0.0, 0.5, 1.5])), v.detach()), [arr(2, 3)]),
    "searchsorted right rows": (lambda m: m.searchsorted(m.tensor(np.array([[0.0, 1.0, 2.0], [1.0, 1.0, 3.0]])),
                                                         m.tensor(np.array([[1.0], [1.0]])), right=True), []),
    "bucketize": (lambda m, x: m.bucketize(x.detach(), m.tensor(np.array([-1.0, 0.0, 1.0])), right=True), [arr(3, 4)]),
    "count_nonzero": (lambda m, x: m.count_nonzero(m.round(x), dim=-1), [arr(3, 4)]),
    "isclose": (lambda m, a, b: m.isclose(a, a + b * 1e-9), [arr(3), arr(3)]),
    "argmax": (lambda m, x: m.argmax(x, -1), [arr(3, 4)]),
    "one_hot": (lambda m: m.nn.functional.one_hot(m.tensor(idx(0, 2, 1)), 4), []),
}


@pytest.mark.parametrize("name", list(NO_GRAD))
def test_no_grad_results_match_pytorch(name):
    fn, arrays = NO_GRAD[name]
    check(fn, *arrays)


def test_allclose_equal():
    a = pe.tensor([1.0, 2.0])
    assert pe.allclose(a, a + 1e-9) and not pe.allclose(a, a + 1e-3)
    assert pe.equal(a, a.clone()) and not pe.equal(a, a * 2)
    assert a.allclose(a) and a.equal(a)


def test_multinomial_draws_rows():
    pe.manual_seed(0)
    p = pe.tensor([[0.0, 1.0, 0.0], [0.5, 0.0, 0.5]], requires_grad=True)
    s = pe.multinomial(p, 4, replacement=True)
    assert not s.requires_grad and s.dtype == pe.int64
    assert (s[0] == 1).all().item() and ((s[1] == 0) | (s[1] == 2)).all().item()


def test_gumbel_softmax():
    pe.manual_seed(0)
    x = pe.randn(4, 5, dtype=pe.float64, requires_grad=True)
    y = pe.nn.functional.gumbel_softmax(x, tau=0.5)
    np.testing.assert_allclose(y.sum(-1).detach().numpy(), 1.0)
    h = pe.nn.functional.gumbel_softmax(x, hard=True)
    assert set(np.unique(h.detach().numpy())) <= {0.0, 1.0} and (h.sum(-1) == 1).all().item()
    (h * pe.randn(4, 5, dtype=pe.float64)).sum().backward()
    assert x.grad is not None and np.abs(x.grad.numpy()).sum() > 0


def test_median_and_kthvalue_indices_point_at_values():
    x = pe.tensor(arr(4, 7))
    v, i = pe.median(x, 1)
    np.testing.assert_array_equal(np.take_along_axis(x.numpy(), i.numpy()[:, None], 1)[:, 0], v.numpy())
    v, i = x.kthvalue(3, dim=0, keepdim=True)
    np.testing.assert_array_equal(np.take_along_axis(x.numpy(), i.numpy(), 0), v.numpy())
    assert np.isnan(pe.median(pe.tensor([1.0, float("nan"), 0.0])).item())
    assert pe.nanmedian(pe.tensor([1.0, float("nan"), 0.0, 3.0])).item() == 1.0


def test_scatter_reduce_add_gradient():
    """PyTorch has no gradient for scatter(reduce="add"); ours is scatter_add's."""
    x, s = pe.tensor(arr(2, 3), requires_grad=True), pe.tensor(arr(2, 2), requires_grad=True)
    i = pe.tensor(idx(0, 0, 1, 1).reshape(2, 2))
    y = x.scatter(1, i, s, reduce="add")
    np.testing.assert_allclose(y.detach().numpy(), torch.from_numpy(x.detach().numpy()).scatter(
        1, torch.from_numpy(i.numpy()), torch.from_numpy(s.detach().numpy()), reduce="add").numpy())
    y2 = pe.scatter_add(x, 1, i, s)
    g = pe.tensor(arr(2, 3))
    ga = pe.autograd.grad((y * g).sum(), [x, s])
    gb = pe.autograd.grad((y2 * g).sum(), [x, s])
    for a, b in zip(ga, gb):
        np.testing.assert_allclose(a.numpy(), b.numpy())
    with pytest.raises(RuntimeError, match="multiply"):
        (x.scatter(1, i, s, reduce="multiply")).sum().backward()


def test_einsum_second_order():
    """einsum's backward is itself built from ops on arrays: gradients of a product of einsums agree."""
    a, b = arr(3, 4), arr(4, 2)
    check(lambda m, x, y: m.einsum("ij,jk->ik", m.einsum("ij->ji", m.einsum("ji", x)), y) ** 2, a, b)


# ---------------------------------------------------------------------- hypothesis: pointwise ops, any shape


UNARY = ["log1p", "expm1", "reciprocal", "frac", "trunc"]
UNARY_F = ["softplus", "elu", "selu", "celu", "hardtanh", "relu6", "hardswish", "hardsigmoid", "mish", "softsign",
           "tanhshrink", "logsigmoid"]
BINARY = ["hypot", "atan2", "logaddexp"]
shape_st = st.lists(st.sampled_from([1, 2, 3, 5, 7]), min_size=0, max_size=3).map(tuple)


@settings(max_examples=15, deadline=None)
@given(shape=shape_st, layout=st.sampled_from(["c", "t", "s"]), name=st.sampled_from(UNARY + UNARY_F))
def test_pointwise_any_shape(shape, layout, name):
    low = 0.1 if name in ("log1p", "reciprocal") else -4.0
    x = arr(*shape, layout=layout, low=low, high=4.0)
    fn = (lambda m, t: getattr(m.nn.functional, name)(t)) if name in UNARY_F else (lambda m, t: getattr(m, name)(t))
    check(fn, x)


@settings(max_examples=15, deadline=None)
@given(shape=shape_st, drop=st.integers(0, 3), ones=st.integers(0, 7), name=st.sampled_from(BINARY))
def test_binary_pointwise_broadcasting(shape, drop, ones, name):
    other = tuple(1 if ones >> i & 1 else s for i, s in enumerate(shape[drop:]))
    check(lambda m, a, b: getattr(m, name)(a, b), arr(*shape), arr(*other))


@settings(max_examples=10, deadline=None)
@given(shape=st.lists(st.sampled_from([1, 2, 3, 5]), min_size=1, max_size=3).map(tuple), data=st.data())
def test_scans_any_dim(shape, data):
    d = data.draw(st.integers(-len(shape), len(shape) - 1))
    op = data.draw(st.sampled_from(["cumsum", "cumprod"]))
    check(lambda m, t: getattr(m, op)(t, d), arr(*shape, layout=data.draw(st.sampled_from(["c", "t", "s"]))))


# ---------------------------------------------------------------------- in place


INPLACE = {
    "log1p_": (lambda m, x: (x * 1).log1p_(), [pos(3, 4)]),
    "expm1_": (lambda m, x: (x * 1).expm1_(), [arr(3)]),
    "reciprocal_": (lambda m, x: (x * 1).reciprocal_(), [pos(2, 3)]),
    "trunc_": (lambda m, x: (x * 3).trunc_(), [arr(3)]),
    "frac_": (lambda m, x: (x * 3).frac_(), [arr(3)]),
    "lerp_": (lambda m, a, b: (a * 1).lerp_(b, 0.25), [arr(2, 3), arr(3)]),
    "hypot_": (lambda m, a, b: (a * 1).hypot_(b), [arr(2, 3), arr(3)]),
    "atan2_": (lambda m, a, b: (a * 1).atan2_(b), [arr(2, 3), arr(2, 3)]),
    "clamp_min_": (lambda m, x: (x * 1).clamp_min_(0.1), [arr(5)]),
    "clamp_max_": (lambda m, x: (x * 1).clamp_max_(0.1), [arr(5)]),
    "nan_to_num_": (lambda m, x: (x / m.tensor([0.0, 1.0], dtype=m.float64)).nan_to_num_(posinf=3.0), [arr(2, 2)]),
    "cumsum_": (lambda m, x: (x * 1).cumsum_(0), [arr(3, 2)]),
    "cumprod_": (lambda m, x: (x * 1).cumprod_(-1), [arr(3, 2)]),
    "tril_": (lambda m, x: (x * 1).tril_(), [arr(3, 3)]),
    "triu_": (lambda m, x: (x * 1).triu_(1), [arr(3, 3)]),
    "addmm_": (lambda m, i, a, b: (i * 1).addmm_(a, b, alpha=0.5), [arr(2, 3), arr(2, 4), arr(4, 3)]),
    "baddbmm_": (lambda m, i, a, b: (i * 1).baddbmm_(a, b), [arr(2, 2, 3), arr(2, 2, 4), arr(2, 4, 3)]),
    "addbmm_": (lambda m, i, a, b: (i * 1).addbmm_(a, b, beta=2), [arr(2, 3), arr(2, 2, 4), arr(2, 4, 3)]),
    "addmv_": (lambda m, i, a, v: (i * 1).addmv_(a, v), [arr(2), arr(2, 3), arr(3)]),
    "index_add_": (lambda m, x, s: (x * 1).index_add_(0, m.tensor(idx(2, 0)), s), [arr(3, 2), arr(2, 2)]),
    "index_copy_": (lambda m, x, s: (x * 1).index_copy_(0, m.tensor(idx(2, 0)), s), [arr(3, 2), arr(2, 2)]),
    "index_fill_": (lambda m, x: (x * 1).index_fill_(1, m.tensor(idx(0)), 3.0), [arr(3, 2)]),
    "scatter_": (lambda m, x, s: (x * 1).scatter_(0, m.tensor(idx(2, 0).reshape(1, 2)), s), [arr(3, 2), arr(1, 2)]),
    "scatter_ value": (lambda m, x: (x * 1).scatter_(1, m.tensor(idx(1, 0, 1).reshape(3, 1)), 7.0), [arr(3, 2)]),
    "scatter_add_": (lambda m, x, s: (x * 1).scatter_add_(1, m.tensor(idx(1, 1, 0, 1).reshape(2, 2)), s),
                     [arr(2, 3), arr(2, 2)]),
    "masked_scatter_": (lambda m, x, s: (x * 1).masked_scatter_(m.tensor(np.array([True, False, True])), s),
                        [arr(2, 3), arr(4)]),
    "write through a view": (lambda m, x, s: (lambda y: (y[1:].index_add_(0, m.tensor(idx(0, 0)), s), y)[1])(x * 1),
                             [arr(3, 2), arr(2, 2)]),
}


@pytest.mark.parametrize("name", list(INPLACE))
def test_inplace_matches_pytorch(name):
    fn, arrays = INPLACE[name]
    check(fn, *arrays)


def test_inplace_on_a_leaf_that_requires_grad_is_refused():
    x = pe.randn(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf Variable"):
        x.log1p_()
    with pytest.raises(RuntimeError, match="leaf Variable"):
        x.index_fill_(0, pe.tensor([0]), 1.0)


# ---------------------------------------------------------------------- modules


MODULES = [
    ("Softplus", (), {"beta": 2.0}), ("ELU", (), {"alpha": 0.5}), ("CELU", (), {}), ("SELU", (), {}),
    ("Hardtanh", (-0.5, 0.5), {}), ("ReLU6", (), {}), ("Hardswish", (), {}), ("Hardsigmoid", (), {}),
    ("Mish", (), {}), ("Softsign", (), {}), ("Tanhshrink", (), {}), ("LogSigmoid", (), {}), ("GLU", (0,), {}),
]


@pytest.mark.parametrize("name,args,kwargs", MODULES)
def test_activation_modules(name, args, kwargs):
    check(lambda m, x: getattr(m.nn, name)(*args, **kwargs)(x), arr(4, 3, low=-5, high=5))


LOSS_MODULES = {
    "SmoothL1Loss": (lambda m, a, b: m.nn.SmoothL1Loss(beta=0.3)(a, b), [arr(3, 4), arr(3, 4)]),
    "HuberLoss": (lambda m, a, b: m.nn.HuberLoss(delta=0.5, reduction="sum")(a, b), [arr(3, 4), arr(3, 4)]),
    "KLDivLoss": (lambda m, a, b: m.nn.KLDivLoss(reduction="batchmean")(a.log_softmax(1), b.softmax(1)),
                  [arr(3, 4), arr(3, 4)]),
    "MarginRankingLoss": (lambda m, a, b: m.nn.MarginRankingLoss(0.1)(a, b, m.tensor(np.array([1.0, -1.0]))),
                          [arr(2), arr(2)]),
    "TripletMarginLoss": (lambda m, a, p, n: m.nn.TripletMarginLoss(margin=0.5, swap=True)(a, p, n),
                          [arr(3, 4), arr(3, 4), arr(3, 4)]),
    "CosineEmbeddingLoss": (lambda m, a, b: m.nn.CosineEmbeddingLoss(0.1)(a, b, m.tensor(idx(1, -1))),
                            [arr(2, 5), arr(2, 5)]),
    "CosineSimilarity": (lambda m, a, b: m.nn.CosineSimilarity(dim=0)(a, b), [arr(3, 4), arr(3, 4)]),
    "PairwiseDistance": (lambda m, a, b: m.nn.PairwiseDistance(p=1.0, keepdim=True)(a, b), [arr(3, 4), arr(3, 4)]),
    "NLLLoss weight": (lambda m, x, w: m.nn.NLLLoss(weight=w.detach())(x.log_softmax(1), m.tensor(idx(1, 0, 2))),
                       [arr(3, 3), pos(3)]),
    "CrossEntropyLoss probs": (lambda m, x, p: m.nn.CrossEntropyLoss(label_smoothing=0.1)(x, p.softmax(1)),
                               [arr(3, 4), arr(3, 4)]),
}


@pytest.mark.parametrize("name", list(LOSS_MODULES))
def test_loss_modules(name):
    fn, arrays = LOSS_MODULES[name]
    check(fn, *arrays)


# ---------------------------------------------------------------------- errors name the op and the shapes


ERRORS = [
    (lambda: pe.narrow(pe.ones(3, 4), 1, 2, 5), IndexError, r"narrow.*\(3, 4\)"),
    (lambda: pe.roll(pe.ones(3), (1, 2), (0,)), RuntimeError, "roll"),
    (lambda: pe.ones(2, 3).repeat(2), RuntimeError, r"repeat.*\(2, 3\)"),
    (lambda: pe.repeat_interleave(pe.ones(3), pe.tensor([1, 2])), RuntimeError, r"repeat_interleave.*\(2,\)"),
    (lambda: pe.ones(3, 4).unfold(1, 5, 1), RuntimeError, r"unfold.*\(3, 4\)"),
    (lambda: pe.meshgrid(pe.ones(2, 2)), RuntimeError, r"meshgrid.*\(2, 2\)"),
    (lambda: pe.einsum("ij,jk->ik", pe.ones(2, 3), pe.ones(4, 5)), RuntimeError, r"einsum.*\(2, 3\)"),
    (lambda: pe.einsum("ij->ik", pe.ones(2, 3)), ValueError, "einsum"),
    (lambda: pe.einsum("ijk", pe.ones(2, 3)), ValueError, r"einsum.*\(2, 3\)"),
    (lambda: pe.addmm(pe.ones(5), pe.ones(2, 3), pe.ones(3, 4)), RuntimeError, r"addmm.*\(5,\)"),
    (lambda: pe.mv(pe.ones(2, 3), pe.ones(2, 3)), RuntimeError, r"mv.*\(2, 3\)"),
    (lambda: pe.bmm(pe.ones(2, 3, 4), pe.ones(3, 4, 5)), RuntimeError, r"bmm.*\(2, 3, 4\)"),
    (lambda: pe.outer(pe.ones(2, 2), pe.ones(3)), RuntimeError, r"outer.*\(2, 2\)"),
    (lambda: pe.cross(pe.ones(2, 4), pe.ones(2, 4)), RuntimeError, r"cross.*\(2, 4\)"),
    (lambda: pe.linalg.vector_norm(pe.ones(2, 3), dim=(0, 0)), RuntimeError, "vector_norm"),
    (lambda: pe.linalg.norm(pe.ones(2, 3, 4), 2), RuntimeError, r"linalg.norm.*\(2, 3, 4\)"),
    (lambda: pe.cdist(pe.ones(2, 3), pe.ones(2, 4)), RuntimeError, r"cdist.*\(2, 3\)"),
    (lambda: pe.index_select(pe.ones(3, 4), 0, pe.tensor([3])), IndexError, r"index_select.*\(3, 4\)"),
    (lambda: pe.index_select(pe.ones(3, 4), 0, pe.tensor([0.5])), TypeError, "index_select"),
    (lambda: pe.index_add(pe.ones(3, 4), 0, pe.tensor([0, 1]), pe.ones(3, 4)), RuntimeError, r"index_add.*\(3, 4\)"),
    (lambda: pe.index_copy(pe.ones(3, 4), 1, pe.tensor([0]), pe.ones(3, 2)), RuntimeError, "index_copy"),
    (lambda: pe.index_fill(pe.ones(3, 4), 1, pe.tensor([0]), pe.ones(2)), RuntimeError, "index_fill"),
    (lambda: pe.scatter(pe.ones(3, 4), 1, pe.tensor([[4]]), 1.0), IndexError, r"scatter.*\(3, 4\)"),
    (lambda: pe.scatter_add(pe.ones(3, 4), 1, pe.tensor([[0, 1]]), pe.ones(1, 1)), RuntimeError, "scatter_add"),
    (lambda: pe.scatter(pe.ones(3, 4), 1, pe.tensor([[0]]), 1.0, reduce="max"), ValueError, "scatter"),
    (lambda: pe.masked_select(pe.ones(3, 4), pe.tensor([True, False])), RuntimeError, r"masked_select.*\(3, 4\)"),
    (lambda: pe.masked_select(pe.ones(3), pe.tensor([1, 0, 1])), TypeError, "masked_select"),
    (lambda: pe.masked_scatter(pe.ones(3), pe.tensor([True, True, True]), pe.ones(2)), RuntimeError,
     "masked_scatter"),
    (lambda: pe.take(pe.ones(2, 3), pe.tensor([6])), IndexError, r"take.*\(2, 3\)"),
    (lambda: pe.take_along_dim(pe.ones(2, 3), pe.tensor([0]), dim=1), RuntimeError, "take_along_dim"),
    (lambda: pe.diag(pe.ones(2, 2, 2)), RuntimeError, r"diag.*\(2, 2, 2\)"),
    (lambda: pe.diagonal(pe.ones(3)), RuntimeError, r"diagonal.*\(3,\)"),
    (lambda: pe.trace(pe.ones(3)), RuntimeError, r"trace.*\(3,\)"),
    (lambda: pe.diff(pe.tensor(1.0)), RuntimeError, "diff"),
    (lambda: pe.kthvalue(pe.ones(2, 3), 4), RuntimeError, r"kthvalue.*\(2, 3\)"),
    (lambda: pe.median(pe.ones(2, 0), 1), IndexError, "median"),
    (lambda: pe.cumsum(pe.ones(2, 3), 2), IndexError, "cumsum"),
    (lambda: pe.cumprod(pe.ones(2, 3), "a"), TypeError, "cumprod"),
    (lambda: pe.bincount(pe.tensor([-1, 2])), RuntimeError, "bincount"),
    (lambda: pe.bincount(pe.ones(3)), RuntimeError, "bincount"),
    (lambda: pe.histc(pe.ones(3), bins=0), ValueError, "histc"),
    (lambda: pe.searchsorted(pe.ones(2, 3), pe.ones(3, 1)), RuntimeError, "searchsorted"),
    (lambda: pe.lerp(pe.ones(2), pe.ones(3), 0.5), RuntimeError, r"lerp.*\(2,\)"),
    (lambda: pe.hypot(pe.ones(2), pe.ones(3)), ValueError, r"hypot.*\(2,\)"),
    (lambda: pe.atan2(pe.ones(2), "x"), TypeError, "atan2"),
    (lambda: pe.nn.functional.glu(pe.ones(3, 5)), RuntimeError, "glu"),
    (lambda: pe.nn.functional.pad(pe.ones(2, 3), (3, 0), mode="reflect"), RuntimeError, r"pad.*\(2, 3\)"),
    (lambda: pe.nn.functional.pad(pe.ones(2, 3), (1,)), ValueError, "pad"),
    (lambda: pe.nn.functional.pad(pe.ones(2, 3), (1, 1), mode="wrap"), ValueError, "pad"),
    (lambda: pe.nn.functional.smooth_l1_loss(pe.ones(2, 3), pe.ones(4)), ValueError, r"smooth_l1_loss.*\(2, 3\)"),
    (lambda: pe.nn.functional.kl_div(pe.ones(2), pe.ones(2), reduction="avg"), ValueError, "kl_div"),
    (lambda: pe.nn.functional.cross_entropy(pe.ones(2, 3), pe.ones(2, 4)), TypeError, r"cross_entropy.*\(2, 4\)"),
    (lambda: pe.nn.functional.nll_loss(pe.ones(2, 3), pe.tensor([0, 1]), weight=pe.ones(4)), ValueError,
     "nll_loss"),
    (lambda: pe.nn.functional.triplet_margin_loss(pe.ones(2, 3), pe.ones(2, 3), pe.ones(3)), RuntimeError,
     "triplet_margin_loss"),
    (lambda: pe.nn.functional.cosine_embedding_loss(pe.ones(2, 3), pe.ones(2, 3), pe.ones(3)), RuntimeError,
     r"cosine_embedding_loss.*\(2, 3\)"),
    (lambda: pe.nn.functional.softplus(pe.tensor([1, 2])), TypeError, "softplus"),
    (lambda: pe.nn.functional.hardtanh(pe.ones(2), 1.0, -1.0), ValueError, "hardtanh"),
]


@pytest.mark.parametrize("i", range(len(ERRORS)))
def test_errors_name_the_op(i):
    fn, exc, pattern = ERRORS[i]
    with pytest.raises(exc, match=pattern):
        fn()


def test_saved_values_are_only_what_backward_reads():
    """Writing in place into an output the backward does not read is allowed (as PyTorch); into one it reads,
    refused before backward (the 'modified by an inplace operation' error)."""
    for m in (pe, torch):
        x = m.tensor([0.5, 1.5], dtype=m.float64, requires_grad=True)
        y = m.log1p(x)  # reads x, not y
        y.add_(1)
        y.sum().backward()
        np.testing.assert_allclose(_np(x.grad), 1 / (1 + np.array([0.5, 1.5])))
        z = m.expm1(x * 1)  # reads its output
        z.add_(1)
        with pytest.raises(RuntimeError, match="modified by an inplace operation"):
            z.sum().backward()
