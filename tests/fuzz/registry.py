"""The fuzzed surface: one Entry per public callable of pyengine, with how to draw its arguments.

An Entry's ``build`` strategy draws a well-formed Case (compatible shapes, in-range indices, but
awkward dtypes, sizes, values and layouts); the harness then sometimes swaps one argument for a bad
value of its kind (strategies.mutate). ``run(case)`` makes the live arguments and performs the call.

``nan``: what a NaN in a float input must do to the output, where the math says so:
    "elementwise"  every output position fed by a NaN input position is NaN
    "any"          a NaN in the input makes some output NaN (reductions, rows, losses)
``compare``: "values" (both backends' results equal within tolerance, NaNs at the same places),
    "meta" (same shapes and dtypes only: empty() is uninitialised).
``names``: the names an error message may use for this callable (its public name first).

``PUBLIC`` lists what must have an entry: every function exported by pyengine, pyengine.nn.functional,
the nn modules, optimizers and lr schedulers; ``EXCLUDED`` says why a few are left out.
"""
import copy
import math
from dataclasses import dataclass

import numpy as np
from hypothesis import strategies as st

import pyengine as pe
import pyengine.nn as nn
import pyengine.nn.functional as F
from pyengine.optim import lr_scheduler as LR

from strategies import (ALL_DTYPES, FLOATS, INTS, Arg, Case, TensorSpec, broadcast_shape, dim_of, float_tensors,
                        make_value, shapes, tensors, values)


@dataclass(eq=False)
class Entry:
    name: str
    build: object               # strategy of Case
    run: object                 # Case -> result
    nan: object = None          # None, "elementwise", "any"
    compare: str = "values"
    names: tuple = ()
    group: str = "ops"

    def accepted_names(self):
        return (self.name,) + tuple(self.names)


def A(kind, value, optional=False):
    return Arg(kind, value, optional)


def call(fn, prefix=""):
    """run() for a plain function: fn(*positional, **keywords) with the case's values made live."""
    def run(case):
        pos = [make_value(a.value) for a in case.positional(prefix)]
        kw = {k: make_value(a.value) for k, a in case.keywords(prefix).items()}
        return fn(*pos, **kw)
    return run


ENTRIES = []


def _seeded(fn):
    """A random op, seeded the same way for both backends."""
    def run(*a, **k):
        pe.manual_seed(0)
        return fn(*a, **k)
    return run


def entry(name, fn, build, nan=None, compare="values", names=(), group="ops", run=None):
    ENTRIES.append(Entry(name, build, run or call(fn), nan, compare, tuple(names), group))


# ---------------------------------------------------------------------- shared builders


def _extra(draw, args, extra):
    """Optional keyword arguments: name -> (kind, strategy[, None is meaningful]), each drawn or left out."""
    for k, spec in extra.items():
        if draw(st.booleans()):
            args[k] = A(spec[0], draw(spec[1]), len(spec) > 2 and spec[2])
    return args


@st.composite
def unary(draw, dtypes=ALL_DTYPES, **extra):
    return Case(_extra(draw, {"0": A("tensor", draw(tensors(dtypes=dtypes)))}, extra))


@st.composite
def partner(draw, x, dtypes=None, scalar=True):
    """A second operand for x: a broadcasting tensor (either side bigger) or a Python number."""
    if scalar and draw(st.integers(0, 3)) == 0:
        return draw(st.sampled_from([2, -1.5, 0, 0.5, True, float("nan"), np.float64(3.0)]))
    shp = draw(broadcast_shape(x.values.shape))
    dt = x.values.dtype.name if dtypes is None and draw(st.integers(0, 3)) else None
    return draw(tensors(shape=shp, dtypes=(dt,) if dt else (dtypes or ALL_DTYPES)))


@st.composite
def binary(draw, dtypes=ALL_DTYPES, scalar=True, **extra):
    a = draw(tensors(dtypes=dtypes))
    b = draw(partner(a, None if dtypes is ALL_DTYPES else dtypes, scalar))
    if isinstance(b, TensorSpec) and draw(st.booleans()):
        a, b = b, a
    return Case(_extra(draw, {"0": A("tensor", a), "1": A("tensor", b)}, extra))


@st.composite
def reduction(draw, dtypes=ALL_DTYPES, multi=True, required=False, keepdim=True, extra=None):
    x = draw(tensors(dtypes=dtypes))
    nd = x.values.ndim
    args = {"0": A("tensor", x)}
    choice = draw(st.integers(0, 2 if multi else 1))
    if required or choice == 1:
        args["dim"] = A("dim", dim_of(draw, nd))
    elif choice == 2 and nd:
        args["dim"] = A("dim", tuple(sorted({dim_of(draw, nd) % nd for _ in range(draw(st.integers(1, nd)))})))
    elif draw(st.booleans()):
        args["dim"] = A("dim", None, optional=True)
    if keepdim and draw(st.booleans()):
        args["keepdim"] = A("bool", draw(st.booleans()))
    return Case(_extra(draw, args, extra or {}))


@st.composite
def with_dim(draw, dtypes=ALL_DTYPES, min_ndim=0, extra_dim=0, **extra):
    x = draw(tensors(dtypes=dtypes, min_ndim=min_ndim))
    args = {"0": A("tensor", x), "1": A("dim", dim_of(draw, x.values.ndim, extra_dim))}
    for k, (kind, strat) in extra.items():
        args[k] = A(kind, draw(strat))
    return Case(args)


ints = st.integers
small = st.integers(0, 6)
reals = st.sampled_from([0.0, 1.0, -2.5, 0.5, 1e-5, float("nan"), float("inf")])

# ---------------------------------------------------------------------- elementwise

for _n, _nan in [("neg", "elementwise"), ("exp", "elementwise"), ("log", "elementwise"), ("sqrt", "elementwise"),
                 ("rsqrt", "elementwise"), ("abs", "elementwise"), ("sin", "elementwise"), ("cos", "elementwise"),
                 ("tanh", "elementwise"), ("sigmoid", "elementwise"), ("silu", "elementwise"),
                 ("relu", "elementwise"), ("sign", None), ("floor", "elementwise"), ("ceil", "elementwise"),
                 ("isnan", None), ("isinf", None), ("isfinite", None), ("logical_not", None)]:
    entry(_n, getattr(pe, _n), unary())
entry("gelu", pe.gelu, unary(approximate=("choice", st.sampled_from(["none", "tanh"]))), nan="elementwise")
entry("round", pe.round, unary(decimals=("int", ints(-2, 3))), nan="elementwise")


@st.composite
def clamp_case(draw):
    x = draw(tensors())
    args = {"0": A("tensor", x)}
    for k in ("min", "max"):
        if draw(st.integers(0, 2)):
            v = draw(partner(x)) if draw(st.booleans()) else draw(st.sampled_from([-1.0, 0, 2, 0.5]))
            args[k] = A("tensor", v, optional=True)
    return Case(args)


entry("clamp", pe.clamp, clamp_case(), nan="elementwise")
entry("clip", pe.clip, clamp_case(), nan="elementwise", names=("clamp",))

for _n, _nan in [("add", "elementwise"), ("sub", "elementwise"), ("mul", "elementwise"), ("div", "elementwise"),
                 ("pow", None), ("maximum", "elementwise"), ("minimum", "elementwise"), ("eq", None),
                 ("ne", None), ("lt", None), ("le", None), ("gt", None), ("ge", None), ("logical_and", None),
                 ("logical_or", None), ("logical_xor", None), ("equal", None)]:
    entry(_n, getattr(pe, _n), binary(), nan=_nan)
entry("allclose", pe.allclose, binary(rtol=("float", reals), equal_nan=("bool", st.booleans())))
entry("div_rounding", pe.div, binary(rounding_mode=("choice", st.sampled_from([None, "floor", "trunc"]), True)),
      names=("div",))
entry("add_alpha", pe.add, binary(alpha=("float", st.sampled_from([1, 2, -0.5]))), names=("add",))


@st.composite
def where_case(draw):
    a = draw(tensors())
    cond = draw(tensors(shape=draw(broadcast_shape(a.values.shape)), dtypes=("bool", "bool", "int64")))
    b = draw(partner(a))
    return Case({"0": A("tensor", cond), "1": A("tensor", a), "2": A("tensor", b)})


entry("where", pe.where, where_case())

# ---------------------------------------------------------------------- reductions

for _n, _nan in [("sum", "any"), ("mean", "any"), ("amax", "any"), ("amin", "any")]:
    entry(_n, getattr(pe, _n), reduction(), nan=_nan)
entry("var", pe.var, reduction(extra={"unbiased": ("bool", st.booleans()),
                                     "correction": ("int", ints(0, 2), True)}),   # None: from unbiased
      nan="any")
entry("std", pe.std, reduction(extra={"unbiased": ("bool", st.booleans())}), nan="any", names=("var",))
entry("max", pe.max, reduction(multi=False), nan="any")
entry("min", pe.min, reduction(multi=False), nan="any")
entry("logsumexp", pe.logsumexp, reduction(required=True), nan="any")
entry("prod", pe.prod, reduction(multi=False), nan="any")
entry("argmax", pe.argmax, reduction(multi=False))
entry("argmin", pe.argmin, reduction(multi=False))
entry("all", pe.all, reduction(multi=False, keepdim=False))
entry("any", pe.any, reduction(multi=False, keepdim=False))
entry("count_nonzero", pe.count_nonzero, reduction(multi=False, keepdim=False))
entry("cumsum", pe.cumsum, with_dim(), nan="any")
entry("softmax", pe.softmax, with_dim(dtypes=ALL_DTYPES), nan="any")
entry("log_softmax", pe.log_softmax, with_dim(), nan="any")
entry("topk", pe.topk, with_dim(min_ndim=1, k=("int", small), largest=("bool", st.booleans())))
entry("sort", pe.sort, with_dim(descending=("bool", st.booleans())), names=("topk",))
entry("argsort", pe.argsort, with_dim(descending=("bool", st.booleans())), names=("sort", "topk"))

# ---------------------------------------------------------------------- shape and indexing


@st.composite
def reshape_case(draw, fn_name):
    x = draw(tensors())
    n = x.values.size
    # a target shape with the same numel (sometimes -1, sometimes wrong)
    divisors = [d for d in range(1, n + 1) if n % d == 0] or [0]
    d = draw(st.sampled_from(divisors))
    target = [d, n // d if d else 0]
    if draw(st.booleans()):
        target[draw(ints(0, 1))] = -1
    if draw(st.integers(0, 4)) == 0:
        target[0] += 1
    if draw(st.booleans()):
        return Case({"0": A("tensor", x), "1": A("shape", tuple(target))})
    return Case({"0": A("tensor", x), "1": A("size", target[0]), "2": A("size", target[1])})


entry("reshape", pe.reshape, reshape_case("reshape"))
entry("view", pe.view, reshape_case("view"))


@st.composite
def flatten_case(draw):
    x = draw(tensors())
    args = {"0": A("tensor", x)}
    if draw(st.booleans()):
        args["start_dim"] = A("dim", dim_of(draw, x.values.ndim))
    if draw(st.booleans()):
        args["end_dim"] = A("dim", dim_of(draw, x.values.ndim))
    return Case(args)


entry("flatten", pe.flatten, flatten_case())


@st.composite
def unflatten_case(draw):
    x = draw(tensors(min_ndim=1))
    d = dim_of(draw, x.values.ndim)
    n = x.values.shape[d]
    sizes = draw(st.sampled_from([(n,), (1, n), (n, 1), (-1, 1), (2, -1), (n + 1,)]))
    return Case({"0": A("tensor", x), "1": A("dim", d), "2": A("shape", sizes)})


entry("unflatten", pe.unflatten, unflatten_case(), names=("reshape",))


@st.composite
def permute_case(draw):
    x = draw(tensors())
    nd = x.values.ndim
    perm = list(draw(st.permutations(range(nd))))
    if perm and draw(st.booleans()):
        perm[0] -= nd
    if draw(st.integers(0, 5)) == 0:
        perm = perm[:-1] if perm else [0]
    if draw(st.booleans()):
        return Case({"0": A("tensor", x), "1": A("shape", tuple(perm))})
    return Case({"0": A("tensor", x), **{str(i + 1): A("dim", p) for i, p in enumerate(perm)}})


entry("permute", pe.permute, permute_case())


@st.composite
def two_dims(draw):
    x = draw(tensors())
    nd = x.values.ndim
    return Case({"0": A("tensor", x), "1": A("dim", dim_of(draw, nd)), "2": A("dim", dim_of(draw, nd))})


entry("transpose", pe.transpose, two_dims())
entry("t", pe.t, unary(), names=("t()", "transpose"))
entry("unsqueeze", pe.unsqueeze, with_dim(extra_dim=1))


@st.composite
def squeeze_case(draw):
    x = draw(tensors())
    args = {"0": A("tensor", x)}
    if draw(st.booleans()):
        args["1"] = A("dim", dim_of(draw, x.values.ndim), optional=True)
    return Case(args)


entry("squeeze", pe.squeeze, squeeze_case())


@st.composite
def expand_case(draw):
    x = draw(tensors())
    shp = list(x.values.shape)
    target = [draw(st.sampled_from([s, -1])) if s != 1 else draw(st.sampled_from([1, 3, 0, -1])) for s in shp]
    lead = [draw(st.sampled_from([2, 1, 0])) for _ in range(draw(ints(0, 2)))]
    sizes = tuple(lead + target)
    if draw(st.integers(0, 5)) == 0 and sizes:
        sizes = sizes[:-1] + (sizes[-1] + 2,)
    return x, sizes


@st.composite
def expand_args(draw):
    x, sizes = draw(expand_case())
    if draw(st.booleans()):
        return Case({"0": A("tensor", x), "1": A("shape", sizes)})
    return Case({"0": A("tensor", x), **{str(i + 1): A("size", s) for i, s in enumerate(sizes)}})


@st.composite
def broadcast_to_case(draw):
    x, sizes = draw(expand_case())
    return Case({"0": A("tensor", x), "1": A("shape", sizes)})


@st.composite
def expand_as_case(draw):
    x, sizes = draw(expand_case())
    other = TensorSpec(np.zeros([max(s, 0) if s != -1 else 1 for s in sizes], np.float32))
    return Case({"0": A("tensor", x), "1": A("tensor", other)})


entry("expand", pe.expand, expand_args())
entry("broadcast_to", pe.broadcast_to, broadcast_to_case(), names=("expand",))
entry("expand_as", pe.expand_as, expand_as_case(), names=("expand",))
entry("contiguous", pe.contiguous, unary())
entry("clone", pe.clone, unary())


@st.composite
def cat_case(draw, stack=False):
    x = draw(tensors(min_ndim=0 if stack else 1))
    nd = x.values.ndim
    d = dim_of(draw, nd, 1 if stack else 0)
    parts = [x]
    for _ in range(draw(ints(0, 3))):
        shp = list(x.values.shape)
        if not stack and nd:
            shp[d % nd] = draw(st.sampled_from([0, 1, 2]))
        if draw(st.integers(0, 6)) == 0 and shp:
            shp[0] += 1   # a mismatch
        dt = x.values.dtype.name if draw(st.integers(0, 3)) else draw(st.sampled_from(ALL_DTYPES))
        parts.append(draw(tensors(shape=tuple(shp), dtypes=(dt,))))
    seq = parts if draw(st.booleans()) else tuple(parts)
    return Case({"0": A("tensors", seq), "1": A("dim", d)})


for _n in ("cat", "concat", "concatenate"):
    entry(_n, getattr(pe, _n), cat_case(), names=("cat",))
entry("stack", pe.stack, cat_case(stack=True))


@st.composite
def split_case(draw):
    x = draw(tensors(min_ndim=1))
    d = dim_of(draw, x.values.ndim)
    n = x.values.shape[d]
    if draw(st.booleans()):
        s = A("size", draw(ints(1, 4)))
    else:
        k = draw(ints(1, 3))
        cuts = sorted(draw(ints(0, n)) for _ in range(k - 1))
        sizes = [b - a for a, b in zip([0] + cuts, cuts + [n])]
        if draw(st.integers(0, 5)) == 0:
            sizes[-1] += 1
        s = A("shape", sizes)
    return Case({"0": A("tensor", x), "1": s, "dim": A("dim", d)})


entry("split", pe.split, split_case())
entry("chunk", pe.chunk, with_dim(min_ndim=1, chunks=("size", ints(1, 4))), names=("chunk",))
entry("unbind", pe.unbind, with_dim(min_ndim=1))


@st.composite
def index_value(draw, shape):
    """An index for a tensor of ``shape``: ints, slices (negative steps too), None, Ellipsis, bool masks,
    int arrays, sometimes out of range."""
    items = []
    for s in shape[:draw(ints(0, len(shape)))]:
        kind = draw(ints(0, 5))
        if kind == 0 and s:
            items.append(draw(ints(-s, s - 1)))
        elif kind == 1:
            items.append(slice(draw(st.sampled_from([None, 0, 1, -1])), draw(st.sampled_from([None, 2, -1, 9])),
                               draw(st.sampled_from([None, 1, 2, -1]))))
        elif kind == 2:
            items.append(None)
        elif kind == 3:
            items.append(TensorSpec(values(draw, (draw(ints(0, 3)),), "int64", low=-s if s else 0,
                                           high=max(s, 1))))
        elif kind == 4:
            items.append(draw(st.sampled_from([s, -s - 1, 2 ** 63 - 1, ...])))   # out of range, or ...
        else:
            items.append(slice(None))
    if draw(st.integers(0, 4)) == 0 and shape:
        return TensorSpec(values(draw, shape, "bool"))
    return tuple(items) if draw(st.booleans()) or len(items) != 1 else items[0]


@st.composite
def getitem_case(draw):
    x = draw(tensors())
    return Case({"0": A("tensor", x), "1": A("any", draw(index_value(x.values.shape)))})


entry("getitem", pe.getitem, getitem_case(), names=("index",))


def _run_setitem(case):
    x, index, value = (make_value(a.value) for a in case.positional())
    pe.setitem(x, index, value)
    return x


@st.composite
def setitem_case(draw):
    x = draw(tensors(grad=False))
    v = draw(st.sampled_from([0, 1.5, float("nan")])) if draw(st.booleans()) else \
        draw(tensors(shape=draw(shapes(0, 1)), grad=False))
    return Case({"0": A("tensor", x), "1": A("any", draw(index_value(x.values.shape))), "2": A("tensor", v)})


entry("setitem", pe.setitem, setitem_case(), run=_run_setitem, names=("index",))


@st.composite
def masked_fill_case(draw):
    x = draw(tensors())
    m = draw(tensors(shape=draw(broadcast_shape(x.values.shape)), dtypes=("bool", "bool", "int64")))
    v = draw(st.sampled_from([0.0, -1e9, float("-inf"), float("nan"), 3, True]))
    return Case({"0": A("tensor", x), "1": A("tensor", m), "2": A("float", v)})


entry("masked_fill", pe.masked_fill, masked_fill_case())


@st.composite
def tri_case(draw):
    x = draw(tensors())
    return Case({"0": A("tensor", x), "diagonal": A("int", draw(ints(-3, 3)))})


entry("tril", pe.tril, tri_case())
entry("triu", pe.triu, tri_case())


@st.composite
def gather_case(draw):
    x = draw(tensors(min_ndim=1))
    nd = x.values.ndim
    d = dim_of(draw, nd)
    shp = tuple(draw(ints(0, s)) if i != (d % nd) else draw(ints(0, 3)) for i, s in enumerate(x.values.shape))
    n = x.values.shape[d]
    idx = draw(tensors(shape=shp, dtypes=("int64", "int64", "int32", "float32"), low=-n - 1 if n else 0,
                       high=n + 1 if n else 1))
    return Case({"0": A("tensor", x), "1": A("dim", d), "2": A("tensor", idx)})


entry("gather", pe.gather, gather_case())


@st.composite
def one_hot_case(draw):
    x = draw(tensors(dtypes=("int64", "int64", "int32", "float32"), low=-1, high=5))
    args = {"0": A("tensor", x)}
    if draw(st.booleans()):
        args["num_classes"] = A("int", draw(ints(-1, 6)))
    return Case(args)


entry("one_hot", pe.one_hot, one_hot_case())
entry("F.one_hot", F.one_hot, one_hot_case(), names=("one_hot",), group="functional")


@st.composite
def multinomial_case(draw):
    p = draw(tensors(shape=draw(shapes(1, 2)), dtypes=FLOATS, low=0.0, high=1.0))
    return Case({"0": A("tensor", p), "1": A("size", draw(ints(0, 4))),
                 "replacement": A("bool", draw(st.booleans()))})


entry("multinomial", _seeded(pe.multinomial), multinomial_case())


@st.composite
def flip_case(draw):
    x = draw(tensors())
    nd = x.values.ndim
    dims = [dim_of(draw, nd) for _ in range(draw(ints(0, 2)))]
    return Case({"0": A("tensor", x), "1": A("shape", dims if draw(st.booleans()) or len(dims) != 1 else dims[0])})


entry("flip", pe.flip, flip_case())


@st.composite
def repeat_case(draw):
    x = draw(tensors())
    args = {"0": A("tensor", x), "1": A("size", draw(ints(0, 3)))}
    if draw(st.booleans()):
        args["dim"] = A("dim", dim_of(draw, x.values.ndim), optional=True)
    return Case(args)


entry("repeat_interleave", pe.repeat_interleave, repeat_case())

# ---------------------------------------------------------------------- linear algebra


@st.composite
def matmul_case(draw, kind="matmul"):
    M, K, N = (draw(st.sampled_from((0, 1, 2, 3, 5))) for _ in range(3))
    dt = draw(st.sampled_from(("float32", "float32", "float64", "int64", "float16")))
    if kind == "mm":
        sa, sb = (M, K), (K, N)
    elif kind == "bmm":
        B = draw(st.sampled_from((0, 1, 2)))
        sa, sb = (B, M, K), (B, K, N)
    elif kind == "dot":
        sa, sb = (K,), (K,)
    else:
        sa = tuple(draw(shapes(0, 2, sizes=(1, 2, 3)))) + ((M, K) if draw(ints(0, 3)) else (K,))
        sb = tuple(draw(shapes(0, 2, sizes=(1, 2, 3)))) + ((K, N) if draw(ints(0, 3)) else (K,))
    if draw(st.integers(0, 6)) == 0:
        sb = sb[:-1] + (sb[-1] + 1,) if len(sb) == 1 else sb[:-2] + (sb[-2] + 1, sb[-1])
    dtb = dt if draw(ints(0, 5)) else "float64"
    return Case({"0": A("tensor", draw(tensors(shape=sa, dtypes=(dt,)))),
                 "1": A("tensor", draw(tensors(shape=sb, dtypes=(dtb,))))})


for _n in ("matmul", "mm", "bmm", "dot"):
    entry(_n, getattr(pe, _n), matmul_case(_n), nan="any", names=("matmul",))

# ---------------------------------------------------------------------- factories


@st.composite
def sizes_case(draw, first_only=False):
    shp = draw(shapes(0, 3))
    if draw(st.booleans()):
        args = {"0": A("shape", shp)}
    else:
        args = {str(i): A("size", s) for i, s in enumerate(shp)}
    if draw(st.booleans()):
        args["dtype"] = A("dtype", draw(st.sampled_from([pe.float32, pe.float64, pe.int64, pe.bool, pe.float16,
                                                         pe.int32, None])), optional=True)
    if draw(st.integers(0, 3)) == 0:
        args["requires_grad"] = A("bool", draw(st.booleans()))
    return Case(args)


for _n in ("zeros", "ones"):
    entry(_n, getattr(pe, _n), sizes_case(), group="factories")
entry("empty", pe.empty, sizes_case(), compare="meta", group="factories")
for _n in ("randn", "rand"):
    entry(_n, _seeded(getattr(pe, _n)), sizes_case(), group="factories")


@st.composite
def full_case(draw):
    return Case({"0": A("shape", draw(shapes(0, 3))), "1": A("float", draw(st.sampled_from([0, 1.5, True, -3,
                                                                                        float("nan")]))),
                 "dtype": A("dtype", draw(st.sampled_from([None, pe.float32, pe.int64, pe.bool])), optional=True)})


entry("full", pe.full, full_case(), group="factories")


@st.composite
def like_case(draw, fill=False, randint=False):
    args = {"0": A("tensor", draw(tensors()))}
    if fill:
        args["1"] = A("float", draw(st.sampled_from([0, 2.5, float("inf")])))
    if randint:   # randint_like(t, high) or (t, low, high)
        args["1"] = A("int", draw(ints(0, 3)))
        args["2"] = A("int", draw(ints(4, 9)), optional=True)
    if draw(st.booleans()):
        args["dtype"] = A("dtype", draw(st.sampled_from([pe.float32, pe.float64, pe.int64, None])), optional=True)
    return Case(args)


for _n in ("zeros_like", "ones_like"):
    entry(_n, getattr(pe, _n), like_case(), group="factories")
entry("empty_like", pe.empty_like, like_case(), compare="meta", group="factories")
entry("full_like", pe.full_like, like_case(fill=True), group="factories")
for _n in ("randn_like", "rand_like"):
    entry(_n, _seeded(getattr(pe, _n)), like_case(), group="factories", names=(_n[:-5],))
entry("randint_like", _seeded(pe.randint_like), like_case(randint=True), group="factories", names=("randint",))


@st.composite
def arange_case(draw):
    nums = st.sampled_from([0, 1, 5, -3, 2.5, 0.1, 10 ** 3])
    args = {"0": A("float", draw(nums))}
    if draw(st.booleans()):
        args["1"] = A("float", draw(nums), optional=True)   # arange(end, None) is arange(end)
        if draw(st.booleans()):
            args["2"] = A("float", draw(st.sampled_from([1, 2, -1, 0.5, 0, -0.25])))
    if draw(st.booleans()):
        args["dtype"] = A("dtype", draw(st.sampled_from([pe.float32, pe.int64, pe.float64])))
    return Case(args)


entry("arange", pe.arange, arange_case(), group="factories")


@st.composite
def linspace_case(draw):
    return Case({"0": A("float", draw(st.sampled_from([0, -1.5, 3]))), "1": A("float", draw(st.sampled_from([1, 2.5]))),
                 "2": A("size", draw(ints(0, 7)))})


entry("linspace", pe.linspace, linspace_case(), group="factories")


@st.composite
def eye_case(draw):
    args = {"0": A("size", draw(ints(0, 5)))}
    if draw(st.booleans()):
        args["1"] = A("size", draw(ints(0, 5)), optional=True)
    return Case(args)


entry("eye", pe.eye, eye_case(), group="factories")


@st.composite
def randint_case(draw):
    lo = draw(ints(-3, 3))
    # randint(low, high, size), or randint(high, size) when size is None
    return Case({"0": A("int", lo), "1": A("int", lo + draw(ints(0, 5)), optional=True),   # (high, size=...)
                 "2": A("shape", draw(shapes(0, 3)), optional=True)})


entry("randint", _seeded(pe.randint), randint_case(), group="factories")
entry("randperm", _seeded(pe.randperm), st.builds(lambda n: Case({"0": A("size", n)}), ints(0, 9)),
      group="factories")


@st.composite
def tensor_data_case(draw):
    x = draw(tensors())
    data = draw(st.sampled_from([x.values.tolist(), x, 3, 2.5, True, [[1, 2], [3, 4]], [1, 2.5], [[1], [2, 3]],
                                 [], [True, False], x.values]))
    args = {"0": A("any", data)}
    if draw(st.booleans()):
        args["dtype"] = A("dtype", draw(st.sampled_from([pe.float32, pe.float64, pe.int64, pe.bool, pe.float16])))
    return Case(args)


entry("tensor", pe.tensor, tensor_data_case(), group="factories")
entry("as_tensor", pe.as_tensor, tensor_data_case(), group="factories", names=("tensor",))


@st.composite
def from_numpy_case(draw):
    x = draw(tensors())
    return Case({"0": A("any", x.values if draw(ints(0, 3)) else draw(st.sampled_from(
        [np.zeros(3, np.complex64), np.zeros(2, "U3"), [1, 2], np.zeros(2, np.uint16), np.float32(1.0)])))})


entry("from_numpy", pe.from_numpy, from_numpy_case(), group="factories")
entry("is_tensor", pe.is_tensor, st.builds(lambda c: Case({"0": A("any", c.args["0"].value)}), unary()),
      group="factories")
entry("numel", pe.numel, unary(), group="factories")

# ---------------------------------------------------------------------- nn.functional

reductions = st.sampled_from(["mean", "sum", "none"])


@st.composite
def linear_case(draw):
    dt = draw(st.sampled_from(("float32", "float32", "float64", "float16", "int64")))
    IN, OUT = draw(st.sampled_from((0, 1, 3, 5))), draw(st.sampled_from((0, 1, 2, 7)))
    lead = draw(shapes(0, 2, sizes=(0, 1, 2, 3)))
    x = draw(tensors(shape=lead + (IN + (draw(ints(0, 6)) == 0),), dtypes=(dt,)))
    w = draw(tensors(shape=(OUT, IN), dtypes=(dt,)))
    args = {"0": A("tensor", x), "1": A("tensor", w)}
    if draw(st.booleans()):
        args["2"] = A("tensor", draw(tensors(shape=(OUT,), dtypes=(dt,))), optional=True)
    return Case(args)


entry("linear", F.linear, linear_case(), nan="any", group="functional")
entry("leaky_relu", F.leaky_relu, unary(dtypes=FLOATS, negative_slope=("float", reals)), nan="elementwise",
      group="functional")


@st.composite
def class_targets(draw, C, shape, ignore_index=-100):
    t = values(draw, shape, "int64", low=0, high=max(C, 1))
    if draw(st.integers(0, 5)) == 0 and t.size:   # out of range, or the ignore index
        t.reshape(-1)[0] = draw(st.sampled_from([C, -1, ignore_index, 2 ** 40]))
    return TensorSpec(t)


@st.composite
def cross_entropy_case(draw):
    C = draw(st.sampled_from((1, 2, 3, 5)))
    N = draw(st.sampled_from((0, 1, 2, 4)))
    spatial = draw(shapes(0, 2, sizes=(1, 2, 3)))
    shape = (C,) if draw(ints(0, 6)) == 0 else (N, C) + spatial
    x = draw(tensors(shape=shape, dtypes=("float32", "float32", "float64", "float16", "int64")))
    tshape = () if len(shape) == 1 else (N,) + spatial
    ignore = draw(st.sampled_from([-100, -100, 0, 1]))
    t = draw(class_targets(C, tshape, ignore))
    args = {"0": A("tensor", x), "1": A("tensor", t)}
    if ignore != -100:
        args["ignore_index"] = A("int", ignore)
    if draw(st.booleans()):
        args["reduction"] = A("choice", draw(reductions))
    if draw(ints(0, 2)) == 0:
        args["label_smoothing"] = A("float", draw(st.sampled_from([0.0, 0.1, 1.0, 1.5])))
    elif draw(ints(0, 2)) == 0:
        args["weight"] = A("tensor", draw(tensors(shape=(C,), dtypes=("float32", "float64"), special=False,
                                                  low=0.0, high=2.0)), optional=True)
    # a NaN in an ignored row vanishes, as it should
    return Case(args, nan_check=not (t.values == ignore).any())


entry("cross_entropy", F.cross_entropy, cross_entropy_case(), nan="any", group="functional")


@st.composite
def nll_case(draw):
    C, N = draw(st.sampled_from((1, 3))), draw(st.sampled_from((0, 1, 4)))
    x = draw(tensors(shape=(N, C), dtypes=("float32", "float64")))
    args = {"0": A("tensor", x), "1": A("tensor", draw(class_targets(C, (N,))))}
    if draw(st.booleans()):
        args["reduction"] = A("choice", draw(reductions))
    return Case(args)


entry("nll_loss", F.nll_loss, nll_case(), group="functional")


@st.composite
def pair_loss_case(draw, same_shape=False, probs=False, weights=False, pos_weight=False):
    x = draw(tensors(dtypes=("float32", "float32", "float64", "int64"), low=0.0 if probs else None,
                     high=1.0 if probs else None))
    shp = x.values.shape if same_shape or draw(ints(0, 3)) else draw(broadcast_shape(x.values.shape))
    y = draw(tensors(shape=shp, dtypes=(x.values.dtype.name,) if draw(ints(0, 4)) else ("float64",), low=0.0,
                     high=1.0))
    args = {"0": A("tensor", x), "1": A("tensor", y)}
    if draw(st.booleans()):
        args["reduction"] = A("choice", draw(reductions))
    if weights and draw(st.booleans()):
        args["weight"] = A("tensor", draw(tensors(shape=draw(broadcast_shape(x.values.shape)),
                                                  dtypes=("float32",))), optional=True)
    if pos_weight and draw(st.booleans()):
        args["pos_weight"] = A("tensor", draw(tensors(shape=x.values.shape[-1:], dtypes=("float32",))),
                               optional=True)
    return Case(args)


entry("mse_loss", F.mse_loss, pair_loss_case(), nan="any", group="functional")
entry("l1_loss", F.l1_loss, pair_loss_case(), nan="any", group="functional")
entry("binary_cross_entropy", F.binary_cross_entropy, pair_loss_case(same_shape=True, probs=True, weights=True),
      nan="any", group="functional")
entry("binary_cross_entropy_with_logits", F.binary_cross_entropy_with_logits,
      pair_loss_case(same_shape=True, weights=True, pos_weight=True), nan="any", group="functional")


@st.composite
def layer_norm_case(draw):
    x = draw(tensors(min_ndim=1, dtypes=("float32", "float32", "float64", "float16", "int64")))
    k = draw(ints(1, max(1, x.values.ndim)))
    ns = x.values.shape[x.values.ndim - k:]
    if draw(ints(0, 6)) == 0:
        ns = ns[:-1] + (ns[-1] + 1,)
    args = {"0": A("tensor", x), "1": A("shape", ns if draw(ints(0, 3)) or len(ns) != 1 else ns[0])}
    dt = x.values.dtype.name
    if draw(st.booleans()):
        args["weight"] = A("tensor", draw(tensors(shape=ns, dtypes=(dt,))), optional=True)
    if draw(st.booleans()):
        args["bias"] = A("tensor", draw(tensors(shape=ns, dtypes=(dt,))), optional=True)
    if draw(st.booleans()):
        args["eps"] = A("float", draw(st.sampled_from([1e-5, 0.0, 1.0])))
    return Case(args)


entry("layer_norm", F.layer_norm, layer_norm_case(), nan="any", group="functional")


@st.composite
def embedding_case(draw):
    V, C = draw(st.sampled_from((0, 1, 3, 7))), draw(st.sampled_from((0, 1, 4)))
    idx = draw(tensors(dtypes=("int64", "int64", "int32", "float32"), low=-1 if draw(ints(0, 5)) == 0 else 0,
                       high=V + (draw(ints(0, 5)) == 0) if V else 1))
    w = draw(tensors(shape=(V, C), dtypes=("float32", "float64", "float16")))
    args = {"0": A("tensor", idx), "1": A("tensor", w)}
    if V and draw(st.booleans()):
        args["padding_idx"] = A("int", draw(ints(-V, V - 1)), optional=True)
    return Case(args)


entry("embedding", F.embedding, embedding_case(), group="functional")


@st.composite
def dropout_case(draw):
    args = {"0": A("tensor", draw(tensors(dtypes=FLOATS)))}
    args["p"] = A("float", draw(st.sampled_from([0.0, 0.5, 1.0, 0.25])))
    if draw(st.booleans()):
        args["training"] = A("bool", draw(st.booleans()))
    return Case(args)


def _run_dropout(case):
    pe.manual_seed(0)
    return call(F.dropout)(case)


# dropout: x * mask / (1 - p), a NaN stays NaN even where dropped (NaN * 0), as in PyTorch
entry("dropout", F.dropout, dropout_case(), run=_run_dropout, nan="elementwise", group="functional")


@st.composite
def attention_mask(draw, shape, dt):
    """A bool mask, or a float one with -inf where keys are masked out (NaN and +inf left out: see below)."""
    if draw(st.booleans()):
        return draw(tensors(shape=shape, dtypes=("bool",)))
    m = draw(tensors(shape=shape, dtypes=(dt,), special=False, grad=False))
    v = m.values.copy()
    v[values(draw, shape, "bool")] = -np.inf
    return TensorSpec(v, m.layout)


@st.composite
def attention_case(draw):
    lead = draw(st.sampled_from([(), (2,), (1, 3), (2, 2)]))
    L, S, E, Ev = (draw(st.sampled_from((0, 1, 2, 5))) for _ in range(4))
    dt = draw(st.sampled_from(("float32", "float32", "float64", "float16")))
    # no NaN or inf in q, k, v or a float mask (but -inf, a masked key): the kernel turns NaN into 0 where the
    # twin keeps it ("attention turns NaN into 0", issue 12, the lead's item); every other edge (empty dims,
    # layouts, fully masked rows, dtypes) is drawn
    q = draw(tensors(shape=lead + (L, E), dtypes=(dt,), special=False))
    k = draw(tensors(shape=lead + (S, E + (draw(ints(0, 8)) == 0)), dtypes=(dt,), special=False))
    v = draw(tensors(shape=lead + (S, Ev), dtypes=(dt,), special=False))
    args = {"0": A("tensor", q), "1": A("tensor", k), "2": A("tensor", v)}
    m = draw(ints(0, 3))
    if m == 1:
        args["is_causal"] = A("bool", True)
    elif m == 2:
        args["attn_mask"] = A("tensor", draw(attention_mask((L, S), dt)), optional=True)
    if draw(ints(0, 3)) == 0:
        # "finite": a NaN or inf scale makes NaN scores, the lead's attention-NaN item again
        args["scale"] = A("finite", draw(st.sampled_from([0.5, 0.0, 2.0])), optional=True)
    return Case(args)


# NaN propagation through attention is the lead's item ("attention turns NaN into 0", issue 12): not checked here
entry("scaled_dot_product_attention", F.scaled_dot_product_attention, attention_case(), group="functional")

# the functional names that are the ops' own functions (relu, softmax, ...) are fuzzed as ops above

# ---------------------------------------------------------------------- modules


def module(cls, ctor, fwd, nan=None, names=(), train=None, eval_mode=False):
    """An Entry that builds cls(*ctor) under a fixed seed, then calls it on fwd."""
    def run(case):
        pe.manual_seed(0)
        m = cls(*[make_value(a.value) for a in case.positional("ctor:")],
                **{k: make_value(a.value) for k, a in case.keywords("ctor:").items()})
        if eval_mode:
            m.eval()
        out = m(*[make_value(a.value) for a in case.positional("fwd:")],
                **{k: make_value(a.value) for k, a in case.keywords("fwd:").items()})
        return out, m

    @st.composite
    def build(draw):
        c = draw(ctor)
        f = draw(fwd(c))
        args = {f"ctor:{k}": a for k, a in c.args.items()}
        args.update({f"fwd:{k}": a for k, a in f.args.items()})
        return Case(args, nan_check=f.nan_check)

    ENTRIES.append(Entry(cls.__name__, build(), run, nan, "values", tuple(names), "modules"))


def ctor(**kinds):
    """A strategy of constructor Cases: name -> (kind, strategy[, optional])."""
    @st.composite
    def build(draw):
        args = {}
        for k, spec in kinds.items():
            kind, strat = spec[:2]
            args[k] = A(kind, draw(strat), len(spec) > 2 and spec[2])
        return Case(args)
    return build()


sizes_ = st.sampled_from((1, 2, 3, 5))


def fwd_tensor(last=None, min_ndim=1, dtypes=("float32", "float32", "float64", "float16"), kind="tensor"):
    """A forward strategy: one tensor whose last dim is the ctor's ``last`` argument (usually). ``kind``
    "any" where the module takes anything (Identity, an empty Sequential)."""
    @st.composite
    def build(draw, c):
        shp = draw(shapes(min_ndim, 3, sizes=(0, 1, 2, 3)))
        if last is not None and isinstance(c.args[last].value, int) and shp:
            n = c.args[last].value
            shp = shp[:-1] + ((n if draw(ints(0, 6)) else n + 1),)
        k = "any" if kind == "any" or (kind == "layers" and _passes_anything(a.value for a in c.args.values())) \
            else "tensor"
        return Case({"0": A(k, draw(tensors(shape=shp, dtypes=dtypes)))})
    return build


module(nn.Linear, ctor(**{"0": ("size", sizes_), "1": ("size", sizes_), "bias": ("bool", st.booleans())}),
       fwd_tensor("0"), nan="any", names=("linear",))


def fwd_indices(c_num="0"):
    @st.composite
    def build(draw, c):
        V = c.args[c_num].value if isinstance(c.args[c_num].value, int) else 3
        return Case({"0": A("tensor", draw(tensors(dtypes=("int64", "int64", "int32", "float32"), low=-1 if draw(
            ints(0, 5)) == 0 else 0, high=max(V, 1))))})
    return build


module(nn.Embedding, ctor(**{"0": ("size", sizes_), "1": ("size", sizes_),
                             "padding_idx": ("int", st.sampled_from([None, 0, -1]), True)}),
       fwd_indices(), names=("embedding",))
module(nn.LayerNorm, ctor(**{"0": ("size", sizes_), "eps": ("float", st.sampled_from([1e-5, 0.1])),
                             "elementwise_affine": ("bool", st.booleans())}),
       fwd_tensor("0"), nan="any", names=("layer_norm",))
module(nn.Dropout, ctor(p=("float", st.sampled_from([0.0, 0.5, 1.0]))), fwd_tensor(), names=("dropout",))
for _cls in (nn.ReLU, nn.Tanh, nn.Sigmoid, nn.SiLU, nn.GELU):
    module(_cls, ctor(), fwd_tensor(min_ndim=0), nan="elementwise", names=(_cls.__name__.lower(),))
module(nn.Identity, ctor(), fwd_tensor(min_ndim=0, kind="any"))   # Identity takes anything
module(nn.LeakyReLU, ctor(negative_slope=("float", st.sampled_from([0.01, 0.0, -1.0]))), fwd_tensor(min_ndim=0),
       nan="elementwise", names=("leaky_relu",))
module(nn.Softmax, ctor(dim=("dim", st.sampled_from([-1, 0, 1]))), fwd_tensor(), nan="any", names=("softmax",))
module(nn.LogSoftmax, ctor(dim=("dim", st.sampled_from([-1, 0, 1]))), fwd_tensor(), nan="any",
       names=("log_softmax",))
module(nn.Flatten, ctor(start_dim=("dim", st.sampled_from([0, 1, -1])), end_dim=("dim", st.sampled_from([-1, 1]))),
       fwd_tensor(min_ndim=0), names=("flatten",))
module(nn.Unflatten, ctor(**{"0": ("dim", st.sampled_from([0, -1])), "1": ("shape", st.sampled_from([(1, -1),
                                                                                                  (2, 1), (3,)]))}),
       fwd_tensor(), names=("unflatten", "reshape"))


def fwd_seq(c_in="0", cell=False):
    @st.composite
    def build(draw, c):
        I = c.args[c_in].value if isinstance(c.args[c_in].value, int) else 2
        shp = (draw(st.sampled_from((1, 2, 3))),) if cell else (draw(st.sampled_from((1, 2, 3))),
                                                                 draw(st.sampled_from((1, 2))))
        if draw(ints(0, 3)) == 0:
            shp = shp[1:]   # unbatched
        I = I + 1 if draw(ints(0, 6)) == 0 else I
        return Case({"0": A("tensor", draw(tensors(shape=shp + (I,), dtypes=("float32", "float32", "float64"))))})
    return build


module(nn.LSTM, ctor(**{"0": ("size", sizes_), "1": ("size", sizes_), "num_layers": ("size", st.sampled_from([1, 2])),
                        "bidirectional": ("bool", st.booleans()), "batch_first": ("bool", st.booleans())}),
       fwd_seq(), nan="any", names=("lstm",))
module(nn.LSTMCell, ctor(**{"0": ("size", sizes_), "1": ("size", sizes_), "bias": ("bool", st.booleans())}),
       fwd_seq(cell=True), nan="any", names=("lstm",))
module(nn.GRU, ctor(**{"0": ("size", sizes_), "1": ("size", sizes_), "num_layers": ("size", st.sampled_from([1, 2])),
                       "bidirectional": ("bool", st.booleans()), "batch_first": ("bool", st.booleans())}),
       fwd_seq(), nan="any", names=("gru",))
module(nn.RNN, ctor(**{"0": ("size", sizes_), "1": ("size", sizes_), "num_layers": ("size", st.sampled_from([1, 2])),
                       "nonlinearity": ("choice", st.sampled_from(["tanh", "relu"])),
                       "bidirectional": ("bool", st.booleans()), "batch_first": ("bool", st.booleans())}),
       fwd_seq(), nan="any", names=("rnn",))
module(nn.GRUCell, ctor(**{"0": ("size", sizes_), "1": ("size", sizes_), "bias": ("bool", st.booleans())}),
       fwd_seq(cell=True), nan="any", names=("gru",))
module(nn.RNNCell, ctor(**{"0": ("size", sizes_), "1": ("size", sizes_), "bias": ("bool", st.booleans()),
                           "nonlinearity": ("choice", st.sampled_from(["tanh", "relu"]))}),
       fwd_seq(cell=True), nan="any", names=("rnn",))


def fwd_mha():
    @st.composite
    def build(draw, c):
        E = c.args["0"].value if isinstance(c.args["0"].value, int) else 4
        L, N = draw(st.sampled_from((1, 2, 3))), draw(st.sampled_from((1, 2)))
        shp = (L, N, E) if draw(ints(0, 3)) else (L, E)
        if draw(ints(0, 6)) == 0:
            shp = shp[:-1] + (E + 1,)
        # no NaN or inf, as for scaled_dot_product_attention (the lead's "attention turns NaN into 0")
        x = draw(tensors(shape=shp, dtypes=("float32", "float32", "float64"), special=False))
        args = {"0": A("tensor", x), "1": A("tensor", x), "2": A("tensor", x)}
        if draw(st.booleans()):
            args["need_weights"] = A("bool", draw(st.booleans()))
        if draw(ints(0, 2)) == 0:
            args["attn_mask"] = A("tensor", draw(attention_mask((L, L), "float32")), optional=True)
        return Case(args)
    return build


# NaN propagation through attention is the lead's item ("attention turns NaN into 0", issue 12): not checked here
module(nn.MultiheadAttention, ctor(**{"0": ("size", st.sampled_from((2, 4, 6))),
                                      "1": ("size", st.sampled_from((1, 2, 3)))}), fwd_mha(),
       names=("linear",))   # an input of another dtype than the parameters: linear says so


# the Transformer family: errors may come from the layers inside (attention, linear, layer norm)
_TFM_NAMES = ("MultiheadAttention", "linear", "layer_norm", "Linear", "LayerNorm", "TransformerEncoderLayer",
              "TransformerDecoderLayer", "TransformerEncoder", "TransformerDecoder", "Transformer")
_tfm_layer_ctor = {"0": ("size", st.sampled_from((2, 4, 6))), "1": ("size", st.sampled_from((1, 2))),
                   "dim_feedforward": ("size", st.sampled_from((1, 3, 8))),
                   "dropout": ("float", st.sampled_from([0.0, 0.5])),
                   "activation": ("choice", st.sampled_from(["relu", "gelu"])),
                   "norm_first": ("bool", st.booleans()), "batch_first": ("bool", st.booleans())}


def _tfm_width(c):
    v = c.args["0"].value
    if isinstance(v, nn.Module):  # an encoder or decoder layer
        return v.self_attn.embed_dim if isinstance(getattr(v, "self_attn", None), nn.MultiheadAttention) else 4
    return v if isinstance(v, int) and 0 < v < 64 else 4


def _tfm_seq(draw, E, L, N, unbatched):
    shp = (L, E) if unbatched else (L, N, E)
    if draw(ints(0, 6)) == 0:
        shp = shp[:-1] + (E + 1,)
    # no NaN or inf, as for MultiheadAttention (the lead's "attention turns NaN into 0")
    return draw(tensors(shape=shp, dtypes=("float32", "float32", "float64"), special=False))


def fwd_transformer(kind):
    """src (encoder layers and stacks), tgt and memory (decoders), src and tgt (Transformer), with masks
    sometimes. kind: "encoder", "decoder", "transformer"."""
    @st.composite
    def build(draw, c):
        E = _tfm_width(c)
        L, S, N = draw(st.sampled_from((1, 2, 3))), draw(st.sampled_from((1, 3))), draw(st.sampled_from((1, 2)))
        unbatched = draw(ints(0, 3)) == 0
        x = _tfm_seq(draw, E, L, N, unbatched)
        args = {"0": A("tensor", x)}
        if kind != "encoder":
            args["1"] = A("tensor", _tfm_seq(draw, E, S, N, unbatched))
        mask_name = {"encoder": "src_mask", "decoder": "tgt_mask", "transformer": "tgt_mask"}[kind]
        if kind == "encoder" and isinstance(c.args["0"].value, nn.Module):
            mask_name = "mask"  # TransformerEncoder's name for it
        if draw(ints(0, 2)) == 0:
            args[mask_name] = A("tensor", draw(attention_mask((L, L), "float32")), optional=True)
        return Case(args)
    return build


module(nn.TransformerEncoderLayer, ctor(**_tfm_layer_ctor), fwd_transformer("encoder"), names=_TFM_NAMES)
module(nn.TransformerDecoderLayer, ctor(**_tfm_layer_ctor), fwd_transformer("decoder"), names=_TFM_NAMES)
module(nn.Transformer, ctor(**{"0": ("size", st.sampled_from((2, 4))), "1": ("size", st.sampled_from((1, 2))),
                               "2": ("size", st.sampled_from((0, 1, 2))), "3": ("size", st.sampled_from((0, 1))),
                               "4": ("size", st.sampled_from((1, 5))), "dropout": ("float", st.just(0.0)),
                               "norm_first": ("bool", st.booleans()), "batch_first": ("bool", st.booleans())}),
       fwd_transformer("transformer"), names=_TFM_NAMES)


def tfm_stack_ctor(decoder):
    """A layer (built here: a live module argument), num_layers, and a final LayerNorm sometimes."""
    @st.composite
    def build(draw):
        E, h = draw(st.sampled_from((2, 4))), draw(st.sampled_from((1, 2)))
        cls = nn.TransformerDecoderLayer if decoder else nn.TransformerEncoderLayer
        layer = cls(E, h, draw(st.sampled_from((1, 6))), dropout=0.0, norm_first=draw(st.booleans()))
        args = {"0": A("module", layer), "1": A("size", draw(st.sampled_from((0, 1, 2))))}
        if draw(st.booleans()):
            args["norm"] = A("module", nn.LayerNorm(E), optional=True)
        return Case(args)
    return build()




def _fresh_norm(cls):
    """cls(layer, num_layers, norm=a copy of norm): the stack copies its layer itself, but the norm is taken as
    it is and would carry the first backend's gradients into the second's run."""
    def build(*args, norm=None, **kwargs):
        return cls(*args, norm=copy.deepcopy(norm), **kwargs)
    build.__name__ = cls.__name__
    return build


module(_fresh_norm(nn.TransformerEncoder), tfm_stack_ctor(False), fwd_transformer("encoder"), names=_TFM_NAMES)
module(_fresh_norm(nn.TransformerDecoder), tfm_stack_ctor(True), fwd_transformer("decoder"), names=_TFM_NAMES)


def fwd_loss(kind):
    @st.composite
    def build(draw, c):
        if kind == "ce":
            return draw(cross_entropy_case())
        if kind == "nll":
            return draw(nll_case())
        return draw(pair_loss_case(same_shape=kind == "bce", probs=kind == "bce"))
    return build


module(nn.CrossEntropyLoss, ctor(reduction=("choice", reductions),
                                 label_smoothing=("float", st.sampled_from([0.0, 0.2]))),
       fwd_loss("ce"), names=("cross_entropy",))
module(nn.NLLLoss, ctor(reduction=("choice", reductions)), fwd_loss("nll"), names=("nll_loss",))
module(nn.MSELoss, ctor(reduction=("choice", reductions)), fwd_loss("pair"), nan="any", names=("mse_loss",))
module(nn.L1Loss, ctor(reduction=("choice", reductions)), fwd_loss("pair"), nan="any", names=("l1_loss",))
module(nn.BCELoss, ctor(reduction=("choice", reductions)), fwd_loss("bce"), names=("binary_cross_entropy",))
module(nn.BCEWithLogitsLoss, ctor(reduction=("choice", reductions)), fwd_loss("pair"),
       names=("binary_cross_entropy_with_logits",))


def _passes_anything(layers):
    """A container of these layers (none, or Identity only) returns its input, whatever it is."""
    return all(isinstance(m, nn.Identity) for m in layers)


def _layers(draw):
    return [draw(st.sampled_from([nn.ReLU(), nn.Tanh(), nn.Identity()])) for _ in range(draw(ints(0, 3)))]


@st.composite
def container_ctor(draw):
    return Case({str(i): A("module", layer) for i, layer in enumerate(_layers(draw))})


# a container's errors are its layers': they name the layer's op
_LAYER_NAMES = ("relu", "tanh")
module(nn.Sequential, container_ctor(), fwd_tensor(min_ndim=0, kind="layers"), names=_LAYER_NAMES)


def _run_module_list(case):
    m = nn.ModuleList(make_value(case.args["0"].value))
    x = make_value(case.args["1"].value)
    for layer in m:
        x = layer(x)
    return x, m


@st.composite
def module_list_case(draw):
    layers = _layers(draw)
    return Case({"0": A("modules", layers, optional=True),
                 "1": A("any" if _passes_anything(layers) else "tensor", draw(tensors()))})


ENTRIES.append(Entry("ModuleList", module_list_case(), _run_module_list, names=_LAYER_NAMES, group="modules"))


def _run_module_dict(case):
    m = nn.ModuleDict(make_value(case.args["0"].value))
    x = make_value(case.args["1"].value)
    for layer in m.values():
        x = layer(x)
    return x, m


@st.composite
def module_dict_case(draw):
    layers = {f"l{i}": layer for i, layer in enumerate(_layers(draw))}
    return Case({"0": A("modules", layers, optional=True),
                 "1": A("any" if _passes_anything(layers.values()) else "tensor", draw(tensors()))})


ENTRIES.append(Entry("ModuleDict", module_dict_case(), _run_module_dict, names=_LAYER_NAMES, group="modules"))

@st.composite
def parameter_case(draw):
    args = {"0": A("tensor", draw(tensors(grad=False)), optional=True)}
    if draw(st.booleans()):
        args["requires_grad"] = A("bool", draw(st.booleans()))
    return Case(args)


entry("Parameter", nn.Parameter, parameter_case(), group="modules")

# ---------------------------------------------------------------------- optimizers


def optimizer(cls, **options):
    """An Entry: params with gradients (NaN, inf, odd layouts, read-only), cls(params, **options), two steps."""
    def run(case):
        params = make_value(case.args["params"].value)
        grads = [make_value(g) for g in case.notes["grads"]]
        kw = {k: make_value(a.value) for k, a in case.keywords().items() if k != "params"}
        opt = cls(params, **kw)
        for _ in range(2):
            for p, g in zip(params, grads):
                p.grad = g
            opt.step()
        return [p.detach() for p in params]

    @st.composite
    def build(draw):
        params, grads = [], []
        for _ in range(draw(ints(1, 3))):
            p = draw(tensors(dtypes=("float32", "float32", "float64"), special=False, grad=True))
            params.append(p)
            grads.append(draw(tensors(shape=p.values.shape, dtypes=(p.values.dtype.name,), grad=False)))
        args = {"params": A("tensors", params)}
        for k, (kind, strat) in options.items():
            if draw(st.booleans()):
                args[k] = A(kind, draw(strat))
        return Case(args, notes={"grads": grads})

    def nan(case, made, result):
        """A NaN gradient makes the parameter NaN at that position (p - lr * f(NaN))."""
        for g, p in zip(case.notes["grads"], result):
            if np.isnan(g.values).any() and not np.isnan(p[np.isnan(g.values)]).all():
                return "a NaN gradient left the parameter finite"
        return None

    ENTRIES.append(Entry(cls.__name__, build(), run, nan, "values", (), "optim"))


lr_ = ("float", st.sampled_from([0.1, 0.0, 1e-3]))
wd_ = ("float", st.sampled_from([0.0, 0.1]))
optimizer(pe.optim.SGD, lr=lr_, momentum=("float", st.sampled_from([0.0, 0.9])), weight_decay=wd_,
          nesterov=("bool", st.booleans()), maximize=("bool", st.booleans()),
          dampening=("float", st.sampled_from([0.0, 0.5])))
for _cls in (pe.optim.Adam, pe.optim.AdamW):
    optimizer(_cls, lr=lr_, betas=("any", st.sampled_from([(0.9, 0.999), (0.0, 0.5), [0.5, 0.9]])),
              eps=("float", st.sampled_from([1e-8, 0.0, 1.0])), weight_decay=wd_, amsgrad=("bool", st.booleans()),
              maximize=("bool", st.booleans()))
# alpha = 0 is left out: with centered=True the variance v - a^2 of a constant gradient is then exactly 0,
# and the update divides by rounding noise (an FMA in the kernel, none in NumPy): no two correct
# implementations agree there (PyTorch neither)
optimizer(pe.optim.RMSprop, lr=lr_, alpha=("float", st.sampled_from([0.99, 0.5])), eps=("float", st.sampled_from(
    [1e-8, 1.0])), weight_decay=wd_, momentum=("float", st.sampled_from([0.0, 0.9])), centered=("bool", st.booleans()))
optimizer(pe.optim.Adagrad, lr=lr_, lr_decay=("float", st.sampled_from([0.0, 0.1])), weight_decay=wd_,
          initial_accumulator_value=("float", st.sampled_from([0.0, 0.5])),
          eps=("float", st.sampled_from([1e-10, 1.0])))
optimizer(pe.optim.Adadelta, lr=("float", st.sampled_from([1.0, 0.1, 0.0])), rho=("float", st.sampled_from(
    [0.9, 0.5, 0.0])), eps=("float", st.sampled_from([1e-6, 1.0])), weight_decay=wd_, maximize=("bool", st.booleans()))

# ---------------------------------------------------------------------- lr schedulers


def scheduler(cls, required, optional):
    """An Entry: SGD(lr=0.1) on one parameter, cls(opt, ...), five optimizer + scheduler steps."""
    def run(case):
        p = pe.zeros(2, requires_grad=True)
        opt = pe.optim.SGD([p], lr=0.1)
        kw = {k: make_value(a.value) for k, a in case.keywords().items()}
        if cls is LR.SequentialLR:
            kw["schedulers"] = [LR.ConstantLR(opt, factor=0.5, total_iters=2), LR.ExponentialLR(opt, gamma=0.9)]
        sched = cls(opt, **kw)
        lrs = []
        for _ in range(5):
            p.grad = pe.ones(2)
            opt.step()
            sched.step()
            lrs.append(sched.get_last_lr()[0])
        return pe.tensor(lrs, dtype=pe.float64)

    @st.composite
    def build(draw):
        args = {k: A(kind, draw(strat)) for k, (kind, strat) in required.items()}
        for k, (kind, strat) in optional.items():
            if draw(st.booleans()):
                args[k] = A(kind, draw(strat))
        return Case(args)

    ENTRIES.append(Entry(cls.__name__, build(), run, None, "values", (), "sched"))


steps_ = ("size", st.sampled_from([1, 2, 3, 10]))
gamma_ = ("float", st.sampled_from([0.1, 0.5, 1.0, 0.0]))
scheduler(LR.LambdaLR, {"lr_lambda": ("callable", st.sampled_from([lambda e: 0.9 ** e, lambda e: 1.0]))}, {})
scheduler(LR.MultiplicativeLR, {"lr_lambda": ("callable", st.sampled_from([lambda e: 0.9, lambda e: 1.0]))}, {})
scheduler(LR.StepLR, {"step_size": ("float", st.sampled_from([1, 2, 2.5, 10]))}, {"gamma": gamma_})  # PyTorch takes any number > 0
scheduler(LR.MultiStepLR, {"milestones": ("ints", st.sampled_from([[1, 3], [2], [], [3, 1]]))}, {"gamma": gamma_})
scheduler(LR.ConstantLR, {}, {"factor": ("float", st.sampled_from([0.5, 1.0, 0.0])), "total_iters": steps_})
scheduler(LR.LinearLR, {}, {"start_factor": ("float", st.sampled_from([0.5, 1.0, 0.1])),
                            "end_factor": ("float", st.sampled_from([1.0, 0.0])), "total_iters": steps_})
scheduler(LR.ExponentialLR, {"gamma": gamma_}, {})
scheduler(LR.CosineAnnealingLR, {"T_max": steps_}, {"eta_min": ("float", st.sampled_from([0.0, 0.01]))})
scheduler(LR.SequentialLR, {"milestones": ("ints", st.sampled_from([[2], [0], [7]]))}, {})
scheduler(LR.OneCycleLR, {"max_lr": ("float", st.sampled_from([0.1, 1.0])), "total_steps": ("size", st.sampled_from(
    [5, 10, 20]))}, {"pct_start": ("float", st.sampled_from([0.3, 0.0, 1.0])),
                     "anneal_strategy": ("choice", st.sampled_from(["cos", "linear"]))})
scheduler(LR.WarmupCosineLR, {"warmup_steps": ("size", st.sampled_from([0, 2, 10])),
                              "total_steps": ("size", st.sampled_from([5, 10, 20]))},
          {"min_lr_ratio": ("float", st.sampled_from([0.0, 0.1, 1.0]))})

# ---------------------------------------------------------------------- ops breadth (issue 13 item 2)

for _n in ("log1p", "expm1", "log2", "log10", "reciprocal", "frac", "trunc", "selu", "softsign", "tanhshrink",
           "logsigmoid", "mish", "hardswish", "hardsigmoid", "relu6"):
    entry(_n, getattr(pe, _n), unary(), nan="elementwise")
entry("fix", pe.fix, unary(), nan="elementwise", names=("trunc",))
entry("elu", pe.elu, unary(alpha=("float", reals)), nan="elementwise")
entry("celu", pe.celu, unary(alpha=("float", reals)), nan="elementwise")
entry("softplus", pe.softplus, unary(beta=("float", reals), threshold=("float", reals)), nan="elementwise")
entry("hardtanh", pe.hardtanh, unary(min_val=("float", reals), max_val=("float", reals)), nan="elementwise")
entry("nan_to_num", pe.nan_to_num, unary(nan=("float", reals), posinf=("float", reals, True),
                                         neginf=("float", reals, True)))
for _n, _nan in [("atan2", "elementwise"), ("logaddexp", "elementwise"), ("hypot", None),
                 ("remainder", "elementwise"), ("fmod", "elementwise")]:
    entry(_n, getattr(pe, _n), binary(), nan=_nan)
entry("arctan2", pe.arctan2, binary(), nan="elementwise", names=("atan2",))
entry("isclose", pe.isclose, binary(rtol=("float", reals), equal_nan=("bool", st.booleans())))


@st.composite
def lerp_case(draw):
    a = draw(tensors(dtypes=FLOATS))
    b = draw(partner(a, FLOATS, scalar=False))
    w = draw(partner(a, FLOATS)) if draw(st.booleans()) else draw(st.sampled_from([0.0, 0.5, 1.0, -2.0]))
    return Case({"0": A("tensor", a), "1": A("tensor", b), "2": A("tensor" if isinstance(w, TensorSpec) else "float",
                                                                   w)})


entry("lerp", pe.lerp, lerp_case(), nan="elementwise")


@st.composite
def clamp_one_case(draw):
    x = draw(tensors())
    v = draw(partner(x)) if draw(st.booleans()) else draw(st.sampled_from([-1.0, 0, 2, 0.5]))
    return Case({"0": A("tensor", x), "1": A("tensor", v)})


entry("clamp_min", pe.clamp_min, clamp_one_case(), nan="elementwise", names=("clamp",))
entry("clamp_max", pe.clamp_max, clamp_one_case(), nan="elementwise", names=("clamp",))

entry("cumprod", pe.cumprod, with_dim(), nan="any")
entry("median", pe.median, reduction(multi=False), nan="any")
entry("nanmedian", pe.nanmedian, reduction(multi=False))
entry("kthvalue", pe.kthvalue, with_dim(k=("int", ints(0, 4))))
entry("mode", pe.mode, with_dim())


@st.composite
def unique_case(draw):
    x = draw(tensors(dtypes=ALL_DTYPES, low=-2, high=2))
    args = {"0": A("tensor", x)}
    for k in ("return_inverse", "return_counts"):
        if draw(st.booleans()):
            args[k] = A("bool", draw(st.booleans()))
    if draw(ints(0, 3)) == 0:
        args["dim"] = A("dim", dim_of(draw, x.values.ndim), optional=True)
    return Case(args)


entry("unique", pe.unique, unique_case())


@st.composite
def bincount_case(draw):
    x = draw(tensors(shape=draw(shapes(1, 1)), dtypes=("int64", "int64", "int32", "float32"),
                     low=-1 if draw(ints(0, 5)) == 0 else 0, high=6))
    args = {"0": A("tensor", x)}
    if draw(st.booleans()):
        args["weights"] = A("tensor", draw(tensors(shape=x.values.shape, dtypes=FLOATS)), optional=True)
    if draw(st.booleans()):
        args["minlength"] = A("size", draw(ints(0, 8)))
    return Case(args)


entry("bincount", pe.bincount, bincount_case())
entry("histc", pe.histc, unary(bins=("size", ints(1, 5)), min=("float", st.sampled_from([0.0, -1.0])),
                               max=("float", st.sampled_from([0.0, 1.0, 2.0]))))


@st.composite
def searchsorted_case(draw):
    seq = np.sort(values(draw, draw(shapes(1, 2)), draw(st.sampled_from(("float32", "float64", "int64"))),
                         special=False), axis=-1)
    if seq.ndim == 1 or draw(ints(0, 3)) == 0:
        v = draw(tensors(dtypes=("float32", "float64", "int64")))
    else:
        v = draw(tensors(shape=seq.shape[:-1] + (draw(ints(0, 3)),), dtypes=("float32", "float64", "int64")))
    args = {"0": A("tensor", TensorSpec(seq)), "1": A("tensor", v)}
    if draw(st.booleans()):
        args["right"] = A("bool", draw(st.booleans()))
    return Case(args)


entry("searchsorted", pe.searchsorted, searchsorted_case())


@st.composite
def bucketize_case(draw):
    b = np.sort(values(draw, (draw(ints(0, 4)),), "float32", special=False))
    return Case({"0": A("tensor", draw(tensors())), "1": A("tensor", TensorSpec(b)),
                 "right": A("bool", draw(st.booleans()))})


entry("bucketize", pe.bucketize, bucketize_case())

# shape


@st.composite
def narrow_case(draw):
    x = draw(tensors(min_ndim=1))
    d = dim_of(draw, x.values.ndim)
    n = x.values.shape[d]
    start = draw(ints(-n, n)) if n else 0
    return Case({"0": A("tensor", x), "1": A("dim", d), "2": A("int", start), "3": A("size", draw(ints(0, n + 1)))})


entry("narrow", pe.narrow, narrow_case())


@st.composite
def roll_case(draw):
    x = draw(tensors())
    nd = x.values.ndim
    if nd and draw(st.booleans()):
        k = draw(ints(1, 2))
        return Case({"0": A("tensor", x), "1": A("ints", [draw(ints(-7, 7)) for _ in range(k)]),
                     "2": A("ints", [dim_of(draw, nd) for _ in range(k)])})
    return Case({"0": A("tensor", x), "1": A("int", draw(ints(-7, 7)))})


entry("roll", pe.roll, roll_case())


@st.composite
def repeat_case_(draw, tile=False):
    x = draw(tensors(max_ndim=3))
    k = draw(ints(0 if tile else x.values.ndim, x.values.ndim + 1))
    reps = [draw(ints(0, 3)) for _ in range(k)]
    if tile or draw(st.booleans()):
        return Case({"0": A("tensor", x), "1": A("shape", tuple(reps))})
    return Case({"0": A("tensor", x), **{str(i + 1): A("size", r) for i, r in enumerate(reps)}})


entry("repeat", pe.repeat, repeat_case_())
entry("tile", pe.tile, repeat_case_(tile=True), names=("repeat",))


@st.composite
def unfold_case(draw):
    x = draw(tensors())
    return Case({"0": A("tensor", x), "1": A("dim", dim_of(draw, x.values.ndim)), "2": A("size", draw(ints(0, 4))),
                 "3": A("size", draw(ints(1, 3)))})


entry("unfold", pe.unfold, unfold_case())


@st.composite
def meshgrid_case(draw):
    ts = [draw(tensors(shape=draw(shapes(0, 1)))) for _ in range(draw(ints(1, 3)))]
    return Case({**{str(i): A("tensor", t) for i, t in enumerate(ts)},
                 "indexing": A("choice", draw(st.sampled_from(["ij", "xy"])))})


entry("meshgrid", pe.meshgrid, meshgrid_case())


@st.composite
def diff_case(draw):
    x = draw(tensors(min_ndim=1))
    d = dim_of(draw, x.values.ndim)
    args = {"0": A("tensor", x), "n": A("size", draw(ints(0, 2))), "dim": A("dim", d)}
    if draw(st.booleans()):
        shp = list(x.values.shape)
        shp[d] = draw(ints(0, 2))
        args["prepend"] = A("tensor", draw(tensors(shape=tuple(shp), dtypes=(x.values.dtype.name,))), optional=True)
    return Case(args)


entry("diff", pe.diff, diff_case())
entry("diag", pe.diag, unary(diagonal=("int", ints(-2, 2))))


@st.composite
def diagonal_case(draw):
    x = draw(tensors(min_ndim=2))
    nd = x.values.ndim
    return Case({"0": A("tensor", x), "offset": A("int", draw(ints(-2, 2))), "dim1": A("dim", dim_of(draw, nd)),
                 "dim2": A("dim", dim_of(draw, nd))})


entry("diagonal", pe.diagonal, diagonal_case())
entry("trace", pe.trace, unary(), nan="any", names=("diagonal", "sum"))
entry("kron", pe.kron, binary(scalar=False), names=("mul",))


@st.composite
def movedim_case(draw):
    x = draw(tensors(min_ndim=1))
    nd = x.values.ndim
    return Case({"0": A("tensor", x), "1": A("dim", dim_of(draw, nd)), "2": A("dim", dim_of(draw, nd))})


entry("movedim", pe.movedim, movedim_case(), names=("permute",))
entry("moveaxis", pe.moveaxis, movedim_case(), names=("movedim", "permute"))

# index / scatter


@st.composite
def index_case(draw, op):
    x = draw(tensors(min_ndim=0))
    nd = x.values.ndim
    d = dim_of(draw, nd)
    n = x.values.shape[d] if nd else 1
    k = draw(ints(0, 3))
    idx = TensorSpec(values(draw, (k,), draw(st.sampled_from(("int64", "int64", "int32"))),
                            low=-n if n else 0, high=n + (draw(ints(0, 5)) == 0) if n else 1))
    args = {"0": A("tensor", x), "1": A("dim", d), "2": A("tensor", idx)}
    if op in ("index_add", "index_copy"):
        shp = tuple(k if i == d % max(nd, 1) else s for i, s in enumerate(x.values.shape))
        dt = x.values.dtype.name if draw(ints(0, 4)) else "float64"
        args["3"] = A("tensor", draw(tensors(shape=shp, dtypes=(dt,))))
    if op == "index_fill":
        args["3"] = A("float", draw(st.sampled_from([0.0, -1.5, float("nan"), 2])))
    return Case(args)


for _n in ("index_select", "index_add", "index_copy", "index_fill"):
    entry(_n, getattr(pe, _n), index_case(_n))


@st.composite
def scatter_case(draw, op):
    x = draw(tensors(min_ndim=1))
    nd = x.values.ndim
    d = dim_of(draw, nd)
    n = x.values.shape[d]
    shp = tuple(draw(ints(0, s)) if i != d % nd else draw(ints(0, 3)) for i, s in enumerate(x.values.shape))
    idx = draw(tensors(shape=shp, dtypes=("int64", "int64", "int32"), low=-n if n else 0,
                       high=n + (draw(ints(0, 5)) == 0) if n else 1))
    args = {"0": A("tensor", x), "1": A("dim", d), "2": A("tensor", idx)}
    if op == "scatter" and draw(st.booleans()):
        args["value"] = A("float", draw(st.sampled_from([0.0, 2.5, float("nan")])))
    else:
        dt = x.values.dtype.name if draw(ints(0, 4)) else "float64"
        args["3"] = A("tensor", draw(tensors(shape=shp, dtypes=(dt,))))
    if op == "scatter" and draw(ints(0, 3)) == 0:
        args["reduce"] = A("choice", draw(st.sampled_from(["add", "multiply"])))
    return Case(args)


entry("scatter", pe.scatter, scatter_case("scatter"))
entry("scatter_add", pe.scatter_add, scatter_case("scatter_add"))


@st.composite
def masked_case(draw, op):
    x = draw(tensors())
    m = draw(tensors(shape=draw(broadcast_shape(x.values.shape)), dtypes=("bool", "bool", "int64")))
    args = {"0": A("tensor", x), "1": A("tensor", m)}
    if op == "masked_scatter":
        dt = x.values.dtype.name if draw(ints(0, 4)) else "float64"
        args["2"] = A("tensor", draw(tensors(shape=(draw(ints(0, x.values.size + 1)),), dtypes=(dt,))))
    return Case(args)


entry("masked_select", pe.masked_select, masked_case("masked_select"), names=("index",))
entry("masked_scatter", pe.masked_scatter, masked_case("masked_scatter"))


@st.composite
def take_case(draw, along=False):
    x = draw(tensors())
    n = x.values.size
    if along and x.values.ndim and draw(st.booleans()):
        d = dim_of(draw, x.values.ndim)
        m = x.values.shape[d]
        shp = tuple(draw(st.sampled_from([1, s])) if i != d % x.values.ndim else draw(ints(0, 3))
                    for i, s in enumerate(x.values.shape))
        idx = draw(tensors(shape=shp, dtypes=("int64", "int32"), low=-m if m else 0, high=m + 1 if m else 1))
        return Case({"0": A("tensor", x), "1": A("tensor", idx), "dim": A("dim", d)})
    idx = draw(tensors(shape=draw(shapes(0, 2)), dtypes=("int64", "int64", "float32"), low=-n if n else 0,
                       high=n + 1 if n else 1))
    return Case({"0": A("tensor", x), "1": A("tensor", idx)})


entry("take", pe.take, take_case(), names=("index",))
entry("take_along_dim", pe.take_along_dim, take_case(along=True), names=("gather", "take", "index"))

# products and norms


@st.composite
def einsum_case(draw):
    eq, shapes_ = draw(st.sampled_from([
        ("ij,jk->ik", [(2, 3), (3, 4)]), ("ii->i", [(3, 3)]), ("...ij,...jk", [(2, 1, 3), (5, 3, 2)]),
        ("i,j", [(3,), (0,)]), ("bij,bkj->bik", [(2, 3, 4), (2, 5, 4)]), ("ij->", [(0, 3)]),
        ("ij,jk->ik", [(2, 3), (4, 5)]), ("ijk", [(2, 3)]), ("ab,bc,cd->ad", [(2, 3), (3, 1), (4, 2)])]))
    dt = draw(st.sampled_from(("float32", "float64", "int64")))
    args = {"0": A("choice", eq)}
    for i, shp in enumerate(shapes_):
        args[str(i + 1)] = A("tensor", draw(tensors(shape=shp, dtypes=(dt,))))
    return Case(args)


entry("einsum", pe.einsum, einsum_case(), nan="any")


@st.composite
def addmm_case(draw, kind):
    M, K, N, B = (draw(st.sampled_from((0, 1, 2, 3))) for _ in range(4))
    dt = draw(st.sampled_from(("float32", "float32", "float64")))
    shapes_ = {"addmm": ((M, N), (M, K), (K, N)), "baddbmm": ((B, M, N), (B, M, K), (B, K, N)),
               "addbmm": ((M, N), (B, M, K), (B, K, N)), "addmv": ((M,), (M, K), (K,))}[kind]
    inp = draw(broadcast_shape(shapes_[0]))
    args = {"0": A("tensor", draw(tensors(shape=inp, dtypes=(dt,))))}
    for i, shp in enumerate(shapes_[1:]):
        args[str(i + 1)] = A("tensor", draw(tensors(shape=shp, dtypes=(dt,))))
    if draw(st.booleans()):
        args["beta"] = A("float", draw(st.sampled_from([0.0, 1.0, -0.5])))
    if draw(st.booleans()):
        args["alpha"] = A("float", draw(st.sampled_from([1.0, 2.0])))
    return Case(args)


for _n in ("addmm", "baddbmm", "addbmm", "addmv"):
    entry(_n, getattr(pe, _n), addmm_case(_n), names=("matmul", "mm", "bmm", "mv"))


@st.composite
def vectors_case(draw, kind):
    n = draw(st.sampled_from((0, 1, 3)))
    dt = draw(st.sampled_from(("float32", "float64", "int64")))
    if kind == "mv":
        return Case({"0": A("tensor", draw(tensors(shape=(2, n), dtypes=(dt,)))),
                     "1": A("tensor", draw(tensors(shape=(n + (draw(ints(0, 5)) == 0),), dtypes=(dt,))))})
    if kind == "inner":
        return Case({"0": A("tensor", draw(tensors(shape=draw(shapes(0, 2)) + (n,), dtypes=(dt,)))),
                     "1": A("tensor", draw(tensors(shape=draw(shapes(0, 1)) + (n,), dtypes=(dt,))))})
    return Case({"0": A("tensor", draw(tensors(shape=draw(shapes(1, 1)), dtypes=(dt,)))),
                 "1": A("tensor", draw(tensors(shape=draw(shapes(1, 1 if draw(ints(0, 5)) else 2)), dtypes=(dt,))))})


entry("mv", pe.mv, vectors_case("mv"), names=("matmul",))
entry("inner", pe.inner, vectors_case("inner"), names=("einsum",))
entry("outer", pe.outer, vectors_case("outer"), names=("mul",))
entry("ger", pe.ger, vectors_case("outer"), names=("outer", "mul"))


@st.composite
def cross_case(draw):
    shp = draw(shapes(0, 2, sizes=(1, 2))) + (3,)
    a = draw(tensors(shape=shp, dtypes=FLOATS))
    b = draw(tensors(shape=draw(broadcast_shape(shp)) if draw(ints(0, 3)) else shp[:-1] + (2,), dtypes=FLOATS))
    args = {"0": A("tensor", a), "1": A("tensor", b)}
    if draw(st.booleans()):
        args["dim"] = A("dim", draw(st.sampled_from([-1, None])), optional=True)
    return Case(args)


entry("cross", pe.cross, cross_case())


@st.composite
def norm_case(draw):
    x = draw(tensors(dtypes=FLOATS + ("int64",)))
    args = {"0": A("tensor", x)}
    nd = x.values.ndim
    if draw(st.booleans()):
        args["p"] = A("choice", draw(st.sampled_from(["fro", "nuc", 1, 2, 3.0, float("inf"), 0, "bad"])))
    if nd and draw(st.booleans()):
        args["dim"] = A("dim", dim_of(draw, nd))
    if draw(st.booleans()):
        args["keepdim"] = A("bool", draw(st.booleans()))
    return Case(args)


entry("norm", pe.norm, norm_case(), names=("linalg.vector_norm", "linalg.matrix_norm"))


@st.composite
def cdist_case(draw):
    M = draw(st.sampled_from((0, 1, 3)))
    lead = draw(shapes(0, 1, sizes=(1, 2)))
    a = draw(tensors(shape=lead + (draw(ints(0, 3)), M), dtypes=FLOATS))
    b = draw(tensors(shape=lead + (draw(ints(0, 3)), M + (draw(ints(0, 5)) == 0)), dtypes=FLOATS))
    return Case({"0": A("tensor", a), "1": A("tensor", b), "p": A("float", draw(st.sampled_from([1.0, 2.0, 0.0])))})


entry("cdist", pe.cdist, cdist_case(), names=("linalg.vector_norm",))

# nn.functional


def _pair_case(**extra):
    @st.composite
    def build(draw):
        c = draw(pair_loss_case())
        return Case(_extra(draw, dict(c.args), extra))
    return build()


entry("smooth_l1_loss", F.smooth_l1_loss, _pair_case(beta=("float", st.sampled_from([1.0, 0.0, 0.5]))), nan="any",
      group="functional")
entry("huber_loss", F.huber_loss, _pair_case(delta=("float", st.sampled_from([1.0, 0.5]))), nan="any",
      group="functional")
entry("kl_div", F.kl_div, _pair_case(log_target=("bool", st.booleans())), group="functional")


@st.composite
def three_case(draw, op):
    dt = draw(st.sampled_from(("float32", "float64")))
    if op == "margin_ranking_loss":
        shp = draw(shapes(0, 2))
        t = TensorSpec(np.where(values(draw, shp, "float32", special=False) > 0, 1.0, -1.0).astype(dt))
        args = {"0": A("tensor", draw(tensors(shape=shp, dtypes=(dt,)))),
                "1": A("tensor", draw(tensors(shape=draw(broadcast_shape(shp)), dtypes=(dt,)))), "2": A("tensor", t)}
    elif op == "cosine_embedding_loss":
        N, D = draw(st.sampled_from((1, 3))), draw(st.sampled_from((1, 4)))
        shp = (N, D) if draw(ints(0, 3)) else (D,)
        t = TensorSpec(np.where(values(draw, shp[:-1], "float32", special=False) > 0, 1, -1).astype(np.int64))
        args = {"0": A("tensor", draw(tensors(shape=shp, dtypes=(dt,)))),
                "1": A("tensor", draw(tensors(shape=shp, dtypes=(dt,)))), "2": A("tensor", t)}
    else:
        shp = (draw(st.sampled_from((1, 3))), draw(st.sampled_from((1, 4))))
        args = {str(i): A("tensor", draw(tensors(shape=shp, dtypes=(dt,)))) for i in range(3)}
        if draw(st.booleans()):
            args["swap"] = A("bool", draw(st.booleans()))
        if draw(st.booleans()):
            args["p"] = A("float", draw(st.sampled_from([1.0, 2.0])))
    if draw(st.booleans()):
        args["margin"] = A("float", draw(st.sampled_from([0.0, 0.5, 1.0])))
    if draw(st.booleans()):
        args["reduction"] = A("choice", draw(reductions))
    return Case(args)


for _n in ("margin_ranking_loss", "cosine_embedding_loss", "triplet_margin_loss"):
    entry(_n, getattr(F, _n), three_case(_n), group="functional", names=("pairwise_distance",))


@st.composite
def distance_case(draw, op):
    x = draw(tensors(min_ndim=1, dtypes=FLOATS))
    y = draw(tensors(shape=draw(broadcast_shape(x.values.shape)), dtypes=(x.values.dtype.name,)))
    args = {"0": A("tensor", x), "1": A("tensor", y)}
    if op == "cosine_similarity" and draw(st.booleans()):
        args["dim"] = A("dim", dim_of(draw, x.values.ndim))
    if op == "pairwise_distance" and draw(st.booleans()):
        args["keepdim"] = A("bool", draw(st.booleans()))
    return Case(args)


entry("pairwise_distance", F.pairwise_distance, distance_case("pairwise_distance"), group="functional",
      names=("linalg.vector_norm",))
entry("cosine_similarity", F.cosine_similarity, distance_case("cosine_similarity"), group="functional",
      names=("linalg.vector_norm",))
entry("normalize", F.normalize, with_dim(dtypes=FLOATS + ("int64",), min_ndim=1, p=("float", st.sampled_from(
    [2.0, 1.0, float("inf")]))), group="functional", names=("linalg.vector_norm",))


@st.composite
def pad_case(draw):
    x = draw(tensors(min_ndim=1, max_ndim=4))
    k = draw(ints(1, min(3, x.values.ndim)))
    pads = tuple(draw(ints(-1, 3)) for _ in range(2 * k))
    args = {"0": A("tensor", x), "1": A("ints", pads)}
    if draw(st.booleans()):
        args["mode"] = A("choice", draw(st.sampled_from(["constant", "reflect", "replicate", "circular"])))
    if draw(ints(0, 3)) == 0:
        args["value"] = A("float", draw(st.sampled_from([0.0, 1.5])), True)
    return Case(args)


entry("pad", F.pad, pad_case(), group="functional", names=("index_select",))
entry("glu", F.glu, with_dim(dtypes=FLOATS, min_ndim=1), group="functional", names=("chunk", "split"))
entry("gumbel_softmax", _seeded(F.gumbel_softmax), unary(dtypes=FLOATS, tau=("float", st.sampled_from([1.0, 0.5])),
                                                       hard=("bool", st.booleans())),
      group="functional", names=("softmax",))

# modules
for _cls in (nn.SELU, nn.ReLU6, nn.Hardswish, nn.Hardsigmoid, nn.Mish, nn.Softsign, nn.Tanhshrink, nn.LogSigmoid):
    module(_cls, ctor(), fwd_tensor(min_ndim=0), nan="elementwise", names=(_cls.__name__.lower(),))
module(nn.ELU, ctor(alpha=("float", st.sampled_from([1.0, 0.5]))), fwd_tensor(min_ndim=0), nan="elementwise",
       names=("elu",))
module(nn.CELU, ctor(alpha=("float", st.sampled_from([1.0, 0.5]))), fwd_tensor(min_ndim=0), nan="elementwise",
       names=("celu",))
module(nn.Softplus, ctor(beta=("float", st.sampled_from([1.0, 2.0]))), fwd_tensor(min_ndim=0), nan="elementwise",
       names=("softplus",))
module(nn.Hardtanh, ctor(min_val=("float", st.sampled_from([-1.0, 0.0])), max_val=("float", st.sampled_from([1.0]))),
       fwd_tensor(min_ndim=0), nan="elementwise", names=("hardtanh",))
module(nn.GLU, ctor(dim=("dim", st.sampled_from([-1, 0]))), fwd_tensor(), names=("glu",))
module(nn.SmoothL1Loss, ctor(reduction=("choice", reductions)), fwd_loss("pair"), nan="any",
       names=("smooth_l1_loss",))
module(nn.HuberLoss, ctor(reduction=("choice", reductions)), fwd_loss("pair"), nan="any", names=("huber_loss",))
module(nn.KLDivLoss, ctor(reduction=("choice", reductions)), fwd_loss("pair"), names=("kl_div",))


def fwd_three(op):
    @st.composite
    def build(draw, c):
        case = draw(three_case(op))
        return Case({k: a for k, a in case.args.items() if k in ("0", "1", "2")})
    return build


module(nn.MarginRankingLoss, ctor(margin=("float", st.sampled_from([0.0, 0.5]))), fwd_three("margin_ranking_loss"),
       names=("margin_ranking_loss",))
module(nn.CosineEmbeddingLoss, ctor(margin=("float", st.sampled_from([0.0, 0.5]))),
       fwd_three("cosine_embedding_loss"), names=("cosine_embedding_loss",))
module(nn.TripletMarginLoss, ctor(margin=("float", st.sampled_from([1.0, 0.5]))), fwd_three("triplet_margin_loss"),
       names=("triplet_margin_loss", "pairwise_distance", "linalg.vector_norm"))


def fwd_pair_of(op):
    @st.composite
    def build(draw, c):
        case = draw(distance_case(op))
        return Case({k: a for k, a in case.args.items() if k in ("0", "1")})
    return build


module(nn.CosineSimilarity, ctor(dim=("dim", st.sampled_from([-1, 0]))), fwd_pair_of("cosine_similarity"),
       names=("cosine_similarity", "linalg.vector_norm"))
module(nn.PairwiseDistance, ctor(p=("float", st.sampled_from([2.0, 1.0]))), fwd_pair_of("pairwise_distance"),
       names=("pairwise_distance", "linalg.vector_norm"))


# ---------------------------------------------------------------------- vision layers (issue 15)
# Windows may skip input positions (stride > kernel), so a NaN need not reach the output: no NaN check.

_VDT = ("float32", "float32", "float64", "float16")


@st.composite
def _spatial_input(draw, nd, channels=None, dtypes=_VDT, batched=None):
    C = channels if channels is not None else draw(st.sampled_from((1, 2, 3)))
    sp = tuple(draw(st.sampled_from((1, 2, 3, 5, 7))) for _ in range(nd))
    lead = (draw(st.sampled_from((0, 1, 2))),) if (draw(ints(0, 4)) if batched is None else batched) else ()
    return draw(tensors(shape=lead + (C,) + sp, dtypes=dtypes))


@st.composite
def conv_case(draw, nd, transposed=False):
    g = draw(st.sampled_from((1, 1, 2)))
    C = g * draw(st.sampled_from((1, 2)))
    x = draw(_spatial_input(nd, C))
    dt = x.values.dtype.name if x.values.dtype.kind == "f" else "float32"
    Og = draw(st.sampled_from((1, 2)))
    ks = tuple(draw(st.sampled_from((1, 2, 3))) for _ in range(nd))
    wshape = (C, Og) + ks if transposed else (Og * g, C // g) + ks
    args = {"0": A("tensor", x), "1": A("tensor", draw(tensors(shape=wshape, dtypes=(dt,))))}
    if draw(st.booleans()):
        args["bias"] = A("tensor", draw(tensors(shape=(Og * g,), dtypes=(dt,))), optional=True)
    if draw(st.booleans()):
        args["stride"] = A("size", draw(st.sampled_from((1, 2, 3))))
    if draw(st.booleans()):
        pads = (0, 1, 2) if transposed else (0, 1, 2, "same", "valid")
        p = draw(st.sampled_from(pads))
        args["padding"] = A("any" if isinstance(p, str) else "size", p)
    if draw(st.booleans()):
        args["dilation"] = A("size", draw(st.sampled_from((1, 2))))
    if g > 1 or draw(ints(0, 5)) == 0:
        args["groups"] = A("size", g)
    if transposed and draw(st.booleans()):
        args["output_padding"] = A("size", draw(st.sampled_from((0, 1))))
    return Case(args)


entry("conv2d", F.conv2d, conv_case(2), group="functional")
entry("conv1d", F.conv1d, conv_case(1), group="functional")
entry("conv_transpose2d", F.conv_transpose2d, conv_case(2, True), group="functional")
entry("conv_transpose1d", F.conv_transpose1d, conv_case(1, True), group="functional")


@st.composite
def pool_case(draw, nd, kind):
    args = {"0": A("tensor", draw(_spatial_input(nd)))}
    k = draw(st.sampled_from((1, 2, 3)))
    args["1"] = A("size", k)
    if draw(st.booleans()):
        args["stride"] = A("size", draw(st.sampled_from((1, 2, 3))), optional=True)   # None: the kernel size
    if draw(st.booleans()):
        args["padding"] = A("size", draw(st.sampled_from((0, k // 2))))
    if kind == "max" and draw(st.booleans()):
        args["dilation"] = A("size", draw(st.sampled_from((1, 2))))
    if draw(st.booleans()):
        args["ceil_mode"] = A("bool", True)
    if kind == "max" and draw(st.booleans()):
        args["return_indices"] = A("bool", True)
    if kind == "avg" and draw(st.booleans()):
        args["count_include_pad"] = A("bool", False)
    return Case(args)


entry("max_pool2d", F.max_pool2d, pool_case(2, "max"), group="functional")
entry("max_pool1d", F.max_pool1d, pool_case(1, "max"), group="functional")
entry("avg_pool2d", F.avg_pool2d, pool_case(2, "avg"), group="functional")
entry("avg_pool1d", F.avg_pool1d, pool_case(1, "avg"), group="functional")


@st.composite
def adaptive_case(draw, nd):
    x = draw(_spatial_input(nd))
    return Case({"0": A("tensor", x), "1": A("size", draw(st.sampled_from((1, 2, 3))))})


entry("adaptive_avg_pool2d", F.adaptive_avg_pool2d, adaptive_case(2), group="functional",
      names=("matmul",))
entry("adaptive_avg_pool1d", F.adaptive_avg_pool1d, adaptive_case(1), group="functional", names=("matmul",))
entry("adaptive_max_pool2d", F.adaptive_max_pool2d, adaptive_case(2), group="functional", names=("amax", "stack"))


@st.composite
def batch_norm_case(draw):
    C = draw(st.sampled_from((1, 2, 3)))
    x = draw(tensors(shape=(draw(st.sampled_from((1, 2, 3))), C) + draw(shapes(0, 2, sizes=(1, 2, 3))),
                     dtypes=_VDT))
    dt = x.values.dtype.name if x.values.dtype.kind == "f" else "float32"
    training = draw(st.booleans())
    stats = not training or draw(st.booleans())
    args = {"0": A("tensor", x)}
    args["1"] = A("tensor", draw(tensors(shape=(C,), dtypes=(dt,), grad=False)), optional=True) if stats else \
        A("tensor", None, optional=True)
    args["2"] = A("tensor", TensorSpec(np.abs(values(draw, (C,), dt)) + 0.5, "contiguous", False), optional=True) \
        if stats else A("tensor", None, optional=True)
    # weight and bias finite: an inf weight times a gradient sum that rounds to 0 in one summation order and
    # not in the other makes NaN at different places (dx = w rstd (dy - mean(dy) - xhat mean(dy xhat)))
    if draw(st.booleans()):
        args["weight"] = A("tensor", draw(tensors(shape=(C,), dtypes=(dt,), special=False)), optional=True)
    if draw(st.booleans()):
        args["bias"] = A("tensor", draw(tensors(shape=(C,), dtypes=(dt,), special=False)), optional=True)
    args["training"] = A("bool", training)
    if draw(st.booleans()):
        args["momentum"] = A("float", draw(st.sampled_from((0.1, 0.5))))
    return Case(args)


entry("batch_norm", F.batch_norm, batch_norm_case(), group="functional")


@st.composite
def group_norm_case(draw):
    G = draw(st.sampled_from((1, 2)))
    C = G * draw(st.sampled_from((1, 2)))
    x = draw(tensors(shape=(draw(st.sampled_from((1, 2))), C) + draw(shapes(0, 2, sizes=(1, 2, 3))), dtypes=_VDT))
    dt = x.values.dtype.name if x.values.dtype.kind == "f" else "float32"
    args = {"0": A("tensor", x), "1": A("size", G)}
    if draw(st.booleans()):
        args["weight"] = A("tensor", draw(tensors(shape=(C,), dtypes=(dt,))), optional=True)
    if draw(st.booleans()):
        args["bias"] = A("tensor", draw(tensors(shape=(C,), dtypes=(dt,))), optional=True)
    return Case(args)


entry("group_norm", F.group_norm, group_norm_case(), group="functional", names=("layer_norm",))


@st.composite
def channel_dropout_case(draw, nd):
    args = {"0": A("tensor", draw(_spatial_input(nd, dtypes=FLOATS)))}
    args["p"] = A("float", draw(st.sampled_from([0.0, 0.5, 1.0])))
    if draw(st.booleans()):
        args["training"] = A("bool", draw(st.booleans()))
    return Case(args)


entry("dropout2d", F.dropout2d, channel_dropout_case(2), run=_seeded(call(F.dropout2d)), group="functional")
entry("dropout1d", F.dropout1d, channel_dropout_case(1), run=_seeded(call(F.dropout1d)), group="functional")


@st.composite
def interpolate_case(draw):
    nd = draw(st.sampled_from((1, 2)))
    x = draw(_spatial_input(nd, dtypes=FLOATS, batched=True))
    mode = draw(st.sampled_from(("nearest", "linear" if nd == 1 else "bilinear")))
    args = {"0": A("tensor", x)}
    if draw(st.booleans()):
        args["size"] = A("size", draw(st.sampled_from((1, 2, 5))), optional=True)
    else:
        args["scale_factor"] = A("float", draw(st.sampled_from((0.5, 1.0, 2.0, 2.5))), optional=True)
    args["mode"] = A("choice", mode)
    if mode != "nearest" and draw(st.booleans()):
        args["align_corners"] = A("bool", draw(st.booleans()))
    return Case(args)


entry("interpolate", F.interpolate, interpolate_case(), group="functional",
      names=("upsample", "matmul", "index_select"))
entry("upsample", F.upsample, interpolate_case(), group="functional", names=("interpolate", "matmul", "index_select"))


@st.composite
def unfold_case(draw):
    x = draw(_spatial_input(2, dtypes=("float32", "float64")))
    args = {"0": A("tensor", x), "1": A("size", draw(st.sampled_from((1, 2, 3))))}
    for k, choices in (("dilation", (1, 2)), ("padding", (0, 1)), ("stride", (1, 2))):
        if draw(st.booleans()):
            args[k] = A("size", draw(st.sampled_from(choices)))
    return Case(args)


@st.composite
def fold_case(draw):
    H, W = draw(st.sampled_from((2, 3, 5))), draw(st.sampled_from((2, 4)))
    k, s = draw(st.sampled_from((1, 2))), draw(st.sampled_from((1, 2)))
    L = ((H - k) // s + 1) * ((W - k) // s + 1)
    C = draw(st.sampled_from((1, 2)))
    lead = (draw(st.sampled_from((1, 2))),) if draw(ints(0, 3)) else ()
    x = draw(tensors(shape=lead + (C * k * k, L + (draw(ints(0, 8)) == 0)), dtypes=("float32", "float64")))
    return Case({"0": A("tensor", x), "1": A("shape", (H, W)), "2": A("size", k), "stride": A("size", s)})


entry("unfold", F.unfold, unfold_case(), group="functional")
entry("fold", F.fold, fold_case(), group="functional")


def fwd_spatial(nd, channels="0", batched_dims=None):
    @st.composite
    def build(draw, c):
        C = c.args[channels].value if channels in c.args and isinstance(c.args[channels].value, int) else 2
        C = C + 1 if draw(ints(0, 8)) == 0 else C
        lead = (draw(st.sampled_from((1, 2, 3))),)
        if batched_dims is None and draw(ints(0, 3)) == 0:
            lead = ()
        sp = tuple(draw(st.sampled_from((1, 2, 3, 5))) for _ in range(nd))
        return Case({"0": A("tensor", draw(tensors(shape=lead + (C,) + sp, dtypes=("float32", "float32",
                                                                                     "float64"))))})
    return build


_ks = st.sampled_from((1, 2, 3))
module(nn.Conv2d, ctor(**{"0": ("size", st.sampled_from((1, 2, 4))), "1": ("size", st.sampled_from((2, 4))),
                          "2": ("size", _ks), "stride": ("size", st.sampled_from((1, 2))),
                          "padding": ("size", st.sampled_from((0, 1))),
                          "padding_mode": ("choice", st.sampled_from(("zeros", "reflect", "circular")))}),
       fwd_spatial(2), names=("conv2d", "pad"))
module(nn.Conv1d, ctor(**{"0": ("size", st.sampled_from((1, 2))), "1": ("size", st.sampled_from((1, 3))),
                          "2": ("size", _ks), "dilation": ("size", st.sampled_from((1, 2)))}),
       fwd_spatial(1), names=("conv1d",))
module(nn.ConvTranspose2d, ctor(**{"0": ("size", st.sampled_from((1, 2))), "1": ("size", st.sampled_from((1, 3))),
                                   "2": ("size", _ks), "stride": ("size", st.sampled_from((1, 2)))}),
       fwd_spatial(2), names=("conv_transpose2d",))
module(nn.ConvTranspose1d, ctor(**{"0": ("size", st.sampled_from((1, 2))), "1": ("size", st.sampled_from((1, 3))),
                                   "2": ("size", _ks)}),
       fwd_spatial(1), names=("conv_transpose1d",))
module(nn.MaxPool2d, ctor(**{"0": ("size", _ks), "stride": ("size", st.sampled_from((1, 2)), True),
                             "ceil_mode": ("bool", st.booleans())}), fwd_spatial(2, channels="x"),
       names=("max_pool2d",))
module(nn.MaxPool1d, ctor(**{"0": ("size", _ks)}), fwd_spatial(1, channels="x"), names=("max_pool1d",))
module(nn.AvgPool2d, ctor(**{"0": ("size", _ks), "count_include_pad": ("bool", st.booleans())}),
       fwd_spatial(2, channels="x"), names=("avg_pool2d",))
module(nn.AvgPool1d, ctor(**{"0": ("size", _ks)}), fwd_spatial(1, channels="x"), names=("avg_pool1d",))
module(nn.AdaptiveAvgPool2d, ctor(**{"0": ("size", st.sampled_from((1, 2, 3)))}), fwd_spatial(2, channels="x"),
       names=("adaptive_avg_pool2d", "matmul"))
module(nn.AdaptiveAvgPool1d, ctor(**{"0": ("size", st.sampled_from((1, 2)))}), fwd_spatial(1, channels="x"),
       names=("adaptive_avg_pool1d", "matmul"))
module(nn.AdaptiveMaxPool2d, ctor(**{"0": ("size", st.sampled_from((1, 2)))}), fwd_spatial(2, channels="x"),
       names=("adaptive_max_pool2d", "amax", "stack"))
module(nn.BatchNorm2d, ctor(**{"0": ("size", st.sampled_from((1, 2))), "momentum": ("float", st.sampled_from((0.1, 0.5, None)), True),
                               "affine": ("bool", st.booleans())}), fwd_spatial(2, batched_dims=True),
       names=("batch_norm",))
module(nn.BatchNorm1d, ctor(**{"0": ("size", st.sampled_from((1, 3))),
                               "track_running_stats": ("bool", st.booleans())}), fwd_spatial(1, batched_dims=True),
       names=("batch_norm",))
module(nn.GroupNorm, ctor(**{"0": ("size", st.sampled_from((1, 2))), "1": ("size", st.sampled_from((2, 4)))}),
       fwd_spatial(2, channels="1"), names=("group_norm", "layer_norm"))
module(nn.Dropout2d, ctor(p=("float", st.sampled_from([0.0, 0.5, 1.0]))), fwd_spatial(2, channels="x"),
       names=("dropout2d",))
module(nn.Dropout1d, ctor(p=("float", st.sampled_from([0.0, 0.5, 1.0]))), fwd_spatial(1, channels="x"),
       names=("dropout1d",))
module(nn.Upsample, ctor(scale_factor=("float", st.sampled_from((1.0, 2.0))),
                         mode=("choice", st.sampled_from(("nearest", "bilinear")))),
       fwd_spatial(2, channels="x", batched_dims=True), names=("interpolate", "matmul", "index_select"))
module(nn.Unfold, ctor(**{"0": ("size", st.sampled_from((1, 2)))}), fwd_spatial(2, channels="x"), names=("unfold",))
module(nn.Fold, ctor(**{"0": ("shape", st.sampled_from(((3, 3), (2, 4)))), "1": ("size", st.sampled_from((1, 2)))}),
       fwd_spatial(1, channels="x", batched_dims=True), names=("fold",))

module(nn.EmbeddingBag, ctor(**{"0": ("size", sizes_), "1": ("size", sizes_),
                                "mode": ("choice", st.sampled_from(("sum", "mean", "max")))}),
       fwd_indices(), names=("embedding_bag",))
module(nn.PixelShuffle, ctor(**{"0": ("size", st.sampled_from((1, 2)))}), fwd_spatial(2, channels="x"),
       names=("pixel_shuffle",))
module(nn.PixelUnshuffle, ctor(**{"0": ("size", st.sampled_from((1, 2)))}), fwd_spatial(2, channels="x"),
       names=("pixel_unshuffle",))

# ---------------------------------------------------------------------- what must be covered

EXCLUDED = {
    # not array ops: global state and process setup, covered by their own tests
    "set_backend", "get_backend", "set_num_threads", "get_num_threads", "manual_seed", "seed", "initial_seed",
    "get_rng_state", "set_rng_state", "set_grad_enabled", "is_grad_enabled", "no_grad", "enable_grad",
    "load", "save", "device", "dtype", "Size", "Tensor", "Function", "Generator",
    # abstract bases: nothing to call
    "Module", "Optimizer", "LRScheduler", "RNNBase", "RNNCellBase",
    # steps only with a closure that recomputes the loss: tests/test_compat.py runs it against torch.optim.LBFGS
    "LBFGS",
}


def public_names():
    """Every public callable that must have an Entry (or a reason in EXCLUDED)."""
    import inspect
    names = set(pe.ops.__all__) | {"arange", "as_tensor", "empty", "empty_like", "eye", "from_numpy", "full",
                                   "full_like", "is_tensor", "linspace", "numel", "ones", "ones_like", "rand",
                                   "rand_like", "randint", "randint_like", "randn", "randn_like", "randperm",
                                   "tensor", "zeros", "zeros_like", "multinomial", "one_hot"}
    names |= {n for n in F.__all__}
    names |= {n for n in nn.__all__ if inspect.isclass(getattr(nn, n))}
    names |= set(pe.optim.__all__) - {"lr_scheduler"}
    names |= set(LR.__all__)
    return names - EXCLUDED


def missing_entries():
    have = {e.name for e in ENTRIES} | {n for e in ENTRIES for n in e.names}
    return sorted(public_names() - have)
