"""Shared-memory arrays for tensors: one mapped file under /dev/shm per shared tensor, pickled by reference."""
import atexit
import mmap
import os
import tempfile

import numpy as np

_BLOCKS = {}  # start address -> (path, mmap, nbytes): every block this process created or mapped
_OWNED = []   # paths this process created: removed when it exits (the processes that mapped them keep the memory)


def _dir():
    return "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None


def _map(path, nbytes):
    with open(path, "r+b") as f:
        mm = mmap.mmap(f.fileno(), max(nbytes, 1))
    buf = np.frombuffer(mm, np.uint8, count=nbytes) if nbytes else np.empty(0, np.uint8)
    if nbytes:
        _BLOCKS[buf.__array_interface__["data"][0]] = (path, mm, nbytes)
    return buf


def _block_of(arr):
    """(path, offset) of the shared block holding ``arr``'s memory, or None."""
    if not _BLOCKS or arr.size == 0:
        return None
    start = arr.__array_interface__["data"][0]
    for base, (path, _, nbytes) in _BLOCKS.items():
        if base <= start < base + nbytes:
            return path, start - base
    return None


def shared_array(arr):
    """A copy of ``arr`` in a new shared block (C-contiguous, same dtype and shape)."""
    fd, path = tempfile.mkstemp(prefix="pyengine-shm-", dir=_dir())
    nbytes = arr.nbytes
    os.ftruncate(fd, max(nbytes, 1))
    os.close(fd)
    if not _OWNED:
        atexit.register(_cleanup)
    _OWNED.append(path)
    out = _map(path, nbytes).view(arr.dtype).reshape(arr.shape)
    out[...] = arr
    return out


def _cleanup():
    for path in _OWNED:
        try:
            os.unlink(path)
        except OSError:
            pass


class _Ref:
    """What a shared array pickles as: the block's path and where in it the array lies."""

    def __init__(self, path, offset, arr):
        self.args = (path, offset, arr.dtype.str, arr.shape, arr.strides)

    def __reduce__(self):
        return _open, self.args


_OPENED = {}  # path -> the block's bytes, mapped once per process


def _open(path, offset, dtype, shape, strides):
    buf = _OPENED.get(path)
    if buf is None:
        buf = _OPENED[path] = _map(path, os.path.getsize(path))
    return np.ndarray(shape, np.dtype(dtype), buffer=buf, offset=offset, strides=strides)


def pickled(arr):
    """``arr`` itself, or the reference to its shared block when it lives in one (used by Tensor pickling)."""
    where = _block_of(arr) if _BLOCKS else None
    return arr if where is None else _Ref(where[0], where[1], arr)


def share_memory_(t):
    """Move the tensor's array into shared memory (no-op when it is there already); returns ``t``."""
    if _block_of(t._data) is None:
        t._data = shared_array(t._data)
    return t


def is_shared(t):
    return _block_of(t._data) is not None
