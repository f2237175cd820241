"""torch.sparse's COO tensors, as far as graph programs use them (pytorch/examples gcn and gat).

``torch.sparse_coo_tensor(indices, values, size)``, ``t.to_sparse()``, ``t.to_dense()``, ``torch.spmm`` /
``torch.sparse.mm`` / ``@`` with a dense operand, ``indices()`` / ``values()`` / ``_nnz()`` / ``coalesce()``.

The storage is dense: a sparse COO tensor here is a Tensor (subclass ``SparseCOOTensor``) whose array holds every
element, zeros included, and which reports ``layout == torch.sparse_coo`` and ``is_sparse``. Values, gradients
and the results of every op are PyTorch's (an op that mixes a sparse and a dense operand gives a dense result,
as PyTorch; ops that PyTorch keeps sparse, such as ``sum(dim)``, give a dense tensor of the same values here).
What it does not give is sparse's memory or speed: an N x N adjacency matrix takes N*N elements. And a tensor
here is always coalesced: ``_nnz()`` of one built with duplicate indices counts them once (PyTorch counts each
until ``coalesce()``), and ``indices()`` works without ``coalesce()`` (PyTorch raises).
"""
import numpy as np

from . import _dtype as D
from .tensor import Tensor, _wrap


class layout:
    """A tensor's memory layout (``torch.strided``, ``torch.sparse_coo``)."""

    def __init__(self, name):
        self._name = name

    def __repr__(self):
        return "torch." + self._name

    def __reduce__(self):
        return self._name  # a module-level singleton: pickles by name


strided = layout("strided")
sparse_coo = layout("sparse_coo")


class SparseCOOTensor(Tensor):
    """A COO sparse tensor on dense storage (see the module's docstring)."""

    __slots__ = ()

    is_sparse = property(lambda self: True)
    layout = property(lambda self: sparse_coo)

    def to_dense(self):
        """The dense tensor of the same values (a copy; differentiable)."""
        return _retype(_clone(self), Tensor)

    def to_sparse(self):
        return self

    def coalesce(self):
        return self  # the dense storage has summed duplicate indices already

    def is_coalesced(self):
        return True

    def sparse_dim(self):
        return self._data.ndim

    def dense_dim(self):
        return 0

    def indices(self):
        """The (ndim, nnz) int64 indices of the non-zero elements, in row-major order (coalesced order)."""
        return _wrap(np.stack(np.nonzero(self._data)).astype(np.int64).reshape(self._data.ndim, -1))

    _indices = indices

    def values(self):
        """The non-zero elements (nnz,), in the order of ``indices()``."""
        return _wrap(self._data[np.nonzero(self._data)])

    _values = values

    def _nnz(self):
        return int(np.count_nonzero(self._data))

    def __repr__(self):
        return (f"tensor(indices={self.indices()._data.tolist()},\n       values={self.values()._data.tolist()},\n"
                f"       size={tuple(self._data.shape)}, nnz={self._nnz()}, layout=torch.sparse_coo)")

    __str__ = __repr__


def _clone(t):
    from .ops import clone
    return clone(t)


def _retype(t, cls):
    t.__class__ = cls  # same slots: the tensor, its graph node and its gradient are unchanged
    return t


def to_sparse(x, sparse_dim=None, layout=None):
    """``x.to_sparse()``: the COO form of a dense tensor (a copy; the gradient flows back to ``x``)."""
    if layout not in (None, sparse_coo):
        raise NotImplementedError(f"to_sparse: layout {layout} is not supported (sparse_coo is)")
    if sparse_dim is not None and sparse_dim != x._data.ndim:
        raise NotImplementedError(f"to_sparse: sparse_dim={sparse_dim} with dense dimensions is not supported "
                                  f"(tensor of {x._data.ndim} dims)")
    if isinstance(x, SparseCOOTensor):
        return x
    return _retype(_clone(x), SparseCOOTensor)


def sparse_coo_tensor(indices, values, size=None, dtype=None, device=None, requires_grad=False,
                      check_invariants=None, is_coalesced=None):
    """A COO tensor with ``values[k]`` at ``indices[:, k]``; duplicate indices add up (as after coalesce()).
    ``size`` defaults to one past the largest index in each dimension."""
    from .tensor import as_tensor
    from .device import as_device
    as_device(device)
    idx = indices._data if isinstance(indices, Tensor) else np.asarray(indices)
    if idx.ndim != 2 or idx.dtype.kind not in "iu":
        raise RuntimeError(f"sparse_coo_tensor: indices must be a 2-D integer tensor (ndim, nnz), "
                           f"got shape {tuple(idx.shape)} of {idx.dtype}")
    vals = values if isinstance(values, Tensor) else as_tensor(values)
    if vals._data.ndim != 1 or vals._data.shape[0] != idx.shape[1]:
        raise RuntimeError(f"sparse_coo_tensor: values of shape {tuple(vals.shape)} for {idx.shape[1]} indices "
                           "(one value per index column; dense dimensions are not supported)")
    if size is None:
        size = tuple(int(m) + 1 for m in idx.max(axis=1)) if idx.shape[1] else (0,) * idx.shape[0]
    size = tuple(int(s) for s in size)
    if len(size) != idx.shape[0]:
        raise RuntimeError(f"sparse_coo_tensor: {idx.shape[0]} index rows for a size of {len(size)} dims {size}")
    if idx.shape[1] and ((idx < 0).any() or (idx.max(axis=1) >= np.asarray(size)).any()):
        raise RuntimeError(f"sparse_coo_tensor: indices out of bounds for size {size}")
    npd = D.to_numpy_dtype(dtype) if dtype is not None else vals._data.dtype
    if vals.requires_grad:
        from .ops import cast, index_add
        from .tensor import zeros
        vals = vals if vals._data.dtype == npd else cast(vals, npd)
        flat = _wrap(np.ravel_multi_index(tuple(idx), size).astype(np.int64))
        out = index_add(zeros(int(np.prod(size)), dtype=vals.dtype), 0, flat, vals).reshape(size)
    else:
        arr = np.zeros(size, npd)
        np.add.at(arr, tuple(idx), vals._data.astype(npd, copy=False))
        out = _wrap(arr)
    out = _retype(out, SparseCOOTensor)
    if requires_grad:
        out.requires_grad_(True)
    return out


def mm(a, b):
    """``torch.sparse.mm`` / ``torch.spmm``: the matrix product of a sparse and a dense (or sparse) matrix;
    dense unless both are sparse, as PyTorch."""
    from .ops import mm as _mm
    out = _mm(a, b)
    return _retype(out, SparseCOOTensor) if isinstance(a, SparseCOOTensor) and isinstance(b, SparseCOOTensor) else out


spmm = mm


def sum(x, dim=None, dtype=None):
    """``torch.sparse.sum``: the sum over ``dim`` (all dims when None)."""
    from .ops import sum as _sum
    out = _sum(x, dim) if dim is not None else _sum(x)
    return out if dtype is None else out.to(dtype)
