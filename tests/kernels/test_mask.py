"""Mask kernels (csrc/cpu/mask.cpp: masked_fill, dropout) against the NumPy reference, per ISA."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyengine import _C
from pyengine.backend.cpu import mask as cpu
from pyengine.backend.reference import mask as ref

DTYPES = (np.float32, np.float64)


@settings(deadline=None)
@given(shape=st.lists(st.sampled_from([0, 1, 2, 3, 7, 17, 130]), min_size=0, max_size=4).filter(
           lambda s: np.prod(s) <= 40000),
       data=st.data(), dtype=st.sampled_from(DTYPES), value=st.sampled_from([0.0, -np.inf, 2.5, np.nan]),
       threads=st.sampled_from([1, 2]), seed=st.integers(0, 2**32 - 1))
def test_masked_fill_matches_reference(isa, shape, data, dtype, value, threads, seed):
    """Every broadcast of the mask: leading dims dropped or 1 (one row of the kernel's view), inner dims
    of 1 (expanded first), the full shape."""
    mshape = [data.draw(st.sampled_from([n, 1])) for n in shape][data.draw(st.integers(0, len(shape))):]
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(dtype)
    m = rng.random(mshape) < 0.4
    before = _C.num_threads()
    _C.set_num_threads(threads)
    try:
        got = cpu.masked_fill(x, m, value)
    finally:
        _C.set_num_threads(before)
    want = ref.masked_fill(x, m, value)
    assert got.shape == want.shape and got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)


def test_masked_fill_layouts_and_big_rows(isa):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 40000)).astype(np.float32)       # rows longer than a span
    m = rng.random(40000) < 0.5
    np.testing.assert_array_equal(cpu.masked_fill(x, m, -1.0), ref.masked_fill(x, m, -1.0))
    xt = rng.standard_normal((6, 5, 4)).T                          # non-contiguous x: (4, 5, 6)
    mt = (rng.random((6, 5)) < 0.5).T                              # non-contiguous mask (5, 6)
    np.testing.assert_array_equal(cpu.masked_fill(xt, mt, 3.0), ref.masked_fill(xt, mt, 3.0))
    with pytest.raises(ValueError, match="masked_fill"):
        cpu.masked_fill(np.ones((2, 3)), np.ones((2, 2, 3), bool), 0.0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [0, 1, 7, 16385, 100003])
def test_dropout_matches_reference(isa, dtype, n):
    rng = np.random.default_rng(n)
    x = rng.standard_normal(n).astype(dtype)
    x[:min(n, 3)] = [np.nan, np.inf, -np.inf][:min(n, 3)]
    u = rng.random(n, dtype=np.float32)
    g = rng.standard_normal(n).astype(dtype)
    for p in (0.1, 0.5, 0.9):
        scale = 1.0 / (1.0 - p)
        y, keep = cpu.dropout_forward(x, u, p, scale)
        y_ref, keep_ref = ref.dropout_forward(x, u, p, scale)
        np.testing.assert_array_equal(keep, keep_ref)
        np.testing.assert_array_equal(y, y_ref)
        assert y.dtype == dtype and keep.dtype == np.bool_
        np.testing.assert_array_equal(cpu.dropout_backward(g, keep, scale), ref.dropout_backward(g, keep, scale))
    y2, _ = cpu.dropout_forward(x.reshape(1, n) if n else x, u.reshape(1, n) if n else u, 0.5, 2.0)
    assert y2.shape == ((1, n) if n else (0,))


def test_mask_binding_checks():
    x = np.ones((2, 3), np.float32)
    with pytest.raises(ValueError, match="masked_fill"):
        _C.masked_fill(x, np.ones(2, bool), 0.0, np.empty_like(x))             # mask length
    with pytest.raises(TypeError, match="masked_fill"):
        _C.masked_fill(x, np.ones(3, np.uint8), 0.0, np.empty_like(x))         # mask dtype
    with pytest.raises(ValueError, match="overlap"):
        big = np.ones(7, np.float32)
        _C.masked_fill(big[:6].reshape(2, 3), np.ones(3, bool), 0.0, big[1:].reshape(2, 3))
    _C.masked_fill(x, np.ones(3, bool), 5.0, x)                                # in place: allowed
    assert (x == 5).all()
    with pytest.raises(TypeError, match="dropout_forward"):
        _C.dropout_forward(np.ones(3, np.float32), np.ones(3), 0.5, 2.0, np.empty(3, np.float32),
                           np.empty(3, bool))                                   # u float64
    with pytest.raises(ValueError, match="dropout_backward"):
        _C.dropout_backward(np.ones(3), np.ones(2, bool), 2.0, np.empty(3))
