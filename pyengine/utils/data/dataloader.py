"""``torch.utils.data.dataloader``: the DataLoader, loading in the main process or in worker processes.

Worker processes (``num_workers=W > 0``) follow PyTorch's protocol, so a program sees what it would see
there. The main process walks the index stream (sampler, batch sampler) and sends batch k's indices to
worker k mod W, keeping ``prefetch_factor * W`` batches in flight; each worker fetches and collates its
batches and returns them pickled through one shared result queue; the main process hands batches out in
index order, holding those that arrive early. So the batches are those of ``num_workers=0``, in the same
order. An IterableDataset is iterated whole by every worker (shard it with ``get_worker_info()``), batches
taken from the workers in turn until each is exhausted.

Seeds: every ``iter(loader)`` draws one base seed from the loader's generator (the default generator when
none is given; PyTorch draws it the same way), whatever ``num_workers`` is, so the sampler's stream, hence
the order, does not depend on ``num_workers``, and ``pyengine.manual_seed`` makes loading reproducible.
Worker i seeds Python's ``random`` and pyengine's default generator with base seed + i, and NumPy's global
generator as PyTorch does; with ``persistent_workers`` the workers keep the seeds of their first epoch.
One difference no loader can hide (PyTorch's too): a ``__getitem__`` that draws from the global generators
moves the main process's default generator only when it runs there (``num_workers=0``), so the next
epoch's shuffle differs between the two; ``generator=`` keeps the order apart from such draws.

Failures name the worker: an exception in a worker is raised again in the main process with the worker's
id and traceback text (PyTorch's "Caught ValueError in DataLoader worker process 1"); a worker that dies
(a signal, ``os._exit``) gives ``RuntimeError: DataLoader worker (pid N) exited unexpectedly ...`` within
``_POLL_INTERVAL``; with ``timeout`` a batch that takes longer gives a RuntimeError naming the worker.

Shutdown: workers are stopped (told to exit, joined, terminated after ``_JOIN_TIMEOUT``) when an epoch
ends (unless persistent), when the iterator is garbage-collected (an early ``break``, an exception in the
loop), on Ctrl-C while waiting for a batch, and at interpreter exit (workers are daemonic processes); a
worker whose main process was killed notices within a second and exits.

Threads: a worker runs one compute thread (pyengine's kernels, OpenMP and OpenBLAS; PyTorch's workers call
``torch.set_num_threads(1)``), so W workers use W cores. Do not raise it in a forked worker: once the main
process has run an OpenMP region, a multi-threaded kernel in a forked child hangs in libgomp.
"""
import atexit
import itertools
import multiprocessing
import multiprocessing.util  # noqa: F401  (registers its atexit hook before ours: ours runs first)
import numbers
import os
import pickle
import queue
import signal
import time
import warnings
import weakref

from ._collate import default_collate, default_convert
from ._fetch import FetchSpec, make_fetcher
from ._worker import _ResumeIteration, _StreamEnd, _worker_loop, _WorkerError, get_worker_info
from .dataset import IterableDataset
from .sampler import BatchSampler, RandomSampler, SequentialSampler, _has_fast, _numpy_rng

__all__ = ["DataLoader", "default_collate", "default_convert", "get_worker_info"]

_POLL_INTERVAL = 0.1  # seconds between checks that the workers are alive while waiting for a batch
_JOIN_TIMEOUT = 5.0   # seconds workers get to exit at shutdown before they are terminated (PyTorch's 5 s)


class DataLoader:
    """Iterate over a dataset in batches: ``for x, y in DataLoader(ds, batch_size=64, shuffle=True)``.

    Args (PyTorch's, in its order):
        dataset: a map-style ``Dataset`` (anything with ``__getitem__`` and ``__len__``) or an ``IterableDataset``.
        batch_size: samples per batch; ``None`` turns automatic batching off (one sample at a time).
        shuffle: a new random order each epoch (uses ``RandomSampler(dataset, generator=generator)``).
        sampler: a ``Sampler`` (or any iterable of indices) giving the order; excludes ``shuffle``.
        batch_sampler: yields whole lists of indices; excludes batch_size, shuffle, sampler, drop_last.
        num_workers: worker processes that load batches (0: in the main process). See the module's docstring.
        collate_fn: merges a list of samples into a batch (default: ``default_collate``).
        pin_memory: accepted for compatibility; has no effect (CPU tensors only).
        drop_last: drop the last batch when it is shorter than ``batch_size``.
        timeout: seconds to wait for a batch from the workers (0: forever); then RuntimeError.
        worker_init_fn: called as ``worker_init_fn(worker_id)`` in each worker, after seeding, before loading.
        multiprocessing_context: 'fork', 'spawn', 'forkserver' or a multiprocessing context (default:
            multiprocessing's default start method, as PyTorch). With spawn/forkserver the dataset,
            collate_fn and worker_init_fn must be picklable.
        generator: the ``pyengine.Generator`` that drives shuffling and the workers' base seed.
        prefetch_factor: batches in flight per worker (default 2 with workers).
        persistent_workers: keep the workers (and their dataset copies) from epoch to epoch.

    >>> g = pyengine.Generator().manual_seed(0)
    >>> loader = DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True, drop_last=True, generator=g)
    >>> for epoch in range(3):
    ...     loader.set_epoch(epoch)          # forwarded to samplers that define it (distributed ones)
    ...     for xb, yb in loader: ...
    >>> loader = DataLoader(images, batch_size=64, shuffle=True, num_workers=2)   # __getitem__ in 2 processes
    """

    def __init__(self, dataset, batch_size=1, shuffle=False, sampler=None, batch_sampler=None, num_workers=0,
                 collate_fn=None, pin_memory=False, drop_last=False, timeout=0, worker_init_fn=None,
                 multiprocessing_context=None, generator=None, *, prefetch_factor=None, persistent_workers=False):
        self._check_worker_options(num_workers, timeout, worker_init_fn, multiprocessing_context,
                                   prefetch_factor, persistent_workers)
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
        self.num_workers = int(num_workers)
        self.pin_memory = pin_memory
        self.timeout = timeout
        self.worker_init_fn = worker_init_fn
        self.multiprocessing_context = _resolve_context(multiprocessing_context)
        self.generator = generator
        self.prefetch_factor = (2 if prefetch_factor is None else int(prefetch_factor)) if num_workers else None
        self.persistent_workers = bool(persistent_workers)
        self._iterable = iterable
        self._auto_collation = batch_sampler is not None or (iterable and batch_size is not None)
        self._default_collate = collate_fn is None
        if collate_fn is None:
            collate_fn = default_collate if self._auto_collation else default_convert
        self.collate_fn = collate_fn
        self._iterator = None  # the persistent workers' iterator

    @staticmethod
    def _check_worker_options(num_workers, timeout, worker_init_fn, context, prefetch_factor, persistent_workers):
        if isinstance(num_workers, bool) or not isinstance(num_workers, numbers.Integral) or num_workers < 0:
            raise ValueError(f"DataLoader: num_workers option should be a non-negative integer; use "
                             f"num_workers=0 to disable multiprocessing, got num_workers={num_workers!r}")
        if isinstance(timeout, bool) or not isinstance(timeout, numbers.Real) or not timeout >= 0:
            raise ValueError(f"DataLoader: timeout option should be non-negative, got timeout={timeout!r}")
        if worker_init_fn is not None and not callable(worker_init_fn):
            raise TypeError(f"DataLoader: worker_init_fn must be callable, got {type(worker_init_fn).__name__}")
        if prefetch_factor is not None and (isinstance(prefetch_factor, bool) or not isinstance(
                prefetch_factor, numbers.Integral) or prefetch_factor < 1):
            raise ValueError(f"DataLoader: prefetch_factor option should be a positive integer, "
                             f"got prefetch_factor={prefetch_factor!r}")
        if num_workers == 0:
            if prefetch_factor is not None:
                raise ValueError("DataLoader: prefetch_factor option could only be specified in multiprocessing; "
                                 "let num_workers > 0 to enable multiprocessing, otherwise set prefetch_factor "
                                 "to None")
            if persistent_workers:
                raise ValueError("DataLoader: persistent_workers option needs num_workers > 0")
            if timeout:
                raise ValueError("DataLoader: timeout applies to worker processes; it needs num_workers > 0")
            if context is not None:
                raise ValueError(f"DataLoader: multiprocessing_context can only be used with multi-process "
                                 f"loading (num_workers > 0), but got num_workers={num_workers}")

    # ------------------------------------------------------------------ iteration

    def __iter__(self):
        # One draw per epoch whatever num_workers is: the workers' base seed, and why the order does not
        # depend on num_workers (see the module's docstring).
        base_seed = int(_numpy_rng(self.generator).integers(2 ** 63))
        if self.num_workers == 0:
            return self._iter_single()
        if not self.persistent_workers:
            return _MultiProcessingIter(self, base_seed)
        if self._iterator is None or self._iterator._shutdown:
            self._iterator = _MultiProcessingIter(self, base_seed)
        else:
            self._iterator._reset(self)
        return self._iterator

    def _fetch_spec(self):
        return FetchSpec(self._iterable, self._auto_collation, self.collate_fn,
                         self._default_collate and self._auto_collation, self.drop_last, self.batch_size)

    def _index_iter(self):
        """What each fetch is given: a batch's indices (int64 arrays from the built-in samplers), one
        sample's index (no automatic batching), or None forever (a stream)."""
        if self._iterable:
            return itertools.repeat(None)
        if self.batch_sampler is None:
            return iter(self.sampler)
        bs = self.batch_sampler
        if _has_fast(bs, "_array_batches") and _has_fast(bs.sampler, "_index_chunks"):
            return bs._array_batches()
        return iter(bs)

    def _iter_single(self):
        fetcher = make_fetcher(self.dataset, self._fetch_spec())
        for index in self._index_iter():
            try:
                batch = fetcher.fetch(index)
            except StopIteration:
                if self._iterable:
                    return
                raise
            yield batch

    def __len__(self):
        """Batches per epoch (for an IterableDataset: from its ``__len__``, when it has one)."""
        if self._iterable:
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


def _resolve_context(context):
    """None (multiprocessing's default, resolved when workers start), or a multiprocessing context."""
    if context is None or isinstance(context, multiprocessing.context.BaseContext):
        return context
    if isinstance(context, str):
        methods = multiprocessing.get_all_start_methods()
        if context not in methods:
            raise ValueError(f"DataLoader: multiprocessing_context option should specify a valid start method "
                             f"in {methods!r}, but got multiprocessing_context={context!r}")
        return multiprocessing.get_context(context)
    raise TypeError(f"DataLoader: multiprocessing_context option should be a valid context object or a string "
                    f"specifying the start method, but got multiprocessing_context={context!r}")


# ---------------------------------------------------------------------- worker processes

_live_iterators = weakref.WeakSet()  # iterators whose workers run: stopped at exit
_exiting = False


@atexit.register
def _shutdown_at_exit():
    global _exiting
    for it in list(_live_iterators):
        it._shutdown_workers()
    _exiting = True


class _MultiProcessingIter:
    """One epoch of a DataLoader with worker processes (every epoch, with persistent workers).

    Batch k is tagged k and sent to worker k mod W (skipping workers whose stream has ended);
    ``_task_info[k]`` is ``(worker_id,)`` while the batch is in flight and ``(worker_id, batch)`` once it
    arrived ahead of its turn.
    """

    _shutdown = True  # until the workers exist

    def __init__(self, loader, base_seed):
        self._num_workers = loader.num_workers
        self._in_flight = loader.prefetch_factor * loader.num_workers
        self._timeout = loader.timeout
        self._persistent = loader.persistent_workers
        self._iterable = loader._iterable
        try:
            self._len = len(loader)
        except TypeError:  # an IterableDataset without __len__
            self._len = None
        _warn_if_oversubscribed(self._num_workers)
        ctx = loader.multiprocessing_context or multiprocessing.get_context()
        self._result_queue = ctx.Queue()
        self._done_event = ctx.Event()
        self._workers, self._index_queues = [], []
        self._pid = os.getpid()  # a forked worker inherits this object: it must never shut our workers down
        self._shutdown = False
        _live_iterators.add(self)
        try:
            spec = loader._fetch_spec()
            for worker_id in range(self._num_workers):
                index_queue = ctx.Queue()
                index_queue.cancel_join_thread()
                w = ctx.Process(target=_worker_loop, daemon=True,
                                args=(loader.dataset, spec, index_queue, self._result_queue, self._done_event,
                                      base_seed, loader.worker_init_fn, worker_id, self._num_workers))
                w.start()
                self._index_queues.append(index_queue)
                self._workers.append(w)
            self._reset(loader, first=True)
        except BaseException:
            self._shutdown_workers()
            raise

    def _reset(self, loader, first=False):
        """Start an epoch: a new index stream, and the first ``prefetch_factor * W`` batches sent."""
        self._index_stream = loader._index_iter()
        self._send_idx = self._rcvd_idx = 0
        self._task_info = {}
        self._workers_status = [True] * self._num_workers  # False: its stream ended (IterableDataset)
        self._worker_cycle = itertools.cycle(range(self._num_workers))
        if not first:
            for q in self._index_queues:
                q.put(_ResumeIteration())
            acks = 0
            while acks < self._num_workers:  # results of an epoch left unfinished come first: dropped
                tag, _ = self._get_data()
                acks += isinstance(tag, _ResumeIteration)
        for _ in range(self._in_flight):
            self._try_put_index()

    def __iter__(self):
        return self

    def __len__(self):
        if self._len is None:
            raise TypeError(f"{type(self).__name__}: the dataset has no len()")
        return self._len

    def __next__(self):
        if self._shutdown:
            raise StopIteration
        try:
            return self._next_batch()
        except KeyboardInterrupt:
            self._shutdown_workers()
            raise

    def _next_batch(self):
        while True:
            while self._rcvd_idx < self._send_idx:  # skip the batches of workers whose stream ended
                info = self._task_info.get(self._rcvd_idx)
                if info is not None and (len(info) == 2 or self._workers_status[info[0]]):
                    break
                self._task_info.pop(self._rcvd_idx, None)
                self._rcvd_idx += 1
            else:
                if not self._persistent:
                    self._shutdown_workers()
                raise StopIteration
            info = self._task_info[self._rcvd_idx]
            if len(info) == 2:  # arrived earlier
                del self._task_info[self._rcvd_idx]
                self._rcvd_idx += 1
                return self._deliver(info[1])
            tag, payload = self._get_data()
            data = pickle.loads(payload)
            if isinstance(data, _StreamEnd):
                self._workers_status[data.worker_id] = False
                if not self._persistent:
                    self._index_queues[data.worker_id].put(None)
                self._try_put_index()
                continue
            if tag == self._rcvd_idx:
                del self._task_info[tag]
                self._rcvd_idx += 1
                return self._deliver(data)
            self._task_info[tag] += (data,)

    def _deliver(self, data):
        self._try_put_index()
        if isinstance(data, _WorkerError):
            data.reraise()
        return data

    def _try_put_index(self):
        """Send the next batch's indices to the next worker whose stream has not ended."""
        try:
            index = next(self._index_stream)
        except StopIteration:
            return
        for _ in range(self._num_workers):
            worker_id = next(self._worker_cycle)
            if self._workers_status[worker_id]:
                break
        else:
            return
        self._index_queues[worker_id].put((self._send_idx, index))
        self._task_info[self._send_idx] = (worker_id,)
        self._send_idx += 1

    def _get_data(self):
        """The next ``(tag, payload)`` from any worker; RuntimeError if a worker died or ``timeout`` passed."""
        deadline = time.monotonic() + self._timeout if self._timeout else None
        while True:
            wait = _POLL_INTERVAL if deadline is None else max(0.0, min(_POLL_INTERVAL, deadline - time.monotonic()))
            try:
                return self._result_queue.get(timeout=wait)
            except queue.Empty:
                pass
            self._check_workers_alive()
            if deadline is not None and time.monotonic() >= deadline:
                info = self._task_info.get(self._rcvd_idx)
                who = "the workers" if info is None else \
                    f"batch {self._rcvd_idx} from worker {info[0]} (pid {self._workers[info[0]].pid})"
                raise RuntimeError(f"DataLoader timed out after {self._timeout} seconds waiting for {who}")

    def _check_workers_alive(self):
        for worker_id, w in enumerate(self._workers):
            if self._workers_status[worker_id] and not w.is_alive():
                code = w.exitcode
                if code is not None and code < 0:
                    try:
                        how = f"was killed by signal {signal.Signals(-code).name}"
                    except ValueError:
                        how = f"was killed by signal {-code}"
                    if code == -signal.SIGKILL:
                        how += " (as the kernel's out-of-memory killer does)"
                else:
                    how = f"exited with code {code}"
                self._shutdown_workers()
                raise RuntimeError(f"DataLoader worker (pid {w.pid}) exited unexpectedly: worker {worker_id} "
                                   f"{how}. Its batches are lost; with num_workers=0 the dataset's own error, "
                                   f"if any, is raised in the main process.")

    def _shutdown_workers(self):
        """Stop the workers: tell them to exit, join them, terminate (then kill) those that do not."""
        if self._shutdown or os.getpid() != self._pid:
            return
        self._shutdown = True
        _live_iterators.discard(self)
        try:
            self._done_event.set()
            for w, q in zip(self._workers, self._index_queues):
                if w.is_alive():
                    q.put(None)
            deadline = time.monotonic() + _JOIN_TIMEOUT
            for w in self._workers:
                w.join(timeout=max(0.0, deadline - time.monotonic()))
            for q in self._index_queues:
                q.cancel_join_thread()
                q.close()
            self._result_queue.cancel_join_thread()
            self._result_queue.close()
        finally:
            for w in self._workers:
                if w.is_alive():
                    w.terminate()
                    w.join(timeout=_JOIN_TIMEOUT)
                if w.is_alive():
                    w.kill()
                    w.join()

    def __del__(self):
        if not _exiting:
            self._shutdown_workers()


def _warn_if_oversubscribed(num_workers):
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    if cpus and num_workers > cpus:
        warnings.warn(f"DataLoader: {num_workers} worker processes on {cpus} available CPUs; more workers than "
                      f"cores only adds switching (and memory): consider num_workers={cpus}", stacklevel=4)
