"""The ``pyengine`` command: train, eval, sample, serve and finetune a GPT language model.

    pyengine train [--data PATH] [--preset tiny|small|medium] [--steps N] [--out DIR] [--resume]
                   [--config FILE] [key=value ...]
    pyengine eval [--checkpoint C] [--data PATH]
    pyengine sample [--checkpoint C] --prompt "..." [--max-new-tokens N --temperature T --top-k K --seed S]
    pyengine serve [--checkpoint C] [--host 127.0.0.1] [--port 8000] [--model-name NAME] [--max-concurrent N]
                   [--max-queue N] [--request-timeout S] [--api-key KEY]
    pyengine finetune [--checkpoint C] [--feedback FILE] [--steps N] [--max-val-regression X] [--force]
    pyengine export [--checkpoint C] --out DIR [--format safetensors|onnx] [--seq-len T]

``--checkpoint`` defaults to the best checkpoint of the last run, ``runs/lm/best.safetensors``. Every
option's help says its default (``pyengine train --help``). Every training setting (``lm.TrainConfig``) is a
flag, and can also come from ``--config FILE`` (``key = value`` lines, ``#`` comments, or a JSON object) and
from ``key=value`` words after the options, as nanoGPT's configurator: the preset, then the file, then the
flags, then the ``key=value`` words, each overriding what came before.

Errors are one line on stderr, ``pyengine <command>: error: <what is wrong>``, and the exit status says
whose they are: 2 for a bad command line (an argument out of range, a file that is not there), 1 for a
failure while working (a corrupt checkpoint, a diverging run, no memory), 130 when interrupted, and 3 when
``finetune`` refused its own result (the validation loss rose beyond ``--max-val-regression``).
"""
import argparse
import ast
import dataclasses
import json
import math
import os
import sys

DEFAULT_RUN = os.path.join("runs", "lm")
DEFAULT_CHECKPOINT = os.path.join(DEFAULT_RUN, "best.safetensors")
EXIT_NOT_KEPT = 3


class _Parser(argparse.ArgumentParser):
    """argparse, with its usage errors as one line (and exit status 2)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class _Formatter(argparse.HelpFormatter):
    """Help that states every option's default: ``(default: X)`` appended unless the help already says it."""

    def _get_help_string(self, action):
        text = action.help or ""
        if not action.option_strings or "default" in text or action.default is argparse.SUPPRESS:
            return text
        if action.default is None:
            return text + " (default: none)"
        if action.default is False:
            return text + " (default: off)"
        return text + " (default: %(default)s)"


def _number(kind, low=None, high=None, low_open=False):
    """An argparse type: a finite ``kind`` within [low, high] (or (low, high] with ``low_open``)."""
    def parse(text):
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, "
                                             f"got {text!r}") from None
        if kind is float and not math.isfinite(v):
            raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
        if low is not None and (v <= low if low_open else v < low):
            raise argparse.ArgumentTypeError(f"must be {'>' if low_open else '>='} {low}, got {text}")
        if high is not None and v > high:
            raise argparse.ArgumentTypeError(f"must be <= {high}, got {text}")
        return v
    return parse


_positive = _number(int, 1)
_count = _number(int, 0)
_fraction = _number(float, 0.0, 1.0)


def _preset_default(lm, key):
    return "default: the preset's (" + ", ".join(f"{name} {p[key]:g}" for name, p in lm.PRESETS.items()) + ")"


# The training flags: (flag, TrainConfig field, argparse keywords, help). Defaults come from TrainConfig and
# the presets; a flag not given leaves the field to the config file and the preset (argparse.SUPPRESS).
def _train_flags(lm):
    d = lm.TrainConfig()
    preset = lambda key: _preset_default(lm, key)  # noqa: E731
    return [
        ("--data", "data", {}, "text file or folder of text files, any size: tokenized once into a cached token "
         "file (default: about 1 MB of Python standard library sources, which every machine has)"),
        ("--preset", "preset", {"choices": list(lm.PRESETS)}, "model and schedule preset: tiny (2 x 64, 500 steps), "
         "small (nanoGPT's CPU shakespeare-char configuration: 4 layers x 128, 2000 steps), medium (6 x 384) "
         "(default: small)"),
        ("--steps", "max_steps", {"type": _positive}, "training steps; " + preset("max_steps")),
        ("--out", "out", {}, f"run directory for checkpoints, metrics.jsonl and loss.png (default: {d.out})"),
        ("--resume", "resume", {"action": "store_true"}, "continue from OUT/ckpt.safetensors with the same data "
         "order and random state (default: off, start afresh)"),
        ("--batch-size", "batch_size", {"type": _positive}, "windows per step; " + preset("batch_size")),
        ("--block-size", "block_size", {"type": _positive}, "context length in tokens; " + preset("block_size")),
        ("--n-layer", "n_layer", {"type": _positive}, "transformer blocks; " + preset("n_layer")),
        ("--n-head", "n_head", {"type": _positive}, "attention heads; " + preset("n_head")),
        ("--n-embd", "n_embd", {"type": _positive}, "embedding width; " + preset("n_embd")),
        ("--dropout", "dropout", {"type": _number(float, 0.0, 0.99)}, f"dropout probability (default: {d.dropout})"),
        ("--bias", "bias", {"action": argparse.BooleanOptionalAction}, "biases in Linear and LayerNorm layers "
         f"(default: {'--bias' if d.bias else '--no-bias'})"),
        ("--gelu", "gelu", {"choices": ["tanh", "none"]}, "GELU form in the MLP: tanh (GPT-2) or none (exact) "
         f"(default: {d.gelu})"),
        ("--lr", "lr", {"type": _number(float, 0.0, low_open=True)}, "peak learning rate, after linear warm-up, "
         "then cosine decay; " + preset("lr")),
        ("--min-lr-ratio", "min_lr_ratio", {"type": _fraction}, "the cosine decays to lr x this (nanoGPT's "
         f"min_lr = lr / 10) (default: {d.min_lr_ratio})"),
        ("--warmup", "warmup", {"type": _count}, "linear warm-up steps; " + preset("warmup")),
        ("--weight-decay", "weight_decay", {"type": _number(float, 0.0)}, "AdamW weight decay on matrices and "
         f"embeddings (none on biases and LayerNorm) (default: {d.weight_decay})"),
        ("--grad-clip", "grad_clip", {"type": _number(float, 0.0)}, "clip the global gradient norm to this; 0 "
         f"turns clipping off (default: {d.grad_clip})"),
        ("--eval-interval", "eval_interval", {"type": _positive}, "evaluate and checkpoint every N steps; "
         + preset("eval_interval")),
        ("--eval-iters", "eval_iters", {"type": _positive}, "batches per loss estimate (eval_iters x batch_size "
         "windows spread evenly over the split); " + preset("eval_iters")),
        ("--eval-at-start", "eval_at_start", {"action": argparse.BooleanOptionalAction}, "evaluate the untrained "
         f"model as step 0, where the loss curves start (default: {'on' if d.eval_at_start else 'off'})"),
        ("--val-fraction", "val_fraction", {"type": _number(float, 0.0, 0.5, low_open=True)}, "the last fraction "
         f"of the text held out for validation (default: {d.val_fraction})"),
        ("--tokenizer", "tokenizer", {"choices": ["char", "byte", "bpe"]}, "char: one token per character; byte: "
         "UTF-8 bytes; bpe: byte-level BPE trained on the corpus, for word-level text "
         f"(default: {d.tokenizer})"),
        ("--vocab-size", "vocab_size", {"type": _number(int, 256, 1 << 20)}, "bpe vocabulary: 256 bytes + "
         "merges (default: 512)"),
        ("--cache-dir", "cache_dir", {}, "where token files are kept (default: $PYENGINE_CACHE_DIR or "
         "~/.cache/pyengine/tokens)"),
        ("--max-corpus-bytes", "max_corpus_bytes", {"type": _positive}, "train on the first N characters only "
         "(default: all of the text)"),
        ("--seed", "seed", {"type": _count}, f"seed of initialisation, batches and dropout (default: {d.seed})"),
        ("--log-interval", "log_interval", {"type": _positive}, "progress line every N steps when the output "
         f"is not a terminal (default: {d.log_interval})"),
        ("--profile", "profile", {"type": _count}, "profile N training steps after a 3-step warm-up: write a "
         "Chrome trace (Perfetto, chrome://tracing) to OUT/profile_trace.json and print the ops that took the "
         "time (default: 0, off)"),
        ("--stop-at", "stop_at", {"type": _positive}, "stop after this step, as if interrupted (the schedule "
         "still ends at --steps; continue with --resume) (default: run to the end)"),
        ("--dtype", "dtype", {"choices": ["fp32", "bf16"]}, "bf16: run each step's forward under autocast(\"cpu\", "
         "bfloat16): matmuls and linear layers in bfloat16 on the CPU's bfloat16 units (AMX / AVX512-BF16), "
         "float32 weights, gradients and optimizer state; evaluations stay float32 "
         f"(default: {d.dtype})"),
    ]


def _add_train(sub, lm):
    p = sub.add_parser("train", help="train a GPT on text (default: an embedded corpus every machine has)",
                       formatter_class=_Formatter, description="Train a GPT language model. Settings come from "
                       "the preset, then --config FILE, then the flags, then key=value words (TrainConfig field "
                       "names, e.g. lr=3e-4 max_steps=500), each overriding what came before.")
    for flag, dest, kw, text in _train_flags(lm):
        p.add_argument(flag, dest=dest, default=argparse.SUPPRESS, help=text, **kw)
    p.add_argument("--config", help="file of settings: `key = value` lines (# comments) or a JSON object, "
                   "keys as TrainConfig's fields (default: none)")
    p.add_argument("--threads", type=_positive, help="kernel threads (default: all cores)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="settings by TrainConfig field name, "
                   "applied last (default: none)")
    return p


def _checkpoint_arg(p):
    p.add_argument("--checkpoint", default=DEFAULT_CHECKPOINT, help="a checkpoint written by train or finetune "
                   f"(default: {DEFAULT_CHECKPOINT}, the best of the last `pyengine train`)")


def _parse_value(text):
    """A key=value word's value: a Python literal (3, 3e-4, None, 'x', True) or true/false, else the string."""
    low = text.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    try:
        return ast.literal_eval(text.strip())
    except (ValueError, SyntaxError):
        return text.strip()


def _read_config(path):
    """{key: value} of a --config file: a JSON object, or `key = value` lines with # comments."""
    with open(path) as f:
        text = f.read()
    if text.lstrip().startswith("{"):
        try:
            cfg = json.loads(text)
        except ValueError as e:
            raise ValueError(f"--config {path}: not valid JSON ({e})") from None
        if not isinstance(cfg, dict):
            raise ValueError(f"--config {path}: a JSON config is an object of settings")
        return cfg
    cfg = {}
    for n, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        if "=" not in line:
            raise ValueError(f"--config {path}, line {n}: expected `key = value`, got {line!r}")
        key, value = line.split("=", 1)
        cfg[key.strip()] = _parse_value(value)
    return cfg


def _train_config(lm, args):
    """The TrainConfig of ``pyengine train``: defaults, --config, flags, key=value words; checked (ValueError)."""
    fields = {f.name for f in dataclasses.fields(lm.TrainConfig)} - {"extra"}
    settings = {}

    def put(key, value, where):
        key = key.strip().replace("-", "_")
        key = "max_steps" if key == "steps" else key
        if key not in fields:
            raise ValueError(f"{where}: unknown setting {key!r}; settings are {', '.join(sorted(fields))}")
        settings[key] = value

    if args.config:
        for k, v in _read_config(args.config).items():
            put(k, v, f"--config {args.config}")
    for _, dest, _, _ in _train_flags(lm):
        if hasattr(args, dest):
            settings[dest] = getattr(args, dest)
    for word in args.overrides:
        if "=" not in word:
            raise ValueError(f"expected key=value, got {word!r}")
        k, v = word.split("=", 1)
        put(k, _parse_value(v), "key=value")
    settings.setdefault("preset", "small")
    if settings.get("data") is not None and not os.path.exists(settings["data"]):
        raise ValueError(f"data: no such file or directory: {settings['data']!r}")
    cfg = lm.TrainConfig(**settings)
    cfg.resolved()  # the combination of settings, checked before any work starts
    return cfg


def main(argv=None):
    """Run the command; returns its exit status (0, 1, 2, 3 or 130; see the module docstring)."""
    try:
        args, lm, cfg = _parse(argv)
    except SystemExit as e:  # argparse's usage errors and --help: already printed
        return e.code
    return _run(args, lm, cfg)


def build_parser(lm=None):
    """(the ``pyengine`` argument parser, its subparsers action: ``.choices`` maps command -> parser)."""
    from . import __version__
    if lm is None:
        from . import lm
    ap = _Parser(prog="pyengine", formatter_class=_Formatter,
                 description="Train, evaluate, sample, serve and finetune GPT language models with pyengine. "
                 "`pyengine COMMAND --help` lists a command's options and their defaults.")
    ap.add_argument("--version", action="version", version=f"pyengine {__version__}")
    sub = ap.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _add_train(sub, lm)
    p = sub.add_parser("eval", help="loss and perplexity of a checkpoint on held-out text", formatter_class=_Formatter,
                       description="Loss and perplexity of a checkpoint. On its training text (recognised by "
                       "content hash) the validation split is measured with training's own estimate, the same "
                       "windows, so the number equals the validation loss training logged for the checkpoint.")
    _checkpoint_arg(p)
    p.add_argument("--data", help="held-out text; the training text gives its validation split (default: the "
                   "default corpus; needed when the model was trained on other text: paths stored in a "
                   "checkpoint are not opened)")
    p.add_argument("--max-windows", type=_positive, help="windows of block_size tokens, spread evenly (default: "
                   "training's eval_iters x batch_size)")
    p = sub.add_parser("sample", help="generate text from a checkpoint", formatter_class=_Formatter)
    _checkpoint_arg(p)
    p.add_argument("--prompt", default="", help="text to continue (default: empty, start from a line break)")
    p.add_argument("--max-new-tokens", type=_positive, default=200, help="tokens to generate")
    p.add_argument("--temperature", type=_number(float, 0.0), default=0.8, help="sampling temperature; 0 is greedy")
    p.add_argument("--top-k", type=_positive, help="sample among the k most likely tokens (default: all)")
    p.add_argument("--top-p", type=_number(float, 0.0, 1.0, low_open=True), help="nucleus sampling: the "
                   "smallest set of tokens with this much probability (default: off)")
    p.add_argument("--seed", type=_count, help="seed for reproducible samples (default: random)")
    p.add_argument("--no-cache", action="store_true", help="recompute the whole context for every token "
                   "instead of using the KV cache")
    p = sub.add_parser("serve", help="HTTP service: OpenAI-compatible /v1/completions, /v1/chat/completions, "
                       "/v1/models; /v1/generate, /v1/feedback, /health", formatter_class=_Formatter)
    _checkpoint_arg(p)
    p.add_argument("--host", default="127.0.0.1", help="bind address (default: loopback only)")
    p.add_argument("--port", type=_number(int, 0, 65535), default=8000, help="TCP port")
    p.add_argument("--feedback-file", default=None, help="JSON-lines file for feedback (default: next to the "
                   "checkpoint)")
    p.add_argument("--model-name", help="the model id clients name in OpenAI requests (default: the "
                   "checkpoint's file or folder name)")
    p.add_argument("--max-concurrent", type=_positive, default=4, help="generations running at once, taking "
                   "turns token by token (default: %(default)s)")
    p.add_argument("--max-queue", type=_count, default=16, help="requests waiting for a slot; more get 503 "
                   "(default: %(default)s)")
    p.add_argument("--api-key", default=os.environ.get("PYENGINE_API_KEY"), help="require 'Authorization: "
                   "Bearer KEY' on every route but /health (default: $PYENGINE_API_KEY, else none: anyone who can "
                   "reach the port may use it)")
    p.add_argument("--request-timeout", type=_number(float, 0.0, low_open=True), default=60.0,
                   help="seconds a request may take, waiting included: 503 while waiting, 504 while generating "
                   "(default: %(default)s)")
    p = sub.add_parser("export", help="write a checkpoint's model for deployment: weights-only safetensors + "
                       "config.json in Hugging Face's layout, or ONNX", formatter_class=_Formatter)
    _checkpoint_arg(p)
    p.add_argument("--out", required=True, help="output folder (created)")
    p.add_argument("--format", choices=["safetensors", "onnx"], default="safetensors",
                   help="safetensors: model.safetensors + config.json + pyengine_tokenizer.json (what serve and "
                   "sample load); onnx: model.onnx beside the same config and tokenizer (needs the onnx extra) "
                   "(default: %(default)s)")
    p.add_argument("--seq-len", type=_positive, help="ONNX only: a fixed sequence length (default: any length "
                   "up to the block size)")
    p = sub.add_parser("finetune", help="learn from feedback, mixed with replay of the training text; keep the "
                       "result only if validation loss held", formatter_class=_Formatter,
                       description="Continue training on corrected and well-rated feedback, mixed with replay "
                       "windows of the original training text, at a small learning rate. Measures the original "
                       "validation loss and the held-out feedback loss before and after, and writes the new "
                       "checkpoint only if the validation loss rose by at most --max-val-regression (exit "
                       "status 3 when it did not; --force writes it anyway).")
    _checkpoint_arg(p)
    p.add_argument("--feedback", help="JSON-lines feedback file written by `pyengine serve` (default: "
                   "feedback.jsonl next to the checkpoint)")
    p.add_argument("--data", help="the original training text, for replay and validation (default: the path "
                   "the checkpoint records, used only if its content hash matches)")
    p.add_argument("--steps", type=_positive, default=60, help="finetuning steps")
    p.add_argument("--lr", type=_number(float, 0.0, low_open=True), default=1e-4, help="peak learning rate "
                   "(short warm-up, cosine decay)")
    p.add_argument("--batch-size", type=_positive, help="rows per step (default: the checkpoint's training batch)")
    p.add_argument("--feedback-fraction", type=_fraction, default=0.25, help="share of each batch that is "
                   "feedback; the rest is replay of the training text")
    p.add_argument("--holdout-fraction", type=_number(float, 0.0, 0.9), default=0.25, help="share of the "
                   "feedback held out to measure generalisation (at least one sample when there are two)")
    p.add_argument("--min-rating", type=_number(float, 1.0, 5.0), default=4, help="learn from completions "
                   "rated at least this (corrections are always used)")
    p.add_argument("--max-val-regression", type=_number(float, 0.0), default=0.02, help="keep the result only "
                   "if the original validation loss rose by at most this many nats/token")
    p.add_argument("--force", action="store_true", help="write the result even if validation regressed more")
    p.add_argument("--seed", type=_count, default=0, help="seed of the batch order and the held-out choice")
    p.add_argument("--out", help="where the new checkpoint goes (default: finetuned.safetensors beside it)")
    return ap, sub


def _parse(argv):
    """(args, the lm module, the train config or None) once the command line is known to be good."""
    from . import lm
    ap, sub = build_parser(lm)
    args = ap.parse_args(argv)
    sub_parser = sub.choices[args.command]
    if args.command == "finetune" and args.feedback is None:
        args.feedback = os.path.join(os.path.dirname(args.checkpoint), "feedback.jsonl")
        if os.path.exists(args.checkpoint) and not os.path.exists(args.feedback):
            sub_parser.error(f"no feedback at {args.feedback} (the default: what `pyengine serve` records from "
                             "POST /v1/feedback next to the checkpoint); pass --feedback FILE")
    if getattr(args, "checkpoint", None) is not None and not os.path.exists(args.checkpoint):
        if args.checkpoint == DEFAULT_CHECKPOINT:
            sub_parser.error(f"no checkpoint at {DEFAULT_CHECKPOINT} (the default: the best checkpoint of the "
                             "last `pyengine train` run here); train one first or pass --checkpoint PATH")
        sub_parser.error(f"argument --checkpoint: no such file or directory: {args.checkpoint!r}")
    for name in ("feedback", "data", "config"):
        path = getattr(args, name, None)
        if path is not None and not os.path.exists(path):
            sub_parser.error(f"argument --{name}: no such file or directory: {path!r}")

    cfg = None
    if args.command == "train":
        try:
            cfg = _train_config(lm, args)
        except (ValueError, TypeError, OSError) as e:
            sub_parser.error(str(e))
    return args, lm, cfg


def _run(args, lm, cfg):
    try:
        if args.command == "train":
            if args.threads:
                from . import set_num_threads
                set_num_threads(args.threads)
            lm.train(cfg)
        elif args.command == "eval":
            r = lm.evaluate(args.checkpoint, args.data, max_windows=args.max_windows)
            print(json.dumps(r))
            if r["split"].startswith("validation split"):
                print(f"pyengine eval: {r['split']}, {r['windows']:,} windows: the estimate training logs as val "
                      "loss, so the same number for the same checkpoint", file=sys.stderr)
        elif args.command == "sample":
            text, tok_s = lm.sample(args.checkpoint, args.prompt, args.max_new_tokens, args.temperature,
                                    args.top_k, args.top_p, args.seed, use_cache=not args.no_cache)
            print(args.prompt + text)
            print(f"[{tok_s:,.0f} tokens/s]", file=sys.stderr)
        elif args.command == "serve":
            from .serve import run
            run(args.checkpoint, host=args.host, port=args.port, feedback_file=args.feedback_file,
                model_name=args.model_name, max_concurrent=args.max_concurrent, max_queue=args.max_queue,
                request_timeout=args.request_timeout, api_key=args.api_key or None)
        elif args.command == "export":
            from . import export
            paths = export.export_command(args.checkpoint, args.out, args.format, args.seq_len)
            print(json.dumps(paths))
        elif args.command == "finetune":
            r = lm.finetune(args.checkpoint, args.feedback, out=args.out, steps=args.steps, lr=args.lr,
                            batch_size=args.batch_size, feedback_fraction=args.feedback_fraction,
                            holdout_fraction=args.holdout_fraction, min_rating=args.min_rating,
                            max_val_regression=args.max_val_regression, force=args.force, data=args.data,
                            seed=args.seed, stream=sys.stderr)
            print(json.dumps({k: r[k] for k in ("before", "after", "val_regression", "max_val_regression", "kept",
                                                "feedback", "checkpoint")}))
            if not r["kept"]:
                return EXIT_NOT_KEPT
    except KeyboardInterrupt:
        print(f"\npyengine {args.command}: interrupted", file=sys.stderr)
        return 130
    except MemoryError:
        print(f"pyengine {args.command}: error: out of memory", file=sys.stderr)
        return 1
    except Exception as e:  # noqa: BLE001 - the command's last word: one line, never a traceback
        if os.environ.get("PYENGINE_TRACEBACK"):
            raise
        what = str(e) or type(e).__name__
        if not isinstance(e, (ValueError, OSError, FloatingPointError)):
            what = f"{type(e).__name__}: {what}"
        print(f"pyengine {args.command}: error: {what.splitlines()[0]}"
              " (PYENGINE_TRACEBACK=1 shows where)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
