"""Communication backends: the few collective calls data-parallel training needs, on NumPy buffers.

``ProcessGroup`` is the interface; ``LocalBackend`` is the world of one process (every call is a no-op
or a copy, so a program runs unchanged without a launcher) and ``MPIBackend`` passes the buffers
straight to MPI through mpi4py's buffer interface (``comm.Allreduce(MPI.IN_PLACE, buf)``: no pickling,
no copies on the hot path). A CUDA build adds an NCCL backend with the same methods on CuPy arrays.

Every call works in place on a C-contiguous array (``buf``) that the caller owns:

    allreduce(buf, op)      op in "sum", "mean", "max", "min"; every rank ends with the reduction
    iallreduce(buf, op)     the same, non-blocking: returns a Work; ``buf`` is valid after ``wait()``
    broadcast(buf, src)     every rank ends with rank src's values
    allgather(buf)          returns a new array (world_size, *buf.shape): rank r's buf in row r
    barrier()
    abort(code)             ends every process of the job (MPI_Abort), never returns

and, built on ``allgather`` (so a new backend gets it for free), ``allgather_object`` for small
control data (JSON, not pickle: nothing a peer sends is executed).

Timeouts: with ``timeout`` set (seconds), a wait polls ``MPI_Test`` until the deadline and then raises
``DistTimeoutError`` naming the operation; blocking calls then run as their non-blocking twin plus that
wait (MPI-3 has ``Ibcast``, ``Iallgather``, ``Ibarrier``). With ``timeout=None`` they are plain
blocking MPI calls.
"""
import json
import os
import sys
import time

import numpy as np

__all__ = ["ProcessGroup", "Work", "LocalBackend", "MPIBackend", "DistTimeoutError", "launched_by_mpi"]

_OPS = ("sum", "mean", "max", "min")


class DistTimeoutError(RuntimeError):
    """A collective did not complete in time: another rank is probably stuck, dead or elsewhere in the code."""


def _check_buf(buf, fn):
    if not isinstance(buf, np.ndarray):
        raise TypeError(f"{fn}: expected a NumPy array, got {type(buf).__name__}")
    if not buf.flags.c_contiguous:
        raise ValueError(f"{fn}: the buffer must be C-contiguous (shape {buf.shape}, strides {buf.strides})")
    if not buf.flags.writeable:
        raise ValueError(f"{fn}: the buffer must be writeable")


def _check_op(op, buf, fn):
    if op not in _OPS:
        raise ValueError(f"{fn}: op must be one of {', '.join(_OPS)}; got {op!r}")
    if op == "mean" and buf.dtype.kind not in "fc":
        raise TypeError(f"{fn}: op='mean' needs a floating-point buffer, got {buf.dtype}")


class Work:
    """The handle of a non-blocking collective: ``wait()`` returns when its buffer holds the result."""

    def wait(self, timeout=None):  # pragma: no cover - interface
        raise NotImplementedError

    def is_completed(self):  # pragma: no cover - interface
        raise NotImplementedError


class _DoneWork(Work):
    __slots__ = ()

    def wait(self, timeout=None):
        return None

    def is_completed(self):
        return True


class ProcessGroup:
    """The interface a backend implements. ``rank`` in [0, world_size); ``name`` says which backend."""

    name = "?"
    rank = 0
    world_size = 1
    timeout = None

    def allreduce(self, buf, op="sum"):
        raise NotImplementedError

    def iallreduce(self, buf, op="sum"):
        raise NotImplementedError

    def broadcast(self, buf, src=0):
        raise NotImplementedError

    def allgather(self, buf):
        raise NotImplementedError

    def barrier(self):
        raise NotImplementedError

    def abort(self, code=1):
        raise NotImplementedError

    def allgather_object(self, obj):
        """A list, one entry per rank, of each rank's ``obj`` (JSON-serialisable; small control data)."""
        data = np.frombuffer(json.dumps(obj).encode(), dtype=np.uint8)
        sizes = self.allgather(np.array([data.size], dtype=np.int64))[:, 0]
        padded = np.zeros(int(sizes.max()), dtype=np.uint8)
        padded[:data.size] = data
        rows = self.allgather(padded)
        return [json.loads(rows[r, :int(sizes[r])].tobytes().decode()) for r in range(self.world_size)]

    def __repr__(self):
        return f"<{type(self).__name__} rank {self.rank} of {self.world_size}>"


class LocalBackend(ProcessGroup):
    """World size 1: reductions and broadcasts leave the buffer as it is (the mean of one value is itself)."""

    name = "local"

    def __init__(self, timeout=None):
        self.rank, self.world_size, self.timeout = 0, 1, timeout

    def allreduce(self, buf, op="sum"):
        _check_buf(buf, "allreduce")
        _check_op(op, buf, "allreduce")

    def iallreduce(self, buf, op="sum"):
        self.allreduce(buf, op)
        return _DoneWork()

    def broadcast(self, buf, src=0):
        _check_buf(buf, "broadcast")
        if src != 0:
            raise ValueError(f"broadcast: src {src} is not a rank of a world of size 1")

    def allgather(self, buf):
        return np.array(buf)[None]

    def barrier(self):
        pass

    def abort(self, code=1):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


# --------------------------------------------------------------------------- MPI

def launched_by_mpi():
    """Whether this process was started by an MPI launcher (mpiexec/mpirun of Open MPI or MPICH,
    srun with PMI/PMIx), judged from the environment the launcher sets; mpi4py is not imported."""
    env = os.environ
    for key in ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "MV2_COMM_WORLD_SIZE", "MPI_LOCALNRANKS"):
        if key in env:
            return True
    return False


class _MPIWork(Work):
    __slots__ = ("req", "buf", "divide_by", "what", "done")

    def __init__(self, req, buf, divide_by, what):
        self.req, self.buf, self.divide_by, self.what, self.done = req, buf, divide_by, what, False

    def is_completed(self):
        if not self.done and self.req.Test():
            self._finish()
        return self.done

    def wait(self, timeout=None):
        if self.done:
            return
        if timeout is None:
            self.req.Wait()
        else:
            _poll(self.req, timeout, self.what)
        self._finish()

    def _finish(self):
        self.done = True
        if self.divide_by is not None:
            np.divide(self.buf, self.divide_by, out=self.buf)


def _poll(req, timeout, what):
    """MPI_Test until done or ``timeout`` seconds: spin first (the usual case completes in microseconds),
    then sleep in growing steps up to 1 ms so that a long wait does not steal a core from compute."""
    deadline = time.monotonic() + timeout
    spin_until = time.monotonic() + 2e-3
    while not req.Test():
        now = time.monotonic()
        if now > deadline:
            raise DistTimeoutError(
                f"{what} did not complete within {timeout:g} s: another rank is probably stuck, dead, or "
                "calling a different collective (every rank must make the same calls in the same order)")
        if now > spin_until:
            time.sleep(min(1e-3, max(1e-5, (now - spin_until) / 8)))


class MPIBackend(ProcessGroup):
    """Collectives on an mpi4py communicator (``MPI.COMM_WORLD`` by default), buffers passed by pointer."""

    name = "mpi"

    def __init__(self, comm=None, timeout=None):
        from mpi4py import MPI
        self.MPI = MPI
        self.comm = MPI.COMM_WORLD if comm is None else comm
        self.rank, self.world_size = self.comm.Get_rank(), self.comm.Get_size()
        self.timeout = timeout
        self._ops = {"sum": MPI.SUM, "mean": MPI.SUM, "max": MPI.MAX, "min": MPI.MIN}

    def _wait(self, req, what):
        if self.timeout is None:
            req.Wait()
        else:
            _poll(req, self.timeout, f"{what} on rank {self.rank}")

    def allreduce(self, buf, op="sum"):
        _check_buf(buf, "allreduce")
        _check_op(op, buf, "allreduce")
        if self.timeout is None:
            self.comm.Allreduce(self.MPI.IN_PLACE, buf, op=self._ops[op])
        else:
            self._wait(self.comm.Iallreduce(self.MPI.IN_PLACE, buf, op=self._ops[op]),
                       f"allreduce of {buf.nbytes} bytes")
        if op == "mean":
            np.divide(buf, self.world_size, out=buf)

    def iallreduce(self, buf, op="sum"):
        _check_buf(buf, "iallreduce")
        _check_op(op, buf, "iallreduce")
        req = self.comm.Iallreduce(self.MPI.IN_PLACE, buf, op=self._ops[op])
        return _MPIWork(req, buf, self.world_size if op == "mean" else None,
                        f"iallreduce of {buf.nbytes} bytes on rank {self.rank}")

    def broadcast(self, buf, src=0):
        _check_buf(buf, "broadcast")
        if not 0 <= src < self.world_size:
            raise ValueError(f"broadcast: src {src} is not a rank of a world of size {self.world_size}")
        if self.timeout is None:
            self.comm.Bcast(buf, root=src)
        else:
            self._wait(self.comm.Ibcast(buf, root=src), f"broadcast of {buf.nbytes} bytes from rank {src}")

    def allgather(self, buf):
        send = np.ascontiguousarray(buf)
        out = np.empty((self.world_size,) + send.shape, dtype=send.dtype)
        if self.timeout is None:
            self.comm.Allgather(send, out)
        else:
            self._wait(self.comm.Iallgather(send, out), f"allgather of {send.nbytes} bytes")
        return out

    def barrier(self):
        if self.timeout is None:
            self.comm.Barrier()
        else:
            self._wait(self.comm.Ibarrier(), "barrier")

    def abort(self, code=1):
        sys.stdout.flush()
        sys.stderr.flush()
        self.comm.Abort(code)
