"""The fused LSTM gate kernels (csrc/cpu/lstm.cpp) against their NumPy twins, at every SIMD level."""
import numpy as np
import pytest

from pyengine.backend import cpu, reference
from pyengine.testing import assert_close

SIZES = [(1, 1), (1, 7), (3, 5), (2, 16), (5, 17), (4, 33), (7, 64), (3, 129), (64, 160)]  # (B, H)
# float32: the compiled kernel's exp is a polynomial (error ~1e-7 absolute on the gates)
TOL = {np.float32: dict(rtol=1e-5, atol=2e-6), np.float64: dict(rtol=1e-12, atol=1e-13)}


def _inputs(rng, B, H, dtype, scale=3.0):
    gates = (rng.standard_normal((B, 4 * H)) * scale).astype(dtype)
    c_prev = (rng.standard_normal((B, H)) * scale).astype(dtype)
    return gates, c_prev


def _forward(mod, gates, c_prev):
    g = gates.copy()
    h = np.empty_like(c_prev)
    c = np.empty_like(c_prev)
    mod.lstm_cell_forward(g, c_prev, h, c)
    return g, h, c


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("B,H", SIZES)
def test_forward_matches_reference(isa, rng, dtype, B, H):
    gates, c_prev = _inputs(rng, B, H, dtype)
    got = _forward(cpu, gates, c_prev)
    want = _forward(reference, gates, c_prev)
    for a, e, name in zip(got, want, ("activations", "h", "c")):
        assert a.dtype == dtype
        assert_close(a, e, msg=f"{name} [{isa}] ", **TOL[dtype])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("B,H", SIZES)
def test_backward_matches_reference(isa, rng, dtype, B, H):
    gates, c_prev = _inputs(rng, B, H, dtype)
    act, _, c = _forward(reference, gates, c_prev)
    dh = rng.standard_normal((B, H)).astype(dtype)
    dc0 = rng.standard_normal((B, H)).astype(dtype)
    res = {}
    for mod in (cpu, reference):
        dc = dc0.copy()
        dgates = np.full((B, 4 * H), np.nan, dtype)
        mod.lstm_cell_backward(act, c_prev, c, dh, dc, dgates)
        res[mod.name] = (dgates, dc)
    for a, e, name in zip(res["cpu"], res["reference"], ("dgates", "dc_prev")):
        assert_close(a, e, msg=f"{name} [{isa}] ", **TOL[dtype])


def test_reference_backward_is_the_gradient(rng):
    """The reference backward against central finite differences of the reference forward (float64)."""
    B, H, eps = 2, 3, 1e-6
    gates, c_prev = _inputs(rng, B, H, np.float64, scale=1.0)
    wh, wc = rng.standard_normal((B, H)), rng.standard_normal((B, H))

    def loss(a, cp):
        _, h, c = _forward(reference, a, cp)
        return float((h * wh).sum() + (c * wc).sum())

    act, _, c = _forward(reference, gates, c_prev)
    dc = wc.copy()
    dgates = np.empty_like(gates)
    reference.lstm_cell_backward(act, c_prev, c, wh, dc, dgates)
    for x, analytic in ((gates, dgates), (c_prev, dc)):
        num = np.empty_like(x)
        for k in np.ndindex(x.shape):
            old = x[k]
            x[k] = old + eps
            lp = loss(gates, c_prev)
            x[k] = old - eps
            lm = loss(gates, c_prev)
            x[k] = old
            num[k] = (lp - lm) / (2 * eps)
        assert_close(analytic, num, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_saturation_and_nan(isa, dtype):
    """Huge pre-activations saturate to 0/1 without overflow; NaN propagates."""
    B, H = 2, 9
    gates = np.zeros((B, 4 * H), dtype)
    gates[0] = 1e4
    gates[1] = -1e4
    gates[1, 0] = np.nan
    c_prev = np.ones((B, H), dtype)
    act, h, c = _forward(cpu, gates, c_prev)
    assert_close(act[0], np.ones(4 * H), atol=1e-6, rtol=0)
    assert np.isnan(act[1, 0]) and np.isnan(c[1, 0]) and np.isnan(h[1, 0])
    assert_close(act[1, 1:H], np.zeros(H - 1), atol=1e-6, rtol=0)
    assert_close(act[1, 2 * H:3 * H], -np.ones(H), atol=1e-6, rtol=0)
    assert np.all(np.isfinite(h[0])) and np.all(np.isfinite(c[1, 1:]))


def test_threads_split_rows_the_same(rng):
    """A step large enough to use several threads gives the single-thread result."""
    import pyengine as pe
    gates, c_prev = _inputs(rng, 96, 256, np.float32)
    before = pe.get_num_threads()
    try:
        pe.set_num_threads(1)
        one = _forward(cpu, gates, c_prev)
        pe.set_num_threads(2)
        two = _forward(cpu, gates, c_prev)
    finally:
        pe.set_num_threads(before)
    for a, b in zip(one, two):
        np.testing.assert_array_equal(a, b)


def test_errors_name_the_op_and_shapes():
    f = np.float32
    with pytest.raises(ValueError, match=r"lstm_cell_forward: c_prev does not match.*gates \(3, 16\), "
                                         r"c_prev \(3, 5\), h \(3, 4\), c \(3, 4\)"):
        cpu.lstm_cell_forward(np.zeros((3, 16), f), np.zeros((3, 5), f), np.zeros((3, 4), f), np.zeros((3, 4), f))
    with pytest.raises(ValueError, match="lstm_cell_forward: gates has a last dim not divisible by 4"):
        cpu.lstm_cell_forward(np.zeros((3, 15), f), np.zeros((3, 4), f), np.zeros((3, 4), f), np.zeros((3, 4), f))
    with pytest.raises(ValueError, match="lstm_cell_forward: gates must be 2-D"):
        cpu.lstm_cell_forward(np.zeros(16, f), np.zeros((1, 4), f), np.zeros((1, 4), f), np.zeros((1, 4), f))
    with pytest.raises(TypeError, match="lstm_cell_forward: gates .float32. and c_prev .float64. must have the same"):
        cpu.lstm_cell_forward(np.zeros((2, 8), f), np.zeros((2, 2)), np.zeros((2, 2), f), np.zeros((2, 2), f))
    with pytest.raises(TypeError, match="lstm_cell_forward: gates must be float32 or float64"):
        cpu.lstm_cell_forward(*(np.zeros(s, np.int64) for s in ((2, 8), (2, 2), (2, 2), (2, 2))))
    with pytest.raises(ValueError, match="lstm_cell_forward: h must be C-contiguous"):
        cpu.lstm_cell_forward(np.zeros((2, 8), f), np.zeros((2, 2), f), np.zeros((2, 4), f)[:, ::2],
                              np.zeros((2, 2), f))
    ro = np.zeros((2, 2), f)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="lstm_cell_forward: c must be writeable"):
        cpu.lstm_cell_forward(np.zeros((2, 8), f), np.zeros((2, 2), f), np.zeros((2, 2), f), ro)
    with pytest.raises(ValueError, match=r"lstm_cell_backward: dgates does not match.*dgates \(2, 12\)"):
        cpu.lstm_cell_backward(np.zeros((2, 8), f), *(np.zeros((2, 2), f) for _ in range(4)), np.zeros((2, 12), f))

# The whole-sequence recurrence (lstm_sequence_forward/backward) is tested with the GRU and RNN ones in
# tests/kernels/test_rnn.py.
