"""Compiled conv family (convolution, pooling, batch norm) against its NumPy twins, under every ISA."""
import numpy as np
import pytest

from pyengine import _C
from pyengine.backend import reference as ref
from pyengine.backend.cpu import conv as cpu
from pyengine.testing import assert_close, results_on_threads

DTYPES = (np.float32, np.float64)


def rand(rng, shape, dtype):
    return rng.standard_normal(shape).astype(dtype)


@pytest.fixture(params=[1, 2])
def threads(request):
    before = _C.num_threads()
    _C.set_num_threads(request.param)
    yield request.param
    _C.set_num_threads(before)


def _out(n, k, s, p, d):
    return (n + 2 * p - d * (k - 1) - 1) // s + 1


CONV = [  # N, C, H, W, O, KH, KW, stride, padding, dilation, groups
    (2, 3, 7, 9, 5, 3, 3, (1, 1), (0, 0), (1, 1), 1),
    (3, 4, 8, 5, 6, 3, 2, (2, 1), (1, 2), (2, 1), 2),
    (4, 6, 11, 7, 6, 3, 3, (2, 2), (1, 1), (1, 1), 6),     # depthwise
    (3, 5, 9, 8, 5, 5, 3, (1, 3), (2, 0), (1, 2), 5),      # depthwise, strided and dilated
    (2, 4, 6, 9, 4, 3, 3, (1, 1), (1, 1), (1, 1), 4),      # depthwise 3x3 stride 1: fused taps, edges apart
    (2, 3, 7, 10, 3, 2, 5, (1, 1), (0, 2), (1, 2), 3),     # depthwise, 5 dilated taps per row
    (1, 2, 5, 3, 2, 3, 3, (1, 1), (2, 3), (1, 1), 2),      # depthwise, no column where every tap reads x
    (2, 5, 17, 70, 5, 3, 3, (1, 1), (1, 1), (1, 1), 5),    # depthwise 3x3: four vectors a step, then a tail
    (3, 7, 13, 37, 7, 3, 3, (2, 2), (1, 1), (1, 1), 7),    # depthwise 3x3 stride 2: rows split by phase
    (2, 3, 9, 40, 3, 7, 7, (1, 2), (3, 3), (1, 1), 3),     # depthwise 7x7: weight grad on the fallback
    (2, 3, 8, 9, 3, 3, 3, (3, 2), (5, 0), (2, 1), 3),      # depthwise, padding past d (K - 1): dx crops dy
    (1, 1, 1, 1, 1, 1, 1, (1, 1), (0, 0), (1, 1), 1),      # one value
    (2, 1, 9, 30, 5, 3, 3, (1, 1), (1, 1), (1, 1), 1),     # one input channel (a first layer): direct wgrad
    (9, 1, 8, 8, 4, 5, 5, (1, 1), (2, 2), (1, 1), 1),      # the same, 5x5, the batch in 8 uneven blocks
    (3, 2, 7, 11, 6, 3, 3, (2, 1), (1, 0), (1, 2), 2),     # one input channel per group, three outputs each
    (3, 16, 14, 14, 32, 3, 3, (1, 1), (1, 1), (1, 1), 1),  # dense, few input channels: the direct tiles
    (2, 5, 9, 21, 11, 3, 2, (2, 1), (1, 1), (1, 2), 1),    # direct: strided, dilated, O past the o-block
    (2, 3, 13, 37, 6, 5, 5, (2, 2), (2, 2), (1, 1), 1),    # direct 5x5 stride 2 (dx from spread dy)
    (3, 6, 14, 13, 16, 5, 5, (1, 1), (0, 0), (1, 1), 1),   # LeNet's second: direct (O 16 x 25 taps for dx)
    (2, 44, 9, 10, 5, 3, 3, (1, 1), (1, 1), (1, 1), 1),    # C KH KW 396: the direct forward's widest
    (5, 4, 5, 6, 8, 1, 1, (1, 1), (0, 0), (1, 1), 1),      # pointwise: x read in place
    (2, 4, 6, 6, 6, 1, 1, (1, 1), (0, 0), (1, 1), 2),      # grouped pointwise
    (2, 4, 9, 9, 8, 1, 1, (2, 2), (0, 0), (1, 1), 1),      # strided 1x1 (ResNet's downsample)
    (1, 64, 20, 100, 3, 3, 3, (1, 1), (1, 1), (1, 1), 1),  # several row tiles per image
    (3, 2, 1, 13, 3, 1, 4, (1, 2), (0, 1), (1, 1), 1),     # a 1-D convolution as 2-D
    (1, 2, 3, 3, 2, 3, 3, (4, 4), (2, 2), (1, 1), 1),      # windows mostly in the padding
]


@pytest.mark.parametrize("case", CONV)
@pytest.mark.parametrize("dtype", DTYPES)
def test_conv2d_matches_twin(isa, threads, case, dtype):
    N, C, H, W, O, KH, KW, s, p, d, g = case
    rng = np.random.default_rng(sum(case[:7]))
    x, w, b = rand(rng, (N, C, H, W), dtype), rand(rng, (O, C // g, KH, KW), dtype), rand(rng, (O,), dtype)
    out = (_out(H, KH, s[0], p[0], d[0]), _out(W, KW, s[1], p[1], d[1]))
    args = (s, p, d, g)
    for bias in (b, None):
        assert_close(cpu.conv2d_forward(x, w, bias, *args, out), ref.conv2d_forward(x, w, bias, *args, out),
                     rtol=1e-4 if dtype == np.float32 else 1e-10, atol=1e-4 if dtype == np.float32 else 1e-10)
    dy = rand(rng, (N, O) + out, dtype)
    tol = dict(rtol=2e-4, atol=2e-4) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-10)
    assert_close(cpu.conv2d_backward_input(dy, w, (H, W), *args), ref.conv2d_backward_input(dy, w, (H, W), *args),
                 **tol)
    assert_close(cpu.conv2d_backward_weight(dy, x, (KH, KW), *args),
                 ref.conv2d_backward_weight(dy, x, (KH, KW), *args), **tol)


@pytest.mark.filterwarnings("ignore:invalid value encountered")  # the twin's matmul, on the NaNs it makes
@pytest.mark.parametrize("dtype", DTYPES)
def test_depthwise_nonfinite_matches_twin(isa, dtype):
    """A NaN or inf weight makes NaN exactly where its tap reads (padding included, as the twin's im2col);
    a NaN in x or dy spreads as the twin's sums do."""
    rng = np.random.default_rng(5)
    N, C, H, W = 2, 4, 6, 21
    x, w, b = rand(rng, (N, C, H, W), dtype), rand(rng, (C, 1, 3, 3), dtype), rand(rng, (C,), dtype)
    w[1, 0, 0, 0], w[2, 0, 2, 1] = np.inf, np.nan
    x[0, 2, 4, 7] = np.nan
    x[1, 3, 0, 0] = np.nan
    for s in ((1, 1), (2, 2)):
        args = (s, (1, 1), (1, 1), C)
        out = (_out(H, 3, s[0], 1, 1), _out(W, 3, s[1], 1, 1))
        dy = rand(rng, (N, C) + out, dtype)
        dy[0, 0, 1, 2] = np.nan
        np.testing.assert_allclose(cpu.conv2d_forward(x, w, b, *args, out), ref.conv2d_forward(x, w, b, *args, out),
                                   rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(cpu.conv2d_backward_input(dy, w, (H, W), *args),
                                   ref.conv2d_backward_input(dy, w, (H, W), *args), rtol=2e-4, atol=2e-4)
        np.testing.assert_allclose(cpu.conv2d_backward_weight(dy, x, (3, 3), *args),
                                   ref.conv2d_backward_weight(dy, x, (3, 3), *args), rtol=2e-4, atol=2e-4)


@pytest.mark.filterwarnings("ignore:invalid value encountered")
def test_dense_direct_nonfinite_matches_twin(isa):
    """The dense direct tiles: NaN / inf weights and inputs land where the twin's im2col puts them."""
    rng = np.random.default_rng(6)
    x, w, b = rand(rng, (2, 4, 7, 19), np.float64), rand(rng, (6, 4, 3, 3), np.float64), rand(rng, (6,), np.float64)
    w[1, 2, 0, 0], w[4, 0, 2, 2] = np.inf, np.nan
    x[1, 3, 0, 5] = np.nan
    for s in ((1, 1), (2, 2)):
        args = (s, (1, 1), (1, 1), 1)
        out = (_out(7, 3, s[0], 1, 1), _out(19, 3, s[1], 1, 1))
        dy = rand(rng, (2, 6) + out, np.float64)
        dy[0, 5, 1, 1] = np.nan
        np.testing.assert_allclose(cpu.conv2d_forward(x, w, b, *args, out), ref.conv2d_forward(x, w, b, *args, out))
        np.testing.assert_allclose(cpu.conv2d_backward_input(dy, w, (7, 19), *args),
                                   ref.conv2d_backward_input(dy, w, (7, 19), *args))
        w2 = np.nan_to_num(w, nan=0.5, posinf=2.0)  # finite weights: the direct input gradient
        np.testing.assert_allclose(cpu.conv2d_backward_input(dy, w2, (7, 19), *args),
                                   ref.conv2d_backward_input(dy, w2, (7, 19), *args))


def test_conv2d_uneven_output_size(isa):
    """The output size is the caller's: 'same' padding of an even kernel reads zeros past the end."""
    rng = np.random.default_rng(0)
    x, w = rand(rng, (2, 3, 6, 7), np.float64), rand(rng, (4, 3, 2, 4), np.float64)
    args = ((1, 1), (0, 1), (1, 1), 1)
    assert_close(cpu.conv2d_forward(x, w, None, *args, (6, 7)), ref.conv2d_forward(x, w, None, *args, (6, 7)))
    dy = rand(rng, (2, 4, 6, 7), np.float64)
    assert_close(cpu.conv2d_backward_input(dy, w, (6, 7), *args), ref.conv2d_backward_input(dy, w, (6, 7), *args))
    assert_close(cpu.conv2d_backward_weight(dy, x, (2, 4), *args), ref.conv2d_backward_weight(dy, x, (2, 4), *args))


def test_conv2d_empty_sizes(isa):
    for N, C, O in ((0, 2, 3), (2, 2, 0)):
        x, w = np.ones((N, C, 4, 4), np.float32), np.ones((O, C, 3, 3), np.float32)
        assert cpu.conv2d_forward(x, w, None, (1, 1), (0, 0), (1, 1), 1, (2, 2)).shape == (N, O, 2, 2)
        dy = np.ones((N, O, 2, 2), np.float32)
        assert_close(cpu.conv2d_backward_weight(dy, x, (3, 3), (1, 1), (0, 0), (1, 1), 1), np.zeros((O, C, 3, 3)))
        assert_close(cpu.conv2d_backward_input(dy, w, (4, 4), (1, 1), (0, 0), (1, 1), 1), np.zeros((N, C, 4, 4)))


def test_conv2d_bindings_check_their_arguments():
    x, w = np.ones((2, 4, 5, 5), np.float32), np.ones((4, 2, 3, 3), np.float32)
    y = np.empty((2, 4, 3, 3), np.float32)
    with pytest.raises(ValueError, match=r"conv2d_forward: x \(2, 4, 5, 5\), weight \(4, 2, 3, 3\)"):
        _C.conv2d_forward(x, w, None, (1, 1), (0, 0), (1, 1), 1, y)
    with pytest.raises(ValueError, match="conv2d_forward: stride"):
        _C.conv2d_forward(x, w, None, (0, 1), (0, 0), (1, 1), 2, y)
    with pytest.raises(TypeError, match="conv2d_forward"):
        _C.conv2d_forward(x, w.astype(np.float64), None, (1, 1), (0, 0), (1, 1), 2, y)
    with pytest.raises(ValueError, match="C-contiguous"):
        _C.conv2d_forward(x.transpose(0, 1, 3, 2), w, None, (1, 1), (0, 0), (1, 1), 2, y)
    with pytest.raises(ValueError, match="reach past int64"):
        _C.conv2d_forward(x, w, None, (2 ** 62, 1), (0, 0), (1, 1), 2, y)
    with pytest.raises(ValueError, match="bias has shape"):
        _C.conv2d_forward(x, w, np.ones(3, np.float32), (1, 1), (0, 0), (1, 1), 2, y)
    y.flags.writeable = False
    with pytest.raises(ValueError, match="writeable"):
        _C.conv2d_forward(x, w, None, (1, 1), (0, 0), (1, 1), 2, y)


POOL = [  # kernel, stride, padding, dilation, out
    ((2, 2), (2, 2), (0, 0), (1, 1), None), ((3, 3), (2, 2), (1, 1), (1, 1), None),
    ((3, 2), (2, 1), (1, 0), (1, 2), None), ((3, 3), (3, 3), (1, 1), (2, 2), None),
    ((3, 3), (2, 2), (1, 1), (1, 1), (5, 4)),  # ceil mode: a last window past the end
]


@pytest.mark.parametrize("case", POOL)
@pytest.mark.parametrize("dtype", DTYPES)
def test_pooling_matches_twin(isa, threads, case, dtype):
    k, s, p, d, out = case
    rng = np.random.default_rng(1)
    x = rand(rng, (2, 3, 9, 8), dtype)
    x[0, 0, 1, 1] = np.nan
    x[1, 2] = 0.5  # ties: the first maximum wins
    out = out or tuple(_out(n, kk, ss, pp, dd) for n, kk, ss, pp, dd in zip((9, 8), k, s, p, d))
    y, idx = cpu.max_pool2d_forward(x, k, s, p, d, out)
    ry, ridx = ref.max_pool2d_forward(x, k, s, p, d, out)
    assert_close(y, ry)
    np.testing.assert_array_equal(idx, ridx)
    dy = rand(rng, y.shape, dtype)
    assert_close(cpu.max_pool2d_backward(dy, idx, (9, 8)), ref.max_pool2d_backward(dy, ridx, (9, 8)))
    for cip in (True, False):
        for div in (None, 5):
            assert_close(cpu.avg_pool2d_forward(x, k, s, p, out, cip, div), ref.avg_pool2d_forward(x, k, s, p, out, cip, div))
            assert_close(cpu.avg_pool2d_backward(dy, (9, 8), k, s, p, cip, div),
                         ref.avg_pool2d_backward(dy, (9, 8), k, s, p, cip, div))


@pytest.mark.parametrize("dtype", DTYPES)
def test_max_pool_2x2_rows_match_twin(isa, threads, dtype):
    """The vectorised 2 x 2 stride-2 rows: wide odd planes (vectors and a tail), ties, NaNs, -inf windows."""
    rng = np.random.default_rng(3)
    x = np.round(rand(rng, (3, 5, 11, 75), dtype), 1)  # rounding makes ties within windows
    x[0, 0, 2, 3], x[0, 0, 3, 2], x[1, 1, 0, 1], x[1, 1, 1, 0] = np.nan, np.nan, np.nan, np.nan
    x[1, 2, 5, 73], x[1, 2, 4, 72] = np.nan, np.nan  # in the last, partial vector
    x[2, 4, 4:6, 10:12] = -np.inf
    x[2, 3, 6:8, 20:22] = 0.25
    y, idx = cpu.max_pool2d_forward(x, (2, 2), (2, 2), (0, 0), (1, 1), (5, 37))
    ry, ridx = ref.max_pool2d_forward(x, (2, 2), (2, 2), (0, 0), (1, 1), (5, 37))
    assert_close(y, ry)
    np.testing.assert_array_equal(idx, ridx)


def test_max_pool_backward_skips_foreign_indices():
    dy = np.ones((1, 1, 2, 2), np.float32)
    idx = np.array([[[[0, 3], [-1, 99]]]], np.int64)
    dx = cpu.max_pool2d_backward(dy, idx, (2, 2))
    np.testing.assert_array_equal(dx, [[[[1, 0], [0, 1]]]])


@pytest.mark.parametrize("shape", [(4, 3, 1), (5, 3, 7), (2, 4, 30), (1, 2, 5)])
@pytest.mark.parametrize("dtype", DTYPES)
def test_batch_norm_matches_twin(isa, threads, shape, dtype):
    rng = np.random.default_rng(2)
    C = shape[1]
    x = rand(rng, shape, dtype) * 3 + 1
    w, b, dy = rand(rng, (C,), dtype), rand(rng, (C,), dtype), rand(rng, shape, dtype)
    tol = dict(rtol=1e-4, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-11)
    for weight, bias in ((w, b), (None, None), (w, None)):
        y, m, v = cpu.batch_norm_forward(x, weight, bias, 1e-5)
        ry, rm, rv = ref.batch_norm_forward(x, weight, bias, 1e-5)
        for got, want in ((y, ry), (m, rm), (v, rv)):
            assert got.dtype == x.dtype
            assert_close(got, want, **tol)
        for training in (True, False):
            got = cpu.batch_norm_backward(dy, x, weight, rm, rv, 1e-5, training)
            want = ref.batch_norm_backward(dy, x, weight, rm, rv, 1e-5, training)
            for a, e in zip(got, want):
                assert (a is None) == (e is None)
                if a is not None:
                    assert_close(a, e, **tol)
        ey, _, _ = cpu.batch_norm_forward(x, weight, bias, 1e-3, rm + 0.5, rv + 1)
        assert_close(ey, ref.batch_norm_forward(x, weight, bias, 1e-3, rm + 0.5, rv + 1)[0], **tol)


def test_batch_norm_bindings_check_their_arguments():
    x = np.ones((2, 3, 4), np.float32)
    with pytest.raises(ValueError, match="batch_norm_forward: weight has shape"):
        cpu.batch_norm_forward(x, np.ones(2, np.float32), None, 1e-5)
    with pytest.raises(ValueError, match="batch_norm_forward: eps"):
        cpu.batch_norm_forward(x, None, None, -1.0)
    with pytest.raises(TypeError, match="batch_norm_backward"):
        cpu.batch_norm_backward(x, x, None, np.zeros(3), np.ones(3), 1e-5)


def test_workspace_is_bounded():
    """The column tiles do not grow with the batch: 8 to 256 images of ResNet's first 3x3 layer take at most
    a column tile and a row of im2col per thread, plus the Winograd weight gradient's parts (at most four dU
    of at most 1 MiB each), far below one image's im2col per image."""
    nt = _C.num_threads()
    got = [cpu.conv2d_workspace_bytes((n, 64, 56, 56), (64, 64, 3, 3), (56, 56), (1, 1), (1, 1), (1, 1), 1, 4)
           for n in (8, 64, 256)]
    assert max(got) <= nt * (2 << 20) + 64 * 9 * 56 * 4 * nt + 4 * (1 << 20), got
    assert max(got) < 64 * 64 * 9 * 56 * 56 * 4


def test_direct_kernels_report_their_buffers():
    """Depthwise and few-channel convolutions count the direct kernels' padded planes (a plane or an image's
    planes per thread, two for the fused depthwise backward; not the batch's)."""
    args = ((1, 1), (1, 1), (1, 1))
    for N in (8, 64):
        dw = cpu.conv2d_workspace_bytes((N, 128, 56, 56), (128, 1, 3, 3), (56, 56), *args, 128, 4)
        assert 0 < dw <= _C.num_threads() * 2 * 60 * 200 * 4 + 128 * 9 * 4
        dense = cpu.conv2d_workspace_bytes((N, 16, 14, 14), (32, 16, 3, 3), (14, 14), *args, 1, 4)
        assert _C.num_threads() * 16 * 16 * 16 * 4 <= dense <= _C.num_threads() * (2 << 20) + (1 << 20)


# Winograd F(4x4, 3x3): 3x3 stride-1 one-group convolutions (forward, input and weight gradients). The threshold on
# the channels is lowered to 1 so that small shapes take the path; tiles past the image's edge, panels of
# tiles across images, output channels that do not fill a micro-panel, and paddings 0 to 2 are covered.
WINOGRAD = [  # N, C, H, W, O, (ph, pw)
    (2, 3, 7, 9, 5, (1, 1)),
    (1, 1, 1, 1, 1, (1, 1)),     # one pixel: the tile is all padding but its centre
    (3, 17, 13, 6, 29, (1, 1)),  # 29 output channels: a partial micro-panel on every ISA
    (2, 8, 4, 4, 8, (0, 0)),     # a 2x2 output, one partial tile
    (1, 5, 9, 11, 7, (2, 0)),    # padding 2 (dgrad then pads 0) and 0
    (5, 4, 10, 3, 6, (0, 2)),
    (9, 6, 8, 8, 3, (1, 1)),     # 36 tiles of whole 4x4s, spread over panels
    (2, 40, 16, 15, 36, (1, 1)),   # 2 threads: few panels, each step split over the threads
    (25, 32, 8, 7, 33, (1, 1)),    # 2 threads: whole panels per thread (100 tiles)
    (1, 70, 5, 6, 75, (1, 1)),     # many channels, 4 tiles: U transformed per A panel (no whole U)
]


@pytest.fixture
def winograd_all():
    before = _C.conv_winograd()
    _C.set_conv_winograd(1, 1)
    yield
    _C.set_conv_winograd(*before)


def _winograd_tol(dtype, C):
    # F(4x4, 3x3)'s transforms (constants up to 8, 1/24) lose about one to two digits against a direct sum:
    # the error is bounded relative to the size of the sum, sqrt(9 C) for unit inputs, not to each output.
    # Measured on ResNet's layers in float32: max 3e-5 to 6e-5, rms 2e-6 to 3e-6 of sqrt(9 C) (direct sums:
    # max 2e-6, rms 3e-7).
    scale = np.sqrt(9.0 * C)
    return dict(rtol=0, atol=(1e-4 if dtype == np.float32 else 1e-12) * scale)


def _winograd_wgrad_tol(dtype, N, L):
    # The weight gradient sums N L products per value (sqrt(N L) for unit inputs), through the same transforms
    # (dy lifted by A, constants up to 8; x by B^T; the result by G^T, 1/24). Measured in float32 on ResNet's
    # layers at batch 2 and 8: max 1.4e-5 to 2.1e-5, rms 0.9e-6 to 2.3e-6 of sqrt(N L) (direct sums: max
    # 1.4e-6 to 2.8e-6, rms 1.5e-7 to 3.7e-7); float64: max 4e-14.
    return dict(rtol=0, atol=(1e-4 if dtype == np.float32 else 1e-12) * np.sqrt(N * L))


@pytest.mark.parametrize("case", WINOGRAD)
@pytest.mark.parametrize("dtype", DTYPES)
def test_conv2d_winograd_matches_twin(isa, threads, winograd_all, case, dtype):
    N, C, H, W, O, p = case
    rng = np.random.default_rng(sum(case[:5]))
    x, w, b = rand(rng, (N, C, H, W), np.float64), rand(rng, (O, C, 3, 3), np.float64), rand(rng, (O,), np.float64)
    out = (H + 2 * p[0] - 2, W + 2 * p[1] - 2)
    args = ((1, 1), p, (1, 1), 1)
    dy = rand(rng, (N, O) + out, np.float64)
    xs, ws, bs, dys = (a.astype(dtype) for a in (x, w, b, dy))
    for bias, bias_s in ((b, bs), (None, None)):
        assert_close(cpu.conv2d_forward(xs, ws, bias_s, *args, out), ref.conv2d_forward(x, w, bias, *args, out),
                     **_winograd_tol(dtype, C))
    assert_close(cpu.conv2d_backward_input(dys, ws, (H, W), *args), ref.conv2d_backward_input(dy, w, (H, W), *args),
                 **_winograd_tol(dtype, O))
    assert_close(cpu.conv2d_backward_weight(dys, xs, (3, 3), *args), ref.conv2d_backward_weight(dy, x, (3, 3), *args),
                 **_winograd_wgrad_tol(dtype, N, out[0] * out[1]))


@pytest.mark.parametrize("dtype", DTYPES)
def test_conv2d_winograd_few_tiles_thread_bits(isa, winograd_all, dtype):
    """Many channels and few tiles (U transformed per A panel into the thread's buffer, the weight gradient in
    one chunk): forward and both gradients against the twin, with the same bits on 1, 2 and 3 threads."""
    rng = np.random.default_rng(4)
    x, w, dy = rand(rng, (2, 67, 7, 5), np.float64), rand(rng, (71, 67, 3, 3), np.float64), rand(rng, (2, 71, 7, 5), np.float64)
    args = ((1, 1), (1, 1), (1, 1), 1)
    xs, ws, dys = (a.astype(dtype) for a in (x, w, dy))
    before, adapt, got = _C.num_threads(), _C.adapt_threads(), []
    _C.set_adapt_threads(False)  # the thread counts asked for, whatever the machine's load
    try:
        for nt in (1, 2, 3):
            _C.set_num_threads(nt)
            got.append((cpu.conv2d_forward(xs, ws, None, *args, (7, 5)), cpu.conv2d_backward_input(dys, ws, (7, 5), *args),
                        cpu.conv2d_backward_weight(dys, xs, (3, 3), *args)))
    finally:
        _C.set_num_threads(before)
        _C.set_adapt_threads(adapt)
    assert_close(got[0][0], ref.conv2d_forward(x, w, None, *args, (7, 5)), **_winograd_tol(dtype, 67))
    assert_close(got[0][1], ref.conv2d_backward_input(dy, w, (7, 5), *args), **_winograd_tol(dtype, 71))
    assert_close(got[0][2], ref.conv2d_backward_weight(dy, x, (3, 3), *args), **_winograd_wgrad_tol(dtype, 2, 35))
    for g in got[1:]:
        for a, b in zip(g, got[0]):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("N, C, O", [
    (7, 19, 23),   # 7 x 4 x 3 tiles, 32 a chunk (the column tile shrunk): 3 chunks, 3 parts of one chunk
    (20, 19, 23),  # 240 tiles: 4 parts of 2 chunks (30 tiles each)
    (4, 88, 89),   # dU over 1 MiB: no parts, 2 chunks on all threads (48 tiles: 32 + 16)
])
def test_conv2d_winograd_wgrad_chunks_thread_bits(isa, winograd_all, dtype, N, C, O):
    """The weight gradient in several chunks of tiles, in parts (each on one thread, summed in part order) or
    shared by the threads, against the twin, with the same bits on 1, 2 and 3 threads."""
    rng = np.random.default_rng(3)
    x, dy = rand(rng, (N, C, 13, 10), np.float64), rand(rng, (N, O, 13, 10), np.float64)
    args = ((1, 1), (1, 1), (1, 1), 1)
    want = ref.conv2d_backward_weight(dy, x, (3, 3), *args)
    xs, dys = x.astype(dtype), dy.astype(dtype)
    tile = _C.conv_tile()
    _C.set_conv_tile(1)
    try:
        got = results_on_threads(lambda: cpu.conv2d_backward_weight(dys, xs, (3, 3), *args))
    finally:
        _C.set_conv_tile(tile)
    assert_close(got[0], want, **_winograd_wgrad_tol(dtype, N, 130))
    for g in got[1:]:
        np.testing.assert_array_equal(g, got[0])


def test_conv2d_winograd_resnet_layer_accuracy(winograd_all):
    """A ResNet layer (64 channels, 14x14, batch 2) in float32 against the float64 twin: max error within
    1e-4 sqrt(9 C) (weight gradient: sqrt(N L)), rms within 1e-5 of that and within 20x the implicit GEMM's
    direct sums."""
    rng = np.random.default_rng(5)
    x, w = rng.standard_normal((2, 64, 14, 14)), rng.standard_normal((64, 64, 3, 3))
    dy = rng.standard_normal((2, 64, 14, 14))
    args = ((1, 1), (1, 1), (1, 1), 1)
    x32, w32, dy32 = x.astype(np.float32), w.astype(np.float32), dy.astype(np.float32)
    for run, want, scale in ((lambda: cpu.conv2d_forward(x32, w32, None, *args, (14, 14)),
                              ref.conv2d_forward(x, w, None, *args, (14, 14)), np.sqrt(9 * 64)),
                             (lambda: cpu.conv2d_backward_input(dy32, w32, (14, 14), *args),
                              ref.conv2d_backward_input(dy, w, (14, 14), *args), np.sqrt(9 * 64)),
                             (lambda: cpu.conv2d_backward_weight(dy32, x32, (3, 3), *args),
                              ref.conv2d_backward_weight(dy, x, (3, 3), *args), np.sqrt(2 * 14 * 14))):
        _C.set_conv_winograd(1, 1)
        err_w = run() - want
        _C.set_conv_winograd(1 << 40, 1)
        err_g = run() - want
        rms_w, rms_g = np.sqrt((err_w ** 2).mean()), np.sqrt((err_g ** 2).mean())
        assert np.abs(err_w).max() <= 1e-4 * scale
        assert rms_w <= 1e-5 * scale and rms_w <= 20 * rms_g


@pytest.mark.filterwarnings("ignore:invalid value encountered")  # the twin's matmul, on the NaNs it makes
def test_conv2d_winograd_nonfinite(winograd_all):
    """A NaN or inf in x, w or dy reaches exactly the outputs the twin's sums put it in (Winograd's transforms
    would spread it over the whole tile: such calls take the im2col path), finite values everywhere else."""
    rng = np.random.default_rng(11)
    args = ((1, 1), (1, 1), (1, 1), 1)
    for where in ("x", "w", "dy"):
        x, w = rng.standard_normal((2, 3, 9, 10)), rng.standard_normal((4, 3, 3, 3))
        dy = rng.standard_normal((2, 4, 9, 10))
        if where == "x":
            x[0, 1, 3, 5], x[1, 2, 0, 9] = np.nan, np.inf
        elif where == "w":
            w[2, 1, 0, 2] = np.inf
        else:
            dy[1, 3, 4, 4], dy[0, 0, 8, 0] = np.nan, -np.inf
        got = (cpu.conv2d_forward(x.astype(np.float32), w.astype(np.float32), None, *args, (9, 10)),
               cpu.conv2d_backward_input(dy.astype(np.float32), w.astype(np.float32), (9, 10), *args),
               cpu.conv2d_backward_weight(dy.astype(np.float32), x.astype(np.float32), (3, 3), *args))
        want = (ref.conv2d_forward(x, w, None, *args, (9, 10)), ref.conv2d_backward_input(dy, w, (9, 10), *args),
                ref.conv2d_backward_weight(dy, x, (3, 3), *args))
        for g, t in zip(got, want):
            np.testing.assert_array_equal(np.isnan(g), np.isnan(t), err_msg=f"NaN placement, non-finite {where}")
            np.testing.assert_array_equal(np.isinf(g), np.isinf(t), err_msg=f"inf placement, non-finite {where}")
            fin = np.isfinite(t)
            np.testing.assert_allclose(g[fin], t[fin], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("threads_n", [1, 2])
def test_conv2d_winograd_against_torch(threads_n):
    """F.conv2d on a shape the default thresholds send through Winograd (33 -> 40 channels, 4 images of 13x17:
    80 tiles), with a non-contiguous input: forward and the gradients of x, weight and bias against PyTorch."""
    torch = pytest.importorskip("torch")
    import pyengine as pe
    import pyengine.nn.functional as F
    assert _C.conv_winograd() == (32, 32)
    before = _C.num_threads()
    _C.set_num_threads(threads_n)
    try:
        rng = np.random.default_rng(11)
        x = np.swapaxes(rng.standard_normal((4, 33, 17, 13)).astype(np.float32), -1, -2)  # (4, 33, 13, 17) view
        w = (rng.standard_normal((40, 33, 3, 3)) / np.sqrt(9 * 33)).astype(np.float32)
        b = rng.standard_normal(40).astype(np.float32)
        g = rng.standard_normal((4, 40, 13, 17)).astype(np.float32)
        px, pw, pb = (pe.from_numpy(a).requires_grad_() for a in (x, w, b))
        tx, tw, tb = (torch.tensor(np.ascontiguousarray(a), requires_grad=True) for a in (x, w, b))
        y, ty = F.conv2d(px, pw, pb, 1, 1), torch.nn.functional.conv2d(tx, tw, tb, 1, 1)
        np.testing.assert_allclose(y.detach().numpy(), ty.detach().numpy(), rtol=0, atol=2e-4)
        y.backward(pe.tensor(g))
        ty.backward(torch.tensor(g))
        np.testing.assert_allclose(px.grad.numpy(), tx.grad.numpy(), rtol=0, atol=2e-4 * np.sqrt(40 / 33))
        np.testing.assert_allclose(pw.grad.numpy(), tw.grad.numpy(), rtol=1e-4, atol=1e-3)
        np.testing.assert_allclose(pb.grad.numpy(), tb.grad.numpy(), rtol=1e-4, atol=1e-3)
    finally:
        _C.set_num_threads(before)


# Stride-2 rows of the GEMM path: pack_cols gathers every other input column and col2im scatters back into
# them (float on AVX-512 / AVX2: a vector of outputs per step, masked last steps); output widths from 1 to
# past two vectors, odd and even input widths, paddings 0 and 1. C * KH * KW > 288 keeps them off the
# direct kernels.
STRIDE2 = [  # N, C, H, W, O, KH, KW, padding
    (2, 33, 9, 2, 5, 3, 3, (1, 1)),     # Wo 1
    (3, 33, 11, 33, 7, 3, 3, (1, 1)),   # Wo 17: a vector and a tail of one
    (2, 40, 7, 64, 6, 3, 3, (1, 0)),    # Wo 31 without column padding
    (1, 33, 5, 71, 4, 3, 3, (1, 1)),    # Wo 36
    (2, 9, 6, 33, 3, 1, 1, (0, 0)),     # 1x1 stride 2: the last row read ends at the plane's last value
    (3, 80, 5, 18, 6, 2, 2, (0, 1)),    # even kernel: the taps' columns differ in parity
    # float on AVX-512: the phase planes (conv_phase.h)
    (5, 36, 13, 15, 30, 3, 3, (1, 1)),  # image groups with a short last one; O past the A panels
    (2, 40, 50, 47, 17, 3, 3, (1, 1)),  # one image a unit, two column blocks (L 600)
    (2, 34, 12, 11, 9, 5, 5, (2, 2)),   # 5x5, padding 2: row and column shifts -1 .. 1
    (3, 36, 9, 10, 8, 3, 4, (0, 2)),    # 3x4, no row padding, column padding 2
    (1, 40, 20, 21, 15, 4, 4, (1, 1)),  # one image: column blocks x A panels on the threads
]


@pytest.mark.parametrize("case", STRIDE2)
@pytest.mark.parametrize("dtype", DTYPES)
def test_conv2d_stride2_rows_match_twin(isa, threads, case, dtype):
    N, C, H, W, O, KH, KW, p = case
    rng = np.random.default_rng(sum(case[:7]))
    x, w, b = rand(rng, (N, C, H, W), dtype), rand(rng, (O, C, KH, KW), dtype), rand(rng, (O,), dtype)
    args = ((2, 2), p, (1, 1), 1)
    out = (_out(H, KH, 2, p[0], 1), _out(W, KW, 2, p[1], 1))
    tol = dict(rtol=2e-4, atol=2e-4) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-10)
    assert_close(cpu.conv2d_forward(x, w, b, *args, out), ref.conv2d_forward(x, w, b, *args, out), **tol)
    dy = rand(rng, (N, O) + out, dtype)
    assert_close(cpu.conv2d_backward_input(dy, w, (H, W), *args), ref.conv2d_backward_input(dy, w, (H, W), *args),
                 **tol)
    assert_close(cpu.conv2d_backward_weight(dy, x, (KH, KW), *args),
                 ref.conv2d_backward_weight(dy, x, (KH, KW), *args), **tol)


def _same_bits_on_1_2_3_threads(run):
    """run() (a tuple of float32 arrays) on 1, 2 and 3 threads (no adaptive thread count): asserts the same
    bits each time and returns the first results."""
    runs = results_on_threads(run)
    for other in runs[1:]:
        for a, b in zip(runs[0], other):
            assert np.array_equal(a.view(np.uint32), b.view(np.uint32))
    return runs[0]


@pytest.mark.parametrize("shape", [(1, 40, 31, 29, 20), (7, 36, 14, 14, 33), (9, 48, 56, 56, 16),
                                   (2, 64, 14, 14, 200), (3, 40, 9, 9, 45)])
def test_conv2d_phase_forward_bits_do_not_depend_on_threads(shape):
    """The stride-2 forward on phase planes: units of images on the threads, or one unit's column blocks x
    A panels when there are fewer units than threads; the same bits on 1, 2 and 3 threads (also where one
    thread count reads W's full panels in place, at most two column blocks per call, and another packs them:
    (7, 36, 14, 14, 33) gives units of 7, 4 and 3 images). The last two
    shapes give each thread a unit that needs every weight panel: the threads race to pack them (a panel
    claimed by another thread and not yet written is packed into the caller's own buffer)."""
    N, C, H, W, O = shape
    rng = np.random.default_rng(N)
    x, w, b = rand(rng, (N, C, H, W), np.float32), rand(rng, (O, C, 3, 3), np.float32), rand(rng, (O,), np.float32)
    args = ((2, 2), (1, 1), (1, 1), 1)
    out = (_out(H, 3, 2, 1, 1), _out(W, 3, 2, 1, 1))
    first = _same_bits_on_1_2_3_threads(lambda: (cpu.conv2d_forward(x, w, b, *args, out),))
    assert_close(first[0], ref.conv2d_forward(x, w, b, *args, out), rtol=2e-4, atol=2e-4)


PHASE_BIAS = [  # N, C, H, W, O, KH, KW, bias
    (8, 48, 28, 28, 20, 3, 3, True),   # 14x14 outputs, K 432 (two depth blocks): image groups of 3 on 1-3
                                       # threads, single images on 8 (main before the bias row: other bits on 8)
    (3, 96, 9, 12, 17, 2, 2, True),    # K = 384: the bias row opens a second depth block
    (2, 40, 11, 13, 30, 3, 3, False),  # no bias: no extra row
]


@pytest.mark.parametrize("case", PHASE_BIAS)
def test_conv2d_phase_forward_bias_row(case):
    """The stride-2 forward on phase planes adds the bias as one more depth row of its GEMM (ones in the packed
    columns, the bias as W's last column), so the sum does not depend on how images are grouped: the same bits
    on 1, 2, 3 and 8 threads (groups of 3 and of 1 images on the first shape), with and without a bias."""
    N, C, H, W, O, KH, KW, has_bias = case
    rng = np.random.default_rng(sum(case[:7]))
    x, w = rand(rng, (N, C, H, W), np.float32), rand(rng, (O, C, KH, KW), np.float32)
    b = rand(rng, (O,), np.float32) if has_bias else None
    args = ((2, 2), (1, 1), (1, 1), 1)
    out = (_out(H, KH, 2, 1, 1), _out(W, KW, 2, 1, 1))
    runs = results_on_threads(lambda: cpu.conv2d_forward(x, w, b, *args, out), counts=(1, 2, 3, 8))
    for other in runs[1:]:
        assert np.array_equal(runs[0].view(np.uint32), other.view(np.uint32))
    assert_close(runs[0], ref.conv2d_forward(x, w, b, *args, out), rtol=2e-4, atol=2e-4)


# The stride-2 gradients at odd sizes (float on AVX-512: the weight gradient on the phase planes,
# conv_phase_bwd.h): H, W odd and even, C and O not multiples of 16 (C past one and two 32-channel blocks),
# one image and three, image groups with a short last one (L 961: groups of 2).
PHASE_BWD = [  # N, C, H, W, O
    (1, 19, 15, 16, 23),
    (3, 37, 14, 13, 17),
    (3, 70, 9, 11, 30),
    (1, 45, 28, 27, 29),
    (3, 21, 61, 62, 13),
]


@pytest.mark.parametrize("case", PHASE_BWD)
def test_conv2d_stride2_gradients_match_twin(isa, threads, case):
    N, C, H, W, O = case
    rng = np.random.default_rng(sum(case))
    x, w = rand(rng, (N, C, H, W), np.float32), rand(rng, (O, C, 3, 3), np.float32)
    args = ((2, 2), (1, 1), (1, 1), 1)
    out = (_out(H, 3, 2, 1, 1), _out(W, 3, 2, 1, 1))
    dy = rand(rng, (N, O) + out, np.float32)
    tol = dict(rtol=2e-4, atol=2e-4)
    assert_close(cpu.conv2d_backward_input(dy, w, (H, W), *args), ref.conv2d_backward_input(dy, w, (H, W), *args),
                 **tol)
    assert_close(cpu.conv2d_backward_weight(dy, x, (3, 3), *args), ref.conv2d_backward_weight(dy, x, (3, 3), *args),
                 **tol)


@pytest.mark.parametrize("shape", [(1, 40, 31, 29, 20), (7, 36, 14, 14, 33), (3, 70, 57, 56, 16),
                                   (9, 40, 56, 56, 24)])
def test_conv2d_stride2_gradient_bits_do_not_depend_on_threads(shape):
    """The stride-2 gradients (the weight gradient on phase planes: output tiles on the threads, each summed
    over the same depth blocks in the same order; with several image groups, parts of the groups each on one
    thread, summed in part order: (3, 70, 57, 56, 16) two parts of one group, (9, 40, 56, 56, 24) groups of 2
    images in 4 parts, the last of two groups): the same bits on 1, 2 and 3 threads."""
    N, C, H, W, O = shape
    rng = np.random.default_rng(N + 1)
    x, w = rand(rng, (N, C, H, W), np.float32), rand(rng, (O, C, 3, 3), np.float32)
    args = ((2, 2), (1, 1), (1, 1), 1)
    dy = rand(rng, (N, O, _out(H, 3, 2, 1, 1), _out(W, 3, 2, 1, 1)), np.float32)
    first = _same_bits_on_1_2_3_threads(lambda: (cpu.conv2d_backward_input(dy, w, (H, W), *args),
                                                 cpu.conv2d_backward_weight(dy, x, (3, 3), *args)))
    assert_close(first[1], ref.conv2d_backward_weight(dy, x, (3, 3), *args), rtol=2e-4, atol=2e-4)


def test_conv2d_gemm_path_bits_do_not_depend_on_threads():
    """The GEMM path's thread schedules: image groups re-balanced for the thread count (forward and input
    gradient: 3 groups of 3 images on 1 or 3 threads, 4 of 2 on 2) and the weight gradient's chunks of
    images, each summed into its own dW and added in chunk order (4 chunks of 2 images: at least 4 where the
    batch allows). Same bits on 1, 2 and 3 threads, and the twin's values."""
    rng = np.random.default_rng(5)
    N, C, H, O = 8, 40, 27, 24
    x, w = rand(rng, (N, C, H, H), np.float32), rand(rng, (O, C, 3, 3), np.float32)
    dy = rand(rng, (N, O, 14, 14), np.float32)
    args = ((2, 2), (1, 1), (1, 1), 1)
    before, adapt, tile = _C.num_threads(), _C.adapt_threads(), _C.conv_tile()
    _C.set_adapt_threads(False)
    try:
        for t in (tile, 1 << 14):
            _C.set_conv_tile(t)
            runs = []
            for n in (1, 2, 3):
                _C.set_num_threads(n)
                runs.append((cpu.conv2d_forward(x, w, None, *args, (14, 14)),
                             cpu.conv2d_backward_input(dy, w, (H, H), *args),
                             cpu.conv2d_backward_weight(dy, x, (3, 3), *args)))
            for other in runs[1:]:
                for a, b in zip(runs[0], other):
                    assert np.array_equal(a.view(np.uint32), b.view(np.uint32))
            assert_close(runs[0][2], ref.conv2d_backward_weight(dy, x, (3, 3), *args), rtol=2e-4, atol=2e-4)
    finally:
        _C.set_conv_tile(tile)
        _C.set_num_threads(before)
        _C.set_adapt_threads(adapt)



@pytest.mark.parametrize("N", [8, 5, 1])
def test_conv2d_pointwise_s2_wgrad_chunks_thread_bits(N):
    """1x1 stride-2 weight gradient (ResNet's downsampling shortcut): whole images side by side, in 4 chunks
    of ceil(N / 4) images where the batch has 4 (8: 4 x 2; 5: 3 x 2 - 1; 1: one), each on one thread, added
    in chunk order: the same bits on 1, 2 and 3 threads, and the twin's values."""
    rng = np.random.default_rng(N)
    x, dy = rand(rng, (N, 24, 15, 15), np.float32), rand(rng, (N, 20, 8, 8), np.float32)
    args = ((2, 2), (0, 0), (1, 1), 1)
    first = _same_bits_on_1_2_3_threads(lambda: (cpu.conv2d_backward_weight(dy, x, (1, 1), *args),))
    assert_close(first[0], ref.conv2d_backward_weight(dy.astype(np.float64), x.astype(np.float64), (1, 1), *args),
                 rtol=1e-5, atol=1e-5)


FUSED = [  # N, C, H, W, KH, KW, stride, padding, dilation: depthwise (groups = C = O)
    (2, 8, 9, 13, 3, 3, (1, 1), (1, 1), (1, 1)),     # the fused backward's smallest channel count
    (1, 11, 7, 37, 3, 3, (1, 1), (1, 1), (1, 1)),    # N = 1, prime C, four vectors a step and a tail
    (3, 13, 11, 17, 3, 3, (2, 2), (1, 1), (1, 1)),   # stride 2, odd sizes
    (2, 9, 8, 21, 5, 3, (1, 2), (2, 0), (2, 1)),     # strided, dilated, 5 x 3: per-plane weight sums
    (2, 10, 6, 9, 3, 3, (3, 2), (5, 0), (2, 1)),     # padding past d (K - 1): dx crops dy
    (2, 8, 5, 6, 7, 7, (1, 1), (3, 3), (1, 1)),      # 49 taps: not fused, the passes apart
    (3, 7, 9, 10, 3, 3, (1, 1), (1, 1), (1, 1)),     # C < 8: not fused
    (2, 1, 5, 7, 3, 3, (1, 1), (1, 1), (1, 1)),      # C = 1
]


@pytest.mark.parametrize("case", FUSED)
@pytest.mark.parametrize("dtype", DTYPES)
def test_conv2d_backward_matches_twin(isa, threads, case, dtype):
    """conv2d_backward (the depthwise passes fused in one sweep over dy) against its twin, every subset of
    the gradients; dw the same bits as conv2d_backward_weight."""
    N, C, H, W, KH, KW, s, p, d = case
    rng = np.random.default_rng(sum(case[:6]))
    x, w = rand(rng, (N, C, H, W), dtype), rand(rng, (C, 1, KH, KW), dtype)
    out = (_out(H, KH, s[0], p[0], d[0]), _out(W, KW, s[1], p[1], d[1]))
    dy = rand(rng, (N, C) + out, dtype)
    args = (s, p, d, C)
    tol = dict(rtol=2e-4, atol=2e-4) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-10)
    want = ref.conv2d_backward(dy, x, w, (True, True, True), *args)
    for needs in ((True, True, True), (True, False, False), (False, True, False), (False, False, True),
                  (False, True, True)):
        got = cpu.conv2d_backward(dy, x, w, needs, *args)
        for g, r, n in zip(got, want, needs):
            assert (g is None) == (not n)
            if n:
                assert g.shape == r.shape and g.dtype == dtype
                assert_close(g, r, **tol)
        if needs[1]:
            np.testing.assert_array_equal(got[1], cpu.conv2d_backward_weight(dy, x, (KH, KW), *args))


def test_conv2d_backward_fused_bits_do_not_depend_on_threads():
    """The fused depthwise backward: one channel a unit, its weight and bias sums over the batch in order on
    one thread: the same bits on 1, 2 and 3 threads."""
    rng = np.random.default_rng(3)
    N, C, H, W = 3, 37, 23, 19
    x, w = rand(rng, (N, C, H, W), np.float32), rand(rng, (C, 1, 3, 3), np.float32)
    dy = rand(rng, (N, C, H, W), np.float32)
    args = ((1, 1), (1, 1), (1, 1), C)
    first = _same_bits_on_1_2_3_threads(lambda: cpu.conv2d_backward(dy, x, w, (True, True, True), *args))
    for g, r in zip(first, ref.conv2d_backward(dy, x, w, (True, True, True), *args)):
        assert_close(g, r, rtol=2e-4, atol=2e-4)


@pytest.mark.parametrize("case", [(1, 3, 7, 5, 1), (3, 5, 6, 9, 2), (2, 16, 13, 11, 2), (4, 1, 1, 3, 1)])
def test_conv2d_backward_dense_bias_gradient(case):
    """The dense (unfused) backward: db from the threaded plane sums then the images' sum, against the
    float64 twin, the same bits on 1, 2 and 3 threads (N, O, H, W, stride: O = 1, H = W = 1, odd sizes)."""
    N, O, H, W, s = case
    rng = np.random.default_rng(sum(case))
    C = 3
    x, w = rand(rng, (N, C, H, W), np.float32), rand(rng, (O, C, 3, 3), np.float32)
    out = (_out(H, 3, s, 1, 1), _out(W, 3, s, 1, 1))
    dy = rand(rng, (N, O) + out, np.float32)
    args = ((s, s), (1, 1), (1, 1), 1)
    dx, dw, _ = cpu.conv2d_backward(dy, x, w, (False, False, True), *args)
    assert dx is None and dw is None
    (db,) = _same_bits_on_1_2_3_threads(lambda: cpu.conv2d_backward(dy, x, w, (False, False, True), *args)[2:])
    assert db.shape == (O,) and db.dtype == np.float32
    assert_close(db, dy.astype(np.float64).sum(axis=(0, 2, 3)), rtol=1e-6, atol=1e-6)


def test_conv2d_backward_bias_gradient_of_an_empty_batch():
    """No images (or no output positions): db is zeros of (O,), not a reshape error."""
    args = ((1, 1), (1, 1), (1, 1), 1)
    for N, H in ((0, 5), (2, 0)):
        x, w = np.ones((N, 3, H, 4), np.float32), np.ones((5, 3, 3, 3), np.float32)
        dy = np.ones((N, 5, H, 4), np.float32)
        db = cpu.conv2d_backward(dy, x, w, (False, False, True), *args)[2]
        assert db.shape == (5,) and db.dtype == np.float32 and not db.any()


# The direct 3x3 / 5x5 stride-1 / 2 weight gradient of few channels (dense_direct_backward_weight): odd O (a register
# tile of two output channels with one left), O and C of 1, rows shorter, equal to and longer than a vector
# (7, 16, 17, 33), padding 0, 1, 2 and unequal, chunks of images (N 9 with a large image), a batch of one.
WGRAD_K = [  # N, C, H, W, O, kernel, stride, padding (output rows of 13-16, 29-32 or 45-48 columns: the kernel
    # takes rows that fill >= 3/4 of a vector; narrower ones run the GEMM paths)
    (2, 3, 7, 15, 5, 3, 1, (1, 1)), (3, 16, 14, 14, 7, 3, 1, (1, 1)), (1, 1, 5, 17, 1, 3, 1, (1, 1)),
    (2, 5, 9, 33, 3, 3, 1, (0, 0)), (2, 4, 6, 12, 2, 3, 1, (2, 2)), (3, 2, 8, 30, 9, 3, 1, (0, 2)),
    (9, 8, 40, 47, 6, 3, 1, (1, 1)), (1, 32, 3, 13, 13, 3, 1, (1, 1)), (4, 3, 32, 32, 6, 5, 1, (0, 0)),
    (3, 6, 14, 13, 16, 5, 1, (2, 2)), (2, 1, 5, 21, 3, 5, 1, (4, 1)), (1, 7, 9, 26, 5, 5, 1, (1, 3)),
    (2, 3, 7, 5, 5, 3, 1, (1, 1)),  # a row of 5: the GEMM path
    # stride 2: even and odd sizes (the last row / column of x unread), 5x5
    (3, 12, 32, 32, 5, 3, 2, (1, 1)), (2, 3, 9, 59, 4, 3, 2, (1, 1)), (2, 5, 8, 25, 3, 3, 2, (0, 2)),
    (5, 8, 28, 28, 16, 3, 2, (1, 1)), (2, 4, 13, 29, 3, 5, 2, (2, 2)), (1, 2, 6, 53, 7, 5, 2, (0, 4)),
]


@pytest.mark.parametrize("case", WGRAD_K)
@pytest.mark.parametrize("dtype", DTYPES)
def test_conv2d_backward_weight_direct_kxk(isa, case, dtype):
    """Against the float64 twin under every ISA, and the same bits on 1, 2 and 3 threads."""
    N, C, H, W, O, k, st, (ph, pw) = case
    rng = np.random.default_rng(N * 1000 + C * 100 + O)
    x = rand(rng, (N, C, H, W), dtype)
    dy = rand(rng, (N, O, _out(H, k, st, ph, 1), _out(W, k, st, pw, 1)), dtype)
    args = ((k, k), (st, st), (ph, pw), (1, 1), 1)
    want = ref.conv2d_backward_weight(dy.astype(np.float64), x.astype(np.float64), *args)
    runs = results_on_threads(lambda: (cpu.conv2d_backward_weight(dy, x, *args),))
    got = runs[0][0]
    for other in runs[1:]:
        assert np.array_equal(got, other[0])
    tol = 2e-5 if dtype == np.float32 else 1e-12
    assert_close(got, want, rtol=tol, atol=tol * np.abs(want).max())


def test_conv2d_backward_weight_direct_switch():
    """_C.set_conv_direct_wgrad(False) sends the direct kernel's shapes to the GEMM paths (for A/B runs): the two
    agree within float32 rounding, and the switch is restored."""
    rng = np.random.default_rng(8)
    x, dy = rand(rng, (3, 8, 14, 14), np.float32), rand(rng, (3, 16, 14, 14), np.float32)
    args = ((3, 3), (1, 1), (1, 1), (1, 1), 1)
    assert _C.conv_direct_wgrad()
    direct = cpu.conv2d_backward_weight(dy, x, *args)
    _C.set_conv_direct_wgrad(False)
    try:
        gemm = cpu.conv2d_backward_weight(dy, x, *args)
    finally:
        _C.set_conv_direct_wgrad(True)
    assert not np.array_equal(direct, gemm)  # two different summation orders ran
    assert_close(direct, gemm, rtol=2e-5, atol=2e-5)


def test_conv2d_backward_weight_direct_kxk_non_finite():
    """A NaN or inf in x or dy takes the GEMM path, which forms exactly the twin's products (the direct kernel
    would add dy * x past the row ends): NaN and inf land where the twin puts them."""
    rng = np.random.default_rng(5)
    x, dy = rand(rng, (2, 4, 9, 10), np.float32), rand(rng, (2, 6, 9, 10), np.float32)
    x[1, 2, 0, 9], dy[0, 3, 8, 0] = np.inf, np.nan
    args = ((3, 3), (1, 1), (1, 1), (1, 1), 1)
    want = ref.conv2d_backward_weight(dy.astype(np.float64), x.astype(np.float64), *args)
    got = cpu.conv2d_backward_weight(dy, x, *args)
    assert np.array_equal(np.isnan(got), np.isnan(want)) and np.array_equal(np.isinf(got), np.isinf(want))
    ok = np.isfinite(want)
    assert_close(got[ok], want[ok], rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conv2d_bias_grad_matches_its_twin(dtype):
    """conv2d_bias_grad (Conv's dense backward and ConvTranspose's bias): against the float64 twin on odd
    shapes, a non-contiguous dy (a transposed view), the same bits on 1, 2 and 3 threads."""
    rng = np.random.default_rng(11)
    for shape in ((1, 1, 1, 1), (3, 7, 5, 13), (2, 17, 1, 31), (5, 3, 11, 2)):
        dy = rand(rng, shape, dtype)
        tol = 1e-6 if dtype == np.float32 else 1e-12
        want = ref.conv2d_bias_grad(dy.astype(np.float64))
        (db,) = _same_bits_on_1_2_3_threads(lambda: (cpu.conv2d_bias_grad(dy),))
        assert db.shape == shape[1:2] and db.dtype == dtype
        assert_close(db, want, rtol=tol, atol=tol)
        swapped = dy.transpose(0, 1, 3, 2)  # non-contiguous
        assert_close(cpu.conv2d_bias_grad(swapped), want, rtol=tol, atol=tol)


def test_conv2d_backward_fused_checks_its_arguments():
    x, w = np.zeros((2, 8, 5, 5), np.float32), np.zeros((8, 1, 3, 3), np.float32)
    dy = np.zeros((2, 8, 5, 5), np.float32)
    args = ((1, 1), (1, 1), (1, 1), 8)
    with pytest.raises(ValueError, match="conv2d_backward_fused"):
        _C.conv2d_backward_fused(dy, x, w, *args, np.zeros((2, 8, 5, 4), np.float32), None, None)
    with pytest.raises(TypeError, match="conv2d_backward_fused"):
        _C.conv2d_backward_fused(dy, x, w, *args, None, np.zeros((8, 1, 3, 3), np.float64), None)
    with pytest.raises(ValueError, match="conv2d_backward_fused"):
        _C.conv2d_backward_fused(dy, x, w, *args, None, None, np.zeros(7, np.float32))
    with pytest.raises(TypeError, match="conv2d_backward_fused"):
        _C.conv2d_backward_fused(dy, x, w, *args, None, None, [0.0] * 8)
