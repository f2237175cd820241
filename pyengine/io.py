"""Checkpoints: ``pyengine.save`` / ``pyengine.load`` in the safetensors format.

A checkpoint is ONE safetensors file. Every Tensor and NumPy array of the saved object is a tensor of
that file, named by its path in the object (``"model.fc.weight"``, ``"optimizer.state.0.exp_avg"``), so
any safetensors reader sees the weights. The rest of the object (nested dicts and lists, ints, floats,
strings, bools, None, dicts with int keys) is stored as JSON in the file's ``__metadata__``, with a
reference where each tensor was. Loading parses JSON and copies raw bytes: nothing is unpickled or
executed, so a checkpoint from an untrusted source cannot run code.

>>> pyengine.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": 3}, "ckpt.safetensors")
>>> ckpt = pyengine.load("ckpt.safetensors")
>>> model.load_state_dict(ckpt["model"]); opt.load_state_dict(ckpt["optimizer"])

Writes are atomic: the file is written under a temporary name in the same directory, flushed to disk
(fsync) and renamed over the target (``os.replace``), so a crash leaves the previous checkpoint intact.
The temporary's name holds the writer's process id; the next save to the same path removes those of
processes that are gone (a save killed mid-write leaves nothing behind for long).

Metadata layout (all values are strings, as safetensors requires)::

    "format": "pyengine"
    "pyengine.format_version": "1"
    "pyengine.structure": JSON of the object, where
        {"__tensor__": name}   a Tensor           {"__ndarray__": name}  a NumPy array
        {"__npscalar__": name} a NumPy scalar     {"__tuple__": [...]}   a tuple
        {"__dict__": [[key, value], ...]}         a dict whose keys are not all strings (e.g. int keys)
        {"__float__": "nan" | "inf" | "-inf"}     a non-finite float
"""
import contextlib
import json
import math
import os
import secrets
import struct

import numpy as np

from . import _dtype
from .device import as_device, device
from .tensor import Tensor, _wrap

__all__ = ["save", "load", "read", "write"]

FORMAT_VERSION = 1
_TAGS = ("__tensor__", "__ndarray__", "__npscalar__", "__tuple__", "__dict__", "__float__")
_SAVABLE_DTYPES = {np.dtype(t) for t in (np.float16, np.float32, np.float64, np.int8, np.int16, np.int32,
                                         np.int64, np.uint8, np.uint16, np.uint32, np.uint64, np.bool_)}
if _dtype.BF16_NP is not None:
    _SAVABLE_DTYPES.add(_dtype.BF16_NP)  # safetensors' BF16 (PyTorch reads it as torch.bfloat16)
# safetensors dtype names -> NumPy dtypes, for reading: safetensors.numpy knows no BF16
_ST_DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "I64": np.int64, "U64": np.uint64,
              "I32": np.int32, "U32": np.uint32, "I16": np.int16, "U16": np.uint16, "I8": np.int8, "U8": np.uint8,
              "BOOL": np.bool_}
if _dtype.BF16_NP is not None:
    _ST_DTYPES["BF16"] = _dtype.BF16_NP
PICKLE_FORMAT = "pyengine-pickle"  # whole objects pickled around the tensors: pyengine.serialization
_MAX_HEADER = 100_000_000  # the safetensors limit on the JSON header


def _safetensors():
    try:
        import safetensors.numpy
    except ImportError:
        raise ImportError("pyengine.save/load need the 'safetensors' package: pip install safetensors") from None
    return safetensors.numpy


# ---------------------------------------------------------------------- object <-> (tensors, JSON)


def _join(path, key):
    return f"{path}.{key}" if path else str(key)


class _Packer:
    """Walks the object: collects its arrays under unique names and returns its JSON skeleton."""

    def __init__(self):
        self.arrays = {}

    def add(self, arr, path):
        if arr.dtype not in _SAVABLE_DTYPES:
            raise TypeError(f"pyengine.save: cannot save an array of dtype {arr.dtype} at key {path!r}")
        name, n = path or "tensor", 1
        while name in self.arrays or name == "__metadata__":   # "a.b" may come from {"a.b"} and {"a": {"b"}}
            name, n = f"{path}#{n}", n + 1
        # copy only if needed; np.ascontiguousarray would turn a 0-d array into a 1-d one
        self.arrays[name] = arr if arr.flags.c_contiguous else arr.copy(order="C")
        return name

    def pack(self, obj, path=""):
        if isinstance(obj, Tensor):
            return {"__tensor__": self.add(obj._data, path)}
        if isinstance(obj, np.ndarray):
            return {"__ndarray__": self.add(obj, path)}
        if isinstance(obj, np.generic):
            return {"__npscalar__": self.add(np.asarray(obj), path)}
        if obj is None or isinstance(obj, (bool, str)):
            return obj
        if isinstance(obj, int):
            return int(obj)
        if isinstance(obj, float):
            return float(obj) if math.isfinite(obj) else {"__float__": repr(float(obj))}
        if isinstance(obj, list):
            return [self.pack(v, _join(path, i)) for i, v in enumerate(obj)]
        if isinstance(obj, tuple):
            return {"__tuple__": [self.pack(v, _join(path, i)) for i, v in enumerate(obj)]}
        if isinstance(obj, dict):
            if all(isinstance(k, str) and k not in _TAGS for k in obj):
                return {k: self.pack(v, _join(path, k)) for k, v in obj.items()}
            return {"__dict__": [[self.pack_key(k, path), self.pack(v, _join(path, k))] for k, v in obj.items()]}
        raise TypeError(f"pyengine.save: cannot save an object of type {type(obj).__name__} at key {path!r}; "
                        f"supported: Tensor, NumPy arrays and scalars, dict, list, tuple, str, int, float, bool, "
                        f"None")

    def pack_key(self, key, path):
        if key is None or isinstance(key, (str, int, float)):
            return self.pack(key, path)
        raise TypeError(f"pyengine.save: dict keys must be str, int, float, bool or None; got a key of type "
                        f"{type(key).__name__} in {path or 'the saved object'!r}")


def _writable(arr):
    """Loaded arrays may be read-only views of the file's buffer; tensors must be writable."""
    return arr if arr.flags.writeable else arr.copy()


def _unpack(node, arrays):
    """Rebuild the object from its JSON skeleton and the loaded arrays."""
    if isinstance(node, list):
        return [_unpack(v, arrays) for v in node]
    if not isinstance(node, dict):
        return node
    if len(node) == 1:
        (tag, value), = node.items()
        if tag in ("__tensor__", "__ndarray__", "__npscalar__"):
            if value not in arrays:
                raise ValueError(f"pyengine.load: corrupt checkpoint: tensor {value!r} is missing from the file")
            arr = arrays[value]
            if tag == "__npscalar__":
                return arr[()]
            return _wrap(_writable(arr)) if tag == "__tensor__" else _writable(arr)
        if tag == "__tuple__":
            return tuple(_unpack(v, arrays) for v in value)
        if tag == "__dict__":
            return {_unpack(k, arrays): _unpack(v, arrays) for k, v in value}
        if tag == "__float__":
            return float(value)
    return {k: _unpack(v, arrays) for k, v in node.items()}


# ---------------------------------------------------------------------- save


def save(obj, f):
    """Save a (possibly nested) state dict to ``f`` (a path or a binary file object) as safetensors.

    ``obj`` may hold Tensors and NumPy arrays (any of float16/32/64, int8-64, uint8-64, bool; 0-d too)
    inside dicts (str or int keys), lists and tuples, next to ints, floats, strings, bools and None.
    Anything else raises TypeError naming its key. Writing to a path is atomic.

    >>> pyengine.save({"model": model.state_dict(), "epoch": 3, "rng": pyengine.get_rng_state()}, "ckpt.safetensors")
    """
    packer = _Packer()
    structure = packer.pack(obj)
    metadata = {"format": "pyengine", "pyengine.format_version": str(FORMAT_VERSION),
                "pyengine.structure": json.dumps(structure, separators=(",", ":"), allow_nan=False)}
    write(packer.arrays, metadata, f)


def write(arrays, metadata, f):
    """Write one safetensors file of ``arrays`` (name -> C-contiguous array) and ``metadata`` (str -> str) to
    ``f``, a binary file object or a path; to a path atomically (temporary file, fsync, rename)."""
    st = _safetensors()
    if hasattr(f, "write"):
        f.write(st.save(arrays, metadata=metadata))
        return
    path = os.fspath(f)
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"pyengine.save: directory {directory!r} does not exist")
    base = os.path.basename(path)
    _remove_orphaned_temporaries(directory, base)
    tmp = os.path.join(directory, f".{base}.{os.getpid()}.{secrets.token_hex(6)}.tmp")
    try:
        st.save_file(arrays, tmp, metadata=metadata)
        fd = os.open(tmp, os.O_RDWR)
        try:
            os.fsync(fd)          # the bytes are on disk before the rename makes them the checkpoint
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_directory(directory)


def _remove_orphaned_temporaries(directory, base):
    """Delete what an earlier save of ``base`` left behind when its process was killed mid-write: the
    temporaries ``.{base}.{pid}.{hex}.tmp`` of processes that no longer exist (a live process, another
    save running now, keeps its file)."""
    prefix = f".{base}."
    with contextlib.suppress(OSError):
        for entry in os.scandir(directory):
            name = entry.name
            if not (name.startswith(prefix) and name.endswith(".tmp")):
                continue
            pid = name[len(prefix):-len(".tmp")].split(".")[0]
            if pid.isdigit() and not _process_alive(int(pid)):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)


def _process_alive(pid):
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # someone else's process, or no way to tell: leave its file alone
    return True


def _fsync_directory(directory):
    """Make the rename itself durable (POSIX); harmless to skip where directories cannot be opened."""
    if os.name != "posix":
        return
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


# ---------------------------------------------------------------------- load


def _not_checkpoint(name, why, head=b""):
    hint = ""
    if head[:2] == b"PK" or head[:1] == b"\x80":
        hint = (" It looks like a pickle/zip file (torch.save, pickle); pyengine does not read those. "
                "Convert it to safetensors (e.g. with safetensors.torch.save_file) first.")
    return ValueError(f"pyengine.load: {name} is not a pyengine checkpoint ({why}).{hint}")


def _parse_header(head, rest_size, read, name):
    """The JSON header of a safetensors file; ValueError when the bytes are not one."""
    if len(head) < 8:
        raise _not_checkpoint(name, "too short to be a safetensors file", head)
    (n,) = struct.unpack("<Q", head[:8])
    if n > _MAX_HEADER or n > rest_size:
        raise _not_checkpoint(name, "not a safetensors file: bad header length", head)
    raw = read(n)
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise _not_checkpoint(name, "not a safetensors file: the header is not JSON", head) from None
    if not isinstance(header, dict):
        raise _not_checkpoint(name, "not a safetensors file: the header is not a JSON object", head)
    return header


def load(f, map_location=None, weights_only=True):
    """Load what ``save`` wrote: the same nesting, with Tensors where Tensors were saved.

    dtypes and shapes (0-d included) are preserved; NumPy arrays and scalars come back as such; int dict
    keys stay ints; tuples stay tuples. A plain safetensors file (not written by pyengine) loads as a flat
    ``{name: Tensor}`` dict (uint16/32/64 arrays, which no Tensor dtype holds, stay NumPy arrays). ``map_location`` may be None or ``"cpu"``; ``weights_only`` is accepted for
    PyTorch compatibility (loading never runs code either way).

    >>> ckpt = pyengine.load("ckpt.safetensors")
    >>> ckpt["epoch"], ckpt["model"]["fc.weight"].dtype
    (3, pyengine.float32)
    """
    check_map_location(map_location)
    name, metadata, arrays = read(f)
    if metadata.get("format") == PICKLE_FORMAT:
        raise ValueError(f"pyengine.io.load: {name} holds pickled Python objects (pyengine.save of an object "
                         "that is not a state dict, e.g. a whole Module); this loader reads state dicts only. "
                         "If you trust the file, use pyengine.load(f, weights_only=False).")
    return rebuild(name, metadata, arrays)


def check_map_location(map_location):
    """None, "cpu", a CPU device; or PyTorch's callable / dict forms (``lambda storage, loc: storage``,
    ``{"cuda:0": "cpu"}``), which can only mean the CPU here: accepted and ignored."""
    if callable(map_location) or isinstance(map_location, dict):
        return
    if map_location is not None:
        if not isinstance(map_location, (str, device)):
            raise TypeError("pyengine.load: map_location must be None, a device or a device string, "
                            f"got {type(map_location).__name__}")
        as_device(map_location)


def _arrays_of_bytes(data):
    """The arrays of a safetensors file's bytes, bfloat16 included (read-only views of ``data``)."""
    from safetensors import deserialize
    out = {}
    for k, v in deserialize(data):
        if v["dtype"] not in _ST_DTYPES:
            raise ValueError(f"tensor {k!r} has dtype {v['dtype']}, which pyengine cannot hold")
        out[k] = np.frombuffer(v["data"], dtype=_ST_DTYPES[v["dtype"]]).reshape(v["shape"])
    return out


def _file_bytes(path):
    with open(path, "rb") as fh:
        return fh.read()


def read(f):
    """Open a safetensors checkpoint (path or binary file object): ``(name, metadata, arrays)``, its name for
    messages, its ``__metadata__`` dict and its arrays by name; ValueError when it is not one."""
    st = _safetensors()
    if hasattr(f, "read"):
        data = f.read()
        name = repr(getattr(f, "name", "the file object"))
        header = _parse_header(data[:8], len(data) - 8, lambda n: data[8:8 + n], name)
        load_arrays = lambda: st.load(data)  # noqa: E731
    else:
        path = os.fspath(f)
        name = repr(path)
        if not os.path.exists(path):
            raise FileNotFoundError(f"pyengine.load: no such file: {path!r}")
        if os.path.isdir(path):
            raise IsADirectoryError(f"pyengine.load: {path!r} is a directory, not a checkpoint file")
        with open(path, "rb") as fh:
            head = fh.read(8)
            header = _parse_header(head, os.fstat(fh.fileno()).st_size - 8, fh.read, name)
        load_arrays = lambda: st.load_file(path)  # noqa: E731
    if any(isinstance(v, dict) and v.get("dtype") == "BF16" for v in header.values()):
        # safetensors.numpy knows no bfloat16: read the bytes and map the dtypes ourselves
        load_arrays = lambda: _arrays_of_bytes(data if hasattr(f, "read") else _file_bytes(path))  # noqa: E731
    try:
        arrays = load_arrays()
    except Exception as e:  # safetensors reports a damaged file with its own exception type
        raise ValueError(f"pyengine.load: {name} is not a valid safetensors file: {e}") from None
    metadata = header.get("__metadata__") or {}
    if not isinstance(metadata, dict):
        raise ValueError(f"pyengine.load: {name} is not a valid safetensors file: bad __metadata__")
    return name, metadata, arrays


def rebuild(name, metadata, arrays):
    """The object a (safe-format) checkpoint holds, from ``read``'s metadata and arrays."""
    if metadata.get("format") != "pyengine" or "pyengine.structure" not in metadata:
        # a plain safetensors file: Tensors, except dtypes no Tensor has (uint16/32/64) stay NumPy arrays
        return {k: _wrap(_writable(v)) if v.dtype in _dtype._BY_NP else _writable(v) for k, v in arrays.items()}
    version = metadata.get("pyengine.format_version", "1")
    version = int(version) if version.isdigit() else version
    if version != FORMAT_VERSION:
        raise ValueError(f"pyengine.load: {name} uses checkpoint format version {version!r}; this pyengine "
                         f"reads version {FORMAT_VERSION} (a newer pyengine may read it)")
    try:
        structure = json.loads(metadata["pyengine.structure"])
        _check_depth(structure, name)
        return _unpack(structure, arrays)
    except (TypeError, ValueError, KeyError, RecursionError) as e:
        raise ValueError(f"pyengine.load: {name} is a corrupt pyengine checkpoint (bad structure: {e})") from None


MAX_DEPTH = 64  # nesting of a saved object; a state dict of nested modules is < 20 deep


def _check_depth(node, name):
    """ValueError when the structure nests deeper than MAX_DEPTH (checked without recursion)."""
    stack = [(node, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ValueError(f"nesting deeper than {MAX_DEPTH} levels")
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
        stack.extend((c, depth + 1) for c in children if isinstance(c, (dict, list)))
