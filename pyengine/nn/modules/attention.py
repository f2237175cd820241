"""MultiheadAttention (Vaswani et al. 2017), with PyTorch's parameters and semantics.

    MultiHead(Q, K, V) = Concat(head_1, ..., head_h) W_O^T + b_O,
    head_i = softmax(Q W_Qi^T (K W_Ki^T)^T / sqrt(d) + mask) V W_Vi^T,   d = embed_dim / num_heads

Parameters as PyTorch names them, so state dicts map one to one: ``in_proj_weight`` (3E, E) =
[W_Q; W_K; W_V] and ``in_proj_bias`` (3E,) (or ``q_proj_weight``, ``k_proj_weight``,
``v_proj_weight`` when kdim / vdim differ from embed_dim), and ``out_proj`` (a Linear(E, E)).
"""
import math

import numpy as np

from ..._checks import size_arg, tensor_op
from ...tensor import Tensor, _wrap
from .. import functional as F
from .. import init
from ..parameter import Parameter
from ._utils import check_params, float_dtype
from .linear import Linear
from .module import Module

__all__ = ["MultiheadAttention"]


def _as_array(m):
    return m._data if isinstance(m, Tensor) else np.asarray(m)


class MultiheadAttention(Module):
    """Multi-head attention.

    forward(query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
            average_attn_weights=True, is_causal=False) -> (output, weights or None)
    query: (L, N, E) ((N, L, E) with ``batch_first``; (L, E) unbatched), key: (S, N, kdim), value: (S, N, vdim)
    key_padding_mask: (N, S): bool (True = ignore that key) or float (added to the scores)
    attn_mask: (L, S) or (N * num_heads, L, S): bool (True = may NOT attend, PyTorch's convention here)
        or float (added); ``is_causal`` with no attn_mask masks keys after each query
    output: (L, N, E) (batch_first: (N, L, E)); weights: (N, L, S) averaged over heads, or
        (N, num_heads, L, S) with ``average_attn_weights=False``; None unless ``need_weights``.
    Without weights the heads run on ``F.scaled_dot_product_attention`` (the fused kernel).

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
        # q and out projections (E, E), k (E, kdim), v (E, vdim), four biases (E,)
        check_params("MultiheadAttention", dt,
                     (embed_dim, 2 * embed_dim + (kdim or embed_dim) + (vdim or embed_dim) + 4))
        if embed_dim % num_heads:
            raise ValueError(f"embed_dim must be divisible by num_heads (got {embed_dim} and {num_heads})")
        if add_bias_kv or add_zero_attn:
            raise NotImplementedError("MultiheadAttention: add_bias_kv and add_zero_attn are not supported")
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
            self.register_parameter("in_proj_weight", None)
            self.q_proj_weight = Parameter(np.empty((E, E), dt))
            self.k_proj_weight = Parameter(np.empty((E, self.kdim), dt))
            self.v_proj_weight = Parameter(np.empty((E, self.vdim), dt))
        if bias:
            self.in_proj_bias = Parameter(np.empty(3 * E, dt))
        else:
            self.register_parameter("in_proj_bias", None)
        self.out_proj = Linear(E, E, bias=bias, dtype=dtype)
        self.bias_k = self.bias_v = None
        self.add_zero_attn = False
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

    def _mask(self, attn_mask, key_padding_mask, is_causal, N, L, S, dtype):
        """One additive float mask broadcastable to (N, heads, L, S), or None (PyTorch merges them so)."""
        mask = None
        if attn_mask is not None:
            am = _as_array(attn_mask)
            if am.ndim == 2:
                if am.shape != (L, S):
                    raise RuntimeError(f"MultiheadAttention: the shape of the 2D attn_mask is {am.shape}, but "
                                       f"should be {(L, S)}.")
                am = am[None, None]
            elif am.ndim == 3:
                if am.shape != (N * self.num_heads, L, S):
                    raise RuntimeError(f"MultiheadAttention: the shape of the 3D attn_mask is {am.shape}, but "
                                       f"should be {(N * self.num_heads, L, S)}.")
                am = am.reshape(N, self.num_heads, L, S)
            else:
                raise RuntimeError(f"MultiheadAttention: attn_mask's dimension {am.ndim} is not supported")
            mask = np.where(am, -np.inf, 0).astype(dtype) if am.dtype == np.bool_ else am.astype(dtype)
        elif is_causal:
            mask = np.where(np.triu(np.ones((L, S), bool), 1), -np.inf, 0).astype(dtype)[None, None]
        if key_padding_mask is not None:
            kpm = _as_array(key_padding_mask)
            if kpm.shape != (N, S):
                raise RuntimeError(f"MultiheadAttention: expected key_padding_mask of shape {(N, S)}, got "
                                   f"{kpm.shape}")
            kpm = (np.where(kpm, -np.inf, 0) if kpm.dtype == np.bool_ else kpm).astype(dtype)[:, None, None, :]
            mask = kpm if mask is None else mask + kpm
        return mask

    @tensor_op("query", "key", "value", name="MultiheadAttention")
    def forward(self, query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
                average_attn_weights=True, is_causal=False):
        if query.ndim not in (2, 3):
            raise ValueError(f"MultiheadAttention: query should be 2-D (unbatched) or 3-D, got {query.ndim}-D")
        batched = query.ndim == 3
        if key.ndim != query.ndim or value.ndim != query.ndim:
            raise ValueError(f"MultiheadAttention: query, key and value must all be {query.ndim}-D, got "
                             f"{query.ndim}-D, {key.ndim}-D and {value.ndim}-D")
        same = query is key and key is value
        # everything below is batch-first: (N, L, E)
        if not batched:
            q, k, v = query.unsqueeze(0), key.unsqueeze(0), value.unsqueeze(0)
            if key_padding_mask is not None:
                key_padding_mask = _as_array(key_padding_mask)[None]
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
        qp, kp, vp = self._project(q, k, v, same)
        h, d = self.num_heads, self.head_dim
        qh = qp.reshape(N, L, h, d).transpose(1, 2)  # (N, h, L, d)
        kh = kp.reshape(N, S, h, d).transpose(1, 2)  # (N, h, S, d)
        vh = vp.reshape(N, S, h, d).transpose(1, 2)
        mask = self._mask(attn_mask, key_padding_mask, is_causal, N, L, S, q._data.dtype)
        p = self.dropout if self.training else 0.0
        weights = None
        if need_weights:
            scores = (qh @ kh.transpose(-2, -1)) * (1.0 / math.sqrt(d))  # (N, h, L, S)
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
            out = F.scaled_dot_product_attention(qh, kh, vh, attn_mask=mask, dropout_p=p)
        out = self.out_proj(out.transpose(1, 2).reshape(N, L, E))  # (N, L, E)
        if not batched:
            out = out.squeeze(0)
        elif not self.batch_first:
            out = out.transpose(0, 1)
        return out, weights
