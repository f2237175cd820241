"""pyengine.serialization: ``save`` / ``load`` with PyTorch's semantics over pyengine's safe checkpoint format.

``save(obj, f)`` writes one safetensors file, atomically for a path (pyengine/io.py):
- a state dict or any nesting of Tensors, NumPy arrays, dicts, lists, tuples, str/int/float/bool/None
  (what training loops save) is written in the SAFE format: the tensors as safetensors tensors, the rest as
  JSON. Loading it parses JSON and copies bytes; nothing is executed.
- anything else (a whole ``nn.Module``, an optimizer, a dict holding arbitrary objects), which PyTorch
  pickles, is PICKLED here too: the tensors and arrays still go into the file as safetensors tensors (any
  safetensors reader sees them), the object around them is a pickle in the file's metadata
  (``"format": "pyengine-pickle"``). Tensors shared by several places (a module's parameters, an
  optimizer's param groups) come back shared.

``load(f, map_location=None, *, weights_only=True)``, PyTorch 2.6+'s default:
- a safe-format file loads as it always did (``weights_only`` does not matter: nothing can run).
- a pickled file is unpickled by a restricted unpickler that builds only tensors, containers, primitive
  types and the globals allowed by ``add_safe_globals`` / ``safe_globals``: a whole Module is refused
  with an error naming the class and both ways out. ``weights_only=False`` unpickles anything.

WARNING (PyTorch's): ``weights_only=False`` runs the pickle, and unpickling can execute arbitrary code.
Never load a file with ``weights_only=False`` unless you trust its source. Prefer saving state dicts
(``model.state_dict()``), which load safely, over whole modules.

>>> pyengine.save(model, "model.pe")                      # pickled: the whole Module
>>> m = pyengine.load("model.pe", weights_only=False)     # trusted file: unpickle it
>>> with pyengine.serialization.safe_globals([Net]):     # or allow exactly the classes needed
...     m = pyengine.load("model.pe")
"""
import _compat_pickle
import base64
import builtins
import collections
import contextlib
import io as _stdio
import pickle

import numpy as np

from . import io as _io
from .tensor import Tensor, _new

__all__ = ["save", "load", "add_safe_globals", "get_safe_globals", "clear_safe_globals", "safe_globals"]

PICKLE_VERSION = 1

# ---------------------------------------------------------------------- the allowlist of weights_only loading

# what the restricted unpickler builds without being told: containers and builtin value types (tensors,
# arrays and NumPy scalars never reach it: they are persistent ids, read from the safetensors part)
_DEFAULT_SAFE = [collections.OrderedDict, collections.Counter, collections.defaultdict, builtins.set,
                 builtins.frozenset, builtins.bytearray, builtins.complex, builtins.slice, builtins.range]
_user_safe = []


def _default_pyengine_safe():
    from ._dtype import _lookup
    from .device import device
    from .tensor import Size
    return [(Size, "pyengine.tensor.Size"), (device, "pyengine.device.device"), (_lookup, "pyengine._dtype._lookup")]


def _key(entry):
    """``"module.qualname"`` of an allowlist entry: an object, or ``(object, "module.name")``."""
    if isinstance(entry, tuple):
        if len(entry) != 2 or not isinstance(entry[1], str):
            raise ValueError(f"add_safe_globals: a tuple entry must be (object, 'module.name'), got {entry!r}")
        return entry[1], entry[0]
    mod = getattr(entry, "__module__", None)
    name = getattr(entry, "__qualname__", None) or getattr(entry, "__name__", None)
    if mod is None or name is None:
        raise TypeError(f"add_safe_globals: {entry!r} has no __module__/__qualname__; pass (obj, 'module.name')")
    return f"{mod}.{name}", entry


def add_safe_globals(safe_globals):
    """Allow these classes / functions (or ``(obj, "module.name")`` pairs) in ``weights_only`` loading,
    for the rest of the process. Only allow what you trust: their constructors run while loading."""
    if not isinstance(safe_globals, (list, tuple)):
        raise TypeError(f"add_safe_globals: expected a list, got {type(safe_globals).__name__}")
    for g in safe_globals:
        _key(g)  # validate before adding any
    _user_safe.extend(safe_globals)


def get_safe_globals():
    """The globals added by ``add_safe_globals`` (and active ``safe_globals`` blocks)."""
    return list(_user_safe)


def clear_safe_globals():
    """Forget every global added by ``add_safe_globals``."""
    _user_safe.clear()


@contextlib.contextmanager
def safe_globals(safe_globals):
    """``with safe_globals([Net]):`` allow these globals in ``weights_only`` loading inside the block."""
    before = list(_user_safe)
    add_safe_globals(safe_globals)
    try:
        yield
    finally:
        _user_safe[:] = before


def _allowed():
    allowed = {}
    for entry in _DEFAULT_SAFE + _default_pyengine_safe() + _user_safe:
        k, obj = _key(entry)
        allowed[k] = obj
    return allowed


# ---------------------------------------------------------------------- save


class _Pickler(pickle.Pickler):
    """Pickles the object with each Tensor / NumPy array / NumPy scalar replaced by a reference to a tensor
    of the safetensors file (one per object: shared tensors stay shared)."""

    def __init__(self, file, protocol):
        super().__init__(file, protocol=protocol)
        self.arrays = {}
        self.names = {}  # id(obj) -> its array's name
        self.keep = []   # the objects named, alive until the end (their ids stay unique)

    def _name(self, obj, arr):
        name = self.names.get(id(obj))
        if name is None:
            if arr.dtype not in _io._SAVABLE_DTYPES:
                raise TypeError(f"pyengine.save: cannot save an array of dtype {arr.dtype}")
            name = self.names[id(obj)] = str(len(self.arrays))
            self.arrays[name] = arr if arr.flags.c_contiguous else arr.copy(order="C")
            self.keep.append(obj)
        return name

    def persistent_id(self, obj):
        from .nn.parameter import Parameter
        t = type(obj)
        if t is Tensor or t is Parameter:
            kind = "parameter" if t is Parameter else "tensor"
            return (kind, self._name(obj, obj._data), bool(obj.requires_grad))
        if t is np.ndarray:
            return ("ndarray", self._name(obj, obj))
        if isinstance(obj, np.generic) and np.dtype(type(obj)) in _io._SAVABLE_DTYPES:
            return ("npscalar", self._name(obj, np.asarray(obj)))
        return None


def save(obj, f, pickle_module=None, pickle_protocol=2, _use_new_zipfile_serialization=True,
         _disable_byteorder_record=False):
    """Save ``obj`` to ``f`` (a path or a binary file object): the safe format when ``obj`` is a state dict
    or any nesting of tensors, arrays, containers and plain values; pickled around its tensors otherwise
    (see the module docstring). Writing to a path is atomic: a crash leaves the previous file intact."""
    try:
        return _io.save(obj, f)
    except TypeError as e:
        if "cannot save an object of type" not in str(e) and "dict keys must be" not in str(e):
            raise
    if pickle_module is not None and pickle_module is not pickle:
        raise ValueError("pyengine.save: pickle_module other than the standard pickle is not supported")
    buf = _stdio.BytesIO()
    pickler = _Pickler(buf, max(int(pickle_protocol), 4))  # 4+: no Python 2 names (``__builtin__.set``)
    pickler.dump(obj)
    metadata = {"format": _io.PICKLE_FORMAT, "pyengine.pickle_version": str(PICKLE_VERSION),
                "pyengine.pickle": base64.b64encode(buf.getvalue()).decode("ascii")}
    _io.write(pickler.arrays, metadata, f)


# ---------------------------------------------------------------------- load


class _Unpickler(pickle.Unpickler):
    def __init__(self, file, arrays, weights_only, name):
        super().__init__(file)
        self.arrays, self.weights_only, self.name = arrays, weights_only, name
        self.loaded = {}
        self.allowed = _allowed() if weights_only else None

    def persistent_load(self, pid):
        kind, key = pid[0], pid[1]
        if key in self.loaded:
            return self.loaded[key]
        if key not in self.arrays:
            raise ValueError(f"pyengine.load: corrupt checkpoint {self.name}: tensor {key!r} is missing")
        arr = _io._writable(self.arrays[key])
        if kind == "tensor":
            obj = _new(arr, pid[2])
        elif kind == "parameter":
            from .nn.parameter import Parameter
            obj = Parameter(arr, requires_grad=pid[2])
        elif kind == "ndarray":
            obj = arr
        elif kind == "npscalar":
            obj = arr[()]
        else:
            raise pickle.UnpicklingError(f"unknown persistent id {kind!r}")
        self.loaded[key] = obj
        return obj

    def find_class(self, module, name):
        if not self.weights_only:
            return super().find_class(module, name)
        module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        obj = self.allowed.get(f"{module}.{name}")
        if obj is None:
            raise pickle.UnpicklingError(
                f"Weights only load failed: {self.name} holds pickled objects, and GLOBAL {module}.{name} was "
                f"not an allowed global by default. If you trust this class/function, allow it with "
                f"`pyengine.serialization.add_safe_globals([{name}])` or within the "
                f"`pyengine.serialization.safe_globals([{name}])` context manager; or, if you trust the whole "
                f"file, re-run `pyengine.load` with `weights_only=False` (it will run the pickle, which can "
                f"execute arbitrary code: do it only for files from a trusted source).")
        return obj


def load(f, map_location=None, pickle_module=None, *, weights_only=True, mmap=None, **pickle_load_args):
    """Load what ``save`` wrote (see the module docstring for ``weights_only``). ``map_location`` may be
    None, "cpu" or a CPU device; a plain safetensors file loads as ``{name: Tensor}``."""
    _io.check_map_location(map_location)
    if pickle_module is not None and weights_only:
        raise RuntimeError("Can not safely load weights when explicit pickle_module is specified")
    name, metadata, arrays = _io.read(f)
    if metadata.get("format") != _io.PICKLE_FORMAT:
        return _io.rebuild(name, metadata, arrays)
    version = metadata.get("pyengine.pickle_version", "")
    if version != str(PICKLE_VERSION):
        raise ValueError(f"pyengine.load: {name} uses pickled-checkpoint version {version!r}; this pyengine "
                         f"reads version {PICKLE_VERSION}")
    try:
        raw = base64.b64decode(metadata["pyengine.pickle"], validate=True)
    except (KeyError, ValueError):
        raise ValueError(f"pyengine.load: {name} is a corrupt pyengine checkpoint (bad pickle record)") from None
    return _Unpickler(_stdio.BytesIO(raw), arrays, weights_only, name).load()
