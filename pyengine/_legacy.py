"""PyTorch's legacy tensor API: ``Variable``, the typed tensor classes (``FloatTensor``, ``LongTensor``,
..., and ``cuda.FloatTensor`` & co.) and the legacy constructor ``Tensor(...)`` they share.

The legacy constructor (``pyengine.Tensor(...)``, ``pyengine.FloatTensor(...)``), as PyTorch's:

    Tensor()                   an empty tensor, shape (0,)
    Tensor(2, 3), Tensor(Size([2, 3]))   a new tensor of that shape, ZEROS (PyTorch leaves it uninitialised)
    Tensor([[1, 2]]), Tensor(ndarray)    a copy of the data, in the class's dtype (float32 for Tensor)
    Tensor(t)                  a tensor sharing t's memory (same dtype; a typed class needs t's dtype)
    Tensor(2.5), Tensor("ab")  TypeError

``isinstance(t, pyengine.FloatTensor)`` is true for float32 tensors; ``isinstance(t, pyengine.cuda.FloatTensor)``
for none. ``Variable(t, requires_grad=False)`` is a new leaf sharing t's memory (PyTorch's Variable is a
Tensor since 0.4); ``isinstance(t, Variable)`` is true for every tensor.
"""
import builtins
import numbers
import warnings

import numpy as np

from . import _dtype as D

_NAMES = (("Float", "float32"), ("Double", "float64"), ("Half", "float16"), ("BFloat16", "bfloat16"),
          ("Byte", "uint8"), ("Char", "int8"), ("Short", "int16"), ("Int", "int32"), ("Long", "int64"),
          ("Bool", "bool"))
TYPE_NAME = {name: prefix + "Tensor" for prefix, name in _NAMES}   # "float32" -> "FloatTensor"
_DTYPE_OF_TYPE = {prefix + "Tensor": name for prefix, name in _NAMES}


def _is_size(args):
    return builtins.all(isinstance(a, numbers.Integral) and not isinstance(a, (builtins.bool, np.bool_))
                        for a in args)


def new_array(args, np_dtype, op="Tensor"):
    """The array of PyTorch's legacy constructor called with ``args`` (see the module docstring);
    ``np_dtype`` None: float32 for data, the tensor's own dtype for a tensor."""
    from .tensor import Size, Tensor, _as_array
    npd = np.dtype(np.float32) if np_dtype is None else np_dtype
    if not args:
        return np.empty((0,), npd)
    if len(args) == 1:
        (a,) = args
        if isinstance(a, Tensor):
            if np_dtype is not None and a._data.dtype != np_dtype:
                raise TypeError(f"{op}: expected a tensor of dtype {D._BY_NP[np_dtype]}, got "
                                f"{D._BY_NP[a._data.dtype]}; convert it with .to(dtype)")
            return a._data
        if isinstance(a, Size):
            return _zeros(tuple(a), npd, op)
        if isinstance(a, np.ndarray) and a.dtype.kind not in "USO":
            return np.array(a, dtype=npd)  # a copy, as PyTorch's
        if isinstance(a, (list, tuple)):
            return _as_array(a, D._BY_NP[npd])
        if isinstance(a, numbers.Integral) and not isinstance(a, (builtins.bool, np.bool_)) \
                and not isinstance(a, np.generic):
            return _zeros((a,), npd, op)
        raise TypeError(f"{op}(): data must be a sequence (got {type(a).__name__})" if not isinstance(a, str)
                        else f"{op}(): invalid data type 'str'")
    if _is_size(args):
        return _zeros(args, npd, op)
    raise TypeError(f"{op}(): expected sizes (ints), a Size, a sequence of data or a tensor; got "
                    f"({', '.join(type(a).__name__ for a in args)})")


def _zeros(shape, npd, op):
    from .tensor import _shape_arg
    for s in shape:
        if s < 0:
            raise RuntimeError(f"Trying to create tensor with negative dimension {s}: {list(shape)}")
    return np.zeros(_shape_arg(shape, op, npd.itemsize), npd)


class _TensorType(type):
    """The metaclass of the typed tensor classes: ``isinstance`` by dtype, calling builds a tensor."""

    def __instancecheck__(cls, obj):
        from .tensor import Tensor
        return not cls.is_cuda and isinstance(obj, Tensor) and obj.dtype is cls.dtype

    def __call__(cls, *args, device=None):
        from .device import as_device, no_cuda
        from .tensor import _wrap
        if cls.is_cuda:
            raise TypeError(f"type {cls.__module__}.{cls.__name__} not available. {no_cuda()}")
        as_device(device)
        if cls.dtype is None:
            raise TypeError(f"{cls.__name__} needs the ml_dtypes package (pip install ml_dtypes)")
        return _wrap(new_array(args, cls.dtype.np_dtype, f"{cls.__module__}.{cls.__name__}"))


def _make_types(module, is_cuda):
    types = []
    for prefix, name in _NAMES:
        cls = _TensorType(prefix + "Tensor", (), {"dtype": D._BY_NAME.get(name), "is_cuda": is_cuda,
                                                  "__module__": module, "__slots__": ()})
        types.append(cls)
    return tuple(types)


TENSOR_TYPES = _make_types("pyengine", False)
CUDA_TENSOR_TYPES = _make_types("pyengine.cuda", True)
_BY_CLASS = {cls: cls.dtype for cls in TENSOR_TYPES}


def dtype_of_type_arg(arg, op="type"):
    """The dtype a ``Tensor.type(arg)`` / ``Module.type(arg)`` asks for: a dtype, a typed class, or its name
    ("torch.FloatTensor", "pyengine.LongTensor"); CUDA types raise (no CUDA)."""
    from .device import no_cuda
    if isinstance(arg, D.dtype):
        return arg
    if isinstance(arg, _TensorType):
        if arg.is_cuda:
            raise no_cuda(f"{op}({arg.__module__}.{arg.__name__})")
        return arg.dtype
    if isinstance(arg, str):
        prefix, _, name = arg.rpartition(".")
        if prefix in ("torch.cuda", "pyengine.cuda") and name in _DTYPE_OF_TYPE:
            raise no_cuda(f"{op}({arg!r})")
        if prefix in ("torch", "pyengine") and name in _DTYPE_OF_TYPE:
            return D._BY_NAME[_DTYPE_OF_TYPE[name]]
        raise ValueError(f"invalid type: {arg!r}")
    if arg in (builtins.float, builtins.int, builtins.bool) or isinstance(arg, (np.dtype, type)):
        return D._BY_NP[D.to_numpy_dtype(arg)]
    raise TypeError(f"{op}: expected a dtype, a tensor type or its name, got {arg!r}")


def type_string(dtype):
    """``Tensor.type()``: PyTorch's type name, "torch.FloatTensor", so that programs comparing it with
    PyTorch's strings run unchanged."""
    return "torch." + TYPE_NAME[dtype.name]


class _VariableMeta(type):
    def __instancecheck__(cls, obj):
        from .tensor import Tensor
        return isinstance(obj, Tensor)

    def __call__(cls, data, requires_grad=False, volatile=False):
        from .tensor import Tensor
        if not isinstance(data, Tensor):
            raise TypeError(f"Variable data has to be a tensor, but got {type(data).__name__}")
        if volatile:
            warnings.warn("volatile was removed and now has no effect. Use `with pyengine.no_grad():` instead.",
                          UserWarning, stacklevel=2)
        out = data.detach()
        if requires_grad:
            if not out.is_floating_point():
                raise RuntimeError("Only Tensors of floating point and complex dtype can require gradients")
            out.requires_grad_(True)
        return out


class Variable(metaclass=_VariableMeta):
    """PyTorch's ``autograd.Variable``: ``Variable(t, requires_grad=False)`` is a new leaf tensor sharing
    ``t``'s memory (cut from any graph); every Tensor is a Variable (``isinstance``)."""

    __slots__ = ()


# ---------------------------------------------------------------------- storages


def root_array(arr):
    """The outermost NumPy array of ``arr``'s ``base`` chain: the block a view's memory belongs to."""
    while isinstance(arr.base, np.ndarray):
        arr = arr.base
    return arr


class UntypedStorage:
    """A tensor's memory block as bytes (PyTorch's ``UntypedStorage``, minimal): ``len()`` and ``nbytes()``
    are its size in bytes, ``data_ptr()`` its address, ``tolist()`` its bytes."""

    def __init__(self, arr):
        self._arr = arr

    def nbytes(self):
        return self._arr.nbytes

    __len__ = nbytes

    def size(self):
        return self._arr.nbytes

    def element_size(self):
        return 1

    def data_ptr(self):
        return self._arr.ctypes.data

    def _bytes(self):
        a = self._arr if self._arr.flags.c_contiguous else np.ascontiguousarray(self._arr)
        return a.reshape(-1).view(np.uint8)

    def tolist(self):
        return self._bytes().tolist()

    def __getitem__(self, i):
        return self._bytes()[i].tolist()

    @property
    def device(self):
        from .device import CPU
        return CPU

    def __repr__(self):
        return f"pyengine.UntypedStorage of {self.nbytes()} bytes"


class TypedStorage(UntypedStorage):
    """A tensor's memory block as elements of its dtype (PyTorch's ``TypedStorage``, minimal)."""

    @property
    def dtype(self):
        return D._BY_NP[self._arr.dtype]

    def size(self):
        return self._arr.size

    def __len__(self):
        return self._arr.size

    def element_size(self):
        return self._arr.itemsize

    def _flat(self):
        a = self._arr if self._arr.flags.c_contiguous else np.ascontiguousarray(self._arr)
        return a.reshape(-1)

    def tolist(self):
        return self._flat().tolist()

    def __getitem__(self, i):
        return self._flat()[i].tolist()

    def untyped(self):
        return UntypedStorage(self._arr)

    def __repr__(self):
        return f"pyengine.TypedStorage(dtype={self.dtype}, size={self.size()})"
