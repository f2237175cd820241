"""The Transformer family (Vaswani et al. 2017) with PyTorch's structure, parameter names and semantics:
TransformerEncoderLayer, TransformerDecoderLayer, TransformerEncoder, TransformerDecoder, Transformer.

A PyTorch state dict loads one to one (``layers.0.self_attn.in_proj_weight``, ``layers.0.linear1.weight``,
``layers.0.norm1.weight``, ...). The layers are post-norm by default (``norm_first=False``: x = norm(x +
sublayer(x))) or pre-norm (x = x + sublayer(norm(x))). Attention runs on MultiheadAttention without weights,
so on the fused kernel (``F.scaled_dot_product_attention``). PyTorch's inference fast paths (nested tensors,
the fused encoder layer) are not taken: ``enable_nested_tensor`` is accepted and ignored, and padded
positions hold computed values (as on PyTorch's ordinary path).
"""
import copy

import numpy as np

from ..._checks import check_alloc, real_arg, size_arg, tensor_op
from ...backend import xp_of
from ...tensor import Tensor, _wrap
from .. import functional as F
from .. import init
from ._utils import float_dtype
from .activation import GELU, MultiheadAttention, ReLU
from .container import ModuleList
from .dropout import Dropout
from .linear import Linear
from .module import Module
from .normalization import LayerNorm

__all__ = ["Transformer", "TransformerEncoder", "TransformerDecoder", "TransformerEncoderLayer",
           "TransformerDecoderLayer"]


def _activation(op, activation):
    """'relu' / 'gelu' -> F.relu / F.gelu; a callable (a function or a Module) is used as it is."""
    if isinstance(activation, str):
        if activation == "relu":
            return F.relu
        if activation == "gelu":
            return F.gelu
        raise RuntimeError(f"{op}: activation should be relu/gelu, not {activation}")
    if not callable(activation):
        raise TypeError(f"{op}: activation must be 'relu', 'gelu' or a callable, got {type(activation).__name__}")
    return activation


def _relu_or_gelu(activation):
    # PyTorch's flag for its fused path: 1 relu, 2 gelu, 0 anything else (kept as an attribute, as PyTorch)
    if activation is F.relu or isinstance(activation, ReLU):
        return 1
    if activation is F.gelu or (isinstance(activation, GELU) and activation.approximate == "none"):
        return 2
    return 0


def _clones(op, module, n):
    if not isinstance(module, Module):
        raise TypeError(f"{op}: the layer must be a Module, got {type(module).__name__}")
    n = size_arg(op, "num_layers", n)
    # n copies: refused before the first when they cannot fit (each costs its parameters and at least ~1 KiB
    # of Python objects), rather than copying for hours
    per_copy = sum(p._data.nbytes for p in module.parameters()) + 1024
    check_alloc(op, n * per_copy, f"{n} copies of the layer")
    return ModuleList([copy.deepcopy(module) for _ in range(n)])


def _norm_arg(op, norm):
    if norm is not None and not isinstance(norm, Module):
        raise TypeError(f"{op}: norm must be a Module or None, got {type(norm).__name__}")
    return norm


def _seq_len(x, batch_first):
    if x.ndim == 2:  # unbatched (S, E)
        return x.shape[0]
    return x.shape[1 if batch_first else 0]


def _detect_is_causal_mask(mask, is_causal=None, size=None):
    """``is_causal`` when given; otherwise whether ``mask`` is exactly generate_square_subsequent_mask(size)
    (a float mask with -inf above the diagonal, 0 elsewhere), as PyTorch decides."""
    if is_causal is not None:
        return bool(is_causal)
    if mask is None:
        return False
    m = mask._data if isinstance(mask, Tensor) else np.asarray(mask)
    sz = size if size is not None else (m.shape[-2] if m.ndim >= 2 else -1)
    if m.shape != (sz, sz) or m.dtype.kind != "f":
        return False
    xp = xp_of(m)
    causal = xp.triu(xp.full((sz, sz), -np.inf, m.dtype), 1)
    return bool((m == causal).all())



def _layer_args(op, d_model, dim_feedforward, dropout, layer_norm_eps):
    """A Transformer layer's size and rate arguments, checked (errors name the layer)."""
    return (size_arg(op, "d_model", d_model, minimum=1), size_arg(op, "dim_feedforward", dim_feedforward, minimum=1),
            real_arg(op, "dropout", dropout), real_arg(op, "layer_norm_eps", layer_norm_eps))

class TransformerEncoderLayer(Module):
    """Self-attention and a feed-forward block, each with a residual connection, dropout and LayerNorm.

        norm_first=False:  x = norm1(x + SA(x));        x = norm2(x + FF(x))
        norm_first=True:   x = x + SA(norm1(x));        x = x + FF(norm2(x))
        SA(x) = dropout1(self_attn(x, x, x)),  FF(x) = dropout2(linear2(dropout(activation(linear1(x)))))

    src: (S, N, E) ((N, S, E) with ``batch_first``; (S, E) unbatched) -> same shape.
    forward(src, src_mask=None, src_key_padding_mask=None, is_causal=False): masks as MultiheadAttention's
    attn_mask and key_padding_mask; ``is_causal`` is the hint that src_mask is the causal mask.

    >>> layer = nn.TransformerEncoderLayer(d_model=16, nhead=4, dim_feedforward=32, batch_first=True)
    >>> layer(pyengine.randn(2, 5, 16)).shape
    pyengine.Size([2, 5, 16])
    """

    def __init__(self, d_model, nhead, dim_feedforward=2048, dropout=0.1, activation="relu", layer_norm_eps=1e-5,
                 batch_first=False, norm_first=False, bias=True, device=None, dtype=None):
        super().__init__()
        op = "TransformerEncoderLayer"
        d_model, dim_feedforward, dropout, layer_norm_eps = _layer_args(op, d_model, dim_feedforward, dropout,
                                                                         layer_norm_eps)
        kw = dict(device=device, dtype=dtype)
        self.self_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias, batch_first=batch_first,
                                            **kw)
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias, **kw)
        self.dropout = Dropout(dropout)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias, **kw)
        self.norm_first = bool(norm_first)
        self.norm1 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **kw)
        self.norm2 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **kw)
        self.dropout1 = Dropout(dropout)
        self.dropout2 = Dropout(dropout)
        self.activation = _activation(op, activation)
        self.activation_relu_or_gelu = _relu_or_gelu(self.activation)

    @tensor_op("src", name="TransformerEncoderLayer")
    def forward(self, src, src_mask=None, src_key_padding_mask=None, is_causal=False):
        x = src
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x), src_mask, src_key_padding_mask, is_causal)
            x = x + self._ff_block(self.norm2(x))
        else:
            x = self.norm1(x + self._sa_block(x, src_mask, src_key_padding_mask, is_causal))
            x = self.norm2(x + self._ff_block(x))
        return x

    def _sa_block(self, x, attn_mask, key_padding_mask, is_causal=False):
        x = self.self_attn(x, x, x, attn_mask=attn_mask, key_padding_mask=key_padding_mask, need_weights=False,
                           is_causal=is_causal)[0]
        return self.dropout1(x)

    def _ff_block(self, x):
        return self.dropout2(self.linear2(self.dropout(self.activation(self.linear1(x)))))


class TransformerDecoderLayer(Module):
    """Self-attention, attention over the encoder's output (memory) and a feed-forward block, each with a
    residual connection, dropout and LayerNorm (post-norm, or pre-norm with ``norm_first``).

        norm_first=False:  x = norm1(x + SA(x));  x = norm2(x + MHA(x, memory));  x = norm3(x + FF(x))
        norm_first=True:   x = x + SA(norm1(x));  x = x + MHA(norm2(x), memory);  x = x + FF(norm3(x))

    tgt: (T, N, E), memory: (S, N, E) ((N, *, E) with ``batch_first``; unbatched (T, E), (S, E)).
    forward(tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
            memory_key_padding_mask=None, tgt_is_causal=False, memory_is_causal=False) -> (T, N, E)

    >>> layer = nn.TransformerDecoderLayer(d_model=16, nhead=4, dim_feedforward=32)
    >>> layer(pyengine.randn(3, 2, 16), pyengine.randn(5, 2, 16)).shape
    pyengine.Size([3, 2, 16])
    """

    def __init__(self, d_model, nhead, dim_feedforward=2048, dropout=0.1, activation="relu", layer_norm_eps=1e-5,
                 batch_first=False, norm_first=False, bias=True, device=None, dtype=None):
        super().__init__()
        op = "TransformerDecoderLayer"
        d_model, dim_feedforward, dropout, layer_norm_eps = _layer_args(op, d_model, dim_feedforward, dropout,
                                                                         layer_norm_eps)
        kw = dict(device=device, dtype=dtype)
        self.self_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias, batch_first=batch_first,
                                            **kw)
        self.multihead_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias,
                                                 batch_first=batch_first, **kw)
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias, **kw)
        self.dropout = Dropout(dropout)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias, **kw)
        self.norm_first = bool(norm_first)
        self.norm1 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **kw)
        self.norm2 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **kw)
        self.norm3 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **kw)
        self.dropout1 = Dropout(dropout)
        self.dropout2 = Dropout(dropout)
        self.dropout3 = Dropout(dropout)
        self.activation = _activation(op, activation)
        self.activation_relu_or_gelu = _relu_or_gelu(self.activation)

    @tensor_op("tgt", "memory", name="TransformerDecoderLayer")
    def forward(self, tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
                memory_key_padding_mask=None, tgt_is_causal=False, memory_is_causal=False):
        x = tgt
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x), tgt_mask, tgt_key_padding_mask, tgt_is_causal)
            x = x + self._mha_block(self.norm2(x), memory, memory_mask, memory_key_padding_mask, memory_is_causal)
            x = x + self._ff_block(self.norm3(x))
        else:
            x = self.norm1(x + self._sa_block(x, tgt_mask, tgt_key_padding_mask, tgt_is_causal))
            x = self.norm2(x + self._mha_block(x, memory, memory_mask, memory_key_padding_mask, memory_is_causal))
            x = self.norm3(x + self._ff_block(x))
        return x

    def _sa_block(self, x, attn_mask, key_padding_mask, is_causal=False):
        x = self.self_attn(x, x, x, attn_mask=attn_mask, key_padding_mask=key_padding_mask, need_weights=False,
                           is_causal=is_causal)[0]
        return self.dropout1(x)

    def _mha_block(self, x, mem, attn_mask, key_padding_mask, is_causal=False):
        x = self.multihead_attn(x, mem, mem, attn_mask=attn_mask, key_padding_mask=key_padding_mask,
                                need_weights=False, is_causal=is_causal)[0]
        return self.dropout2(x)

    def _ff_block(self, x):
        return self.dropout3(self.linear2(self.dropout(self.activation(self.linear1(x)))))


class TransformerEncoder(Module):
    """``num_layers`` copies (deep copies, as PyTorch) of ``encoder_layer`` applied in turn, then ``norm``
    if given.

    forward(src, mask=None, src_key_padding_mask=None, is_causal=None): ``is_causal=None`` detects a causal
    ``mask`` (exactly generate_square_subsequent_mask's) and passes the hint on to every layer.
    ``enable_nested_tensor`` and ``mask_check`` are accepted for compatibility and do nothing.
    """

    def __init__(self, encoder_layer, num_layers, norm=None, enable_nested_tensor=True, mask_check=True):
        super().__init__()
        self.layers = _clones("TransformerEncoder", encoder_layer, num_layers)
        self.num_layers = len(self.layers)
        self.norm = _norm_arg("TransformerEncoder", norm)
        self.enable_nested_tensor = enable_nested_tensor
        self.mask_check = mask_check

    @tensor_op("src", name="TransformerEncoder")
    def forward(self, src, mask=None, src_key_padding_mask=None, is_causal=None):
        if len(self.layers):
            is_causal = _detect_is_causal_mask(mask, is_causal,
                                               _seq_len(src, self.layers[0].self_attn.batch_first))
        out = src
        for layer in self.layers:
            out = layer(out, src_mask=mask, is_causal=is_causal, src_key_padding_mask=src_key_padding_mask)
        if self.norm is not None:
            out = self.norm(out)
        return out


class TransformerDecoder(Module):
    """``num_layers`` copies (deep copies) of ``decoder_layer`` applied in turn, then ``norm`` if given.

    forward(tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
            memory_key_padding_mask=None, tgt_is_causal=None, memory_is_causal=False)
    """

    def __init__(self, decoder_layer, num_layers, norm=None):
        super().__init__()
        self.layers = _clones("TransformerDecoder", decoder_layer, num_layers)
        self.num_layers = len(self.layers)
        self.norm = _norm_arg("TransformerDecoder", norm)

    @tensor_op("tgt", "memory", name="TransformerDecoder")
    def forward(self, tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
                memory_key_padding_mask=None, tgt_is_causal=None, memory_is_causal=False):
        if len(self.layers):
            tgt_is_causal = _detect_is_causal_mask(tgt_mask, tgt_is_causal,
                                                   _seq_len(tgt, self.layers[0].self_attn.batch_first))
        out = tgt
        for layer in self.layers:
            out = layer(out, memory, tgt_mask=tgt_mask, memory_mask=memory_mask,
                        tgt_key_padding_mask=tgt_key_padding_mask, memory_key_padding_mask=memory_key_padding_mask,
                        tgt_is_causal=tgt_is_causal, memory_is_causal=memory_is_causal)
        if self.norm is not None:
            out = self.norm(out)
        return out


class Transformer(Module):
    """The encoder-decoder Transformer: encoder = TransformerEncoder(num_encoder_layers layers, LayerNorm),
    decoder = TransformerDecoder(num_decoder_layers layers, LayerNorm) (or ``custom_encoder`` /
    ``custom_decoder``). Every parameter with more than one dim is re-initialised xavier-uniform, as PyTorch.

    forward(src, tgt, src_mask=None, tgt_mask=None, memory_mask=None, src_key_padding_mask=None,
            tgt_key_padding_mask=None, memory_key_padding_mask=None, src_is_causal=None, tgt_is_causal=None,
            memory_is_causal=False) -> decoder output, tgt's shape
    src: (S, N, E), tgt: (T, N, E) ((N, *, E) with ``batch_first``; unbatched (S, E), (T, E)).

    >>> model = nn.Transformer(d_model=16, nhead=4, num_encoder_layers=2, num_decoder_layers=2,
    ...                        dim_feedforward=32)
    >>> tgt_mask = nn.Transformer.generate_square_subsequent_mask(3)
    >>> model(pyengine.randn(5, 2, 16), pyengine.randn(3, 2, 16), tgt_mask=tgt_mask).shape
    pyengine.Size([3, 2, 16])
    """

    def __init__(self, d_model=512, nhead=8, num_encoder_layers=6, num_decoder_layers=6, dim_feedforward=2048,
                 dropout=0.1, activation="relu", custom_encoder=None, custom_decoder=None, layer_norm_eps=1e-5,
                 batch_first=False, norm_first=False, bias=True, device=None, dtype=None):
        super().__init__()
        kw = dict(device=device, dtype=dtype)
        for name, m in (("custom_encoder", custom_encoder), ("custom_decoder", custom_decoder)):
            if m is not None and not isinstance(m, Module):
                raise TypeError(f"Transformer: {name} must be a Module or None, got {type(m).__name__}")
        if custom_encoder is not None:
            self.encoder = custom_encoder
        else:
            layer = TransformerEncoderLayer(d_model, nhead, dim_feedforward, dropout, activation, layer_norm_eps,
                                            batch_first, norm_first, bias, **kw)
            self.encoder = TransformerEncoder(layer, num_encoder_layers,
                                              LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **kw))
        if custom_decoder is not None:
            self.decoder = custom_decoder
        else:
            layer = TransformerDecoderLayer(d_model, nhead, dim_feedforward, dropout, activation, layer_norm_eps,
                                            batch_first, norm_first, bias, **kw)
            self.decoder = TransformerDecoder(layer, num_decoder_layers,
                                              LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **kw))
        self._reset_parameters()
        self.d_model = d_model
        self.nhead = nhead
        self.batch_first = batch_first

    @tensor_op("src", "tgt", name="Transformer")
    def forward(self, src, tgt, src_mask=None, tgt_mask=None, memory_mask=None, src_key_padding_mask=None,
                tgt_key_padding_mask=None, memory_key_padding_mask=None, src_is_causal=None, tgt_is_causal=None,
                memory_is_causal=False):
        if src.ndim == 3 and tgt.ndim == 3:
            b = 0 if self.batch_first else 1
            if src.shape[b] != tgt.shape[b]:
                raise RuntimeError(f"Transformer: the batch number of src and tgt must be equal, got src "
                                   f"{tuple(src.shape)} and tgt {tuple(tgt.shape)}")
        if src.shape[-1] != self.d_model or tgt.shape[-1] != self.d_model:
            raise RuntimeError(f"Transformer: the feature number of src and tgt must be equal to d_model "
                               f"({self.d_model}), got src {tuple(src.shape)} and tgt {tuple(tgt.shape)}")
        memory = self.encoder(src, mask=src_mask, src_key_padding_mask=src_key_padding_mask, is_causal=src_is_causal)
        return self.decoder(tgt, memory, tgt_mask=tgt_mask, memory_mask=memory_mask,
                            tgt_key_padding_mask=tgt_key_padding_mask,
                            memory_key_padding_mask=memory_key_padding_mask, tgt_is_causal=tgt_is_causal,
                            memory_is_causal=memory_is_causal)

    @staticmethod
    def generate_square_subsequent_mask(sz, device=None, dtype=None):
        """A (sz, sz) float mask: -inf above the diagonal (position i may not see j > i), 0 elsewhere."""
        sz = size_arg("generate_square_subsequent_mask", "sz", sz)
        dt = float_dtype(dtype, device, "generate_square_subsequent_mask")
        return _wrap(np.triu(np.full((sz, sz), -np.inf, dt), 1))

    def _reset_parameters(self):
        for p in self.parameters():
            if p.ndim > 1:
                init.xavier_uniform_(p)
