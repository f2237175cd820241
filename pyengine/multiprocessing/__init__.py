"""torch.multiprocessing: Python's multiprocessing, with tensors that can live in shared memory.

Everything of the standard module is here (``Process``, ``Queue``, ``Pool``, ``set_start_method``,
``get_context``, ...). ``Tensor.share_memory_()`` (and ``Module.share_memory()``) moves a tensor's array into a
block of shared memory (a file under /dev/shm, mapped); a tensor in such a block is pickled as a reference to it,
so a child process -- forked or spawned -- that receives it (as a ``Process`` argument, through a ``Queue``)
maps the same memory: in-place updates in one process (``optimizer.step()``) are seen by all, which is what
Hogwild training (pytorch/examples mnist_hogwild) relies on. Other tensors are pickled by value, as before.
``spawn(fn, args, nprocs)`` is PyTorch's helper: ``fn(i, *args)`` in ``nprocs`` spawned processes.
"""
import multiprocessing as _mp
from multiprocessing import *  # noqa: F401,F403

from ._shared import is_shared, share_memory_  # noqa: F401

__all__ = list(getattr(_mp, "__all__", [])) + ["spawn", "get_all_sharing_strategies", "get_sharing_strategy",
                                               "set_sharing_strategy"]


def get_all_sharing_strategies():
    return {"file_system"}


def get_sharing_strategy():
    return "file_system"


def set_sharing_strategy(strategy):
    if strategy not in get_all_sharing_strategies():
        raise ValueError(f"set_sharing_strategy: unknown strategy {strategy!r} (pyengine has 'file_system')")


class ProcessRaisedException(Exception):
    """A process started by spawn() raised: its exit code is in the message."""


def spawn(fn, args=(), nprocs=1, join=True, daemon=False, start_method="spawn"):
    """Run ``fn(i, *args)`` for i in range(nprocs), each in a new process; wait for all when ``join``."""
    ctx = _mp.get_context(start_method)
    procs = [ctx.Process(target=fn, args=(i,) + tuple(args), daemon=daemon) for i in range(nprocs)]
    for p in procs:
        p.start()
    if not join:
        return procs
    for p in procs:
        p.join()
    failed = [(i, p.exitcode) for i, p in enumerate(procs) if p.exitcode != 0]
    if failed:
        raise ProcessRaisedException(f"spawn: process {failed[0][0]} exited with code {failed[0][1]}")
    return None
