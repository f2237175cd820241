"""pyengine.nn.functional: layers as functions (PyTorch's names and semantics).

The heavy ones (linear, cross_entropy, mse_loss, binary_cross_entropy(_with_logits), layer_norm,
embedding, scaled_dot_product_attention) are Functions over the compiled kernels of
``pyengine.backend``; each kernel's NumPy twin in ``backend/reference`` states what it computes.
"""
import math

import numpy as np

from .._checks import KERNEL_FLOATS, check_kernel_float, int64_arg, real_arg, tensor_op
from ..autograd import Function, no_grad
from ..backend import xp_of
from ..ops import gelu, log_softmax, matmul, one_hot, relu, sigmoid, silu, softmax, tanh, where  # noqa: F401
from ..random import _rng
from ..tensor import Tensor, _wrap

__all__ = ["linear", "relu", "gelu", "silu", "tanh", "sigmoid", "softmax", "log_softmax", "leaky_relu",
           "cross_entropy", "nll_loss", "mse_loss", "l1_loss", "binary_cross_entropy",
           "binary_cross_entropy_with_logits", "layer_norm", "embedding", "dropout",
           "scaled_dot_product_attention", "one_hot"]


def _shape_str(t):
    return str(tuple(t.shape))


_KERNEL_FLOATS = frozenset(KERNEL_FLOATS)


def _check_float(op, *ts):
    """The tensors ``ts`` (None skipped) are float32 or float64 (what the kernels compute in), all alike."""
    dts = {t._data.dtype for t in ts if t is not None}
    if not dts <= _KERNEL_FLOATS:  # one set test on the usual path (F.linear runs this every call)
        for t in ts:
            if t is not None:
                check_kernel_float(op, t)
    if len(dts) > 1:
        raise TypeError(f"{op}: expected all tensors to have the same dtype, got {sorted(str(d) for d in dts)}")


def _legacy_reduction(size_average, reduce, emit_warning=True):
    """PyTorch's mapping of the deprecated ``size_average`` / ``reduce`` loss arguments (None: True) to
    ``reduction``: reduce=False -> "none", else size_average -> "mean" / "sum"; warns (UserWarning) as PyTorch.
    Every loss (functional and module) calls this when either is given."""
    size_average = True if size_average is None else size_average
    reduce = True if reduce is None else reduce
    reduction = "mean" if size_average and reduce else "sum" if reduce else "none"
    if emit_warning:
        import warnings
        warnings.warn(f"size_average and reduce args will be deprecated, please use reduction='{reduction}' "
                      "instead.", UserWarning, stacklevel=3)
    return reduction


def _reduce(op, reduction):
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"{op}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


# ---------------------------------------------------------------------- linear


class Linear(Function):
    """y = x W^T + b  (backend ``linear``: one GEMM, bias in its epilogue).

    x: (*, IN)  W: (OUT, IN)  b: (OUT,)  ->  y: (*, OUT); the leading dims are the GEMM's N rows
    (viewed as 2-D here, not by reshape nodes in the graph: two fewer nodes per layer and call).
    dx = g W,  dW = g^T x,  db = sum_N g.
    """

    saves = (0, 1)

    fresh_grads = True  # dx, dW, db: new arrays from the GEMM and column-sum kernels

    def forward(self, x, weight, bias):
        self.x, self.weight = x, weight
        rows = math.prod(x.shape[:-1])
        self.x2 = x.reshape(rows, x.shape[-1])
        return self.backend.linear(self.x2, weight, bias).reshape(x.shape[:-1] + (weight.shape[0],))

    def backward(self, g):
        B, n = self.backend, self.needs_input_grad
        x2 = self.x2
        g2 = g.reshape(x2.shape[0], g.shape[-1])
        dx = None
        if n[0]:  # allocated in x's shape, so that the engine can adopt it (see Function.fresh_grads)
            dx = self.xp.empty(self.x.shape, x2.dtype)
            B.matmul(g2, self.weight, out=dx.reshape(x2.shape))
        dw = B.matmul(g2, x2, trans_a=True) if n[1] else None
        db = B.sum_rows(g2) if n[2] else None
        return dx, dw, db


@tensor_op("input", "weight", "bias?")
def linear(input, weight, bias=None):
    """y = input @ weight.T + bias.   input: (*, IN), weight: (OUT, IN), bias: (OUT,) -> (*, OUT)"""
    _check_float("linear", input, weight, bias)
    if weight.ndim != 2 or input.ndim == 0 or input.shape[-1] != weight.shape[1]:
        raise RuntimeError(f"linear: input {_shape_str(input)} and weight {_shape_str(weight)} do not match "
                           f"(expected input (*, {weight.shape[-1] if weight.ndim else '?'}))")
    if bias is not None and tuple(bias.shape) != (weight.shape[0],):
        raise RuntimeError(f"linear: bias {_shape_str(bias)} does not match weight {_shape_str(weight)}")
    return Linear.apply(input, weight, bias)


@tensor_op("input")
def leaky_relu(input, negative_slope=0.01):
    return where(input > 0, input, input * real_arg("leaky_relu", "negative_slope", negative_slope))


# ---------------------------------------------------------------------- cross-entropy


class CrossEntropy(Function):
    """Fused log-softmax + NLL (backend ``cross_entropy_forward/backward``).

    logits: (N, C)  targets: (N,) int64  ->  per-row loss (N,), reduced as asked.
    The backward recomputes softmax row by row from the saved lse (never stores the (N, C) softmax).
    """

    saves = (0,)

    def forward(self, logits, targets, ignore_index, label_smoothing, reduction, weight):
        xp = self.xp
        loss, lse = self.backend.cross_entropy_forward(logits, targets, ignore_index, label_smoothing)
        self.logits, self.targets, self.lse = logits, targets, lse
        self.ignore_index, self.label_smoothing, self.reduction = ignore_index, label_smoothing, reduction
        valid = targets != ignore_index
        self.w = None
        if weight is not None:
            self.w = xp.where(valid, weight[xp.where(valid, targets, 0)], 0).astype(logits.dtype)
            loss = loss * self.w
        if reduction == "none":
            return loss
        if reduction == "sum":
            return xp.asarray(loss.sum(dtype=np.float64), dtype=logits.dtype)
        self.denom = float(self.w.sum(dtype=np.float64)) if self.w is not None else float(xp.count_nonzero(valid))
        with np.errstate(invalid="ignore", divide="ignore"):
            return xp.asarray(loss.sum(dtype=np.float64) / self.denom, dtype=logits.dtype)

    def backward(self, g):
        xp, n = self.xp, self.logits.shape[0]
        if self.reduction == "none":
            dloss = g.astype(self.logits.dtype, copy=False)
        elif self.reduction == "sum":
            dloss = xp.full(n, g, dtype=self.logits.dtype)
        else:
            dloss = xp.full(n, g / self.denom if self.denom else np.nan, dtype=self.logits.dtype)
        if self.w is not None:
            dloss = dloss * self.w
        d = self.backend.cross_entropy_backward(self.logits, self.targets, self.lse, dloss, self.ignore_index,
                                                self.label_smoothing)
        return d, None, None, None, None, None


@tensor_op("input")
def cross_entropy(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None, reduction="mean",
                  label_smoothing=0.0):
    """Cross-entropy between softmax(input) and class-index targets, or class probabilities.

    input: (N, C), (N, C, d1, ...) or (C,)   target: int64 (N,), (N, d1, ...) or (); or float probabilities of
    the input's shape ("mean" then divides by N d1 ...)
    weight: (C,) class weights;  ignore_index: targets equal to it add nothing (and do not count in the mean)
    label_smoothing: eps in [0, 1]: the target distribution is (1 - eps) one_hot + eps / C
    """
    if size_average is not None or reduce is not None:  # PyTorch's deprecated form of reduction
        reduction = _legacy_reduction(size_average, reduce)
    _reduce("cross_entropy", reduction)
    _check_float("cross_entropy", input)
    tgt = target._data if isinstance(target, Tensor) else xp_of(input).asarray(target)
    if tgt.dtype.kind == "f":
        return _cross_entropy_probs(input, target, weight, reduction, label_smoothing)
    if tgt.dtype.kind not in "iu":
        raise TypeError(f"cross_entropy: target must hold int64 class indices, got {tgt.dtype}")
    label_smoothing = real_arg("cross_entropy", "label_smoothing", label_smoothing)
    ignore_index = int64_arg("cross_entropy", "ignore_index", ignore_index)  # the kernel takes an int64
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be in [0, 1], got {label_smoothing}")
    x = input
    if x.ndim == 1:
        x = x.reshape(1, -1)
        tgt = tgt.reshape(1)
    if x.ndim < 2:
        raise ValueError(f"cross_entropy: input must be (N, C) or (N, C, d1, ...), got {_shape_str(input)}")
    C = x.shape[1]
    expected = (x.shape[0],) + tuple(x.shape[2:])
    if tuple(tgt.shape) != expected:
        raise ValueError(f"cross_entropy: target shape {tuple(tgt.shape)} does not match input "
                         f"{_shape_str(input)} (expected {expected})")
    spatial = tuple(x.shape[2:])
    if spatial:
        perm = (0,) + tuple(range(2, x.ndim)) + (1,)
        x = x.permute(*perm).reshape(-1, C)
    w = None
    if weight is not None:
        w = weight._data if isinstance(weight, Tensor) else xp_of(input).asarray(weight)
        if w.shape != (C,):
            raise ValueError(f"cross_entropy: weight must have shape ({C},), got {tuple(w.shape)}")
    t1 = tgt.reshape(-1).astype(np.int64, copy=False)
    if w is not None and label_smoothing:
        loss = _cross_entropy_weighted_smoothing(x, t1, weight, ignore_index, reduction, label_smoothing)
        return loss.reshape(*expected) if reduction == "none" and input.ndim > 1 else (
            loss.reshape(()) if reduction == "none" else loss)
    loss = CrossEntropy.apply(x, t1, ignore_index, label_smoothing, reduction, w)
    if reduction == "none":
        loss = loss.reshape(*expected) if input.ndim > 1 else loss.reshape(())
    return loss


class NllLoss(Function):
    """loss_i = -logp[i, t_i];  dlogp[i, t_i] = -dloss_i."""

    saves = ()

    def forward(self, logp, t, ignore_index, reduction):
        xp = self.xp
        n, c = logp.shape
        valid = t != ignore_index
        bad = valid & ((t < 0) | (t >= c))
        if xp.any(bad):
            raise IndexError(f"nll_loss: target {int(t[bad][0])} is out of range for {c} classes")
        self.t, self.valid, self.shape, self.reduction = xp.where(valid, t, 0), valid, logp.shape, reduction
        loss = xp.where(valid, -logp[xp.arange(n), self.t], 0).astype(logp.dtype)
        self.count = max(int(valid.sum()), 0)
        if reduction == "none":
            return loss
        s = loss.sum(dtype=np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            return xp.asarray(s if reduction == "sum" else s / self.count, dtype=logp.dtype)

    def backward(self, g):
        xp, n = self.xp, self.shape[0]
        if self.reduction == "none":
            dl = g
        else:
            dl = xp.full(n, g if self.reduction == "sum" else g / self.count if self.count else np.nan, g.dtype)
        d = xp.zeros(self.shape, g.dtype)
        d[xp.arange(n), self.t] = xp.where(self.valid, -dl, 0)
        return d, None, None, None


@tensor_op("input", "weight?")
def nll_loss(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None, reduction="mean"):
    """Negative log-likelihood of class-index targets given log-probabilities.

    input: (N, C), (N, C, d1, ...) or (C,)   target: int64 (N,), (N, d1, ...) or ()
    weight: (C,) class weights: loss_n = -weight[t_n] input[n, t_n]; "mean" divides by the sum of the
    weights of the counted targets. Targets equal to ``ignore_index`` add nothing.
    """
    if size_average is not None or reduce is not None:
        reduction = _legacy_reduction(size_average, reduce)
    _reduce("nll_loss", reduction)
    tgt = target._data if isinstance(target, Tensor) else xp_of(input).asarray(target)
    if tgt.dtype.kind not in "iu":
        raise TypeError(f"nll_loss: target must hold int64 class indices, got {tgt.dtype}")
    ignore_index = int64_arg("nll_loss", "ignore_index", ignore_index)
    x, out_shape = input, tuple(tgt.shape)
    if x.ndim == 1:
        if tgt.ndim != 0:
            raise ValueError(f"nll_loss: expected a 0-D target for input {_shape_str(input)}, got {tuple(tgt.shape)}")
        x, tgt = x.reshape(1, -1), tgt.reshape(1)
    elif x.ndim >= 2:
        expected = (x.shape[0],) + tuple(x.shape[2:])
        if tuple(tgt.shape) != expected:
            raise ValueError(f"nll_loss: expected input (N, C, d1, ...) and target (N, d1, ...), got "
                             f"{_shape_str(input)} and {tuple(tgt.shape)}")
        if x.ndim > 2:  # (N, C, d1, ...) -> (N d1 ..., C)
            x = x.permute(0, *range(2, x.ndim), 1).reshape(-1, x.shape[1])
            tgt = tgt.reshape(-1)
    else:
        raise ValueError(f"nll_loss: input must be (C,), (N, C) or (N, C, d1, ...), got {_shape_str(input)}")
    tgt = tgt.astype(np.int64)
    if weight is None:
        loss = NllLoss.apply(x, tgt, ignore_index, reduction)
        return loss.reshape(*out_shape) if reduction == "none" else loss
    C = x.shape[1]
    if tuple(weight.shape) != (C,):
        raise ValueError(f"nll_loss: weight must have shape ({C},), got {_shape_str(weight)}")
    per = NllLoss.apply(x, tgt, ignore_index, "none")
    valid = tgt != ignore_index
    wt = (weight * 1.0).to(x.dtype)[_wrap(np.where(valid, tgt, 0))] * _wrap(valid.astype(x._data.dtype))
    loss = per * wt
    if reduction == "none":
        return loss.reshape(*out_shape)
    if reduction == "sum":
        return loss.sum()
    return loss.sum() / wt.sum()


# ---------------------------------------------------------------------- regression / binary losses


def _target(op, input, target, name="target"):
    """A loss's target (or weight) as a Tensor: Tensors pass; numbers, arrays and lists of numbers are
    converted to the input's dtype; anything else (None, a string) is a TypeError naming the loss."""
    if isinstance(target, Tensor):
        return target
    if target is not None and not isinstance(target, (str, bytes, dict)):
        try:
            arr = xp_of(input).asarray(target, input._data.dtype)
        except (TypeError, ValueError):
            arr = None
        if arr is not None:
            return _wrap(arr)
    raise TypeError(f"{op}(): argument '{name}' must be a Tensor or a number, not {type(target).__name__}")


def _broadcast_pair(op, input, target):
    if tuple(input.shape) != tuple(target.shape):
        try:
            np.broadcast_shapes(tuple(input.shape), tuple(target.shape))
        except ValueError:
            raise ValueError(f"{op}: input {_shape_str(input)} and target {_shape_str(target)} cannot be "
                             "broadcast together") from None


def _full(xp, a, shape, dtype):
    """``a`` broadcast to ``shape`` as a C-ordered array of ``dtype`` (a copy only when needed): the
    elementwise loss kernels take operands of one shape, and the forward saves this for the backward."""
    return xp.asarray(xp.broadcast_to(a, shape), dtype=dtype, order="C")


class MSELoss(Function):
    """sum or mean of (x - y)^2 (backend ``mse_forward/backward``);  dx = 2 scale g (x - y), dy = -dx."""

    saves = (0, 1)

    def forward(self, x, y, reduction):
        shape = np.broadcast_shapes(x.shape, y.shape)
        self.x = _full(self.xp, x, shape, x.dtype)
        self.y = _full(self.xp, y, shape, x.dtype)
        s = self.backend.mse_forward(self.x, self.y)
        self.scale = 1.0 / max(self.x.size, 1) if reduction == "mean" else 1.0
        if reduction == "mean":
            return self.xp.asarray(s / self.x.size if self.x.size else np.nan, dtype=x.dtype)
        return s

    def backward(self, g):
        d = self.backend.mse_backward(self.x, self.y, float(g) * self.scale)
        return d, (-d if self.needs_input_grad[1] else None), None


@tensor_op("input")
def mse_loss(input, target, size_average=None, reduce=None, reduction="mean"):
    """Mean (or sum) squared error; ``reduction="none"`` keeps the elementwise (x - y)^2."""
    if size_average is not None or reduce is not None:
        reduction = _legacy_reduction(size_average, reduce)
    _reduce("mse_loss", reduction)
    target = _target("mse_loss", input, target)
    _check_float("mse_loss", input, target)
    _broadcast_pair("mse_loss", input, target)
    if reduction == "none":
        d = input - target
        return d * d
    return MSELoss.apply(input, target, reduction)


@tensor_op("input")
def l1_loss(input, target, size_average=None, reduce=None, reduction="mean"):
    """Mean (or sum) absolute error; ``reduction="none"`` keeps the elementwise |x - y|."""
    if size_average is not None or reduce is not None:
        reduction = _legacy_reduction(size_average, reduce)
    _reduce("l1_loss", reduction)
    target = _target("l1_loss", input, target)
    if input._data.dtype.kind != "f":
        raise TypeError(f"l1_loss: expected a floating point input, got {input.dtype}")
    _broadcast_pair("l1_loss", input, target)
    d = (input - target).abs()
    return d if reduction == "none" else d.sum() if reduction == "sum" else d.mean()


def _reduce_elementwise(xp, loss, reduction):
    if reduction == "none":
        return loss
    s = loss.sum(dtype=np.float64)
    if reduction == "sum":
        return xp.asarray(s, loss.dtype)
    return xp.asarray(s / loss.size if loss.size else np.nan, loss.dtype)


def _dloss(xp, g, reduction, shape, dtype):
    """The elementwise upstream gradient of a reduced elementwise loss (size-1 when uniform)."""
    if reduction == "none":
        return xp.asarray(g, dtype=dtype)
    n = math.prod(shape)
    v = float(g) / n if reduction == "mean" and n else float(g)
    return xp.full((), v, dtype)


class BCE(Function):
    """-(y log p + (1 - y) log(1 - p)), logs clamped at -100 (backend ``bce_forward/backward``);
    the target's gradient (PyTorch has one too): dy = g (log(1 - p) - log p), logs clamped the same way."""

    saves = (0, 1)

    def forward(self, p, y, weight, reduction):
        self.p, self.y = p, _full(self.xp, y, p.shape, p.dtype)
        self.w, self.reduction = weight, reduction
        loss = self.backend.bce_forward(p, self.y)
        if weight is not None:
            loss = loss * weight
        return _reduce_elementwise(self.xp, loss, reduction)

    def backward(self, g):
        xp = self.xp
        dl = _dloss(xp, g, self.reduction, self.p.shape, self.p.dtype)
        if self.w is not None:
            dl = (xp.broadcast_to(dl, self.p.shape) * self.w).astype(self.p.dtype, copy=False)
        dp = self.backend.bce_backward(self.p, self.y, dl) if self.needs_input_grad[0] else None
        dy = None
        if self.needs_input_grad[1]:
            with np.errstate(divide="ignore"):
                dy = dl * (xp.maximum(xp.log1p(-self.p), -100) - xp.maximum(xp.log(self.p), -100))
        return dp, dy, None, None


@tensor_op("input")
def binary_cross_entropy(input, target, weight=None, size_average=None, reduce=None, reduction="mean"):
    """BCE between probabilities ``input`` (in [0, 1]) and ``target``, same shape."""
    if size_average is not None or reduce is not None:
        reduction = _legacy_reduction(size_average, reduce)
    _reduce("binary_cross_entropy", reduction)
    xp = xp_of(input)
    target = _target("binary_cross_entropy", input, target)
    _check_float("binary_cross_entropy", input, target)
    if tuple(input.shape) != tuple(target.shape):
        raise ValueError(f"binary_cross_entropy: target {_shape_str(target)} must have the same shape as input "
                         f"{_shape_str(input)}")
    w = None if weight is None else xp.broadcast_to(_target("binary_cross_entropy", input, weight, "weight")._data,
                                                    input.shape).astype(input._data.dtype)
    return BCE.apply(input, target, w, reduction)


class BCEWithLogits(Function):
    """max(x, 0) - x y + log(1 + e^-|x|)  (backend ``bce_with_logits_forward/backward``);
    the target's gradient: dy = g (-x + (pw - 1) (log(1 + e^-|x|) + max(-x, 0))) (pw = 1 without pos_weight)."""

    saves = (0, 1)

    def forward(self, x, y, weight, pos_weight, reduction):
        xp = self.xp
        self.x, self.y = x, _full(xp, y, x.shape, x.dtype)
        self.w, self.pw, self.reduction = weight, pos_weight, reduction
        if pos_weight is None:
            loss = self.backend.bce_with_logits_forward(x, self.y)
        else:
            # (1 - y) x + (1 + (pw - 1) y) (log(1 + e^-|x|) + max(-x, 0))
            lw = 1 + (pos_weight - 1) * self.y
            loss = ((1 - self.y) * x + lw * (xp.log1p(xp.exp(-xp.abs(x))) + xp.maximum(-x, 0)))
            loss = loss.astype(x.dtype)
        if weight is not None:
            loss = loss * weight
        return _reduce_elementwise(xp, loss, reduction)

    def backward(self, g):
        xp = self.xp
        dl = _dloss(xp, g, self.reduction, self.x.shape, self.x.dtype)
        if self.w is not None:
            dl = (xp.broadcast_to(dl, self.x.shape) * self.w).astype(self.x.dtype, copy=False)
        dy = None
        if self.needs_input_grad[1]:
            dy = -self.x
            if self.pw is not None:
                dy = dy + (self.pw - 1) * (xp.log1p(xp.exp(-xp.abs(self.x))) + xp.maximum(-self.x, 0))
            dy = (dy * dl).astype(self.x.dtype, copy=False)
        if not self.needs_input_grad[0]:
            return None, dy, None, None, None
        if self.pw is None:
            return self.backend.bce_with_logits_backward(self.x, self.y, dl), dy, None, None, None
        s = 1 / (1 + xp.exp(-self.x))
        # d/dx = (1 + (pw - 1) y) s - pw y ... written as: lw (s - 1) + (1 - y)
        lw = 1 + (self.pw - 1) * self.y
        d = (lw * (s - 1) + (1 - self.y)) * dl
        return d.astype(self.x.dtype), dy, None, None, None


@tensor_op("input")
def binary_cross_entropy_with_logits(input, target, weight=None, size_average=None, reduce=None, reduction="mean",
                                     pos_weight=None):
    """BCE on logits, computed stably (no sigmoid overflow)."""
    if size_average is not None or reduce is not None:
        reduction = _legacy_reduction(size_average, reduce)
    _reduce("binary_cross_entropy_with_logits", reduction)
    xp = xp_of(input)
    target = _target("binary_cross_entropy_with_logits", input, target)
    _check_float("binary_cross_entropy_with_logits", input, target)
    if tuple(input.shape) != tuple(target.shape):
        raise ValueError(f"binary_cross_entropy_with_logits: target {_shape_str(target)} must have the same "
                         f"shape as input {_shape_str(input)}")
    dt = input._data.dtype
    op = "binary_cross_entropy_with_logits"
    w = None if weight is None else xp.broadcast_to(_target(op, input, weight, "weight")._data, input.shape).astype(dt)
    pw = None if pos_weight is None else xp.asarray(_target(op, input, pos_weight, "pos_weight")._data, dt)
    return BCEWithLogits.apply(input, target, w, pw, reduction)


# ---------------------------------------------------------------------- layer norm


class LayerNorm(Function):
    """(x - mean) rstd weight + bias over the last axis (backend ``layer_norm_forward/backward``).

    x: (*, C)  weight, bias: (C,) or None; the kernels see x as (N, C) rows (a view for contiguous x);
    mean and rstd (N,) are saved for backward.
    """

    saves = (0, 1)

    fresh_grads = True  # dx (allocated here in x's shape), dweight, dbias (by the kernel wrapper)

    def forward(self, x, weight, bias, eps):
        x2 = x.reshape(math.prod(x.shape[:-1]), x.shape[-1])
        y, self.mean, self.rstd = self.backend.layer_norm_forward(x2, weight, bias, eps)
        self.x2, self.weight, self.has_bias = x2, weight, bias is not None
        return y.reshape(x.shape)

    def backward(self, g):
        n = self.needs_input_grad
        dx = self.xp.empty(g.shape, self.x2.dtype) if n[0] else None
        _, dw, db = self.backend.layer_norm_backward(g.reshape(self.x2.shape), self.x2, self.weight, self.mean,
                                                     self.rstd, dx=None if dx is None else dx.reshape(self.x2.shape))
        return (dx, dw if n[1] else None, db if (n[2] and self.has_bias) else None, None)


@tensor_op("input", "weight?", "bias?")
def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    """Normalise over the last len(normalized_shape) dims, then scale and shift."""
    if not isinstance(normalized_shape, (tuple, list)):
        normalized_shape = (normalized_shape,)
    normalized_shape = tuple(int64_arg("layer_norm", "normalized_shape", s) for s in normalized_shape)
    eps = real_arg("layer_norm", "eps", eps)
    if not eps >= 0:  # NaN too: the kernel refuses it, so its twin must
        raise ValueError(f"layer_norm: eps must be >= 0, got {eps}")
    k = len(normalized_shape)
    if tuple(input.shape[input.ndim - k:]) != normalized_shape or input.ndim < k:
        raise RuntimeError(f"layer_norm: input {_shape_str(input)} does not end in normalized_shape "
                           f"{normalized_shape}")
    _check_float("layer_norm", input, weight, bias)
    C = math.prod(normalized_shape)
    for name, p in (("weight", weight), ("bias", bias)):
        if p is not None and tuple(p.shape) != normalized_shape:
            raise RuntimeError(f"layer_norm: {name} {_shape_str(p)} must have shape {normalized_shape}")
    x = input if k == 1 else input.reshape(*input.shape[:input.ndim - k], C)
    w = weight.reshape(C) if weight is not None and k > 1 else weight
    b = bias.reshape(C) if bias is not None and k > 1 else bias
    y = LayerNorm.apply(x, w, b, eps)
    return y if k == 1 else y.reshape(*input.shape)


# ---------------------------------------------------------------------- embedding


class Embedding(Function):
    """out[n] = weight[idx[n]];  dweight = scatter-add of g (backend ``embedding_forward/backward``), each
    row's share divided by how often its index occurs with ``scale_grad_by_freq``."""

    saves = ()

    fresh_grads = True  # dweight: allocated by the kernel wrapper

    def forward(self, weight, idx, padding_idx, scale_grad_by_freq=False):
        self.idx, self.V, self.padding_idx = idx, weight.shape[0], padding_idx
        self.scale_grad_by_freq = scale_grad_by_freq
        return self.backend.embedding_forward(weight, idx)

    def backward(self, g):
        if self.scale_grad_by_freq:
            xp = self.xp
            counts = xp.bincount(self.idx, minlength=self.V)
            g = g * (1.0 / counts[self.idx]).astype(g.dtype)[:, None]
        return (self.backend.embedding_backward(g, self.idx, self.V, self.padding_idx),
                None, None, None)


def _check_indices(idx, V):
    if idx.size and (idx.min() < 0 or idx.max() >= V):
        bad = idx[(idx < 0) | (idx >= V)][0]
        raise IndexError(f"embedding: index {int(bad)} is out of range for {V} embeddings")


def _embedding_renorm_(weight, idx, max_norm, norm_type):
    """PyTorch's embedding_renorm_: every row of ``weight`` that ``idx`` looks up and whose ``norm_type``-norm
    exceeds ``max_norm`` is scaled in place to norm max_norm / (norm + 1e-7) * norm. Not differentiated."""
    xp = xp_of(weight)
    rows = xp.unique(idx)
    w = weight._data[rows]
    norms = xp.linalg.norm(w, ord=norm_type, axis=1)
    over = norms > max_norm
    if bool(over.any()):
        scale = (max_norm / (norms[over] + 1e-7)).astype(w.dtype)
        with no_grad():
            weight[rows[over]] = w[over] * scale[:, None]


@tensor_op("weight")
def embedding(input, weight, padding_idx=None, max_norm=None, norm_type=2.0, scale_grad_by_freq=False,
              sparse=False):
    """Look up rows of ``weight`` (V, C) for integer ``input`` of any shape -> (*input.shape, C).

    padding_idx: that row gets no gradient. max_norm: rows looked up whose ``norm_type``-norm exceeds it are
    renormalised in place first (as PyTorch: ``weight`` changes). scale_grad_by_freq: each row's gradient is
    divided by the number of times its index occurs in ``input``. sparse gradients are not supported.
    """
    idx = input._data if isinstance(input, Tensor) else xp_of(weight).asarray(input)
    if idx.dtype.kind not in "iu":
        raise TypeError(f"embedding: indices must be an integer tensor, got {idx.dtype}")
    if weight.ndim != 2:
        raise ValueError(f"embedding: weight must be 2-D (num_embeddings, dim), got {_shape_str(weight)}")
    check_kernel_float("embedding", weight)
    if sparse:
        raise NotImplementedError("embedding: sparse gradients are not supported (sparse=True)")
    V = weight.shape[0]
    if padding_idx is not None:
        padding_idx = int64_arg("embedding", "padding_idx", padding_idx)
        if not -V <= padding_idx < V:
            raise ValueError(f"embedding: padding_idx {padding_idx} must be within num_embeddings ({V})")
        if padding_idx < 0:
            padding_idx += V
    flat = idx.reshape(-1).astype(np.int64, copy=False)
    if max_norm is not None:
        max_norm = real_arg("embedding", "max_norm", max_norm)
        norm_type = real_arg("embedding", "norm_type", norm_type)
        _check_indices(flat, V)
        _embedding_renorm_(weight, flat, max_norm, norm_type)
    out = Embedding.apply(weight, flat, padding_idx, bool(scale_grad_by_freq))
    return out.reshape(*idx.shape, weight.shape[1])


# ---------------------------------------------------------------------- dropout


class Dropout(Function):
    """y = x * mask / (1 - p), mask ~ Bernoulli(1 - p);  dx = g * mask / (1 - p).

    float32/float64: one kernel pass each way (mask.dropout_forward/backward) over float32 uniform draws,
    the mask kept as bytes; other dtypes in NumPy."""

    saves = ()
    fresh_grads = True  # dx: a new array (the kernel's, or g * mask)

    def forward(self, x, p, generator):
        self.scale = 1.0 / (1.0 - p)
        if x.dtype in KERNEL_FLOATS:
            u = _rng(generator).random(x.shape, dtype=np.float32)
            y, self.keep = self.backend.dropout_forward(x, u, p, self.scale)
            return y
        keep = self.xp.asarray(_rng(generator).random(x.shape) >= p)
        self.keep = None
        self.scale_mask = keep.astype(x.dtype) * self.xp.asarray(self.scale, x.dtype)
        return x * self.scale_mask

    def backward(self, g):
        if self.keep is not None and g.dtype in KERNEL_FLOATS:
            return self.backend.dropout_backward(g, self.keep, self.scale), None, None
        mask = self.scale_mask if self.keep is None else self.keep * self.xp.asarray(self.scale, g.dtype)
        return g * mask, None, None


@tensor_op("input")
def dropout(input, p=0.5, training=True, inplace=False, generator=None):
    """Zero each element with probability p during training, scaling the rest by 1/(1-p)."""
    p = real_arg("dropout", "p", p)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    if not training or p == 0.0:
        return input
    if p == 1.0:
        return input * 0.0
    return Dropout.apply(input, p, generator)


# ---------------------------------------------------------------------- attention


class Attention(Function):
    """softmax(scale q k^T + mask) v, flash-style (backend ``attention_forward/backward``).

    q: (BH, Tq, D)  k: (BH, Tk, D)  v: (BH, Tk, Dv), or all with (B, H) leading axes; strided views are
    read in place. Saves only out and the row lse.
    """

    saves = (0, 1, 2, "out")

    def forward(self, q, k, v, mask, causal_offset, scale):
        out, lse = self.backend.attention_forward(q, k, v, mask, causal_offset, scale)
        self.q, self.k, self.v, self.out, self.lse = q, k, v, out, lse
        self.mask, self.causal_offset, self.scale = mask, causal_offset, scale
        return out

    def backward(self, g):
        dq, dk, dv = self.backend.attention_backward(self.q, self.k, self.v, self.out, self.lse, g, self.mask,
                                                     self.causal_offset, self.scale)
        return dq, dk, dv, None, None, None


@tensor_op("query", "key", "value")
def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
                                 causal_offset=None, generator=None):
    """Attention(Q, K, V) = softmax(Q K^T * scale + mask) V.

    query: (..., L, E)  key: (..., S, E)  value: (..., S, Ev)  ->  (..., L, Ev)
    attn_mask: bool (True = attend) or float (added to the scores), broadcastable to (..., L, S)
    is_causal: query i attends keys j <= i (top-left aligned, as PyTorch); ``causal_offset=S - L``
        aligns bottom-right instead (the last query sees every key: decoding with a KV cache).
    scale: default 1 / sqrt(E). With dropout_p > 0 the probabilities are materialised (O(L S)).
    """
    _check_float("scaled_dot_product_attention", query, key, value)
    if query.ndim < 2 or key.ndim < 2 or value.ndim < 2:
        raise ValueError("scaled_dot_product_attention: query, key and value need at least 2 dims")
    L, E = query.shape[-2:]
    S, Ek = key.shape[-2:]
    if Ek != E or value.shape[-2] != S:
        raise ValueError(f"scaled_dot_product_attention: shapes do not match: query {_shape_str(query)}, key "
                         f"{_shape_str(key)}, value {_shape_str(value)}")
    if attn_mask is not None and is_causal:
        raise ValueError("scaled_dot_product_attention: pass either attn_mask or is_causal, not both")
    if scale is None:
        # with E = 0 every score is an empty sum, 0: any finite scale gives the same (uniform) weights
        scale = 1.0 / math.sqrt(E) if E else 1.0
    scale = real_arg("scaled_dot_product_attention", "scale", scale)
    dropout_p = real_arg("scaled_dot_product_attention", "dropout_p", dropout_p)
    offset = causal_offset if causal_offset is not None else (0 if is_causal else None)
    if offset is not None:
        offset = int64_arg("scaled_dot_product_attention", "causal_offset", offset)
    mask = None
    if attn_mask is not None:
        mask = attn_mask._data if isinstance(attn_mask, Tensor) else xp_of(query).asarray(attn_mask)
        if mask.dtype.kind not in "biuf":
            raise TypeError(f"scaled_dot_product_attention(): argument 'attn_mask' must be a bool or float Tensor, "
                            f"not {type(attn_mask).__name__}")
        if mask.dtype != np.bool_:
            mask = mask.astype(query._data.dtype, copy=False)
    try:
        lead = np.broadcast_shapes(tuple(query.shape[:-2]), tuple(key.shape[:-2]), tuple(value.shape[:-2]))
        if mask is not None:
            np.broadcast_shapes(mask.shape, lead + (L, S))
    except ValueError:
        raise ValueError(f"scaled_dot_product_attention: batch dims do not broadcast: query {_shape_str(query)}, "
                         f"key {_shape_str(key)}, value {_shape_str(value)}"
                         + (f", attn_mask {tuple(mask.shape)}" if mask is not None else "")) from None
    if dropout_p > 0.0:
        return _attention_composite(query, key, value, mask, offset, scale, dropout_p, generator)
    if 1 <= len(lead) <= 2 and tuple(query.shape[:-2]) == tuple(key.shape[:-2]) == tuple(value.shape[:-2]) == lead:
        # (BH, T, E) or (B, H, T, E): the kernel reads these in place, strided views included (the usual
        # x.view(B, T, H, hd).transpose(1, 2) heads cost no copy)
        m = None if mask is None else xp_of(query).broadcast_to(mask, lead + (L, S))
        return Attention.apply(query, key, value, m, offset, float(scale))
    BH = math.prod(lead)
    q = query.expand(*lead, L, E).reshape(BH, L, E).contiguous()
    k = key.expand(*lead, S, E).reshape(BH, S, E).contiguous()
    v = value.expand(*lead, S, value.shape[-1]).reshape(BH, S, value.shape[-1]).contiguous()
    m3 = None
    if mask is not None:
        m3 = xp_of(query).broadcast_to(mask, lead + (L, S)).reshape(BH, L, S)
    out = Attention.apply(q, k, v, m3, offset, float(scale))
    return out.reshape(*lead, L, value.shape[-1])


def _attention_composite(q, k, v, mask, offset, scale, dropout_p, generator):
    """Attention with dropout on the probabilities, from differentiable ops (O(L S) memory)."""
    s = matmul(q, k.transpose(-2, -1)) * scale
    L, S = s.shape[-2:]
    if offset is not None:
        xp = xp_of(q)
        allowed = xp.arange(S)[None, :] <= xp.arange(L)[:, None] + offset
        s = s.masked_fill(_wrap(~allowed), -np.inf)
    if mask is not None:
        s = s.masked_fill(_wrap(~mask), -np.inf) if mask.dtype == np.bool_ else s + _wrap(mask)
    p = softmax(s, dim=-1)
    p = dropout(p, dropout_p, True, generator=generator)
    return matmul(p, v)


# ====================================================================== breadth (issue 13 item 2)
# cross-entropy with class-probability targets and with weights + label smoothing, more losses (smooth L1,
# Huber, KL divergence, margin ranking, triplet margin, cosine embedding), distances and normalisation,
# pad, glu, gumbel_softmax, and the pointwise activations (their Functions are in ops/elementwise.py).

from ..ops import (celu, elu, hardsigmoid, hardswish, hardtanh, logsigmoid, mish, relu6, selu,  # noqa: E402,F401
                   softplus, softsign, tanhshrink)
from ..ops.linalg import vector_norm  # noqa: E402


def _reduced(loss, reduction):
    return loss if reduction == "none" else loss.sum() if reduction == "sum" else loss.mean()


def _cross_entropy_probs(input, target, weight, reduction, label_smoothing):
    """cross_entropy with class-probability targets of the input's shape: loss_n = -sum_c w_c p_nc
    log_softmax(x)_nc, p smoothed to (1 - eps) p + eps / C; "mean" divides by the number of rows (N d1 ...)."""
    op = "cross_entropy"
    if not isinstance(target, Tensor):
        target = _wrap(xp_of(input).asarray(target))
    if tuple(target.shape) != tuple(input.shape):  # neither class indices (int64) nor probabilities
        raise TypeError(f"{op}: target must hold int64 class indices, got {target.dtype} (input "
                        f"{_shape_str(input)}, target {_shape_str(target)}); class-probability targets must have "
                        "the input's shape")
    _check_float(op, input, target)
    eps = real_arg(op, "label_smoothing", label_smoothing)
    if not 0.0 <= eps <= 1.0:
        raise ValueError(f"{op}: label_smoothing must be in [0, 1], got {eps}")
    cdim = 0 if input.ndim == 1 else 1
    C = input.shape[cdim]
    logp = log_softmax(input, cdim)
    p = target if eps == 0 else target * (1 - eps) + eps / C
    terms = logp * p
    if weight is not None:
        w = weight if isinstance(weight, Tensor) else _wrap(xp_of(input).asarray(weight, input._data.dtype))
        if tuple(w.shape) != (C,):
            raise ValueError(f"{op}: weight must have shape ({C},), got {_shape_str(w)}")
        terms = terms * w.to(input.dtype).reshape(C, *([1] * (input.ndim - cdim - 1)))
    loss = -terms.sum(cdim)
    return _reduced(loss, reduction)


def _cross_entropy_weighted_smoothing(x, t1, weight, ignore_index, reduction, eps):
    """Class-index cross_entropy with weights and label smoothing (PyTorch's formula):
    (1 - eps) nll_loss(logp, t, weight) + eps / C * smooth, smooth_n = -sum_c w_c logp_nc (0 where ignored),
    reduced as the nll (its "mean" divides by the weights of the counted targets)."""
    C = x.shape[1]
    w = weight if isinstance(weight, Tensor) else _wrap(xp_of(x).asarray(weight))
    w = w.to(x.dtype)
    logp = log_softmax(x, 1)
    valid = t1 != ignore_index
    nll = nll_loss(logp, _wrap(t1), w, ignore_index=ignore_index, reduction=reduction)
    smooth = -(logp * w).sum(1) * _wrap(valid.astype(x._data.dtype))
    if reduction == "mean":
        smooth = smooth.sum() / w[_wrap(np.where(valid, t1, 0))][_wrap(valid)].sum()
    elif reduction == "sum":
        smooth = smooth.sum()
    return nll * (1 - eps) + smooth * (eps / C)


def _pair(op, input, target):
    target = _target(op, input, target)
    if input._data.dtype.kind != "f":
        raise TypeError(f"{op}: expected a floating point input, got {input.dtype}")
    _broadcast_pair(op, input, target)
    return target


@tensor_op("input")
def smooth_l1_loss(input, target, size_average=None, reduce=None, reduction="mean", beta=1.0):
    """0.5 d^2 / beta where d = |input - target| < beta, else d - 0.5 beta (beta = 0: the L1 loss)."""
    if size_average is not None or reduce is not None:
        reduction = _legacy_reduction(size_average, reduce)
    _reduce("smooth_l1_loss", reduction)
    beta = real_arg("smooth_l1_loss", "beta", beta)
    if beta < 0:
        raise ValueError(f"smooth_l1_loss: beta must be >= 0, got {beta}")
    target = _pair("smooth_l1_loss", input, target)
    d = (input - target).abs()
    loss = d if beta == 0 else where(d < beta, d * d * (0.5 / beta), d - 0.5 * beta)
    return _reduced(loss, reduction)


@tensor_op("input")
def huber_loss(input, target, reduction="mean", delta=1.0):
    """0.5 d^2 where d = |input - target| < delta, else delta (d - 0.5 delta)."""
    _reduce("huber_loss", reduction)
    delta = real_arg("huber_loss", "delta", delta)
    if not delta > 0:
        raise ValueError(f"huber_loss: delta must be > 0, got {delta}")
    target = _pair("huber_loss", input, target)
    d = (input - target).abs()
    return _reduced(where(d < delta, d * d * 0.5, (d - 0.5 * delta) * delta), reduction)


@tensor_op("input")
def kl_div(input, target, size_average=None, reduce=None, reduction="mean", log_target=False):
    """KL(target || exp(input)) pointwise: target (log target - input), 0 where target is 0; input holds
    log-probabilities (and target too with ``log_target``). reduction "batchmean" divides the sum by N."""
    if size_average is not None or reduce is not None:
        reduction = _legacy_reduction(size_average, reduce)
    if reduction not in ("mean", "sum", "none", "batchmean"):
        raise ValueError(f"kl_div: reduction must be 'mean', 'batchmean', 'sum' or 'none', got {reduction!r}")
    target = _pair("kl_div", input, target)
    if log_target:
        loss = target.exp() * (target - input)
    else:
        pos = target > 0
        safe = where(pos, target, 1.0)  # log(1) = 0: no inf * 0 in the forward nor NaN in the backward
        loss = where(pos, target * (safe.log() - input), 0.0)
    if reduction == "batchmean":
        return loss.sum() / (input.shape[0] if input.ndim else 1)
    return _reduced(loss, reduction)


@tensor_op("input1", "input2", "target")
def margin_ranking_loss(input1, input2, target, margin=0.0, size_average=None, reduce=None, reduction="mean"):
    """max(0, -target (input1 - input2) + margin); target holds 1 or -1."""
    if size_average is not None or reduce is not None:
        reduction = _legacy_reduction(size_average, reduce)
    _reduce("margin_ranking_loss", reduction)
    margin = real_arg("margin_ranking_loss", "margin", margin)
    for t in (input1, input2):
        if t._data.dtype.kind != "f":
            raise TypeError(f"margin_ranking_loss: expected floating point inputs, got {t.dtype}")
    try:
        np.broadcast_shapes(tuple(input1.shape), tuple(input2.shape), tuple(target.shape))
    except ValueError:
        raise ValueError(f"margin_ranking_loss: shapes {_shape_str(input1)}, {_shape_str(input2)} and "
                         f"{_shape_str(target)} cannot be broadcast together") from None
    loss = (-target * (input1 - input2) + margin).clamp(min=0)
    return _reduced(loss, reduction)


@tensor_op("x1", "x2")
def pairwise_distance(x1, x2, p=2.0, eps=1e-6, keepdim=False):
    """||x1 - x2 + eps||_p along the last dim (x1, x2 broadcast)."""
    p, eps = real_arg("pairwise_distance", "p", p), real_arg("pairwise_distance", "eps", eps)
    for t in (x1, x2):
        if t._data.dtype.kind != "f":
            raise TypeError(f"pairwise_distance: expected floating point inputs, got {t.dtype}")
    try:
        np.broadcast_shapes(tuple(x1.shape), tuple(x2.shape))
    except ValueError:
        raise RuntimeError(f"pairwise_distance: shapes {_shape_str(x1)} and {_shape_str(x2)} cannot be "
                           "broadcast together") from None
    d = x1 - x2 + eps
    if d.ndim == 0:
        d = d.reshape(1)
    return vector_norm(d, p, -1, keepdim)


@tensor_op("x1", "x2")
def cosine_similarity(x1, x2, dim=1, eps=1e-8):
    """x1 . x2 / max(||x1|| ||x2||, eps) along ``dim`` (x1, x2 broadcast)."""
    eps = real_arg("cosine_similarity", "eps", eps)
    for t in (x1, x2):
        if t._data.dtype.kind != "f":
            raise TypeError(f"cosine_similarity: expected floating point inputs, got {t.dtype}")
    try:
        shape = np.broadcast_shapes(tuple(x1.shape), tuple(x2.shape))
    except ValueError:
        raise RuntimeError(f"cosine_similarity: shapes {_shape_str(x1)} and {_shape_str(x2)} cannot be "
                           "broadcast together") from None
    from ..tensor import _norm_dim
    d = _norm_dim(dim, len(shape), "cosine_similarity")
    # PyTorch's rule: each vector is divided by its norm clamped at eps, then the two are dotted
    n1 = vector_norm(x1, 2, d - len(shape) if x1.ndim else None, keepdim=True).clamp(min=eps)
    n2 = vector_norm(x2, 2, d - len(shape) if x2.ndim else None, keepdim=True).clamp(min=eps)
    return ((x1 / n1) * (x2 / n2)).sum(d)


@tensor_op("input1", "input2", "target")
def cosine_embedding_loss(input1, input2, target, margin=0.0, size_average=None, reduce=None, reduction="mean"):
    """1 - cos(x1, x2) where target = 1, max(0, cos(x1, x2) - margin) where target = -1 (cos along the last
    dim; inputs (N, D) or (D,), target (N,) or ())."""
    if size_average is not None or reduce is not None:
        reduction = _legacy_reduction(size_average, reduce)
    _reduce("cosine_embedding_loss", reduction)
    margin = real_arg("cosine_embedding_loss", "margin", margin)
    if input1.ndim not in (1, 2) or tuple(input1.shape) != tuple(input2.shape) or \
            tuple(target.shape) != tuple(input1.shape[:-1]):
        raise RuntimeError(f"cosine_embedding_loss: expected inputs (N, D) or (D,) of one shape and target (N,) "
                           f"or (), got {_shape_str(input1)}, {_shape_str(input2)} and {_shape_str(target)}")
    for t in (input1, input2):
        if t._data.dtype.kind != "f":
            raise TypeError(f"cosine_embedding_loss: expected floating point inputs, got {t.dtype}")
    EPS = 1e-12  # PyTorch's: added to each squared norm
    prod = (input1 * input2).sum(-1)
    m1 = (input1 * input1).sum(-1) + EPS
    m2 = (input2 * input2).sum(-1) + EPS
    cos = prod / (m1 * m2).sqrt()
    zeros = cos * 0.0
    loss = where(target == 1, 1 - cos, zeros) + where(target == -1, (cos - margin).clamp(min=0), zeros)
    return _reduced(loss, reduction)


@tensor_op("anchor", "positive", "negative")
def triplet_margin_loss(anchor, positive, negative, margin=1.0, p=2.0, eps=1e-6, swap=False, size_average=None,
                        reduce=None, reduction="mean"):
    """max(0, d(a, p) - d(a, n) + margin), d the pairwise p-norm distance; ``swap``: d(a, n) replaced by
    min(d(a, n), d(p, n)) (Balntas et al. 2016)."""
    if size_average is not None or reduce is not None:
        reduction = _legacy_reduction(size_average, reduce)
    _reduce("triplet_margin_loss", reduction)
    margin = real_arg("triplet_margin_loss", "margin", margin)
    if margin <= 0:
        raise ValueError(f"triplet_margin_loss: margin must be greater than 0, got {margin}")
    if not (anchor.ndim == positive.ndim == negative.ndim) or anchor.ndim not in (1, 2):
        raise RuntimeError(f"triplet_margin_loss: expected anchor, positive, negative of 1 or 2 dims, got "
                           f"{_shape_str(anchor)}, {_shape_str(positive)}, {_shape_str(negative)}")
    d_ap = pairwise_distance(anchor, positive, p, eps)
    d_an = pairwise_distance(anchor, negative, p, eps)
    if swap:
        from ..ops import minimum
        d_an = minimum(d_an, pairwise_distance(positive, negative, p, eps))
    return _reduced((d_ap - d_an + margin).clamp(min=0), reduction)


@tensor_op("input")
def normalize(input, p=2.0, dim=1, eps=1e-12):
    """input / max(||input||_p, eps) along ``dim``."""
    p, eps = real_arg("normalize", "p", p), real_arg("normalize", "eps", eps)
    if input._data.dtype.kind != "f":
        raise TypeError(f"normalize: expected a floating point input, got {input.dtype}")
    if input.ndim == 0:
        return input / vector_norm(input, p).clamp(min=eps)
    return input / vector_norm(input, p, dim, keepdim=True).clamp(min=eps)


class ConstantPad(Function):
    """y = x with ``pads`` (before, after) per dim of ``value`` around it (negative pads crop);
    dx = g's slice where x is."""

    saves = ()

    def forward(self, x, pads, value):
        xp = self.xp
        crop = tuple(slice(max(-b, 0), n - max(-a, 0)) for (b, a), n in zip(pads, x.shape))
        xc = x[crop]
        grow = [(max(b, 0), max(a, 0)) for b, a in pads]
        self.in_shape, self.crop = x.shape, crop
        self.keep = tuple(slice(b, b + n) for (b, _), n in zip(grow, xc.shape))
        return xp.pad(xc, grow, mode="constant", constant_values=value)

    def backward(self, g):
        dx = self.xp.zeros(self.in_shape, g.dtype)
        dx[self.crop] = g[self.keep]
        return dx, None, None


def _pad_index(mode, n, before, after):
    """Source positions of a padded dim of size n (reflect: mirrored without the edge, replicate: the
    edge repeated, circular: wrapped)."""
    i = np.arange(-before, n + after)
    if mode == "reflect":
        period = 2 * (n - 1)
        i = np.abs(i) % period if period else np.zeros_like(i)
        return np.where(i >= n, period - i, i)
    if mode == "replicate":
        return np.clip(i, 0, n - 1)
    return i % n  # circular


@tensor_op("input")
def pad(input, pad, mode="constant", value=None):
    """Pad the last len(pad) // 2 dims: pad = (last_before, last_after, second_last_before, ...).
    mode: "constant" (``value``, default 0; negative pads crop), "reflect", "replicate", "circular"."""
    if not isinstance(pad, (tuple, list)) or len(pad) % 2:
        raise ValueError(f"pad: pad must be a sequence of even length, got {pad!r}")
    pads = [int64_arg("pad", "pad", v) for v in pad]
    k = len(pads) // 2
    if k > input.ndim:
        raise ValueError(f"pad: padding length {len(pads)} is too large for an input of {input.ndim} dims "
                         f"(shape {_shape_str(input)})")
    per_dim = [(0, 0)] * (input.ndim - k) + [(pads[2 * j], pads[2 * j + 1]) for j in reversed(range(k))]
    if mode == "constant":
        value = 0.0 if value is None else real_arg("pad", "value", value)
        for (b, a), n in zip(per_dim, input.shape):
            if n + b + a < 0:
                raise RuntimeError(f"pad: the padded size of a dim of size {n} by ({b}, {a}) would be negative")
        return ConstantPad.apply(input, tuple(per_dim), value)
    if mode not in ("reflect", "replicate", "circular"):
        raise ValueError(f"pad: mode must be 'constant', 'reflect', 'replicate' or 'circular', got {mode!r}")
    if value:
        raise ValueError(f"pad: padding mode {mode!r} doesn't take in a value argument")
    if k > input.ndim - 1 or k > 3:
        raise NotImplementedError(f"pad: {mode} padding of {k} dims needs an input of {k + 1} or {k + 2} dims "
                                  f"(batch and channel dims first), got {_shape_str(input)}")
    from ..ops import index_select
    out = input
    for d, ((b, a), n) in enumerate(zip(per_dim, input.shape)):
        if not (b or a):
            continue
        if b < 0 or a < 0:
            raise RuntimeError(f"pad: negative padding is only supported in constant mode, got {tuple(pad)}")
        limit = n - 1 if mode == "reflect" else n if mode == "circular" else None
        if limit is not None and (b > limit or a > limit):
            raise RuntimeError(f"pad: {mode} padding ({b}, {a}) must be at most {limit} for a dim of size {n} "
                               f"(input {_shape_str(input)})")
        if n == 0:
            raise RuntimeError(f"pad: {mode} padding of an empty dim (input {_shape_str(input)})")
        out = index_select(out, d, _wrap(_pad_index(mode, n, b, a)))
    return out


@tensor_op("input")
def glu(input, dim=-1):
    """a * sigmoid(b), where a and b are the halves of ``input`` along ``dim`` (Dauphin et al. 2017)."""
    from ..tensor import _norm_dim
    if input.ndim == 0:
        raise RuntimeError("glu: does not support scalars because halving size must be even")
    d = _norm_dim(dim, input.ndim, "glu")
    if input.shape[d] % 2:
        raise RuntimeError(f"glu: halving dimension must be even, but dimension {d} is size {input.shape[d]}")
    a, b = input.chunk(2, d)
    return a * sigmoid(b)


@tensor_op("logits")
def gumbel_softmax(logits, tau=1.0, hard=False, eps=1e-10, dim=-1, generator=None):
    """softmax((logits + Gumbel noise) / tau) along ``dim`` (Jang et al. 2017); ``hard``: the one-hot of its
    argmax in the forward, the soft sample's gradient in the backward (straight-through)."""
    tau = real_arg("gumbel_softmax", "tau", tau)
    if logits._data.dtype.kind != "f":
        raise TypeError(f"gumbel_softmax: expected floating point logits, got {logits.dtype}")
    from ..tensor import _norm_dim
    d = _norm_dim(dim, logits.ndim, "gumbel_softmax")
    e = _rng(generator).exponential(size=tuple(logits.shape))
    gumbels = _wrap(-np.log(e).astype(logits._data.dtype))
    y = softmax((logits + gumbels) / tau, d)
    if not hard:
        return y
    idx = np.expand_dims(np.argmax(y._data, axis=d), d) if logits.ndim else np.zeros((), np.int64)
    onehot = np.zeros(y.shape, y._data.dtype)
    if logits.ndim:
        np.put_along_axis(onehot, idx, 1, axis=d)
    else:
        onehot[()] = 1
    return y - y.detach() + _wrap(onehot)


__all__ += ["smooth_l1_loss", "huber_loss", "kl_div", "margin_ranking_loss", "pairwise_distance",
            "cosine_similarity", "cosine_embedding_loss", "triplet_margin_loss", "normalize", "pad", "glu",
            "gumbel_softmax", "softplus", "elu", "selu", "celu", "hardtanh", "relu6", "hardswish", "hardsigmoid",
            "mish", "softsign", "tanhshrink", "logsigmoid"]

# the vision layers (convolution, pooling, batch and group norm, channel dropout, interpolation, fold)
from ._vision import *  # noqa: F401,F403,E402
from ._vision import __all__ as _vision_all  # noqa: E402

__all__ += _vision_all


# bags of embeddings and pixel shuffles live beside their modules (modules/sparse.py, modules/pixelshuffle.py)
def embedding_bag(input, weight, offsets=None, max_norm=None, norm_type=2, scale_grad_by_freq=False, mode="mean",
                  sparse=False, per_sample_weights=None, include_last_offset=False, padding_idx=None):
    from .modules.sparse import embedding_bag as impl
    return impl(input, weight, offsets, max_norm, norm_type, scale_grad_by_freq, mode, sparse, per_sample_weights,
                include_last_offset, padding_idx)


def pixel_shuffle(input, upscale_factor):
    from .modules.pixelshuffle import pixel_shuffle as impl
    return impl(input, upscale_factor)


def pixel_unshuffle(input, downscale_factor):
    from .modules.pixelshuffle import pixel_unshuffle as impl
    return impl(input, downscale_factor)


__all__ += ["embedding_bag", "pixel_shuffle", "pixel_unshuffle"]
