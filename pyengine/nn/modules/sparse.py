"""Embedding: a lookup table of learnable vectors; EmbeddingBag: reductions over bags of its rows."""
import numpy as np

from ..._checks import int64_arg, real_arg, size_arg, tensor_op
from ...autograd import no_grad
from ...tensor import Tensor, _wrap
from .. import functional as F
from .. import init
from ..parameter import Parameter
from ._utils import check_params, float_dtype
from .module import Module

__all__ = ["Embedding", "EmbeddingBag"]


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


@tensor_op("input", "weight", "offsets?", "per_sample_weights?")
def embedding_bag(input, weight, offsets=None, max_norm=None, norm_type=2, scale_grad_by_freq=False, mode="mean",
                  sparse=False, per_sample_weights=None, include_last_offset=False, padding_idx=None):
    """Sums / means / maxima of bags of embeddings, without materialising the bags' (B, L, D) tensor.

    input (B, L): each row a bag (``offsets`` must be None); input (N,) with ``offsets`` (B,): bag b is
    input[offsets[b]:offsets[b+1]] (the last runs to the end, or ``offsets`` has B+1 entries with
    ``include_last_offset``). An empty bag gives zeros. ``per_sample_weights`` (input's shape) scale each
    embedding (mode "sum" only). Entries equal to ``padding_idx`` are left out of their bag (and its count).
    ``sparse=True`` is accepted and gives the same gradient values stored dense (pyengine has no sparse
    gradients): plain SGD then updates the weights exactly as PyTorch's sparse update does.
    """
    from ...ops import index_add
    from ...tensor import zeros
    if mode not in ("sum", "mean", "max"):
        raise ValueError(f"embedding_bag: mode has to be one of sum, mean or max, got {mode!r}")
    if per_sample_weights is not None and mode != "sum":
        raise NotImplementedError(f"embedding_bag: per_sample_weights is only supported for mode='sum' "
                                  f"(got mode={mode!r}), as PyTorch")
    idx = input._data if isinstance(input, Tensor) else np.asarray(input)
    if idx.ndim == 2:
        if offsets is not None:
            raise ValueError("embedding_bag: if input is 2D, then offsets has to be None, as input is treated as "
                             "a mini-batch of fixed length sequences")
        n_bags, length = idx.shape
        starts = np.arange(n_bags, dtype=np.int64) * length
        flat = idx.reshape(-1)
        psw = per_sample_weights.reshape(-1) if per_sample_weights is not None else None
    elif idx.ndim == 1:
        if offsets is None:
            raise ValueError("embedding_bag: offsets has to be a 1D Tensor but got None")
        starts = np.asarray(offsets._data if isinstance(offsets, Tensor) else offsets, np.int64).reshape(-1)
        if include_last_offset:
            starts = starts[:-1]
        n_bags = starts.shape[0]
        if n_bags and (starts[0] != 0 or (np.diff(starts) < 0).any() or starts[-1] > idx.shape[0]):
            raise ValueError(f"embedding_bag: offsets must start at 0, be non-decreasing and within the input's "
                             f"{idx.shape[0]} indices, got {starts.tolist()}")
        flat = idx
        psw = per_sample_weights
    else:
        raise ValueError(f"embedding_bag: input has to be 1D or 2D Tensor, but got Tensor of dimension {idx.ndim}")
    if flat.dtype.kind not in "iu":
        raise TypeError(f"embedding_bag: input must be an integer tensor, got {flat.dtype}")
    bag = np.searchsorted(starts, np.arange(flat.shape[0]), side="right") - 1  # the bag of each entry
    keep = np.ones(flat.shape[0], bool) if padding_idx is None else flat != padding_idx % weight.shape[0]
    pos = np.nonzero(keep)[0]
    emb = F.embedding(_wrap(flat[pos].astype(np.int64)), weight, None, max_norm, norm_type,
                      scale_grad_by_freq)
    if psw is not None:
        emb = emb * (psw if pos.shape[0] == flat.shape[0] else psw[_wrap(pos)]).unsqueeze(-1)
    counts = np.bincount(bag[pos], minlength=n_bags)
    if mode == "max":
        rows = [emb[_wrap(np.nonzero(bag[pos] == b)[0])].amax(0) if counts[b]
                else zeros(weight.shape[1], dtype=weight.dtype) for b in range(n_bags)]
        from ...ops import stack
        return stack(rows) if rows else zeros(0, weight.shape[1], dtype=weight.dtype)
    out = index_add(zeros(n_bags, weight.shape[1], dtype=weight.dtype), 0, _wrap(bag[pos].astype(np.int64)), emb)
    if mode == "mean":
        out = out / _wrap(np.maximum(counts, 1).astype(weight._data.dtype)[:, None])
    return out


class EmbeddingBag(Module):
    """Sums, means or maxima over bags of embeddings (``embedding_bag``): forward(input, offsets=None,
    per_sample_weights=None) -> (bags, embedding_dim). Initialised N(0, 1), the ``padding_idx`` row zeroed."""

    def __init__(self, num_embeddings, embedding_dim, max_norm=None, norm_type=2.0, scale_grad_by_freq=False,
                 mode="mean", sparse=False, _weight=None, include_last_offset=False, padding_idx=None,
                 device=None, dtype=None):
        super().__init__()
        if mode not in ("sum", "mean", "max"):
            raise ValueError(f"EmbeddingBag: mode has to be one of sum, mean or max, got {mode!r}")
        inner = Embedding(num_embeddings, embedding_dim, padding_idx=padding_idx,
                          _weight=_weight, device=device, dtype=dtype)
        self.num_embeddings, self.embedding_dim = inner.num_embeddings, inner.embedding_dim
        self.padding_idx = inner.padding_idx
        self.max_norm, self.norm_type, self.scale_grad_by_freq = max_norm, norm_type, scale_grad_by_freq
        self.mode, self.sparse, self.include_last_offset = mode, sparse, include_last_offset
        self.weight = inner.weight

    def reset_parameters(self):
        init.normal_(self.weight)
        if self.padding_idx is not None:
            with no_grad():
                self.weight._data[self.padding_idx] = 0

    def forward(self, input, offsets=None, per_sample_weights=None):
        return embedding_bag(input, self.weight, offsets, self.max_norm, self.norm_type, self.scale_grad_by_freq,
                             self.mode, self.sparse, per_sample_weights, self.include_last_offset, self.padding_idx)

    def extra_repr(self):
        return f"{self.num_embeddings}, {self.embedding_dim}, mode={self.mode!r}" + (
            f", padding_idx={self.padding_idx}" if self.padding_idx is not None else "")

    @classmethod
    def from_pretrained(cls, embeddings, freeze=True, **kwargs):
        w = embeddings if isinstance(embeddings, Tensor) else Tensor(np.asarray(embeddings))
        bag = cls(w.shape[0], w.shape[1], _weight=w, **kwargs)
        bag.weight.requires_grad = not freeze
        return bag
