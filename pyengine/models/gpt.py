"""A GPT language model (Radford et al. 2018/2019) from pyengine.nn, with a KV cache for generation.

Pre-LayerNorm transformer blocks; causal self-attention on the fused flash-style attention kernel; GELU MLP
(GPT-2's tanh approximation by default, ``GPTConfig(gelu="none")`` for the exact form);
input and output embeddings tied; GPT-2 initialisation (N(0, 0.02), residual projections scaled by
1/sqrt(2 n_layer)). Shapes: B batch, T time, C = n_embd, H = n_head, hd = C / H, V = vocab_size.
"""
import math
from dataclasses import asdict, dataclass

import numpy as np

from .. import nn
from ..autograd import Function, no_grad
from ..backend import backend_of
from ..nn import functional as F
from ..random import Generator
from ..tensor import Tensor, tensor


@dataclass
class GPTConfig:
    vocab_size: int = 65
    block_size: int = 64
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    dropout: float = 0.0
    bias: bool = True
    gelu: str = "tanh"  # GPT-2's tanh approximation of GELU (Hendrycks & Gimpel 2016); "none" = exact erf form

    def __post_init__(self):
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"GPTConfig: {name} must be an integer >= 1, got {v!r}")
        if self.n_embd % self.n_head:
            raise ValueError(f"GPTConfig: n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})")
        if not isinstance(self.dropout, (int, float)) or not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"GPTConfig: dropout must be a number in [0, 1), got {self.dropout!r}")
        if not isinstance(self.bias, bool):
            raise ValueError(f"GPTConfig: bias must be true or false, got {self.bias!r}")
        if self.gelu not in ("tanh", "none"):
            raise ValueError(f"GPTConfig: gelu must be 'tanh' or 'none', got {self.gelu!r}")

    def to_dict(self):
        return asdict(self)

    def state_shapes(self):
        """{name: shape} of the state dict a GPT of this config has, computed without building one: a
        checkpoint is checked against it before any parameter is allocated (tests/test_lm.py holds it
        equal to GPT(config).state_dict())."""
        C, V = self.n_embd, self.vocab_size
        linear = (lambda name, fin, fout: {f"{name}.weight": (fout, fin)} |
                  ({f"{name}.bias": (fout,)} if self.bias else {}))
        norm = lambda name: {f"{name}.weight": (C,)} | ({f"{name}.bias": (C,)} if self.bias else {})  # noqa: E731
        shapes = {"wte.weight": (V, C), "wpe.weight": (self.block_size, C)}
        for i in range(self.n_layer):
            p = f"h.{i}"
            shapes |= (norm(f"{p}.ln_1") | linear(f"{p}.attn.c_attn", C, 3 * C) | linear(f"{p}.attn.c_proj", C, C)
                       | norm(f"{p}.ln_2") | linear(f"{p}.mlp.c_fc", C, 4 * C) | linear(f"{p}.mlp.c_proj", 4 * C, C))
        return shapes | norm("ln_f") | {"lm_head.weight": (V, C)}


class KVCache:
    """Keys and values of the positions seen so far, per layer: k, v of shape (B, H, T_past, hd)."""

    def __init__(self, n_layer):
        self.k = [None] * n_layer
        self.v = [None] * n_layer

    @property
    def length(self):
        return 0 if self.k[0] is None else self.k[0].shape[2]

    def append(self, layer, k, v):
        """Add this step's k, v (B, H, T_new, hd) Tensors and return the full keys and values as Tensors."""
        k_all, v_all = self.append_arrays(layer, k._data, v._data)
        return tensor(k_all), tensor(v_all)

    def append_arrays(self, layer, k, v):
        """The same on arrays: k, v (B, H, T_new, hd) -> all keys and values so far (B, H, T_past + T_new, hd)."""
        if self.k[layer] is None:
            self.k[layer], self.v[layer] = np.ascontiguousarray(k), np.ascontiguousarray(v)
        else:
            self.k[layer] = np.concatenate([self.k[layer], k], axis=2)
            self.v[layer] = np.concatenate([self.v[layer], v], axis=2)
        return self.k[layer], self.v[layer]


def _heads(qkv, n_head):
    """q, k, v as (B, H, T, hd) strided views of a packed (B, T, 3C) projection (no copy)."""
    B, T, C3 = qkv.shape
    packed = qkv.reshape(B, T, 3, n_head, C3 // (3 * n_head))
    return tuple(packed[:, :, i].transpose(0, 2, 1, 3) for i in range(3))


def _attend_into_tokens(K, q, k, v, causal_offset, scale):
    """Attention of (B, H, T, hd) head views, written by the kernel straight into token order (B, T, H, hd).
    Returns that array and the row log-sum-exp (B, H, T)."""
    B, H, T, hd = q.shape
    y = K.xp.empty((B, T, H, hd), q.dtype)
    _, lse = K.attention_forward(q, k, v, None, causal_offset, scale, out=y.transpose(0, 2, 1, 3))
    return y, lse


class PackedSelfAttention(Function):
    """Causal self-attention on a packed projection: qkv (B, T, 3C) -> y (B, T, C), C = H * hd.

    The attention kernel reads q, k and v as strided (B, H, T, hd) views of qkv and writes each head's output
    straight into y's (B, T, H, hd) layout; the backward pass writes dq, dk and dv into one (B, T, 3C)
    gradient the same way. Splitting and merging the heads therefore costs no copy at all (it used to be
    three: ~8% of a small GPT's training step).
    """

    saves = (0,)

    fresh_grads = True  # dqkv: allocated here

    def forward(self, qkv, n_head):
        qkv = self.xp.ascontiguousarray(qkv)
        B, T, C3 = qkv.shape
        H, hd = n_head, C3 // (3 * n_head)
        self.scale = 1.0 / math.sqrt(hd)
        y, self.lse = _attend_into_tokens(self.backend, *_heads(qkv, H), 0, self.scale)
        self.qkv, self.y, self.heads = qkv, y, H
        return y.reshape(B, T, H * hd)

    def backward(self, g):
        B, T, C = g.shape
        H = self.heads
        dqkv = self.xp.empty((B, T, 3 * C), g.dtype)
        dq, dk, dv = _heads(dqkv, H)  # views: the kernel writes through them
        dout = g.reshape(B, T, H, C // H).transpose(0, 2, 1, 3)
        self.backend.attention_backward(*_heads(self.qkv, H), self.y.transpose(0, 2, 1, 3), self.lse, dout,
                                        None, 0, self.scale, dq=dq, dk=dk, dv=dv)
        return dqkv, None


class CausalSelfAttention(nn.Module):
    def __init__(self, config):
        super().__init__()
        C = config.n_embd
        self.n_head = config.n_head
        self.c_attn = nn.Linear(C, 3 * C, bias=config.bias)  # q, k, v projections in one GEMM
        self.c_proj = nn.Linear(C, C, bias=config.bias)
        self.resid_dropout = nn.Dropout(config.dropout)
        self.dropout = config.dropout

    def forward(self, x, cache=None, layer=0):
        # x: (B, T, C)
        B, T, C = x.shape
        H = self.n_head
        qkv = self.c_attn(x)  # (B, T, 3C): q, k, v projections side by side
        dropout = self.dropout if self.training else 0.0
        if cache is None and dropout == 0.0:
            y = PackedSelfAttention.apply(qkv, H)  # (B, T, C), heads read and written in place
        else:
            q, k, v = qkv.reshape(B, T, 3, H, C // H).permute(2, 0, 3, 1, 4)  # each (B, H, T, hd), views
            if cache is not None:
                k, v = cache.append(layer, k, v)  # (B, H, T_past + T, hd)
            # query t (absolute position T_past + t) sees keys j <= T_past + t
            y = F.scaled_dot_product_attention(q, k, v, causal_offset=k.shape[2] - T, dropout_p=dropout)
            y = y.transpose(1, 2).reshape(B, T, C)
        return self.resid_dropout(self.c_proj(y))  # (B, T, C)


class MLP(nn.Module):
    def __init__(self, config):
        super().__init__()
        C = config.n_embd
        self.c_fc = nn.Linear(C, 4 * C, bias=config.bias)
        self.gelu = nn.GELU(approximate=config.gelu)
        self.c_proj = nn.Linear(4 * C, C, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x):
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))


class Block(nn.Module):
    """x + attn(ln_1(x)), then + mlp(ln_2(x)): pre-LayerNorm (GPT-2)."""

    def __init__(self, config):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x, cache=None, layer=0):
        x = x + self.attn(self.ln_1(x), cache, layer)
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    """GPT language model.

    >>> model = GPT(GPTConfig(vocab_size=65, block_size=32, n_layer=2, n_head=2, n_embd=32))
    >>> logits, loss = model(idx, targets)          # idx, targets: (B, T) int64
    >>> out = model.generate(idx[:1, :4], max_new_tokens=20, temperature=0.8, top_k=10, seed=0)
    """

    def __init__(self, config):
        super().__init__()
        if isinstance(config, dict):
            config = GPTConfig(**config)
        self.config = config
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.wpe = nn.Embedding(config.block_size, config.n_embd)
        self.drop = nn.Dropout(config.dropout)
        self.h = nn.ModuleList([Block(config) for _ in range(config.n_layer)])
        self.ln_f = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.lm_head.weight = self.wte.weight  # tied input/output embeddings (Press & Wolf 2017)
        self.apply(self._init_weights)
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):  # GPT-2: scale residual projections by 1/sqrt(2 n_layer)
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    @staticmethod
    def _init_weights(module):
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def num_parameters(self, non_embedding=True):
        n = sum(p.numel() for p in self.parameters())
        return n - self.wpe.weight.numel() if non_embedding else n

    def forward(self, idx, targets=None, cache=None):
        """idx: (B, T) int64 -> logits (B, T, V), and the mean cross-entropy when targets (B, T) are given
        (targets of -1 are ignored). With a KVCache, idx holds only the new positions."""
        idx = idx if isinstance(idx, Tensor) else tensor(np.asarray(idx, dtype=np.int64))
        if idx.ndim != 2:
            raise ValueError(f"GPT: idx must be (B, T) token ids, got shape {tuple(idx.shape)}")
        B, T = idx.shape
        start = cache.length if cache is not None else 0
        if start + T > self.config.block_size:
            raise ValueError(f"GPT: sequence length {start + T} exceeds block_size {self.config.block_size}")
        pos = tensor(np.arange(start, start + T, dtype=np.int64))
        x = self.drop(self.wte(idx) + self.wpe(pos))
        for i, block in enumerate(self.h):
            x = block(x, cache, i)
        x = self.ln_f(x)
        logits = self.lm_head(x)
        if targets is None:
            return logits, None
        targets = targets if isinstance(targets, Tensor) else tensor(np.asarray(targets, dtype=np.int64))
        loss = F.cross_entropy(logits.reshape(B * T, -1), targets.reshape(B * T), ignore_index=-1)
        return logits, loss

    @no_grad()
    def decode(self, ids, cache):
        """Inference forward on arrays, straight on the backend kernels (no autograd, no module calls):
        the same arithmetic as ``forward`` in eval mode, ~10x less Python per token. ``ids``: (B, T) int64 of the
        new positions; ``cache``: a KVCache (filled here). Returns logits (B, T, V) as an array."""
        K = backend_of(self.wte.weight)
        cfg = self.config
        B, T = ids.shape
        C, H = cfg.n_embd, cfg.n_head
        hd = C // H
        start = cache.length
        if start + T > cfg.block_size:
            raise ValueError(f"GPT.decode: sequence length {start + T} exceeds block_size {cfg.block_size}")

        def arr(p):
            return None if p is None else p._data

        def layer_norm(x2, ln):
            return K.layer_norm_forward(x2, arr(ln.weight), arr(ln.bias), ln.eps)[0]

        x = K.embedding_forward(self.wte.weight._data, np.ascontiguousarray(ids.reshape(-1), dtype=np.int64))
        x = x + self.wpe.weight._data[np.tile(np.arange(start, start + T), B)]  # x: (B*T, C)
        scale = 1.0 / math.sqrt(hd)
        for i, blk in enumerate(self.h):
            a = blk.attn
            qkv = K.linear(layer_norm(x, blk.ln_1), a.c_attn.weight._data, arr(a.c_attn.bias))  # (B*T, 3C)
            q, k, v = _heads(qkv.reshape(B, T, 3 * C), H)  # (B, H, T, hd) views
            k_all, v_all = cache.append_arrays(i, k, v)
            y, _ = _attend_into_tokens(K, q, k_all, v_all, k_all.shape[2] - T, scale)
            y = y.reshape(B * T, C)
            x = x + K.linear(y, a.c_proj.weight._data, arr(a.c_proj.bias))
            m = blk.mlp
            h = K.gelu_forward(K.linear(layer_norm(x, blk.ln_2), m.c_fc.weight._data, arr(m.c_fc.bias)),
                               m.gelu.approximate)
            x = x + K.linear(h, m.c_proj.weight._data, arr(m.c_proj.bias))
        logits = K.linear(layer_norm(x, self.ln_f), self.lm_head.weight._data, None)
        return logits.reshape(B, T, -1)

    @no_grad()
    def generate(self, idx, max_new_tokens, temperature=1.0, top_k=None, top_p=None, seed=None, use_cache=True,
                 generator=None):
        """Sample ``max_new_tokens`` tokens after ``idx`` (B, T); returns (B, T + max_new_tokens) int64.

        temperature: logits are divided by it (0 = greedy); top_k: keep the k most likely tokens;
        top_p: keep the smallest set whose probability reaches p (nucleus sampling, Holtzman et al. 2020).
        With ``use_cache`` each new token costs one position (keys/values of the past are kept) while the
        context fits in block_size; past that the window slides and the whole window is recomputed.
        """
        ids = self._prompt_ids(idx)
        new = list(self.generate_tokens(ids, max_new_tokens, temperature, top_k, top_p, seed, use_cache, generator))
        return tensor(np.concatenate([ids] + [t[:, None] for t in new], axis=1))

    @staticmethod
    def _prompt_ids(idx):
        ids = np.asarray(idx._data if isinstance(idx, Tensor) else idx, dtype=np.int64)
        if ids.ndim == 1:
            ids = ids[None]
        if ids.ndim != 2 or ids.shape[1] == 0:
            raise ValueError(f"generate: the prompt must be (B, T) token ids with T >= 1, got shape {ids.shape}")
        return ids

    def generate_tokens(self, idx, max_new_tokens, temperature=1.0, top_k=None, top_p=None, seed=None,
                        use_cache=True, generator=None):
        """``generate`` one step at a time: yields each new token of every row, a (B,) int64 array, as soon as
        it is drawn (a server streams them, or stops early at a stop sequence by closing the iterator).
        Nothing is held between steps (no lock, no mode change), so callers may interleave iterators."""
        if generator is None:
            generator = Generator().manual_seed(seed) if seed is not None else None
        ids = self._prompt_ids(idx)
        bs = self.config.block_size
        cache = None
        for _ in range(max_new_tokens):
            # decode is eval-mode arithmetic on the kernels (no dropout, no graph) whatever self.training says
            if use_cache and ids.shape[1] <= bs:
                if cache is None:
                    cache = KVCache(len(self.h))
                    logits = self.decode(ids, cache)  # prefill
                else:
                    logits = self.decode(ids[:, -1:], cache)
            else:  # recompute the whole (sliding) window
                logits = self.decode(ids[:, -bs:], KVCache(len(self.h)))
            nxt = sample_next(logits[:, -1, :], temperature, top_k, top_p, generator)
            ids = np.concatenate([ids, nxt[:, None]], axis=1)
            if cache is not None and ids.shape[1] > bs:
                cache = None
            yield nxt


def sample_next(logits, temperature=1.0, top_k=None, top_p=None, generator=None):
    """One token per row from logits (B, V): temperature, then top-k, then top-p, then a draw."""
    from ..random import _rng
    logits = np.asarray(logits, dtype=np.float64)
    if temperature is None or temperature <= 0:
        return np.argmax(logits, axis=-1).astype(np.int64)
    logits = logits / temperature
    V = logits.shape[-1]
    if top_k is not None and 0 < top_k < V:
        kth = np.partition(logits, V - top_k, axis=-1)[:, V - top_k][:, None]
        logits = np.where(logits < kth, -np.inf, logits)
    p = np.exp(logits - logits.max(axis=-1, keepdims=True))
    p /= p.sum(axis=-1, keepdims=True)
    if top_p is not None and 0 < top_p < 1:
        order = np.argsort(-p, axis=-1, kind="stable")
        sorted_p = np.take_along_axis(p, order, axis=-1)
        cum = np.cumsum(sorted_p, axis=-1)
        drop_sorted = cum - sorted_p >= top_p  # keep tokens until the mass before them reaches top_p
        drop = np.zeros_like(drop_sorted)
        np.put_along_axis(drop, order, drop_sorted, axis=-1)
        p = np.where(drop, 0.0, p)
        p /= p.sum(axis=-1, keepdims=True)
    rng = _rng(generator)
    u = rng.random(p.shape[0])
    cdf = np.cumsum(p, axis=-1)
    return np.minimum((cdf < (u * cdf[:, -1])[:, None]).sum(axis=-1), V - 1).astype(np.int64)
