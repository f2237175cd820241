"""What the fuzz harness feeds the public API: tensors with awkward dtypes, shapes, values and memory
layouts, and the bad arguments that replace a good one.

A case is data, not live objects: a ``TensorSpec`` holds the values and the layout, and ``make()``
builds a fresh tensor from them each time, so the compiled and the reference backend see the same
inputs (an op that writes into its input cannot leak into the other run).
"""
import math
from dataclasses import dataclass, field

import numpy as np
from hypothesis import strategies as st

import pyengine as pe

FLOATS = ("float32", "float64", "float16")
INTS = ("int64", "int32")
ALL_DTYPES = ("float32", "float32", "float64", "int64", "int32", "bool", "float16")  # float32 drawn most
SIZES = (0, 1, 2, 3, 5, 7)   # an empty dim, a broadcasting dim, primes (no SIMD-width multiple)
MAX_NUMEL = 240
# Where a float tensor gets special values: NaN must propagate, inf must not turn into garbage.
SPECIALS = (np.nan, np.inf, -np.inf, 0.0, -0.0, 1e30)
LAYOUTS = ("contiguous", "contiguous", "transposed", "strided", "flipped", "offset", "expanded")


MADE = []  # the tensors made during the current run (the harness compares their gradients)


@dataclass(eq=False)
class TensorSpec:
    """A tensor to build: ``values`` (C-contiguous, the logical content) in a memory ``layout``."""

    values: np.ndarray
    layout: str = "contiguous"
    requires_grad: bool = False

    def array(self):
        """A fresh array equal to ``values`` with the layout's strides (never sharing memory with values)."""
        v = self.values
        if self.layout == "transposed" and v.ndim >= 2:      # Fortran order: reversed strides
            return np.array(v, order="F", copy=True)          # (asfortranarray may return v itself)
        if self.layout == "strided" and v.ndim >= 1:          # every other element of a wider buffer
            buf = np.zeros(v.shape[:-1] + (2 * v.shape[-1],), v.dtype)
            buf[..., ::2] = v
            return buf[..., ::2]
        if self.layout == "flipped" and v.ndim >= 1:          # negative strides on every axis
            return np.flip(np.flip(v).copy())
        if self.layout == "offset":                           # data one element past the buffer start
            buf = np.empty(v.size + 1, v.dtype)
            buf[1:] = v.reshape(-1)
            return buf[1:].reshape(v.shape)
        if self.layout == "expanded" and v.ndim >= 1 and v.shape[0] > 0:   # stride 0 along axis 0, read-only
            return np.broadcast_to(v[:1].copy(), v.shape)
        return v.copy()

    def make(self):
        t = pe.from_numpy(self.array())
        if self.requires_grad:
            t.requires_grad_()
        MADE.append(t)
        return t

    def __repr__(self):
        v = self.values
        flags = []
        if v.dtype.kind == "f":
            if np.isnan(v).any():
                flags.append("nan")
            if np.isinf(v).any():
                flags.append("inf")
        if self.layout != "contiguous":
            flags.append(self.layout)
        if self.requires_grad:
            flags.append("grad")
        return f"T[{v.dtype.name}{list(v.shape)}{' ' + ' '.join(flags) if flags else ''}]"


class Opaque:
    """An object no API accepts, with a stable repr (object()'s repr changes every run)."""

    def __repr__(self):
        return "<object>"


def make_value(v):
    """Build the live argument from a case's data: TensorSpecs become tensors, containers are rebuilt."""
    if isinstance(v, TensorSpec):
        return v.make()
    if isinstance(v, list):
        return [make_value(e) for e in v]
    if isinstance(v, tuple):
        return tuple(make_value(e) for e in v)
    if isinstance(v, dict):
        return {k: make_value(e) for k, e in v.items()}
    return v


# ---------------------------------------------------------------------- good values


@st.composite
def shapes(draw, min_ndim=0, max_ndim=4, sizes=SIZES, max_numel=MAX_NUMEL):
    ndim = draw(st.integers(min_ndim, max_ndim))
    shape = []
    for _ in range(ndim):
        n = math.prod(shape) if shape else 1
        shape.append(draw(st.sampled_from([s for s in sizes if s * n <= max_numel] or [1])))
    return tuple(shape)


def values(draw, shape, dtype, special=True, low=None, high=None):
    """Values of ``dtype`` in ``shape``: a seeded NumPy draw (cheap for hypothesis), floats sometimes
    with NaN / inf / zeros / huge values at a few positions, ints mostly small (they are often indices)."""
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    n = math.prod(shape)
    dt = np.dtype(dtype)
    if dt.kind == "f":
        lo, hi = (-3.0, 3.0) if low is None else (low, high)
        v = rng.uniform(lo, hi, n)
        if special and n and draw(st.integers(0, 3)) == 0:
            k = draw(st.integers(1, min(n, 3)))
            v[rng.choice(n, k, replace=False)] = [draw(st.sampled_from(SPECIALS)) for _ in range(k)]
        with np.errstate(over="ignore"):
            return v.astype(dt).reshape(shape)
    if dt.kind == "b":
        return (rng.random(n) < 0.5).reshape(shape)
    lo, hi = (-2, 8) if low is None else (low, high)
    return rng.integers(lo, hi, n).astype(dt).reshape(shape)


@st.composite
def tensors(draw, shape=None, dtypes=ALL_DTYPES, min_ndim=0, max_ndim=4, special=True, low=None, high=None,
            grad=None, layouts=LAYOUTS):
    """A TensorSpec. ``grad``: None = sometimes requires_grad (float dtypes), False = never."""
    if shape is None:
        shape = draw(shapes(min_ndim, max_ndim))
    dtype = draw(st.sampled_from(dtypes))
    v = values(draw, tuple(shape), dtype, special, low, high)
    layout = draw(st.sampled_from(layouts))
    if layout == "expanded" and v.ndim and v.shape[0]:
        v = np.repeat(v[:1], v.shape[0], axis=0)  # the logical content of a stride-0 axis
    rg = np.dtype(dtype).kind == "f" and (draw(st.booleans()) if grad is None else grad)
    return TensorSpec(v, layout, rg)


def float_tensors(**kw):
    return tensors(dtypes=("float32", "float32", "float64"), **kw)


@st.composite
def broadcast_shape(draw, shape):
    """A shape that broadcasts with ``shape``: leading dims dropped, some dims set to 1."""
    out = list(shape[draw(st.integers(0, len(shape))):])
    for i in range(len(out)):
        if draw(st.integers(0, 3)) == 0:
            out[i] = 1
    return tuple(out)


def dim_of(draw, ndim, extra=0):
    """A valid dim of a tensor with ``ndim`` dims (``extra`` = 1 for unsqueeze/stack), negative sometimes."""
    n = max(ndim + extra, 1)
    return draw(st.integers(-n, n - 1))


# ---------------------------------------------------------------------- bad values
# Per kind of parameter: values that do not belong there, each with whether the call MUST raise.
# A lenient value (an int where a tensor goes, True for an int) may work as NumPy would; garbage
# (None where None means nothing, a string, a dict, an object, a non-integral float for an int,
# a Python int past int64) must raise a TypeError/ValueError/IndexError/RuntimeError naming the op.

_OPAQUE = Opaque()
HUGE = 2 ** 70

BAD = {
    "tensor": [(None, True), ("abc", True), ({"a": 1}, True), (_OPAQUE, True), (3, False), (2.5, False),
               ([1.0, 2.0], False), (True, False)],
    "tensors": [(None, True), ("ab", True), ([], True), (3, True), ([None], True), ([_OPAQUE], True)],
    "int": [(None, True), ("2", True), (2.5, True), (float("nan"), True), (HUGE, True), (-HUGE, True),
            (-1, False), (0, False), (True, False), (_OPAQUE, True)],
    "size": [(None, True), ("2", True), (2.5, True), (HUGE, True), (-3, True), (0, False), (2 ** 40, False),
             (_OPAQUE, True)],
    "dim": [(None, False), ("0", True), (1.5, True), (99, True), (-99, True), (HUGE, True), (_OPAQUE, True)],
    "float": [(None, True), ("x", True), ([], True), (float("nan"), False), (float("inf"), False), (-1.0, False),
              (HUGE, False), (_OPAQUE, True)],
    "finite": [(None, True), ("x", True), ([], True), (-1.0, False), (_OPAQUE, True)],  # a float, NaN/inf not drawn
    "bool": [("yes", False), (None, False), (2, False)],
    "choice": [("bogus", True), (None, True), (3, True)],
    "shape": [(None, True), ((HUGE,), True), ((-5,), True), (("a",), True), ((2.5,), True),
              ((2 ** 31, 2 ** 31, 2 ** 31), True), ((10 ** 6, 10 ** 6), False), (_OPAQUE, True)],
    "dtype": [("float7", True), (3, True), (_OPAQUE, True), ("float64", False), (np.float16, False)],
    "callable": [(None, True), (3, True), ("f", True)],
    "module": [(None, True), ("abc", True), (3, True), (_OPAQUE, True)],
    "modules": [("ab", True), (3, True), ([None], True), ([_OPAQUE], True)],
    "ints": [(None, True), ("ab", True), ([None], True), (3, True), ([2.5], True), ((HUGE,), False)],
    "any": [(None, False), ("abc", False), (_OPAQUE, False), (HUGE, False)],
}


@dataclass(eq=False)
class Arg:
    """One argument of a case: its ``kind`` (which bad values apply) and its value (data)."""

    kind: str
    value: object
    optional: bool = False  # None is a meaningful value here (not garbage)


@dataclass(eq=False)
class Case:
    """Named arguments of one call. Positional ones are named "0", "1", ...; ``mutated`` says which
    argument was replaced by a bad value: (name, value, must_raise)."""

    args: dict
    mutated: tuple = None
    nan_check: bool = True        # False where the math lets a NaN vanish (an ignored target, ...)
    notes: dict = field(default_factory=dict)

    def positional(self, prefix=""):
        """The positional arguments (names "0", "1", ...; "fwd:0", ... with a prefix), in order."""
        keys = [k for k in self.args if k.startswith(prefix) and k[len(prefix):].isdigit()]
        return [self.args[k] for k in sorted(keys, key=lambda k: int(k[len(prefix):]))]

    def keywords(self, prefix=""):
        """The keyword arguments (with a prefix: those under it, the prefix removed)."""
        n = len(prefix)
        return {k[n:]: a for k, a in self.args.items()
                if k.startswith(prefix) and not k[n:].isdigit() and ":" not in k[n:]}

    def describe(self):
        parts = []
        for k, a in self.args.items():
            v = _short(a.value)
            parts.append(v if k.isdigit() else f"{k}={v}")
        s = ", ".join(parts)
        if self.notes:
            s += "".join(f"; {k}={_short(v)}" for k, v in self.notes.items())
        if self.mutated:
            s += f"  [bad {self.mutated[0]}={_short(self.mutated[1])}]"
        return s


def _short(v):
    r = repr(v)
    return r if len(r) <= 80 else r[:77] + "..."


@st.composite
def mutate(draw, case, rate=3):
    """With probability 1/rate, replace one argument of ``case`` by a bad value of its kind."""
    names = [k for k, a in case.args.items() if a.kind in BAD]
    # hypothesis starts from the simplest draws (0, the first element): make "not mutated" the simple one
    if not names or draw(st.integers(0, rate - 1)) != rate - 1:
        return case
    name = draw(st.sampled_from(names))
    arg = case.args[name]
    bad, must = draw(st.sampled_from(BAD[arg.kind]))
    if bad is None and arg.optional:
        must = False
    args = dict(case.args)
    args[name] = Arg(arg.kind, bad, arg.optional)
    return Case(args, (name, bad, must), nan_check=False, notes=case.notes)
