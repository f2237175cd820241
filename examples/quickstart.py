"""Quickstart: fit a small MLP to a noisy function with pyengine's autograd and kernels.

Runs in a few seconds on one core:  python examples/quickstart.py
"""
import math
import time

import numpy as np

import pyengine as pe
import pyengine.nn.functional as F


def main():
    pe.manual_seed(0)
    rng = np.random.default_rng(0)
    # data: y = sin(3x) + x^2 / 2 + noise, x in [-2, 2]
    x = rng.uniform(-2, 2, (1024, 1)).astype(np.float32)
    y = (np.sin(3 * x) + 0.5 * x ** 2 + 0.05 * rng.standard_normal(x.shape)).astype(np.float32)
    x_train, y_train, x_test, y_test = x[:896], y[:896], x[896:], y[896:]

    # a 1-64-64-1 MLP from raw parameters (pyengine.nn has the layer version)
    def param(*shape, fan_in):
        return (pe.randn(*shape) * (1.0 / math.sqrt(fan_in))).requires_grad_()

    params = [param(64, 1, fan_in=1), pe.zeros(64, requires_grad=True),
              param(64, 64, fan_in=64), pe.zeros(64, requires_grad=True),
              param(1, 64, fan_in=64), pe.zeros(1, requires_grad=True)]
    w1, b1, w2, b2, w3, b3 = params

    def model(inp):
        h = F.gelu(F.linear(inp, w1, b1))
        h = F.gelu(F.linear(h, w2, b2))
        return F.linear(h, w3, b3)

    # Adam by hand, on the compiled update kernel
    kernels = pe.get_backend("cpu")
    m = [np.zeros_like(p.detach().numpy()) for p in params]
    v = [np.zeros_like(p.detach().numpy()) for p in params]
    t0 = time.perf_counter()
    xb_all, yb_all = pe.tensor(x_train), pe.tensor(y_train)
    for step in range(1, 1501):
        idx = rng.integers(0, len(x_train), 64)
        loss = F.mse_loss(model(xb_all[idx]), yb_all[idx])
        for p in params:
            p.grad = None
        loss.backward()
        kernels.adam_update([p.detach().numpy() for p in params], [p.grad.numpy() for p in params], m, v, step,
                            lr=3e-3, beta1=0.9, beta2=0.999, eps=1e-8)
        if step % 300 == 0:
            print(f"step {step:5d}  train mse {loss.item():.4f}")
    with pe.no_grad():
        test_mse = F.mse_loss(model(pe.tensor(x_test)), pe.tensor(y_test)).item()
        baseline = float(np.mean((y_test - y_train.mean()) ** 2))
    print(f"test mse {test_mse:.4f} (predicting the mean: {baseline:.4f}); "
          f"{time.perf_counter() - t0:.1f} s on {pe.get_num_threads()} thread(s)")
    assert test_mse < 0.1 * baseline, "the model did not learn"


if __name__ == "__main__":
    main()
