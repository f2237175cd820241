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
