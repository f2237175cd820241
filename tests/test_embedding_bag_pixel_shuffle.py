"""nn.EmbeddingBag / F.embedding_bag and nn.PixelShuffle / PixelUnshuffle against PyTorch: values and gradients
on odd shapes (empty bags, padding_idx, per-sample weights, 2-D input, include_last_offset)."""
import numpy as np
import pytest
import torch

import pyengine as pe

RNG = np.random.default_rng(5)


def _both(fn):
    out = []
    for lib in (torch, pe):
        out.append(fn(lib))
    for a, b in zip(*out):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("mode", ["sum", "mean", "max"])
@pytest.mark.parametrize("padding_idx", [None, 3])
def test_embedding_bag_offsets(mode, padding_idx):
    w0 = RNG.standard_normal((11, 5)).astype(np.float32)
    idx = RNG.integers(0, 11, 13)
    idx[[2, 7]] = 3
    offsets = np.array([0, 4, 4, 9])  # one empty bag
    wts = RNG.standard_normal(13).astype(np.float32)

    def run(lib):
        w = lib.tensor(w0, requires_grad=True)
        psw = lib.tensor(wts, requires_grad=True) if mode == "sum" else None
        y = lib.nn.functional.embedding_bag(lib.tensor(idx), w, lib.tensor(offsets), mode=mode,
                                            per_sample_weights=psw, padding_idx=padding_idx)
        (y * lib.tensor(np.arange(y.numel(), dtype=np.float32).reshape(y.shape))).sum().backward()
        return [y.detach().numpy(), w.grad.numpy()] + ([psw.grad.numpy()] if psw is not None else [])
    _both(run)


def test_embedding_bag_module_2d_and_include_last_offset():
    def run(lib):
        lib.manual_seed(0)
        bag = lib.nn.EmbeddingBag(7, 3, mode="mean", sparse=True)  # the text-classification tutorial's setting
        with lib.no_grad():
            bag.weight.copy_(lib.tensor(np.arange(21, dtype=np.float32).reshape(7, 3) / 7))
        y2 = bag(lib.tensor(np.array([[1, 2, 6], [0, 0, 5]])))
        y1 = lib.nn.EmbeddingBag.from_pretrained(bag.weight.detach(), mode="sum", include_last_offset=True)(
            lib.tensor(np.array([1, 2, 6, 0])), lib.tensor(np.array([0, 1, 4])))
        y2.sum().backward()
        g = bag.weight.grad
        return [y2.detach().numpy(), y1.detach().numpy(), (g.to_dense() if g.is_sparse else g).numpy()]
    _both(run)


@pytest.mark.parametrize("shape,r", [((1, 4, 1, 1), 2), ((2, 18, 3, 5), 3), ((9, 2, 3), 1)])
def test_pixel_shuffle_and_unshuffle(shape, r):
    x0 = RNG.standard_normal(shape).astype(np.float32)

    def run(lib):
        x = lib.tensor(x0, requires_grad=True)
        y = lib.nn.PixelShuffle(r)(x)
        z = lib.nn.functional.pixel_unshuffle(y.transpose(-1, -2), r)  # a non-contiguous input
        (y.sum() + (z * z).sum()).backward()
        return [y.detach().numpy(), z.detach().numpy(), x.grad.numpy()]
    _both(run)
    with pytest.raises(RuntimeError, match="divisible"):
        pe.nn.functional.pixel_shuffle(pe.zeros(1, 3, 2, 2), 2)
