"""The compiled attention kernels (csrc/cpu/attention*.cpp) against the NumPy reference."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyengine import _C
from pyengine.backend.cpu import attention as cpu
from pyengine.backend.reference import attention as ref
from pyengine.testing import assert_close

OP = "scaled_dot_product_attention"
T_SIZES = (1, 3, 17, 64, 65, 130)  # around the default 64-wide blocks
D_SIZES = (1, 8, 16, 33, 64)
MASKS = ("none", "causal", "causal_kv", "causal_neg", "causal_pos", "bool", "bool_causal", "float", "float_dead_rows")


def _close(actual, expected, dtype, what="", loose=1.0):
    """atol relative to the array's largest finite value: the gradients subtract nearly equal terms."""
    expected = np.asarray(expected)
    assert actual.dtype == expected.dtype, what
    finite = np.abs(expected[np.isfinite(expected)])
    big = max(1.0, float(finite.max())) if finite.size else 1.0
    rtol, atol = (2e-4, 2e-5) if dtype == np.float32 else (1e-9, 1e-11)
    assert_close(actual, expected, rtol=rtol * loose, atol=atol * big * loose, msg=f"{what}: ")


def _problem(rng, dtype, bh, tq, tk, d, dv, kind):
    q = rng.standard_normal((bh, tq, d)).astype(dtype)
    k = rng.standard_normal((bh, tk, d)).astype(dtype)
    v = rng.standard_normal((bh, tk, dv)).astype(dtype)
    mask, offset = None, None
    if kind == "causal":
        offset = 0
    elif kind == "causal_kv":  # the last query sees every key (KV-cache decoding)
        offset = tk - tq
    elif kind == "causal_neg":  # the first queries see no key at all
        offset = -int(rng.integers(1, tq + 2))
    elif kind == "causal_pos":
        offset = int(rng.integers(1, tk + 2))
    elif kind in ("bool", "bool_causal"):
        mask = rng.random((bh, tq, tk)) < 0.7
        mask[:, rng.integers(0, tq)] = False  # a row that sees nothing
        if kind == "bool_causal":
            offset = tk - tq
    elif kind == "float":
        mask = (2 * rng.standard_normal((tq, tk))).astype(dtype)
    elif kind == "float_dead_rows":
        mask = rng.standard_normal((bh, 1, tk)).astype(dtype) * np.ones((1, tq, 1), dtype)
        mask[:, rng.integers(0, tq)] = -np.inf
        mask[rng.random(mask.shape) < 0.3] = -np.inf
    return q, k, v, mask, offset


def _check_against_reference(q, k, v, mask, offset, scale=None, rng=None, loose=1.0):
    dtype = q.dtype.type
    rng = rng or np.random.default_rng(0)
    dout = rng.standard_normal((q.shape[0], q.shape[1], v.shape[2])).astype(dtype)
    inputs = [a.copy() for a in (q, k, v, dout)] + ([] if mask is None else [np.copy(mask)])

    out, lse = cpu.attention_forward(q, k, v, mask=mask, causal_offset=offset, scale=scale)
    out_r, lse_r = ref.attention_forward(q, k, v, mask=mask, causal_offset=offset, scale=scale)
    _close(out, out_r, dtype, "out", loose)
    assert np.array_equal(np.isneginf(lse), np.isneginf(lse_r)), "rows without keys differ"
    _close(lse, lse_r, dtype, "lse", loose)

    grads = cpu.attention_backward(q, k, v, out, lse, dout, mask=mask, causal_offset=offset, scale=scale)
    grads_r = ref.attention_backward(q, k, v, out, lse, dout, mask=mask, causal_offset=offset, scale=scale)
    for name, g, g_r in zip(("dq", "dk", "dv"), grads, grads_r):
        assert np.all(np.isfinite(g)), name
        _close(g, g_r, dtype, name, loose)

    after = [q, k, v, dout] + ([] if mask is None else [mask])
    for before, now in zip(inputs, after):
        assert np.array_equal(before, now), "an input was modified"
    return out, lse, grads


@settings(deadline=None)
@given(dtype=st.sampled_from([np.float32, np.float64]), bh=st.integers(1, 3), tq=st.sampled_from(T_SIZES),
       tk=st.sampled_from(T_SIZES), d=st.sampled_from(D_SIZES), dv=st.sampled_from(D_SIZES),
       kind=st.sampled_from(MASKS), seed=st.integers(0, 2**32 - 1))
def test_matches_reference(isa, dtype, bh, tq, tk, d, dv, kind, seed):
    rng = np.random.default_rng(seed)
    q, k, v, mask, offset = _problem(rng, dtype, bh, tq, tk, d, dv, kind)
    _check_against_reference(q, k, v, mask, offset, rng=rng)


@pytest.mark.parametrize("scale", [-0.7, 0.0, 3.0])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_any_scale(isa, dtype, scale):
    """The kernels scale the scores inside the row-max and exp passes: a negative or zero scale must not
    make the padding lanes of a row's last partial vector, or keys a row cannot see, count."""
    rng = np.random.default_rng(11)
    for kind in ("causal", "causal_kv", "causal_neg", "bool", "float"):
        q, k, v, mask, offset = _problem(rng, dtype, 2, 37, 45, 19, 13, kind)
        _check_against_reference(q, k, v, mask, offset, scale=scale, rng=rng)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("strategy", ["per_bh", "split"])
@pytest.mark.parametrize("blocks", [(1, 1), (3, 5), (8, 3), (16, 16)])
@pytest.mark.parametrize("kind", ["none", "causal", "causal_kv", "causal_neg", "bool_causal", "float_dead_rows"])
def test_small_blocks_both_backward_schedules(isa, dtype, strategy, blocks, kind):
    """Many blocks, cut by the causal diagonal in every way; both race-free backward schedules."""
    rng = np.random.default_rng(7)
    bh, tq, tk, d, dv = 2, 19, 23, 5, 9
    q, k, v, mask, offset = _problem(rng, dtype, bh, tq, tk, d, dv, kind)
    scale = 0.4
    out_r, lse_r = ref.attention_forward(q, k, v, mask=mask, causal_offset=offset, scale=scale)
    dout = rng.standard_normal(out_r.shape).astype(dtype)
    grads_r = ref.attention_backward(q, k, v, out_r, lse_r, dout, mask=mask, causal_offset=offset, scale=scale)

    mask_v = None if mask is None else np.broadcast_to(mask, (bh, tq, tk))
    out, lse = np.empty_like(out_r), np.empty_like(lse_r)
    _C.attention_forward(q, k, v, out, lse, mask_v, offset, scale, block_q=blocks[0], block_k=blocks[1])
    _close(out, out_r, dtype, "out")
    assert np.array_equal(np.isneginf(lse), np.isneginf(lse_r))
    _close(lse, lse_r, dtype, "lse")
    grads = [np.empty_like(a) for a in (q, k, v)]
    _C.attention_backward(q, k, v, out, lse, dout, *grads, mask_v, offset, scale,
                          block_q=blocks[0], block_k=blocks[1], strategy=strategy)
    for name, g, g_r in zip(("dq", "dk", "dv"), grads, grads_r):
        _close(g, g_r, dtype, name)


@pytest.mark.parametrize("strategy", ["per_bh", "split"])
@pytest.mark.parametrize("kind", ["none", "causal", "causal_neg", "causal_pos", "bool_causal"])
def test_backward_writes_every_gradient_element(isa, strategy, kind):
    """The kernels write dq, dk and dv without zeroing them first (the first block that reaches a row writes
    it, rows no block reaches are zeroed): buffers full of NaN must come back fully overwritten, at the
    default blocks and at small ones, with keys or queries no block reaches (causal_neg / causal_pos)."""
    rng = np.random.default_rng(11)
    for blocks, (tq, tk) in (((0, 0), (70, 90)), ((0, 0), (130, 67)), ((4, 6), (19, 23)), ((5, 3), (23, 19))):
        q, k, v, mask, offset = _problem(rng, np.float32, 3, tq, tk, 8, 6, kind)
        out_r, lse_r = ref.attention_forward(q, k, v, mask=mask, causal_offset=offset)
        dout = rng.standard_normal(out_r.shape).astype(np.float32)
        grads_r = ref.attention_backward(q, k, v, out_r, lse_r, dout, mask=mask, causal_offset=offset)
        mask_v = None if mask is None else np.broadcast_to(mask, (3, tq, tk))
        out, lse = np.empty_like(out_r), np.empty_like(lse_r)
        _C.attention_forward(q, k, v, out, lse, mask_v, offset, 1 / np.sqrt(8), block_q=blocks[0],
                             block_k=blocks[1])
        grads = [np.full_like(a, np.nan) for a in (q, k, v)]
        _C.attention_backward(q, k, v, out, lse, dout, *grads, mask_v, offset, 1 / np.sqrt(8), block_q=blocks[0],
                              block_k=blocks[1], strategy=strategy)
        for name, g, g_r in zip(("dq", "dk", "dv"), grads, grads_r):
            assert not np.isnan(g).any(), f"{name}: elements left unwritten (blocks {blocks}, {tq}x{tk})"
            _close(g, g_r, np.float32, name)


def test_rows_that_see_nothing_get_zeros(isa):
    rng = np.random.default_rng(3)
    bh, tq, tk, d = 2, 70, 90, 16
    q, k, v = (rng.standard_normal(s) for s in ((bh, tq, d), (bh, tk, d), (bh, tk, d)))
    dout = rng.standard_normal((bh, tq, d))
    bool_mask = rng.random((bh, tq, tk)) < 0.5
    bool_mask[:, 5] = False
    bool_mask[1, 66] = False
    float_mask = np.where(bool_mask, 0.0, -np.inf)
    for mask, offset, dead in ((bool_mask, None, [5]), (float_mask, None, [5]), (None, -10, range(10))):
        out, lse = cpu.attention_forward(q, k, v, mask=mask, causal_offset=offset)
        dq, dk, dv = cpu.attention_backward(q, k, v, out, lse, dout, mask=mask, causal_offset=offset)
        for a in (out, lse, dq, dk, dv):
            assert not np.any(np.isnan(a))
        for i in dead:
            assert np.all(out[:, i] == 0) and np.all(lse[:, i] == -np.inf) and np.all(dq[:, i] == 0)
        if mask is not None:
            assert np.all(out[1, 66] == 0) and lse[1, 66] == -np.inf and np.all(dq[1, 66] == 0)
        _check_against_reference(q, k, v, mask, offset)
    # keys that no query can see get zero dk, dv
    out, lse = cpu.attention_forward(q, k, v, causal_offset=-tq)
    dq, dk, dv = cpu.attention_backward(q, k, v, out, lse, dout, causal_offset=-tq)
    assert np.all(out == 0) and np.all(lse == -np.inf)
    assert not np.any(dq) and not np.any(dk) and not np.any(dv)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_mask_views_are_read_in_place(isa, dtype):
    """Broadcast (0-stride), transposed and reversed masks, as np.broadcast_to hands them over."""
    rng = np.random.default_rng(5)
    bh, tq, tk, d = 3, 33, 47, 8
    q, k, v, _, _ = _problem(rng, dtype, bh, tq, tk, d, d, "none")
    full = rng.random((bh, tk, tq)) < 0.8
    masks = [
        rng.random((tq, tk)) < 0.8,                     # (Tq, Tk)
        rng.random((tk,)) < 0.8,                        # (Tk,)
        rng.random((bh, 1, tk)) < 0.8,                  # per-sequence padding mask
        np.swapaxes(full, 1, 2),                        # strides (.., 1, Tq)
        (rng.random((bh, tq, tk)) < 0.8)[:, ::-1, ::-1],  # negative strides
        rng.standard_normal((1, tq, 1)).astype(dtype),  # additive, broadcast over keys
        rng.standard_normal((tq, 2 * tk)).astype(dtype)[:, ::2],  # additive, key stride 2
    ]
    for mask in masks:
        _check_against_reference(q, k, v, mask, None)
        _check_against_reference(q, k, v, mask, 2)


def test_additive_mask_of_another_dtype_is_converted():
    """The reference adds any real mask in float64; the kernel reads it in q's dtype."""
    rng = np.random.default_rng(8)
    q, k, v, _, _ = _problem(rng, np.float32, 2, 17, 20, 8, 8, "none")
    mask64 = rng.standard_normal((17, 20))
    mask64[3] = -np.inf
    _check_against_reference(q, k, v, mask64, None)
    _check_against_reference(q, k, v, rng.integers(-2, 1, (2, 1, 20)), 0)


def test_noncontiguous_inputs_and_large_scores(isa):
    rng = np.random.default_rng(11)
    q = np.swapaxes(rng.standard_normal((2, 16, 40)), 1, 2)  # (2, 40, 16), not contiguous
    k = rng.standard_normal((2, 16, 70))[:, :, ::-1].swapaxes(1, 2)
    v = rng.standard_normal((2, 70, 24))[:, :, ::2]
    _check_against_reference(q, k, v, None, 30)
    # scores in the hundreds: the online softmax must rescale without overflow. (In float32 the
    # scores themselves carry ~|s| * 6e-8 of rounding, which exp amplifies: a looser tolerance.)
    _check_against_reference(q, k, v, None, None, scale=40.0)
    _check_against_reference(q.astype(np.float32), k.astype(np.float32), v.astype(np.float32), None, 0, scale=40.0,
                             loose=10.0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_threads_and_schedules_agree_exactly(dtype):
    """Each output row is computed by one task in a fixed order: results do not depend on threads."""
    rng = np.random.default_rng(2)
    q, k, v, mask, offset = _problem(rng, dtype, 3, 130, 100, 32, 24, "bool_causal")
    dout = rng.standard_normal((3, 130, 24)).astype(dtype)
    before = _C.num_threads()
    results = []
    try:
        for threads in (1, 2, 3):
            _C.set_num_threads(threads)
            out, lse = cpu.attention_forward(q, k, v, mask=mask, causal_offset=offset)
            for strategy in ("per_bh", "split"):
                grads = [np.empty_like(a) for a in (q, k, v)]
                _C.attention_backward(q, k, v, out, lse, dout, *grads, mask, offset, 1 / np.sqrt(32),
                                      strategy=strategy)
                results.append((out, lse, *grads))
    finally:
        _C.set_num_threads(before)
    for r in results[1:]:
        for a, b in zip(r, results[0]):
            assert np.array_equal(a, b)


def test_extreme_causal_offsets_and_empty_sizes():
    rng = np.random.default_rng(4)
    q, k, v = (rng.standard_normal(s) for s in ((2, 9, 4), (2, 6, 4), (2, 6, 3)))
    for offset, same_as in ((2**70, None), (10**6, None), (-(2**70), -100), (np.int64(-3), -3)):
        out, lse = cpu.attention_forward(q, k, v, causal_offset=offset)
        out_r, lse_r = ref.attention_forward(q, k, v, causal_offset=same_as)
        _close(out, out_r, np.float64, "out")
        assert np.array_equal(np.isneginf(lse), np.isneginf(lse_r))
    # no keys: every row sees nothing
    out, lse = cpu.attention_forward(q, k[:, :0], v[:, :0])
    assert out.shape == (2, 9, 3) and np.all(out == 0) and np.all(lse == -np.inf)
    dq, dk, dv = cpu.attention_backward(q, k[:, :0], v[:, :0], out, lse, np.ones_like(out))
    assert dq.shape == q.shape and np.all(dq == 0) and dk.shape == (2, 0, 4) and dv.shape == (2, 0, 3)
    # no queries, no heads
    out, lse = cpu.attention_forward(q[:, :0], k, v)
    dq, dk, dv = cpu.attention_backward(q[:, :0], k, v, out, lse, out)
    assert out.shape == (2, 0, 3) and np.all(dk == 0) and np.all(dv == 0)
    out, lse = cpu.attention_forward(q[:0], k[:0], v[:0])
    assert out.shape == (0, 9, 3)


def _qkv(dtype=np.float32, bh=2, tq=5, tk=6, d=4, dv=3):
    rng = np.random.default_rng(0)
    return (rng.standard_normal((bh, tq, d)).astype(dtype), rng.standard_normal((bh, tk, d)).astype(dtype),
            rng.standard_normal((bh, tk, dv)).astype(dtype))


def test_bad_inputs_raise():
    q, k, v = _qkv()
    with pytest.raises(ValueError, match=OP + r".*head size D.*\(2, 5, 4\)"):
        cpu.attention_forward(q, k[:, :, :3], v)
    with pytest.raises(ValueError, match=OP + ".*batch"):
        cpu.attention_forward(q, k[:1], v[:1])
    with pytest.raises(ValueError, match=OP + ".*Tk"):
        cpu.attention_forward(q, k, v[:, :4])
    with pytest.raises(ValueError, match=OP + ".*3-D"):
        cpu.attention_forward(q[0], k[0], v[0])
    with pytest.raises(TypeError, match=OP + ".*float32 or float64"):
        cpu.attention_forward(q.astype(np.int32), k.astype(np.int32), v.astype(np.int32))
    with pytest.raises(TypeError, match=OP):
        cpu.attention_forward(q.astype(np.float16), k.astype(np.float16), v.astype(np.float16))
    with pytest.raises(TypeError, match=OP + ".*same dtype"):
        cpu.attention_forward(q, k.astype(np.float64), v)
    with pytest.raises(ValueError, match=OP + r".*mask of shape \(5, 7\)"):
        cpu.attention_forward(q, k, v, mask=np.ones((5, 7), bool))
    with pytest.raises(TypeError, match=OP + ".*mask must be bool"):
        cpu.attention_forward(q, k, v, mask=np.full((5, 6), "a"))
    with pytest.raises(TypeError, match=OP + ".*causal_offset"):
        cpu.attention_forward(q, k, v, causal_offset=1.5)

    out, lse = cpu.attention_forward(q, k, v)
    with pytest.raises(ValueError, match=OP + r".*dout.*expected \(2, 5, 3\)"):
        cpu.attention_backward(q, k, v, out, lse, out[:, :4])
    with pytest.raises(ValueError, match=OP + r".*lse"):
        cpu.attention_backward(q, k, v, out, lse[:, :, None], out)
    with pytest.raises(TypeError, match=OP):
        cpu.attention_backward(q, k, v, out, lse.astype(np.float64), out)


def test_binding_checks_outputs():
    q, k, v = _qkv()
    out, lse = np.empty((2, 5, 3), np.float32), np.empty((2, 5), np.float32)
    with pytest.raises(ValueError, match=OP + ".*out"):
        _C.attention_forward(q, k, v, np.empty((2, 5, 4), np.float32), lse, None, None, 0.5)
    with pytest.raises(ValueError, match=OP + ".*contiguous"):
        _C.attention_forward(q, k, v, np.empty((2, 3, 5), np.float32).swapaxes(1, 2), lse, None, None, 0.5)
    with pytest.raises(ValueError, match=OP + ".*contiguous"):
        _C.attention_forward(q.swapaxes(1, 2).copy().swapaxes(1, 2), k, v, out, lse, None, None, 0.5)
    readonly = np.empty((2, 5), np.float32)
    readonly.flags.writeable = False
    with pytest.raises(ValueError, match=OP + ".*writeable"):
        _C.attention_forward(q, k, v, out, readonly, None, None, 0.5)
    with pytest.raises(TypeError, match=OP + ".*out"):
        _C.attention_forward(q, k, v, out.astype(np.float64), lse, None, None, 0.5)
    with pytest.raises(ValueError, match=OP + r".*mask.*\(2, 5, 6\)"):
        _C.attention_forward(q, k, v, out, lse, np.ones((5, 6), bool), None, 0.5)
    with pytest.raises(TypeError, match=OP + ".*mask"):
        _C.attention_forward(q, k, v, out, lse, [[True]], None, 0.5)
    with pytest.raises(TypeError, match=OP + ".*mask must be bool or have q's dtype"):
        _C.attention_forward(q, k, v, out, lse, np.zeros((2, 5, 6), np.float64), None, 0.5)
    with pytest.raises(TypeError, match=OP + ".*mask must be bool or have q's dtype"):
        _C.attention_forward(q, k, v, out, lse, np.zeros((2, 5, 6), np.int64), None, 0.5)
    _C.attention_forward(q, k, v, out, lse, None, None, 0.5)
    grads = [np.empty_like(a) for a in (q, k, v)]
    with pytest.raises(ValueError, match=OP + ".*strategy"):
        _C.attention_backward(q, k, v, out, lse, out, *grads, None, None, 0.5, strategy="fast")
    with pytest.raises(ValueError, match=OP + ".*dk"):
        _C.attention_backward(q, k, v, out, lse, out, grads[0], grads[0], grads[2], None, None, 0.5)
    with pytest.raises(ValueError, match=OP + ".*block"):
        _C.attention_forward(q, k, v, out, lse, None, None, 0.5, block_q=-1)


def test_exports_match_reference_signatures():
    import inspect

    assert sorted(cpu.__all__) == ["attention_backward", "attention_forward"]
    for name in cpu.__all__:
        assert inspect.signature(getattr(cpu, name)) == inspect.signature(getattr(ref, name))


# ---------------------------------------------------------------- strided (B, H, T, D) views, read and written in place


def _packed(rng, dtype, b, t, h, d, slots=3):
    """A packed projection (B, T, slots, H, D) and its per-slot (B, H, T, D) views, as a GPT's qkv."""
    buf = rng.standard_normal((b, t, slots, h, d)).astype(dtype)
    return buf, [buf[:, :, i].transpose(0, 2, 1, 3) for i in range(slots)]


@settings(deadline=None)
@given(dtype=st.sampled_from([np.float32, np.float64]), b=st.integers(1, 3), h=st.integers(1, 4),
       t=st.sampled_from((1, 3, 17, 65)), d=st.sampled_from((1, 8, 17)),
       kind=st.sampled_from(("none", "causal", "causal_neg", "bool", "float")), seed=st.integers(0, 2**32 - 1))
def test_strided_heads_in_place(isa, dtype, b, h, t, d, kind, seed):
    """q, k, v as (B, H, T, D) views of one packed (B, T, 3, H, D) buffer; out written into a (B, T, H, D)
    buffer and dq, dk, dv into a packed one, through views: same numbers as the reference on copies, and
    nothing outside the views is touched."""
    rng = np.random.default_rng(seed)
    _, (q, k, v) = _packed(rng, dtype, b, t, h, d)
    assert not q.flags.c_contiguous or t == 1 or h == 1
    mask, offset = None, None
    if kind == "causal":
        offset = 0
    elif kind == "causal_neg":
        offset = -2
    elif kind == "bool":
        mask = rng.random((b, 1, t, t)) < 0.7  # broadcast over heads
    elif kind == "float":
        mask = rng.standard_normal((t, t)).astype(dtype)
    qc, kc, vc = (np.ascontiguousarray(a) for a in (q, k, v))
    out_r, lse_r = ref.attention_forward(qc, kc, vc, mask=mask, causal_offset=offset)

    out_buf = np.full((b, t, h + 1, d), np.nan, dtype)  # one spare head slot that must stay NaN
    out_view = out_buf[:, :, :h].transpose(0, 2, 1, 3)
    out, lse = cpu.attention_forward(q, k, v, mask=mask, causal_offset=offset, out=out_view)
    assert out is out_view and lse.shape == (b, h, t)
    _close(np.ascontiguousarray(out), out_r, dtype, "out")
    _close(lse, lse_r, dtype, "lse")
    assert np.all(np.isnan(out_buf[:, :, h]))

    dout = rng.standard_normal((b, t, h, d)).astype(dtype).transpose(0, 2, 1, 3)  # a strided dout too
    grads_r = ref.attention_backward(qc, kc, vc, out_r, lse_r, np.ascontiguousarray(dout), mask=mask,
                                     causal_offset=offset)
    gbuf = np.full((b, t, 4, h, d), np.nan, dtype)
    views = [gbuf[:, :, i].transpose(0, 2, 1, 3) for i in range(3)]
    grads = cpu.attention_backward(q, k, v, out, lse, dout, mask=mask, causal_offset=offset,
                                   dq=views[0], dk=views[1], dv=views[2])
    for name, g, view, g_r in zip(("dq", "dk", "dv"), grads, views, grads_r):
        assert g is view
        _close(np.ascontiguousarray(g), g_r, dtype, name)
    assert np.all(np.isnan(gbuf[:, :, 3])), "a write landed outside dq, dk, dv"


def test_strided_views_need_no_copy_and_4d_contiguous_matches_3d():
    rng = np.random.default_rng(5)
    b, h, t, d = 2, 3, 20, 8
    buf, (q, k, v) = _packed(rng, np.float32, b, t, h, d)
    out4, lse4 = cpu.attention_forward(q, k, v, causal_offset=0)
    out3, lse3 = cpu.attention_forward(*(np.ascontiguousarray(a).reshape(b * h, t, d) for a in (q, k, v)),
                                       causal_offset=0)
    assert np.array_equal(out4.reshape(b * h, t, d), out3) and np.array_equal(lse4.reshape(b * h, t), lse3)
    # the kernel saw the packed buffer itself: changing it changes the result
    assert np.shares_memory(cpu._followable(q), buf)


def test_unfollowable_layouts_are_copied_or_rejected():
    rng = np.random.default_rng(6)
    q = rng.standard_normal((2, 3, 9, 4))
    k, v = q + 1, q - 1
    expected, _ = cpu.attention_forward(q, k, v)
    # negative strides and a strided last axis: the wrapper copies them
    flipped = q[:, :, ::-1]
    got, _ = cpu.attention_forward(flipped, k, v)
    want, _ = cpu.attention_forward(np.ascontiguousarray(flipped), k, v)
    assert np.array_equal(got, want)
    wide = np.repeat(q, 2, axis=-1)[..., ::2]
    assert np.array_equal(cpu.attention_forward(wide, k, v)[0], expected)
    # the binding itself refuses them, naming the tensor and its strides
    out, lse = np.empty_like(q), np.empty(q.shape[:-1])
    with pytest.raises(ValueError, match=OP + r".*q must have non-negative strides.*byte strides"):
        _C.attention_forward(flipped, k, v, out, lse, None, None, 0.5)
    with pytest.raises(ValueError, match=OP + r".*contiguous last axis"):
        _C.attention_forward(wide, k, v, out, lse, None, None, 0.5)
    # an output whose rows overlap (stride 0 over heads) would race: refused
    overlapping = np.lib.stride_tricks.as_strided(np.empty((2, 9, 4)), (2, 3, 9, 4), (9 * 32, 0, 32, 8),
                                                  writeable=True)
    with pytest.raises(ValueError, match=OP + r".*out is an output and must not overlap itself"):
        _C.attention_forward(q, k, v, overlapping, lse, None, None, 0.5)
    # ranks must agree; lse must have q's leading shape
    with pytest.raises(ValueError, match=OP + r".*all be 3-D \(BH, T, D\) or all 4-D"):
        cpu.attention_forward(q, k.reshape(6, 9, 4), v)
    with pytest.raises(ValueError, match=OP + r".*lse \(B, H, Tq\)"):
        _C.attention_forward(q, k, v, out, np.empty((6, 9)), None, None, 0.5)
    with pytest.raises(ValueError, match=OP + r".*mask.*\(B, H, Tq, Tk\)"):
        cpu.attention_forward(q, k, v, mask=np.ones((4, 9, 9), bool))


# ---------------------------------------------------------------------- NaN and inf (issue 12 item 3)


def _nan_case(where, causal, dtype, tq=37, tk=37):
    """q, k, v, mask, offset with one NaN (or inf) placed where it contributes, and the expected NaN pattern
    of out (True = NaN). Sizes cross the kernels' blocks and SIMD tails."""
    rng = np.random.default_rng(0)
    bh, d, dv = 3, 19, 11
    q, k, v = (rng.standard_normal(s).astype(dtype) for s in ((bh, tq, d), (bh, tk, d), (bh, tk, dv)))
    offset = 0 if causal else None
    sees = np.ones((tq, tk), bool) if not causal else np.arange(tk)[None, :] <= np.arange(tq)[:, None]
    mask = None
    expect = np.zeros((bh, tq, dv), bool)
    b, i, j = 1, 20, 7
    if where == "q":
        q[b, i, 3] = np.nan
        expect[b, i] = True
    elif where == "q_inf":
        q[b, i, 3] = np.inf  # +inf and -inf scores in the row: inf - inf
        expect[b, i] = True
    elif where == "k":
        k[b, j, 5] = np.nan
        expect[b] = sees[:, j][:, None]
    elif where == "v":
        v[b, j, 4] = np.nan
        expect[b, :, 4] = True  # the formula: 0 * NaN = NaN even where the weight is 0
    elif where == "mask":
        mask = np.zeros((bh, tq, tk), dtype)
        mask[b, i, j] = np.nan
        expect[b, i] = True
    elif where == "masked_row":
        mask = np.ones((bh, tq, tk), bool)
        mask[b, i] = False  # a row that sees nothing: 0 by design
    return q, k, v, mask, offset, expect


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("where", ["q", "q_inf", "k", "v", "mask", "masked_row"])
def test_nan_and_inf_propagate_as_in_the_formula(isa, dtype, causal, where):
    """One NaN in one key used to zero the whole output, and a NaN query row gave a zero row (the "row sees
    no key" test l > 0 is false for NaN). Now the rows the formula makes NaN are NaN, in kernel and twin,
    the others are unchanged, and a fully masked row is still 0."""
    q, k, v, mask, offset, expect = _nan_case(where, causal, dtype)
    out, lse = cpu.attention_forward(q, k, v, mask, offset)
    out_r, lse_r = ref.attention_forward(q, k, v, mask, offset)
    np.testing.assert_array_equal(np.isnan(out_r), expect, err_msg="twin")
    if where == "v" and causal:
        # the kernel never reads values past a row's causal reach: every row that sees the NaN is NaN, rows
        # that cannot see it may stay finite (or not: a tile's rows share its depth)
        sees = np.arange(37)[:, None] >= 7
        assert np.isnan(out[1, :, 4][sees[:, 0]]).all()
        assert not (np.isnan(out) & ~expect).any()
        finite = ~expect
        _close(out[finite], out_r[finite], dtype, "finite part")
    else:
        np.testing.assert_array_equal(np.isnan(out), expect, err_msg="kernel")
        _close(out[~expect], out_r[~expect], dtype, "finite part")
    if where == "masked_row":
        assert (out[1, 20] == 0).all() and lse[1, 20] == -np.inf
    nan_rows = expect.any(-1)
    if where in ("q", "q_inf", "k", "mask"):
        assert np.isnan(lse[nan_rows]).all() and np.isnan(lse_r[nan_rows]).all()
    # backward: the NaN row's query gradient is NaN in both
    dout = np.random.default_rng(1).standard_normal(out.shape).astype(dtype)
    dq, dk, dv = cpu.attention_backward(q, k, v, out, lse, dout, mask, offset)
    dq_r, _, _ = ref.attention_backward(q, k, v, out_r, lse_r, dout, mask, offset)
    if where in ("q", "q_inf"):
        assert np.isnan(dq[1, 20]).all() and np.isnan(dq_r[1, 20]).all()
    if where == "masked_row":
        for g in (dq, dk, dv):
            assert np.isfinite(g).all()
