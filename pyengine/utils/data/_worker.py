"""DataLoader worker processes: the loop each worker runs, and ``get_worker_info()``.

A worker (PyTorch's ``_worker_loop``, same protocol): limits itself to one compute thread, seeds its
random generators from the loader's base seed, runs ``worker_init_fn(worker_id)``, then answers tasks
``(tag, indices)`` from its own index queue with ``(tag, pickled batch)`` on the shared result queue,
until it reads None (shutdown) or its parent process is gone. A ``_ResumeIteration`` task starts a new
epoch (persistent workers). An exception becomes a ``_WorkerError`` that the main process re-raises;
a stream's end becomes ``_StreamEnd``.
"""
import os
import pickle
import queue
import random
import sys
import traceback
from dataclasses import dataclass

import numpy as np

from ... import random as _random
from ._fetch import make_fetcher

__all__ = ["WorkerInfo", "get_worker_info"]

_WATCHDOG_INTERVAL = 1.0  # seconds between checks, while idle, that the main process is alive
_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS",
                "NUMEXPR_NUM_THREADS")
# Thread-pool setters of runtimes that may be loaded before the worker starts (NumPy's OpenBLAS, OpenMP).
_POOL_SETTERS = {"openblas": ("openblas_set_num_threads", "openblas_set_num_threads64_",
                              "scipy_openblas_set_num_threads", "scipy_openblas_set_num_threads64_"),
                 "libgomp": ("omp_set_num_threads",), "libomp": ("omp_set_num_threads",),
                 "libiomp": ("omp_set_num_threads",)}


@dataclass(frozen=True)
class WorkerInfo:
    """What ``get_worker_info()`` tells code running in a worker.

    id: this worker's id (0 to num_workers - 1); num_workers: the loader's worker count; seed: the seed
    this worker's generators were given (base seed + id); dataset: this process's copy of the dataset.
    """
    id: int
    num_workers: int
    seed: int
    dataset: object


_worker_info = None


def get_worker_info():
    """The ``WorkerInfo`` of the DataLoader worker this code runs in; None in the main process.

    Use it in ``worker_init_fn`` or an ``IterableDataset.__iter__`` to give each worker its own shard:

    >>> info = get_worker_info()
    >>> if info is not None:
    ...     rows = rows[info.id::info.num_workers]
    """
    return _worker_info


class _ResumeIteration:
    """Task: start a new epoch (persistent workers); the worker echoes it back as its acknowledgement."""


@dataclass(frozen=True)
class _StreamEnd:
    """Result: this worker's copy of an IterableDataset is exhausted."""
    worker_id: int


class _KeyErrorMessage(str):
    """KeyError shows its argument's repr; this keeps a multi-line message readable."""

    def __repr__(self):
        return self


class _WorkerError:
    """An exception raised in a worker, carried to the main process with the worker's traceback text."""

    def __init__(self, worker_id, doing=""):
        exc_type, exc, tb = sys.exc_info()
        try:
            pickle.dumps(exc_type)
        except Exception:  # noqa: BLE001 - a class the main process could not import
            exc_type = RuntimeError
        self.exc_type = exc_type
        self.where = f"in DataLoader worker process {worker_id}{doing}"
        self.text = "".join(traceback.format_exception(type(exc), exc, tb))

    def reraise(self):
        """Raise the worker's exception type (RuntimeError if it cannot be built from one message), as
        PyTorch does: "Caught ValueError in DataLoader worker process 1. Original Traceback ..."."""
        msg = f"Caught {self.exc_type.__name__} {self.where}.\nOriginal {self.text}"
        if self.exc_type is KeyError:
            msg = _KeyErrorMessage(msg)
        try:
            exc = self.exc_type(msg)
        except Exception:  # noqa: BLE001
            raise RuntimeError(msg) from None
        try:
            raise exc
        finally:
            exc = None  # no frame <-> traceback cycle: the loader's iterator is freed with the exception


def _one_thread():
    """One compute thread per worker (PyTorch's workers call ``torch.set_num_threads(1)``): W workers
    then use W cores, not W times every kernel's thread pool."""
    for var in _THREAD_VARS:  # libraries loaded from now on, and the worker's own subprocesses
        os.environ[var] = "1"
    from ... import set_num_threads
    set_num_threads(1)  # pyengine's kernels
    try:  # runtimes already loaded (a fork inherits them): their own setters, found in the memory map
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if "/" in line}
    except OSError:
        return
    import ctypes
    for path in paths:
        name = os.path.basename(path)
        setters = next((s for key, s in _POOL_SETTERS.items() if key in name), None)
        if setters is None:
            continue
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for setter in setters:
            fn = getattr(lib, setter, None)
            if fn is not None:
                fn(ctypes.c_int(1))
                break


def _seed(base_seed, worker_id):
    """Seed this worker's generators as PyTorch does: Python's ``random`` and pyengine's default generator
    with base_seed + worker_id; NumPy's global one with the words PyTorch's ``_generate_state`` computes
    (its hash is NumPy's SeedSequence). Returns the seed."""
    seed = base_seed + worker_id
    random.seed(seed)
    _random.default_generator.manual_seed(seed)
    np.random.seed(np.random.SeedSequence([worker_id, base_seed & 0xFFFFFFFF, base_seed >> 32, 0])
                   .generate_state(4))
    return seed


def _start_epoch(dataset, spec, worker_id, init_error):
    """``(fetcher, None)``, or ``(None, error)`` when worker_init_fn or creating the fetcher failed."""
    if init_error is not None:
        return None, init_error
    try:
        return make_fetcher(dataset, spec), None
    except Exception:  # noqa: BLE001 - reported in the main process
        return None, _WorkerError(worker_id)


def _dumps(data, worker_id):
    """The result pickled here, so an unpicklable batch is an error the main process sees (pickled by the
    queue's feeder thread it would be dropped, and the main process would wait forever)."""
    try:
        return pickle.dumps(data, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:  # noqa: BLE001
        return pickle.dumps(_WorkerError(worker_id, " while sending its batch to the main process"),
                            protocol=pickle.HIGHEST_PROTOCOL)


def _worker_loop(dataset, spec, index_queue, result_queue, done_event, base_seed, init_fn, worker_id,
                 num_workers):
    global _worker_info
    try:
        _one_thread()
        seed = _seed(base_seed, worker_id)
        _worker_info = WorkerInfo(id=worker_id, num_workers=num_workers, seed=seed, dataset=dataset)
        init_error = None
        try:
            if init_fn is not None:
                init_fn(worker_id)
        except Exception:  # noqa: BLE001 - reported in the main process, with the first batch asked for
            init_error = _WorkerError(worker_id)
        fetcher, error = _start_epoch(dataset, spec, worker_id, init_error)
        ended = False
        parent = os.getppid()
        while True:
            try:
                task = index_queue.get(timeout=_WATCHDOG_INTERVAL)
            except queue.Empty:
                if os.getppid() != parent:  # the main process died without shutting us down
                    break
                continue
            if task is None:
                break
            if isinstance(task, _ResumeIteration):
                result_queue.put((task, None))
                fetcher, error = _start_epoch(dataset, spec, worker_id, init_error)
                ended = False
                continue
            if done_event.is_set() or ended:
                continue  # shutting down, or this stream has ended: the main process skips the task
            tag, index = task
            if error is not None:
                data = error
            else:
                try:
                    data = fetcher.fetch(index)
                except Exception as e:  # noqa: BLE001
                    if spec.iterable and isinstance(e, StopIteration):
                        data, ended = _StreamEnd(worker_id), True
                    else:
                        data = _WorkerError(worker_id)
            result_queue.put((tag, _dumps(data, worker_id)))
            del data, task, index
    except KeyboardInterrupt:
        pass  # Ctrl-C reached the whole process group: the main process shuts the workers down
    if done_event.is_set():
        result_queue.cancel_join_thread()  # do not wait to flush results nobody will read
        result_queue.close()
