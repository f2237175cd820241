"""Small CNNs' convolutions (LeNet's 5x5, an MNIST CNN's and CIFAR ResNet-20's 3x3, few channels), per pass:
pyengine's forward, input gradient and weight gradient against PyTorch's in one process, alternating rounds.

    python dev/conv_small_bench.py [threads, e.g. 1,2] [rounds] [small|resnet|N,C,H,O,k,s,p]

"resnet" runs the bench conv suite's ResNet-18 rows (batch 8) instead of the small CNNs' shapes.

Prints PyTorch's time / ours per pass (> 1: ours faster) and our times. Set PYENGINE_ADAPT_THREADS=0 to keep
pyengine on the asked thread count when the machine is busy."""
import sys

import numpy as np
import torch
import torch.nn.grad as G

from bench.common import Threads, timeit_pair
from pyengine.backend import get_backend

# (name, N, C, H, O, kernel, stride, padding)
SHAPES = [
    ("LeNet conv1", 64, 3, 32, 6, 5, 1, 0),
    ("LeNet conv2", 64, 6, 14, 16, 5, 1, 0),
    ("MNIST CNN conv1", 32, 1, 28, 16, 3, 1, 1),
    ("MNIST CNN conv2", 32, 16, 14, 32, 3, 1, 1),
    ("ResNet-20 stem", 64, 3, 32, 16, 3, 1, 1),
    ("ResNet-20 16x32x32", 64, 16, 32, 16, 3, 1, 1),
    ("ResNet-20 16->32 s2", 64, 16, 32, 32, 3, 2, 1),
    ("ResNet-20 32x16x16", 64, 32, 16, 32, 3, 1, 1),
    ("ResNet-20 32->64 s2", 64, 32, 16, 64, 3, 2, 1),
    ("ResNet-20 64x8x8", 64, 64, 8, 64, 3, 1, 1),
]

# python -m bench conv's ResNet-18 rows (batch 8) and its depthwise row is not a dense conv, so it is left out
RESNET = [(f"ResNet-18 {C}->{O} {H}x{H}", 8, C, H, O, k, s, k // 2)
          for C, H in ((64, 56), (128, 28), (256, 14))
          for (O, k, s) in ((C, 3, 1), (2 * C, 3, 2), (2 * C, 1, 2))] + [("ResNet-18 512x7x7", 8, 512, 7, 512, 3, 1, 1)]


def main():
    threads = [int(t) for t in (sys.argv[1] if len(sys.argv) > 1 else "1").split(",")]
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 7
    which = sys.argv[3] if len(sys.argv) > 3 else "small"
    shapes = {"small": SHAPES, "resnet": RESNET}.get(which)
    if shapes is None:
        N, C, H, O, k, s, p = (int(v) for v in which.split(","))
        shapes = [("custom", N, C, H, O, k, s, p)]
    K = get_backend("cpu")
    rng = np.random.default_rng(0)
    for name, N, C, H, O, k, s, p in shapes:
        Ho = (H + 2 * p - k) // s + 1
        x = rng.standard_normal((N, C, H, H)).astype(np.float32)
        w = (rng.standard_normal((O, C, k, k)) / np.sqrt(C * k * k)).astype(np.float32)
        dy = rng.standard_normal((N, O, Ho, Ho)).astype(np.float32)
        tx, tw, tdy = torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(dy)
        args = ((s, s), (p, p), (1, 1), 1)
        for th in threads:
            with Threads(th):
                passes = [
                    (lambda: K.conv2d_forward(x, w, None, *args, (Ho, Ho)),
                     lambda: torch.nn.functional.conv2d(tx, tw, stride=s, padding=p)),
                    (lambda: K.conv2d_backward_input(dy, w, (H, H), *args),
                     lambda: G.conv2d_input(tx.shape, tw, tdy, stride=s, padding=p)),
                    (lambda: K.conv2d_backward_weight(dy, x, (k, k), *args),
                     lambda: G.conv2d_weight(tx, tw.shape, tdy, stride=s, padding=p)),
                ]
                res = [timeit_pair(ours, theirs, repeat=rounds) for ours, theirs in passes]
            print(f"{name:22s} {C}->{O} {H}x{H} k{k} s{s} {th}t: " +
                  "  ".join(f"{lbl} {t / o:.2f}x ({o * 1e3:.2f} ms)"
                            for lbl, (o, t) in zip(("fwd", "dgrad", "wgrad"), res)), flush=True)


if __name__ == "__main__":
    main()
