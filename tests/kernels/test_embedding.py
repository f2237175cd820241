"""Compiled embedding kernels (gather, scatter-add) against the NumPy reference."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyengine import _C
from pyengine.backend import reference as ref
from pyengine.backend.cpu import embedding as cpu
from pyengine.testing import ODD_SIZES, assert_close

DTYPES = (np.float32, np.float64)
sizes = st.sampled_from(ODD_SIZES)
dtypes = st.sampled_from(DTYPES)
seeds = st.integers(0, 2**32 - 1)


def rand(rng, shape, dtype):
    return rng.standard_normal(shape).astype(dtype)


@pytest.fixture
def threads():
    before = _C.num_threads()
    yield
    _C.set_num_threads(before)


@given(v=sizes, c=sizes, n=st.sampled_from((0,) + ODD_SIZES), dtype=dtypes, seed=seeds)
def test_forward_matches_reference(isa, v, c, n, dtype, seed):
    rng = np.random.default_rng(seed)
    w = rand(rng, (v, c), dtype)
    idx = rng.integers(0, v, n)
    out = cpu.embedding_forward(w, idx)
    assert out.shape == (n, c) and out.dtype == w.dtype
    np.testing.assert_array_equal(out, ref.embedding_forward(w, idx))


@given(v=sizes, c=sizes, n=sizes, dtype=dtypes, seed=seeds, hot=st.sampled_from([1, 3, None]),
       pad=st.sampled_from([None, 0, -1, "hit"]))
def test_backward_matches_reference(isa, v, c, n, dtype, seed, hot, pad):
    rng = np.random.default_rng(seed)
    # `hot` draws indices from only the first few rows: many repeats that must accumulate.
    idx = rng.integers(0, min(v, hot or v), n)
    if pad == "hit":
        pad = int(idx[0])  # a padding row that the indices do hit
    dout = rand(rng, (n, c), dtype)
    got = cpu.embedding_backward(dout, idx, v, pad)
    want = ref.embedding_backward(dout, idx, v, pad)
    assert got.shape == (v, c) and got.dtype == dout.dtype
    assert_close(got, want)
    if pad is not None:
        assert np.all(got[pad] == 0)


def test_backward_many_repeats_on_threads(isa, threads):
    # Large enough for several threads with dynamic row scheduling; heavily skewed indices
    # (one row hit thousands of times). The sum order is fixed (increasing n), so the result
    # is identical for any thread count, and equal to np.add.at.
    rng = np.random.default_rng(3)
    v, c, n = 4099, 67, 20011
    idx = np.where(rng.random(n) < 0.3, 7, rng.integers(0, v, n))
    dout = rand(rng, (n, c), np.float32)
    results = []
    for t in (1, 2, 3):
        _C.set_num_threads(t)
        results.append(cpu.embedding_backward(dout, idx, v, padding_idx=11))
        np.testing.assert_array_equal(cpu.embedding_forward(results[-1], idx), results[-1][idx])
    for r in results[1:]:
        np.testing.assert_array_equal(r, results[0])
    assert_close(results[0], ref.embedding_backward(dout, idx, v, 11))


def test_index_shapes_and_dtypes(isa):
    rng = np.random.default_rng(4)
    w = rand(rng, (10, 5), np.float32)
    idx2 = rng.integers(0, 10, (3, 4))
    out = cpu.embedding_forward(w, idx2)
    assert out.shape == (3, 4, 5)
    np.testing.assert_array_equal(out, w[idx2])
    dout = rand(rng, (3, 4, 5), np.float32)
    assert_close(cpu.embedding_backward(dout, idx2, 10), ref.embedding_backward(dout.reshape(12, 5), idx2.ravel(), 10))
    for dt in (np.int32, np.uint8, np.dtype(">i8")):
        idx = np.array([1, 9, 1, 0], dtype=dt)
        np.testing.assert_array_equal(cpu.embedding_forward(w, idx), w[idx.astype(np.int64)])
    np.testing.assert_array_equal(cpu.embedding_forward(w, [3, 3]), w[[3, 3]])


@pytest.mark.parametrize("dtype", DTYPES)
def test_non_contiguous_inputs_and_no_mutation(isa, dtype):
    rng = np.random.default_rng(5)
    w = np.asfortranarray(rand(rng, (17, 9), dtype))
    idx = rng.integers(0, 17, 26)[::2]
    dout = rand(rng, (9, 13), dtype).T
    copies = [a.copy() for a in (w, idx, dout)]
    np.testing.assert_array_equal(cpu.embedding_forward(w, idx), ref.embedding_forward(w, idx))
    assert_close(cpu.embedding_backward(dout, idx, 17, 2), ref.embedding_backward(dout, idx, 17, 2))
    for a, c in zip((w, idx, dout), copies):
        np.testing.assert_array_equal(a, c)


@pytest.mark.parametrize("bad", [-1, 10, 2**40, -2**63])
def test_out_of_range_index_raises_before_writing(bad):
    w = np.ones((10, 3), np.float32)
    idx = np.array([0, 4, bad, 9], np.int64)
    with pytest.raises(IndexError, match=rf"embedding: index {bad} is out of range for 10 embeddings"):
        cpu.embedding_forward(w, idx)
    with pytest.raises(IndexError, match=rf"embedding: index {bad} "):
        cpu.embedding_backward(np.ones((4, 3), np.float32), idx, 10)
    # Through the binding with preallocated outputs: nothing may be written.
    out = np.full((4, 3), 7.0, np.float32)
    with pytest.raises(IndexError):
        _C.embedding_forward(w, idx, out)
    assert np.all(out == 7.0)
    dw = np.full((10, 3), 7.0, np.float32)
    with pytest.raises(IndexError):
        _C.embedding_backward(np.ones((4, 3), np.float32), idx, None, dw)
    assert np.all(dw == 7.0)


def test_bad_inputs_raise():
    w = np.ones((10, 3), np.float32)
    idx = np.array([1, 2], np.int64)
    with pytest.raises(TypeError, match="indices"):
        cpu.embedding_forward(w, np.array([1.0, 2.0]))
    with pytest.raises(TypeError, match="embedding_forward: weight"):
        cpu.embedding_forward(w.astype(np.int32), idx)
    with pytest.raises(ValueError, match=r"embedding_forward: weight must be 2-D, got shape \(30,\)"):
        cpu.embedding_forward(w.reshape(-1), idx)
    with pytest.raises(ValueError, match=r"embedding_backward: indices has shape \(2,\), expected \(3,\)"):
        cpu.embedding_backward(np.ones((3, 3), np.float32), idx, 10)
    with pytest.raises(IndexError, match="padding_idx 10"):
        cpu.embedding_backward(np.ones((2, 3), np.float32), idx, 10, padding_idx=10)
    with pytest.raises(IndexError, match="padding_idx -11"):
        cpu.embedding_backward(np.ones((2, 3), np.float32), idx, 10, padding_idx=-11)
    with pytest.raises(TypeError):
        cpu.embedding_backward(np.ones((2, 3), np.float32), idx, 10, padding_idx=1.5)
    with pytest.raises(TypeError, match="same dtype"):
        _C.embedding_forward(w, idx, np.empty((2, 3), np.float64))
    with pytest.raises(ValueError, match="out has shape"):
        _C.embedding_forward(w, idx, np.empty((2, 4), np.float32))
    with pytest.raises(ValueError, match="C-contiguous"):
        _C.embedding_backward(np.ones((2, 3), np.float32), idx, None, np.empty((3, 10), np.float32).T)
    with pytest.raises(TypeError, match="int64"):
        _C.embedding_forward(w, idx.astype(np.int32), np.empty((2, 3), np.float32))
    with pytest.raises(ValueError):
        cpu.embedding_backward(np.ones((2, 3), np.float32), idx, -1)
