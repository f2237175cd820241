"""Fetching one batch: what a DataLoader does per batch, in the main process or in a worker.

A fetcher is given what the index stream yields (a batch's indices, one sample's index, or None for a
stream) and returns the collated batch; a stream's fetcher raises StopIteration at its end.
"""
import itertools
from collections import namedtuple

import numpy as np

from ...tensor import _wrap
from .dataset import Subset, TensorDataset

# How a DataLoader fetches: picklable, so a worker process builds the same fetcher.
FetchSpec = namedtuple("FetchSpec", "iterable auto_collation collate_fn fast drop_last batch_size")


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
    return [t._data for t in dataset.tensors], index_map


class _MapFetcher:
    """Map-style: ``collate_fn([dataset[i] for i in batch])``, or one gather per tensor (the TensorDataset
    fast path), or ``dataset.__getitems__(batch)`` when the dataset fetches whole batches (as PyTorch)."""

    def __init__(self, dataset, spec):
        self.dataset, self.spec = dataset, spec
        self.fast = _tensor_arrays(dataset) if spec.fast else None
        self.getitems = getattr(dataset, "__getitems__", None)

    def fetch(self, index):
        if not self.spec.auto_collation:
            return self.spec.collate_fn(self.dataset[index])
        if self.fast is not None:
            arrays, index_map = self.fast
            rows = np.asarray(index, dtype=np.int64)
            if index_map is not None:
                rows = index_map[rows]
            return [_wrap(a[rows]) for a in arrays]
        if isinstance(index, np.ndarray):
            index = index.tolist()  # datasets get Python ints, as from a list-yielding BatchSampler
        samples = self.getitems(index) if self.getitems else [self.dataset[i] for i in index]
        return self.spec.collate_fn(samples)


class _StreamFetcher:
    """IterableDataset: the next ``batch_size`` samples of ``iter(dataset)`` (created here, so in a worker
    after ``worker_init_fn``); a short last batch ends the stream, and is dropped with ``drop_last``."""

    def __init__(self, dataset, spec):
        self.spec, self.it, self.ended = spec, iter(dataset), False

    def fetch(self, _):
        spec = self.spec
        if self.ended:
            raise StopIteration
        if not spec.auto_collation:
            return spec.collate_fn(next(self.it))
        batch = list(itertools.islice(self.it, spec.batch_size))
        if len(batch) < spec.batch_size:
            self.ended = True
            if not batch or spec.drop_last:
                raise StopIteration
        return spec.collate_fn(batch)


def make_fetcher(dataset, spec):
    return (_StreamFetcher if spec.iterable else _MapFetcher)(dataset, spec)
