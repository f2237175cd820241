"""The PyTorch twin of pyengine.models.GPT (same modules, names, init and loss), for side-by-side runs.

Parameter names match pyengine's state dict, so ``load_pyengine_state(model, sd)`` copies weights over and
the two models compute the same loss on the same batch (checked before any timing).
"""
import math

import numpy as np
import torch
import torch.nn as tnn
import torch.nn.functional as TF


class CausalSelfAttention(tnn.Module):
    def __init__(self, c):
        super().__init__()
        self.n_head = c.n_head
        self.c_attn = tnn.Linear(c.n_embd, 3 * c.n_embd, bias=c.bias)
        self.c_proj = tnn.Linear(c.n_embd, c.n_embd, bias=c.bias)
        self.resid_dropout = tnn.Dropout(c.dropout)
        self.dropout = c.dropout

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        y = TF.scaled_dot_product_attention(q, k, v, is_causal=True,
                                            dropout_p=self.dropout if self.training else 0.0)
        return self.resid_dropout(self.c_proj(y.transpose(1, 2).reshape(B, T, C)))


class MLP(tnn.Module):
    def __init__(self, c):
        super().__init__()
        self.c_fc = tnn.Linear(c.n_embd, 4 * c.n_embd, bias=c.bias)
        self.gelu = tnn.GELU(approximate=getattr(c, "gelu", "none"))
        self.c_proj = tnn.Linear(4 * c.n_embd, c.n_embd, bias=c.bias)
        self.dropout = tnn.Dropout(c.dropout)

    def forward(self, x):
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))


class Block(tnn.Module):
    def __init__(self, c):
        super().__init__()
        self.ln_1 = tnn.LayerNorm(c.n_embd, bias=c.bias)
        self.attn = CausalSelfAttention(c)
        self.ln_2 = tnn.LayerNorm(c.n_embd, bias=c.bias)
        self.mlp = MLP(c)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class TorchGPT(tnn.Module):
    def __init__(self, c):
        super().__init__()
        self.config = c
        self.wte = tnn.Embedding(c.vocab_size, c.n_embd)
        self.wpe = tnn.Embedding(c.block_size, c.n_embd)
        self.drop = tnn.Dropout(c.dropout)
        self.h = tnn.ModuleList([Block(c) for _ in range(c.n_layer)])
        self.ln_f = tnn.LayerNorm(c.n_embd, bias=c.bias)
        self.lm_head = tnn.Linear(c.n_embd, c.vocab_size, bias=False)
        self.lm_head.weight = self.wte.weight
        for m in self.modules():
            if isinstance(m, (tnn.Linear, tnn.Embedding)):
                tnn.init.normal_(m.weight, 0.0, 0.02)
                if isinstance(m, tnn.Linear) and m.bias is not None:
                    tnn.init.zeros_(m.bias)
        for n, p in self.named_parameters():
            if n.endswith("c_proj.weight"):
                tnn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * c.n_layer))

    def forward(self, idx, targets=None):
        B, T = idx.shape
        x = self.drop(self.wte(idx) + self.wpe(torch.arange(T)))
        for b in self.h:
            x = b(x)
        logits = self.lm_head(self.ln_f(x))
        loss = None if targets is None else TF.cross_entropy(logits.view(B * T, -1), targets.view(B * T),
                                                             ignore_index=-1)
        return logits, loss


def load_pyengine_state(model, state_dict):
    """Copy a pyengine GPT state dict (Tensors) into the torch twin."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(torch.from_numpy(np.asarray(state_dict[name].numpy())))


def make_optimizer(model, lr, weight_decay):
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=lr, betas=(0.9, 0.99))
