"""Bad input raises a Python exception that names the op and the shapes; nothing crashes."""
import numpy as np
import pytest

import pyengine as pe
import pyengine.nn.functional as F
from pyengine.backend import get_backend


def test_matmul_shape_mismatch():
    with pytest.raises(RuntimeError, match=r"matmul.*\(2, 3\).*\(4, 5\)"):
        pe.randn(2, 3) @ pe.randn(4, 5)
    with pytest.raises(TypeError, match="matmul.*dtype"):
        pe.randn(2, 3) @ pe.randn(3, 2, dtype=pe.float64)


def test_broadcast_mismatch():
    with pytest.raises(ValueError, match=r"add.*\(2, 3\).*\(4,\)"):
        pe.randn(2, 3) + pe.randn(4)
    with pytest.raises(ValueError, match=r"mul.*\(5,\).*\(3,\)"):
        pe.randn(5) * pe.randn(3)


def test_loss_shape_mismatch():
    with pytest.raises(ValueError, match=r"mse_loss.*\(3, 2\).*\(4,\)"):
        F.mse_loss(pe.randn(3, 2), pe.randn(4))
    with pytest.raises(ValueError, match=r"cross_entropy.*target shape \(5,\).*\(4, 3\)"):
        F.cross_entropy(pe.randn(4, 3), pe.tensor([0, 1, 2, 0, 1]))
    with pytest.raises(ValueError, match="binary_cross_entropy"):
        F.binary_cross_entropy(pe.rand(3), pe.rand(4))


def test_cross_entropy_float_targets_and_range():
    with pytest.raises(TypeError, match=r"cross_entropy.*int64.*float32.*\(4, 3\)"):
        F.cross_entropy(pe.randn(4, 3), pe.tensor([0.0, 1.0, 2.0, 1.0]))
    with pytest.raises(IndexError, match=r"cross_entropy.*7.*3 classes"):
        F.cross_entropy(pe.randn(2, 3), pe.tensor([0, 7]))
    with pytest.raises(IndexError, match="cross_entropy"):
        F.cross_entropy(pe.randn(2, 3), pe.tensor([-2, 0]))
    with pytest.raises(IndexError, match="nll_loss"):
        F.nll_loss(pe.randn(2, 3), pe.tensor([0, 3]))


def test_embedding_index_out_of_range():
    w = pe.randn(5, 3, requires_grad=True)
    with pytest.raises(IndexError, match=r"embedding.*(5|-1)"):
        F.embedding(pe.tensor([0, 5]), w)
    with pytest.raises(IndexError, match="embedding"):
        F.embedding(pe.tensor([-1]), w)
    with pytest.raises(TypeError, match="embedding"):
        F.embedding(pe.tensor([0.0]), w)


def test_backward_non_scalar():
    with pytest.raises(RuntimeError, match=r"scalar outputs.*\(3,\)"):
        (pe.randn(3, requires_grad=True) * 2).backward()


def test_kernel_wrong_dtype_raises_not_crashes():
    K = get_backend("cpu")
    with pytest.raises((TypeError, ValueError)):
        K.layer_norm_forward(np.ones((2, 3), np.int32), None, None, 1e-5)
    with pytest.raises((TypeError, ValueError)):
        K.softmax_forward(np.ones((2, 3), np.int64), False)
    with pytest.raises((TypeError, ValueError, IndexError)):
        K.cross_entropy_forward(np.ones((2, 3), np.float32), np.array([0.0, 1.0]), -100, 0.0)
    with pytest.raises((TypeError, ValueError)):
        K.matmul(np.ones((2, 3), np.float32), np.ones((3, 2), np.float64))
    with pytest.raises((TypeError, ValueError, RuntimeError)):
        K.matmul(np.ones((2, 3), np.float32), np.ones((4, 2), np.float32))


def test_layer_norm_and_linear_shapes():
    with pytest.raises(RuntimeError, match=r"layer_norm.*\(2, 5\).*\(4,\)"):
        F.layer_norm(pe.randn(2, 5), (4,))
    with pytest.raises(RuntimeError, match=r"linear.*\(2, 5\).*\(3, 4\)"):
        F.linear(pe.randn(2, 5), pe.randn(3, 4))


def test_attention_shape_errors():
    q = pe.randn(1, 2, 4, 8)
    with pytest.raises(ValueError, match="scaled_dot_product_attention"):
        F.scaled_dot_product_attention(q, pe.randn(1, 2, 4, 7), pe.randn(1, 2, 4, 8))
    with pytest.raises(ValueError, match="scaled_dot_product_attention"):
        F.scaled_dot_product_attention(q, q, q, attn_mask=pe.ones(3, 3).bool())


def test_index_and_dim_errors():
    x = pe.randn(2, 3)
    with pytest.raises(IndexError, match=r"index.*\(2, 3\)"):
        x[5]
    with pytest.raises(IndexError, match="sum.*dimension out of range"):
        x.sum(dim=3)
    with pytest.raises(RuntimeError, match="reshape"):
        x.reshape(4, 2)
    with pytest.raises(RuntimeError, match="cat"):
        pe.cat([pe.randn(2, 3), pe.randn(3, 2)], dim=0)
