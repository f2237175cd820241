"""The ``pyengine`` command: train, eval, sample, serve and finetune a GPT language model.

    pyengine train [--data PATH] [--preset tiny|small|medium] [--steps N] [--out DIR] [--resume]
    pyengine eval --checkpoint C [--data PATH]
    pyengine sample --checkpoint C --prompt "..." [--max-new-tokens N --temperature T --top-k K --seed S]
    pyengine serve --checkpoint C [--host 127.0.0.1] [--port 8000]
    pyengine finetune --checkpoint C --feedback FILE [--steps N] [--out PATH]
"""
import argparse
import json
import sys


def _add_train(sub):
    p = sub.add_parser("train", help="train a GPT on text (default: an embedded corpus every machine has)")
    p.add_argument("--data", help="text file or folder of text files (default: Python standard library sources)")
    p.add_argument("--preset", default="small", help="model/schedule preset: tiny, small (default: nanoGPT's CPU "
                   "shakespeare-char configuration, 4 layers x 128, 2000 steps), medium")
    p.add_argument("--steps", type=int, dest="max_steps", help="training steps (default: the preset's)")
    p.add_argument("--out", default="runs/lm", help="run directory for checkpoints and metrics (default runs/lm)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/ckpt.safetensors")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--block-size", type=int)
    p.add_argument("--n-layer", type=int)
    p.add_argument("--n-head", type=int)
    p.add_argument("--n-embd", type=int)
    p.add_argument("--dropout", type=float, default=0.0)
    p.add_argument("--lr", type=float, help="peak learning rate (cosine-decayed after warmup)")
    p.add_argument("--warmup", type=int, help="linear warmup steps")
    p.add_argument("--eval-interval", type=int)
    p.add_argument("--eval-iters", type=int)
    p.add_argument("--tokenizer", choices=["char", "byte"], default="char")
    p.add_argument("--seed", type=int, default=1337)
    p.add_argument("--threads", type=int, help="kernel threads (default: all cores)")


def main(argv=None):
    ap = argparse.ArgumentParser(prog="pyengine", description="Train, evaluate, sample, serve and finetune "
                                 "GPT language models with pyengine.")
    sub = ap.add_subparsers(dest="command", required=True)
    _add_train(sub)
    p = sub.add_parser("eval", help="loss and perplexity of a checkpoint on held-out text")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--data", help="held-out text (default: the checkpoint's validation split)")
    p = sub.add_parser("sample", help="generate text from a checkpoint")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--prompt", default="")
    p.add_argument("--max-new-tokens", type=int, default=200)
    p.add_argument("--temperature", type=float, default=0.8)
    p.add_argument("--top-k", type=int)
    p.add_argument("--top-p", type=float)
    p.add_argument("--seed", type=int)
    p.add_argument("--no-cache", action="store_true", help="recompute the whole context for every token")
    p = sub.add_parser("serve", help="HTTP service: POST /v1/generate, POST /v1/feedback, GET /health")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--host", default="127.0.0.1", help="bind address (default: loopback only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--feedback-file", default=None, help="JSON-lines file for feedback (default: next to the "
                   "checkpoint)")
    p = sub.add_parser("finetune", help="continue training on well-rated / corrected feedback")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--feedback", required=True, help="JSON-lines feedback file written by `pyengine serve`")
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--min-rating", type=float, default=4)
    p.add_argument("--out", help="where the new checkpoint goes (default: finetuned.safetensors beside it)")
    args = ap.parse_args(argv)

    from . import lm
    try:
        if args.command == "train":
            if args.threads:
                from . import set_num_threads
                set_num_threads(args.threads)
            cfg = lm.TrainConfig(data=args.data, preset=args.preset, out=args.out, resume=args.resume,
                                 max_steps=args.max_steps, batch_size=args.batch_size, block_size=args.block_size,
                                 n_layer=args.n_layer, n_head=args.n_head, n_embd=args.n_embd, dropout=args.dropout,
                                 lr=args.lr, warmup=args.warmup, eval_interval=args.eval_interval, eval_iters=args.eval_iters,
                                 tokenizer=args.tokenizer, seed=args.seed)
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
            run(args.checkpoint, host=args.host, port=args.port, feedback_file=args.feedback_file)
        elif args.command == "finetune":
            r = lm.finetune(args.checkpoint, args.feedback, out=args.out, steps=args.steps, lr=args.lr,
                            min_rating=args.min_rating)
            print(json.dumps({k: r[k] for k in ("before", "after", "feedback", "checkpoint")}))
    except (FileNotFoundError, ValueError) as e:
        print(f"pyengine {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\npyengine {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
