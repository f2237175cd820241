"""Audit: every public op builds a graph node when its float input requires grad, as PyTorch does.

Issue 13 found ``cumsum`` and ``repeat_interleave`` returning a result that did not require grad from an
input that did: the gradient was silently missing. This test walks the public surface programmatically
(``pyengine.ops.__all__``, ``nn.functional.__all__``, ``pyengine.linalg.__all__`` and the Tensor methods
declared in the class body), calls each on float64 inputs that require grad, and asks of every tensor it
returns what PyTorch's twin returns: ``requires_grad`` must agree, and a result that requires grad must have
a ``grad_fn``. An op that PyTorch does not differentiate (argmax, comparisons, unique, ...) must therefore
return requires_grad=False. A new public op with no call here is called with one (3, 4) tensor; if that call
does not fit its signature the test fails and asks for an entry in CALLS. Anything left out is in
NOT_OPS (not an op on tensor values) or DEVIATIONS (a stated difference from PyTorch), with the reason.
"""
import inspect

import numpy as np
import pytest

import pyengine as pe
import pyengine.nn.functional as F

torch = pytest.importorskip("torch")

X = np.random.default_rng(7).uniform(0.2, 1.5, (3, 4))  # positive: log, sqrt, pow are defined everywhere
Y = np.random.default_rng(8).uniform(0.2, 1.5, (3, 4))


def _i(m, *v):
    return m.tensor(list(v))


def _b(m, *v):
    return m.tensor(list(v), dtype=m.bool)


# name -> call(m, x, y): x, y are (3, 4) float64 leaves that require grad (a method's receiver is x).
# Names not listed are called as op(x) / x.method().
CALLS = {
    # binary and n-ary
    **{n: (lambda m, x, y, n=n: getattr(m, n)(x, y)) for n in (
        "add", "sub", "mul", "div", "pow", "maximum", "minimum", "eq", "ne", "lt", "le", "gt", "ge", "logical_and",
        "remainder", "fmod",
        "logical_or", "logical_xor", "allclose", "equal", "isclose", "hypot", "atan2", "arctan2", "logaddexp")},
    "where": lambda m, x, y: m.where(x > 1, x, y),
    "lerp": lambda m, x, y: m.lerp(x, y, 0.3),
    "clamp_min": lambda m, x, y: m.clamp_min(x, 0.5), "clamp_max": lambda m, x, y: m.clamp_max(x, 0.5),
    "matmul": lambda m, x, y: m.matmul(x, y.t()), "mm": lambda m, x, y: m.mm(x, y.t()),
    "bmm": lambda m, x, y: m.bmm(x.unsqueeze(0), y.t().unsqueeze(0)),
    "dot": lambda m, x, y: m.dot(x[0], y[0]), "inner": lambda m, x, y: m.inner(x, y),
    "mv": lambda m, x, y: m.mv(x, y[0]), "outer": lambda m, x, y: m.outer(x[0], y[0]),
    "ger": lambda m, x, y: m.ger(x[0], y[0]),
    "addmm": lambda m, x, y: m.addmm(x, x, y.t().mm(y)),
    "addmv": lambda m, x, y: m.addmv(x[0, :3], x[:, :3].t(), y[:, 0]),
    "baddbmm": lambda m, x, y: m.baddbmm(x.unsqueeze(0), x.unsqueeze(0), y.t().mm(y).unsqueeze(0)),
    "addbmm": lambda m, x, y: m.addbmm(x, x.unsqueeze(0), y.t().mm(y).unsqueeze(0)),
    "einsum": lambda m, x, y: m.einsum("ij,kj->ik", x, y),
    "cdist": lambda m, x, y: m.cdist(x, y), "kron": lambda m, x, y: m.kron(x, y),
    "cross": lambda m, x, y: m.cross(x[:, :3], y[:, :3], dim=1),
    "cat": lambda m, x, y: m.cat([x, y]), "concat": lambda m, x, y: m.concat([x, y]),
    "concatenate": lambda m, x, y: m.concatenate([x, y]), "stack": lambda m, x, y: m.stack([x, y]),
    "meshgrid": lambda m, x, y: m.meshgrid(x[0], y[0], indexing="ij"),
    "expand_as": lambda m, x, y: m.expand_as(x[:1], y) if hasattr(m, "expand_as") else x[:1].expand_as(y),
    # dims, sizes, indices
    **{n: (lambda m, x, y, n=n: getattr(m, n)(x, 1)) for n in (
        "cumsum", "cumprod", "log_softmax", "softmax", "unbind", "chunk", "split", "unsqueeze", "logsumexp")},
    "transpose": lambda m, x, y: m.transpose(x, 0, 1), "permute": lambda m, x, y: m.permute(x, (1, 0)),
    "reshape": lambda m, x, y: m.reshape(x, (4, 3)), "view": lambda m, x, y: x.view(4, 3),
    "flatten": lambda m, x, y: m.flatten(x), "unflatten": lambda m, x, y: m.unflatten(x, 1, (2, 2)),
    "expand": lambda m, x, y: x[:1].expand(2, 4), "broadcast_to": lambda m, x, y: m.broadcast_to(x, (2, 3, 4)),
    "flip": lambda m, x, y: m.flip(x, (0,)), "roll": lambda m, x, y: m.roll(x, 1, 0),
    "narrow": lambda m, x, y: m.narrow(x, 1, 1, 2), "movedim": lambda m, x, y: m.movedim(x, 0, 1),
    "moveaxis": lambda m, x, y: m.moveaxis(x, 0, 1),
    "repeat": lambda m, x, y: x.repeat(2, 1), "tile": lambda m, x, y: m.tile(x, (2,)),
    "repeat_interleave": lambda m, x, y: m.repeat_interleave(x, 2, 0),
    "unfold": lambda m, x, y: x.unfold(1, 2, 1), "diff": lambda m, x, y: m.diff(x),
    "diag": lambda m, x, y: m.diag(x), "diagonal": lambda m, x, y: m.diagonal(x),
    "tril": lambda m, x, y: m.tril(x), "triu": lambda m, x, y: m.triu(x, 1),
    "getitem": lambda m, x, y: x[1:, ::2], "masked_fill": lambda m, x, y: m.masked_fill(x, x > 1, 0.0),
    "masked_select": lambda m, x, y: m.masked_select(x, x > 1),
    "masked_scatter": lambda m, x, y: m.masked_scatter(x, x > 1, y),
    "gather": lambda m, x, y: m.gather(x, 1, _i(m, [0, 1], [2, 3], [1, 1])),
    "take": lambda m, x, y: m.take(x, _i(m, 0, 5)),
    "take_along_dim": lambda m, x, y: m.take_along_dim(x, _i(m, [0], [1], [2]), dim=1),
    "index_select": lambda m, x, y: m.index_select(x, 0, _i(m, 2, 0)),
    "index_add": lambda m, x, y: m.index_add(x, 0, _i(m, 2, 0), y[:2]),
    "index_copy": lambda m, x, y: m.index_copy(x, 0, _i(m, 2, 0), y[:2]),
    "index_fill": lambda m, x, y: m.index_fill(x, 0, _i(m, 2), 1.0),
    "scatter": lambda m, x, y: m.scatter(x, 1, _i(m, [0], [1], [2]), y[:, :1]),
    "scatter_add": lambda m, x, y: m.scatter_add(x, 1, _i(m, [0], [1], [2]), y[:, :1]),
    "topk": lambda m, x, y: m.topk(x, 2), "kthvalue": lambda m, x, y: m.kthvalue(x, 2),
    "clamp": lambda m, x, y: m.clamp(x, 0.5, 1.0), "clip": lambda m, x, y: m.clip(x, 0.5, 1.0),
    "multinomial": lambda m, x, y: m.multinomial(x, 2),
    "norm": lambda m, x, y: m.norm(x, p=3), "one_hot": lambda m, x, y: F_of(m).one_hot(_i(m, 0, 2), 3),
    "trace": lambda m, x, y: m.trace(x),
    "searchsorted": lambda m, x, y: m.searchsorted(m.sort(x[0])[0], y[0]),
    "bucketize": lambda m, x, y: m.bucketize(x, m.sort(y[0])[0]),
    "bincount": lambda m, x, y: m.bincount(_i(m, 0, 2, 2), weights=x[0, :3]),
    "histc": lambda m, x, y: m.histc(x, bins=4),
    "unique": lambda m, x, y: m.unique(x, return_counts=True),
    # functional
    # vision layers (issue 15): x viewed as one (1, 1, 3, 4) image
    "F.conv2d": lambda m, x, y: F_of(m).conv2d(x.reshape(1, 1, 3, 4), y[:2, :2].reshape(1, 1, 2, 2)),
    "F.conv1d": lambda m, x, y: F_of(m).conv1d(x.reshape(1, 3, 4), y[:2, :3].reshape(2, 3, 1)),
    "F.conv_transpose2d": lambda m, x, y: F_of(m).conv_transpose2d(x.reshape(1, 1, 3, 4), y[:2, :2].reshape(1, 1, 2, 2)),
    "F.conv_transpose1d": lambda m, x, y: F_of(m).conv_transpose1d(x.reshape(1, 3, 4), y[:3, :2].reshape(3, 1, 2)),
    "F.max_pool2d": lambda m, x, y: F_of(m).max_pool2d(x.reshape(1, 1, 3, 4), 2),
    "F.max_pool1d": lambda m, x, y: F_of(m).max_pool1d(x.reshape(1, 3, 4), 2, return_indices=True),
    "F.avg_pool2d": lambda m, x, y: F_of(m).avg_pool2d(x.reshape(1, 1, 3, 4), 2),
    "F.avg_pool1d": lambda m, x, y: F_of(m).avg_pool1d(x.reshape(1, 3, 4), 2),
    "F.adaptive_avg_pool2d": lambda m, x, y: F_of(m).adaptive_avg_pool2d(x.reshape(1, 1, 3, 4), 2),
    "F.adaptive_avg_pool1d": lambda m, x, y: F_of(m).adaptive_avg_pool1d(x.reshape(1, 3, 4), 3),
    "F.adaptive_max_pool2d": lambda m, x, y: F_of(m).adaptive_max_pool2d(x.reshape(1, 1, 3, 4), 2),
    "F.batch_norm": lambda m, x, y: F_of(m).batch_norm(x.t(), None, None, y[0, :3], y[1, :3], training=True),
    "F.group_norm": lambda m, x, y: F_of(m).group_norm(x.reshape(1, 3, 4), 3, y[0, :3], y[1, :3]),
    "F.dropout2d": lambda m, x, y: F_of(m).dropout2d(x.reshape(1, 1, 3, 4), 0.0),
    "F.dropout1d": lambda m, x, y: F_of(m).dropout1d(x.reshape(1, 3, 4), 0.0),
    "F.interpolate": lambda m, x, y: F_of(m).interpolate(x.reshape(1, 1, 3, 4), scale_factor=2, mode="bilinear"),
    "F.upsample": lambda m, x, y: F_of(m).upsample(x.reshape(1, 1, 3, 4), scale_factor=2),
    "F.unfold": lambda m, x, y: F_of(m).unfold(x.reshape(1, 1, 3, 4), 2),
    "F.fold": lambda m, x, y: F_of(m).fold(x.reshape(1, 4, 3), (2, 4), 2, stride=(1, 1)),
    "F.linear": lambda m, x, y: F_of(m).linear(x, y), "F.cross_entropy": lambda m, x, y: F_of(m).cross_entropy(
        x, _i(m, 0, 2, 1)), "F.nll_loss": lambda m, x, y: F_of(m).nll_loss(x, _i(m, 0, 2, 1)),
    **{f"F.{n}": (lambda m, x, y, n=n: getattr(F_of(m), n)(x, y)) for n in (
        "mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss", "kl_div", "binary_cross_entropy_with_logits",
        "pairwise_distance", "cosine_similarity")},
    "F.binary_cross_entropy": lambda m, x, y: F_of(m).binary_cross_entropy(x.sigmoid(), y.sigmoid()),
    "F.margin_ranking_loss": lambda m, x, y: F_of(m).margin_ranking_loss(x, y, m.ones(3, 4, dtype=m.float64)),
    "F.cosine_embedding_loss": lambda m, x, y: F_of(m).cosine_embedding_loss(x, y, _i(m, 1, -1, 1)),
    "F.triplet_margin_loss": lambda m, x, y: F_of(m).triplet_margin_loss(x, y, x * 2),
    "F.layer_norm": lambda m, x, y: F_of(m).layer_norm(x, (4,), y[0], y[1]),
    "F.embedding": lambda m, x, y: F_of(m).embedding(_i(m, 0, 2), x),
    "F.embedding_bag": lambda m, x, y: F_of(m).embedding_bag(_i(m, 0, 2, 1), x, _i(m, 0, 2), mode="sum",
                                                             per_sample_weights=y[0, :3]),
    "F.pixel_shuffle": lambda m, x, y: F_of(m).pixel_shuffle(x.reshape(1, 4, 3, 1), 2),
    "F.pixel_unshuffle": lambda m, x, y: F_of(m).pixel_unshuffle(x.reshape(1, 1, 2, 6), 2),
    "F.scaled_dot_product_attention": lambda m, x, y: F_of(m).scaled_dot_product_attention(x, y, x),
    "F.pad": lambda m, x, y: F_of(m).pad(x, (1, 1), mode="reflect"),
    "F.glu": lambda m, x, y: F_of(m).glu(x), "F.one_hot": lambda m, x, y: F_of(m).one_hot(_i(m, 0, 2), 3),
    "F.gumbel_softmax": lambda m, x, y: F_of(m).gumbel_softmax(x),
    "F.dropout": lambda m, x, y: F_of(m).dropout(x, 0.5),
    "linalg.cross": lambda m, x, y: m.linalg.cross(x[:, :3], y[:, :3]),
    "linalg.matmul": lambda m, x, y: m.linalg.matmul(x, y.t()),
}


def F_of(m):
    return m.nn.functional


# Tensor methods whose call needs arguments (the others are called as x.method()); in-place ones run on x * 1
METHOD_CALLS = {
    **{n: (lambda m, x, y, n=n: getattr(x, n)(y)) for n in (
        "add", "sub", "mul", "div", "pow", "maximum", "minimum", "eq", "ne", "lt", "le", "gt", "ge", "hypot", "atan2",
        "arctan2", "logaddexp", "isclose", "allclose", "equal", "type_as", "expand_as", "view_as", "reshape_as",
        "__add__", "__radd__", "__sub__", "__rsub__", "__mul__", "__rmul__", "__truediv__", "__rtruediv__",
        "__pow__", "__rpow__", "__floordiv__", "__mod__", "__eq__", "__ne__", "__lt__", "__le__", "__gt__",
        "__ge__", "__rmod__", "remainder", "fmod")},
    **{n: (lambda m, x, y, n=n: getattr(x, n)(1)) for n in (
        "cumsum", "cumprod", "softmax", "log_softmax", "unbind", "chunk", "split", "unsqueeze", "logsumexp", "size",
        "stride", "kthvalue", "topk", "roll", "tile", "flip", "repeat_interleave", "clamp_min", "clamp_max",
        "squeeze", "amax")},
    "matmul": lambda m, x, y: x.matmul(y.t()), "__matmul__": lambda m, x, y: x @ y.t(),
    "__rmatmul__": lambda m, x, y: x.__rmatmul__(y.t()),
    "mm": lambda m, x, y: x.mm(y.t()), "bmm": lambda m, x, y: x.unsqueeze(0).bmm(y.t().unsqueeze(0)),
    "dot": lambda m, x, y: x[0].dot(y[0]), "inner": lambda m, x, y: x.inner(y), "mv": lambda m, x, y: x.mv(y[0]),
    "outer": lambda m, x, y: x[0].outer(y[0]), "ger": lambda m, x, y: x[0].ger(y[0]), "kron": lambda m, x, y: x.kron(y),
    "addmm": lambda m, x, y: x.addmm(x, y.t().mm(y)), "addmv": lambda m, x, y: x[0, :3].addmv(x[:, :3].t(), y[:, 0]),
    "baddbmm": lambda m, x, y: x.unsqueeze(0).baddbmm(x.unsqueeze(0), y.t().mm(y).unsqueeze(0)),
    "addbmm": lambda m, x, y: x.addbmm(x.unsqueeze(0), y.t().mm(y).unsqueeze(0)),
    "cross": lambda m, x, y: x[:, :3].cross(y[:, :3], dim=1),
    "where": lambda m, x, y: x.where(x > 1, y), "lerp": lambda m, x, y: x.lerp(y, 0.3),
    "clamp": lambda m, x, y: x.clamp(0.5, 1.0), "clip": lambda m, x, y: x.clip(0.5, 1.0),
    "transpose": lambda m, x, y: x.transpose(0, 1), "permute": lambda m, x, y: x.permute(1, 0),
    "reshape": lambda m, x, y: x.reshape(4, 3), "view": lambda m, x, y: x.view(4, 3),
    "unflatten": lambda m, x, y: x.unflatten(1, (2, 2)), "expand": lambda m, x, y: x[:1].expand(2, 4),
    "narrow": lambda m, x, y: x.narrow(1, 1, 2), "movedim": lambda m, x, y: x.movedim(0, 1),
    "moveaxis": lambda m, x, y: x.moveaxis(0, 1), "repeat": lambda m, x, y: x.repeat(2, 1),
    "unfold": lambda m, x, y: x.unfold(1, 2, 1),
    "masked_fill": lambda m, x, y: x.masked_fill(x > 1, 0.0), "masked_select": lambda m, x, y: x.masked_select(x > 1),
    "masked_scatter": lambda m, x, y: x.masked_scatter(x > 1, y),
    "gather": lambda m, x, y: x.gather(1, _i(m, [0, 1], [2, 3], [1, 1])),
    "take": lambda m, x, y: x.take(_i(m, 0, 5)),
    "take_along_dim": lambda m, x, y: x.take_along_dim(_i(m, [0], [1], [2]), dim=1),
    "index_select": lambda m, x, y: x.index_select(0, _i(m, 2, 0)),
    "index_add": lambda m, x, y: x.index_add(0, _i(m, 2, 0), y[:2]),
    "index_copy": lambda m, x, y: x.index_copy(0, _i(m, 2, 0), y[:2]),
    "index_fill": lambda m, x, y: x.index_fill(0, _i(m, 2), 1.0),
    "scatter": lambda m, x, y: x.scatter(1, _i(m, [0], [1], [2]), y[:, :1]),
    "scatter_add": lambda m, x, y: x.scatter_add(1, _i(m, [0], [1], [2]), y[:, :1]),
    "multinomial": lambda m, x, y: x.multinomial(2), "to": lambda m, x, y: x.to(m.float32),
    "type": lambda m, x, y: x.type(m.float32), "bincount": lambda m, x, y: _i(m, 0, 2, 2).bincount(x[0, :3]),
    "histc": lambda m, x, y: x.histc(4), "unique": lambda m, x, y: x.unique(return_counts=True),
    "__getitem__": lambda m, x, y: x[1:, ::2], "__and__": lambda m, x, y: (x > 1) & (y > 1),
    "__or__": lambda m, x, y: (x > 1) | (y > 1), "__xor__": lambda m, x, y: (x > 1) ^ (y > 1),
    "__invert__": lambda m, x, y: ~(x > 1), "__iter__": lambda m, x, y: list(iter(x)),
    "norm": lambda m, x, y: x.norm(p=3, dim=1),
    # in place (on a non-leaf)
    **{n: (lambda m, x, y, n=n: getattr(x * 1, n)(y)) for n in (
        "add_", "sub_", "mul_", "div_", "pow_", "hypot_", "atan2_", "arctan2_", "remainder_", "fmod_", "copy_", "__iadd__", "__isub__",
        "__imul__", "__itruediv__")},
    **{n: (lambda m, x, y, n=n: getattr(x * 1, n)(1)) for n in (
        "cumsum_", "cumprod_", "unsqueeze_", "squeeze_", "clamp_min_", "clamp_max_", "fill_", "tril_", "triu_")},
    "lerp_": lambda m, x, y: (x * 1).lerp_(y, 0.3), "clamp_": lambda m, x, y: (x * 1).clamp_(0.5, 1.0),
    "clip_": lambda m, x, y: (x * 1).clip_(0.5, 1.0), "transpose_": lambda m, x, y: (x * 1).transpose_(0, 1),
    "masked_fill_": lambda m, x, y: (x * 1).masked_fill_(x > 1, 0.0),
    "masked_scatter_": lambda m, x, y: (x * 1).masked_scatter_(x > 1, y),
    "addmm_": lambda m, x, y: (x * 1).addmm_(x, y.t().mm(y)),
    "addmv_": lambda m, x, y: (x[0, :3] * 1).addmv_(x[:, :3].t(), y[:, 0]),
    "baddbmm_": lambda m, x, y: (x.unsqueeze(0) * 1).baddbmm_(x.unsqueeze(0), y.t().mm(y).unsqueeze(0)),
    "addbmm_": lambda m, x, y: (x * 1).addbmm_(x.unsqueeze(0), y.t().mm(y).unsqueeze(0)),
    "index_add_": lambda m, x, y: (x * 1).index_add_(0, _i(m, 2, 0), y[:2]),
    "index_copy_": lambda m, x, y: (x * 1).index_copy_(0, _i(m, 2, 0), y[:2]),
    "index_fill_": lambda m, x, y: (x * 1).index_fill_(0, _i(m, 2), 1.0),
    "scatter_": lambda m, x, y: (x * 1).scatter_(1, _i(m, [0], [1], [2]), y[:, :1]),
    "scatter_add_": lambda m, x, y: (x * 1).scatter_add_(1, _i(m, [0], [1], [2]), y[:, :1]),
    "__setitem__": lambda m, x, y: _setitem(x * 1, y),
}


def _setitem(t, v):
    t[0] = v[1]
    return t


# Not ops on a tensor's values: attributes, conversions, autograd plumbing, constructors of new tensors.
NOT_OPS = {
    "size", "stride", "dim", "numel", "nelement", "element_size", "is_floating_point", "is_contiguous", "data_ptr",
    "numpy", "item", "tolist", "cpu", "backward", "detach", "detach_", "retain_grad", "register_hook",
    "register_post_accumulate_grad_hook", "requires_grad_", "new_tensor", "new_zeros", "new_ones", "new_full",
    "new_empty", "uniform_", "normal_", "bernoulli_", "zero_", "__len__", "__bool__", "__float__", "__int__",
    "__index__", "__hash__", "__array__", "__repr__", "__str__", "__format__", "__getstate__", "__setstate__",
    "__init__", "__iter__", "multinomial",  # sampling: an integer result, tested for requires_grad=False below
    "getitem", "setitem",  # the functions behind __getitem__ / __setitem__ (no torch twin by these names)
    "float", "double", "half", "long", "int", "bool",  # casts: covered by "to"
    # devices and legacy storage queries (PyTorch compatibility block; tests/test_compat.py): they raise without an
    # accelerator, as PyTorch's, or return no tensor
    "cuda", "pin_memory", "is_pinned", "get_device", "storage", "untyped_storage",
}

# Where pyengine differs from PyTorch on purpose (the reason is the value).
DEVIATIONS = {
    "unique": "PyTorch marks unique's float output as requiring grad with a backward that raises "
              "(derivative for _unique2 is not implemented); pyengine returns it outside the graph",
    "Tensor.unique": "as unique",
    "bincount": "PyTorch's bincount(weights=) output requires grad with a backward that raises; pyengine's does not",
    "Tensor.bincount": "as bincount",
    "Tensor.fill_": "fill_ with a number cuts the tensor out of the graph (requires_grad=False); PyTorch keeps "
                    "a node whose gradient is zero. The gradients agree",
}


def _public():
    names = [n for n in pe.ops.__all__]
    names += [f"F.{n}" for n in F.__all__]
    names += [f"linalg.{n}" for n in pe.linalg.__all__]
    methods = []
    for n, v in vars(pe.Tensor).items():
        if callable(v) and not isinstance(v, (staticmethod, classmethod, type)) and (
                not n.startswith("_") or n in _DUNDER_OPS):
            methods.append(f"Tensor.{n}")
    return sorted(set(names)) + sorted(methods)


_DUNDER_OPS = {"__add__", "__radd__", "__sub__", "__rsub__", "__mul__", "__rmul__", "__truediv__", "__rtruediv__",
               "__floordiv__", "__mod__", "__pow__", "__rpow__", "__matmul__", "__rmatmul__", "__neg__", "__pos__",
               "__abs__", "__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__", "__and__", "__or__", "__xor__",
               "__invert__", "__getitem__", "__setitem__", "__iadd__", "__isub__", "__imul__", "__itruediv__"}


def _resolve(m, name):
    """The callable ``name`` of module m (pyengine or torch), or None if it has none. A plain name that
    torch has only in nn.functional (elu, softplus, ...) or only as a Tensor method (contiguous) is found
    there."""
    if name.startswith("F."):
        return getattr(m.nn.functional, name[2:], None)
    if name.startswith("linalg."):
        return getattr(m.linalg, name[7:], None)
    fn = getattr(m, name, None) or getattr(m.nn.functional, name, None)
    if fn is None and hasattr(m.Tensor, name):
        return lambda x: getattr(x, name)()
    return fn


def _call(m, name):
    """(result, inputs) of ``name`` called on module m's tensors."""
    x = m.tensor(X, dtype=m.float64, requires_grad=True)
    y = m.tensor(Y, dtype=m.float64, requires_grad=True)
    return _call_on(m, name, x, y), (x, y)


def _call_on(m, name, x, y):
    if name.startswith("Tensor."):
        meth = name[7:]
        if meth in METHOD_CALLS:
            return METHOD_CALLS[meth](m, x, y)
        if not hasattr(x, meth):  # torch has some activations only in nn.functional
            fn = getattr(m.nn.functional, meth, None)
            return _Missing() if fn is None else fn(x)
        target = x * 1 if meth.endswith("_") and not meth.startswith("__") else x
        return getattr(target, meth)()
    if name in CALLS:
        return CALLS[name](m, x, y)
    fn = _resolve(m, name)
    if fn is None:
        return _Missing()
    return fn(x)


class _Missing:
    pass


def _tensors(r):
    if isinstance(r, (pe.Tensor, torch.Tensor)):
        return [r]
    if isinstance(r, (tuple, list)):
        return [t for e in r for t in _tensors(e)]
    return []


AUDITED = [n for n in _public() if n.split(".")[-1] not in NOT_OPS and n not in NOT_OPS]


@pytest.mark.parametrize("name", AUDITED)
def test_graph_node_like_pytorch(name):
    try:
        ours, inputs = _call(pe, name)
    except TypeError as e:
        pytest.fail(f"{name}: the default call op(x) does not fit its signature ({e}); add it to CALLS / METHOD_CALLS")
    assert not isinstance(ours, _Missing), f"{name}: not found"
    theirs = _call(torch, name)[0]
    if name in DEVIATIONS:
        for t in _tensors(ours):
            assert not t.requires_grad or t.grad_fn is not None
        return
    assert not isinstance(theirs, _Missing), f"{name}: PyTorch has no such op; list it in DEVIATIONS or NOT_OPS"
    a, b = _tensors(ours), _tensors(theirs)
    assert len(a) == len(b), (name, len(a), len(b))
    for k, (t, u) in enumerate(zip(a, b)):
        assert t.requires_grad == u.requires_grad, (
            f"{name}: output {k} requires_grad={t.requires_grad}, PyTorch's {u.requires_grad}")
        if t.requires_grad:  # a node, or the input itself handed back (contiguous() of a contiguous x)
            assert t.grad_fn is not None or any(t is i for i in inputs), (
                f"{name}: output {k} requires grad but has no grad_fn")


def test_integer_results_do_not_require_grad():
    x = pe.tensor(X, requires_grad=True)
    for r in (x.argmax(), x.argsort(), pe.multinomial(x, 2), x.sort()[1], x.topk(2)[1], x.max(1)[1],
              pe.bucketize(x, pe.tensor([0.5, 1.0])), x > 1, x.isnan(), pe.unique(x)):
        assert not r.requires_grad and r.grad_fn is None


def test_the_audit_covers_every_public_op():
    """The walk found the ops this issue added (a sanity check of the walk itself)."""
    names = set(_public())
    for n in ("cumsum", "repeat_interleave", "einsum", "F.kl_div", "linalg.vector_norm", "Tensor.index_add_",
              "Tensor.__mod__"):
        assert n in names, n
    assert inspect.isfunction(pe.Tensor.cumsum)
