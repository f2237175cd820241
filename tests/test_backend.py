"""The backends: every reference kernel has a compiled twin; set_backend runs models on either."""
import numpy as np
import pytest

import pyengine as pe
import pyengine.nn.functional as F
from pyengine.backend import cpu, reference
from pyengine.testing import assert_close


def test_every_kernel_is_compiled():
    assert cpu.MISSING == [], f"kernels without a compiled implementation: {cpu.MISSING}"
    for name in reference.KERNELS:
        assert getattr(cpu, name) is not getattr(reference, name), name


def test_threads_and_isa():
    from pyengine import _C
    before = pe.get_num_threads()
    pe.set_num_threads(1)
    assert pe.get_num_threads() == 1
    pe.set_num_threads(before)
    assert _C.isa_supported() in ("generic", "avx2", "avx512")
    with pytest.raises(ValueError):
        pe.set_num_threads(0)


def _tiny_model_step(seed):
    """Forward + backward of a small transformer-ish block; returns loss and gradients."""
    rng = np.random.default_rng(seed)
    x = pe.tensor(rng.standard_normal((2, 5, 8)), dtype=pe.float64)
    w1 = pe.tensor(rng.standard_normal((8, 8)) * 0.3, dtype=pe.float64, requires_grad=True)
    emb = pe.tensor(rng.standard_normal((11, 8)), dtype=pe.float64, requires_grad=True)
    ln_w = pe.tensor(rng.standard_normal(8), dtype=pe.float64, requires_grad=True)
    idx = pe.tensor(rng.integers(0, 11, (2, 5)))
    h = x + F.embedding(idx, emb)
    h = F.layer_norm(h, (8,), ln_w, None)
    q = F.linear(h, w1).reshape(2, 5, 2, 4).transpose(1, 2)
    a = F.scaled_dot_product_attention(q, q, q, is_causal=True).transpose(1, 2).reshape(2, 5, 8)
    logits = F.gelu(a) @ emb.T
    loss = F.cross_entropy(logits.reshape(10, 11), idx.reshape(10), label_smoothing=0.1)
    loss.backward()
    return loss.item(), [p.grad.numpy() for p in (w1, emb, ln_w)]


def test_set_backend_reference_matches_cpu():
    try:
        pe.set_backend("reference")
        ref_loss, ref_grads = _tiny_model_step(0)
    finally:
        pe.set_backend("cpu")
    loss, grads = _tiny_model_step(0)
    assert loss == pytest.approx(ref_loss, rel=1e-10)
    for g, r in zip(grads, ref_grads):
        assert_close(g, r, rtol=1e-8, atol=1e-10)
    with pytest.raises(ValueError, match="unknown backend"):
        pe.set_backend("tpu")


def test_kernels_accept_unpickled_arrays():
    """Unpickled arrays carry their own (equal) dtype objects: the bindings compare dtypes by value."""
    import pickle
    rng = np.random.default_rng(0)
    a, b = (pickle.loads(pickle.dumps(rng.standard_normal((5, 7)).astype(np.float32))) for _ in range(2))
    t = pickle.loads(pickle.dumps(rng.integers(0, 7, 5)))
    assert_close(cpu.matmul(a, b.T), a @ b.T, rtol=1e-5, atol=1e-5)
    loss, _ = cpu.cross_entropy_forward(a, t, -100, 0.0)
    assert_close(loss, reference.cross_entropy_forward(a, t)[0], rtol=1e-5, atol=1e-5)
    y, _, _ = cpu.layer_norm_forward(a, None, None, 1e-5)
    assert y.shape == (5, 7)
    big = np.dtype(">f4")
    with pytest.raises(TypeError):
        cpu.matmul(a.astype(big), b.T.astype(big))
