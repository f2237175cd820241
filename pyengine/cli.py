"""The ``pyengine`` command: train, eval, sample, serve and finetune a GPT language model.

    pyengine train [--data PATH] [--preset tiny|small|medium] [--steps N] [--out DIR] [--resume]
    pyengine eval --checkpoint C [--data PATH]
    pyengine sample --checkpoint C --prompt "..." [--max-new-tokens N --temperature T --top-k K --seed S]
    pyengine serve --checkpoint C [--host 127.0.0.1] [--port 8000] [--model-name NAME] [--max-concurrent N]
                   [--max-queue N] [--request-timeout S] [--api-key KEY]
    pyengine finetune --checkpoint C --feedback FILE [--steps N] [--out PATH]
    pyengine export --checkpoint C --out DIR [--format safetensors|onnx] [--seq-len T]

Errors are one line on stderr, ``pyengine <command>: error: <what is wrong>``, and the exit status says
whose they are: 2 for a bad command line (an argument out of range, a file that is not there), 1 for a
failure while working (a corrupt checkpoint, a diverging run, no memory), 130 when interrupted.
"""
import argparse
import json
import math
import os
import sys


class _Parser(argparse.ArgumentParser):
    """argparse, with its usage errors as one line (and exit status 2)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


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


def _add_train(sub):
    p = sub.add_parser("train", help="train a GPT on text (default: an embedded corpus every machine has)")
    p.add_argument("--data", help="text file or folder of text files (default: Python standard library sources)")
    p.add_argument("--preset", default="small", choices=["tiny", "small", "medium"],
                   help="model/schedule preset: tiny, small (default: nanoGPT's CPU shakespeare-char "
                   "configuration, 4 layers x 128, 2000 steps), medium")
    p.add_argument("--steps", type=_positive, dest="max_steps", help="training steps (default: the preset's)")
    p.add_argument("--out", default="runs/lm", help="run directory for checkpoints and metrics (default runs/lm)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/ckpt.safetensors")
    p.add_argument("--batch-size", type=_positive)
    p.add_argument("--block-size", type=_positive)
    p.add_argument("--n-layer", type=_positive)
    p.add_argument("--n-head", type=_positive)
    p.add_argument("--n-embd", type=_positive)
    p.add_argument("--dropout", type=_number(float, 0.0, 0.99), default=0.0)
    p.add_argument("--lr", type=_number(float, 0.0, low_open=True), help="peak learning rate (cosine-decayed "
                   "after warmup)")
    p.add_argument("--warmup", type=_count, help="linear warmup steps")
    p.add_argument("--eval-interval", type=_positive)
    p.add_argument("--eval-iters", type=_positive)
    p.add_argument("--tokenizer", choices=["char", "byte"], default="char")
    p.add_argument("--seed", type=_count, default=1337)
    p.add_argument("--threads", type=_positive, help="kernel threads (default: all cores)")


def _checkpoint_arg(p):
    p.add_argument("--checkpoint", required=True)


def main(argv=None):
    """Run the command; returns its exit status (0, 1, 2 or 130; see the module docstring)."""
    try:
        args, lm, cfg = _parse(argv)
    except SystemExit as e:  # argparse's usage errors and --help: already printed
        return e.code
    return _run(args, lm, cfg)


def _parse(argv):
    """(args, the lm module, the train config or None) once the command line is known to be good."""
    ap = _Parser(prog="pyengine", description="Train, evaluate, sample, serve and finetune "
                 "GPT language models with pyengine.")
    sub = ap.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _add_train(sub)
    p = sub.add_parser("eval", help="loss and perplexity of a checkpoint on held-out text")
    _checkpoint_arg(p)
    p.add_argument("--data", help="held-out text; the training text gives its validation split (needed unless "
                   "the model was trained on the default corpus: paths stored in a checkpoint are not opened)")
    p = sub.add_parser("sample", help="generate text from a checkpoint")
    _checkpoint_arg(p)
    p.add_argument("--prompt", default="")
    p.add_argument("--max-new-tokens", type=_positive, default=200)
    p.add_argument("--temperature", type=_number(float, 0.0), default=0.8)
    p.add_argument("--top-k", type=_positive)
    p.add_argument("--top-p", type=_number(float, 0.0, 1.0, low_open=True))
    p.add_argument("--seed", type=_count)
    p.add_argument("--no-cache", action="store_true", help="recompute the whole context for every token")
    p = sub.add_parser("serve", help="HTTP service: OpenAI-compatible /v1/completions, /v1/chat/completions, "
                       "/v1/models; /v1/generate, /v1/feedback, /health")
    _checkpoint_arg(p)
    p.add_argument("--host", default="127.0.0.1", help="bind address (default: loopback only)")
    p.add_argument("--port", type=_number(int, 0, 65535), default=8000)
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
                       "config.json in Hugging Face's layout, or ONNX")
    _checkpoint_arg(p)
    p.add_argument("--out", required=True, help="output folder (created)")
    p.add_argument("--format", choices=["safetensors", "onnx"], default="safetensors",
                   help="safetensors: model.safetensors + config.json + pyengine_tokenizer.json (what serve and "
                   "sample load); onnx: model.onnx beside the same config and tokenizer (needs the onnx extra) "
                   "(default: %(default)s)")
    p.add_argument("--seq-len", type=_positive, help="ONNX only: a fixed sequence length (default: any length "
                   "up to the block size)")
    p = sub.add_parser("finetune", help="continue training on well-rated / corrected feedback")
    _checkpoint_arg(p)
    p.add_argument("--feedback", required=True, help="JSON-lines feedback file written by `pyengine serve`")
    p.add_argument("--steps", type=_positive, default=100)
    p.add_argument("--lr", type=_number(float, 0.0, low_open=True), default=3e-4)
    p.add_argument("--min-rating", type=_number(float, 1.0, 5.0), default=4)
    p.add_argument("--out", help="where the new checkpoint goes (default: finetuned.safetensors beside it)")
    args = ap.parse_args(argv)
    sub_parser = sub.choices[args.command]
    for name in ("checkpoint", "feedback", "data"):
        path = getattr(args, name, None)
        if path is not None and not os.path.exists(path):
            sub_parser.error(f"argument --{name}: no such file or directory: {path!r}")

    from . import lm
    cfg = None
    if args.command == "train":
        cfg = lm.TrainConfig(data=args.data, preset=args.preset, out=args.out, resume=args.resume,
                             max_steps=args.max_steps, batch_size=args.batch_size, block_size=args.block_size,
                             n_layer=args.n_layer, n_head=args.n_head, n_embd=args.n_embd, dropout=args.dropout,
                             lr=args.lr, warmup=args.warmup, eval_interval=args.eval_interval,
                             eval_iters=args.eval_iters, tokenizer=args.tokenizer, seed=args.seed)
        try:
            cfg.resolved()  # the combination of settings, checked before any work starts
        except ValueError as e:
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
            r = lm.evaluate(args.checkpoint, args.data)
            print(json.dumps(r))
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
                            min_rating=args.min_rating)
            print(json.dumps({k: r[k] for k in ("before", "after", "feedback", "checkpoint")}))
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
