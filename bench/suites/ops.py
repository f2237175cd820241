"""Generic ops, one at a time and in a model written from them: what a user's own PyTorch code costs.

Rows: each common op's forward + backward at sizes >= 64k elements against PyTorch, the per-op cost at one
element, and a training step of a GPT written op by op (minGPT's style: attention from matmul, masked_fill,
softmax and dropout; tanh-GELU from pow and tanh) at the built-in GPT row's sizes, one source for both
engines (``build_gpt(torch_like)``).
"""
import math

import numpy as np

import pyengine as pe

from ..common import Threads, timeit, timeit_pair, torch


def build_gpt(tm, vocab, block, n_layer, n_head, n_embd):
    """A GPT written from generic ops of ``tm`` (pyengine or torch: the same code for both)."""
    nn, F = tm.nn, tm.nn.functional

    class NewGELU(nn.Module):  # GPT-2's tanh approximation, from pow and tanh
        def forward(self, x):
            return 0.5 * x * (1.0 + tm.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * tm.pow(x, 3.0))))

    class SelfAttention(nn.Module):
        def __init__(self):
            super().__init__()
            self.c_attn = nn.Linear(n_embd, 3 * n_embd)
            self.c_proj = nn.Linear(n_embd, n_embd)
            self.attn_dropout = nn.Dropout(0.0)
            self.register_buffer("bias", tm.tril(tm.ones(block, block)).view(1, 1, block, block))

        def forward(self, x):
            B, T, C = x.size()
            q, k, v = self.c_attn(x).split(n_embd, dim=2)
            k = k.view(B, T, n_head, C // n_head).transpose(1, 2)
            q = q.view(B, T, n_head, C // n_head).transpose(1, 2)
            v = v.view(B, T, n_head, C // n_head).transpose(1, 2)
            att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
            att = att.masked_fill(self.bias[:, :, :T, :T] == 0, float("-inf"))
            att = F.softmax(att, dim=-1)
            att = self.attn_dropout(att)
            y = att @ v
            y = y.transpose(1, 2).contiguous().view(B, T, C)
            return self.c_proj(y)

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln_1 = nn.LayerNorm(n_embd)
            self.attn = SelfAttention()
            self.ln_2 = nn.LayerNorm(n_embd)
            self.c_fc = nn.Linear(n_embd, 4 * n_embd)
            self.gelu = NewGELU()
            self.c_proj = nn.Linear(4 * n_embd, n_embd)

        def forward(self, x):
            x = x + self.attn(self.ln_1(x))
            return x + self.c_proj(self.gelu(self.c_fc(self.ln_2(x))))

    class GPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.wte = nn.Embedding(vocab, n_embd)
            self.wpe = nn.Embedding(block, n_embd)
            self.h = nn.ModuleList([Block() for _ in range(n_layer)])
            self.ln_f = nn.LayerNorm(n_embd)
            self.lm_head = nn.Linear(n_embd, vocab, bias=False)

        def forward(self, idx, targets):
            b, t = idx.size()
            pos = tm.arange(0, t, dtype=tm.long).unsqueeze(0)
            x = self.wte(idx) + self.wpe(pos)
            for blk in self.h:
                x = blk(x)
            logits = self.lm_head(self.ln_f(x))
            return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))

    return GPT()


def _copy_weights(src, dst):
    """pyengine model -> torch model with the same parameter names (for the same loss on the same batch)."""
    sd = {k: torch.from_numpy(np.array(v.detach().numpy())) for k, v in src.state_dict().items()}
    dst.load_state_dict(sd)


def gpt_op_by_op(res, threads, steps=12, quick=False):
    """A training step (forward, backward, AdamW) of the op-by-op GPT, alternating the engines."""
    from .train import _seconds_per_step
    V, T, B, L, H, C = 65, 128, 16, 4, 4, 128
    rng = np.random.default_rng(0)
    batches = [(rng.integers(0, V, (B, T)), rng.integers(0, V, (B, T))) for _ in range(4)]
    with Threads(threads):
        pe.manual_seed(0)
        model = build_gpt(pe, V, T, L, H, C)
        opt = pe.optim.AdamW(model.parameters(), lr=1e-3)
        x0, y0 = batches[0]
        tstep = None
        if torch is not None:
            tmodel = build_gpt(torch, V, T, L, H, C)
            _copy_weights(model, tmodel)
            topt = torch.optim.AdamW(tmodel.parameters(), lr=1e-3)
            l1 = model(pe.tensor(x0), pe.tensor(y0)).item()
            l2 = tmodel(torch.from_numpy(x0), torch.from_numpy(y0)).item()
            if abs(l1 - l2) > 1e-4:
                raise AssertionError(f"op-by-op GPT twin mismatch: pyengine loss {l1} vs torch {l2}")
            tb = [(torch.from_numpy(x), torch.from_numpy(y)) for x, y in batches]

            def tstep(i):
                x, y = tb[i % 4]
                loss = tmodel(x, y)
                topt.zero_grad(set_to_none=True)
                loss.backward()
                topt.step()
        pb = [(pe.tensor(x), pe.tensor(y)) for x, y in batches]

        def step(i):
            x, y = pb[i % 4]
            loss = model(x, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        ours, theirs = _seconds_per_step(step, tstep, 4 if quick else steps, 2, rounds=2 if quick else 4)
    res.add("ops", f"GPT op by op {L}x{C} T{T} B{B}: fwd+bwd+AdamW", threads, ours, None, theirs,
            extra=f"{B * T / ours:,.0f} tok/s; target >= 1.0x PyTorch")


# ---------------------------------------------------------------------- single ops, forward + backward


def _op_cases():
    """(name, shapes, fn(engine_module, *tensors)) for the common ops at >= 64k elements."""
    big = (64, 32, 64)        # 131k elements
    rows = (256, 512)         # 131k
    return [
        ("add (broadcast row)", [big, big[-1:]], lambda m, a, b: a + b),
        ("mul", [big, big], lambda m, a, b: a * b),
        ("div (broadcast col)", [big, big[:-1] + (1,)], lambda m, a, b: a / (b * b + 1.0)),
        ("exp", [big], lambda m, a: m.exp(a)),
        ("tanh", [big], lambda m, a: m.tanh(a)),
        ("pow 3", [big], lambda m, a: m.pow(a, 3.0)),
        ("sigmoid", [big], lambda m, a: m.sigmoid(a)),
        ("sub (broadcast col)", [big, big[:-1] + (1,)], lambda m, a, b: a - b),
        ("numbers: 0.5 * a + 1", [big], lambda m, a: 0.5 * a + 1.0),
        ("log", [big], lambda m, a: m.log(a * a + 1.0)),
        ("sqrt", [big], lambda m, a: m.sqrt(a * a + 1.0)),
        ("abs", [big], lambda m, a: m.abs(a)),
        ("maximum", [big, big], lambda m, a, b: m.maximum(a, b)),
        ("sum(dim=-1)", [big], lambda m, a: a.sum(dim=-1)),
        ("mean(dim=1)", [big], lambda m, a: a.mean(dim=1)),
        ("max(dim=-1)", [big], lambda m, a: a.max(dim=-1)[0]),
        ("softmax(dim=-1)", [rows], lambda m, a: m.softmax(a, dim=-1)),
        ("softmax(dim=0)", [rows], lambda m, a: m.softmax(a, dim=0)),
        ("masked_fill", [big], lambda m, a: a.masked_fill(a > 0.5, 0.0)),
        ("where", [big, big], lambda m, a, b: m.where(a > b, a, b)),
        ("matmul 4-D strided (B,H,T,D)@(B,H,D,T)", [(8, 4, 128, 32), (8, 4, 128, 32)],
         lambda m, a, b: a @ b.transpose(-2, -1)),
        ("transpose(1,2).contiguous", [(16, 128, 4, 32)], lambda m, a: a.transpose(1, 2).contiguous()),
    ]


def single_ops(res, threads, quick=False):
    rng = np.random.default_rng(1)
    with Threads(threads):
        for name, shapes, fn in _op_cases():
            arrays = [rng.standard_normal(s).astype(np.float32) for s in shapes]
            pts = [pe.tensor(a, requires_grad=True) for a in arrays]

            def ours():
                for t in pts:
                    t.grad = None
                fn(pe, *pts).sum().backward()
            theirs = None
            if torch is not None:
                tts = [torch.tensor(a, requires_grad=True) for a in arrays]
                out_p = fn(pe, *[pe.tensor(a) for a in arrays]).numpy()
                out_t = fn(torch, *[torch.tensor(a) for a in arrays]).numpy()
                if not np.allclose(out_p, out_t, rtol=1e-4, atol=1e-5):
                    raise AssertionError(f"ops {name}: pyengine and PyTorch disagree")

                def theirs():
                    for t in tts:
                        t.grad = None
                    fn(torch, *tts).sum().backward()
            t_ours, t_torch = timeit_pair(ours, theirs, repeat=3 if quick else 9)
            n = int(np.prod(shapes[0]))
            res.add("ops", f"{name} {tuple(shapes[0])}: fwd+bwd", threads, t_ours, None, t_torch,
                    extra=f"{n:,} elements; target >= 0.8x PyTorch")


def per_op_overhead(res):
    """One-element ops: the cost of an op call itself (target <= PyTorch's)."""
    with Threads(1):
        a = pe.tensor([1.5], requires_grad=True)
        b = pe.tensor([2.0])
        theirs = None
        if torch is not None:
            ta, tb = torch.tensor([1.5], requires_grad=True), torch.tensor([2.0])
            theirs = lambda: ta * tb  # noqa: E731
        t_ours, t_torch = timeit_pair(lambda: a * b, theirs, repeat=9, min_time=0.1)
        res.add("ops", "mul, 1 element, with grad tracking", 1, t_ours, None, t_torch,
                extra="per-op overhead; target <= PyTorch's time")
        x = pe.tensor([1.5])
        if torch is not None:
            tx = torch.tensor([1.5])
            theirs = lambda: (tx + 1.0).exp()  # noqa: E731
        t_ours, t_torch = timeit_pair(lambda: (x + 1.0).exp(), theirs, repeat=9, min_time=0.1)
        res.add("ops", "add + exp, 1 element, no grad", 1, t_ours, None, t_torch, extra="two op calls")


def run(res, quick=False):
    per_op_overhead(res)
    for threads in (1, 2):
        single_ops(res, threads, quick)
        gpt_op_by_op(res, threads, quick=quick)
