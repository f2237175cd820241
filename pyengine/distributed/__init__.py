"""Data-parallel training across processes and machines (PyTorch's ``torch.distributed`` names).

Launch N copies of a program with an MPI launcher; each copy is one rank::

    mpiexec -n 4 python train.py                    # 4 processes on this machine
    mpiexec -n 16 -hostfile hosts python train.py   # 16 processes over the machines in `hosts`

and inside it::

    import pyengine.distributed as dist
    dist.init()                                     # rank/world from the launcher; world 1 without one
    model = dist.DistributedDataParallel(Net())     # same weights on every rank; gradients averaged
    sampler = dist.DistributedSampler(train_set)    # each rank reads its own shard
    loader = DataLoader(train_set, batch_size=32, sampler=sampler)
    for epoch in range(epochs):
        loader.set_epoch(epoch)                     # a new shuffle per epoch, the same on every rank
        for x, y in loader:
            opt.zero_grad(); F.cross_entropy(model(x), y).backward(); opt.step()
    if dist.is_main_process():
        pyengine.save(model.state_dict(), "ckpt.safetensors")

Without a launcher (or without mpi4py) the same program runs as world size 1: every collective is a
no-op, so nothing needs an ``if distributed`` branch.

The communication calls (``ProcessGroup`` in ``backend.py``) are few and work in place on NumPy buffers:
allreduce, iallreduce (non-blocking), broadcast, allgather, barrier, abort. ``MPIBackend`` implements
them on mpi4py; a GPU build adds NCCL as a second implementation of the same calls.

Failures: ``init()`` installs an excepthook so that a rank that raises prints its traceback and ends the
whole job (``MPI_Abort``) instead of leaving the other ranks waiting in a collective forever;
``run_main(fn)`` does the same for a main function. Waits time out after ``timeout`` seconds
(``PYENGINE_DIST_TIMEOUT``, default 1800; ``timeout=None`` waits forever).

Collectives run on a communication thread as blocking MPI calls (fast algorithms, progress in the
background while the main thread computes); see ``MPIBackend`` for why not MPI's own non-blocking calls.
"""
import os
import sys
import traceback

import numpy as np

from .backend import DistTimeoutError, LocalBackend, MPIBackend, ProcessGroup, Work, launched_by_mpi

__all__ = ["init", "init_if_launched", "init_process_group", "is_initialized", "is_available", "destroy_process_group",
           "get_rank", "get_world_size", "is_main_process", "get_backend", "barrier", "all_reduce",
           "broadcast", "all_gather", "all_gather_object", "all_reduce_scalar", "run_main",
           "install_excepthook", "abort", "DistributedDataParallel", "DistributedSampler",
           "ProcessGroup", "Work", "LocalBackend", "MPIBackend", "DistTimeoutError"]

DEFAULT_TIMEOUT = 1800.0  # seconds, as PyTorch's default for CPU process groups
_UNSET = object()
_group = None


def _timeout_from_env():
    v = os.environ.get("PYENGINE_DIST_TIMEOUT")
    if v is None:
        return DEFAULT_TIMEOUT
    if v.strip().lower() in ("", "none", "0", "inf"):
        return None
    return float(v)


def is_available():
    """Whether mpi4py (and so multi-process training) can be imported."""
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return False
    return True


def init(backend=None, timeout=_UNSET, install_hook=True):
    """Join the job and return its process group. Idempotent: later calls return the same group.

    Args:
        backend: "mpi", "local" (world size 1), a ``ProcessGroup`` instance, or None: MPI when this
            process was started by an MPI launcher (mpiexec, mpirun, srun), else local.
        timeout: seconds a collective may wait before ``DistTimeoutError`` (None: forever). Default:
            ``PYENGINE_DIST_TIMEOUT`` from the environment, else 1800.
        ``PYENGINE_DIST_PROGRESS`` (environment, every rank the same): "thread" (default) or "mpi", how
        ``MPIBackend`` moves collectives forward (see its docstring).
        install_hook: in a world of more than one process, install ``install_excepthook()`` so that an
            uncaught exception on one rank aborts every rank.

    >>> dist.init(); print(dist.get_rank(), dist.get_world_size())   # "0 1" without mpiexec
    """
    global _group
    if _group is not None:
        return _group
    if timeout is _UNSET:
        timeout = _timeout_from_env()
    if isinstance(backend, ProcessGroup):
        group = backend
    else:
        if backend is None:
            backend = "mpi" if launched_by_mpi() else "local"
        if backend == "mpi":
            try:
                group = MPIBackend(timeout=timeout, progress=os.environ.get("PYENGINE_DIST_PROGRESS", "thread"))
            except ImportError as e:
                raise ImportError(
                    "pyengine.distributed: this process was started by an MPI launcher but mpi4py is not "
                    "installed, so the ranks cannot talk to each other (each would train alone). "
                    "Install it with `pip install pyengine[distributed]` (mpi4py + the Open MPI wheel).") from e
        elif backend == "local":
            group = LocalBackend(timeout=timeout)
        else:
            raise ValueError(f"init: backend must be 'mpi', 'local', None or a ProcessGroup; got {backend!r}")
    _group = group
    if install_hook and group.world_size > 1:
        install_excepthook()
    return group


init_process_group = init  # PyTorch's name


def init_if_launched():
    """(rank, world size): join the job when this process was started by an MPI launcher, else (0, 1)
    without initialising anything. What ``pyengine train`` and keras ``fit`` call to run unchanged
    under mpiexec."""
    if _group is None and not launched_by_mpi():
        return 0, 1
    init()
    return get_rank(), get_world_size()


def is_initialized():
    """Whether ``init()`` has run in this process."""
    return _group is not None


def destroy_process_group():
    """Forget the process group (MPI itself stays initialised until exit: it cannot start twice)."""
    global _group
    _group = None


def _default_group():
    return _group if _group is not None else init()


def get_backend():
    """The process group's backend name: "mpi" or "local"."""
    return _default_group().name


def get_rank():
    """This process's rank in [0, world size); 0 without a launcher. Initialises the group if needed."""
    return _default_group().rank


def get_world_size():
    """The number of processes in the job; 1 without a launcher. Initialises the group if needed."""
    return _default_group().world_size


def is_main_process():
    """True on rank 0: the rank that prints, logs and writes checkpoints."""
    return _default_group().rank == 0


def barrier():
    """Wait until every rank has reached this call."""
    _default_group().barrier()


def abort(code=1):
    """End every process of the job now with exit status ``code``."""
    _default_group().abort(code)


# --------------------------------------------------------------------------- tensor collectives

def _array_of(tensor, fn):
    from ..tensor import Tensor
    if isinstance(tensor, Tensor):
        return tensor._data
    if isinstance(tensor, np.ndarray):
        return tensor
    raise TypeError(f"{fn}: expected a pyengine Tensor or a NumPy array, got {type(tensor).__name__}")


def _in_place(arr, fn, body):
    """Run ``body(buf)`` on a contiguous buffer of ``arr``'s values and leave the result in ``arr``."""
    if arr.flags.c_contiguous and arr.flags.writeable:
        return body(arr)
    if not arr.flags.writeable:
        raise ValueError(f"{fn}: the tensor's memory is read-only")
    buf = np.ascontiguousarray(arr)
    r = body(buf)
    np.copyto(arr, buf)
    return r


def all_reduce(tensor, op="sum", async_op=False):
    """Reduce ``tensor`` across ranks in place: every rank ends with the sum (or mean/max/min).

    ``async_op=True`` returns a ``Work`` whose ``wait()`` must be called before the tensor is read
    (the tensor must then be contiguous). Otherwise returns None, as PyTorch.

    >>> t = pyengine.tensor([float(dist.get_rank())]); dist.all_reduce(t, op="mean")
    """
    arr = _array_of(tensor, "all_reduce")
    g = _default_group()
    if async_op:
        if not arr.flags.c_contiguous:
            raise ValueError("all_reduce(async_op=True): the tensor must be contiguous")
        return g.iallreduce(arr, op)
    _in_place(arr, "all_reduce", lambda b: g.allreduce(b, op))
    return None


def broadcast(tensor, src=0):
    """Copy rank ``src``'s values of ``tensor`` into ``tensor`` on every rank (in place)."""
    arr = _array_of(tensor, "broadcast")
    g = _default_group()
    _in_place(arr, "broadcast", lambda b: g.broadcast(b, src))


def all_gather(tensor_or_list, tensor=None, stack=False):
    """Every rank's ``tensor`` (same shape and dtype on every rank), in rank order.

    ``all_gather(t)`` returns a list of Tensors; ``all_gather(t, stack=True)`` one Tensor of shape
    (world_size, *t.shape); ``all_gather(tensor_list, t)`` (PyTorch's form) fills ``tensor_list``.
    """
    from ..tensor import _wrap
    out_list = None
    if tensor is not None:
        out_list, src = tensor_or_list, tensor
    else:
        src = tensor_or_list
    rows = _default_group().allgather(np.ascontiguousarray(_array_of(src, "all_gather")))
    if out_list is not None:
        if len(out_list) != rows.shape[0]:
            raise ValueError(f"all_gather: tensor_list has {len(out_list)} entries for a world of size "
                             f"{rows.shape[0]}")
        for t, r in zip(out_list, rows):
            np.copyto(_array_of(t, "all_gather"), r)
        return None
    if stack:
        return _wrap(rows)
    return [_wrap(r) for r in rows]


def all_gather_object(obj):
    """Every rank's ``obj`` in rank order. ``obj`` must be JSON-serialisable (it is sent as JSON,
    never pickled); for small control data only, e.g. per-rank counts or configuration checks."""
    return _default_group().allgather_object(obj)


def all_reduce_scalar(value, op="sum"):
    """Reduce Python numbers (one, or a list/tuple of them in one message) across ranks for metrics.

    Returns a float (an int for int inputs under sum/max/min), or a list for a sequence.

    >>> loss_avg = dist.all_reduce_scalar(loss.item(), op="mean")
    >>> correct, seen = dist.all_reduce_scalar([correct, seen])
    """
    many = isinstance(value, (list, tuple))
    vals = list(value) if many else [value]
    vals = [v.item() if hasattr(v, "item") else v for v in vals]
    ints = op != "mean" and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in vals)
    buf = np.array(vals, dtype=np.int64 if ints else np.float64)
    _default_group().allreduce(buf, op)
    out = [int(x) for x in buf] if ints else [float(x) for x in buf]
    return out if many else out[0]


# --------------------------------------------------------------------------- failures

def _report_and_abort(exc_type, exc, tb, code=1):
    g = _group
    rank, world = (g.rank, g.world_size) if g is not None else (0, 1)
    lines = traceback.format_exception(exc_type, exc, tb)
    sys.stderr.write(f"[pyengine.distributed] rank {rank} of {world} raised an uncaught exception; "
                     f"aborting all ranks:\n" + "".join(lines))
    sys.stderr.flush()
    if g is None:
        os._exit(code)
    g.abort(code)


def _excepthook(exc_type, exc, tb):
    _report_and_abort(exc_type, exc, tb, 130 if issubclass(exc_type, KeyboardInterrupt) else 1)


def install_excepthook():
    """Make an uncaught exception on this rank print its traceback and abort the whole job.

    Without it, mpi4py finalises MPI at exit and the other ranks wait forever in their next
    collective. ``init()`` installs it when the world has more than one process.
    """
    if sys.excepthook is not _excepthook:
        sys.excepthook = _excepthook


def run_main(fn, *args, **kwargs):
    """Initialise, run ``fn(*args, **kwargs)`` and return its result; if it raises (or calls
    ``sys.exit`` with a non-zero status), print the traceback with the rank and abort every rank.

    >>> if __name__ == "__main__":
    ...     dist.run_main(main)
    """
    init()
    try:
        return fn(*args, **kwargs)
    except SystemExit as e:
        if e.code in (None, 0):
            raise
        code = e.code if isinstance(e.code, int) else 1
        _report_and_abort(type(e), e, e.__traceback__, code)
    except BaseException as e:  # noqa: BLE001 - every failure must end the job, not hang it
        _report_and_abort(type(e), e, e.__traceback__, 130 if isinstance(e, KeyboardInterrupt) else 1)


from .ddp import DistributedDataParallel  # noqa: E402
from ..utils.data.distributed import DistributedSampler  # noqa: E402
