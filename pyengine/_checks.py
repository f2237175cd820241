"""The public API's argument checks, in one place (DESIGN.md, "Errors": a bad argument raises a
TypeError / ValueError / IndexError / RuntimeError whose message names the op and says what is wrong).

``tensor_op(*params)`` decorates a public op (pyengine.exp, pyengine.nn.functional.linear, ...):
  * each parameter it names must be a Tensor ("weight?": a Tensor or None; "tensors*": a sequence of
    Tensors), else TypeError as PyTorch words it: "exp(): argument 'x' (position 1) must be Tensor, not int";
  * an error raised inside the op whose message does not name the op gets the op's name put in front
    ("sum: ..."), keeping its type; NumPy's own exception classes become the plain built-in one.
The wrapper has the op's exact signature (generated once, at import; tracebacks show its source):
calling it costs one extra Python call and an isinstance per checked parameter (pe.exp on a 4x8
tensor: 1.6 -> 1.7 us); the try block costs nothing until something is raised. The arithmetic ops
behind the operators (add, sub, mul, div) check their operands in their own code instead
(ops.elementwise._operand) and have no wrapper: a * b costs ~40 ns more than without any check.

``named_init`` gives the same naming to a constructor (nn modules, optimizers, schedulers wrap
their ``__init__`` through ``__init_subclass__``). The helpers below check what is not a tensor:
integers (``index_arg``, ``int64_arg``, ``size_arg``), numbers (``real_arg``, ``scalar_arg``),
dtypes the kernels take (``check_kernel_float``) and sizes this machine can hold (``check_alloc``).
"""
import builtins
import functools
import inspect
import linecache
import numbers
import operator
import os

import numpy as np

from .amp import autocast_mode as _autocast

# what an op may raise (DESIGN.md); an op's message is completed with its name when it lacks it. An
# OverflowError (a value that does not fit the dtype: inf into an int tensor) becomes a ValueError.
_NAMED = (TypeError, ValueError, IndexError, RuntimeError, MemoryError, OverflowError)
INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1
_PY_SCALARS = (int, float, bool)


def _type_name(x):
    return "None" if x is None else type(x).__name__


def with_name(e, name):
    """``e`` if its message names ``name``, else an exception of the same kind whose message starts
    with "name: " (NumPy's AxisError, UFuncTypeError, ... become the built-in class they derive from,
    whose constructor takes one message; an OverflowError becomes a ValueError), with ``e``'s traceback."""
    msg = str(e)
    if name in msg and not isinstance(e, OverflowError):
        return e
    cls = ValueError if isinstance(e, OverflowError) else type(e)
    if cls.__module__ != "builtins" and not cls.__module__.startswith("pyengine."):  # pyengine's own stay
        cls = next(c for c in cls.__mro__ if c.__module__ == "builtins")
    try:
        new = cls(msg if name in msg else f"{name}: {msg}" if msg else f"{name}: {type(e).__name__}")
    except Exception:  # noqa: BLE001 - an exception class with a constructor of its own: leave it
        return e
    new.__suppress_context__ = True
    return new.with_traceback(e.__traceback__)


def named_init(init):
    """Wrap a constructor: errors escaping it name the class being built (``type(self).__name__``, so an
    AdamW's error says AdamW where Adam's __init__ raised it; see with_name)."""
    @functools.wraps(init)
    def wrapper(self, *args, **kwargs):
        try:
            return init(self, *args, **kwargs)
        except _NAMED as e:
            new = with_name(e, type(self).__name__)
            if new is e:
                raise
            raise new from None
    return wrapper


def not_tensor(op, param, position, value):
    where = f"argument '{param}'" + (f" (position {position})" if position else "")
    return TypeError(f"{op}(): {where} must be Tensor, not {_type_name(value)}")


def tensor_seq(op, param, value):
    """``value`` as a list of Tensors (a sequence of them), else TypeError naming the op."""
    from .tensor import Tensor
    if isinstance(value, Tensor) or not isinstance(value, (list, tuple)):
        raise TypeError(f"{op}(): argument '{param}' must be a tuple or list of Tensors, not {_type_name(value)}")
    for i, t in enumerate(value):
        if not isinstance(t, Tensor):
            raise TypeError(f"{op}(): expected Tensor as element {i} in argument '{param}', but got "
                            f"{_type_name(t)}")
    return value


def tensor_op(*params, name=None):
    """Decorator of a public op: check that ``params`` are Tensors, name the op in its errors (see the
    module docstring). ``name``: the op's public name (default: the function's name)."""
    def deco(fn):
        return _generate(fn, name or fn.__name__, params)
    return deco


# The public ops whose checks require the kernels' dtypes (float32, float64) or NumPy's float kind (which
# bfloat16, an ml_dtypes type, is not): given a bfloat16 or float16 tensor, they compute through float32
# (pyengine/_lowp.py); tensor_op wraps them so. tests/test_compat.py calls each with bfloat16.
KERNEL_OPS = frozenset(
    ["pyengine.nn.functional." + n for n in (
        "linear", "cross_entropy", "nll_loss", "mse_loss", "l1_loss", "binary_cross_entropy",
        "binary_cross_entropy_with_logits", "layer_norm", "embedding", "scaled_dot_product_attention",
        "leaky_relu", "smooth_l1_loss", "huber_loss", "kl_div", "cosine_similarity", "gumbel_softmax",
        "margin_ranking_loss", "normalize", "pairwise_distance", "triplet_margin_loss", "cosine_embedding_loss")]
    + ["pyengine.ops.elementwise." + n for n in (
        "relu", "gelu", "celu", "elu", "hardsigmoid", "hardswish", "hardtanh", "lerp", "logsigmoid", "mish",
        "relu6", "selu", "softplus", "softsign", "tanhshrink")]
    + ["pyengine.ops.reduction." + n for n in ("softmax", "log_softmax", "mean", "logsumexp")]
    + ["pyengine.ops.linalg." + n for n in ("cdist", "matrix_norm", "norm", "norm_linalg", "vector_norm")]
    + ["pyengine.ops.statistics.histc"])


def _generate(fn, op, params):
    """The wrapper of ``fn``: the same signature, the checks inline, then ``fn`` inside a try."""
    from .tensor import Tensor
    low = None
    if f"{fn.__module__}.{fn.__name__}" in KERNEL_OPS:
        # a 2-byte float among the declared tensors: the op runs through float32 (_lowp.via_float32); the test
        # is one attribute per tensor (itemsize), the dtype is looked at only when it is 2
        from ._lowp import via_float32
        low = via_float32(fn)
    sig = inspect.signature(fn)
    names = list(sig.parameters)
    first = 0 if names[:1] == ["self"] else 1  # a method's arguments are numbered after self, as callers see them
    checks = []
    for spec in params:
        pname = spec.rstrip("?*")
        position = names.index(pname) + first
        if spec.endswith("*"):
            checks.append(f"    _seq({op!r}, {pname!r}, {pname})")
        elif spec.endswith("?"):
            checks.append(f"    if {pname} is not None and not isinstance({pname}, Tensor):\n"
                          f"        raise _not_tensor({op!r}, {pname!r}, {position}, {pname})")
        else:
            checks.append(f"    if not isinstance({pname}, Tensor):\n"
                          f"        raise _not_tensor({op!r}, {pname!r}, {position}, {pname})")
    head, call, defaults = [], [], {}
    star = False
    for p in sig.parameters.values():
        text = p.name
        if p.kind is p.VAR_POSITIONAL:
            text, star = "*" + p.name, True
            call.append(text)
        elif p.kind is p.VAR_KEYWORD:
            text = "**" + p.name
            call.append(text)
        elif p.kind is p.KEYWORD_ONLY:
            if not star:
                head.append("*")
                star = True
            call.append(f"{p.name}={p.name}")
        else:
            call.append(p.name)
        if p.default is not p.empty:
            defaults[f"_d_{p.name}"] = p.default
            text += f"=_d_{p.name}"
        head.append(text)
    lowline = ""
    if low is not None:
        tests = [f"{p.rstrip('?')}._data.itemsize == 2" if not p.endswith("?") else
                 f"({p[:-1]} is not None and {p[:-1]}._data.itemsize == 2)" for p in params if not p.endswith("*")]
        lowline = f"        if {' or '.join(tests)}:\n            return _low({', '.join(call)})\n" if tests else ""
        if not tests:
            fn = low
    src = (f"def {fn.__name__}({', '.join(head)}):\n" + "".join(c + "\n" for c in checks)
           + f"    try:\n{lowline}        return _fn({', '.join(call)})\n"
           + f"    except _NAMED as e:\n        new = _with_name(e, {op!r})\n        if new is e:\n            raise\n"
           + "        raise new from None\n")
    scope = {"Tensor": Tensor, "_fn": fn, "_low": low, "_not_tensor": not_tensor, "_seq": tensor_seq, "_NAMED": _NAMED,
             "_with_name": with_name, **defaults}
    filename = f"<tensor_op {fn.__module__}.{fn.__qualname__}>"
    linecache.cache[filename] = (len(src), None, src.splitlines(True), filename)  # tracebacks show the source
    exec(compile(src, filename, "exec"), scope)  # noqa: S102 - our own source, built above
    wrapper = functools.update_wrapper(scope[fn.__name__], fn)
    wrapper.__signature__ = sig
    kind = _autocast.policy(f"{fn.__module__}.{fn.__name__}")
    if kind is not None:  # an op on PyTorch's autocast lists (pyengine/amp/autocast_mode.py)
        wrapper = _autocast.autocast_op(wrapper, kind)
    return wrapper


# ---------------------------------------------------------------------- arguments that are not tensors


def index_arg(op, param, value):
    """``value`` as a Python int (ints, NumPy ints, one-element integer Tensors); TypeError naming the op
    for anything else (a float, a string, None)."""
    if type(value) is int:
        return value
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{op}(): argument '{param}' must be int, not {_type_name(value)}") from None


def int64_arg(op, param, value):
    """``value`` as an int that fits int64 (what a kernel's integer argument holds), else TypeError /
    ValueError naming the op: a Python int past int64 must not reach the binding."""
    v = index_arg(op, param, value)
    if not INT64_MIN <= v <= INT64_MAX:
        raise ValueError(f"{op}(): argument '{param}' = {v} is out of the int64 range")
    return v


def size_arg(op, param, value, minimum=0):
    """A size or count: an int >= ``minimum`` within int64, else TypeError / ValueError naming the op."""
    v = int64_arg(op, param, value)
    if v < minimum:
        raise ValueError(f"{op}(): argument '{param}' must be >= {minimum}, got {v}")
    return v


def scalar_arg(op, param, value):
    """A fill value: a number (bools and one-element Tensors too), never None, a string, ..."""
    if type(value) in _PY_SCALARS:  # the common case first: no ABC check, no import (add's alpha=1, every call)
        return value
    from .tensor import Tensor
    if isinstance(value, Tensor):
        return value.item()
    if isinstance(value, (numbers.Number, np.generic)):
        return value
    raise TypeError(f"{op}(): argument '{param}' must be a number, not {_type_name(value)}")


def _physical_memory():
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, OSError, ValueError):  # no sysconf (Windows): no check
        return None


_PHYSICAL_MEMORY = _physical_memory()


def check_alloc(op, nbytes, what):
    """MemoryError naming the op when ``nbytes`` is more than this machine's memory, raised before anything is
    allocated: the allocation itself might succeed (pages are mapped lazily) and the process then be killed
    as they are filled, or (a layer of 2**40 small parameters) take forever."""
    if _PHYSICAL_MEMORY is not None and nbytes > _PHYSICAL_MEMORY:
        raise MemoryError(f"{op}: {what} would take {nbytes} bytes, more than this machine's memory "
                          f"({_PHYSICAL_MEMORY} bytes)")


KERNEL_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def check_kernel_float(op, t):
    """TypeError naming the op unless tensor ``t`` holds float32 or float64, the dtypes the compiled kernels
    compute in (checked here, above the backend, so that the reference twins refuse what the kernels do)."""
    dt = t._data.dtype
    if dt in KERNEL_FLOATS:
        return
    if dt.kind != "f" and t.dtype.name != "bfloat16":
        raise TypeError(f"{op}: expected a floating point tensor, got {t.dtype}")
    raise TypeError(f"{op}: {t.dtype} is not supported: the kernels compute in float32 or float64 "
                    "(convert with .float())")


def real_arg(op, param, value):
    """A real number (not a bool, not a string), as a float; TypeError naming the op otherwise."""
    if isinstance(value, numbers.Real) and not isinstance(value, builtins.bool):
        return builtins.float(value)
    raise TypeError(f"{op}(): argument '{param}' must be a number, not {_type_name(value)}")
