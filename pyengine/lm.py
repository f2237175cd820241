"""The language-model workflow: train -> evaluate -> sample -> (serve) -> feedback -> finetune.

Everything the command line (``pyengine train|eval|sample|serve|finetune``) does lives here as plain
functions, so it is usable from Python too. A run directory holds:

    ckpt.safetensors    the last checkpoint (model, optimizer, step, RNG states, config, tokenizer)
    best.safetensors    the checkpoint with the lowest validation loss so far
    metrics.jsonl       one JSON object per evaluation (step, train/val loss, lr, tokens/s, time)
    loss.png            the loss curves, when matplotlib is installed

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
from .autograd import no_grad
from .models.gpt import GPT, GPTConfig
from .nn.utils import clip_grad_norm_
from .optim import AdamW
from .optim.lr_scheduler import WarmupCosineLR
from .random import Generator, default_generator
from .tensor import tensor
from .text import default_corpus, get_batch, load_corpus, make_tokenizer, tokenizer_from_dict, train_val_split
from .utils.progress import LiveLine, format_duration

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
    data: str = None            # text file or folder; None = the embedded default corpus
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
    tokenizer: str = "char"
    val_fraction: float = 0.1
    seed: int = 1337
    resume: bool = False
    log_interval: int = 10
    stop_at: int = None         # stop early after this step (as if interrupted); the schedule still ends at max_steps
    max_corpus_bytes: int = 1_000_000
    extra: dict = field(default_factory=dict)

    def resolved(self):
        """Fill what is None from the preset, then check every setting (ValueError naming the first bad one)."""
        if self.preset not in PRESETS:
            raise ValueError(f"unknown preset {self.preset!r}; choose from {', '.join(PRESETS)}")
        p = PRESETS[self.preset]
        for k, v in p.items():
            if getattr(self, k, None) is None:
                setattr(self, k, v)
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
        need(is_num(self.lr) and self.lr > 0, "lr", "a finite number > 0")
        need(is_num(self.min_lr_ratio) and 0 <= self.min_lr_ratio <= 1, "min_lr_ratio", "in [0, 1]")
        need(is_num(self.dropout) and 0 <= self.dropout < 1, "dropout", "in [0, 1)")
        need(is_num(self.weight_decay) and self.weight_decay >= 0, "weight_decay", "a number >= 0")
        need(is_num(self.grad_clip) and self.grad_clip >= 0, "grad_clip", "a number >= 0 (0: no clipping)")
        need(is_num(self.val_fraction) and 0 < self.val_fraction < 1, "val_fraction", "in (0, 1)")
        need(self.tokenizer in ("char", "byte"), "tokenizer", "'char' or 'byte'")
        need(self.n_embd % self.n_head == 0, "n_embd", f"divisible by n_head ({self.n_head})")


# ---------------------------------------------------------------------- data


def load_text(data, max_bytes=None):
    """The training text: a file or folder, or the default corpus (stdlib sources) when data is None."""
    if data is None:
        return default_corpus(max_bytes or 1_000_000)
    return load_corpus(data, max_bytes=max_bytes)


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
def estimate_loss(model, ids, block_size, batch_size, iters, seed, rank=0, world=1):
    """Mean loss over ``iters`` random batches drawn with a fixed seed (does not touch training RNG).

    With several ranks, rank r evaluates batches r, r + world, ... of the same sequence and the mean is
    reduced across ranks: the same number as one process computes, in 1/world of the time.
    """
    if len(ids) <= block_size + 1:
        raise ValueError(f"estimate_loss: {len(ids)} tokens are too few for block_size {block_size}")
    was = model.training
    model.eval()
    g = Generator().manual_seed(seed)
    total = 0.0
    for i in range(iters):
        x, y = get_batch(ids, block_size, batch_size, g)
        if i % world == rank:
            _, loss = model(tensor(x), tensor(y))
            total += loss.item()
    model.train(was)
    if world > 1:
        from . import distributed as dist
        total = dist.all_reduce_scalar(total, op="sum")
    return float(total / iters)


# ---------------------------------------------------------------------- progress


class Progress:
    """The training line: rewritten in place in a terminal, a plain line every ``log_interval`` steps
    elsewhere (``pyengine.utils.progress`` draws it)."""

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
        text = (f"step {step + 1}/{self.total}  loss {loss:.4f}  lr {lr:.2e}  {tok_s:,.0f} tok/s  "
                f"ETA {format_duration(eta)}")
        if self.tty:
            self.line.show(text)
        elif (step + 1) % self.log_interval == 0 or step + 1 == self.total:
            self.line.print(text)

    def message(self, text):
        if not self.quiet:
            self.line.print(text)


# ---------------------------------------------------------------------- checkpoints


def save_checkpoint(path, model, optimizer, step, cfg, tokenizer, batch_gen, best_val, data_fingerprint,
                    batch_states=None, metrics=None):
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
        tokenizer = tokenizer_from_dict(ck.get("tokenizer") or {})
    except (ValueError, TypeError, KeyError) as e:
        raise bad(f"its tokenizer cannot be read ({e})") from None
    if tokenizer.vocab_size > config.vocab_size:
        raise bad(f"its tokenizer has {tokenizer.vocab_size} tokens but the model only {config.vocab_size}")
    return config, tokenizer


def _fingerprint(ids):
    return f"{len(ids)}:{int(np.sum(ids[:10000] * np.arange(1, min(len(ids), 10000) + 1)))}"


def _plot(metrics_path, png_path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    rows = [json.loads(line) for line in open(metrics_path)]
    if not rows:
        return False
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot([r["step"] for r in rows], [r["train_loss"] for r in rows], label="train")
    ax.plot([r["step"] for r in rows], [r["val_loss"] for r in rows], label="validation")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats/token)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(png_path, dpi=100)
    plt.close(fig)
    return True


# ---------------------------------------------------------------------- train


def train(cfg=None, stream=None, quiet=False, **overrides):
    """Train a GPT on text; returns a dict of results (best/final validation loss, tokens/s, paths).

    The steps, each a function below: set up (data, model, optimizer and schedule, or all of them resumed
    from the run's checkpoint), then per step the training step and its progress line, every
    ``eval_interval`` steps evaluation and checkpoints, and at the end the plot and the summary.

    >>> train(TrainConfig(preset="tiny", max_steps=200, out="runs/demo"))
    """
    cfg = cfg or TrainConfig()
    for k, v in overrides.items():
        setattr(cfg, k, v)
    cfg.resolved()
    run = _set_up(cfg, stream, quiet)
    for step in range(run.start_step, run.end_step):
        lr, loss = _train_step(run, step)
        run.report(step, loss, lr)
        done = step + 1
        if done % cfg.eval_interval == 0 or done == cfg.max_steps:
            _evaluate_and_checkpoint(run, done, lr)
    return _finish(run)


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
    tok_s: float = 0.0

    def __post_init__(self):
        self.ckpt_path, self.best_path, self.metrics_path = _run_files(self.cfg.out)
        self.end_step = self.cfg.max_steps if self.cfg.stop_at is None else min(self.cfg.stop_at, self.cfg.max_steps)
        self.tokens_per_step = self.cfg.batch_size * self.cfg.block_size * self.world
        self.t_start = self.t_window = time.perf_counter()
        self.tok_window = 0

    def report(self, step, loss, lr):
        """Fold a step's loss into the running average, measure tokens/s over >= 1 s windows, draw the line."""
        self.train_loss_ema = loss if self.train_loss_ema is None else 0.9 * self.train_loss_ema + 0.1 * loss
        self.tok_window += self.tokens_per_step
        now = time.perf_counter()
        if now - self.t_window >= 1.0 or step + 1 == self.cfg.max_steps:
            self.tok_s = self.tok_window / (now - self.t_window)
            self.t_window, self.tok_window = now, 0
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
    tokenizer, train_ids, val_ids, fingerprint = _load_data(cfg, resume_ck)
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

    prog = Progress(cfg.max_steps, cfg.log_interval, stream, quiet or rank != 0)
    prog.message(f"pyengine train: {model.num_parameters():,} parameters, vocab {tokenizer.vocab_size}, "
                 f"{len(train_ids):,} train / {len(val_ids):,} val tokens, preset {cfg.preset}, "
                 f"steps {start_step}..{cfg.max_steps}, batch {cfg.batch_size} x {cfg.block_size}"
                 + (f" on each of {world} ranks" if world > 1 else ""))
    model.train()
    return _Run(cfg, rank, world, tokenizer, train_ids, val_ids, fingerprint, model, net, optimizer, scheduler,
                batch_gen, start_step, best_val, prog)


def _restore_metrics(metrics_path, ck):
    """Make metrics.jsonl end at the checkpoint's step: rows of later steps (written after this checkpoint by
    a run that then died) go, and the checkpoint's own row comes back if a crash lost it."""
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
    if isinstance(ck.get("metrics"), dict) and (not rows or rows[-1]["step"] < step):
        rows.append(ck["metrics"])
    tmp = metrics_path + ".tmp"
    with open(tmp, "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)
    os.replace(tmp, metrics_path)


def _load_data(cfg, resume_ck):
    """(tokenizer, train ids, validation ids, fingerprint of the text); the checkpoint's tokenizer on resume."""
    text = load_text(cfg.data, cfg.max_corpus_bytes)
    tokenizer = (tokenizer_from_dict(resume_ck["tokenizer"]) if resume_ck is not None
                 else make_tokenizer(cfg.tokenizer, text))
    ids = tokenizer.encode(text, errors="ignore")
    train_ids, val_ids = train_val_split(ids, cfg.val_fraction)
    if len(val_ids) <= cfg.block_size + 1 or len(train_ids) <= cfg.block_size + 1:
        raise ValueError(f"the text ({len(ids)} tokens) is too short for block_size {cfg.block_size} "
                         f"with a {cfg.val_fraction:.0%} validation split")
    return tokenizer, train_ids, val_ids, _fingerprint(ids)


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
    """Validation and training loss after step ``done``; rank 0 appends them to metrics.jsonl and writes the
    checkpoint (and best.safetensors when the validation loss improved)."""
    cfg, rank, world = run.cfg, run.rank, run.world
    val = estimate_loss(run.model, run.val_ids, cfg.block_size, cfg.batch_size, cfg.eval_iters, cfg.seed + 7,
                        rank, world)
    trn = estimate_loss(run.model, run.train_ids, cfg.block_size, cfg.batch_size, cfg.eval_iters, cfg.seed + 8,
                        rank, world)
    improved = val < run.best_val
    run.best_val = min(run.best_val, val)
    run.last = {"step": done, "train_loss": trn, "val_loss": val, "lr": lr, "tokens_per_s": run.tok_s,
                "elapsed_s": time.perf_counter() - run.t_start}
    states = None
    if world > 1:
        from . import distributed as dist
        states = dist.all_gather_object(run.batch_gen.get_state())
    if rank == 0:
        # the last checkpoint first, then the best, then the metrics row: a crash anywhere loses nothing and
        # repeats nothing, since the checkpoint carries its row (a resumed run restores metrics.jsonl from it)
        paths = [run.ckpt_path] + ([run.best_path] if improved else [])
        for path in paths:
            save_checkpoint(path, run.model, run.optimizer, done, cfg, run.tokenizer, run.batch_gen, run.best_val,
                            run.fingerprint, states, metrics=run.last)
        with open(run.metrics_path, "a") as f:
            f.write(json.dumps(run.last) + "\n")
    run.prog.message(f"step {done}: train loss {trn:.4f}, val loss {val:.4f}" + (" (best, saved)" if improved else ""))


def _finish(run):
    """The loss plot (rank 0) and the run's summary."""
    cfg = run.cfg
    elapsed = time.perf_counter() - run.t_start
    steps_run = run.end_step - run.start_step
    plotted = (_plot(run.metrics_path, os.path.join(cfg.out, "loss.png"))
               if run.rank == 0 and os.path.exists(run.metrics_path) else False)
    result = {"best_val_loss": run.best_val, "final": run.last, "steps": steps_run, "elapsed_s": elapsed,
              "tokens_per_s": steps_run * run.tokens_per_step / elapsed if elapsed > 0 else 0.0,
              "checkpoint": run.ckpt_path, "best_checkpoint": run.best_path, "metrics": run.metrics_path,
              "plot": os.path.join(cfg.out, "loss.png") if plotted else None}
    run.prog.message(f"done: {steps_run} steps in {format_duration(elapsed)}, {result['tokens_per_s']:,.0f} tok/s; "
                     f"best val loss {run.best_val:.4f}; checkpoints in {cfg.out}")
    return result


# ---------------------------------------------------------------------- evaluate / sample


@no_grad()
def evaluate(checkpoint, data=None, max_windows=200, batch_size=16):
    """Loss (nats/token) and perplexity on held-out text, in non-overlapping windows of block_size, in order
    (deterministic): the validation split when ``data`` is the training text (recognised by its fingerprint;
    None for the default corpus), else all of ``data``."""
    model, tok, ck = load_checkpoint(checkpoint)
    train_args = ck.get("train") if isinstance(ck.get("train"), dict) else {}
    if data is None and train_args.get("data") is not None:
        # never open a path that a file someone handed us names: the caller says what to read
        raise ValueError(f"evaluate: {checkpoint} was trained on {train_args['data']!r}; pass that text (or other "
                         "held-out text) as data= / --data (paths stored in a checkpoint are not opened)")
    max_bytes = train_args.get("max_corpus_bytes")
    val_fraction = train_args.get("val_fraction", 0.1)
    if not isinstance(max_bytes, (int, type(None))) or not isinstance(val_fraction, float) \
            or not 0.0 < val_fraction < 1.0:
        raise ValueError(f"evaluate: {checkpoint} has a corrupt training record")
    ids = tok.encode(load_text(data, max_bytes), errors="ignore")
    if _fingerprint(ids) == ck.get("data_fingerprint"):
        ids = train_val_split(ids, val_fraction)[1]  # the training text: its held-out part, as training saw it
    T = model.config.block_size
    n = (len(ids) - 1) // T
    if n < 1:
        raise ValueError(f"evaluate: the held-out text ({len(ids)} tokens) is shorter than one window ({T + 1})")
    n = min(n, max_windows)
    starts = np.arange(n) * T
    total, count = 0.0, 0
    for i in range(0, n, batch_size):
        s = starts[i:i + batch_size]
        x = ids[s[:, None] + np.arange(T)]
        y = ids[s[:, None] + np.arange(T) + 1]
        _, loss = model(tensor(x), tensor(y))
        total += loss.item() * x.size
        count += x.size
    loss = total / count
    return {"loss": loss, "perplexity": math.exp(loss), "tokens": int(count)}


def sample(checkpoint, prompt="", max_new_tokens=200, temperature=0.8, top_k=None, top_p=None, seed=None,
           use_cache=True, model=None, tokenizer=None):
    """Generate text after ``prompt``; returns (completion text, tokens/s)."""
    if model is None:
        model, tokenizer, _ = load_checkpoint(checkpoint)
    ids = tokenizer.encode(prompt, errors="ignore") if prompt else np.zeros(0, np.int64)
    if ids.size == 0:
        ids = np.zeros(1, np.int64)  # start from token 0 (the first character of the vocabulary)
    t0 = time.perf_counter()
    out = model.generate(ids[None, :], max_new_tokens, temperature=temperature, top_k=top_k, top_p=top_p,
                         seed=seed, use_cache=use_cache)
    dt = time.perf_counter() - t0
    new = out.numpy()[0, ids.size:]
    return tokenizer.decode(new), (max_new_tokens / dt if dt > 0 else 0.0)


# ---------------------------------------------------------------------- feedback -> finetune


def read_feedback(path, min_rating=4):
    """Texts to learn from: prompt + corrected text when a correction was given, else prompt + completion
    for records rated >= min_rating. Returns (texts, counts)."""
    texts, used, skipped = [], 0, 0
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
            prompt = r.get("prompt", "")
            if r.get("corrected"):
                texts.append(prompt + r["corrected"])
                used += 1
            elif isinstance(r.get("rating"), (int, float)) and r["rating"] >= min_rating:
                texts.append(prompt + r.get("completion", ""))
                used += 1
            else:
                skipped += 1
    return texts, {"used": used, "skipped": skipped}


def finetune(checkpoint, feedback, out=None, steps=100, lr=3e-4, batch_size=8, min_rating=4, seed=0,
             stream=None, quiet=False):
    """Continue training on well-rated and corrected samples; report validation loss before and after.

    Validation: the original validation split (to see nothing was forgotten) and the feedback texts.
    """
    model, tok, ck = load_checkpoint(checkpoint)
    texts, counts = read_feedback(feedback, min_rating)
    if not texts:
        raise ValueError(f"finetune: no usable feedback in {feedback} (need rating >= {min_rating} or a correction)")
    fb_ids = tok.encode("\n".join(texts) + "\n", errors="ignore")
    T = model.config.block_size
    if len(fb_ids) <= T + 1:  # short feedback: repeat it so that windows fit
        fb_ids = np.tile(fb_ids, (T + 2) // max(len(fb_ids), 1) + 1)
    train_args = ck.get("train", {})
    text = load_text(train_args.get("data"), train_args.get("max_corpus_bytes"))
    val_ids = train_val_split(tok.encode(text, errors="ignore"), train_args.get("val_fraction", 0.1))[1]
    bs = batch_size
    before = {"val_loss": estimate_loss(model, val_ids, T, bs, 20, seed + 7),
              "feedback_loss": estimate_loss(model, fb_ids, T, bs, 10, seed + 9)}
    default_generator.manual_seed(seed)
    optimizer = make_optimizer(model, lr, 0.0)
    g = Generator().manual_seed(seed + 1)
    model.train()
    prog = Progress(steps, max(1, steps // 10), stream, quiet)
    for step in range(steps):
        x, y = get_batch(fb_ids, T, bs, g)
        _, loss = model(tensor(x), tensor(y))
        optimizer.zero_grad()
        loss.backward()
        clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        prog.update(step, loss.item(), 0.0, lr)
    model.eval()
    after = {"val_loss": estimate_loss(model, val_ids, T, bs, 20, seed + 7),
             "feedback_loss": estimate_loss(model, fb_ids, T, bs, 10, seed + 9)}
    out = out or os.path.join(os.path.dirname(os.path.abspath(checkpoint)), "finetuned.safetensors")
    cfg = TrainConfig(**{k: v for k, v in train_args.items() if k in TrainConfig.__dataclass_fields__})
    save_checkpoint(out, model, optimizer, int(ck.get("step", 0)) + steps, cfg, tok, None,
                    after["val_loss"], ck.get("data_fingerprint"))
    result = {"before": before, "after": after, "feedback": counts, "checkpoint": out, "steps": steps}
    prog.message(f"finetune on {counts['used']} feedback samples ({counts['skipped']} skipped), {steps} steps: "
                 f"feedback loss {before['feedback_loss']:.4f} -> {after['feedback_loss']:.4f}, "
                 f"validation loss {before['val_loss']:.4f} -> {after['val_loss']:.4f}; wrote {out}")
    return result
