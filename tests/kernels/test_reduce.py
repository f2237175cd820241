"""Compiled reductions (csrc/cpu/reduce.cpp) against the NumPy reference."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyengine import _C
from pyengine.backend.cpu import reduce as cpu
from pyengine.backend.reference import reduce as ref
from pyengine.testing import ODD_SIZES, assert_close

DTYPES = (np.float32, np.float64)


@settings(deadline=None)
@given(n=st.sampled_from((0,) + ODD_SIZES + (1000, 4099)), c=st.sampled_from(ODD_SIZES),
       dtype=st.sampled_from(DTYPES), layout=st.sampled_from(["contiguous", "row_slice", "transposed", "reversed"]),
       threads=st.sampled_from([1, 2]), seed=st.integers(0, 2**32 - 1))
def test_sum_rows_matches_reference(isa, n, c, dtype, layout, threads, seed):
    rng = np.random.default_rng(seed)
    if layout == "row_slice":  # read in place: rows of a wider array
        x = (rng.standard_normal((n, c + 5)) * 3 + 1).astype(dtype)[:, 2:2 + c]
    elif layout == "transposed":  # copied by the wrapper
        x = (rng.standard_normal((c, n)) * 3 + 1).astype(dtype).T
    elif layout == "reversed":
        x = (rng.standard_normal((n, c)) * 3 + 1).astype(dtype)[::-1]
    else:
        x = (rng.standard_normal((n, c)) * 3 + 1).astype(dtype)
    x0 = x.copy()
    before = _C.num_threads()
    _C.set_num_threads(threads)
    try:
        got = cpu.sum_rows(x)
    finally:
        _C.set_num_threads(before)
    want = ref.sum_rows(x)
    assert got.dtype == dtype and got.shape == (c,)
    # both sum in double, in different orders: they differ by the double rounding of the running sums
    # (~sqrt(N) * 2^-53 * sum|x|) plus the final rounding to the dtype
    drift = 4 * np.sqrt(n + 1) * np.finfo(np.float64).eps * np.abs(x.astype(np.float64)).sum(axis=0)
    assert np.all(np.abs(got.astype(np.float64) - want) <= drift + 2 * np.finfo(dtype).eps * np.abs(want)), \
        (got, want)
    np.testing.assert_array_equal(x, x0)


def test_sum_rows_is_accurate_where_float_sums_drift():
    # 2^24 + many ones: a float32 running sum stops growing at 2^24; the kernel sums in double
    x = np.ones((5000, 3), np.float32)
    x[0] = 2.0 ** 24
    np.testing.assert_array_equal(cpu.sum_rows(x), np.float32(2.0 ** 24 + 4999))


def test_sum_rows_few_rows_many_columns_on_threads():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 200_003)).astype(np.float32)
    before = _C.num_threads()
    _C.set_num_threads(2)
    try:
        got = cpu.sum_rows(x)
    finally:
        _C.set_num_threads(before)
    assert_close(got, ref.sum_rows(x), rtol=1e-6, atol=1e-6)


def test_sum_rows_bad_inputs():
    x = np.ones((4, 3), np.float32)
    with pytest.raises(TypeError, match="sum_rows.*float32 or float64"):
        _C.sum_rows(x.astype(np.int32), np.empty(3, np.int32))
    with pytest.raises(ValueError, match="sum_rows.*x \\(N, C\\)"):
        _C.sum_rows(np.ones(3, np.float32), np.empty(3, np.float32))
    with pytest.raises(ValueError, match="sum_rows.*out \\(C,\\)"):
        _C.sum_rows(x, np.empty(4, np.float32))
    with pytest.raises(TypeError, match="sum_rows.*same dtype"):
        _C.sum_rows(x, np.empty(3, np.float64))
    with pytest.raises(ValueError, match="sum_rows.*contiguous last axis"):
        _C.sum_rows(np.ones((3, 4), np.float32).T, np.empty(3, np.float32))
    with pytest.raises(ValueError, match="sum_rows.*writeable|sum_rows.*read-only"):
        out = np.empty(3, np.float32)
        out.flags.writeable = False
        _C.sum_rows(x, out)


@pytest.mark.parametrize("n", [0, 1, 17, 4099, 300_001])
@pytest.mark.parametrize("dtype", DTYPES)
def test_add_into_matches_reference(isa, n, dtype):
    rng = np.random.default_rng(n)
    dst, src = rng.standard_normal((2, n)).astype(dtype)
    want = ref.add_into(dst.copy(), src)
    got = cpu.add_into(dst, src)
    assert got is dst
    np.testing.assert_array_equal(got, want)  # one rounding per element in both
    x = rng.standard_normal(n).astype(dtype)
    x0 = x.copy()
    cpu.add_into(x, x)  # the same array as both operands: doubled
    np.testing.assert_array_equal(x, 2 * x0)


def test_add_into_bad_inputs():
    a = np.ones(10, np.float32)
    with pytest.raises(TypeError, match="add_into.*same dtype"):
        _C.add_into(a, np.ones(10))
    with pytest.raises(ValueError, match="add_into.*same number of elements"):
        _C.add_into(a, np.ones(9, np.float32))
    with pytest.raises(ValueError, match="add_into.*overlap"):
        _C.add_into(a[1:], a[:-1])
    ro = np.ones(10, np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="add_into.*(writeable|read-only)"):
        _C.add_into(ro, a)


@settings(deadline=None)
@given(shape=st.lists(st.sampled_from([0, 1, 2, 3, 7, 17, 300]), min_size=1, max_size=4).filter(
           lambda s: np.prod(s) <= 30000),
       data=st.data(), dtype=st.sampled_from(DTYPES), mean=st.booleans(), transposed=st.booleans(),
       threads=st.sampled_from([1, 2]), seed=st.integers(0, 2**32 - 1))
def test_sum_dims_matches_reference(isa, shape, data, dtype, mean, transposed, threads, seed):
    """Any set of dims (adjacent or not), any layout (a non-contiguous x is copied), threads 1 and 2."""
    nd = len(shape)
    dims = tuple(sorted(data.draw(st.sets(st.integers(0, nd - 1), min_size=1))))
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape[::-1] if transposed else shape) * 3 + 1).astype(dtype)
    if transposed:
        x = x.T
    before = _C.num_threads()
    _C.set_num_threads(threads)
    try:
        with np.errstate(invalid="ignore"):
            got, want = cpu.sum_dims(x, dims, mean), ref.sum_dims(x, dims, mean)
    finally:
        _C.set_num_threads(before)
    assert got.dtype == dtype and got.shape == want.shape
    n = max(int(np.prod([shape[d] for d in dims])), 1)
    drift = 4 * np.sqrt(n + 1) * np.finfo(np.float64).eps * np.abs(x.astype(np.float64)).sum(axis=dims)
    if mean:
        drift = drift / n
    tol = drift + np.finfo(dtype).eps * np.abs(want.astype(np.float64))
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    ok = ~np.isnan(want)
    assert np.all(np.abs(got[ok].astype(np.float64) - want[ok]) <= tol[ok] + np.finfo(dtype).tiny)


def test_sum_dims_long_rows_and_threads_bitwise():
    """A full sum (one row cut into parts over threads) and column blocks: the same bits on 1 and 2 threads
    for a given split; and accurate where a float running sum drifts."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((3, 200_000)).astype(np.float32)
    y = rng.standard_normal((5, 70, 600)).astype(np.float32)
    before = _C.num_threads()
    try:
        res = []
        for t in (1, 2):
            _C.set_num_threads(t)
            res.append((cpu.sum_dims(x, (1,)), cpu.sum_dims(x, (0, 1)), cpu.sum_dims(y, (1,), True)))
    finally:
        _C.set_num_threads(before)
    for a, b in zip(*res):
        np.testing.assert_array_equal(a, b)
    ones = np.concatenate([[1e8], np.ones(1 << 20)]).astype(np.float32)   # a float running sum stays at 1e8
    assert cpu.sum_dims(ones, (0,)) == np.float32(1e8 + 2**20)


@pytest.mark.parametrize("dtype", DTYPES)
def test_sum_dims_of_broadcast_dims(isa, dtype):
    """Dims of stride 0 (a broadcast x, as the gradient of a sum): r * v, which for float32 is bit for bit
    the double sum of r copies; kept dims may be strided; mixed broadcast / real dims take the kernel."""
    rng = np.random.default_rng(9)
    v = (rng.standard_normal((5, 1, 3)) * 7).astype(dtype)
    x = np.broadcast_to(v, (4, 5, 2001, 3))                      # dims 0 and 2 of stride 0
    for dims in [(0,), (2,), (0, 2)]:
        for mean in (False, True):
            got, want = cpu.sum_dims(x, dims, mean), ref.sum_dims(x, dims, mean)
            assert got.dtype == want.dtype and got.shape == want.shape and got.flags.c_contiguous
            if dtype == np.float32:
                np.testing.assert_array_equal(got, want)
            else:
                assert_close(got, want)
    got = cpu.sum_dims(x, (1, 2))                                 # dim 1 real: the kernel's sum
    assert_close(got, ref.sum_dims(x, (1, 2)))
    s = cpu.sum_dims(np.broadcast_to(np.float32(0.1), (1000, 1000)), (0, 1))
    assert s.shape == () and s == np.float32(np.float64(np.float32(0.1)) * 1e6)


@pytest.mark.parametrize("n", [1, 31, 32, 33, 64, 1000, 70001])
def test_sum_dims_long_and_short_rows(isa, n):
    """Rows around the kernel's 32 running sums, in float64 against math.fsum."""
    import math
    rng = np.random.default_rng(n)
    x = (rng.standard_normal((3, n)) * 100).astype(np.float32)
    got = cpu.sum_dims(x, (1,))
    want = np.array([math.fsum(r.astype(np.float64)) for r in x]).astype(np.float32)
    assert_close(got, want, rtol=1e-6, atol=1e-6)


def test_sum_dim_binding_checks():
    x, out = np.ones((2, 3, 4), np.float32), np.empty((2, 4), np.float32)
    with pytest.raises(ValueError, match="sum_dim"):
        _C.sum_dim(x[:, :, ::2], out[:, :2], 1.0)                         # x not contiguous
    with pytest.raises(ValueError, match="sum_dim"):
        _C.sum_dim(x, np.empty((2, 3), np.float32), 1.0)                  # out shape
    with pytest.raises(TypeError, match="sum_dim"):
        _C.sum_dim(x, np.empty((2, 4), np.float64), 1.0)                  # out dtype
    with pytest.raises(ValueError, match="sum_dim"):
        _C.sum_dim(x.reshape(6, 4), out, 1.0)                             # x not 3-D


@settings(deadline=None)
@given(shape=st.lists(st.sampled_from([1, 2, 3, 5, 33, 130]), min_size=0, max_size=4).filter(
           lambda s: np.prod(s) <= 60000),
       data=st.data(), dtype=st.sampled_from([np.float32, np.float64, np.int8, np.int16, np.bool_]),
       threads=st.sampled_from([1, 2]), seed=st.integers(0, 2**32 - 1))
def test_copy_into_any_layout(shape, data, dtype, threads, seed):
    """Transposed, stepped and broadcast sources into C-ordered, transposed or sliced destinations."""
    rng = np.random.default_rng(seed)
    nd = len(shape)
    perm = data.draw(st.permutations(range(nd)))
    base = np.asarray((rng.standard_normal([shape[p] for p in perm]) * 50).astype(dtype))
    src = base.transpose(np.argsort(perm))                          # any permutation of a dense array
    kind = data.draw(st.sampled_from(["dense", "last dim broadcast", "scalar broadcast"]))
    if nd and kind == "last dim broadcast":
        src = np.broadcast_to(src[..., :1], shape)                  # a broadcast (stride 0) last dim
    elif kind == "scalar broadcast":                                 # every stride 0: a sum's gradient
        src = np.broadcast_to(np.asarray(rng.standard_normal(), dtype), shape)
    wide = np.zeros(tuple(n + 2 for n in shape), dtype)
    dst = data.draw(st.sampled_from(["c", "slice", "transposed"]))
    inner = tuple(slice(1, n + 1) for n in shape) + (Ellipsis,)  # a view also of a 0-d array
    out = {"c": np.empty(shape, dtype), "slice": wide[inner],
           "transposed": np.empty(shape[::-1], dtype).T}[dst]
    before = _C.num_threads()
    _C.set_num_threads(threads)
    try:
        assert cpu.copy_into(out, src) is out
        if src.size:
            _C.copy_into(out, src)                                   # the kernel itself, at any size
    finally:
        _C.set_num_threads(before)
    np.testing.assert_array_equal(out, src)
    if dst == "slice":  # nothing written outside the slice
        mask = np.ones(wide.shape, bool)
        mask[inner] = False
        assert not wide[mask].any()


@pytest.mark.parametrize("threads", [1, 2])
def test_copy_into_runs_across_chunks(isa, threads):
    # the kernel copies runs of rows along the innermost outer dim (11 here) in chunks of ~16 KiB of rows
    # (1365 rows of 3 floats): chunks start and end mid-run; unit, strided and broadcast rows
    rng = np.random.default_rng(5)
    base = rng.standard_normal((5, 11, 301, 3)).astype(np.float32)
    srcs = [base.transpose(0, 2, 1, 3),                                  # rows of 3, permuted outer dims
            base.transpose(0, 2, 3, 1),                                  # strided rows (stride 3 * 301)
            np.broadcast_to(base[:, :, :, :1], base.shape).transpose(0, 2, 1, 3),  # broadcast rows
            base[:, :, ::2].transpose(1, 0, 2, 3)]                       # stepped
    before = _C.num_threads()
    _C.set_num_threads(threads)
    try:
        for src in srcs:
            out = np.empty(src.shape, src.dtype)
            _C.copy_into(out, src)
            np.testing.assert_array_equal(out, src)
    finally:
        _C.set_num_threads(before)


def test_copy_into_checks():
    a = np.zeros((4, 5), np.float32)
    with pytest.raises(ValueError, match="overlap"):
        _C.copy_into(a[1:], a[:-1])
    with pytest.raises(TypeError, match="dtype"):
        _C.copy_into(a, np.zeros((4, 5)))
    with pytest.raises(ValueError, match="shape"):
        _C.copy_into(a, np.zeros((5, 4), np.float32))
    with pytest.raises(TypeError, match="object"):
        _C.copy_into(np.empty(3, object), np.array([1, "a", None], object))
    with pytest.raises(ValueError, match="strides"):
        _C.copy_into(a, np.zeros((4, 5), np.float32)[::-1])
    b = np.arange(6.0).reshape(2, 3)
    np.testing.assert_array_equal(cpu.copy_into(b[:, :2], b[:, 1:].copy()), [[1, 2], [4, 5]])   # numpy path


@settings(deadline=None, max_examples=40)
@given(shape=st.sampled_from([(1,), (7,), (3, 1), (5, 64), (2, 3, 5), (4, 130, 3), (3, 300, 2), (2, 5, 257),
                              (0, 4), (4, 0, 3), (1, 4099)]),
       data=st.data(), dtype=st.sampled_from(DTYPES), is_max=st.booleans(),
       special=st.sampled_from(["none", "ties", "nan", "inf"]), threads=st.sampled_from([1, 2]),
       seed=st.integers(0, 2**32 - 1))
def test_max_dim_matches_reference(isa, shape, data, dtype, is_max, special, threads, seed):
    dim = data.draw(st.integers(-len(shape), len(shape) - 1))
    if shape[dim] == 0:
        dim = next(d for d in range(len(shape)) if shape[d])
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(dtype)
    if special == "ties":
        x = np.round(x).astype(dtype)  # few distinct values: the first extreme must be chosen
    elif special in ("nan", "inf") and x.size:
        flat = x.reshape(-1)
        for k in rng.integers(0, x.size, 1 + x.size // 7):
            flat[k] = np.nan if special == "nan" else rng.choice([np.inf, -np.inf])
    before = _C.num_threads()
    _C.set_num_threads(threads)
    try:
        vals, idx = cpu.max_dim(x, dim, is_max)
        g = rng.standard_normal(vals.shape).astype(dtype)
        dx = cpu.max_dim_backward(g, idx, x.shape, dim)
    finally:
        _C.set_num_threads(before)
    want_vals, want_idx = ref.max_dim(x, dim, is_max)
    assert vals.dtype == dtype and idx.dtype == np.int64 and vals.shape == want_vals.shape
    np.testing.assert_array_equal(idx, want_idx)
    np.testing.assert_array_equal(vals, want_vals)  # NaN == NaN here
    np.testing.assert_array_equal(dx, ref.max_dim_backward(g, want_idx, x.shape, dim))


def test_max_dim_matches_torch_on_nan_and_ties():
    torch = pytest.importorskip("torch")
    x = np.array([[1.0, 3.0, 3.0, -1.0], [np.nan, 2.0, np.nan, 5.0], [2.0, np.nan, 9.0, 9.0],
                  [-np.inf, -np.inf, -np.inf, -np.inf]], np.float32)
    for is_max in (True, False):
        vals, idx = cpu.max_dim(x, 1, is_max)
        tv, ti = (torch.max if is_max else torch.min)(torch.from_numpy(x), 1)
        np.testing.assert_array_equal(vals, tv.numpy())
        np.testing.assert_array_equal(idx, ti.numpy())


def test_max_dim_binding_checks():
    x = np.zeros((2, 3, 4), np.float32)
    with pytest.raises(ValueError, match="max_dim.*zero-size"):
        _C.max_dim(np.zeros((2, 0, 4), np.float32), np.empty((2, 4), np.float32), np.empty((2, 4), np.int64), True)
    with pytest.raises(TypeError, match="max_dim"):
        _C.max_dim(x, np.empty((2, 4), np.float32), np.empty((2, 4), np.int32), True)
    with pytest.raises(ValueError, match="max_dim"):
        _C.max_dim(x, np.empty((2, 3), np.float32), np.empty((2, 4), np.int64), True)
    with pytest.raises(IndexError, match="max_dim_backward: index 3 out of range"):
        _C.max_dim_backward(np.ones((2, 4), np.float32), np.full((2, 4), 3, np.int64), np.empty((2, 3, 4), np.float32))
    with pytest.raises(IndexError, match="max_dim_backward: index -1"):
        _C.max_dim_backward(np.ones((2, 4), np.float32), np.full((2, 4), -1, np.int64), np.empty((2, 3, 4), np.float32))
    with pytest.raises(TypeError, match="max_dim_backward"):
        _C.max_dim_backward(np.ones((2, 4), np.float64), np.zeros((2, 4), np.int64), np.empty((2, 3, 4), np.float32))
