"""dtypes, named as PyTorch's: pyengine.float32 (the default), float64, int64, bool, ...

``bfloat16`` is stored as the ``ml_dtypes`` package's NumPy bfloat16 (a dependency); ops compute on it
through float32 (see ``pyengine/_lowp.py``).
"""
import numpy as np

try:
    import ml_dtypes as _ml_dtypes
except ImportError:  # bfloat16 is then unavailable (pyengine.bfloat16 says so when used)
    _ml_dtypes = None


class dtype:
    """A tensor element type; wraps a NumPy dtype."""

    __slots__ = ("name", "np_dtype", "is_floating_point", "itemsize")

    def __init__(self, name, np_dtype):
        self.name = name
        self.np_dtype = np.dtype(np_dtype)
        # NumPy files bfloat16 (an ml_dtypes type) under kind "V": the float test goes by name too
        self.is_floating_point = self.np_dtype.kind == "f" or name == "bfloat16"
        self.itemsize = self.np_dtype.itemsize

    def __repr__(self):
        return f"pyengine.{self.name}"

    @property
    def is_complex(self):
        return False

    @property
    def is_signed(self):
        return self.np_dtype.kind in "fi" or self.name == "bfloat16"

    def to_real(self):
        return self

    def to_complex(self):
        raise TypeError(f"to_complex: pyengine has no complex dtypes (got {self!r})")

    def __reduce__(self):
        return (_lookup, (self.name,))


float16 = dtype("float16", np.float16)
float32 = dtype("float32", np.float32)
float64 = dtype("float64", np.float64)
int8 = dtype("int8", np.int8)
uint8 = dtype("uint8", np.uint8)
int16 = dtype("int16", np.int16)
int32 = dtype("int32", np.int32)
int64 = dtype("int64", np.int64)
bool_ = dtype("bool", np.bool_)
bfloat16 = dtype("bfloat16", _ml_dtypes.bfloat16) if _ml_dtypes is not None else None

half, float, double, short, int, long = float16, float32, float64, int16, int32, int64  # noqa: A001

_ALL = tuple(d for d in (float16, bfloat16, float32, float64, int8, uint8, int16, int32, int64, bool_)
             if d is not None)
# the NumPy dtypes of the floating-point dtypes (bfloat16's kind is "V", so kind == "f" misses it)
FLOAT_NP = frozenset(d.np_dtype for d in _ALL if d.is_floating_point)
BF16_NP = bfloat16.np_dtype if bfloat16 is not None else None


def is_float_np(np_dtype):
    """Whether a NumPy dtype is one of pyengine's floating-point dtypes (bfloat16 included)."""
    return np_dtype.kind == "f" or np_dtype == BF16_NP
_BY_NP = {d.np_dtype: d for d in _ALL}
_BY_NAME = {d.name: d for d in _ALL}


def _lookup(name):
    return _BY_NAME[name]


def from_numpy_dtype(np_dtype):
    """The pyengine dtype of a NumPy dtype (TypeError for unsupported ones)."""
    try:
        return _BY_NP[np.dtype(np_dtype)]
    except (KeyError, TypeError):
        raise TypeError(f"unsupported dtype {np_dtype!r}; pyengine supports "
                        f"{', '.join(d.name for d in _ALL)}") from None


def to_numpy_dtype(d):
    """NumPy dtype for a pyengine dtype, NumPy dtype, Python type or name (None -> None)."""
    if d is None:
        return None
    if isinstance(d, dtype):
        return d.np_dtype
    if d is bool:
        return np.dtype(np.bool_)
    if isinstance(d, str) and d in _BY_NAME:
        return _BY_NAME[d].np_dtype
    if d is builtins_float:
        return np.dtype(np.float32)
    if d is builtins_int:
        return np.dtype(np.int64)
    nd = np.dtype(d)
    from_numpy_dtype(nd)  # validate
    return nd


import builtins as _b  # noqa: E402

builtins_float = _b.float
builtins_int = _b.int
