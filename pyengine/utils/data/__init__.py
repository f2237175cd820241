"""Datasets, samplers and the DataLoader, with the names, semantics and module paths of ``torch.utils.data``.

A map-style ``Dataset`` answers ``dataset[i]`` and ``len(dataset)``; an ``IterableDataset`` is a stream.
A ``Sampler`` yields the indices of one epoch; a ``BatchSampler`` groups them into batches; the
``DataLoader`` fetches each batch (in the main process, or in ``num_workers`` worker processes) and
``collate_fn`` (``default_collate``) stacks the samples into Tensors.

>>> from pyengine.utils.data import TensorDataset, DataLoader
>>> ds = TensorDataset(pyengine.randn(100, 3), pyengine.randint(0, 2, (100,)))
>>> loader = DataLoader(ds, batch_size=32, shuffle=True, generator=pyengine.Generator().manual_seed(0))
>>> for x, y in loader:      # x: (32, 3) float32, y: (32,) int64; the last batch has 4 rows
...     pass
>>> len(loader)
4

Modules, as PyTorch's (each name has one implementation; this package re-exports them all):
``dataset`` (Dataset, IterableDataset, TensorDataset, StackDataset, ConcatDataset, ChainDataset, Subset,
random_split), ``sampler`` (Sampler, SequentialSampler, RandomSampler, SubsetRandomSampler,
WeightedRandomSampler, BatchSampler), ``dataloader`` (DataLoader, default_collate, default_convert,
get_worker_info), ``distributed`` (DistributedSampler). Private: ``_collate``, ``_fetch`` (one batch's
fetch, shared by the main process and the workers), ``_worker`` (the worker processes' loop).

Fast path: for a ``TensorDataset`` (or a ``Subset`` of one, as ``random_split`` makes) with the default
collate function, the loader indexes the underlying arrays once per batch with the batch's index array
(NumPy fancy indexing) instead of fetching and stacking samples one by one. The batches are identical;
on small models the per-sample path would cost more than the training step itself.

Randomness: ``shuffle=True`` draws a fresh permutation each epoch. With ``generator=`` the sequence of
epochs depends only on that generator's seed; without one, each epoch's permutation is seeded by a draw
from the default generator, so ``pyengine.manual_seed`` makes a whole run reproducible, with or without
workers (``dataloader``'s docstring says how workers are seeded).

Samplers are pluggable (``sampler=``, ``batch_sampler=``). A sampler may define ``set_epoch(epoch)``
(a distributed sampler reshuffles per epoch that way); ``DataLoader.set_epoch`` forwards to it. The
built-in samplers draw their indices lazily, in chunks (``sampler``'s docstring).
"""
from ._worker import WorkerInfo, get_worker_info
from .dataloader import DataLoader, default_collate, default_convert
from .dataset import (ChainDataset, ConcatDataset, Dataset, IterableDataset, StackDataset, Subset, TensorDataset,
                      random_split)
from .distributed import DistributedSampler
from .sampler import (BatchSampler, RandomSampler, Sampler, SequentialSampler, SubsetRandomSampler,
                      WeightedRandomSampler)

__all__ = ["DistributedSampler", "Dataset", "IterableDataset", "TensorDataset", "StackDataset", "Subset",
           "ConcatDataset", "ChainDataset", "random_split", "Sampler", "SequentialSampler", "RandomSampler",
           "SubsetRandomSampler", "WeightedRandomSampler", "BatchSampler", "DataLoader", "default_collate",
           "default_convert", "get_worker_info", "WorkerInfo"]
