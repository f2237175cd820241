"""Embedding: a lookup table of learnable vectors."""
import numpy as np

from ..._checks import int64_arg, real_arg, size_arg
from ...autograd import no_grad
from ...tensor import Tensor
from .. import functional as F
from .. import init
from ..parameter import Parameter
from ._utils import check_params, float_dtype
from .module import Module

__all__ = ["Embedding"]


class Embedding(Module):
    """out[...] = weight[indices[...]].

    indices: int64, any shape (*) -> (*, embedding_dim);  weight: (num_embeddings, embedding_dim)
    Initialised N(0, 1); the ``padding_idx`` row is zeroed and gets no gradient. With ``max_norm``, each
    forward first renormalises (in place, as PyTorch) the rows it looks up whose ``norm_type``-norm exceeds
    max_norm; ``scale_grad_by_freq`` divides each row's gradient by its index's count in the batch.
    ``sparse=True`` is not supported.

    >>> emb = nn.Embedding(10, 3, padding_idx=0)
    >>> emb(pyengine.tensor([[1, 2, 0]])).shape
    pyengine.Size([1, 3, 3])
    """

    def __init__(self, num_embeddings, embedding_dim, padding_idx=None, max_norm=None, norm_type=2.0,
                 scale_grad_by_freq=False, sparse=False, _weight=None, _freeze=False, device=None, dtype=None):
        super().__init__()
        dt = float_dtype(dtype, device, "Embedding")
        num_embeddings = size_arg("Embedding", "num_embeddings", num_embeddings)
        embedding_dim = size_arg("Embedding", "embedding_dim", embedding_dim)
        check_params("Embedding", dt, (num_embeddings, embedding_dim))
        self.num_embeddings = num_embeddings
        self.embedding_dim = embedding_dim
        if padding_idx is not None:
            padding_idx = int64_arg("Embedding", "padding_idx", padding_idx)
            if not -num_embeddings <= padding_idx < num_embeddings:
                raise ValueError(f"Embedding: padding_idx {padding_idx} must be within num_embeddings "
                                 f"({num_embeddings})")
            if padding_idx < 0:
                padding_idx += num_embeddings
        if sparse:
            raise NotImplementedError("Embedding: sparse gradients are not supported (sparse=True)")
        if max_norm is not None:
            max_norm = real_arg("Embedding", "max_norm", max_norm)
        norm_type = real_arg("Embedding", "norm_type", norm_type)
        self.padding_idx = padding_idx
        self.max_norm, self.norm_type = max_norm, norm_type
        self.scale_grad_by_freq, self.sparse = scale_grad_by_freq, sparse
        if _weight is None:
            self.weight = Parameter(np.empty((num_embeddings, embedding_dim), dt), requires_grad=not _freeze)
            self.reset_parameters()
        else:
            if tuple(_weight.shape) != (num_embeddings, embedding_dim):
                raise ValueError(f"Embedding: _weight has shape {tuple(_weight.shape)}, expected "
                                 f"({num_embeddings}, {embedding_dim})")
            self.weight = Parameter(_weight, requires_grad=not _freeze)

    def reset_parameters(self):
        init.normal_(self.weight)
        if self.padding_idx is not None:
            with no_grad():
                self.weight._data[self.padding_idx] = 0

    def forward(self, input):
        return F.embedding(input, self.weight, self.padding_idx, self.max_norm, self.norm_type,
                           self.scale_grad_by_freq, self.sparse)

    @classmethod
    def from_pretrained(cls, embeddings, freeze=True, padding_idx=None, **kwargs):
        """An Embedding holding ``embeddings`` (2-D); ``freeze`` turns off its gradient."""
        if embeddings.ndim != 2:
            raise ValueError("Embeddings parameter is expected to be 2-dimensional")
        w = embeddings if isinstance(embeddings, Tensor) else Tensor(np.asarray(embeddings))
        rows, cols = w.shape
        return cls(rows, cols, padding_idx=padding_idx, _weight=w, _freeze=freeze, **kwargs)

    def extra_repr(self):
        s = f"{self.num_embeddings}, {self.embedding_dim}"
        if self.padding_idx is not None:
            s += f", padding_idx={self.padding_idx}"
        if self.max_norm is not None:
            s += f", max_norm={self.max_norm}"
        if self.norm_type != 2.0:
            s += f", norm_type={self.norm_type}"
        if self.scale_grad_by_freq:
            s += ", scale_grad_by_freq=True"
        return s
