"""The whole-sequence recurrences (csrc/cpu/lstm.cpp, csrc/cpu/rnn.cpp: LSTM, GRU, Elman RNN with tanh and
relu) against their NumPy twins at every SIMD level, on dense and packed (variable-length) batches; the twins'
backward against finite differences of their forward; the bindings' checks."""
import numpy as np
import pytest

from pyengine import _C
from pyengine.backend import cpu, reference
from pyengine.testing import assert_close, numeric_grad, results_on_threads

KINDS = ["lstm", "gru", "rnn_tanh", "rnn_relu"]
GATES = {"lstm": 4, "gru": 3, "rnn_tanh": 1, "rnn_relu": 1}
TOL = {np.float32: dict(rtol=1e-4, atol=2e-5), np.float64: dict(rtol=1e-12, atol=1e-13)}  # f32: errors compound


def batch_sizes_of(lengths, T=None):
    """PyTorch's batch_sizes of sequences sorted by decreasing length: bs[t] = #{b : lengths[b] > t}."""
    lengths = np.asarray(lengths)
    T = int(lengths.max()) if T is None else T
    return (lengths[None, :] > np.arange(T)[:, None]).sum(axis=1).astype(np.int64)


def _inputs(kind, seed, B, H, bs, dtype):
    rng = np.random.default_rng(seed)
    N, g = int(bs.sum()), GATES[kind]
    d = dict(G=rng.standard_normal((N, g * H)), w_hh=rng.standard_normal((g * H, H)) / np.sqrt(H),
             h0=rng.standard_normal((B, H)), dH=rng.standard_normal((N, H)), dh=rng.standard_normal((B, H)))
    if kind == "lstm":
        d.update(c0=rng.standard_normal((B, H)), dc=rng.standard_normal((B, H)))
    if kind == "gru":
        d.update(b_hn=rng.standard_normal(H))
    return {k: v.astype(dtype) for k, v in d.items()}


def run(mod, kind, inp, bs):
    """Forward then backward through `mod`'s kernels; every array they write, by name."""
    B, H = inp["h0"].shape
    N, dt = int(bs.sum()), inp["G"].dtype
    G, dh = inp["G"].copy(), inp["dh"].copy()
    Hs = np.full((B + N, H), np.nan, dt)  # NaN: every row must be written
    Hs[:B] = inp["h0"]
    dG = np.full(G.shape, np.nan, dt)
    if kind == "lstm":
        Cs = np.full((B + N, H), np.nan, dt)
        Cs[:B] = inp["c0"]
        dc = inp["dc"].copy()
        mod.lstm_sequence_forward(G, inp["w_hh"], Hs, Cs, bs)
        mod.lstm_sequence_backward(G, inp["w_hh"], Cs, inp["dH"], dh, dc, dG, bs)
        return dict(G=G, Hs=Hs, Cs=Cs, dG=dG, dh=dh, dc=dc)
    if kind == "gru":
        Q = np.full((N, H), np.nan, dt)
        dGh = np.full(G.shape, np.nan, dt)
        mod.gru_sequence_forward(G, Q, inp["w_hh"], inp["b_hn"], Hs, bs)
        mod.gru_sequence_backward(G, Q, inp["w_hh"], Hs, inp["dH"], dh, dG, dGh, bs)
        return dict(G=G, Q=Q, Hs=Hs, dG=dG, dGh=dGh, dh=dh)
    act = kind[4:]
    mod.rnn_sequence_forward(G, inp["w_hh"], Hs, bs, act)
    mod.rnn_sequence_backward(inp["w_hh"], Hs, inp["dH"], dh, dG, bs, act)
    return dict(G=G, Hs=Hs, dG=dG, dh=dh)


def _compare(kind, seed, B, H, bs, dtype, isa, threads=None):
    inp = _inputs(kind, seed, B, H, bs, dtype)
    before = _C.num_threads()
    if threads:
        _C.set_num_threads(threads)
    try:
        got = run(cpu, kind, inp, bs)
    finally:
        _C.set_num_threads(before)
    want = run(reference, kind, inp, bs)
    for name, e in want.items():
        a = got[name]
        assert a.dtype == dtype and np.all(np.isfinite(a)), name
        assert_close(a, e, msg=f"{kind} {name} [{isa}, {threads} threads] ", **TOL[dtype])


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("T,B,H", [(1, 1, 1), (5, 3, 1), (1, 2, 7), (5, 3, 7), (5, 2, 17), (1, 4, 33), (5, 5, 33)])
def test_dense_matches_reference(isa, kind, dtype, T, B, H):
    """Every step runs every row (batch_sizes = [B] * T): states, gates, dG (and GRU's Q, dGh), dh_0, dc_0."""
    _compare(kind, T * 100 + H, B, H, np.full(T, B, np.int64), dtype, isa)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("lengths,H", [([5, 3, 3, 1], 7), ([5, 5, 2], 17), ([1, 1], 33), ([4, 2, 0], 7),
                                       ([5, 4, 3, 2, 1], 1)])
def test_packed_matches_reference(isa, kind, dtype, lengths, H):
    """Variable lengths: step t runs the first bs[t] rows only (a row of length 0 never runs)."""
    _compare(kind, sum(lengths) + H, len(lengths), H, batch_sizes_of(lengths), dtype, isa)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("lengths,H", [([5, 3, 3, 1], 7), ([4] * 32, 64)])
def test_no_output_gradient_is_zeros(isa, kind, threads, lengths, H):
    """dH None (no gradient reached the layer's output): the same as dH zeros, in both backends, on 1 and 2
    threads (rows split at B = 32)."""
    bs = batch_sizes_of(lengths)
    inp = _inputs(kind, 11, len(lengths), H, bs, np.float32)
    before = _C.num_threads()
    _C.set_num_threads(threads)
    try:
        zeros = run(cpu, kind, dict(inp, dH=np.zeros_like(inp["dH"])), bs)
        none = run(cpu, kind, dict(inp, dH=None), bs)
    finally:
        _C.set_num_threads(before)
    ref = run(reference, kind, dict(inp, dH=None), bs)
    for name, e in zeros.items():
        np.testing.assert_array_equal(none[name], e, err_msg=f"{kind} {name} [{isa}]")
        assert_close(ref[name], e, msg=f"{kind} {name} reference ", **TOL[np.float32])


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("lengths,H", [([4] * 32, 64), ([4] * 9, 130), ([6] * 20 + [3] * 12, 96)])
def test_threads_split_units_the_same(isa, kind, threads, lengths, H):
    """Large enough for 2 threads (units split, one barrier per step): the same result as the twin."""
    _compare(kind, H, len(lengths), H, batch_sizes_of(lengths), np.float32, isa, threads)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("lengths,H", [([5] * 32, 160), ([6] * 20 + [3] * 9 + [1] * 2, 160), ([5] * 9, 320),
                                       ([4] * 5 + [2] * 4, 320)])
def test_thread_count_gives_the_same_bits(isa, kind, lengths, H):
    """1, 2 and 3 threads (adaptation off, so a busy machine cannot quietly run them all on one) give
    identical bits: every GEMM element is one FMA chain over the same depth whichever thread and tile
    computes it. B = 32 and 31: the threads own rows (cut by work on the packed batch; full and partial
    row tiles); B = 9: they own units (3 threads: 106, 107, 107 of 320, partial micro-panels)."""
    bs = batch_sizes_of(lengths)
    inp = _inputs(kind, 3, len(lengths), H, bs, np.float32)
    results = results_on_threads(lambda: run(cpu, kind, inp, bs))
    for name, one in results[0].items():
        for threads, res in zip((2, 3), results[1:]):
            assert np.array_equal(res[name], one), f"{kind} {name}: {threads} threads differ from 1 [{isa}]"


@pytest.mark.parametrize("kind", KINDS)
def test_finished_rows_keep_their_state(kind):
    """A packed batch gives each row what running that row alone over its own length gives: its outputs,
    its final state (the one after its last step), and dL/dh_0 (dL/dc_0)."""
    lengths, H = [5, 3, 1], 4
    B, bs = len(lengths), batch_sizes_of(lengths)
    inp = _inputs(kind, 7, B, H, bs, np.float64)
    packed = run(cpu, kind, inp, bs)
    off = np.concatenate([[0], np.cumsum(bs)])
    for b, L in enumerate(lengths):
        rows = off[:L] + b  # row b's packed rows, step by step
        alone = {k: v[b:b + 1] for k, v in inp.items() if k in ("h0", "c0", "dh", "dc")}
        alone.update(G=inp["G"][rows], dH=inp["dH"][rows], w_hh=inp["w_hh"], b_hn=inp.get("b_hn"))
        one = run(cpu, kind, alone, np.ones(L, np.int64))
        assert_close(packed["Hs"][B + rows], one["Hs"][1:], rtol=1e-13, atol=1e-14)
        assert_close(packed["dG"][rows], one["dG"], rtol=1e-13, atol=1e-14)
        assert_close(packed["dh"][b], one["dh"][0], rtol=1e-13, atol=1e-14)
        if kind == "lstm":
            assert_close(packed["dc"][b], one["dc"][0], rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize("kind", KINDS)
def test_reference_backward_is_the_gradient(kind):
    """The twins' backward against central differences of their forward (float64, packed lengths 3, 2, 0):
    dL/dG, dL/dh_0 (dL/dc_0), and dW_hh = sum over rows of dG^T h_{t-1} (GRU: dGh, and db_hn from dGh)."""
    lengths, H = [3, 2, 0], 2
    B, bs = len(lengths), batch_sizes_of(lengths)
    inp = _inputs(kind, 3, B, H, bs, np.float64)
    if kind == "rnn_relu":
        inp["G"] += 0.3 * np.sign(inp["G"])  # keep pre-activations away from relu's kink
    wo, wn = inp["dH"], inp["dh"]
    off = np.concatenate([[0], np.cumsum(bs)])
    last = np.array([B + off[L - 1] + b if L else b for b, L in enumerate(lengths)])
    prev = np.concatenate([np.arange(bs[0])] + [B + off[t - 1] + np.arange(bs[t]) for t in range(1, len(bs))])

    def loss():
        r = run(reference, kind, inp, bs)
        val = (r["Hs"][B:] * wo).sum() + (r["Hs"][last] * wn).sum()
        if kind == "lstm":
            val += (r["Cs"][last] * inp["dc"]).sum()
        return float(val)

    r = run(reference, kind, inp, bs)
    dgh = r["dGh"] if kind == "gru" else r["dG"]
    checks = [("G", r["dG"]), ("h0", r["dh"]), ("w_hh", dgh.T @ r["Hs"][prev])]
    if kind == "lstm":
        checks.append(("c0", r["dc"]))
    if kind == "gru":
        checks.append(("b_hn", dgh[:, 2 * H:].sum(axis=0)))
    for name, analytic in checks:
        assert_close(analytic, numeric_grad(loss, inp[name]), rtol=1e-6, atol=1e-8, msg=f"{kind} d{name} ")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nan_propagates(isa, dtype):
    """A NaN pre-activation reaches its row's state and every later step of that row, and no other row."""
    B, H, T = 3, 5, 4
    bs = np.full(T, B, np.int64)
    for kind in KINDS:
        inp = _inputs(kind, 1, B, H, bs, dtype)
        inp["G"][B + 1, 0] = np.nan  # step 1, row 1
        r = run(cpu, kind, inp, bs)
        h = r["Hs"][B:].reshape(T, B, H)
        assert np.isnan(h[1, 1, 0]) and np.isnan(h[3, 1]).all(), kind
        assert np.isfinite(h[:, [0, 2]]).all() and np.isfinite(h[0]).all(), kind


def test_bad_inputs_are_refused():
    f = np.float32
    G, w, Q = np.zeros((6, 9), f), np.zeros((9, 3), f), np.zeros((6, 3), f)
    b, Hs, bs = np.zeros(3, f), np.zeros((8, 3), f), np.array([2, 2, 2])
    _C.gru_sequence_forward(G, Q, w, b, Hs, bs)  # the good call: B = 2, N = 6
    with pytest.raises(ValueError, match=r"gru_sequence_forward: batch_sizes must not grow.*batch_sizes\[1\] = 3"):
        _C.gru_sequence_forward(G, Q, w, b, Hs, np.array([2, 3, 1]))
    with pytest.raises(ValueError, match=r"batch_sizes must not grow and lie in \[0, B\] with B = 2"):
        _C.gru_sequence_forward(G, Q, w, b, Hs, np.array([3, 3]))
    with pytest.raises(ValueError, match=r"batch_sizes must sum to the number of packed rows N = 6, got 4"):
        _C.gru_sequence_forward(G, Q, w, b, Hs, np.array([2, 2]))
    with pytest.raises(ValueError, match=r"N = 6, got more"):
        _C.gru_sequence_forward(G, Q, w, b, Hs, np.array([2, 2, 2, 1]))
    with pytest.raises(ValueError, match=r"must not grow"):
        _C.gru_sequence_forward(G, Q, w, b, Hs, np.array([2, -1, 2, 2, 2]))
    with pytest.raises(TypeError, match="gru_sequence_forward: batch_sizes must have dtype int64"):
        _C.gru_sequence_forward(G, Q, w, b, Hs, bs.astype(np.int32))
    with pytest.raises(ValueError, match=r"gru_sequence_forward: Q has the wrong shape, expected \(6, 3\); "
                                         r"got G \(6, 9\), Q \(6, 4\)"):
        _C.gru_sequence_forward(G, np.zeros((6, 4), f), w, b, Hs, bs)
    with pytest.raises(ValueError, match=r"w_hh must be \(3H, H\), got \(8, 3\)"):
        _C.gru_sequence_forward(G, Q, np.zeros((8, 3), f), b, Hs, bs)
    with pytest.raises(ValueError, match=r"fewer than N = 6 rows"):
        _C.gru_sequence_forward(G, Q, w, b, Hs[:5], bs)
    with pytest.raises(TypeError, match=r"same dtype"):
        _C.gru_sequence_forward(G, Q, w.astype(np.float64), b, Hs, bs)
    with pytest.raises(TypeError, match=r"G must be float32 or float64"):
        _C.gru_sequence_forward(G.astype(np.int64), Q, w, b, Hs, bs)
    with pytest.raises(ValueError, match=r"Hs must be C-contiguous"):
        _C.gru_sequence_forward(G, Q, w, b, np.zeros((3, 8), f).T, bs)
    ro = Q.copy()
    ro.flags.writeable = False
    with pytest.raises(ValueError, match=r"Q must be writeable"):
        _C.gru_sequence_forward(G, ro, w, b, Hs, bs)
    with pytest.raises(ValueError, match=r"dh has the wrong shape"):
        _C.gru_sequence_backward(G, Q, w, Hs, Q, np.zeros((2, 4), f), G.copy(), G.copy(), bs)
    g1, w1, h1 = np.zeros((6, 3), f), np.zeros((3, 3), f), np.zeros((8, 3), f)
    with pytest.raises(ValueError, match="rnn_sequence_forward: nonlinearity must be 'tanh' or 'relu', got 'gelu'"):
        _C.rnn_sequence_forward(g1, w1, h1, bs, "gelu")
    with pytest.raises(ValueError, match="rnn_sequence_backward: nonlinearity must be 'tanh' or 'relu'"):
        reference.rnn_sequence_backward(w1, h1, g1, np.zeros((2, 3), f), g1.copy(), bs, "sigmoid")
    with pytest.raises(ValueError, match=r"lstm_sequence_forward: Cs has the wrong shape"):
        _C.lstm_sequence_forward(np.zeros((6, 12), f), np.zeros((12, 3), f), h1, h1[:7], bs)
    with pytest.raises(ValueError, match=r"lstm_sequence_backward: dc has the wrong shape"):
        _C.lstm_sequence_backward(np.zeros((6, 12), f), np.zeros((12, 3), f), h1, g1, np.zeros((2, 3), f),
                                  np.zeros((3, 3), f), np.zeros((6, 12), f), bs)


def _lstm_batch_major(mod, inp, bs, batch_major):
    """run(mod, "lstm", ...) with G's input and the G, dG outputs in (b, t) row order when batch_major (every
    other array keeps its layout); G and dG come back in (t, b) order either way, for comparison."""
    B, H = inp["h0"].shape
    T = len(bs)

    def bm(a):  # (t, b) rows -> (b, t) rows, a new array
        return a.reshape(T, B, -1).transpose(1, 0, 2).copy().reshape(T * B, -1)

    def tm(a):  # (b, t) rows -> (t, b) rows
        return np.ascontiguousarray(a.reshape(B, T, -1).transpose(1, 0, 2)).reshape(T * B, -1)
    G = bm(inp["G"]) if batch_major else inp["G"].copy()
    N, dt = T * B, G.dtype
    Hs, Cs = np.full((B + N, H), np.nan, dt), np.full((B + N, H), np.nan, dt)
    Hs[:B], Cs[:B] = inp["h0"], inp["c0"]
    dh, dc, dG = inp["dh"].copy(), inp["dc"].copy(), np.full(G.shape, np.nan, dt)
    mod.lstm_sequence_forward(G, inp["w_hh"], Hs, Cs, bs, batch_major=batch_major)
    mod.lstm_sequence_backward(G, inp["w_hh"], Cs, inp["dH"], dh, dc, dG, bs, batch_major=batch_major)
    if batch_major:
        G, dG = tm(G), tm(dG)
    return dict(G=G, Hs=Hs, Cs=Cs, dG=dG, dh=dh, dc=dc)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("T,B,H", [(1, 1, 1), (5, 3, 7), (3, 32, 64), (4, 29, 33), (2, 48, 17)])
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_lstm_batch_major_gates_same_bits(isa, dtype, T, B, H, threads):
    """batch_major (G and dG rows in (b, t) order, as a batch_first input projects them): the same bits as the
    (t, b) layout on 1, 2, 3 threads (rows or units split), and the twin's values; dH with and without."""
    bs = np.full(T, B, np.int64)
    inp = _inputs("lstm", T * 7 + B + H, B, H, bs, dtype)
    before = _C.num_threads()
    _C.set_num_threads(threads)
    try:
        for dH in (inp["dH"], None):
            i2 = dict(inp, dH=dH)
            want = _lstm_batch_major(cpu, i2, bs, False)
            got = _lstm_batch_major(cpu, i2, bs, True)
            ref = _lstm_batch_major(reference, i2, bs, True)
            for name, e in want.items():
                np.testing.assert_array_equal(got[name], e, err_msg=f"{name} [{isa}, {threads} threads]")
                assert_close(ref[name], e, msg=f"{name} reference ", **TOL[dtype])
    finally:
        _C.set_num_threads(before)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("threads", [1, 2])
def test_prefetch_switch_same_bits(isa, kind, threads):
    """set_recurrence_prefetch (the next step's rows touched during each step's GEMM) changes no bit."""
    bs = batch_sizes_of([7] * 20 + [5] * 9 + [2] * 3)
    inp = _inputs(kind, 5, 32, 48, bs, np.float32)
    before = _C.num_threads()
    _C.set_num_threads(threads)
    try:
        was = _C.set_recurrence_prefetch(False)
        off = run(cpu, kind, inp, bs)
        _C.set_recurrence_prefetch(True)
        on = run(cpu, kind, inp, bs)
    finally:
        _C.set_recurrence_prefetch(was)
        _C.set_num_threads(before)
    for name, e in off.items():
        np.testing.assert_array_equal(on[name], e, err_msg=f"{kind} {name} [{isa}]")


def test_batch_major_needs_dense_batch():
    f = np.float32
    bs = np.array([2, 1], np.int64)
    G, w, S = np.zeros((3, 12), f), np.zeros((12, 3), f), np.zeros((5, 3), f)
    with pytest.raises(ValueError, match=r"lstm_sequence_forward: batch_major needs a dense batch"):
        _C.lstm_sequence_forward(G, w, S, S.copy(), bs, True)
    d = np.zeros((2, 3), f)
    with pytest.raises(ValueError, match=r"lstm_sequence_backward: batch_major needs a dense batch"):
        _C.lstm_sequence_backward(G, w, S, None, d, d.copy(), G.copy(), bs, True)
    with pytest.raises(ValueError, match=r"batch_major needs a dense batch"):
        reference.lstm_sequence_forward(G.copy(), w, S.copy(), S.copy(), bs, batch_major=True)
