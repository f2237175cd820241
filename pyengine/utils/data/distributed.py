"""``torch.utils.data.distributed``: DistributedSampler, each rank of a data-parallel job reads its own
shard of the dataset."""
import math
import numbers

import numpy as np

from .sampler import Sampler, _iter_chunks

__all__ = ["DistributedSampler"]


class DistributedSampler(Sampler):
    """The indices of rank ``rank``'s shard of ``dataset``, one of ``num_replicas`` disjoint shards.

    Every epoch the whole index list is (optionally) shuffled with a permutation that depends only on
    ``(seed, epoch)`` - the same on every rank, so the shards stay disjoint - then made divisible by
    ``num_replicas`` and dealt round-robin: rank r takes positions r, r + R, r + 2R, ...

    Divisibility: by default the list is padded by repeating its first indices (so a few samples are
    seen twice per epoch); with ``drop_last=True`` its tail is dropped instead. Either way every rank
    gets ``len(sampler)`` samples, so every rank runs the same number of steps (a rank with one batch
    more would wait forever in its extra allreduce).

    Args:
        dataset: anything with ``len()``.
        num_replicas, rank: default: the world size and rank of ``pyengine.distributed``.
        shuffle: shuffle the indices each epoch (call ``set_epoch`` / ``DataLoader.set_epoch`` each epoch).
        seed: the shuffle seed; must be the same on every rank.
        drop_last: drop the tail instead of padding.

    >>> sampler = DistributedSampler(ds, num_replicas=2, rank=0, shuffle=False)
    >>> list(sampler)                   # len(ds) == 5: padded to 6, rank 0 takes 0, 2, 4
    [0, 2, 4]
    >>> loader = DataLoader(ds, batch_size=32, sampler=sampler)
    >>> for epoch in range(3):
    ...     loader.set_epoch(epoch)     # forwarded to sampler.set_epoch: a new shuffle each epoch
    """

    def __init__(self, dataset, num_replicas=None, rank=None, shuffle=True, seed=0, drop_last=False):
        if num_replicas is None or rank is None:
            from ... import distributed as dist
            if num_replicas is None:
                num_replicas = dist.get_world_size()
            if rank is None:
                rank = dist.get_rank()
        if isinstance(num_replicas, bool) or not isinstance(num_replicas, numbers.Integral) or num_replicas < 1:
            raise ValueError(f"DistributedSampler: num_replicas must be a positive integer, got {num_replicas!r}")
        if isinstance(rank, bool) or not isinstance(rank, numbers.Integral) or not 0 <= rank < num_replicas:
            raise ValueError(f"DistributedSampler: invalid rank {rank!r}, rank should be in the interval "
                             f"[0, {num_replicas - 1}]")
        self.dataset = dataset
        self.num_replicas, self.rank = int(num_replicas), int(rank)
        self.shuffle, self.seed, self.drop_last = bool(shuffle), int(seed), bool(drop_last)
        self.epoch = 0
        n = len(dataset)
        if self.drop_last:
            self.num_samples = n // self.num_replicas
        else:
            self.num_samples = math.ceil(n / self.num_replicas)
        self.total_size = self.num_samples * self.num_replicas

    def set_epoch(self, epoch):
        """Use the shuffle of epoch ``epoch`` (the same permutation on every rank)."""
        self.epoch = int(epoch)

    def _index_chunks(self):
        n = len(self.dataset)
        if self.shuffle:
            idx = np.random.default_rng([self.seed, self.epoch]).permutation(n).astype(np.int64)
        else:
            idx = np.arange(n, dtype=np.int64)
        if self.drop_last:
            idx = idx[:self.total_size]
        elif self.total_size > n:
            if n == 0:
                raise ValueError("DistributedSampler: cannot pad an empty dataset")
            idx = np.resize(idx, self.total_size)  # repeats from the start as often as needed
        yield idx[self.rank:self.total_size:self.num_replicas]

    def __iter__(self):
        return _iter_chunks(self._index_chunks())

    def __len__(self):
        return self.num_samples
