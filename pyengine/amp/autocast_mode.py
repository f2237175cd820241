"""autocast: PyTorch's mixed-precision region (``torch.autocast`` / ``torch.amp.autocast``) on the CPU.

Inside ``with pyengine.autocast("cpu", dtype=pyengine.bfloat16):`` (bfloat16 is the CPU default) the ops
follow PyTorch's CPU autocast policy (its op lists, checked against torch 2.13's behaviour):

- ``LOWP_OPS`` (matmul, mm, bmm, addmm, baddbmm, addbmm, F.linear, F.scaled_dot_product_attention, the
  convolutions): float32 tensor arguments are cast to the region's dtype first, so the op runs in bfloat16;
  matmul and linear then run on the bfloat16 GEMM (AMX / AVX512-BF16: amp/bf16_ops.py), the others compute
  through float32 and return bfloat16 (pyengine/_lowp.py);
- ``FP32_OPS`` (the losses: cross_entropy, nll_loss, mse_loss, l1_loss, binary_cross_entropy(_with_logits),
  smooth_l1/huber, kl_div, the margin losses; cdist): bfloat16/float16 arguments are cast to float32, and the
  op runs and returns float32;
- every other op runs in its inputs' dtype, as outside the region (softmax, layer_norm, reductions on a
  bfloat16 tensor compute in float32 inside and return bfloat16, as PyTorch's CPU kernels do; bfloat16 mixed
  with float32 promotes to float32).

The casts are graph nodes: gradients reach float32 parameters in float32 (fp32 master weights; the optimizer
never sees bfloat16). ``F.linear`` with a float32 weight is the exception: one node (bf16_ops.LinearAutocastBf16)
rounds its operands inside, with the same forward bits, and returns the float32 gradients as the GEMM sums them
(not rounded to bfloat16 and widened back, as a cast node's backward would). A float32 leaf that requires grad (a parameter) is cast once per region and grad mode
and reused while its version is unchanged (PyTorch's ``cache_enabled``), so a weight used twice is
converted once. ``is_autocast_enabled("cpu")`` is True inside, ``get_autocast_dtype("cpu")`` the dtype.
Asking for ``device_type="cuda"`` warns and disables the region, as PyTorch does on a machine without CUDA.
The policy is applied by ``tensor_op`` (pyengine/_checks.py), which wraps the listed public ops with
``autocast_op``; outside every region that costs one integer test per call.
"""
import functools
import threading
import warnings

import numpy as np

from .. import _dtype as D
from ..backend import backend_of

_DEVICE_TYPES = ("cpu", "cuda", "xpu", "mps", "hpu", "mtia", "xla", "ipu", "meta", "privateuseone")
_DEFAULT_DTYPE = {"cpu": D.bfloat16, "cuda": D.float16}


class _State(threading.local):
    def __init__(self):
        self.enabled = {}   # device type -> bool
        self.dtype = {}     # device type -> dtype
        self.cache = {}     # (id(tensor), grad enabled) -> (tensor, version, its cast), while a region is open
        self.cache_on = []  # cache_enabled of each open region, innermost last


_state = _State()
_open = [0]  # enabled CPU regions open in any thread: the wrapped ops' fast test

# PyTorch's CPU autocast lists (torch.testing._internal.autocast_test_lists.AutocastCPUTestLists, and the
# "CPU Ops that can autocast to bfloat16 / float32" tables of the torch.amp docs), as pyengine's public ops.
LOWP_OPS = frozenset(
    ["pyengine.ops.linalg." + n for n in ("matmul", "mm", "bmm", "addmm", "baddbmm", "addbmm")]
    + ["pyengine.nn.functional." + n for n in ("linear", "scaled_dot_product_attention")]
    + ["pyengine.nn._vision." + n for n in ("conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
                                             "conv_transpose3d")])
FP32_OPS = frozenset(
    ["pyengine.nn.functional." + n for n in (
        "cross_entropy", "nll_loss", "mse_loss", "l1_loss", "binary_cross_entropy",
        "binary_cross_entropy_with_logits", "smooth_l1_loss", "huber_loss", "kl_div", "margin_ranking_loss",
        "triplet_margin_loss", "cosine_embedding_loss", "hinge_embedding_loss", "poisson_nll_loss",
        "soft_margin_loss", "multi_margin_loss", "multilabel_margin_loss")]
    + ["pyengine.nn._vision.avg_pool3d", "pyengine.ops.linalg.cdist"])


def policy(qualname):
    """'lowp', 'fp32' or None: what autocast does with the public op ``module.name``."""
    if qualname in LOWP_OPS:
        return "lowp"
    if qualname in FP32_OPS:
        return "fp32"
    return None


def autocast_op(op, kind):
    """``op`` (a public op) under autocast's policy ``kind`` ('lowp' or 'fp32'); itself outside regions."""
    fused = f"{op.__module__}.{op.__name__}" == "pyengine.nn.functional.linear"

    @functools.wraps(op)
    def wrapped(*args, **kwargs):
        if not _open[0]:
            return op(*args, **kwargs)
        return _run(op, kind, args, kwargs, fused)
    wrapped.__autocast_policy__ = kind
    return wrapped


def _run(op, kind, args, kwargs, fused=False):
    if Tensor is None:
        _bind()
    st = _state
    if not st.enabled.get("cpu"):
        return op(*args, **kwargs)
    if kind == "lowp":
        target = st.dtype["cpu"].np_dtype
        if fused and target == D.BF16_NP:  # F.linear with a float32 weight: one node, the casts inside it
            out = _bf16_ops.linear_autocast(args, kwargs, _weight_bf16)
            if out is not None:
                return out
        cast = _to_lowp
    else:
        target = _F32
        cast = _to_fp32
    args = [cast(a, target) for a in args]
    kwargs = {k: cast(v, target) for k, v in kwargs.items()}
    return op(*args, **kwargs)


def _to_lowp(a, target):
    """A float32 Tensor cast to ``target`` (cached for parameters within the region); anything else as is."""
    if not isinstance(a, Tensor) or a._data.dtype != _F32:
        return a
    st = _state
    if a.requires_grad and a.grad_fn is None and st.cache_on and st.cache_on[-1]:
        key = (id(a), _grad.is_grad_enabled())
        version = version_of(a)[0]
        hit = st.cache.get(key)
        if hit is not None and hit[0] is a and hit[1] == version:
            return hit[2]
        out = _lowp.cast(a, target)
        st.cache[key] = (a, version, out)
        return out
    return _lowp.cast(a, target)


def _weight_bf16(w):
    """The bfloat16 array of float32 weight ``w`` for the fused linear (bf16_ops.linear_autocast): made once per
    region and version for a parameter (as ``_to_lowp`` caches its casts), afresh for any other tensor."""
    st = _state
    if w.requires_grad and w.grad_fn is None and st.cache_on and st.cache_on[-1]:
        key = (id(w), "array")
        version = version_of(w)[0]
        hit = st.cache.get(key)
        if hit is not None and hit[0] is w and hit[1] == version:
            return hit[2]
        out = backend_of(w).f32_to_bf16(w._data)
        st.cache[key] = (w, version, out)
        return out
    return backend_of(w).f32_to_bf16(w._data)


def _to_fp32(a, target):
    if isinstance(a, Tensor) and a._data.dtype in _lowp.LOW:
        return _lowp.cast(a, target)
    return a


def is_autocast_available(device_type):
    """Whether autocast can run on ``device_type`` here: the CPU only."""
    return device_type == "cpu"


def is_autocast_enabled(device_type=None):
    """Whether an autocast region for ``device_type`` ("cuda" when omitted, as PyTorch) is active."""
    return _state.enabled.get(device_type or "cuda", False)


def get_autocast_dtype(device_type):
    return _state.dtype.get(device_type, _DEFAULT_DTYPE.get(device_type, D.float16))


class autocast:
    """``autocast(device_type, dtype=None, enabled=True, cache_enabled=None)``: a context manager and a
    decorator (see the module docstring: pyengine accepts it and computes in the inputs' dtype)."""

    def __init__(self, device_type, dtype=None, enabled=True, cache_enabled=None):
        if not isinstance(device_type, str):
            raise ValueError(f"Expected `device_type` of type `str`, got: `{type(device_type)}`")
        if device_type not in _DEVICE_TYPES:
            raise RuntimeError(f"Expected one of {', '.join(_DEVICE_TYPES)} device type at start of device "
                               f"string: {device_type}")
        if dtype is not None and not isinstance(dtype, D.dtype):
            raise TypeError(f"autocast: dtype must be a pyengine dtype, got {dtype!r}")
        self.device = device_type
        self.fast_dtype = dtype if dtype is not None else _DEFAULT_DTYPE.get(device_type, D.float16)
        self._enabled = bool(enabled)
        self._cache_enabled = cache_enabled
        if self._enabled and device_type != "cpu":
            warnings.warn(f"User provided device_type of '{device_type}', but {device_type.upper()} is not "
                          "available. Disabling", UserWarning, stacklevel=2)
            self._enabled = False
        if self._enabled and device_type == "cpu" and self.fast_dtype not in (D.bfloat16, D.float16):
            warnings.warn("In CPU autocast, but the target dtype is not supported. Disabling autocast.\n"
                          "CPU Autocast only supports dtype of torch.bfloat16, torch.float16 currently.",
                          UserWarning, stacklevel=2)
            self._enabled = False

    def __enter__(self):
        self._prev = (_state.enabled.get(self.device), _state.dtype.get(self.device))
        _state.enabled[self.device] = self._enabled
        _state.dtype[self.device] = self.fast_dtype
        self._counted = self._enabled and self.device == "cpu"
        if self._counted:
            _open[0] += 1
            _state.cache_on.append(self._cache_enabled is not False)
        return self

    def __exit__(self, *exc):
        for store, prev in zip((_state.enabled, _state.dtype), self._prev):
            if prev is None:
                store.pop(self.device, None)
            else:
                store[self.device] = prev
        if self._counted:
            _open[0] -= 1
            _state.cache_on.pop()
            if not _state.cache_on:
                _state.cache.clear()  # the outermost region closes: casts are made afresh in the next
        return False

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with autocast(self.device, self.fast_dtype, self._enabled, self._cache_enabled):
                return fn(*args, **kwargs)
        return wrapper


def custom_fwd(fwd=None, *, device_type="cuda", cast_inputs=None):
    """PyTorch's decorator for a custom Function's forward under autocast: returns ``fwd`` as it is (the
    ops inside it follow the region's policy; ``cast_inputs`` is not applied)."""
    if fwd is None:
        return functools.partial(custom_fwd, device_type=device_type, cast_inputs=cast_inputs)
    return fwd


def custom_bwd(bwd=None, *, device_type="cuda"):
    """PyTorch's decorator for a custom Function's backward under autocast: returns ``bwd`` as it is."""
    if bwd is None:
        return functools.partial(custom_bwd, device_type=device_type)
    return bwd


_F32 = np.dtype(np.float32)
_lowp = _grad = version_of = Tensor = _bf16_ops = None  # bound on the first call in a region (_bind): this
# module is imported by tensor_op while the ops are being defined, before these exist


def _bind():
    global _lowp, _grad, version_of, Tensor, _bf16_ops
    from .. import _lowp as lp, autograd as ag
    from ..ops.inplace import version_of as vo
    from ..tensor import Tensor as T
    from . import bf16_ops
    _lowp, _grad, version_of, Tensor, _bf16_ops = lp, ag, vo, T, bf16_ops
