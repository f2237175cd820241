"""The language-model workflow: train -> evaluate -> sample -> (serve) -> feedback -> finetune.

Everything the command line (``pyengine train|eval|sample|serve|finetune``) does lives here as plain
functions, so it is usable from Python too. A run directory holds:

    ckpt.safetensors    the last checkpoint (model, optimizer, step, RNG states, config, tokenizer)
    best.safetensors    the checkpoint with the lowest validation loss so far
    metrics.jsonl       one JSON object per training step ({"step", "loss", "lr"}) and one per evaluation
                        ({"step", "train_loss", "val_loss", "lr", "tokens_per_s", "elapsed_s"}; step 0 is
                        the untrained model)
    loss.png            the loss curves, when matplotlib is installed (``pip install 'pyengine[plot]'``)

The training text is tokenized once into a memory-mapped token file (``pyengine.text.tokenize_corpus``),
so a corpus of any size trains without being held in memory; the checkpoint records where the text came
from and its content hash (``data_fingerprint``), which ``evaluate`` and ``finetune`` check.

One validation estimate everywhere: the mean loss over ``eval_iters x batch_size`` windows spread evenly
over the validation split (``estimate_loss``), deterministic, so ``pyengine eval`` of a checkpoint repeats
the validation loss that training recorded for it, and before/after comparisons see no sampling noise.

Resuming (``resume=True``) restores the model, the optimizer, the step and the generators of the batch
order and of dropout, so a resumed run continues exactly as an uninterrupted one would.

Under an MPI launcher (``mpiexec -n N pyengine train ...``, with ``pip install pyengine[distributed]``)
training is data-parallel: every rank holds the model (broadcast from rank 0), draws its own random
windows (its own generator, seeded by rank), and gradients are averaged across ranks after each backward
(``DistributedDataParallel``), so the global batch is N x batch_size. Evaluation is split over the ranks
and averaged; only rank 0 prints and writes checkpoints, which load at any world size.
"""
import json
import math
import os
import time
from dataclasses import dataclass, field

import numpy as np

from . import io as pio
from ._dtype import bfloat16
from .amp import autocast
from .autograd import no_grad
from .models.gpt import GPT, GPTConfig
from .nn.utils import clip_grad_norm_
from .optim import AdamW
from .optim.lr_scheduler import WarmupCosineLR
from .random import Generator, default_generator
from .tensor import tensor
from .text import (TOKENIZERS, default_corpus, get_batch, load_corpus, load_tokenizer, spread_starts,
                   tokenize_corpus, train_val_split, windows)
from .utils.progress import LiveLine, RateMeter, format_duration, format_rate

# Model and schedule presets. "small" is nanoGPT's CPU shakespeare-char configuration.
PRESETS = {
    "tiny": dict(n_layer=2, n_head=2, n_embd=64, block_size=64, batch_size=16, max_steps=500, lr=2e-3,
                 eval_interval=100, eval_iters=20, warmup=50),
    "small": dict(n_layer=4, n_head=4, n_embd=128, block_size=64, batch_size=12, max_steps=2000, lr=1e-3,
                  eval_interval=250, eval_iters=200, warmup=100),
    "medium": dict(n_layer=6, n_head=6, n_embd=384, block_size=256, batch_size=32, max_steps=5000, lr=1e-3,
                   eval_interval=500, eval_iters=100, warmup=200),
}


@dataclass
class TrainConfig:
    """Every setting of a training run (``pyengine train`` flags, ``--config FILE`` and ``key=value`` set
    these by name). None means: the preset's value."""
    data: str = None            # text file or folder of any size; None = the embedded default corpus
    preset: str = "tiny"
    out: str = "runs/lm"
    max_steps: int = None       # defaults from the preset
    batch_size: int = None
    block_size: int = None
    n_layer: int = None
    n_head: int = None
    n_embd: int = None
    dropout: float = 0.0
    bias: bool = True           # biases in Linear and LayerNorm (nanoGPT's shakespeare-char recipe: False)
    gelu: str = "tanh"          # GELU form in the MLP: "tanh" (GPT-2) or "none" (exact, as nanoGPT)
    lr: float = None            # the peak of the schedule (optim.lr_scheduler.WarmupCosineLR)
    min_lr_ratio: float = 0.1   # cosine decay to lr * min_lr_ratio
    warmup: int = None          # linear warm-up steps
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    eval_interval: int = None
    eval_iters: int = None
    eval_at_start: bool = True  # measure the untrained model as step 0 (the curves start there)
    tokenizer: str = "char"     # "char", "byte" or "bpe" (byte-level BPE trained on the corpus)
    vocab_size: int = None      # bpe only: 256 bytes + (vocab_size - 256) merges; default 512
    cache_dir: str = None       # token files; None = $PYENGINE_CACHE_DIR or ~/.cache/pyengine/tokens
    val_fraction: float = 0.1
    seed: int = 1337
    resume: bool = False
    log_interval: int = 10
    stop_at: int = None         # stop early after this step (as if interrupted); the schedule still ends at max_steps
    max_corpus_bytes: int = None  # train on the first N characters only (None: all of the text)
    profile: int = 0            # profile this many steps after a short warm-up (0: off): out/profile_trace.json
    dtype: str = "fp32"         # "bf16": each step's forward under autocast("cpu", bfloat16) (matmuls and linear
    #                             layers on the bfloat16 GEMM; fp32 weights, gradients and optimizer state;
    #                             the evaluations stay fp32)
    extra: dict = field(default_factory=dict)

    def resolved(self):
        """Fill what is None from the preset, then check every setting (ValueError naming the first bad one)."""
        if self.preset not in PRESETS:
            raise ValueError(f"unknown preset {self.preset!r}; choose from {', '.join(PRESETS)}")
        p = PRESETS[self.preset]
        for k, v in p.items():
            if getattr(self, k, None) is None:
                setattr(self, k, v)
        if self.tokenizer == "bpe" and self.vocab_size is None:
            self.vocab_size = 512
        self._check()
        return self

    def _check(self):
        def need(ok, name, what):
            if not ok:
                raise ValueError(f"{name} must be {what}, got {getattr(self, name)!r}")

        def is_int(v):
            return isinstance(v, (int, np.integer)) and not isinstance(v, bool)

        def is_num(v):
            return isinstance(v, (int, float, np.floating, np.integer)) and not isinstance(v, bool) and math.isfinite(v)

        for name in ("max_steps", "batch_size", "block_size", "n_layer", "n_head", "n_embd", "eval_interval",
                     "eval_iters", "log_interval"):
            need(is_int(getattr(self, name)) and getattr(self, name) >= 1, name, "an integer >= 1")
        need(is_int(self.warmup) and self.warmup >= 0, "warmup", "an integer >= 0")
        need(is_int(self.seed) and self.seed >= 0, "seed", "an integer >= 0")
        need(self.stop_at is None or (is_int(self.stop_at) and self.stop_at >= 1), "stop_at", "None or >= 1")
        need(is_int(self.profile) and self.profile >= 0, "profile", "an integer >= 0 (steps to profile)")
        need(is_num(self.lr) and self.lr > 0, "lr", "a finite number > 0")
        need(is_num(self.min_lr_ratio) and 0 <= self.min_lr_ratio <= 1, "min_lr_ratio", "in [0, 1]")
        need(is_num(self.dropout) and 0 <= self.dropout < 1, "dropout", "in [0, 1)")
        need(is_num(self.weight_decay) and self.weight_decay >= 0, "weight_decay", "a number >= 0")
        need(is_num(self.grad_clip) and self.grad_clip >= 0, "grad_clip", "a number >= 0 (0: no clipping)")
        need(is_num(self.val_fraction) and 0 < self.val_fraction < 1, "val_fraction", "in (0, 1)")
        need(self.tokenizer in TOKENIZERS, "tokenizer", "one of " + ", ".join(TOKENIZERS))
        need(self.vocab_size is None or (is_int(self.vocab_size) and 256 <= self.vocab_size <= 1 << 20),
             "vocab_size", "an integer in [256, 1048576]")
        need(self.max_corpus_bytes is None or (is_int(self.max_corpus_bytes) and self.max_corpus_bytes >= 1),
             "max_corpus_bytes", "None or an integer >= 1")
        need(isinstance(self.bias, bool), "bias", "True or False")
        need(isinstance(self.eval_at_start, bool), "eval_at_start", "True or False")
        need(self.gelu in ("tanh", "none"), "gelu", "'tanh' or 'none'")
        need(self.dtype in ("fp32", "bf16"), "dtype", "'fp32' or 'bf16'")
        need(self.n_embd % self.n_head == 0, "n_embd", f"divisible by n_head ({self.n_head})")


# ---------------------------------------------------------------------- data


def load_text(data, max_bytes=None):
    """The training text as one str: a file or folder, or the default corpus (stdlib sources) when data is
    None. Training itself reads through ``load_tokens`` (chunked, cached) and never holds the text."""
    if data is None:
        return default_corpus(max_bytes or 1_000_000)
    return load_corpus(data, max_bytes=max_bytes)


def load_tokens(data, tokenizer=None, kind="char", vocab_size=None, cache_dir=None, max_chars=None):
    """A ``TokenizedCorpus`` of the training text (``data``: file, folder, or None for the default corpus),
    tokenized once into a cached token file; with ``tokenizer`` encoded by it, else one fitted."""
    if data is None:
        return tokenize_corpus(text=default_corpus(), tokenizer=tokenizer, kind=kind, vocab_size=vocab_size,
                               cache_dir=cache_dir, max_chars=max_chars)
    return tokenize_corpus(data, tokenizer=tokenizer, kind=kind, vocab_size=vocab_size, cache_dir=cache_dir,
                           max_chars=max_chars)


def data_fingerprint(corpus, max_chars=None):
    """What a checkpoint records of its training text: the SHA-256 of its content (and of a prefix cap)."""
    return f"sha256:{corpus.content_sha256}" + (f":first{max_chars}" if max_chars else "")


def make_optimizer(model, lr, weight_decay):
    """AdamW with decay on every matrix (weights and embeddings), none on biases and LayerNorm gains
    (GPT-2 / nanoGPT); betas (0.9, 0.99) as nanoGPT's small-data recipe."""
    decay, no_decay = [], []
    seen = set()
    for p in model.parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        (decay if p.ndim >= 2 else no_decay).append(p)
    return AdamW([{"params": decay, "weight_decay": weight_decay},
                  {"params": no_decay, "weight_decay": 0.0}], lr=lr, betas=(0.9, 0.99))


@no_grad()
def estimate_loss(model, ids, block_size, batch_size, iters, rank=0, world=1):
    """Mean loss (nats/token) over ``iters x batch_size`` windows spread evenly over ``ids``
    (``text.spread_starts``): deterministic, the same windows at every call, so training's validation loss,
    ``pyengine eval`` and finetune's before/after all measure one and the same estimate.

    With several ranks, rank r evaluates batches r, r + world, ... and the sum is reduced across ranks:
    the same number as one process computes, in 1/world of the time.
    """
    starts = spread_starts(len(ids), block_size, iters * batch_size)
    was = model.training
    model.eval()
    total = 0.0
    batches = range(0, len(starts), batch_size)
    for i, b in enumerate(batches):
        if i % world == rank:
            x, y = windows(ids, starts[b:b + batch_size], block_size)
            _, loss = model(tensor(x), tensor(y))
            total += loss.item() * len(x)
    model.train(was)
    if world > 1:
        from . import distributed as dist
        total = dist.all_reduce_scalar(total, op="sum")
    return float(total / len(starts))


# ---------------------------------------------------------------------- progress


class Progress:
    """The training line: rewritten in place in a terminal, a plain line every ``log_interval`` steps
    elsewhere (``pyengine.utils.progress`` draws it). tok/s is None ("-") until measured."""

    def __init__(self, total, log_interval=10, stream=None, quiet=False):
        self.total, self.log_interval = total, log_interval
        self.line = LiveLine(stream)  # None: sys.stdout at each write
        self.tty = self.line.is_terminal
        self.quiet = quiet
        self.t0 = time.perf_counter()

    def update(self, step, loss, tok_s, lr, start_step=0):
        if self.quiet:
            return
        done = step + 1 - start_step
        elapsed = time.perf_counter() - self.t0
        eta = elapsed / max(done, 1) * (self.total - step - 1)
        text = (f"step {step + 1}/{self.total}  loss {loss:.4f}  lr {lr:.2e}  {format_rate(tok_s or None)}  "
                f"ETA {format_duration(eta)}")
        if self.tty:
            self.line.show(text)
        elif (step + 1) % self.log_interval == 0 or step + 1 == self.total:
            self.line.print(text)

    def status(self, text):
        """A passing state (``evaluating ...``) on the live line; in a log the result line follows instead."""
        if not self.quiet and self.tty:
            self.line.show(text)

    def message(self, text):
        if not self.quiet:
            self.line.print(text)


# ---------------------------------------------------------------------- checkpoints


def save_checkpoint(path, model, optimizer, step, cfg, tokenizer, batch_gen, best_val, data_fingerprint,
                    batch_states=None, metrics=None, step_metrics=None, data=None):
    """Write a language-model checkpoint. ``data``: where the training text came from ({"path", "chars",
    "tokens", "tokenizer"}), recorded beside its content hash ``data_fingerprint``; ``metrics``: the
    metrics.jsonl row of this step's evaluation, ``step_metrics``: the per-step rows since the last one."""
    pio.save({
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "step": step,
        "config": model.config.to_dict(),
        "tokenizer": tokenizer.to_dict(),
        "train": {k: v for k, v in vars(cfg).items() if k != "extra"},
        "rng": {"batches": batch_gen.get_state() if batch_gen is not None else None,
                "batches_by_rank": batch_states,
                "default": default_generator.get_state()},
        "best_val": best_val,
        "data_fingerprint": data_fingerprint,
        "metrics": metrics,          # the metrics.jsonl row of this step's evaluation
        "step_metrics": step_metrics,  # and the per-step rows that precede it
        "data": data,
        "format": "pyengine-lm-1",
    }, path)


def load_checkpoint(path):
    """(model, tokenizer, checkpoint dict) from a checkpoint written by ``train``/``finetune``, or from a
    weights-only folder (or its model.safetensors) written by ``pyengine export``.

    A checkpoint may come from anyone: it is checked against itself before anything is built from it
    (the config's values, every tensor's name, shape and dtype against the model the config describes,
    the tokenizer against the vocabulary), so a crafted config cannot allocate more than the file holds.
    Anything inconsistent raises ValueError naming what is wrong.
    """
    if not os.path.exists(path):
        raise FileNotFoundError(f"no checkpoint at {path}")
    from . import export
    if export.is_pretrained(path):  # a `pyengine export` folder, or its model.safetensors
        return export.load_pretrained(path)
    ck = pio.load(path)
    if not isinstance(ck, dict) or ck.get("format") != "pyengine-lm-1":
        raise ValueError(f"{path} is not a pyengine language-model checkpoint")
    config, tokenizer = check_checkpoint(ck, path)
    model = GPT(config)
    model.load_state_dict(ck["model"])
    model.eval()
    return model, tokenizer, ck


def check_checkpoint(ck, path="the checkpoint"):
    """(GPTConfig, tokenizer) of a language-model checkpoint dict, once its parts agree with each other."""
    def bad(why):
        return ValueError(f"{path} is not a valid pyengine language-model checkpoint: {why}")

    if not isinstance(ck.get("config"), dict) or not isinstance(ck.get("model"), dict):
        raise bad("it has no model config or no model weights")
    try:
        config = GPTConfig(**ck["config"])
    except TypeError as e:
        raise bad(f"its config has unknown fields ({e})") from None
    except ValueError as e:
        raise bad(str(e)) from None
    state = ck["model"]
    expected = config.state_shapes()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        raise bad(f"its weights do not match its config (missing {missing[:3]}, unexpected {unexpected[:3]})")
    for name, shape in expected.items():
        t = state[name]
        if not hasattr(t, "shape") or tuple(t.shape) != shape:
            raise bad(f"{name} has shape {tuple(getattr(t, 'shape', ()))}, the config says {shape}")
        if str(t.dtype) not in ("pyengine.float32", "pyengine.float64", "float32", "float64"):
            raise bad(f"{name} has dtype {t.dtype}; model weights are float32 or float64")
    try:
        tokenizer = load_tokenizer(ck.get("tokenizer") or {})
    except (ValueError, TypeError, KeyError) as e:
        raise bad(f"its tokenizer cannot be read ({e})") from None
    if tokenizer.vocab_size > config.vocab_size:
        raise bad(f"its tokenizer has {tokenizer.vocab_size} tokens but the model only {config.vocab_size}")
    return config, tokenizer


PLOT_HINT = "pip install 'pyengine[plot]'"


def _plot(metrics_path, png_path):
    """Draw loss.png from metrics.jsonl: every step's training loss, and the train/val estimates of each
    evaluation (from step 0, the untrained model). Returns (path or None, a line saying where or why not)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None, f"loss plot skipped: matplotlib is not installed ({PLOT_HINT})"
    steps, evals = [], []
    with open(metrics_path) as f:
        for line in f:
            try:
                row = json.loads(line)
            except ValueError:
                continue
            (evals if "val_loss" in row else steps).append(row)
    if not steps and not evals:
        return None, "loss plot skipped: no metrics yet"
    fig, ax = plt.subplots(figsize=(7, 4.5))
    if steps:
        ax.plot([r["step"] for r in steps], [r["loss"] for r in steps], color="tab:blue", alpha=0.35,
                linewidth=0.8, label="train (each step)")
    if evals:
        ax.plot([r["step"] for r in evals], [r["train_loss"] for r in evals], "o-", color="tab:blue",
                label="train (estimate)")
        ax.plot([r["step"] for r in evals], [r["val_loss"] for r in evals], "o-", color="tab:orange",
                label="validation")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats/token)")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(png_path, dpi=100)
    plt.close(fig)
    return png_path, f"loss plot: {png_path}"


# ---------------------------------------------------------------------- train


def train(cfg=None, stream=None, quiet=False, **overrides):
    """Train a GPT on text; returns a dict of results (best/final validation loss, tokens/s, paths).

    The steps, each a function below: set up (data, model, optimizer and schedule, or all of them resumed
    from the run's checkpoint; a fresh run evaluates the untrained model as step 0), then per step the
    training step and its progress line, every ``eval_interval`` steps evaluation and checkpoints, and at
    the end the plot and the summary.

    >>> train(TrainConfig(preset="tiny", max_steps=200, out="runs/demo"))
    """
    cfg = cfg or TrainConfig()
    for k, v in overrides.items():
        setattr(cfg, k, v)
    cfg.resolved()
    run = _set_up(cfg, stream, quiet)
    if run.start_step == 0 and cfg.eval_at_start:
        _evaluate_and_checkpoint(run, 0, run.scheduler.get_last_lr()[0])
    run.prog.t0 = time.perf_counter()  # the ETA counts from the first step (evaluations after it included)
    prof = _start_profile(run) if cfg.profile else None
    try:
        for step in range(run.start_step, run.end_step):
            t0 = time.perf_counter()
            lr, loss = _train_step(run, step)
            run.report(step, loss, lr, time.perf_counter() - t0)
            if prof is not None:
                prof.step()
            done = step + 1
            if done % cfg.eval_interval == 0 or done == cfg.max_steps:
                _evaluate_and_checkpoint(run, done, lr)
    finally:
        if prof is not None:
            prof.stop()
    result = _finish(run)
    if prof is not None:
        result["profile_trace"] = prof.last_trace_path
    return result


_PROFILE_WARMUP = 3  # steps before the profiled ones (first-call allocations and caches out of the picture)


def _start_profile(run):
    """A profiler over ``cfg.profile`` training steps after a short warm-up; when they end it writes the
    Chrome trace into the run directory and shows the top of the per-op table and the trace's path."""
    from . import profiler
    cfg = run.cfg
    available = run.end_step - run.start_step
    wait = max(0, min(_PROFILE_WARMUP, available - cfg.profile))
    name = "profile_trace.json" if run.rank == 0 else f"profile_trace.rank{run.rank}.json"
    path = os.path.join(cfg.out, name)

    def ready(prof):
        prof.export_chrome_trace(path)
        prof.last_trace_path = path
        table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15)
        steps = sum(1 for e in prof.events() if e.name.startswith("ProfilerStep#"))
        run.prog.message(f"profile of {steps} training step(s), by self CPU time:\n{table.rstrip()}\n"
                         f"trace (chrome://tracing or https://ui.perfetto.dev): {path}")

    prof = profiler.profile(schedule=profiler.schedule(wait=wait, warmup=0, active=cfg.profile, repeat=1),
                            on_trace_ready=ready, record_shapes=True, with_flops=True)
    prof.start()
    return prof


@dataclass
class _Run:
    """What the steps of ``train`` share: the run's data, model, optimizer and progress counters."""
    cfg: TrainConfig
    rank: int
    world: int
    tokenizer: object
    train_ids: np.ndarray
    val_ids: np.ndarray
    fingerprint: str
    data_info: dict
    model: GPT
    net: object                 # the model, or its DistributedDataParallel wrapper
    optimizer: AdamW
    scheduler: WarmupCosineLR
    batch_gen: Generator
    start_step: int
    best_val: float
    prog: Progress
    last: dict = field(default_factory=dict)     # the last evaluation's metrics
    train_loss_ema: float = None
    step_rows: list = field(default_factory=list)  # per-step metrics since the last evaluation

    def __post_init__(self):
        self.ckpt_path, self.best_path, self.metrics_path = _run_files(self.cfg.out)
        self.end_step = self.cfg.max_steps if self.cfg.stop_at is None else min(self.cfg.stop_at, self.cfg.max_steps)
        self.tokens_per_step = self.cfg.batch_size * self.cfg.block_size * self.world
        self.t_start = time.perf_counter()
        self.speed = RateMeter(window=1.0)  # tokens per second of training steps only (no evaluation)

    @property
    def tok_s(self):
        return self.speed.rate

    def report(self, step, loss, lr, seconds):
        """Fold a step's loss into the running average, count its tokens and time, draw the line."""
        self.train_loss_ema = loss if self.train_loss_ema is None else 0.9 * self.train_loss_ema + 0.1 * loss
        self.speed.add(self.tokens_per_step, seconds, last=step + 1 == self.end_step)
        self.step_rows.append({"step": step + 1, "loss": loss, "lr": lr})
        self.prog.update(step, self.train_loss_ema, self.tok_s, lr, self.start_step)


def _run_files(out):
    """The run directory's last checkpoint, best checkpoint and metrics log."""
    return (os.path.join(out, "ckpt.safetensors"), os.path.join(out, "best.safetensors"),
            os.path.join(out, "metrics.jsonl"))


def _set_up(cfg, stream, quiet):
    """Data, model, optimizer, schedule and batch generator: fresh, or resumed from the run's checkpoint
    (model, optimizer, step, generators), so that the run continues as if it had never stopped."""
    from .distributed import init_if_launched
    rank, world = init_if_launched()
    os.makedirs(cfg.out, exist_ok=True)
    ckpt_path, _, metrics_path = _run_files(cfg.out)
    resume_ck = None
    if cfg.resume:
        if not os.path.exists(ckpt_path):
            raise FileNotFoundError(f"--resume: no checkpoint at {ckpt_path}")
        resume_ck = pio.load(ckpt_path)
        if rank == 0:
            _restore_metrics(metrics_path, resume_ck)
    elif rank == 0 and os.path.exists(metrics_path):
        os.remove(metrics_path)
    prog = Progress(cfg.max_steps, cfg.log_interval, stream, quiet or rank != 0)
    prog.status("reading and tokenizing the data ...")
    tokenizer, train_ids, val_ids, fingerprint, data_info = _load_data(cfg, resume_ck)
    model, optimizer, batch_gen, start_step, best_val = _build_or_resume(cfg, tokenizer, fingerprint, resume_ck,
                                                                         rank, world)
    # the schedule is a function of the step: resuming at start_step picks it up there
    for group in optimizer.param_groups:
        group["initial_lr"] = cfg.lr
    scheduler = WarmupCosineLR(optimizer, cfg.warmup, cfg.max_steps, cfg.min_lr_ratio, last_epoch=start_step - 1)
    net = model
    if world > 1:
        from .distributed import DistributedDataParallel
        net = DistributedDataParallel(model)  # broadcasts rank 0's weights; averages gradients

    prog.message(f"pyengine train: {model.num_parameters():,} parameters, vocab {tokenizer.vocab_size}, "
                 f"preset {cfg.preset}, steps {start_step}..{cfg.max_steps}, batch {cfg.batch_size} x "
                 f"{cfg.block_size}" + (f" on each of {world} ranks" if world > 1 else ""))
    src = data_info["path"] or "the default corpus (1 MB of Python standard library sources, a fixed list)"
    cap = (f" (the first {cfg.max_corpus_bytes:,} characters, as --max-corpus-bytes asks)"
           if cfg.max_corpus_bytes else "")
    prog.message(f"data: {src}{cap}: {data_info['chars']:,} characters -> {data_info['tokens']:,} tokens "
                 f"({data_info['tokenizer']} tokenizer); {len(train_ids):,} train / {len(val_ids):,} validation "
                 f"tokens ({cfg.val_fraction:.0%} held out); token file "
                 + (f"{data_info['token_file']} ({'reused' if data_info['cached'] else 'written'})"
                    if data_info["token_file"] else "not cached"))
    model.train()
    return _Run(cfg, rank, world, tokenizer, train_ids, val_ids, fingerprint, data_info, model, net, optimizer,
                scheduler, batch_gen, start_step, best_val, prog)


def _restore_metrics(metrics_path, ck):
    """Make metrics.jsonl end at the checkpoint's step: rows of later steps (written after this checkpoint by
    a run that then died) go, and the checkpoint's own rows (its evaluation and the steps before it) come back
    if a crash lost them."""
    step = int(ck["step"])
    rows = []
    if os.path.exists(metrics_path):
        with open(metrics_path) as f:
            for line in f:
                try:
                    row = json.loads(line)
                except ValueError:  # a line cut short by the crash
                    continue
                if isinstance(row, dict) and isinstance(row.get("step"), int) and row["step"] <= step:
                    rows.append(row)
    have_eval = any(r["step"] == step and "val_loss" in r for r in rows)
    if isinstance(ck.get("metrics"), dict) and not have_eval:
        have_steps = {r["step"] for r in rows if "val_loss" not in r}
        rows += [r for r in ck.get("step_metrics") or () if isinstance(r, dict) and r.get("step") not in have_steps]
        rows.append(ck["metrics"])
    tmp = metrics_path + ".tmp"
    with open(tmp, "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)
    os.replace(tmp, metrics_path)


def _load_data(cfg, resume_ck):
    """(tokenizer, train ids, validation ids, fingerprint of the text, what to record of the data): the
    token file's memory map split in two; the checkpoint's tokenizer on resume."""
    tok = load_tokenizer(resume_ck) if resume_ck is not None else None
    corpus = load_tokens(cfg.data, tok, cfg.tokenizer, cfg.vocab_size, cfg.cache_dir, cfg.max_corpus_bytes)
    train_ids, val_ids = train_val_split(corpus.ids, cfg.val_fraction)
    if len(val_ids) <= cfg.block_size + 1 or len(train_ids) <= cfg.block_size + 1:
        raise ValueError(f"the text ({corpus.n_tokens} tokens) is too short for block_size {cfg.block_size} "
                         f"with a {cfg.val_fraction:.0%} validation split")
    info = {"path": os.path.abspath(cfg.data) if cfg.data is not None else None, "chars": corpus.n_chars,
            "tokens": corpus.n_tokens, "tokenizer": corpus.tokenizer.kind, "token_file": corpus.token_file,
            "cached": corpus.cached}
    return corpus.tokenizer, train_ids, val_ids, data_fingerprint(corpus, cfg.max_corpus_bytes), info


def _build_or_resume(cfg, tokenizer, fingerprint, resume_ck, rank, world):
    """(model, optimizer, batch generator, start step, best validation loss): new, or the checkpoint's."""
    default_generator.manual_seed(cfg.seed)  # parameter init and dropout (the checkpoint's state on resume)
    batch_gen = Generator().manual_seed(cfg.seed + 1 + 1000003 * rank)
    if resume_ck is None:
        model = GPT(GPTConfig(vocab_size=tokenizer.vocab_size, block_size=cfg.block_size, n_layer=cfg.n_layer,
                              n_head=cfg.n_head, n_embd=cfg.n_embd, dropout=cfg.dropout, bias=cfg.bias,
                              gelu=cfg.gelu))
        return model, make_optimizer(model, cfg.lr, cfg.weight_decay), batch_gen, 0, float("inf")
    if resume_ck.get("data_fingerprint") != fingerprint:
        raise ValueError("--resume: the training text differs from the checkpoint's")
    model = GPT(GPTConfig(**resume_ck["config"]))
    model.load_state_dict(resume_ck["model"])
    optimizer = make_optimizer(model, cfg.lr, cfg.weight_decay)
    optimizer.load_state_dict(resume_ck["optimizer"])
    start_step = int(resume_ck["step"])
    by_rank = resume_ck["rng"].get("batches_by_rank")
    if by_rank and len(by_rank) == world:
        batch_gen.set_state(by_rank[rank])
    elif world == 1:
        batch_gen.set_state(resume_ck["rng"]["batches"])
    else:  # another world size: fresh per-rank streams, deterministic in (seed, step, rank)
        batch_gen.manual_seed(cfg.seed + 1 + 1000003 * rank + 7919 * start_step)
    default_generator.set_state(resume_ck["rng"]["default"])
    return model, optimizer, batch_gen, start_step, float(resume_ck["best_val"])


def _train_step(run, step):
    """One optimizer step on a random batch at the schedule's lr; returns (lr, loss)."""
    cfg = run.cfg
    lr = run.scheduler.get_last_lr()[0]
    x, y = get_batch(run.train_ids, cfg.block_size, cfg.batch_size, run.batch_gen)
    if cfg.dtype == "bf16":
        with autocast("cpu", dtype=bfloat16):
            _, loss = run.net(tensor(x), tensor(y))
    else:
        _, loss = run.net(tensor(x), tensor(y))
    run.optimizer.zero_grad(set_to_none=True)
    loss.backward()  # under DDP, gradients arrive averaged over the ranks
    if cfg.grad_clip:
        clip_grad_norm_(run.model.parameters(), cfg.grad_clip)
    run.optimizer.step()
    run.scheduler.step()  # the lr of the next step
    lv = loss.item()
    if not math.isfinite(lv):
        raise FloatingPointError(f"training diverged at step {step + 1}: loss is {lv}")
    return lr, lv


def _evaluate_and_checkpoint(run, done, lr):
    """Validation and training loss after step ``done``; rank 0 writes the checkpoint (and best.safetensors
    when the validation loss improved), then appends the steps' rows and this evaluation to metrics.jsonl.
    Step 0 (the untrained model) is measured and logged, not saved."""
    cfg, rank, world = run.cfg, run.rank, run.world
    run.prog.status(f"step {done}/{cfg.max_steps}  evaluating ({cfg.eval_iters * cfg.batch_size:,} validation "
                    "and training windows) ...")
    val = estimate_loss(run.model, run.val_ids, cfg.block_size, cfg.batch_size, cfg.eval_iters, rank, world)
    trn = estimate_loss(run.model, run.train_ids, cfg.block_size, cfg.batch_size, cfg.eval_iters, rank, world)
    improved = done > 0 and val < run.best_val
    if done > 0:
        run.best_val = min(run.best_val, val)
    run.last = {"step": done, "train_loss": trn, "val_loss": val, "lr": lr, "tokens_per_s": run.tok_s,
                "elapsed_s": time.perf_counter() - run.t_start}
    states = None
    if world > 1 and done > 0:
        from . import distributed as dist
        states = dist.all_gather_object(run.batch_gen.get_state())
    if rank == 0:
        # the last checkpoint first, then the best, then the metrics rows: a crash anywhere loses nothing and
        # repeats nothing, since the checkpoint carries its rows (a resumed run restores metrics.jsonl from it)
        paths = ([run.ckpt_path] + ([run.best_path] if improved else [])) if done > 0 else []
        for path in paths:
            save_checkpoint(path, run.model, run.optimizer, done, cfg, run.tokenizer, run.batch_gen, run.best_val,
                            run.fingerprint, states, metrics=run.last, step_metrics=run.step_rows,
                            data=run.data_info)
        with open(run.metrics_path, "a") as f:
            f.writelines(json.dumps(r) + "\n" for r in run.step_rows + [run.last])
    run.step_rows = []
    what = "untrained model" if done == 0 else ("best, saved" if improved else "")
    run.prog.message(f"step {done}: train loss {trn:.4f}, val loss {val:.4f}" + (f" ({what})" if what else ""))


def _finish(run):
    """The loss plot (rank 0) and the run's summary."""
    cfg = run.cfg
    elapsed = time.perf_counter() - run.t_start
    steps_run = run.end_step - run.start_step
    plot, plot_line = None, None
    if run.rank == 0 and os.path.exists(run.metrics_path):
        plot, plot_line = _plot(run.metrics_path, os.path.join(cfg.out, "loss.png"))
    tok_s = run.speed.overall
    result = {"best_val_loss": run.best_val, "final": run.last, "steps": steps_run, "elapsed_s": elapsed,
              "train_s": run.speed.total_seconds, "tokens_per_s": tok_s or 0.0,
              "checkpoint": run.ckpt_path, "best_checkpoint": run.best_path, "metrics": run.metrics_path,
              "plot": plot, "plot_note": plot_line}
    run.prog.message(f"done: {steps_run} steps in {format_duration(elapsed)} "
                     f"({format_duration(run.speed.total_seconds)} "
                     f"training, the rest evaluation and checkpoints), {format_rate(tok_s)}; best val loss "
                     f"{run.best_val:.4f}; checkpoints in {cfg.out}")
    if plot_line:
        run.prog.message(plot_line)
    return result


# ---------------------------------------------------------------------- evaluate / sample


def _train_record(ck, checkpoint):
    """The checkpoint's training settings that evaluation and finetuning reuse, checked (it may come from anyone)."""
    t = ck.get("train") if isinstance(ck.get("train"), dict) else {}
    rec = {"data": t.get("data"), "val_fraction": t.get("val_fraction", 0.1),
           "max_corpus_bytes": t.get("max_corpus_bytes"), "eval_iters": t.get("eval_iters", 20),
           "batch_size": t.get("batch_size", 16), "weight_decay": t.get("weight_decay", 0.1)}

    def is_int(v, low):
        return isinstance(v, int) and not isinstance(v, bool) and v >= low

    ok = (isinstance(rec["data"], (str, type(None))) and isinstance(rec["val_fraction"], float)
          and 0.0 < rec["val_fraction"] < 1.0
          and (rec["max_corpus_bytes"] is None or is_int(rec["max_corpus_bytes"], 1))
          and is_int(rec["eval_iters"], 1) and is_int(rec["batch_size"], 1)
          and rec["eval_iters"] * rec["batch_size"] <= 1 << 20
          and isinstance(rec["weight_decay"], (int, float)) and math.isfinite(rec["weight_decay"]))
    if not ok:
        raise ValueError(f"{checkpoint} has a corrupt training record")
    return rec


@no_grad()
def evaluate(checkpoint, data=None, max_windows=None, batch_size=None, cache_dir=None):
    """Loss (nats/token) and perplexity of a checkpoint on held-out text.

    When ``data`` is the training text (recognised by its content hash; None for the default corpus) the
    validation split is evaluated with training's own estimate (``estimate_loss``: the same
    ``eval_iters x batch_size`` windows, spread evenly), so the number equals the validation loss training
    recorded for this checkpoint. Other text is evaluated whole-text the same way, ``max_windows`` windows
    (default: as many as training used). Returns {"loss", "perplexity", "tokens", "windows", "split"}.
    """
    model, tok, ck = load_checkpoint(checkpoint)
    rec = _train_record(ck, checkpoint)
    if data is None and rec["data"] is not None:
        # never open a path that a file someone handed us names: the caller says what to read
        raise ValueError(f"evaluate: {checkpoint} was trained on {rec['data']!r}; pass that text (or other "
                         "held-out text) as data= / --data (paths stored in a checkpoint are not opened)")
    corpus = load_tokens(data, tok, cache_dir=cache_dir, max_chars=rec["max_corpus_bytes"])
    ids, split = corpus.ids, "all of the given text"
    if data_fingerprint(corpus, rec["max_corpus_bytes"]) == ck.get("data_fingerprint"):
        ids = train_val_split(ids, rec["val_fraction"])[1]  # the training text: its held-out part, as training saw it
        split = f"validation split of the training text (last {rec['val_fraction']:.0%})"
    elif rec["max_corpus_bytes"]:  # other text: all of it
        corpus = load_tokens(data, tok, cache_dir=cache_dir)
        ids = corpus.ids
    T = model.config.block_size
    if len(ids) < T + 1:
        raise ValueError(f"evaluate: the held-out text ({len(ids)} tokens) is shorter than one window ({T + 1})")
    bs = batch_size or rec["batch_size"]
    n = max_windows or rec["eval_iters"] * rec["batch_size"]
    iters = max(1, -(-n // bs))
    loss = estimate_loss(model, ids, T, bs, iters)
    return {"loss": loss, "perplexity": math.exp(loss), "tokens": int(iters * bs * T), "windows": iters * bs,
            "split": split}


def sample(checkpoint, prompt="", max_new_tokens=200, temperature=0.8, top_k=None, top_p=None, seed=None,
           use_cache=True, model=None, tokenizer=None):
    """Generate text after ``prompt``; returns (completion text, tokens/s)."""
    if model is None:
        model, tokenizer, _ = load_checkpoint(checkpoint)
    ids = tokenizer.encode(prompt, errors="ignore") if prompt else np.zeros(0, np.int64)
    if ids.size == 0:  # start from a line break (token 0 if the vocabulary has none)
        ids = tokenizer.encode("\n", errors="ignore")[:1]
        ids = ids if ids.size else np.zeros(1, np.int64)
    t0 = time.perf_counter()
    out = model.generate(ids[None, :], max_new_tokens, temperature=temperature, top_k=top_k, top_p=top_p,
                         seed=seed, use_cache=use_cache)
    dt = time.perf_counter() - t0
    new = out.numpy()[0, ids.size:]
    return tokenizer.decode(new), (max_new_tokens / dt if dt > 0 else 0.0)


# ---------------------------------------------------------------------- feedback -> finetune


def read_feedback(path, min_rating=4):
    """What to learn from a feedback file: (prompt, target) pairs, the correction when one was given, else the
    completion of records rated >= min_rating. Returns (pairs, counts)."""
    pairs, used, skipped = [], 0, 0
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                r = json.loads(line)
            except json.JSONDecodeError:
                skipped += 1
                continue
            if not isinstance(r, dict) or not isinstance(r.get("prompt", ""), str):
                skipped += 1
                continue
            prompt = r.get("prompt", "")
            if isinstance(r.get("corrected"), str) and r["corrected"]:
                pairs.append((prompt, r["corrected"]))
                used += 1
            elif (isinstance(r.get("rating"), (int, float)) and r["rating"] >= min_rating
                  and isinstance(r.get("completion"), str) and r["completion"]):
                pairs.append((prompt, r["completion"]))
                used += 1
            else:
                skipped += 1
    return pairs, {"used": used, "skipped": skipped}


def _feedback_rows(tok, pairs, block_size):
    """(x, y) int64 arrays (len(pairs), block_size): prompt then target tokens, left-aligned (the last
    block_size + 1 tokens when longer), y = -1 (no loss) on the prompt and the padding, so that the loss is
    the target's given its prompt. Pairs whose target encodes to nothing are left out."""
    xs, ys = [], []
    for prompt, target in pairs:
        p = tok.encode(prompt, errors="ignore") if prompt else np.zeros(0, np.int64)
        t = tok.encode(target, errors="ignore")
        if not t.size:
            continue
        seq = np.concatenate([p, t])
        if seq.size < 2:  # no prompt and a one-token target: nothing to condition on
            continue
        first_target = p.size  # index in seq of the first target token
        if seq.size > block_size + 1:
            cut = seq.size - (block_size + 1)
            seq, first_target = seq[cut:], max(first_target - cut, 1)
        x = np.zeros(block_size, np.int64)
        y = np.full(block_size, -1, np.int64)
        n = seq.size - 1
        x[:n] = seq[:-1]
        y[:n] = seq[1:]
        y[:max(first_target - 1, 0)] = -1
        xs.append(x)
        ys.append(y)
    if not xs:
        return np.zeros((0, block_size), np.int64), np.zeros((0, block_size), np.int64)
    return np.stack(xs), np.stack(ys)


@no_grad()
def _target_loss(model, x, y):
    """Mean loss (nats/token) of the target tokens of feedback rows (None when there are none)."""
    n = int((y >= 0).sum())
    if n == 0:
        return None
    was = model.training
    model.eval()
    total = 0.0
    for i in range(0, len(x), 16):
        yi = y[i:i + 16]
        k = int((yi >= 0).sum())
        if k:
            _, loss = model(tensor(x[i:i + 16]), tensor(yi))
            total += loss.item() * k
    model.train(was)
    return total / n


def _replay_data(ck, checkpoint, tok, data, cache_dir, rec):
    """(train ids, val ids, where from) of the text the checkpoint was trained on: ``data`` if given, else
    the path the checkpoint records, accepted only when its content hash is the one recorded."""
    path = data if data is not None else rec["data"]
    if path is not None and not os.path.exists(path):
        raise FileNotFoundError(f"finetune: the training text of {checkpoint} ({path}) is not there; pass it "
                                "with --data (replay from it is what keeps finetuning from forgetting)")
    corpus = load_tokens(path, tok, cache_dir=cache_dir, max_chars=rec["max_corpus_bytes"])
    if data_fingerprint(corpus, rec["max_corpus_bytes"]) != ck.get("data_fingerprint"):
        raise ValueError(f"finetune: {path or 'the default corpus'} is not the text {checkpoint} was trained on "
                         "(its content hash differs): pass the original training text with --data")
    train_ids, val_ids = train_val_split(corpus.ids, rec["val_fraction"])
    return train_ids, val_ids, path or "the default corpus"


def finetune(checkpoint, feedback, out=None, steps=60, lr=1e-4, batch_size=None, feedback_fraction=0.25,
             holdout_fraction=0.25, min_rating=4, max_val_regression=0.02, force=False, data=None,
             cache_dir=None, seed=0, stream=None, quiet=False):
    """Learn from feedback without forgetting, and keep the result only if it did no harm.

    The recipe: the feedback pairs (corrections, and completions rated >= ``min_rating``) are split into
    trained-on and held-out (``holdout_fraction``, at least one when there are two or more). Each step's
    batch mixes ``feedback_fraction`` feedback rows (loss on the target given its prompt) with replay
    windows of the original training text (``data``, default: the path the checkpoint records, checked
    against its content hash), at a small learning rate (``lr``, warm-up then cosine decay). Before and
    after, it measures the original validation loss (training's own estimate, ``estimate_loss``) and the
    target loss of the held-out and the trained-on feedback. The new checkpoint is written only if the
    validation loss rose by at most ``max_val_regression`` nats/token (``force=True`` writes it anyway).

    Returns {"before", "after", "val_regression", "max_val_regression", "kept", "checkpoint" (None when not
    kept), "feedback": counts, "steps", "tokens_per_s"}.
    """
    model, tok, ck = load_checkpoint(checkpoint)
    rec = _train_record(ck, checkpoint)
    pairs, counts = read_feedback(feedback, min_rating)
    if not pairs:
        raise ValueError(f"finetune: no usable feedback in {feedback} (need rating >= {min_rating} or a correction)")
    T = model.config.block_size
    bs = batch_size or rec["batch_size"]
    order = np.random.default_rng(seed).permutation(len(pairs))
    n_hold = int(math.ceil(holdout_fraction * len(pairs))) if len(pairs) >= 2 and holdout_fraction > 0 else 0
    n_hold = min(n_hold, len(pairs) - 1)
    held = [pairs[i] for i in sorted(order[:n_hold])]
    used = [pairs[i] for i in sorted(order[n_hold:])]
    fx, fy = _feedback_rows(tok, used, T)
    hx, hy = _feedback_rows(tok, held, T)
    if not len(fx):
        raise ValueError("finetune: no feedback target survives tokenization (empty or unknown characters)")
    counts = dict(counts, trained_on=len(fx), held_out=len(hx))
    train_ids, val_ids, source = _replay_data(ck, checkpoint, tok, data, cache_dir, rec)
    prog = Progress(steps, max(1, steps // 10), stream, quiet)

    def measure(when):
        prog.status(f"finetune: measuring {when} (validation: {rec['eval_iters'] * bs:,} windows) ...")
        return {"val_loss": estimate_loss(model, val_ids, T, bs, rec["eval_iters"]),
                "heldout_feedback_loss": _target_loss(model, hx, hy),
                "feedback_loss": _target_loss(model, fx, fy)}

    before = measure("before")
    prog.t0 = time.perf_counter()  # the ETA of the steps alone
    default_generator.manual_seed(seed)
    optimizer = make_optimizer(model, lr, rec["weight_decay"])
    for group in optimizer.param_groups:
        group["initial_lr"] = lr
    scheduler = WarmupCosineLR(optimizer, max(1, steps // 10), steps, 0.1)
    g = Generator().manual_seed(seed + 1)
    pick = np.random.default_rng(seed + 2)
    n_fb = min(bs, max(1, int(round(bs * feedback_fraction)))) if feedback_fraction > 0 else 0
    speed = RateMeter()
    model.train()
    for step in range(steps):
        t0 = time.perf_counter()
        cur_lr = scheduler.get_last_lr()[0]
        rows = pick.integers(0, len(fx), n_fb)
        x_r, y_r = get_batch(train_ids, T, bs - n_fb, g) if bs > n_fb else (fx[:0], fy[:0])
        x, y = np.concatenate([fx[rows], x_r]), np.concatenate([fy[rows], y_r])
        _, loss = model(tensor(x), tensor(y))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        lv = loss.item()
        if not math.isfinite(lv):
            raise FloatingPointError(f"finetune diverged at step {step + 1}: loss is {lv}")
        speed.add(int((y >= 0).sum()), time.perf_counter() - t0, last=step + 1 == steps)
        prog.update(step, lv, speed.rate, cur_lr)
    model.eval()
    after = measure("after")
    regression = after["val_loss"] - before["val_loss"]
    kept = regression <= max_val_regression or force
    written = None
    if kept:
        written = out or os.path.join(os.path.dirname(os.path.abspath(checkpoint)), "finetuned.safetensors")
        cfg = TrainConfig(**{k: v for k, v in ck.get("train", {}).items() if k in TrainConfig.__dataclass_fields__})
        save_checkpoint(written, model, None, int(ck.get("step", 0)) + steps, cfg, tok, None, after["val_loss"],
                        ck.get("data_fingerprint"), metrics=None, data=ck.get("data"))

    def arrow(key):
        a, b = before[key], after[key]
        return "n/a" if a is None else f"{a:.4f} -> {b:.4f}"

    prog.message(f"finetune: {counts['used']} feedback samples ({counts['skipped']} skipped): "
                 f"{counts['trained_on']} trained on, {counts['held_out']} held out; {steps} steps at lr {lr:g}, "
                 + (f"{n_fb} of {bs} rows feedback, the rest replay from {source}" if n_fb < bs else
                  f"feedback only, no replay (validation from {source})") + f"; {format_rate(speed.overall)}")
    prog.message(f"  validation loss {arrow('val_loss')} ({regression:+.4f}, tolerance +{max_val_regression:g}); "
                 f"held-out feedback loss {arrow('heldout_feedback_loss')}; trained-on feedback loss "
                 f"{arrow('feedback_loss')}")
    if kept and regression > max_val_regression:
        prog.message(f"  KEPT ANYWAY (--force): validation loss rose by {regression:.4f} > {max_val_regression:g}; "
                     f"wrote {written}")
    elif kept:
        prog.message(f"  kept: validation loss within tolerance; wrote {written}")
    else:
        prog.message(f"  NOT KEPT: validation loss rose by {regression:.4f} > {max_val_regression:g} nats/token; "
                     "nothing written (lower --lr or --steps, raise --max-val-regression, or --force)")
    return {"before": before, "after": after, "val_regression": regression, "max_val_regression": max_val_regression,
            "kept": kept, "checkpoint": written, "feedback": counts, "steps": steps,
            "tokens_per_s": speed.overall}
