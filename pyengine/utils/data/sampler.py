"""Samplers: ``torch.utils.data.sampler``'s classes.

A ``Sampler`` yields the dataset indices of one epoch; a ``BatchSampler`` groups them into batches.

Laziness: an epoch's indices are drawn in chunks of at most ``_CHUNK`` (4096) as the epoch is read,
never all at once, so ``RandomSampler(ds, replacement=True, num_samples=10**10)`` costs kilobytes, not the
74 GiB of a whole index array (PyTorch's replacement sampler draws 32 indices at a time; a bigger chunk
keeps NumPy's per-call cost below 2 ns an index). Without replacement a chunk is one permutation of the
data source, as in PyTorch.

Optional hooks the DataLoader uses when a class defines them at least as derived as its ``__iter__``:
``set_epoch(epoch)``; ``Sampler._index_chunks()``, the epoch's order as a stream of int64 arrays (what
``__iter__`` yields, concatenated); ``BatchSampler._array_batches()``, the batches as int64 arrays. The
TensorDataset fast path slices batches out of those arrays without a Python loop per sample.
"""
import numbers

import numpy as np

from ... import random as _random
from ...random import Generator
from ...tensor import Tensor

__all__ = ["Sampler", "SequentialSampler", "RandomSampler", "SubsetRandomSampler", "WeightedRandomSampler",
           "BatchSampler"]

_CHUNK = 4096  # indices drawn (and turned into Python ints) at a time


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


def _chunked(total, draw):
    """``draw(k)`` for consecutive k of at most ``_CHUNK`` summing to ``total`` (lazily)."""
    for start in range(0, total, _CHUNK):
        yield draw(min(_CHUNK, total - start))


def _iter_chunks(chunks):
    """The indices of a stream of index arrays, as Python ints (at most ``_CHUNK`` converted at a time)."""
    for chunk in chunks:
        for start in range(0, len(chunk), _CHUNK):
            yield from chunk[start:start + _CHUNK].tolist()


def _has_fast(obj, name):
    """Whether ``obj.<name>()`` describes what ``iter(obj)`` yields: its class defines ``name`` at least as
    derived as ``__iter__`` (a subclass that overrides only ``__iter__`` must not use the inherited one)."""
    mro = type(obj).__mro__

    def owner(attr):
        return next((i for i, cls in enumerate(mro) if attr in cls.__dict__), None)

    fast, it = owner(name), owner("__iter__")
    return fast is not None and it is not None and fast <= it


class Sampler:
    """Yields the dataset indices of one epoch. Subclasses define ``__iter__`` and usually ``__len__``.

    A subclass may also define ``set_epoch(epoch)`` (called by ``DataLoader.set_epoch``) and
    ``_index_chunks()`` (see the module's docstring).
    """

    def __init__(self, data_source=None):
        pass

    def __iter__(self):
        raise NotImplementedError(f"{type(self).__name__} must define __iter__")


class SequentialSampler(Sampler):
    """0, 1, ..., len(data_source) - 1."""

    def __init__(self, data_source):
        self.data_source = data_source

    def _index_chunks(self):
        n = len(self.data_source)
        return (np.arange(start, min(n, start + _CHUNK), dtype=np.int64) for start in range(0, n, _CHUNK))

    def __iter__(self):
        return iter(range(len(self.data_source)))

    def __len__(self):
        return len(self.data_source)


class RandomSampler(Sampler):
    """A random permutation of the indices each epoch (or ``num_samples`` draws with ``replacement``).

    Without replacement and with ``num_samples > len(data_source)``, whole permutations are chained.
    Indices are drawn as they are read (see the module's docstring): ``num_samples`` may be huge.

    >>> list(RandomSampler(range(5), generator=pyengine.Generator().manual_seed(0)))   # same every run
    >>> s = RandomSampler(range(10), replacement=True, num_samples=10**10)   # len(s) == 10**10, no allocation
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

    def _index_chunks(self):
        n, total = len(self.data_source), int(self.num_samples)
        rng = _epoch_rng(self.generator)
        if self.replacement:
            yield from _chunked(total, lambda k: rng.integers(0, n, size=k, dtype=np.int64))
            return
        for start in range(0, total, n):
            perm = rng.permutation(n).astype(np.int64, copy=False)
            yield perm if total - start >= n else perm[:total - start]

    def __iter__(self):
        return _iter_chunks(self._index_chunks())

    def __len__(self):
        return self.num_samples


class SubsetRandomSampler(Sampler):
    """The given indices in a random order each epoch."""

    def __init__(self, indices, generator=None):
        self.indices = indices
        self.generator = generator

    def _index_chunks(self):
        idx = np.asarray(self.indices, dtype=np.int64)
        yield idx[_epoch_rng(self.generator).permutation(len(idx))]

    def __iter__(self):
        return _iter_chunks(self._index_chunks())

    def __len__(self):
        return len(self.indices)


class WeightedRandomSampler(Sampler):
    """``num_samples`` indices drawn with probability proportional to ``weights`` (e.g. to balance classes).

    With replacement the draws are made as they are read, so ``num_samples`` may be huge.

    >>> w = 1.0 / np.bincount(labels)[labels]          # rare classes drawn as often as common ones
    >>> sampler = WeightedRandomSampler(w, num_samples=len(labels))
    """

    def __init__(self, weights, num_samples, replacement=True, generator=None):
        w = np.asarray(weights._data if isinstance(weights, Tensor) else weights, dtype=np.float64)
        if w.ndim != 1 or w.size == 0 or np.any(w < 0) or not np.all(np.isfinite(w)) or w.sum() <= 0:
            raise ValueError("WeightedRandomSampler: weights must be a non-empty 1-D sequence of finite, "
                             "non-negative numbers with a positive sum")
        if isinstance(num_samples, bool) or not isinstance(num_samples, numbers.Integral) or num_samples <= 0:
            raise ValueError(f"WeightedRandomSampler: num_samples should be a positive integer, got {num_samples}")
        if not replacement and num_samples > np.count_nonzero(w):
            raise ValueError("WeightedRandomSampler: without replacement, num_samples cannot exceed the number "
                             "of non-zero weights")
        self.weights, self.num_samples = w, int(num_samples)
        self.replacement, self.generator = bool(replacement), generator

    def _index_chunks(self):
        rng = _epoch_rng(self.generator)
        if not self.replacement:  # at most len(weights) indices
            yield rng.choice(len(self.weights), size=self.num_samples, replace=False,
                             p=self.weights / self.weights.sum()).astype(np.int64)
            return
        # Inverse-CDF sampling, as Generator.choice does, with the CDF built once per epoch.
        cdf = np.cumsum(self.weights)
        cdf /= cdf[-1]
        yield from _chunked(self.num_samples,
                            lambda k: np.searchsorted(cdf, rng.random(k), side="right").astype(np.int64))

    def __iter__(self):
        return _iter_chunks(self._index_chunks())

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
        """The same batches as int64 arrays, sliced out of the sampler's ``_index_chunks()``."""
        bs, pending = self.batch_size, None
        for chunk in self.sampler._index_chunks():
            if pending is not None and len(pending):
                chunk = np.concatenate([pending, chunk])
            full = len(chunk) - len(chunk) % bs
            for start in range(0, full, bs):
                yield chunk[start:start + bs]
            pending = chunk[full:]
        if pending is not None and len(pending) and not self.drop_last:
            yield pending

    def __len__(self):
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)
