"""Collate functions: merging samples into a batch (``torch.utils.data.default_collate`` and
``default_convert``; PyTorch keeps them in ``torch.utils.data._utils.collate``)."""
import numbers
from collections.abc import Mapping, Sequence

import numpy as np

from ...ops.shape import stack as _stack
from ...tensor import Tensor, _wrap, as_tensor, tensor

__all__ = ["default_collate", "default_convert"]


def default_collate(batch):
    """Merge a list of samples into a batch, as ``torch.utils.data.default_collate``.

    Tensors, NumPy arrays and NumPy scalars are stacked along a new first dim into a Tensor; Python
    ints become an int64 Tensor, floats a float64 Tensor, bools a bool Tensor; strings stay a list.
    Tuples and lists are collated element-wise into a list, dicts key-wise into a dict, namedtuples
    into the same namedtuple.

    >>> default_collate([(np.zeros(3), 1), (np.ones(3), 0)])     # [Tensor (2, 3) float64, Tensor([1, 0])]
    >>> default_collate([{"x": 1.5}, {"x": 2.5}])                 # {"x": Tensor([1.5, 2.5], float64)}
    """
    if not isinstance(batch, Sequence) or len(batch) == 0:
        raise TypeError("default_collate: expected a non-empty list of samples")
    elem = batch[0]
    if isinstance(elem, Tensor):
        shapes = {tuple(x.shape) for x in batch}
        if len(shapes) != 1:
            raise RuntimeError(f"default_collate: each tensor in the batch should be of equal size, "
                               f"got shapes {sorted(shapes)}")
        if any(x.requires_grad for x in batch):
            return _stack(batch)
        return _wrap(np.ascontiguousarray(np.stack([x._data for x in batch])))  # contiguous, as PyTorch
    if isinstance(elem, np.ndarray):
        if elem.dtype.kind in "USO":
            raise TypeError(f"default_collate: cannot make a Tensor of numpy arrays of dtype {elem.dtype}")
        shapes = {x.shape for x in batch}
        if len(shapes) != 1:
            raise RuntimeError(f"default_collate: each array in the batch should be of equal size, "
                               f"got shapes {sorted(shapes)}")
        return as_tensor(np.ascontiguousarray(np.stack(batch)))
    if isinstance(elem, np.generic):
        if elem.dtype.kind in "USO":
            return list(batch)
        return as_tensor(np.array(batch))
    if isinstance(elem, bool):
        return tensor(batch, dtype=np.bool_)
    if isinstance(elem, numbers.Integral):
        return tensor(batch, dtype=np.int64)
    if isinstance(elem, numbers.Real):
        return tensor(batch, dtype=np.float64)
    if isinstance(elem, (str, bytes)):
        return list(batch)
    if isinstance(elem, Mapping):
        return {key: default_collate([d[key] for d in batch]) for key in elem}
    if isinstance(elem, tuple) and hasattr(elem, "_fields"):  # namedtuple
        return type(elem)(*(default_collate(list(s)) for s in zip(*batch)))
    if isinstance(elem, Sequence):
        if len({len(x) for x in batch}) != 1:
            raise RuntimeError("default_collate: each element in list of batch should be of equal size")
        return [default_collate(list(s)) for s in zip(*batch)]
    raise TypeError(f"default_collate: batch must contain tensors, numpy arrays, numbers, dicts or lists; "
                    f"found {type(elem).__name__}")


def default_convert(data):
    """Turn NumPy arrays (and scalars) in one sample into Tensors, recursing into dicts and sequences.

    The DataLoader's collate function when ``batch_size=None`` (no automatic batching).
    """
    if isinstance(data, Tensor):
        return data
    if isinstance(data, (np.ndarray, np.generic)):
        return data if data.dtype.kind in "USO" else as_tensor(data)
    if isinstance(data, Mapping):
        return {k: default_convert(v) for k, v in data.items()}
    if isinstance(data, tuple) and hasattr(data, "_fields"):
        return type(data)(*(default_convert(d) for d in data))
    if isinstance(data, tuple):
        return [default_convert(d) for d in data]
    if isinstance(data, Sequence) and not isinstance(data, (str, bytes)):
        return [default_convert(d) for d in data]
    return data
