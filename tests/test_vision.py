"""The vision layers (issue 15 item 1) against PyTorch: convolution, transposed convolution, pooling, batch and
group norm, channel dropout, interpolation, unfold/fold; forward and gradients on random data with odd sizes,
strides, paddings, dilations and groups, non-contiguous inputs, float32 and float64; state dicts from torch."""
import numpy as np
import pytest
import torch

import pyengine as pe
import pyengine.nn as nn
import pyengine.nn.functional as F

TF = torch.nn.functional


def _arr(shape, dtype=np.float32, seed=0, noncontig=False):
    r = np.random.default_rng(seed)
    if noncontig:  # the same values, as a transposed view
        a = r.standard_normal(shape[:-2] + (shape[-1], shape[-2])).astype(dtype)
        return np.swapaxes(a, -1, -2)
    return r.standard_normal(shape).astype(dtype)


def _compare(pe_fn, torch_fn, arrays, tol=None, grad=True):
    """pe_fn(*tensors) vs torch_fn(*tensors): outputs, and the gradients of sum(out * w) for a fixed w."""
    tol = tol or (2e-4 if arrays[0].dtype == np.float32 else 1e-10)
    ps = [None if a is None else pe.tensor(a, requires_grad=grad) for a in arrays]
    ts = [None if a is None else torch.tensor(np.ascontiguousarray(a), requires_grad=grad) for a in arrays]
    if grad:  # keep the original strides on the pyengine side
        ps = [None if a is None else pe.from_numpy(a).requires_grad_() for a in arrays]
    y, ty = pe_fn(*ps), torch_fn(*ts)
    np.testing.assert_allclose(y.detach().numpy(), ty.detach().numpy(), rtol=tol, atol=tol)
    if not grad:
        return y
    w = np.random.default_rng(7).standard_normal(tuple(ty.shape)).astype(arrays[0].dtype)
    (y * pe.tensor(w)).sum().backward()
    (ty * torch.tensor(w)).sum().backward()
    for p, t in zip(ps, ts):
        if p is not None:
            np.testing.assert_allclose(p.grad.numpy(), t.grad.numpy(), rtol=tol * 5, atol=tol * 5)
    return y


CONV2D = [  # (N, C, H, W), (O, KH, KW), stride, padding, dilation, groups
    ((2, 3, 7, 9), (5, 3, 3), 1, 0, 1, 1),
    ((1, 4, 8, 5), (6, 3, 2), (2, 1), (1, 2), (2, 1), 2),
    ((3, 6, 11, 7), (6, 3, 3), 2, 1, 1, 6),          # depthwise
    ((2, 5, 9, 70), (5, 3, 3), 1, 1, 1, 5),          # depthwise 3x3, rows of several vectors
    ((3, 7, 13, 19), (7, 3, 3), 2, 1, 1, 7),         # depthwise stride 2, odd sizes
    ((2, 4, 12, 10), (4, 5, 3), (2, 1), (2, 1), (1, 2), 4),  # depthwise 5x3, strided and dilated
    ((2, 11, 9, 13), (11, 3, 3), 1, 1, 1, 11),      # depthwise, C >= 8: the fused backward, prime C
    ((1, 8, 7, 5), (8, 3, 3), 2, 1, 1, 8),           # the fused backward, N = 1, stride 2
    ((2, 9, 8, 11), (9, 5, 3), (1, 2), 2, (2, 1), 9),  # the fused backward, 5x3 dilated (per-plane dw sums)
    ((4, 1, 11, 13), (6, 3, 3), 1, 1, 1, 1),         # one input channel: the direct weight gradient
    ((2, 3, 9, 10), (6, 3, 3), 2, 1, 1, 3),          # two outputs per input channel
    ((3, 16, 14, 14), (32, 3, 3), 1, 1, 1, 1),       # few input channels: the direct dense tiles
    ((2, 5, 9, 21), (11, 3, 2), (2, 1), 1, (1, 2), 1),  # direct dense: strided, dilated, odd sizes
    ((2, 4, 5, 6), (8, 1, 1), 1, 0, 1, 1),           # 1x1
    ((2, 2, 6, 7), (3, 4, 3), 1, "same", (1, 2), 1),   # even kernel: one more after
    ((2, 2, 6, 7), (3, 3, 3), 3, "valid", 1, 1),
    ((1, 3, 13, 13), (4, 7, 7), 2, 3, 1, 1),
]


@pytest.mark.parametrize("case", CONV2D)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conv2d(case, dtype):
    (N, C, H, W), (O, KH, KW), s, p, d, g = case
    x, w, b = _arr((N, C, H, W), dtype, 1, noncontig=True), _arr((O, C // g, KH, KW), dtype, 2), _arr((O,), dtype, 3)
    _compare(lambda x, w, b: F.conv2d(x, w, b, s, p, d, g), lambda x, w, b: TF.conv2d(x, w, b, s, p, d, g), [x, w, b])


def test_depthwise_conv2d_grads_accumulate():
    """The fused depthwise backward's new arrays are adopted as .grad, then added into by a second backward
    (and a bias-free call fills dx and dw alone)."""
    x, w, b = _arr((2, 8, 6, 7), np.float32, 1), _arr((8, 1, 3, 3), np.float32, 2), _arr((8,), np.float32, 3)
    px, pw, pb = (pe.tensor(a, requires_grad=True) for a in (x, w, b))
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    for _ in range(2):
        (F.conv2d(px, pw, pb, 1, 1, 1, 8) ** 2).sum().backward()
        (TF.conv2d(tx, tw, tb, 1, 1, 1, 8) ** 2).sum().backward()
    F.conv2d(px, pw, None, 1, 1, 1, 8).sum().backward()
    TF.conv2d(tx, tw, None, 1, 1, 1, 8).sum().backward()
    for p, t in ((px, tx), (pw, tw), (pb, tb)):
        np.testing.assert_allclose(p.grad.numpy(), t.grad.numpy(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conv1d_unbatched_and_nobias(dtype):
    x, w = _arr((3, 4, 10), dtype), _arr((6, 2, 3), dtype, 2)
    _compare(lambda x, w: F.conv1d(x, w, None, 2, 1, 2, 2), lambda x, w: TF.conv1d(x, w, None, 2, 1, 2, 2), [x, w])
    _compare(lambda x, w: F.conv1d(x, w, padding="same"), lambda x, w: TF.conv1d(x, w, padding="same"),
             [_arr((4, 9), dtype), _arr((5, 4, 4), dtype, 3)])
    _compare(lambda x, w: F.conv2d(x, w), lambda x, w: TF.conv2d(x, w), [_arr((3, 5, 6), dtype), _arr((2, 3, 2, 2), dtype)])


CONVT = [  # (N, Cin, H, W), (Cout / g, KH, KW), stride, padding, output_padding, groups, dilation
    ((2, 4, 5, 6), (3, 3, 3), 2, 1, 1, 1, 1),
    ((1, 4, 3, 4), (2, 2, 3), (1, 2), (0, 1), (0, 1), 2, (2, 1)),
    ((2, 3, 4, 4), (1, 4, 4), 2, 1, 0, 3, 1),
]


@pytest.mark.parametrize("case", CONVT)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conv_transpose2d(case, dtype):
    (N, C, H, W), (Og, KH, KW), s, p, op, g, d = case
    x, w, b = _arr((N, C, H, W), dtype, 1, True), _arr((C, Og, KH, KW), dtype, 2), _arr((Og * g,), dtype, 3)
    _compare(lambda x, w, b: F.conv_transpose2d(x, w, b, s, p, op, g, d),
             lambda x, w, b: TF.conv_transpose2d(x, w, b, s, p, op, g, d), [x, w, b])


def test_conv_transpose1d():
    x, w = _arr((2, 4, 7)), _arr((4, 3, 3), seed=2)
    _compare(lambda x, w: F.conv_transpose1d(x, w, None, 2, 1, 1), lambda x, w: TF.conv_transpose1d(x, w, None, 2, 1, 1),
             [x, w])


POOL = [  # kernel, stride, padding, dilation, ceil_mode
    (2, None, 0, 1, False), (3, 2, 1, 1, True), ((3, 2), (2, 1), (1, 0), (1, 2), False), (3, 3, 1, 2, True),
]


@pytest.mark.parametrize("case", POOL)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_max_pool2d(case, dtype):
    k, s, p, d, c = case
    x = _arr((2, 3, 9, 8), dtype, noncontig=True)
    y = _compare(lambda x: F.max_pool2d(x, k, s, p, d, c), lambda x: TF.max_pool2d(x, k, s, p, d, c), [x])
    _, idx = F.max_pool2d(pe.tensor(x), k, s, p, d, c, return_indices=True)
    _, tidx = TF.max_pool2d(torch.tensor(x), k, s, p, d, c, return_indices=True)
    np.testing.assert_array_equal(idx.numpy(), tidx.numpy())
    assert idx.dtype == pe.int64 and tuple(y.shape) == tuple(idx.shape)


def test_max_pool1d_and_modules():
    x = _arr((2, 3, 11))
    _compare(lambda x: F.max_pool1d(x, 3, 2, 1, ceil_mode=True), lambda x: TF.max_pool1d(x, 3, 2, 1, ceil_mode=True), [x])
    m, tm = nn.MaxPool2d(3, 2, 1, return_indices=True), torch.nn.MaxPool2d(3, 2, 1, return_indices=True)
    x2 = _arr((3, 7, 6))
    (y, i), (ty, ti) = m(pe.tensor(x2)), tm(torch.tensor(x2))
    np.testing.assert_array_equal(i.numpy(), ti.numpy())
    np.testing.assert_allclose(y.numpy(), ty.numpy())
    _compare(lambda x: nn.MaxPool1d(2)(x), lambda x: torch.nn.MaxPool1d(2)(x), [x])


@pytest.mark.parametrize("kw", [dict(kernel_size=2), dict(kernel_size=3, stride=2, padding=1),
                                dict(kernel_size=3, stride=2, padding=1, count_include_pad=False),
                                dict(kernel_size=(3, 2), stride=2, padding=(1, 1), ceil_mode=True),
                                dict(kernel_size=3, stride=2, padding=1, ceil_mode=True, count_include_pad=False),
                                dict(kernel_size=2, divisor_override=3)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_avg_pool2d(kw, dtype):
    x = _arr((2, 3, 9, 7), dtype, noncontig=True)
    _compare(lambda x: F.avg_pool2d(x, **kw), lambda x: TF.avg_pool2d(x, **kw), [x])
    _compare(lambda x: nn.AvgPool2d(**kw)(x), lambda x: torch.nn.AvgPool2d(**kw)(x), [x])


def test_avg_pool1d():
    x = _arr((2, 3, 10))
    _compare(lambda x: F.avg_pool1d(x, 3, 2, 1), lambda x: TF.avg_pool1d(x, 3, 2, 1), [x])


@pytest.mark.parametrize("size", [1, 3, (2, 5), (None, 4), (7, 6)])
def test_adaptive_pools(size):
    x = _arr((2, 3, 7, 9), np.float64, noncontig=True)
    _compare(lambda x: F.adaptive_avg_pool2d(x, size), lambda x: TF.adaptive_avg_pool2d(x, size), [x])
    _compare(lambda x: nn.AdaptiveMaxPool2d(size)(x), lambda x: torch.nn.AdaptiveMaxPool2d(size)(x), [x])
    _compare(lambda x: nn.AdaptiveAvgPool1d(4)(x[0]), lambda x: torch.nn.AdaptiveAvgPool1d(4)(x[0]), [x])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(4, 3), (5, 3, 7), (3, 4, 5, 6)])
def test_batch_norm_functional(dtype, shape):
    C = shape[1]
    x, w, b = _arr(shape, dtype), _arr((C,), dtype, 2), _arr((C,), dtype, 3)
    rm, rv = np.zeros(C, dtype), np.ones(C, dtype)
    prm, prv, trm, trv = pe.tensor(rm), pe.tensor(rv), torch.tensor(rm), torch.tensor(rv)
    _compare(lambda x, w, b: F.batch_norm(x, prm, prv, w, b, True, 0.3, 1e-3),
             lambda x, w, b: TF.batch_norm(x, trm, trv, w, b, True, 0.3, 1e-3), [x, w, b])
    np.testing.assert_allclose(prm.numpy(), trm.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(prv.numpy(), trv.numpy(), rtol=1e-5, atol=1e-6)
    _compare(lambda x, w, b: F.batch_norm(x, prm, prv, w, b, False),
             lambda x, w, b: TF.batch_norm(x, trm, trv, w, b, False), [x, w, b])
    _compare(lambda x: F.batch_norm(x, None, None, training=True), lambda x: TF.batch_norm(x, None, None, training=True),
             [x])


@pytest.mark.parametrize("momentum", [0.1, None])
@pytest.mark.parametrize("affine,track", [(True, True), (False, True), (True, False)])
def test_batch_norm_modules(momentum, affine, track):
    for cls, tcls, shape in ((nn.BatchNorm2d, torch.nn.BatchNorm2d, (4, 3, 5, 2)),
                             (nn.BatchNorm1d, torch.nn.BatchNorm1d, (6, 3)), (nn.BatchNorm1d, torch.nn.BatchNorm1d,
                                                                               (2, 3, 4))):
        m, tm = cls(3, momentum=momentum, affine=affine, track_running_stats=track), \
            tcls(3, momentum=momentum, affine=affine, track_running_stats=track)
        for step in range(3):
            x = _arr(shape, seed=step)
            _compare(m, tm, [x])
        sd, tsd = m.state_dict(), tm.state_dict()
        assert list(sd) == list(tsd)
        for k in sd:
            np.testing.assert_allclose(sd[k].numpy(), tsd[k].numpy(), rtol=1e-5, atol=1e-6)
        m.eval(), tm.eval()
        _compare(m, tm, [_arr(shape, seed=9)])


def test_state_dicts_load_from_torch():
    torch.manual_seed(0)
    tnet = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
                               torch.nn.MaxPool2d(2), torch.nn.Conv2d(8, 8, 3, groups=8, bias=False),
                               torch.nn.GroupNorm(2, 8), torch.nn.ConvTranspose2d(8, 4, 2, stride=2),
                               torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 2))
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Conv2d(8, 8, 3, groups=8, bias=False), nn.GroupNorm(2, 8),
                        nn.ConvTranspose2d(8, 4, 2, stride=2), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
    tnet.train()(torch.randn(4, 3, 10, 10))   # running statistics that are not the defaults
    tsd = tnet.state_dict()
    assert [(k, tuple(v.shape)) for k, v in net.state_dict().items()] == [(k, tuple(v.shape)) for k, v in tsd.items()]
    net.load_state_dict({k: pe.tensor(v.numpy()) for k, v in tsd.items()})
    net.eval(), tnet.eval()
    x = _arr((2, 3, 10, 10))
    _compare(net, tnet, [x])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_group_norm(dtype):
    x, w, b = _arr((3, 6, 4, 5), dtype, noncontig=True), _arr((6,), dtype, 2), _arr((6,), dtype, 3)
    _compare(lambda x, w, b: F.group_norm(x, 3, w, b, 1e-4), lambda x, w, b: TF.group_norm(x, 3, w, b, 1e-4), [x, w, b])
    _compare(lambda x: nn.GroupNorm(2, 6, affine=False)(x), lambda x: torch.nn.GroupNorm(2, 6, affine=False)(x), [x])


def test_channel_dropout():
    pe.manual_seed(3)
    x = pe.ones(8, 16, 5, 4, requires_grad=True)
    y = F.dropout2d(x, 0.5)
    per = y.detach().numpy().reshape(8, 16, -1)
    assert np.all((per == 0).all(-1) | (per == 2).all(-1))          # whole channels, scaled by 1 / (1 - p)
    assert 0.2 < (per[:, :, 0] == 0).mean() < 0.8
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), y.detach().numpy())
    assert F.dropout2d(x, 0.5, training=False) is x
    d1 = nn.Dropout1d(0.3)(pe.ones(4, 6, 7)).numpy()
    assert np.all((d1 == 0).all(-1) | np.isclose(d1, 1 / 0.7).all(-1))
    m = nn.Dropout2d(0.9).eval()
    assert m(x) is x
    assert (F.dropout2d(x, 1.0).detach().numpy() == 0).all()


@pytest.mark.parametrize("kw", [dict(scale_factor=2), dict(size=(5, 7)), dict(scale_factor=(1.5, 0.7)),
                                dict(size=(4, 9), mode="bilinear", align_corners=False),
                                dict(size=(4, 9), mode="bilinear", align_corners=True),
                                dict(scale_factor=2.5, mode="bilinear"),
                                dict(scale_factor=0.5, mode="bilinear", align_corners=True)])
def test_interpolate(kw):
    x = _arr((2, 3, 6, 5), np.float64, noncontig=True)
    _compare(lambda x: F.interpolate(x, **kw), lambda x: TF.interpolate(x, **kw), [x])
    _compare(lambda x: nn.Upsample(**kw)(x), lambda x: torch.nn.Upsample(**kw)(x), [x])


def test_interpolate_linear_1d():
    x = _arr((2, 3, 7), np.float64)
    _compare(lambda x: F.interpolate(x, size=11, mode="linear"), lambda x: TF.interpolate(x, size=11, mode="linear"), [x])
    _compare(lambda x: F.interpolate(x, scale_factor=3), lambda x: TF.interpolate(x, scale_factor=3), [x])


@pytest.mark.parametrize("kw", [dict(kernel_size=2), dict(kernel_size=(3, 2), stride=2, padding=1, dilation=(1, 2))])
def test_unfold_fold(kw):
    x = _arr((2, 3, 7, 8), np.float64, noncontig=True)
    cols = _compare(lambda x: F.unfold(x, **kw), lambda x: TF.unfold(x, **kw), [x])
    c = cols.detach().numpy()
    _compare(lambda c: F.fold(c, (7, 8), **kw), lambda c: TF.fold(c, (7, 8), **kw), [c])
    _compare(lambda c: nn.Fold((7, 8), **kw)(c), lambda c: torch.nn.Fold((7, 8), **kw)(c), [c])
    _compare(lambda x: nn.Unfold(**kw)(x), lambda x: torch.nn.Unfold(**kw)(x), [x])


@pytest.mark.parametrize("mode", ["zeros", "reflect", "replicate", "circular"])
def test_conv_modules_and_padding_modes(mode):
    torch.manual_seed(1)
    for tm, m in ((torch.nn.Conv2d(4, 6, 3, padding=1, padding_mode=mode, groups=2), None),
                  (torch.nn.Conv2d(4, 6, (2, 3), padding="same", padding_mode=mode), None),
                  (torch.nn.Conv1d(4, 6, 3, stride=2, padding=2, padding_mode=mode), None)):
        cls = nn.Conv1d if isinstance(tm, torch.nn.Conv1d) else nn.Conv2d
        m = cls(tm.in_channels, tm.out_channels, tm.kernel_size, tm.stride, tm.padding, tm.dilation, tm.groups,
                padding_mode=mode)
        m.load_state_dict({k: pe.tensor(v.numpy()) for k, v in tm.state_dict().items()})
        x = _arr((2, 4, 7) if cls is nn.Conv1d else (2, 4, 7, 6))
        _compare(m, tm, [x])


def test_conv_transpose_module_output_size():
    torch.manual_seed(2)
    tm = torch.nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, groups=2)
    m = nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, groups=2)
    m.load_state_dict({k: pe.tensor(v.numpy()) for k, v in tm.state_dict().items()})
    x = _arr((2, 4, 5, 5))
    _compare(lambda x: m(x, output_size=(10, 10)), lambda x: tm(x, output_size=(10, 10)), [x])
    assert tuple(m.weight.shape) == (4, 3, 3, 3)


def test_default_init_matches_torch_bounds():
    m = nn.Conv2d(8, 4, 3)
    bound = 1 / np.sqrt(8 * 9)
    assert np.abs(m.weight.detach().numpy()).max() <= bound and np.abs(m.bias.detach().numpy()).max() <= bound


def test_errors_name_the_op_and_shapes():
    x = pe.randn(2, 3, 8, 8)
    with pytest.raises(RuntimeError, match=r"conv2d: input \(2, 3, 8, 8\) and weight \(4, 2, 3, 3\)"):
        F.conv2d(x, pe.randn(4, 2, 3, 3))
    with pytest.raises(RuntimeError, match=r"conv2d: the kernel \(9, 9\)"):
        F.conv2d(x, pe.randn(4, 3, 9, 9))
    with pytest.raises(ValueError, match="conv2d: padding='same' is not supported for strided"):
        F.conv2d(x, pe.randn(4, 3, 3, 3), stride=2, padding="same")
    with pytest.raises(ValueError, match="conv1d: expected a 2-D .* or 3-D"):
        F.conv1d(x, pe.randn(4, 3, 3))
    with pytest.raises(TypeError, match="conv2d"):
        F.conv2d(x, pe.randn(4, 3, 3, 3).double())
    with pytest.raises(ValueError, match="max_pool2d: padding"):
        F.max_pool2d(x, 2, padding=2)
    with pytest.raises(RuntimeError, match="batch_norm: weight"):
        F.batch_norm(x, None, None, pe.ones(4), training=True)
    with pytest.raises(ValueError, match="batch_norm: expected more than 1 value per channel"):
        F.batch_norm(pe.randn(1, 3), None, None, training=True)
    with pytest.raises(RuntimeError, match="group_norm: expected the number of channels 3 to be divisible"):
        F.group_norm(x, 2)
    with pytest.raises(RuntimeError, match="fold: input"):
        F.fold(pe.randn(2, 12, 5), (4, 4), 2)
    with pytest.raises(ValueError, match="BatchNorm2d: expected 4D input"):
        nn.BatchNorm2d(3)(pe.randn(2, 3))
    with pytest.raises(ValueError, match="interpolate: exactly one of size and scale_factor"):
        F.interpolate(x)


def test_small_cnn_trains():
    """A small CNN learns to tell two patterns apart (the layers compose, gradients reach every parameter)."""
    pe.manual_seed(0)
    r = np.random.default_rng(0)
    X = r.standard_normal((32, 1, 8, 8)).astype(np.float32) * 0.3
    Y = np.arange(32) % 2
    X[Y == 1, 0, 2:6, 3:5] += 2.0
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
    opt = pe.optim.Adam(net.parameters(), lr=0.05)
    for _ in range(40):
        opt.zero_grad()
        loss = F.cross_entropy(net(pe.tensor(X)), pe.tensor(Y))
        loss.backward()
        opt.step()
    net.eval()
    acc = (net(pe.tensor(X)).argmax(1).numpy() == Y).mean()
    assert acc > 0.9, acc


def test_dropout2d_other_ranks_follow_pytorch():
    """PyTorch 2.x: a 3-D input gets one mask value per (n, c) (dropout1d's behaviour), a 2-D one is masked
    element-wise, each with a warning; 1-D is an error. A census program (MNIST RNN) passes 2-D input."""
    pe.manual_seed(0)
    with pytest.warns(UserWarning, match="3D input"):
        y = F.dropout2d(pe.ones(6, 7, 50), 0.5).numpy()
    assert ((y == 0) == (y[..., :1] == 0)).all() and 0.2 < (y == 0).mean() < 0.8
    assert len(np.unique((y[:, :, 0] == 0))) == 2  # masks differ between (n, c) pairs
    with pytest.warns(UserWarning, match="deprecated"):
        y = F.dropout2d(pe.ones(40, 50), 0.5).numpy()
    assert set(np.unique(y)) == {0.0, 2.0} and not ((y == 0) == (y[:, :1] == 0)).all()
    with pytest.raises(ValueError, match="dropout2d"):
        F.dropout2d(pe.ones(6), 0.5)
