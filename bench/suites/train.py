"""End to end: GPT training steps (forward, backward, AdamW) in pyengine vs its PyTorch twin, and the
published nanoGPT shakespeare-char result (``python -m bench shakespeare_char``)."""
import os
import time

import numpy as np

import pyengine as pe
from pyengine import lm
from pyengine.models.gpt import GPT, GPTConfig
from pyengine.text import get_batch
from pyengine.nn.utils import clip_grad_norm_
from pyengine.optim.lr_scheduler import WarmupCosineLR

from ..common import Threads, alternating_rounds, torch


def _pe_step(model, opt, x, y, timings=None):
    t0 = time.perf_counter()
    _, loss = model(pe.tensor(x), pe.tensor(y))
    t1 = time.perf_counter()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    t2 = time.perf_counter()
    opt.step()
    t3 = time.perf_counter()
    if timings is not None:
        timings["forward"] += t1 - t0
        timings["backward"] += t2 - t1
        timings["optimizer"] += t3 - t2
    return loss


def _seconds_per_step(ours, theirs, steps, warmup, rounds=5):
    """Seconds per step of ours(i) and of theirs(i) (None: ours only): `warmup` untimed steps each, then
    `rounds` alternating rounds (bench.common.alternating_rounds) of `steps` / `rounds` steps per engine;
    the median round of each."""
    engines = [f for f in (ours, theirs) if f is not None]
    for f in engines:
        for i in range(warmup):
            f(i)
    per = max(1, steps // rounds)
    meds = alternating_rounds(engines, [per] * len(engines), rounds, indexed=True)
    return meds[0], (meds[1] if theirs is not None else None)


# The GPT steps issue 16 times (layers, heads, width, block T, batch B): the built-in GPT's row and a larger one
GPT_SHAPES = {"small": (4, 4, 128, 128, 16), "large": (6, 6, 384, 256, 8)}


def _gpt_config(shape):
    L, H, C, T, B = shape
    return GPTConfig(vocab_size=65, block_size=T, n_layer=L, n_head=H, n_embd=C, dropout=0.0), B, T


def _batches(B, T):
    """Four (input, target) batches of random character ids (vocabulary 65), the same in every run."""
    rng = np.random.default_rng(0)
    return [(rng.integers(0, 65, (B, T)), rng.integers(0, 65, (B, T))) for _ in range(4)]


def gpt_step(res, threads=2, steps=20, quick=False, shape=GPT_SHAPES["small"]):
    """The issue's GPT step (default 4 layers, 4 heads, 128 wide, T=128, B=16), AdamW, tokens/s; both engines
    in this process, alternating."""
    cfg, B, T = _gpt_config(shape)
    batches = _batches(B, T)
    steps = 8 if quick else steps
    with Threads(threads):
        pe.manual_seed(0)
        model = GPT(cfg)
        opt = lm.make_optimizer(model, 1e-3, 0.1)
        tmodel = topt = None
        if torch is not None:
            from ..torch_gpt import TorchGPT, load_pyengine_state, make_optimizer
            tmodel = TorchGPT(cfg)
            load_pyengine_state(tmodel, model.state_dict())
            topt = make_optimizer(tmodel, 1e-3, 0.1)
            x, y = batches[0]
            _, l1 = model(pe.tensor(x), pe.tensor(y))
            _, l2 = tmodel(torch.from_numpy(x), torch.from_numpy(y))
            if abs(l1.item() - l2.item()) > 1e-4:
                raise AssertionError(f"GPT twin mismatch: pyengine loss {l1.item()} vs torch {l2.item()}")
        for i in range(3):
            _pe_step(model, opt, *batches[i % 4])
        timings = {"forward": 0.0, "backward": 0.0, "optimizer": 0.0}
        tstep = None
        if tmodel is not None:
            tb = [(torch.from_numpy(x), torch.from_numpy(y)) for x, y in batches]

            def tstep(i):
                _, loss = tmodel(*tb[i % 4])
                topt.zero_grad(set_to_none=True)
                loss.backward()
                topt.step()
        t_ours, t_torch = _seconds_per_step(lambda i: _pe_step(model, opt, *batches[i % 4], timings), tstep,
                                            steps, 3)
    tok = B * T
    split = ", ".join(f"{k} {100 * v / sum(timings.values()):.0f}%" for k, v in timings.items())
    extra = f"pyengine {tok / t_ours:,.0f} tok/s" + (f" vs PyTorch {tok / t_torch:,.0f} tok/s" if t_torch else "")
    res.add("train", f"GPT step L{cfg.n_layer} H{cfg.n_head} C{cfg.n_embd} T{T} B{B} AdamW", threads, t_ours, None,
            t_torch, extra=extra + f"; time: {split}; target >= 1.5x PyTorch")


def gpt_step_alone(res, threads=2, rounds=5, steps=None, quick=False, shape=GPT_SHAPES["small"]):
    """The same step measured the other way issue 16 asks for: each engine alone in a process of its own,
    with its own default OpenMP policy (pyengine imported first: a brief spin, GOMP_SPINCOUNT=3000; PyTorch:
    its libgomp's default), rounds alternating the engines (bench/suites/busy.py's workers, with no competitors)."""
    import dataclasses
    import statistics
    import tempfile

    from .busy import Worker
    cfg, B, T = _gpt_config(shape)
    spec = {"config": dataclasses.asdict(cfg), "batch": B, "block": T}
    if steps is None:
        steps = 3 if shape[2] >= 384 else 10
    rounds = 3 if quick else rounds
    state = os.path.join(tempfile.mkdtemp(prefix="pyengine-alone-"), "gpt.npz")
    workers = [Worker("pyengine", threads, state, shape=spec)]
    try:
        loss = float(workers[0].ask("loss"))  # writes the weights the twin loads
        if torch is not None:
            workers.append(Worker("torch", threads, state, shape=spec))
            tloss = float(workers[1].ask("loss"))
            if abs(loss - tloss) > 1e-4:
                raise AssertionError(f"GPT twin mismatch: pyengine loss {loss} vs torch {tloss}")
        for w in workers:
            w.ask("run 2")  # warm-up
        times = [[] for _ in workers]
        for r in range(rounds):
            order = list(range(len(workers)))
            for i in (order if r % 2 == 0 else order[::-1]):
                times[i].append(float(workers[i].ask(f"run {steps}")))
    finally:
        for w in workers:
            w.close()
    t_ours = statistics.median(times[0])
    t_torch = statistics.median(times[1]) if len(times) > 1 else None
    extra = f"each engine alone in its own process, own OpenMP defaults; {rounds} alternating rounds x {steps} steps"
    if t_torch is not None:
        ratios = [b / a for a, b in zip(times[0], times[1])]
        extra += f"; per-round ratio {min(ratios):.2f}-{max(ratios):.2f}x"
    res.add("train", f"GPT step L{cfg.n_layer} H{cfg.n_head} C{cfg.n_embd} T{T} B{B} AdamW, alone", threads, t_ours,
            None, t_torch, extra=extra + "; target >= 1.5x PyTorch")


def gpt_step_bf16(res, threads=2, steps=10, quick=False, shape=(6, 6, 384, 256, 8)):
    """The issue's bfloat16 step: GPT L6 H6 C384, T256, B8, AdamW, forward under autocast("cpu", bfloat16) in
    both engines (fp32 weights, gradients and optimizer state), pyengine vs PyTorch alternating in one
    process; pyengine's float32 step of the same model for reference."""
    cfg, B, T = _gpt_config(shape)
    batches = _batches(B, T)
    steps = 4 if quick else steps
    with Threads(threads):
        pe.manual_seed(0)
        model = GPT(cfg)
        opt = lm.make_optimizer(model, 1e-4, 0.1)

        def ours(i, bf16=True):
            x, y = batches[i % 4]
            with pe.autocast("cpu", dtype=pe.bfloat16, enabled=bf16):
                _, loss = model(pe.tensor(x), pe.tensor(y))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        tstep = None
        if torch is not None:
            from ..torch_gpt import TorchGPT, load_pyengine_state, make_optimizer
            tmodel = TorchGPT(cfg)
            load_pyengine_state(tmodel, model.state_dict())
            topt = make_optimizer(tmodel, 1e-4, 0.1)
            tb = [(torch.from_numpy(x), torch.from_numpy(y)) for x, y in batches]

            def tstep(i):
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    _, loss = tmodel(*tb[i % 4])
                topt.zero_grad(set_to_none=True)
                loss.backward()
                topt.step()
        t_ours, t_torch = _seconds_per_step(ours, tstep, steps, 2, rounds=min(5, steps))
        t_fp32, _ = _seconds_per_step(lambda i: ours(i, bf16=False), None, max(2, steps // 2), 1,
                                      rounds=min(3, steps))
    tok = B * T
    extra = f"pyengine bf16 {tok / t_ours:,.0f} tok/s (fp32 {tok / t_fp32:,.0f} tok/s: bf16 {t_fp32 / t_ours:.2f}x)"
    if t_torch:
        extra += f" vs PyTorch autocast bf16 {tok / t_torch:,.0f} tok/s"
    res.add("train", f"GPT step L{cfg.n_layer} H{cfg.n_head} C{cfg.n_embd} T{T} B{B} AdamW, autocast bf16", threads,
            t_ours, None, t_torch, extra=extra)


def shakespeare_char(res, data=None, steps=2000, threads=2, with_torch=True, seeds=(1337,)):
    """nanoGPT's CPU shakespeare-char recipe: 4 layers, 4 heads, 128 wide, block 64, batch 12, no biases, exact GELU,
    AdamW (betas 0.9/0.99, decay 0.1 on matrices), lr 1e-3 with 100 warmup steps, cosine-decayed over 2000
    iterations to 1e-4, grad clip 1, dropout 0; val loss = mean over 200 batches of windows spread evenly over
    the validation split (lm.estimate_loss; bench/RESULTS.md's earlier figures used 200 random batches).

    One run per seed and engine, alternating (pyengine, then PyTorch, per seed), so that both see the same
    moments of a noisy machine; wall time is the median over seeds, val loss the mean (each seed listed)."""
    import os
    path = data or os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data", "tinyshakespeare.txt")
    if not os.path.exists(path):
        res.notes.append(f"shakespeare_char skipped: no data at {path} (pass --data PATH)")
        return None
    ours, theirs = [], []  # (wall seconds, val loss) per seed
    for seed in seeds:
        cfg = lm.TrainConfig(data=path, preset="small", out=f"runs/shakespeare_char/seed{seed}", max_steps=steps,
                             batch_size=12, block_size=64, n_layer=4, n_head=4, n_embd=128, dropout=0.0, bias=False,
                             gelu="none", lr=1e-3, warmup=100, min_lr_ratio=0.1, eval_interval=steps, eval_iters=200,
                             weight_decay=0.1, grad_clip=1.0, max_corpus_bytes=None, log_interval=100, seed=seed,
                             eval_at_start=False)
        with Threads(threads):
            t0 = time.perf_counter()
            r = lm.train(cfg)
            ours.append((time.perf_counter() - t0, r["best_val_loss"]))
            if torch is not None and with_torch:
                theirs.append(_torch_shakespeare(cfg))
    tokens = steps * 12 * 64

    def summary(runs):
        t = float(np.median([w for w, _ in runs]))
        vals = [v for _, v in runs]
        each = "" if len(vals) == 1 else " (" + " / ".join(f"{v:.3f}" for v in vals) + ")"
        return t, f"val loss {np.mean(vals):.3f}{each}, {tokens / t:,.0f} tok/s"

    t_ours, extra = summary(ours)
    extra = f"seeds {', '.join(map(str, seeds))}: {extra} (target <= 1.88)"
    t_torch = None
    if theirs:
        t_torch, theirs_txt = summary(theirs)
        extra += f"; PyTorch {theirs_txt}"
    res.add("train", f"shakespeare_char {steps} iters (wall time)", threads, t_ours, None, t_torch, unit="s",
            extra=extra)
    return ours, theirs


def _torch_shakespeare(cfg):
    from pyengine.text import CharTokenizer, load_corpus, train_val_split
    from ..torch_gpt import TorchGPT, make_optimizer
    text = load_corpus(cfg.data)
    tok = CharTokenizer.fit(text)
    ids = tok.encode(text)
    tr, va = train_val_split(ids, 0.1)
    torch.manual_seed(cfg.seed)
    mcfg = GPTConfig(vocab_size=tok.vocab_size, block_size=cfg.block_size, n_layer=cfg.n_layer, n_head=cfg.n_head,
                     n_embd=cfg.n_embd, dropout=0.0, bias=cfg.bias, gelu=cfg.gelu)
    model = TorchGPT(mcfg)
    opt = make_optimizer(model, cfg.lr, cfg.weight_decay)
    g = pe.Generator().manual_seed(cfg.seed + 1)
    t0 = time.perf_counter()
    for step in range(cfg.max_steps):
        for group in opt.param_groups:
            group["lr"] = WarmupCosineLR.lr_at(step, cfg.lr, cfg.warmup, cfg.max_steps, cfg.min_lr_ratio)
        x, y = get_batch(tr, cfg.block_size, cfg.batch_size, g)
        _, loss = model(torch.from_numpy(x), torch.from_numpy(y))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
    # The same closing evaluation as lm.train (validation and training loss, eval_iters batches each of the
    # same evenly spread windows), inside the timed region as it is in pyengine's wall time.
    model.eval()
    with torch.no_grad():
        val, _ = (_torch_estimate(model, ids, cfg) for ids in (va, tr))
    elapsed = time.perf_counter() - t0
    return elapsed, val


def _torch_estimate(model, ids, cfg):
    from pyengine.text import spread_starts, windows
    starts = spread_starts(len(ids), cfg.block_size, cfg.eval_iters * cfg.batch_size)
    losses = []
    for b in range(0, len(starts), cfg.batch_size):
        x, y = windows(ids, starts[b:b + cfg.batch_size], cfg.block_size)
        losses.append(model(torch.from_numpy(x), torch.from_numpy(y))[1].item())
    return float(np.mean(losses))


def recurrent_classifier(lib, kind, batches):
    """Embedding(10000, 256) -> ``kind`` (LSTM or GRU, 128, batch first) -> Linear(128, 1) on the last state,
    BCE with logits, Adam, built in ``lib`` (pyengine or torch, seed 0): step(i) trains on batches[i % 4]."""
    lib.manual_seed(0)
    nn = lib.nn
    emb, rnn, head = nn.Embedding(10000, 256), getattr(nn, kind)(256, 128, batch_first=True), nn.Linear(128, 1)
    params = list(emb.parameters()) + list(rnn.parameters()) + list(head.parameters())
    opt, crit = lib.optim.Adam(params, lr=1e-3), nn.BCEWithLogitsLoss()
    data = [(lib.from_numpy(x), lib.from_numpy(y)) for x, y in batches]

    def last_state(out):  # LSTM: (out, (h, c)); GRU: (out, h)
        h = out[1][0] if kind == "LSTM" else out[1]
        return h[-1]

    def step(i):
        x, y = data[i % len(data)]
        loss = crit(head(last_state(rnn(emb(x)))), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return step


def classifier_batches():
    """The four (ids (32, 100), labels (32, 1)) batches of the recurrent classifier rows, the same in every run."""
    rng = np.random.default_rng(0)
    return [(rng.integers(0, 10000, (32, 100)), rng.integers(0, 2, (32, 1)).astype(np.float32)) for _ in range(4)]


def _recurrent_classifier_step(res, kind, threads, steps, quick, note):
    """recurrent_classifier, batch 32, length 100: seconds per step of pyengine and of PyTorch."""
    batches = classifier_batches()
    steps = 5 if quick else steps
    with Threads(threads):
        step = recurrent_classifier(pe, kind, batches)
        tstep = recurrent_classifier(torch, kind, batches) if torch is not None else None
        t_ours, t_torch = _seconds_per_step(step, tstep, steps, 2)
    extra = f"pyengine {1 / t_ours:.1f} steps/s" + (f" vs PyTorch {1 / t_torch:.1f} steps/s" if t_torch else "")
    res.add("train", f"{kind} classifier step (Emb 10000x256, {kind} 128, B32 T100, Adam)", threads, t_ours, None,
            t_torch, extra=extra + note)


def lstm_step(res, threads=2, steps=10, quick=False):
    """The brief's text classifier with an LSTM; steps/s (PyTorch quoted at about 19.7 steps/s on 2 threads)."""
    _recurrent_classifier_step(res, "LSTM", threads, steps, quick, "; target >= 1.5x PyTorch")


def gru_step(res, threads=2, steps=10, quick=False):
    """The same classifier with a GRU (issue 13): the rnn kernel family beside the LSTM's."""
    _recurrent_classifier_step(res, "GRU", threads, steps, quick, "")


def run(res, quick=False):
    for threads in (2, 1):
        gpt_step(res, threads=threads, quick=quick)
        gpt_step(res, threads=threads, quick=quick, steps=6, shape=GPT_SHAPES["large"])
    if not quick:
        for threads in (2, 1):
            for shape in GPT_SHAPES.values():
                gpt_step_alone(res, threads=threads, shape=shape)
    gpt_step_bf16(res, threads=2, quick=quick)
    lstm_step(res, threads=2, quick=quick)
    gru_step(res, threads=2, quick=quick)
