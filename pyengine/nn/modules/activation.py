"""Activation modules: thin wrappers of pyengine.nn.functional, and MultiheadAttention (where PyTorch keeps it)."""
import math

import numpy as np

from ..._checks import size_arg, tensor_op
from ...backend import xp_of
from ...ops import cat
from ...tensor import Tensor, _wrap
from .. import functional as F
from .. import init
from ..parameter import Parameter
from ._utils import check_params, float_dtype
from .linear import NonDynamicallyQuantizableLinear
from .module import Module

__all__ = ["ReLU", "GELU", "Tanh", "Sigmoid", "SiLU", "LeakyReLU", "Softmax", "LogSoftmax", "MultiheadAttention"]


class ReLU(Module):
    """max(x, 0), elementwise. (``inplace`` is accepted for compatibility; the result is a new tensor.)"""

    def __init__(self, inplace=False):
        super().__init__()
        self.inplace = inplace

    def forward(self, input):
        return F.relu(input)

    def extra_repr(self):
        return "inplace=True" if self.inplace else ""


class GELU(Module):
    """x Phi(x) (Hendrycks & Gimpel 2016); ``approximate="tanh"`` uses the tanh formula."""

    def __init__(self, approximate="none"):
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(f"GELU: approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    def forward(self, input):
        return F.gelu(input, approximate=self.approximate)

    def extra_repr(self):
        return f"approximate={self.approximate!r}"


class Tanh(Module):
    def forward(self, input):
        return F.tanh(input)


class Sigmoid(Module):
    def forward(self, input):
        return F.sigmoid(input)


class SiLU(Module):
    """x sigmoid(x) (a.k.a. swish)."""

    def __init__(self, inplace=False):
        super().__init__()
        self.inplace = inplace

    def forward(self, input):
        return F.silu(input)

    def extra_repr(self):
        return "inplace=True" if self.inplace else ""


class LeakyReLU(Module):
    """x if x > 0 else negative_slope * x."""

    def __init__(self, negative_slope=0.01, inplace=False):
        super().__init__()
        self.negative_slope = negative_slope
        self.inplace = inplace

    def forward(self, input):
        return F.leaky_relu(input, self.negative_slope)

    def extra_repr(self):
        return f"negative_slope={self.negative_slope}" + (", inplace=True" if self.inplace else "")


def _legacy_softmax_dim(ndim):
    # PyTorch's choice when dim is not given (it warns that this is deprecated)
    return 0 if ndim in (0, 1, 3) else 1


class Softmax(Module):
    """exp(x_i) / sum_j exp(x_j) along ``dim``."""

    def __init__(self, dim=None):
        super().__init__()
        self.dim = dim

    def forward(self, input):
        return F.softmax(input, self.dim if self.dim is not None else _legacy_softmax_dim(input.ndim))

    def extra_repr(self):
        return f"dim={self.dim}"


class LogSoftmax(Module):
    """log(softmax(x)) along ``dim``, computed stably."""

    def __init__(self, dim=None):
        super().__init__()
        self.dim = dim

    def forward(self, input):
        return F.log_softmax(input, self.dim if self.dim is not None else _legacy_softmax_dim(input.ndim))

    def extra_repr(self):
        return f"dim={self.dim}"


# ---------------------------------------------------------------------- MultiheadAttention


def _mask_array(op, name, m, xp):
    """A mask argument as an array: bool, or float (added to the scores); anything else is refused."""
    a = m._data if isinstance(m, Tensor) else xp.asarray(m)
    if a.dtype != np.bool_ and a.dtype.kind != "f":
        raise TypeError(f"{op}: only bool and floating types of {name} are supported, got {a.dtype}")
    return a


def _additive(a, dtype, xp):
    """A bool mask (True = may not attend) as -inf / 0, a float mask in ``dtype``."""
    if a.dtype == np.bool_:
        return xp.where(a, xp.asarray(-np.inf, dtype), xp.asarray(0, dtype))
    return a.astype(dtype, copy=False)


def _pad_column(a, xp):
    """One more key, visible to every query: a zero (or False) column at the end of the last axis."""
    return xp.concatenate([a, xp.zeros(a.shape[:-1] + (1,), a.dtype)], axis=-1)


class MultiheadAttention(Module):
    """Multi-head attention (Vaswani et al. 2017), with PyTorch's parameters and semantics.

        MultiHead(Q, K, V) = Concat(head_1, ..., head_h) W_O^T + b_O,
        head_i = softmax(Q W_Qi^T (K W_Ki^T)^T / sqrt(d) + mask) V W_Vi^T,   d = embed_dim / num_heads

    Parameters as PyTorch names them, so state dicts map one to one: ``in_proj_weight`` (3E, E) =
    [W_Q; W_K; W_V] and ``in_proj_bias`` (3E,) (``q_proj_weight`` (E, E), ``k_proj_weight`` (E, kdim),
    ``v_proj_weight`` (E, vdim) instead of ``in_proj_weight`` when kdim / vdim differ from embed_dim),
    ``out_proj`` (a NonDynamicallyQuantizableLinear(E, E)), and with ``add_bias_kv`` ``bias_k`` and
    ``bias_v`` (1, 1, E): one more key and value appended to every sequence after the projections.
    ``add_zero_attn`` appends a key and a value of zeros to every head after that.

    forward(query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
            average_attn_weights=True, is_causal=False) -> (output, weights or None)
    query: (L, N, E) ((N, L, E) with ``batch_first``; (L, E) unbatched), key: (S, N, kdim), value: (S, N, vdim)
    key_padding_mask: (N, S) ((S,) unbatched): bool (True = ignore that key) or float (added to the scores)
    attn_mask: (L, S) or (N * num_heads, L, S): bool (True = may NOT attend, PyTorch's convention here)
        or float (added to the scores). Masks are constants: no gradient flows into a float mask.
    is_causal: a hint that attn_mask is the causal mask: with no key_padding_mask and no weights asked
        for, the heads run causal (keys after each query hidden) and attn_mask is not read, as PyTorch;
        with no attn_mask at all the causal mask is made here (PyTorch raises instead)
    output: (L, N, E) (batch_first: (N, L, E)); weights: (N, L, S) averaged over heads, or
        (N, num_heads, L, S) with ``average_attn_weights=False``; None unless ``need_weights``.
    Without weights the heads run on ``F.scaled_dot_product_attention`` (the fused kernel); with them,
    op by op (the weights are materialised). Both compute the same numbers.

    >>> mha = nn.MultiheadAttention(16, 4, batch_first=True)
    >>> x = pyengine.randn(2, 5, 16)
    >>> out, w = mha(x, x, x)
    >>> out.shape, w.shape
    (pyengine.Size([2, 5, 16]), pyengine.Size([2, 5, 5]))
    """

    def __init__(self, embed_dim, num_heads, dropout=0.0, bias=True, add_bias_kv=False, add_zero_attn=False,
                 kdim=None, vdim=None, batch_first=False, device=None, dtype=None):
        super().__init__()
        dt = float_dtype(dtype, device, "MultiheadAttention")
        embed_dim = size_arg("MultiheadAttention", "embed_dim", embed_dim, minimum=1)
        num_heads = size_arg("MultiheadAttention", "num_heads", num_heads, minimum=1)
        kdim = None if kdim is None else size_arg("MultiheadAttention", "kdim", kdim, minimum=1)
        vdim = None if vdim is None else size_arg("MultiheadAttention", "vdim", vdim, minimum=1)
        # q and out projections (E, E), k (E, kdim), v (E, vdim), four biases (E,), bias_k and bias_v (E,)
        check_params("MultiheadAttention", dt,
                     (embed_dim, 2 * embed_dim + (kdim or embed_dim) + (vdim or embed_dim) + 6))
        if embed_dim % num_heads:
            raise ValueError(f"MultiheadAttention: embed_dim must be divisible by num_heads (got {embed_dim} and "
                             f"{num_heads})")
        dropout = float(dropout)
        if not 0.0 <= dropout <= 1.0:
            raise ValueError(f"MultiheadAttention: dropout probability has to be between 0 and 1, but got "
                             f"{dropout}")
        self.embed_dim = embed_dim
        self.kdim = kdim if kdim is not None else embed_dim
        self.vdim = vdim if vdim is not None else embed_dim
        self._qkv_same_embed_dim = self.kdim == embed_dim and self.vdim == embed_dim
        self.num_heads = num_heads
        self.dropout = dropout
        self.batch_first = batch_first
        self.head_dim = embed_dim // num_heads
        E = embed_dim
        if self._qkv_same_embed_dim:
            self.in_proj_weight = Parameter(np.empty((3 * E, E), dt))
            self.register_parameter("q_proj_weight", None)
            self.register_parameter("k_proj_weight", None)
            self.register_parameter("v_proj_weight", None)
        else:
            self.q_proj_weight = Parameter(np.empty((E, E), dt))
            self.k_proj_weight = Parameter(np.empty((E, self.kdim), dt))
            self.v_proj_weight = Parameter(np.empty((E, self.vdim), dt))
            self.register_parameter("in_proj_weight", None)
        if bias:
            self.in_proj_bias = Parameter(np.empty(3 * E, dt))
        else:
            self.register_parameter("in_proj_bias", None)
        self.out_proj = NonDynamicallyQuantizableLinear(E, E, bias=bias, dtype=dtype)
        if add_bias_kv:
            self.bias_k = Parameter(np.empty((1, 1, E), dt))
            self.bias_v = Parameter(np.empty((1, 1, E), dt))
        else:
            self.bias_k = self.bias_v = None
        self.add_zero_attn = bool(add_zero_attn)
        self._reset_parameters()

    def _reset_parameters(self):
        if self._qkv_same_embed_dim:
            init.xavier_uniform_(self.in_proj_weight)
        else:
            init.xavier_uniform_(self.q_proj_weight)
            init.xavier_uniform_(self.k_proj_weight)
            init.xavier_uniform_(self.v_proj_weight)
        if self.in_proj_bias is not None:
            init.zeros_(self.in_proj_bias)
            init.zeros_(self.out_proj.bias)
        if self.bias_k is not None:
            init.xavier_normal_(self.bias_k)
        if self.bias_v is not None:
            init.xavier_normal_(self.bias_v)

    def _project(self, q, k, v, same):
        """The input projections. q: (N, L, E), k: (N, S, kdim), v: (N, S, vdim) -> (N, *, E) each."""
        E, b = self.embed_dim, self.in_proj_bias
        bq, bk, bv = (None, None, None) if b is None else (b[:E], b[E:2 * E], b[2 * E:])
        if self._qkv_same_embed_dim:
            W = self.in_proj_weight
            if same:  # self-attention: one GEMM for q, k and v
                return F.linear(q, W, b).chunk(3, dim=-1)
            wq, wk, wv = W[:E], W[E:2 * E], W[2 * E:]
        else:
            wq, wk, wv = self.q_proj_weight, self.k_proj_weight, self.v_proj_weight
        return F.linear(q, wq, bq), F.linear(k, wk, bk), F.linear(v, wv, bv)

    def _masks(self, attn_mask, key_padding_mask, N, L, S, xp):
        """attn_mask as (1 | N, 1 | h, L, S) and key_padding_mask as (N, 1, 1, S) arrays (bool or float, as
        given), shapes checked; either may be None."""
        am = kpm = None
        if attn_mask is not None:
            am = _mask_array("MultiheadAttention", "attn_mask", attn_mask, xp)
            if am.ndim == 2:
                if am.shape != (L, S):
                    raise RuntimeError(f"MultiheadAttention: the shape of the 2D attn_mask is {tuple(am.shape)}, "
                                       f"but should be {(L, S)}.")
                am = am[None, None]
            elif am.ndim == 3:
                if am.shape != (N * self.num_heads, L, S):
                    raise RuntimeError(f"MultiheadAttention: the shape of the 3D attn_mask is {tuple(am.shape)}, "
                                       f"but should be {(N * self.num_heads, L, S)}.")
                am = am.reshape(N, self.num_heads, L, S)
            else:
                raise RuntimeError(f"MultiheadAttention: attn_mask's dimension {am.ndim} is not supported")
        if key_padding_mask is not None:
            kpm = _mask_array("MultiheadAttention", "key_padding_mask", key_padding_mask, xp)
            if kpm.shape != (N, S):
                raise RuntimeError(f"MultiheadAttention: expected key_padding_mask of shape {(N, S)}, got "
                                   f"{tuple(kpm.shape)}")
            kpm = kpm[:, None, None, :]
        return am, kpm

    @tensor_op("query", "key", "value", name="MultiheadAttention")
    def forward(self, query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
                average_attn_weights=True, is_causal=False):
        if query.ndim not in (2, 3):
            raise ValueError(f"MultiheadAttention: query should be 2-D (unbatched) or 3-D, got {query.ndim}-D")
        batched = query.ndim == 3
        if key.ndim != query.ndim or value.ndim != query.ndim:
            raise ValueError(f"MultiheadAttention: query, key and value must all be {query.ndim}-D, got "
                             f"{query.ndim}-D, {key.ndim}-D and {value.ndim}-D")
        xp = xp_of(query)
        same = query is key and key is value
        # everything below is batch-first: (N, L, E)
        if not batched:
            q, k, v = query.unsqueeze(0), key.unsqueeze(0), value.unsqueeze(0)
            if key_padding_mask is not None:
                key_padding_mask = _mask_array("MultiheadAttention", "key_padding_mask", key_padding_mask, xp)
                if key_padding_mask.ndim != 1:
                    raise RuntimeError(f"MultiheadAttention: for unbatched (2-D) query, expected key_padding_mask "
                                       f"to be None or 1-D, got {key_padding_mask.ndim}-D")
                key_padding_mask = key_padding_mask[None]
        elif not self.batch_first:
            q, k, v = query.transpose(0, 1), key.transpose(0, 1), value.transpose(0, 1)
        else:
            q, k, v = query, key, value
        N, L, E = q.shape
        S = k.shape[1]
        if E != self.embed_dim:
            raise RuntimeError(f"MultiheadAttention: was expecting embedding dimension of {self.embed_dim}, but "
                               f"got {E}")
        if k.shape[0] != N or v.shape[0] != N or v.shape[1] != S:
            raise RuntimeError(f"MultiheadAttention: key {tuple(key.shape)} and value {tuple(value.shape)} do not "
                               f"match query {tuple(query.shape)}")
        dt = q._data.dtype
        am, kpm = self._masks(attn_mask, key_padding_mask, N, L, S, xp)
        # is_causal is PyTorch's hint: with no padding mask and no weights the causal kernel runs, and the
        # attn_mask (the causal mask, the caller says) is not read
        causal = bool(is_causal) and kpm is None and not need_weights
        if causal:
            am = None
        elif is_causal and am is None:
            am = xp.triu(xp.ones((L, S), bool), 1)[None, None]
        qp, kp, vp = self._project(q, k, v, same)
        if self.bias_k is not None:  # one more key and value per sequence, seen by every query
            kp = cat([kp, self.bias_k.expand(N, 1, E)], dim=1)
            vp = cat([vp, self.bias_v.expand(N, 1, E)], dim=1)
            am = None if am is None else _pad_column(am, xp)
            kpm = None if kpm is None else _pad_column(kpm, xp)
        h, d = self.num_heads, self.head_dim
        Sk = kp.shape[1]
        qh = qp.reshape(N, L, h, d).transpose(1, 2)  # (N, h, L, d)
        kh = kp.reshape(N, Sk, h, d).transpose(1, 2)  # (N, h, Sk, d)
        vh = vp.reshape(N, Sk, h, d).transpose(1, 2)
        if self.add_zero_attn:  # and one more of zeros per head
            z = _wrap(xp.zeros((N, h, 1, d), dt))
            kh, vh = cat([kh, z], dim=2), cat([vh, z], dim=2)
            am = None if am is None else _pad_column(am, xp)
            kpm = None if kpm is None else _pad_column(kpm, xp)
        # one additive mask, broadcastable to (N, h, L, S): PyTorch merges them so
        mask = None if am is None else _additive(am, dt, xp)
        if kpm is not None:
            kpm = _additive(kpm, dt, xp)
            mask = kpm if mask is None else mask + kpm
        p = self.dropout if self.training else 0.0
        weights = None
        if need_weights:
            scores = (qh * (1.0 / math.sqrt(d))) @ kh.transpose(-2, -1)  # (N, h, L, S)
            if mask is not None:
                scores = scores + _wrap(mask)
            attn = F.softmax(scores, dim=-1)
            if p > 0:
                attn = F.dropout(attn, p, True)
            out = attn @ vh  # (N, h, L, d)
            weights = attn.mean(dim=1) if average_attn_weights else attn
            if not batched:
                weights = weights.squeeze(0)
        else:
            out = F.scaled_dot_product_attention(qh, kh, vh, attn_mask=mask, dropout_p=p, is_causal=causal)
        out = self.out_proj(out.transpose(1, 2).reshape(N, L, E))  # (N, L, E)
        if not batched:
            out = out.squeeze(0)
        elif not self.batch_first:
            out = out.transpose(0, 1)
        return out, weights


# ---------------------------------------------------------------------- breadth (issue 13 item 2)


class _Pointwise(Module):
    """An activation without parameters: forward is ``fn(input, **its arguments)``."""

    fn = None
    args = ()

    def forward(self, input):
        return type(self).fn(input, **{k: getattr(self, k) for k in self.args})

    def extra_repr(self):
        return ", ".join(f"{k}={getattr(self, k)}" for k in self.args)


class Softplus(_Pointwise):
    """log(1 + e^(beta x)) / beta, linear past ``threshold``."""

    fn = staticmethod(F.softplus)
    args = ("beta", "threshold")

    def __init__(self, beta=1.0, threshold=20.0):
        super().__init__()
        self.beta, self.threshold = beta, threshold


class ELU(_Pointwise):
    fn = staticmethod(F.elu)
    args = ("alpha",)

    def __init__(self, alpha=1.0, inplace=False):
        super().__init__()
        self.alpha, self.inplace = alpha, inplace


class CELU(_Pointwise):
    fn = staticmethod(F.celu)
    args = ("alpha",)

    def __init__(self, alpha=1.0, inplace=False):
        super().__init__()
        self.alpha, self.inplace = alpha, inplace


class SELU(_Pointwise):
    fn = staticmethod(F.selu)

    def __init__(self, inplace=False):
        super().__init__()
        self.inplace = inplace


class Hardtanh(_Pointwise):
    fn = staticmethod(F.hardtanh)
    args = ("min_val", "max_val")

    def __init__(self, min_val=-1.0, max_val=1.0, inplace=False):
        super().__init__()
        self.min_val, self.max_val, self.inplace = min_val, max_val, inplace


class ReLU6(_Pointwise):
    fn = staticmethod(F.relu6)

    def __init__(self, inplace=False):
        super().__init__()
        self.inplace = inplace


class Hardswish(_Pointwise):
    fn = staticmethod(F.hardswish)

    def __init__(self, inplace=False):
        super().__init__()
        self.inplace = inplace


class Hardsigmoid(_Pointwise):
    fn = staticmethod(F.hardsigmoid)

    def __init__(self, inplace=False):
        super().__init__()
        self.inplace = inplace


class Mish(_Pointwise):
    fn = staticmethod(F.mish)

    def __init__(self, inplace=False):
        super().__init__()
        self.inplace = inplace


class Softsign(_Pointwise):
    fn = staticmethod(F.softsign)


class Tanhshrink(_Pointwise):
    fn = staticmethod(F.tanhshrink)


class LogSigmoid(_Pointwise):
    fn = staticmethod(F.logsigmoid)


class GLU(_Pointwise):
    """a * sigmoid(b) for the two halves of the input along ``dim``."""

    fn = staticmethod(F.glu)
    args = ("dim",)

    def __init__(self, dim=-1):
        super().__init__()
        self.dim = dim


__all__ += ["Softplus", "ELU", "CELU", "SELU", "Hardtanh", "ReLU6", "Hardswish", "Hardsigmoid", "Mish", "Softsign",
            "Tanhshrink", "LogSigmoid", "GLU"]
