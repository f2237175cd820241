"""Compiled elementwise kernels (csrc/cpu/elementwise.cpp) against the NumPy reference, at every SIMD level.

The wrapper sends inputs under ``SMALL`` elements to NumPy; the ``kernel`` fixture sets it to 0 so that
every size here runs the kernel. Layouts: contiguous, transposed, strided, reversed and broadcast views.
"""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyengine import _C
from pyengine.backend.cpu import elementwise as cpu
from pyengine.backend.reference import elementwise as ref
from pyengine.testing import ODD_SIZES, assert_close

DTYPES = (np.float32, np.float64)
LAYOUTS = ("contiguous", "transposed", "strided", "reversed", "broadcast")
EXACT = ("add", "sub", "mul", "div", "maximum", "minimum", "eq", "ne", "lt", "le", "gt", "ge")


@pytest.fixture
def kernel(monkeypatch):
    """Every call runs the compiled kernel (no NumPy path for small inputs); restores the thread count."""
    monkeypatch.setattr(cpu, "SMALL", 0)
    before = _C.num_threads()
    yield
    _C.set_num_threads(before)


def view(rng, shape, dtype, layout, scale=1.0, shift=0.0):
    """An array of ``shape`` in the given memory layout (values normal * scale + shift)."""
    def draw(s):
        return (rng.standard_normal(s) * scale + shift).astype(dtype)
    if layout == "transposed" and len(shape) >= 2:
        return np.swapaxes(draw(shape[:-2] + (shape[-1], shape[-2])), -1, -2)
    if layout == "strided" and shape:
        return draw(shape[:-1] + (shape[-1] * 2 + 1,))[..., 1::2]
    if layout == "reversed" and shape:
        return draw(shape)[::-1]
    if layout == "broadcast" and shape:
        return np.broadcast_to(draw((1,) + shape[1:]), shape)
    return draw(shape)


shapes = st.lists(st.sampled_from(ODD_SIZES), min_size=0, max_size=3).map(tuple)


def drop_dims(draw_bool, shape):
    """A shape broadcastable to ``shape``: some axes set to 1, some leading axes dropped."""
    s = [1 if draw_bool() else n for n in shape]
    while s and draw_bool():
        s.pop(0)
    return tuple(s)


@pytest.mark.parametrize("op", EXACT + ("pow",))
@given(data=st.data(), shape=shapes, dtype=st.sampled_from(DTYPES), seed=st.integers(0, 2**32 - 1),
       la=st.sampled_from(LAYOUTS), lb=st.sampled_from(LAYOUTS), number=st.sampled_from([None, "a", "b"]))
def test_binary_matches_reference(kernel, isa, op, data, shape, dtype, seed, la, lb, number):
    rng = np.random.default_rng(seed)
    sb = drop_dims(lambda: data.draw(st.booleans()), shape)
    pos = op == "pow"  # a ** b of a negative base is NaN for most b: keep a > 0
    a = view(rng, shape, dtype, la, shift=3.0 if pos else 0.0)
    if pos:
        a = np.abs(a)
    b = view(rng, sb, dtype, lb)
    if op in ("eq", "ne", "le", "ge", "maximum", "minimum") and b.size and a.size:
        b = b.copy()
        b.flat[0] = a.flat[0]  # some ties
    if number == "a":
        a = 2.5
    elif number == "b":
        b = -1.5 if op != "pow" else 3
    got, want = getattr(cpu, op)(a, b), getattr(ref, op)(a, b)
    assert got.dtype == want.dtype and got.shape == np.shape(want)
    if op in EXACT:
        np.testing.assert_array_equal(got, want)
    else:
        assert_close(got, want)


UNARY = {  # op: (scale, shift) of the inputs (log, sqrt, rsqrt: positive)
    "neg": (1, 0), "exp": (10, 0), "log": (5, 6), "sqrt": (5, 6), "rsqrt": (5, 6), "abs": (1, 0),
    "tanh": (3, 0), "sigmoid": (10, 0),
}


@pytest.mark.parametrize("op", sorted(UNARY))
@given(shape=shapes, dtype=st.sampled_from(DTYPES), seed=st.integers(0, 2**32 - 1), layout=st.sampled_from(LAYOUTS))
def test_unary_matches_reference(kernel, isa, op, shape, dtype, seed, layout):
    rng = np.random.default_rng(seed)
    scale, shift = UNARY[op]
    x = view(rng, shape, dtype, layout, scale, shift)
    if op in ("log", "sqrt", "rsqrt"):
        x = np.abs(x) + dtype(0.01)
    got, want = getattr(cpu, op)(x), getattr(ref, op)(x)
    assert got.dtype == want.dtype == dtype and got.shape == want.shape
    assert_close(got, want)


SPECIAL = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-45, -1e-45, 1e-40, 1.5e-38, 1.0, -1.0, 0.3, -0.6,
                    0.55, -0.55, 9.0, -9.0, 20.0, -20.0, 88.5, 88.72, 88.73, -87.0, -87.5, -104.0, -200.0,
                    3.0e38, -3.0e38])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", sorted(UNARY))
def test_unary_special_values(kernel, isa, op, dtype):
    x = SPECIAL.astype(dtype)
    with np.errstate(all="ignore"):
        want = getattr(ref, op)(x)
    got = getattr(cpu, op)(x)
    # below the smallest normal the float kernels give 0 where NumPy gives a denormal (simd.h: flushed)
    tiny = np.finfo(dtype).tiny
    assert_close(got, want, atol=tiny)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_array_equal(np.isinf(got), np.isinf(want))


@pytest.mark.parametrize("op,lo,hi", [("exp", -87.3, 88.7), ("log", 1e-37, 3e38), ("tanh", -12, 12),
                                      ("sigmoid", -80, 30)])
def test_float32_accuracy_in_ulps(kernel, isa, op, lo, hi):
    # the float kernels' own exp / log / tanh / sigmoid against float64 NumPy, in float32 ulps of the
    # exact value, on a dense grid (log: geometric)
    x = (np.geomspace(lo, hi, 200001) if op == "log" else np.linspace(lo, hi, 200001)).astype(np.float32)
    exact = getattr(ref, op)(x.astype(np.float64))
    got = getattr(cpu, op)(x).astype(np.float64)
    ulp = np.spacing(np.abs(exact).astype(np.float32)).astype(np.float64)
    normal = np.abs(exact) >= np.finfo(np.float32).tiny
    err = np.abs(got - exact)[normal] / ulp[normal]
    assert err.max() <= 4, f"{op}: {err.max():.2f} ulp at x = {x[normal][np.argmax(err)]}"


@pytest.mark.parametrize("p", [2, 3, 0.5, -1, 1, 0, 2.5, -2.0, 3.0])
@pytest.mark.parametrize("dtype", DTYPES)
def test_pow_scalar_exponents(kernel, isa, p, dtype):
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.standard_normal(50) * 3, SPECIAL]).astype(dtype)
    with np.errstate(all="ignore"):
        want = ref.pow(x, p)
        got = cpu.pow(x, p)
        assert_close(got, want, atol=np.finfo(dtype).tiny)
        g = rng.standard_normal(x.shape).astype(dtype)
        assert_close(cpu.pow_backward_a(g, x, p), ref.pow_backward_a(g, x, p), atol=np.finfo(dtype).tiny)


BACKWARD = {  # name: (what the inputs are, in order) - "g" the gradient, "pos" a positive array
    "exp_backward": ("y", "g"), "log_backward": ("pos", "g"), "sqrt_backward": ("pos", "g"),
    "rsqrt_backward": ("pos", "g"), "abs_backward": ("x", "g"), "tanh_backward": ("y", "g"),
    "sigmoid_backward": ("y", "g"), "div_backward_b": ("g", "x", "pos"), "pow_backward_a": ("g", "pos", "x"),
    "pow_backward_b": ("g", "y", "pos"), "maximum_backward_a": ("g", "x", "x2"),
    "maximum_backward_b": ("g", "x", "x2"), "minimum_backward_a": ("g", "x", "x2"),
    "minimum_backward_b": ("g", "x", "x2"),
}


@pytest.mark.parametrize("name", sorted(BACKWARD))
@given(data=st.data(), shape=shapes, dtype=st.sampled_from(DTYPES), seed=st.integers(0, 2**32 - 1),
       layouts=st.lists(st.sampled_from(LAYOUTS), min_size=3, max_size=3), threads=st.sampled_from([1, 2]))
def test_backward_matches_reference(kernel, isa, name, data, shape, dtype, seed, layouts, threads):
    rng = np.random.default_rng(seed)
    args = []
    for i, kind in enumerate(BACKWARD[name]):
        s = shape if kind == "g" else drop_dims(lambda: data.draw(st.booleans()), shape)
        v = view(rng, s, dtype, layouts[i])
        if kind == "pos":
            v = np.abs(v) + dtype(0.5)
        args.append(v)
    if name.startswith(("maximum", "minimum")) and args[1].size and args[2].size:
        args[2] = args[2].copy()
        args[2].flat[-1] = args[1].flat[-1]  # a tie
    _C.set_num_threads(threads)
    got, want = getattr(cpu, name)(*args), getattr(ref, name)(*args)
    assert got.dtype == want.dtype and got.shape == want.shape
    assert_close(got, want)


@pytest.mark.parametrize("name", ["div_backward_b", "pow_backward_a", "maximum_backward_b"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_every_row_mode_combination(kernel, isa, name, dtype):
    # each input contiguous along the row or one value per row (stride 0: a column broadcast, or a broadcast
    # scalar such as the gradient of a sum): every combination has its own row loop (elementwise.cpp row_any)
    rng = np.random.default_rng(7)
    shape = (5, 37)
    for modes in np.ndindex(2, 2, 2):
        args = []
        for i, (kind, m) in enumerate(zip(BACKWARD[name], modes)):
            v = (rng.standard_normal(shape if m else (5, 1)) + (3.0 if kind == "pos" else 0.0)).astype(dtype)
            if kind == "pos":
                v = np.abs(v) + dtype(0.5)
            if i == 0 and not m:  # g: a stride-0 scalar, as the gradient of a sum
                v = v[:1]
            args.append(np.broadcast_to(v, shape))
        got, want = getattr(cpu, name)(*args), getattr(ref, name)(*args)
        assert_close(got, want)
    a, col = rng.standard_normal(shape).astype(dtype), rng.standard_normal((5, 1)).astype(dtype)
    one = np.broadcast_to(dtype(1.5), shape)
    for x, y in [(one, np.broadcast_to(col, shape)), (col, one), (one, a), (col, a)]:
        np.testing.assert_array_equal(cpu.div(x, y), x / y)


@given(data=st.data(), shape=shapes, dtype=st.sampled_from(DTYPES), seed=st.integers(0, 2**32 - 1),
       layout=st.sampled_from(LAYOUTS), number=st.sampled_from([None, "a", "b"]))
def test_where_and_its_backward(kernel, isa, data, shape, dtype, seed, layout, number):
    rng = np.random.default_rng(seed)
    cond = rng.random(drop_dims(lambda: data.draw(st.booleans()), shape)) > 0.5
    a = view(rng, drop_dims(lambda: data.draw(st.booleans()), shape), dtype, layout)
    b = view(rng, shape, dtype, "contiguous")
    if number == "a":
        a = 0.25
    elif number == "b":
        b = -7
    got, want = cpu.where(cond, a, b), ref.where(cond, a, b)
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)
    g = view(rng, np.shape(want), dtype, layout)
    np.testing.assert_array_equal(cpu.where_backward_a(cond, g), ref.where_backward_a(cond, g))
    np.testing.assert_array_equal(cpu.where_backward_b(cond, g), ref.where_backward_b(cond, g))


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", DTYPES)
def test_large_threaded_layouts(isa, threads, dtype):
    # big enough for the threads and the default SMALL: ranges start and end mid-row
    rng = np.random.default_rng(3)
    before = _C.num_threads()
    _C.set_num_threads(threads)
    try:
        a = rng.standard_normal((301, 263)).astype(dtype)
        bt = rng.standard_normal((263, 301)).astype(dtype).T        # transposed
        col = rng.standard_normal((301, 1)).astype(dtype)            # column broadcast
        row = rng.standard_normal(263).astype(dtype)[::-1]           # reversed row broadcast
        for got, want in [(cpu.add(a, bt), a + bt), (cpu.mul(a, col), a * col), (cpu.sub(row, a), row - a),
                          (cpu.div(bt, 3), bt / 3), (cpu.maximum(a, row), np.maximum(a, row)),
                          (cpu.lt(a, bt), a < bt)]:
            np.testing.assert_array_equal(got, want)
        assert_close(cpu.tanh(bt), np.tanh(bt))
        assert_close(cpu.tanh_backward(a, bt), bt * (1 - a * a))
        assert_close(cpu.exp_backward(a, np.broadcast_to(dtype(1), a.shape)), a)  # g = a stride-0 scalar
    finally:
        _C.set_num_threads(before)


def test_fallback_dtypes_and_numbers(kernel):
    # int, bool and mixed dtypes, and two numbers in a three-input op, are NumPy's: the reference's results
    i = np.arange(12).reshape(3, 4)
    f32, f64 = np.ones(4, np.float32), np.ones(4, np.float64)
    cases = [(cpu.add, ref.add, (i, 2)), (cpu.mul, ref.mul, (i, 0.5)), (cpu.add, ref.add, (f32, f64)),
             (cpu.exp, ref.exp, (i,)), (cpu.lt, ref.lt, (i, 3)), (cpu.pow, ref.pow, (i, 2)),
             (cpu.where, ref.where, (i > 3, 1.0, 2.0)), (cpu.sub, ref.sub, (True, f32))]
    for fn, twin, args in cases:
        got, want = fn(*args), twin(*args)
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)


def test_binding_checks(kernel):
    ew, ops = _C.elementwise, cpu.OPS
    x = np.ones((3, 4), np.float32)
    with pytest.raises(ValueError, match="cannot be broadcast"):
        ew(ops["add"], np.empty((3, 4), np.float32), x, np.ones(5, np.float32))
    with pytest.raises(TypeError, match="same dtype"):
        ew(ops["add"], np.empty((3, 4), np.float32), x, np.ones(4, np.float64))
    with pytest.raises(TypeError, match="float32 or float64"):
        ew(ops["exp"], np.empty(3, np.int64), np.ones(3, np.int64))
    with pytest.raises(TypeError, match="bool"):
        ew(ops["lt"], np.empty((3, 4), np.float32), x, x)
    with pytest.raises(ValueError, match="writeable"):
        out = np.empty((3, 4), np.float32)
        out.flags.writeable = False
        ew(ops["add"], out, x, x)
    with pytest.raises(ValueError, match="non-zero strides"):
        ew(ops["neg"], np.lib.stride_tricks.as_strided(np.empty(4, np.float32), (3, 4), (0, 4), writeable=True), x)
    with pytest.raises(ValueError, match="unknown op"):
        ew(999, np.empty(3, np.float32), np.ones(3, np.float32))
    with pytest.raises(ValueError, match="must be an array"):
        ew(ops["pow_scalar"], np.empty(3, np.float32), None, p=2.0)
    with pytest.raises(TypeError, match="condition"):
        ew(ops["where"], np.empty(3, np.float32), np.ones(3, np.float32), np.ones(3, np.float32), None)
    empty = np.empty((0, 4), np.float32)
    ew(ops["add"], empty, empty, x[0])  # nothing to do


@pytest.mark.parametrize("op", ["exp", "tanh", "sigmoid"])
def test_exp_ops_in_place(kernel, isa, op):
    """out = x (in place): each element is read before it is written, also where AVX2's exp recomputes a
    block holding x > 88.3 by the scalar exp (that test reads x before the block is written)."""
    x = np.concatenate([np.linspace(-90, 88.6, 1000), [88.5, np.nan, np.inf, -np.inf]]).astype(np.float32)
    want = getattr(cpu, op)(x.copy())
    _C.elementwise(cpu.OPS[op], x, x)
    np.testing.assert_array_equal(x, want)
