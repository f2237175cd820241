"""Convolution: Conv2d forward+backward on ResNet-18's layer shapes at batch 8 (3x3 and 1x1, 56x56x64 down
to 7x7x512), a depthwise 3x3, and two small CNNs' training steps (one of them PyTorch's CIFAR-10 tutorial net);
pyengine vs PyTorch (oneDNN) in one process.
Extra memory: what pyengine's convolution kernels allocate beside their operands (bounded column tiles;
a whole-batch im2col is given for scale)."""
import numpy as np

import pyengine as pe
import pyengine.nn as nn
import pyengine.nn.functional as F
from pyengine.backend.cpu import conv as _cpu_conv

from ..common import Threads, check_close, timeit_pair, torch

# (C, H, O, kernel, stride, groups): ResNet-18's convolutions after the stem, and a depthwise 3x3
SHAPES = [
    (64, 56, 64, 3, 1, 1), (64, 56, 128, 3, 2, 1), (64, 56, 128, 1, 2, 1), (128, 28, 128, 3, 1, 1),
    (128, 28, 256, 3, 2, 1), (128, 28, 256, 1, 2, 1), (256, 14, 256, 3, 1, 1), (256, 14, 512, 3, 2, 1),
    (256, 14, 512, 1, 2, 1), (512, 7, 512, 3, 1, 1), (128, 56, 128, 3, 1, 128),
]


def _mib(b):
    return f"{b / 2 ** 20:.1f} MiB"


def _conv_case(res, N, C, H, O, k, s, g, threads, quick):
    rng = np.random.default_rng(0)
    p = k // 2
    x = rng.standard_normal((N, C, H, H)).astype(np.float32)
    w = (rng.standard_normal((O, C // g, k, k)) / np.sqrt(C // g * k * k)).astype(np.float32)
    b = rng.standard_normal(O).astype(np.float32)
    Ho = (H + 2 * p - k) // s + 1
    gy = rng.standard_normal((N, O, Ho, Ho)).astype(np.float32)
    tx, tw, tb, tg = pe.tensor(x, requires_grad=True), pe.tensor(w, requires_grad=True), \
        pe.tensor(b, requires_grad=True), pe.tensor(gy)

    def ours():
        tx.grad = tw.grad = tb.grad = None
        F.conv2d(tx, tw, tb, s, p, 1, g).backward(tg)

    rep = 3 if quick else 7
    with Threads(threads):
        ws = _cpu_conv.conv2d_workspace_bytes((N, C, H, H), (O, C // g, k, k), (Ho, Ho), (s, s), (p, p), (1, 1), g, 4)
        theirs = None
        if torch is not None:
            X, W, B = (torch.from_numpy(a.copy()).requires_grad_() for a in (x, w, b))
            G = torch.from_numpy(gy)
            with pe.no_grad():
                mine = F.conv2d(pe.tensor(x), pe.tensor(w), pe.tensor(b), s, p, 1, g).numpy()
            with torch.no_grad():
                check_close("conv2d", mine, torch.nn.functional.conv2d(X, W, B, s, p, 1, g).numpy(), 1e-3, 1e-3)

            def theirs():
                X.grad = W.grad = B.grad = None
                torch.nn.functional.conv2d(X, W, B, s, p, 1, g).backward(G)
        # both engines in alternating rounds: a neighbour that slows the VM for a while hits both
        t_ours, t_torch = timeit_pair(ours, theirs, repeat=rep)
    flops = 3 * 2.0 * N * O * Ho * Ho * (C // g) * k * k
    im2col = N * (C // g) * k * k * Ho * Ho * 4 * (g if g > 1 else 1)
    name = f"conv {k}x{k}{' dw' if g > 1 else ''} s{s} {C}->{O} {H}x{H} N{N} fwd+bwd"
    res.add("conv", name, threads, t_ours, None, t_torch, work=flops,
            extra=f"extra memory {_mib(ws)} (batch im2col would be {_mib(im2col)})")


def _cnn(mod):
    """conv(1->16) bn relu pool, conv(16->32) bn relu pool, linear(32*7*7 -> 10), on (N, 1, 28, 28)."""
    return mod.Sequential(mod.Conv2d(1, 16, 3, padding=1), mod.BatchNorm2d(16), mod.ReLU(), mod.MaxPool2d(2),
                          mod.Conv2d(16, 32, 3, padding=1), mod.BatchNorm2d(32), mod.ReLU(), mod.MaxPool2d(2),
                          mod.Flatten(), mod.Linear(32 * 7 * 7, 10))


def _lenet(mod):
    """PyTorch's CIFAR-10 tutorial net on (N, 3, 32, 32): conv(3->6, 5) relu pool, conv(6->16, 5) relu pool,
    linear 400 -> 120 -> 84 -> 10 with relus."""
    return mod.Sequential(mod.Conv2d(3, 6, 5), mod.ReLU(), mod.MaxPool2d(2), mod.Conv2d(6, 16, 5), mod.ReLU(),
                          mod.MaxPool2d(2), mod.Flatten(), mod.Linear(16 * 5 * 5, 120), mod.ReLU(),
                          mod.Linear(120, 84), mod.ReLU(), mod.Linear(84, 10))


# (name, model builder, input shape without the batch, batch)
TRAIN_CASES = [
    ("small CNN train step (2 conv+bn+pool, linear) N32 28x28", _cnn, (1, 28, 28), 32),
    ("LeNet train step (PyTorch's CIFAR-10 tutorial net) N64 32x32", _lenet, (3, 32, 32), 64),
]


def _train_case(res, threads, quick, name, build, shape, N):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((N,) + shape).astype(np.float32)
    y = rng.integers(0, 10, N)
    net = build(nn)
    opt = pe.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    X, Y = pe.tensor(x), pe.tensor(y)

    def ours():
        opt.zero_grad()
        F.cross_entropy(net(X), Y).backward()
        opt.step()

    rep = 3 if quick else 7
    with Threads(threads):
        theirs = None
        if torch is not None:
            tnet = build(torch.nn)
            topt = torch.optim.SGD(tnet.parameters(), lr=0.01, momentum=0.9)
            TX, TY = torch.from_numpy(x), torch.from_numpy(y)

            def theirs():
                topt.zero_grad()
                torch.nn.functional.cross_entropy(tnet(TX), TY).backward()
                topt.step()
        t_ours, t_torch = timeit_pair(ours, theirs, repeat=rep)
    res.add("conv", name, threads, t_ours, None, t_torch)


def run(res, quick=False):
    shapes = SHAPES[::3] if quick else SHAPES
    for threads in (1, 2):
        for C, H, O, k, s, g in shapes:
            _conv_case(res, 8, C, H, O, k, s, g, threads, quick)
        for case in TRAIN_CASES[:1] if quick else TRAIN_CASES:
            _train_case(res, threads, quick, *case)
