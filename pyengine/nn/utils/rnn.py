"""pyengine.nn.utils.rnn: batches of variable-length sequences (PyTorch's ``torch.nn.utils.rnn``).

A ``PackedSequence`` holds the steps of B sequences sorted by decreasing length, time-major, without
padding: ``data`` (N, *) has the rows of step t at [off_t, off_t + batch_sizes[t]) (row b of a step is
the b-th longest sequence), ``batch_sizes`` (T,) int64 counts the sequences still running at each step,
``sorted_indices`` maps that order to the original batch (None: already sorted) and ``unsorted_indices``
back. It is the layout the recurrent kernels run on directly (backend/reference/rnn.py), so LSTM, GRU
and RNN take and return one with no padding computed.

    >>> x = pyengine.randn(5, 3, 8)                      # (T, B, I), lengths 5, 2, 4
    >>> packed = pack_padded_sequence(x, [5, 2, 4], enforce_sorted=False)
    >>> out, h_n = nn.GRU(8, 16)(packed)                 # out: a PackedSequence; h_n: (1, 3, 16)
    >>> padded, lengths = pad_packed_sequence(out)       # (5, 3, 16), tensor([5, 2, 4])

Packing and padding are differentiable (one gather or scatter of rows each, in the backend's array module).
"""
from typing import NamedTuple, Optional

import numpy as np

from ...autograd import Function
from ...ops import cat, unbind
from ...tensor import Tensor, _wrap, tensor

__all__ = ["PackedSequence", "pack_padded_sequence", "pad_packed_sequence", "pad_sequence", "unpad_sequence",
           "pack_sequence", "unpack_sequence", "invert_permutation"]


class PackedSequence_(NamedTuple):
    data: Tensor
    batch_sizes: Tensor
    sorted_indices: Optional[Tensor]
    unsorted_indices: Optional[Tensor]


class PackedSequence(PackedSequence_):
    """(data, batch_sizes, sorted_indices, unsorted_indices) of a batch of packed sequences (see the module
    docstring). Made by ``pack_padded_sequence`` / ``pack_sequence`` and by the recurrent modules; as in
    PyTorch, ``unsorted_indices`` is derived from ``sorted_indices`` when not given."""

    def __new__(cls, data, batch_sizes=None, sorted_indices=None, unsorted_indices=None):
        if unsorted_indices is None:
            unsorted_indices = invert_permutation(sorted_indices)
        if batch_sizes is None:  # PackedSequence((data, batch_sizes), ...)
            if not (isinstance(data, (list, tuple)) and len(data) == 2):
                raise TypeError("PackedSequence: expected data and batch_sizes, or a (data, batch_sizes) pair")
            data, batch_sizes = data
        return super().__new__(cls, data, batch_sizes, sorted_indices, unsorted_indices)

    def to(self, *args, **kwargs):
        """``data.to(...)`` (dtype / device); the batch sizes and indices stay as they are."""
        data = self.data.to(*args, **kwargs)
        if data is self.data:
            return self
        return type(self)(data, self.batch_sizes, self.sorted_indices, self.unsorted_indices)

    def float(self):
        return self.to(np.float32)

    def double(self):
        return self.to(np.float64)

    def cpu(self):
        return self

    @property
    def is_cuda(self):
        return False


def invert_permutation(permutation):
    """The inverse of a permutation (a 1-D int64 tensor), or None for None: out[permutation[i]] = i."""
    if permutation is None:
        return None
    p = _ints(permutation, "invert_permutation", "permutation")
    out = np.empty_like(p)
    out[p] = np.arange(len(p))
    return tensor(out)


# ---------------------------------------------------------------------- the layout's index arithmetic
# Host-side metadata (like PyTorch, which keeps batch_sizes on the CPU): plain NumPy on int arrays.


def _ints(x, op, name):
    """A 1-D int64 NumPy array from a tensor, array or sequence of ints."""
    a = np.asarray(x._data if isinstance(x, Tensor) else x)
    if a.ndim != 1 or (a.size and a.dtype.kind not in "iu"):
        raise TypeError(f"{op}: {name} must be a 1-D sequence of integers, got {a.dtype} of shape {a.shape}")
    return a.astype(np.int64)


def batch_sizes_of(lengths):
    """batch_sizes (T,) of sequences sorted by decreasing ``lengths``: bs[t] = #{b : lengths[b] > t}."""
    lengths = np.asarray(lengths, np.int64)
    T = int(lengths.max()) if lengths.size else 0
    return np.count_nonzero(lengths[None, :] > np.arange(T)[:, None], axis=1).astype(np.int64)


def lengths_of(batch_sizes):
    """The length of each sorted sequence (B,) from batch_sizes: lengths[b] = #{t : bs[t] > b}."""
    bs = np.asarray(batch_sizes, np.int64)
    B = int(bs[0]) if bs.size else 0
    return np.count_nonzero(bs[None, :] > np.arange(B)[:, None], axis=1).astype(np.int64)


def packed_rows(batch_sizes):
    """The step t and the (sorted) sequence b of every packed row: two (N,) int64 arrays."""
    bs = np.asarray(batch_sizes, np.int64)
    t = np.repeat(np.arange(len(bs)), bs)
    first = np.concatenate([[0], np.cumsum(bs)[:-1]]).astype(np.int64) if bs.size else bs
    return t, np.arange(len(t)) - first[t]


# ---------------------------------------------------------------------- row gathers and scatters


class _TakeRows(Function):
    """y = rows ``index`` of x seen as (R, *rest) (its first ``nlead`` dims flattened), each row taken at
    most once;  dx = g put back at those rows, zeros elsewhere."""

    fresh_grads = True
    saves = ()

    def forward(self, x, index, nlead):
        self.shape = x.shape
        x2 = x.reshape((-1,) + x.shape[nlead:])
        self.index = index
        return self.xp.take(x2, index, axis=0)

    def backward(self, g):
        dx = self.xp.zeros(self.shape, g.dtype)
        dx.reshape((-1,) + g.shape[1:])[self.index] = g
        return dx, None, None


class _PutRows(Function):
    """y = an array of ``shape`` filled with ``padding_value`` whose rows ``index`` (its leading dims
    flattened to the rows of x) are x's rows, each written at most once;  dx = g at those rows."""

    fresh_grads = True
    saves = ()

    def forward(self, x, index, shape, padding_value):
        y = self.xp.full(shape, padding_value, x.dtype)
        y.reshape((-1,) + x.shape[1:])[index] = x
        self.index, self.rest = index, x.shape[1:]
        return y

    def backward(self, g):
        return self.xp.take(g.reshape((-1,) + self.rest), self.index, axis=0), None, None, None


# ---------------------------------------------------------------------- PyTorch's functions


def pack_padded_sequence(input, lengths, batch_first=False, enforce_sorted=True):
    """Pack a padded batch (T, B, *) (``batch_first``: (B, T, *)) of sequences of the given lengths.

    ``enforce_sorted``: the lengths must be in decreasing order (else RuntimeError); with False the batch is
    sorted here and the PackedSequence remembers the order. Steps past a sequence's length are dropped.

    >>> packed = pack_padded_sequence(pyengine.randn(4, 2, 3), [4, 2])
    >>> packed.batch_sizes
    tensor([2, 2, 1, 1])
    """
    op = "pack_padded_sequence"
    if input.ndim < 2:
        raise ValueError(f"{op}: input must have at least 2 dimensions (T, B, *), got shape {tuple(input.shape)}")
    lengths = _ints(lengths, op, "lengths")
    T, B = (input.shape[1], input.shape[0]) if batch_first else input.shape[:2]
    if len(lengths) != B:
        raise ValueError(f"{op}: Expected `len(lengths)` to be equal to batch_size, but got {len(lengths)} "
                         f"(batch_size={B})")
    if B == 0 or lengths.min() <= 0:
        raise RuntimeError(f"{op}: Length of all samples has to be greater than 0, but found an element in "
                           "'lengths' that is <= 0")
    if lengths.max() > T:
        raise RuntimeError(f"{op}: a length ({lengths.max()}) is larger than the padded sequence length {T}")
    if enforce_sorted:
        if np.any(np.diff(lengths) > 0):
            raise RuntimeError(f"{op}: `lengths` array must be sorted in decreasing order when `enforce_sorted` is "
                               "True. You can pass `enforce_sorted=False` to pack_padded_sequence and/or "
                               "pack_sequence to sidestep this requirement if you do not need ONNX exportability.")
        order, sorted_indices = np.arange(B), None
    else:
        order = np.argsort(-lengths, kind="stable")
        sorted_indices = tensor(order)
    bs = batch_sizes_of(lengths[order])
    t, b = packed_rows(bs)
    src = order[b]
    index = src * T + t if batch_first else t * B + src
    data = _TakeRows.apply(input, index, 2)
    return PackedSequence(data, tensor(bs), sorted_indices, None)


def pad_packed_sequence(sequence, batch_first=False, padding_value=0.0, total_length=None):
    """Undo ``pack_padded_sequence``: (padded (T, B, *) or (B, T, *), lengths (B,) int64), the batch in its
    original order; T is the longest length, or ``total_length`` (which must not be shorter)."""
    op = "pad_packed_sequence"
    data, batch_sizes, _, unsorted_indices = sequence
    bs = _ints(batch_sizes, op, "batch_sizes")
    T, B = len(bs), (int(bs[0]) if bs.size else 0)
    if total_length is not None:
        if total_length < T:
            raise ValueError(f"{op}: Expected total_length to be at least the length of the longest sequence in "
                             f"input, but got total_length={total_length} and max sequence length being {T}")
        T = int(total_length)
    t, b = packed_rows(bs)
    lengths = lengths_of(bs)
    dst = b
    if unsorted_indices is not None:
        u = _ints(unsorted_indices, op, "unsorted_indices")
        order = np.empty_like(u)
        order[u] = np.arange(len(u))  # sorted position -> original position
        dst, lengths = order[b], lengths[u]
    index = dst * T + t if batch_first else t * B + dst
    shape = ((B, T) if batch_first else (T, B)) + tuple(data.shape[1:])
    return _PutRows.apply(data, index, shape, float(padding_value)), tensor(lengths)


def pad_sequence(sequences, batch_first=False, padding_value=0.0, padding_side="right"):
    """Stack sequences of shapes (L_i, *) into one (T, B, *) tensor (``batch_first``: (B, T, *)), T the longest
    L_i, filling with ``padding_value`` after each sequence (``padding_side="left"``: before it).

    >>> pad_sequence([pyengine.ones(3, 2), pyengine.ones(1, 2)]).shape
    pyengine.Size([3, 2, 2])
    """
    op = "pad_sequence"
    seqs = list(unbind(sequences, 0) if isinstance(sequences, Tensor) else sequences)
    if not seqs:
        raise RuntimeError(f"{op}: received an empty list of sequences")
    if padding_side not in ("left", "right"):
        raise ValueError(f"{op}: padding_side must be 'left' or 'right', got {padding_side!r}")
    rest = tuple(seqs[0].shape[1:])
    for s in seqs:
        if s.ndim < 1 or tuple(s.shape[1:]) != rest or s.dtype != seqs[0].dtype:
            raise RuntimeError(f"{op}: every sequence must be (L, {', '.join(map(str, rest)) or '*'}) with dtype "
                               f"{seqs[0].dtype}, got {tuple(s.shape)} {s.dtype}")
    lengths = np.array([s.shape[0] for s in seqs], np.int64)
    B, T = len(seqs), int(lengths.max())
    seq = np.repeat(np.arange(B), lengths)
    step = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    if padding_side == "left":
        step = step + (T - lengths)[seq]
    index = seq * T + step if batch_first else step * B + seq
    shape = ((B, T) if batch_first else (T, B)) + rest
    return _PutRows.apply(cat(seqs, 0), index, shape, float(padding_value))


def unpad_sequence(padded_sequences, lengths, batch_first=False):
    """The list of B sequences (L_b, *) inside a padded (T, B, *) (``batch_first``: (B, T, *)) tensor."""
    lengths = _ints(lengths, "unpad_sequence", "lengths")
    if batch_first:
        return [padded_sequences[b, :int(n)] for b, n in enumerate(lengths)]
    return [padded_sequences[:int(n), b] for b, n in enumerate(lengths)]


def pack_sequence(sequences, enforce_sorted=True):
    """Pack a list of sequences (L_i, *): ``pack_padded_sequence(pad_sequence(sequences), lengths)``."""
    lengths = [s.shape[0] for s in sequences]
    return pack_padded_sequence(pad_sequence(sequences), lengths, enforce_sorted=enforce_sorted)


def unpack_sequence(packed_sequences):
    """The list of sequences (L_b, *) a PackedSequence holds, in the original batch order."""
    padded, lengths = pad_packed_sequence(packed_sequences, batch_first=True)
    return unpad_sequence(padded, lengths, batch_first=True)
