"""Datasets, samplers and the DataLoader, with the names and semantics of ``torch.utils.data``.

A map-style ``Dataset`` answers ``dataset[i]`` and ``len(dataset)``; an ``IterableDataset`` is a stream.
A ``Sampler`` yields the indices of one epoch; a ``BatchSampler`` groups them into batches; the
``DataLoader`` fetches each batch and ``collate_fn`` (``default_collate``) stacks the samples into
Tensors.

>>> from pyengine.utils.data import TensorDataset, DataLoader
>>> ds = TensorDataset(pyengine.randn(100, 3), pyengine.randint(0, 2, (100,)))
>>> loader = DataLoader(ds, batch_size=32, shuffle=True, generator=pyengine.Generator().manual_seed(0))
>>> for x, y in loader:      # x: (32, 3) float32, y: (32,) int64; the last batch has 4 rows
...     pass
>>> len(loader)
4

Fast path: for a ``TensorDataset`` (or a ``Subset`` of one, as ``random_split`` makes) with the default
collate function, the loader indexes the underlying arrays once per batch with the batch's index array
(NumPy fancy indexing) instead of fetching and stacking samples one by one. The batches are identical;
on small models the per-sample path would cost more than the training step itself.

Randomness: ``shuffle=True`` draws a fresh permutation each epoch. With ``generator=`` the sequence of
epochs depends only on that generator's seed; without one, each epoch's permutation is seeded by a draw
from the default generator, so ``pyengine.manual_seed`` makes a whole run reproducible.

Samplers are pluggable (``sampler=``, ``batch_sampler=``). A sampler may define ``set_epoch(epoch)``
(a distributed sampler reshuffles per epoch that way); ``DataLoader.set_epoch`` forwards to it.
A sampler may also define ``_indices()``, returning the epoch's whole index order as an int64 array;
the built-in samplers do, and the fast path then slices batches out of it without a Python loop per sample.
"""
import bisect
import itertools
import math
import numbers
import warnings
from collections.abc import Mapping, Sequence

import numpy as np

from .. import random as _random
from ..ops.shape import stack as _stack
from ..random import Generator
from ..tensor import Tensor, _wrap, as_tensor, tensor

__all__ = ["DistributedSampler", "Dataset", "IterableDataset", "TensorDataset", "Subset", "ConcatDataset", "ChainDataset",
           "random_split", "Sampler", "SequentialSampler", "RandomSampler", "SubsetRandomSampler",
           "WeightedRandomSampler", "BatchSampler", "DataLoader", "default_collate", "default_convert"]


# ---------------------------------------------------------------------- datasets


class Dataset:
    """A map-style dataset: subclasses define ``__getitem__(index)`` and usually ``__len__``.

    >>> class Squares(Dataset):
    ...     def __len__(self): return 10
    ...     def __getitem__(self, i): return float(i), float(i * i)
    >>> ds = Squares() + Squares()   # a ConcatDataset of 20 samples
    """

    def __getitem__(self, index):
        raise NotImplementedError(f"{type(self).__name__} must define __getitem__")

    def __add__(self, other):
        return ConcatDataset([self, other])


class IterableDataset(Dataset):
    """A dataset that is a stream of samples: subclasses define ``__iter__``.

    Use it for data that cannot be indexed (a generator, a file read line by line). The DataLoader
    batches it in order; ``shuffle`` and samplers do not apply.

    >>> class Count(IterableDataset):
    ...     def __iter__(self): return iter(range(5))
    >>> [b.tolist() for b in DataLoader(Count(), batch_size=2)]
    [[0, 1], [2, 3], [4]]
    """

    def __iter__(self):
        raise NotImplementedError(f"{type(self).__name__} must define __iter__")

    def __add__(self, other):
        return ChainDataset([self, other])


class TensorDataset(Dataset):
    """Samples are the rows of equally long tensors: ``dataset[i] == (t[i] for t in tensors)``.

    NumPy arrays are accepted too (wrapped without a copy).

    >>> ds = TensorDataset(pyengine.randn(5, 3), pyengine.arange(5))
    >>> x, y = ds[2]          # x: (3,), y: 0-d
    """

    def __init__(self, *tensors):
        if not tensors:
            raise ValueError("TensorDataset: expected at least one tensor")
        tensors = tuple(t if isinstance(t, Tensor) else as_tensor(t) for t in tensors)
        for i, t in enumerate(tensors):
            if t.ndim == 0:
                raise ValueError(f"TensorDataset: tensor {i} is 0-d; every tensor needs a first dimension to index")
        sizes = [t.shape[0] for t in tensors]
        if len(set(sizes)) != 1:
            shapes = ", ".join(str(tuple(t.shape)) for t in tensors)
            raise ValueError(f"TensorDataset: size mismatch between tensors: every tensor must have the same size "
                             f"in its first dimension, got shapes {shapes}")
        self.tensors = tensors

    def __getitem__(self, index):
        return tuple(t[index] for t in self.tensors)

    def __len__(self):
        return self.tensors[0].shape[0]


class Subset(Dataset):
    """The samples of ``dataset`` at ``indices``, in that order.

    >>> evens = Subset(dataset, range(0, len(dataset), 2))
    """

    def __init__(self, dataset, indices):
        self.dataset = dataset
        self.indices = indices

    def __getitem__(self, idx):
        return self.dataset[self.indices[idx]]

    def __len__(self):
        return len(self.indices)


class ConcatDataset(Dataset):
    """Several map-style datasets one after the other.

    >>> ds = ConcatDataset([train_a, train_b])    # len(ds) == len(train_a) + len(train_b)
    """

    def __init__(self, datasets):
        self.datasets = list(datasets)
        if not self.datasets:
            raise ValueError("ConcatDataset: datasets should not be an empty iterable")
        for d in self.datasets:
            if isinstance(d, IterableDataset):
                raise TypeError("ConcatDataset does not support IterableDataset (use ChainDataset)")
        self.cumulative_sizes = list(itertools.accumulate(len(d) for d in self.datasets))

    def __len__(self):
        return self.cumulative_sizes[-1]

    def __getitem__(self, idx):
        n = len(self)
        if idx < 0:
            idx += n
        if not 0 <= idx < n:
            raise IndexError(f"ConcatDataset: index out of range for a dataset of length {n}")
        i = bisect.bisect_right(self.cumulative_sizes, idx)
        start = self.cumulative_sizes[i - 1] if i > 0 else 0
        return self.datasets[i][idx - start]


class ChainDataset(IterableDataset):
    """Several iterable datasets chained into one stream."""

    def __init__(self, datasets):
        self.datasets = list(datasets)

    def __iter__(self):
        for d in self.datasets:
            yield from d

    def __len__(self):
        return sum(len(d) for d in self.datasets)


def random_split(dataset, lengths, generator=None):
    """Split ``dataset`` into non-overlapping random ``Subset``s of the given lengths.

    ``lengths`` are sample counts summing to ``len(dataset)``, or fractions summing to 1: then each
    split gets ``floor(frac * n)`` samples and the remainder is dealt one by one from the first
    split on (as PyTorch).

    >>> train, val = random_split(ds, [0.8, 0.2], generator=pyengine.Generator().manual_seed(42))
    """
    n = len(dataset)
    lengths = list(lengths)
    if math.isclose(sum(lengths), 1) and sum(lengths) <= 1:
        sizes = []
        for i, frac in enumerate(lengths):
            if not 0 <= frac <= 1:
                raise ValueError(f"random_split: fraction at index {i} is not between 0 and 1: {frac}")
            sizes.append(int(math.floor(n * frac)))
        for i in range(n - sum(sizes)):
            sizes[i % len(sizes)] += 1
        for i, size in enumerate(sizes):
            if size == 0:
                warnings.warn(f"random_split: length of split at index {i} is 0; this split will be empty",
                              stacklevel=2)
        lengths = sizes
    for length in lengths:
        if not isinstance(length, numbers.Integral) or length < 0:
            raise ValueError(f"random_split: lengths must be non-negative integers or fractions summing to 1, "
                             f"got {lengths}")
    if sum(lengths) != n:
        raise ValueError(f"random_split: sum of input lengths ({sum(lengths)}) does not equal the length of the "
                         f"input dataset ({n})")
    perm = _numpy_rng(generator).permutation(n).tolist()
    subsets, offset = [], 0
    for length in lengths:
        subsets.append(Subset(dataset, perm[offset:offset + length]))
        offset += length
    return subsets


# ---------------------------------------------------------------------- samplers


def _numpy_rng(generator):
    """The numpy.random.Generator behind a pyengine.Generator (the default generator for None)."""
    if generator is not None and not isinstance(generator, Generator):
        raise TypeError(f"generator must be a pyengine.Generator, got {type(generator).__name__}")
    return _random._rng(generator)


def _epoch_rng(generator):
    """The random stream for one epoch: the given generator itself (its state carries on from epoch to
    epoch), or, without one, a fresh stream seeded by one draw from the default generator."""
    if generator is not None:
        return _numpy_rng(generator)
    seed = int(_random.default_generator.numpy.integers(2 ** 63))
    return np.random.default_rng(seed)


class Sampler:
    """Yields the dataset indices of one epoch. Subclasses define ``__iter__`` and usually ``__len__``.

    Optional hooks the DataLoader uses when present: ``set_epoch(epoch)``, and ``_indices()`` (the
    epoch's whole order as an int64 array, for the TensorDataset fast path; it must give the order
    ``__iter__`` would, and a class that overrides ``__iter__`` must define its own ``_indices`` too).
    """

    def __init__(self, data_source=None):
        pass

    def __iter__(self):
        raise NotImplementedError(f"{type(self).__name__} must define __iter__")


class SequentialSampler(Sampler):
    """0, 1, ..., len(data_source) - 1."""

    def __init__(self, data_source):
        self.data_source = data_source

    def _indices(self):
        return np.arange(len(self.data_source), dtype=np.int64)

    def __iter__(self):
        return iter(range(len(self.data_source)))

    def __len__(self):
        return len(self.data_source)


class RandomSampler(Sampler):
    """A random permutation of the indices each epoch (or ``num_samples`` draws with ``replacement``).

    Without replacement and with ``num_samples > len(data_source)``, whole permutations are chained.

    >>> list(RandomSampler(range(5), generator=pyengine.Generator().manual_seed(0)))   # same every run
    """

    def __init__(self, data_source, replacement=False, num_samples=None, generator=None):
        self.data_source = data_source
        self.replacement = bool(replacement)
        self._num_samples = num_samples
        self.generator = generator
        if generator is not None:
            _numpy_rng(generator)  # type check now, not at the first epoch
        if not isinstance(self.num_samples, numbers.Integral) or self.num_samples <= 0:
            raise ValueError(f"RandomSampler: num_samples should be a positive integer value, "
                             f"but got num_samples={self.num_samples}")

    @property
    def num_samples(self):
        return len(self.data_source) if self._num_samples is None else self._num_samples

    def _indices(self):
        n = len(self.data_source)
        rng = _epoch_rng(self.generator)
        if self.replacement:
            return rng.integers(0, n, size=self.num_samples, dtype=np.int64)
        full, rest = divmod(self.num_samples, n)
        parts = [rng.permutation(n) for _ in range(full)]
        if rest:
            parts.append(rng.permutation(n)[:rest])
        return np.concatenate(parts).astype(np.int64, copy=False)

    def __iter__(self):
        return iter(self._indices().tolist())

    def __len__(self):
        return self.num_samples


class SubsetRandomSampler(Sampler):
    """The given indices in a random order each epoch."""

    def __init__(self, indices, generator=None):
        self.indices = indices
        self.generator = generator

    def _indices(self):
        idx = np.asarray(self.indices, dtype=np.int64)
        return idx[_epoch_rng(self.generator).permutation(len(idx))]

    def __iter__(self):
        return iter(self._indices().tolist())

    def __len__(self):
        return len(self.indices)


class WeightedRandomSampler(Sampler):
    """``num_samples`` indices drawn with probability proportional to ``weights`` (e.g. to balance classes).

    >>> w = 1.0 / np.bincount(labels)[labels]          # rare classes drawn as often as common ones
    >>> sampler = WeightedRandomSampler(w, num_samples=len(labels))
    """

    def __init__(self, weights, num_samples, replacement=True, generator=None):
        w = np.asarray(weights.data if isinstance(weights, Tensor) else weights, dtype=np.float64)
        if w.ndim != 1 or w.size == 0 or np.any(w < 0) or not np.all(np.isfinite(w)) or w.sum() <= 0:
            raise ValueError("WeightedRandomSampler: weights must be a non-empty 1-D sequence of finite, "
                             "non-negative numbers with a positive sum")
        if not isinstance(num_samples, numbers.Integral) or num_samples <= 0:
            raise ValueError(f"WeightedRandomSampler: num_samples should be a positive integer, got {num_samples}")
        if not replacement and num_samples > np.count_nonzero(w):
            raise ValueError("WeightedRandomSampler: without replacement, num_samples cannot exceed the number "
                             "of non-zero weights")
        self.weights, self.num_samples = w, int(num_samples)
        self.replacement, self.generator = bool(replacement), generator

    def _indices(self):
        rng = _epoch_rng(self.generator)
        return rng.choice(len(self.weights), size=self.num_samples, replace=self.replacement,
                          p=self.weights / self.weights.sum()).astype(np.int64)

    def __iter__(self):
        return iter(self._indices().tolist())

    def __len__(self):
        return self.num_samples


class BatchSampler(Sampler):
    """Groups the indices of ``sampler`` into lists of ``batch_size`` (the last one shorter unless
    ``drop_last``).

    >>> list(BatchSampler(SequentialSampler(range(5)), batch_size=2, drop_last=False))
    [[0, 1], [2, 3], [4]]
    """

    def __init__(self, sampler, batch_size, drop_last):
        if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size <= 0:
            raise ValueError(f"BatchSampler: batch_size should be a positive integer value, "
                             f"but got batch_size={batch_size}")
        if not isinstance(drop_last, bool):
            raise ValueError(f"BatchSampler: drop_last should be a boolean value, but got drop_last={drop_last}")
        self.sampler, self.batch_size, self.drop_last = sampler, int(batch_size), drop_last

    def __iter__(self):
        batch = []
        for idx in self.sampler:
            batch.append(idx)
            if len(batch) == self.batch_size:
                yield batch
                batch = []
        if batch and not self.drop_last:
            yield batch

    def _array_batches(self):
        """The same batches as index arrays, sliced out of the sampler's ``_indices()``."""
        idx = self.sampler._indices()
        stop = len(idx) - len(idx) % self.batch_size if self.drop_last else len(idx)
        return (idx[i:i + self.batch_size] for i in range(0, stop, self.batch_size))

    def __len__(self):
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)


# ---------------------------------------------------------------------- collate


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
        return _wrap(np.stack([x.data for x in batch]))
    if isinstance(elem, np.ndarray):
        if elem.dtype.kind in "USO":
            raise TypeError(f"default_collate: cannot make a Tensor of numpy arrays of dtype {elem.dtype}")
        shapes = {x.shape for x in batch}
        if len(shapes) != 1:
            raise RuntimeError(f"default_collate: each array in the batch should be of equal size, "
                               f"got shapes {sorted(shapes)}")
        return as_tensor(np.stack(batch))
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


# ---------------------------------------------------------------------- DataLoader


def _tensor_arrays(dataset):
    """``(arrays, index_map)`` when ``dataset`` is a TensorDataset, or a chain of Subsets of one, whose
    tensors need no grad; ``index_map`` maps the loader's indices to rows (None: identity). Else None."""
    index_map = None
    while type(dataset) is Subset:
        idx = np.asarray(dataset.indices, dtype=np.int64)
        index_map = idx if index_map is None else idx[index_map]
        dataset = dataset.dataset
    if type(dataset) is not TensorDataset or any(t.requires_grad for t in dataset.tensors):
        return None
    return [t.data for t in dataset.tensors], index_map


def _has_index_array(sampler):
    """Whether ``sampler._indices()`` gives the same order as ``iter(sampler)``: true for the built-in
    samplers and for classes that define ``_indices`` themselves, but not for a subclass that overrides
    only ``__iter__``."""
    cls = type(sampler)
    return cls in (SequentialSampler, RandomSampler, SubsetRandomSampler, WeightedRandomSampler) or \
        "_indices" in cls.__dict__


class DataLoader:
    """Iterate over a dataset in batches: ``for x, y in DataLoader(ds, batch_size=64, shuffle=True)``.

    Args:
        dataset: a map-style ``Dataset`` (anything with ``__getitem__`` and ``__len__``) or an ``IterableDataset``.
        batch_size: samples per batch; ``None`` turns automatic batching off (one sample at a time).
        shuffle: a new random order each epoch (uses ``RandomSampler(dataset, generator=generator)``).
        sampler: a ``Sampler`` (or any iterable of indices) giving the order; excludes ``shuffle``.
        batch_sampler: yields whole lists of indices; excludes batch_size, shuffle, sampler, drop_last.
        num_workers: must be 0 (samples are loaded in the main process).
        collate_fn: merges a list of samples into a batch (default: ``default_collate``).
        pin_memory: accepted for compatibility; has no effect (CPU tensors only).
        drop_last: drop the last batch when it is shorter than ``batch_size``.
        generator: the ``pyengine.Generator`` that drives shuffling.

    >>> g = pyengine.Generator().manual_seed(0)
    >>> loader = DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True, drop_last=True, generator=g)
    >>> for epoch in range(3):
    ...     loader.set_epoch(epoch)          # forwarded to samplers that define it (distributed ones)
    ...     for xb, yb in loader: ...
    """

    def __init__(self, dataset, batch_size=1, shuffle=False, sampler=None, batch_sampler=None, num_workers=0,
                 collate_fn=None, pin_memory=False, drop_last=False, *, generator=None):
        if not isinstance(num_workers, numbers.Integral) or num_workers < 0:
            raise ValueError(f"DataLoader: num_workers must be a non-negative integer, got {num_workers}")
        if num_workers > 0:
            raise NotImplementedError(f"DataLoader: num_workers={num_workers} (worker processes) is not "
                                      f"implemented; pyengine loads data in the main process, use num_workers=0")
        iterable = isinstance(dataset, IterableDataset)
        if iterable:
            if shuffle:
                raise ValueError("DataLoader with IterableDataset: expected unspecified shuffle option, "
                                 f"but got shuffle={shuffle}")
            if sampler is not None or batch_sampler is not None:
                raise ValueError("DataLoader with IterableDataset: expected unspecified sampler and "
                                 "batch_sampler options")
        if sampler is not None and shuffle:
            raise ValueError("DataLoader: sampler option is mutually exclusive with shuffle")
        if batch_sampler is not None:
            if batch_size != 1 or shuffle or sampler is not None or drop_last:
                raise ValueError("DataLoader: batch_sampler option is mutually exclusive with batch_size, "
                                 "shuffle, sampler, and drop_last")
            batch_size, drop_last = None, False
        elif batch_size is None and drop_last:
            raise ValueError("DataLoader: batch_size=None option disables auto-batching and is mutually "
                             "exclusive with drop_last")
        if generator is not None:
            _numpy_rng(generator)  # type check
        if sampler is None and not iterable:
            sampler = RandomSampler(dataset, generator=generator) if shuffle else SequentialSampler(dataset)
        if batch_size is not None and batch_sampler is None and not iterable:
            batch_sampler = BatchSampler(sampler, batch_size, bool(drop_last))

        self.dataset = dataset
        self.batch_size = batch_size
        self.drop_last = bool(drop_last)
        self.sampler = sampler
        self.batch_sampler = batch_sampler
        self.num_workers = 0
        self.pin_memory = pin_memory
        self.generator = generator
        self._auto_collation = batch_sampler is not None or (iterable and batch_size is not None)
        self._default_collate = collate_fn is None
        if collate_fn is None:
            collate_fn = default_collate if self._auto_collation else default_convert
        self.collate_fn = collate_fn

    def __iter__(self):
        if isinstance(self.dataset, IterableDataset):
            return self._iter_stream()
        if self.batch_sampler is None:
            return (self.collate_fn(self.dataset[i]) for i in self.sampler)
        fast = _tensor_arrays(self.dataset) if self._default_collate else None
        if fast is None:
            return (self.collate_fn([self.dataset[i] for i in batch]) for batch in self.batch_sampler)
        return self._iter_fast(*fast)

    def _iter_fast(self, arrays, index_map):
        """TensorDataset fast path: one fancy-indexing gather per tensor per batch."""
        bs = self.batch_sampler
        if type(bs) is BatchSampler and _has_index_array(bs.sampler):
            batches = bs._array_batches()
        else:
            batches = (np.asarray(b, dtype=np.int64) for b in bs)
        for idx in batches:
            rows = idx if index_map is None else index_map[idx]
            yield [_wrap(a[rows]) for a in arrays]

    def _iter_stream(self):
        it = iter(self.dataset)
        if self.batch_size is None:
            for sample in it:
                yield self.collate_fn(sample)
            return
        while True:
            batch = list(itertools.islice(it, self.batch_size))
            if not batch or (self.drop_last and len(batch) < self.batch_size):
                return
            yield self.collate_fn(batch)

    def __len__(self):
        """Batches per epoch (for an IterableDataset: from its ``__len__``, when it has one)."""
        if isinstance(self.dataset, IterableDataset):
            n = len(self.dataset)
            if self.batch_size is None:
                return n
            return n // self.batch_size if self.drop_last else -(-n // self.batch_size)
        if self.batch_sampler is not None:
            return len(self.batch_sampler)
        return len(self.sampler)

    def set_epoch(self, epoch):
        """Tell the sampler (and batch sampler) that a new epoch starts, if they define ``set_epoch``.

        A distributed sampler reshuffles per epoch this way; the built-in samplers need no call.
        """
        seen = set()
        for s in (self.sampler, getattr(self.batch_sampler, "sampler", None), self.batch_sampler):
            if s is not None and id(s) not in seen and hasattr(s, "set_epoch"):
                seen.add(id(s))
                s.set_epoch(epoch)

from .distributed_sampler import DistributedSampler  # noqa: E402  (subclasses Sampler, defined above)
