"""The language-model workflow: train, resume, evaluate, sample, finetune, and the command line."""
import json
import os

import numpy as np
import pytest

import pyengine as pe
from pyengine import lm
from pyengine.cli import main as cli_main
from pyengine.models.gpt import GPT, GPTConfig

TEXT = ("the quick brown fox jumps over the lazy dog. " * 40 + "pack my box with five dozen liquor jugs. " * 40)


def _cfg(tmp_path, data, **kw):
    base = dict(data=str(data), preset="tiny", out=str(tmp_path / "run"), max_steps=40, batch_size=8,
                block_size=16, n_layer=1, n_head=2, n_embd=16, eval_interval=20, eval_iters=4, lr=1e-2,
                warmup=5, log_interval=100)
    base.update(kw)
    return lm.TrainConfig(**base)


@pytest.fixture(autouse=True)
def _token_cache(tmp_path, monkeypatch):
    """Token files of these tests go to their own folder, not ~/.cache."""
    monkeypatch.setenv("PYENGINE_CACHE_DIR", str(tmp_path / "tokens"))


@pytest.fixture
def corpus(tmp_path):
    p = tmp_path / "corpus.txt"
    p.write_text(TEXT)
    return p


def test_training_lowers_the_loss_and_writes_a_run(tmp_path, corpus):
    r = lm.train(_cfg(tmp_path, corpus), quiet=True)
    rows = [json.loads(line) for line in open(r["metrics"])]
    evals = [row for row in rows if "val_loss" in row]
    assert [row["step"] for row in evals] == [0, 20, 40]  # step 0: the untrained model
    assert [row["step"] for row in rows if "val_loss" not in row] == list(range(1, 41))  # every step
    assert np.log(27) - 1.0 > r["best_val_loss"]  # well below the uniform-guess loss over the vocabulary
    assert evals[0]["val_loss"] > r["best_val_loss"] + 0.5
    assert os.path.exists(r["checkpoint"]) and os.path.exists(r["best_checkpoint"])
    model, tok, ck = lm.load_checkpoint(r["best_checkpoint"])
    assert ck["step"] in (20, 40) and tok.decode(tok.encode("fox")) == "fox"
    assert ck["data"]["path"] == os.path.abspath(corpus) and ck["data"]["chars"] == len(TEXT)
    ev = lm.evaluate(r["best_checkpoint"], data=str(corpus))
    assert ev["loss"] < np.log(tok.vocab_size) and ev["perplexity"] == pytest.approx(np.exp(ev["loss"]))
    # the training text is recognised: its validation split is evaluated with training's own estimate, so
    # `pyengine eval` repeats the validation loss that training recorded for this checkpoint
    assert ev["split"].startswith("validation split") and ev["windows"] == 4 * 8
    assert ev["loss"] == pytest.approx(ck["metrics"]["val_loss"], rel=1e-6)
    other = tmp_path / "other.txt"
    other.write_text("the lazy dog jumps over the quick brown fox. " * 30)
    ev2 = lm.evaluate(r["best_checkpoint"], data=str(other), max_windows=50)
    assert ev2["split"] == "all of the given text" and ev2["windows"] == 56  # rounded up to whole batches
    # the path the checkpoint records is never opened on its own: the caller names the text
    with pytest.raises(ValueError, match="pass that text"):
        lm.evaluate(r["best_checkpoint"])


@pytest.mark.parametrize("tokenizer", ["char", "bpe"])
def test_resume_equals_uninterrupted(tmp_path, corpus, tokenizer):
    kw = dict(tokenizer=tokenizer, vocab_size=280 if tokenizer == "bpe" else None)
    full = lm.train(_cfg(tmp_path, corpus, out=str(tmp_path / "full"), **kw), quiet=True)
    part = _cfg(tmp_path, corpus, out=str(tmp_path / "part"), stop_at=20, **kw)  # "interrupted" after step 20
    lm.train(part, quiet=True)
    resumed = lm.train(_cfg(tmp_path, corpus, out=str(tmp_path / "part"), resume=True, **kw), quiet=True)
    a = pe.load(full["checkpoint"])["model"]
    b = pe.load(resumed["checkpoint"])["model"]
    for k in a:
        np.testing.assert_array_equal(a[k].numpy(), b[k].numpy(), err_msg=k)
    assert resumed["final"]["val_loss"] == full["final"]["val_loss"]


def test_training_follows_the_warmup_cosine_schedule(tmp_path, corpus):
    """lm.train's learning rates are lr_scheduler.WarmupCosineLR's, exactly, whether resumed or not."""
    kw = dict(max_steps=12, warmup=4, eval_interval=1, eval_iters=1, min_lr_ratio=0.2)
    full = lm.train(_cfg(tmp_path, corpus, out=str(tmp_path / "a"), **kw), quiet=True)
    lm.train(_cfg(tmp_path, corpus, out=str(tmp_path / "b"), stop_at=5, **kw), quiet=True)
    resumed = lm.train(_cfg(tmp_path, corpus, out=str(tmp_path / "b"), resume=True, **kw), quiet=True)
    for r in (full, resumed):
        lrs = [json.loads(line)["lr"] for line in open(r["metrics"]) if "val_loss" not in line]
        assert lrs == [pe.optim.lr_scheduler.WarmupCosineLR.lr_at(s, 1e-2, 4, 12, 0.2) for s in range(12)]
    assert lrs[3] == 1e-2 and lrs[0] == 1e-2 / 4 and lrs[-1] > 1e-2 * 0.2


def test_generate_with_and_without_cache_identical():
    pe.manual_seed(0)
    m = GPT(GPTConfig(vocab_size=11, block_size=12, n_layer=2, n_head=2, n_embd=16))
    prompt = pe.tensor([[1, 2, 3]])
    a = m.generate(prompt, 20, temperature=1.0, top_k=5, seed=3)  # crosses block_size: the window slides
    b = m.generate(prompt, 20, temperature=1.0, top_k=5, seed=3, use_cache=False)
    assert a.tolist() == b.tolist() and a.shape == (1, 23)
    greedy = m.generate(prompt, 5, temperature=0)
    assert greedy.tolist() == m.generate(prompt, 5, temperature=0, use_cache=False).tolist()


def test_kv_cache_logits_match_full_forward():
    pe.manual_seed(1)
    m = GPT(GPTConfig(vocab_size=13, block_size=16, n_layer=2, n_head=4, n_embd=32)).eval()
    ids = np.random.default_rng(0).integers(0, 13, (2, 9))
    full, _ = m(pe.tensor(ids))
    from pyengine.models.gpt import KVCache
    cache = KVCache(2)
    first, _ = m(pe.tensor(ids[:, :5]), cache=cache)
    steps = [m(pe.tensor(ids[:, t:t + 1]), cache=cache)[0] for t in range(5, 9)]
    inc = np.concatenate([first.detach().numpy()] + [s.detach().numpy() for s in steps], axis=1)
    np.testing.assert_allclose(inc, full.detach().numpy(), rtol=1e-4, atol=1e-5)


def _feedback_file(tmp_path):
    fb = tmp_path / "feedback.jsonl"
    with open(fb, "w") as f:
        f.write(json.dumps({"prompt": "the ", "completion": "lazy dog", "rating": 5}) + "\n")
        f.write(json.dumps({"prompt": "pack ", "completion": "zzz", "rating": 1, "corrected": "my box"}) + "\n")
        f.write(json.dumps({"prompt": "the quick ", "completion": "brown fox", "rating": 4}) + "\n")
        f.write(json.dumps({"prompt": "five ", "completion": "??", "rating": 2, "corrected": "dozen liquor"}) + "\n")
        f.write(json.dumps({"prompt": "x", "completion": "bad", "rating": 1}) + "\n")
        f.write("not json\n")
    return fb


def test_finetune_mixes_replay_and_keeps_only_what_does_no_harm(tmp_path, corpus):
    r = lm.train(_cfg(tmp_path, corpus, max_steps=20), quiet=True)
    fb = _feedback_file(tmp_path)
    out = lm.finetune(r["checkpoint"], str(fb), steps=15, lr=3e-3, feedback_fraction=0.5, quiet=True,
                      max_val_regression=10.0)
    assert out["feedback"] == {"used": 4, "skipped": 2, "trained_on": 3, "held_out": 1}
    assert out["after"]["feedback_loss"] < out["before"]["feedback_loss"]
    assert out["before"]["heldout_feedback_loss"] is not None
    # the before/after validation loss is training's own estimate of the original validation split
    assert out["before"]["val_loss"] == pytest.approx(pe.load(r["checkpoint"])["metrics"]["val_loss"], rel=1e-6)
    assert out["kept"] and os.path.exists(out["checkpoint"])
    _, _, ck = lm.load_checkpoint(out["checkpoint"])
    assert ck["data_fingerprint"] == pe.load(r["checkpoint"])["data_fingerprint"]
    assert lm.evaluate(out["checkpoint"], data=str(corpus))["loss"] == pytest.approx(out["after"]["val_loss"], rel=1e-6)

    # a recipe that wrecks the model (feedback only, a huge learning rate) is refused: nothing is written
    harsh = dict(steps=20, lr=0.3, feedback_fraction=1.0, quiet=False, max_val_regression=0.02)
    target = tmp_path / "harsh.safetensors"
    lines = []
    stream = type("S", (), {"write": lambda self, t: lines.append(t), "flush": lambda self: None})()
    bad = lm.finetune(r["checkpoint"], str(fb), out=str(target), stream=stream, **harsh)
    assert not bad["kept"] and bad["checkpoint"] is None and not target.exists()
    assert bad["val_regression"] > 0.02
    assert "NOT KEPT" in "".join(lines)
    forced = lm.finetune(r["checkpoint"], str(fb), out=str(target), force=True, **dict(harsh, quiet=True))
    assert forced["kept"] and target.exists()


def test_finetune_replays_the_recorded_training_text_only(tmp_path, corpus):
    r = lm.train(_cfg(tmp_path, corpus, max_steps=10, eval_interval=10), quiet=True)
    fb = _feedback_file(tmp_path)
    other = tmp_path / "other.txt"
    other.write_text(TEXT.upper() * 2)
    with pytest.raises(ValueError, match="not the text"):
        lm.finetune(r["checkpoint"], str(fb), steps=2, data=str(other), quiet=True)
    corpus.rename(tmp_path / "moved.txt")
    with pytest.raises(FileNotFoundError, match="--data"):
        lm.finetune(r["checkpoint"], str(fb), steps=2, quiet=True)
    out = lm.finetune(r["checkpoint"], str(fb), steps=2, data=str(tmp_path / "moved.txt"), quiet=True)
    assert out["steps"] == 2


def test_cli_train_sample_eval(tmp_path, corpus, capsys):
    out = str(tmp_path / "cli")
    rc = cli_main(["train", "--data", str(corpus), "--steps", "10", "--out", out, "--n-layer", "1",
                   "--n-embd", "16", "--n-head", "2", "--block-size", "16", "--batch-size", "4",
                   "--eval-interval", "10", "--eval-iters", "2"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "step 10/10" in printed and "val loss" in printed
    rc = cli_main(["sample", "--checkpoint", os.path.join(out, "best.safetensors"), "--prompt", "the",
                   "--max-new-tokens", "12", "--seed", "1"])
    assert rc == 0
    text = capsys.readouterr().out.strip()
    assert text.startswith("the") and len(text) == 15
    rc = cli_main(["eval", "--checkpoint", os.path.join(out, "best.safetensors"), "--data", str(corpus)])
    assert rc == 0 and "perplexity" in json.loads(capsys.readouterr().out)
    assert cli_main(["eval", "--checkpoint", str(tmp_path / "missing.safetensors")]) == 2


TINY_FLAGS = ["--n-layer", "1", "--n-embd", "16", "--n-head", "2", "--block-size", "16", "--batch-size", "4",
              "--eval-iters", "2", "--preset", "tiny"]


def test_cli_help_states_every_option_and_its_default(capsys):
    from pyengine.cli import _Formatter, build_parser
    ap, sub = build_parser()
    fmt = _Formatter("pyengine")
    for name, parser in sub.choices.items():
        for action in parser._actions:
            if action.dest in ("help",):
                continue
            text = fmt._get_help_string(action)
            assert action.help and "default" in text, (name, action.option_strings)
    assert cli_main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"pyengine {pe.__version__}"
    assert cli_main(["train", "--help"]) == 0
    text = capsys.readouterr().out
    for flag in ("--weight-decay", "--grad-clip", "--min-lr-ratio", "--bias", "--no-bias", "--dropout",
                 "--val-fraction", "--tokenizer", "--vocab-size", "--config", "(default: 0.1)"):
        assert flag in text, flag


def test_cli_config_file_then_flags_then_key_value(tmp_path, corpus, capsys):
    from pyengine.cli import _parse
    conf = tmp_path / "run.cfg"
    conf.write_text("# my run\npreset = 'tiny'\nlr = 5e-3\nweight_decay = 0.0\ngrad_clip = 0.5\nbias = false\n"
                    f"data = {corpus}\n")
    _, _, cfg = _parse(["train", "--config", str(conf), "--lr", "4e-3", "grad_clip=0.25", "min_lr_ratio=0.05",
                        "--val-fraction", "0.2", "--dropout", "0.1"])
    assert (cfg.preset, cfg.lr, cfg.weight_decay, cfg.grad_clip, cfg.bias, cfg.data) == ("tiny", 4e-3, 0.0, 0.25,
                                                                                         False, str(corpus))
    assert (cfg.min_lr_ratio, cfg.val_fraction, cfg.dropout, cfg.n_layer) == (0.05, 0.2, 0.1, 2)
    json_conf = tmp_path / "run.json"
    json_conf.write_text(json.dumps({"preset": "medium", "steps": 7}))
    assert _parse(["train", "--config", str(json_conf)])[2].max_steps == 7
    assert _parse(["train", "--no-eval-at-start"])[2].eval_at_start is False
    assert _parse(["train", "eval_at_start=false", "bias=False"])[2].bias is False
    # every bad setting is a one-line usage error (status 2) before any work: nothing is created
    out = tmp_path / "never"
    for argv, needle in [(["--config", str(tmp_path / "nope.cfg")], "no such file"),
                         (["lr=-1"], "lr must be"), (["nonsense=3"], "unknown setting 'nonsense'"),
                         (["preset=huge"], "unknown preset"), (["--preset", "huge"], "invalid choice"),
                         (["max_steps=2.5"], "max_steps must be"), (["oops"], "expected key=value"),
                         (["--tokenizer", "bpe", "--vocab-size", "100"], "--vocab-size")]:
        assert cli_main(["train", "--out", str(out)] + argv) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and needle in err[0], (argv, err)
    assert not out.exists()


def test_cli_checkpoint_defaults_to_the_last_runs_best(tmp_path, corpus, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli_main(["sample", "--max-new-tokens", "3"]) == 2
    err = capsys.readouterr().err
    assert "no checkpoint at runs/lm/best.safetensors" in err and "pyengine train" in err
    assert cli_main(["train", "--data", str(corpus), "--steps", "4", "--eval-interval", "4"] + TINY_FLAGS) == 0
    printed = capsys.readouterr().out
    assert "characters ->" in printed and "train /" in printed and "validation" in printed  # the sizes
    assert os.path.exists("runs/lm/best.safetensors")
    assert cli_main(["sample", "--max-new-tokens", "3", "--seed", "0"]) == 0
    assert cli_main(["eval", "--data", str(corpus)]) == 0
    ev = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert ev["split"].startswith("validation split")
    assert cli_main(["finetune"]) == 2 and "no feedback at runs/lm/feedback.jsonl" in capsys.readouterr().err
    _feedback_file(tmp_path / "runs" / "lm")  # where `pyengine serve` records it
    assert cli_main(["finetune", "--steps", "2"]) == 0
    assert json.loads(capsys.readouterr().out)["checkpoint"].endswith("finetuned.safetensors")


def test_cli_finetune_says_whether_it_kept_the_result(tmp_path, corpus, capsys):
    out = str(tmp_path / "run")
    assert cli_main(["train", "--data", str(corpus), "--steps", "20", "--eval-interval", "20", "--lr", "1e-2",
                     "--out", out] + TINY_FLAGS) == 0
    fb = _feedback_file(tmp_path)
    ck = os.path.join(out, "best.safetensors")
    capsys.readouterr()
    rc = cli_main(["finetune", "--checkpoint", ck, "--feedback", str(fb), "--steps", "3"])
    cap = capsys.readouterr()
    assert rc == 0 and json.loads(cap.out)["kept"] and "kept: validation loss within tolerance" in cap.err
    rc = cli_main(["finetune", "--checkpoint", ck, "--feedback", str(fb), "--steps", "15", "--lr", "0.3",
                   "--feedback-fraction", "1", "--out", str(tmp_path / "bad.safetensors")])
    cap = capsys.readouterr()
    assert rc == 3 and not json.loads(cap.out)["kept"] and "NOT KEPT" in cap.err
    assert not (tmp_path / "bad.safetensors").exists()
    assert cli_main(["finetune", "--checkpoint", ck, "--feedback", str(fb), "--steps", "15", "--lr", "0.3",
                     "--feedback-fraction", "1", "--out", str(tmp_path / "bad.safetensors"), "--force"]) == 0
    assert (tmp_path / "bad.safetensors").exists()


def test_bpe_training_run_samples_and_evaluates(tmp_path, corpus):
    r = lm.train(_cfg(tmp_path, corpus, tokenizer="bpe", vocab_size=300, max_steps=10, eval_interval=10), quiet=True)
    model, tok, ck = lm.load_checkpoint(r["best_checkpoint"])
    assert tok.kind == "bpe" and tok.vocab_size <= 300 and model.config.vocab_size == tok.vocab_size
    assert ck["data"]["tokens"] < ck["data"]["chars"] / 2
    text, _ = lm.sample(r["best_checkpoint"], "the quick", 5, seed=0)
    assert isinstance(text, str)
    assert lm.evaluate(r["best_checkpoint"], data=str(corpus))["loss"] == pytest.approx(ck["metrics"]["val_loss"],
                                                                                        rel=1e-6)


def test_progress_shows_evaluating_and_never_a_zero_rate(tmp_path, corpus):
    class Terminal:
        def __init__(self):
            self.parts = []

        def write(self, t):
            self.parts.append(t)

        def flush(self):
            pass

        def isatty(self):
            return True
    term = Terminal()
    lm.train(_cfg(tmp_path, corpus, max_steps=6, eval_interval=3, log_interval=1), stream=term)
    text = "".join(term.parts)
    assert "evaluating (32 validation and training windows)" in text
    assert " 0 tok/s" not in text and "- tok/s" in text  # under 1 s of training: nothing measured yet
    rows = [json.loads(line) for line in open(tmp_path / "run" / "metrics.jsonl")]
    assert [r["step"] for r in rows] == [0, 1, 2, 3, 3, 4, 5, 6, 6]


def test_tokens_per_second_counts_training_time_only():
    from pyengine.utils.progress import RateMeter, format_rate
    m = RateMeter(window=1.0)
    m.add(1000, 0.4)
    assert m.rate is None and format_rate(m.rate) == "- tok/s"
    m.add(1000, 0.6)   # a 5 s evaluation between these steps is never added
    assert m.rate == pytest.approx(2000.0) and format_rate(m.rate) == "2,000 tok/s"
    m.add(500, 0.1, last=True)
    assert m.rate == pytest.approx(5000.0) and m.overall == pytest.approx(2500 / 1.1)


def test_plot_is_drawn_or_its_absence_explained(tmp_path, corpus):
    r = lm.train(_cfg(tmp_path, corpus, max_steps=4, eval_interval=2), quiet=True)
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert r["plot"] is None and "pip install 'pyengine[plot]'" in r["plot_note"]
    else:
        assert os.path.getsize(r["plot"]) > 1000 and r["plot_note"] == f"loss plot: {r['plot']}"


@pytest.mark.parametrize("bias,gelu", [(True, "tanh"), (False, "none")])
def test_decode_path_equals_autograd_forward(bias, gelu):
    """GPT.decode (backend kernels, no autograd) computes the same logits as forward() in eval mode."""
    pe.manual_seed(2)
    m = GPT(GPTConfig(vocab_size=17, block_size=16, n_layer=2, n_head=2, n_embd=16, bias=bias, gelu=gelu)).eval()
    ids = np.random.default_rng(1).integers(0, 17, (3, 10))
    full, _ = m(pe.tensor(ids))
    from pyengine.models.gpt import KVCache
    cache = KVCache(2)
    first = m.decode(ids[:, :6], cache)
    rest = [m.decode(ids[:, t:t + 1], cache) for t in range(6, 10)]
    np.testing.assert_allclose(np.concatenate([first] + rest, axis=1), full.detach().numpy(), rtol=1e-4, atol=1e-5)


def _packed_attention_numpy(a, H):
    """Causal self-attention on a packed (B, T, 3C) projection, written from scratch in NumPy (float64)."""
    B, T, C3 = a.shape
    hd = C3 // (3 * H)
    q, k, v = a.reshape(B, T, 3, H, hd).transpose(2, 0, 3, 1, 4)
    s = q @ k.transpose(0, 1, 3, 2) / np.sqrt(hd)
    s = np.where(np.tril(np.ones((T, T), bool)), s, -np.inf)
    p = np.exp(s - s.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    return (p @ v).transpose(0, 2, 1, 3).reshape(B, T, H * hd)


@pytest.mark.parametrize("backend", ["cpu", "reference"])
def test_packed_self_attention_gradients(backend):
    """The GPT's attention on its packed qkv (heads read and written in place by the kernel): forward equal
    to a plain NumPy attention, gradient equal to central finite differences (float64), odd sizes."""
    from pyengine.models.gpt import PackedSelfAttention
    rng = np.random.default_rng(0)
    B, T, H, hd = 2, 7, 3, 2
    a0 = rng.standard_normal((B, T, 3 * H * hd))
    w = rng.standard_normal((B, T, H * hd))
    pe.set_backend(backend)
    try:
        qkv = pe.tensor(a0, dtype=pe.float64, requires_grad=True)
        y = PackedSelfAttention.apply(qkv, H)
        np.testing.assert_allclose(y.detach().numpy(), _packed_attention_numpy(a0, H), rtol=1e-12, atol=1e-12)
        (y * pe.tensor(w)).sum().backward()
    finally:
        pe.set_backend("cpu")

    a = a0.copy()
    num = np.zeros_like(a)
    for i in np.ndindex(a.shape):
        a[i] += 1e-6
        fp = np.sum(_packed_attention_numpy(a, H) * w)
        a[i] -= 2e-6
        fm = np.sum(_packed_attention_numpy(a, H) * w)
        a[i] += 1e-6
        num[i] = (fp - fm) / 2e-6
    np.testing.assert_allclose(qkv.grad.numpy(), num, rtol=1e-6, atol=1e-8)


def test_gpt_attention_paths_agree():
    """The packed in-place path (training, no dropout) and the view + scaled_dot_product_attention path
    (taken with attention dropout or a KV cache) give the same output and gradients."""
    from pyengine.models.gpt import CausalSelfAttention
    rng = np.random.default_rng(1)
    pe.manual_seed(0)
    attn = CausalSelfAttention(GPTConfig(vocab_size=11, block_size=16, n_layer=1, n_head=4, n_embd=12))
    attn.to(pe.float64)
    x0 = rng.standard_normal((3, 9, 12))
    w = rng.standard_normal((3, 9, 12))
    results = []
    for dropout in (0.0, 1e-300):  # a positive dropout forces the other path; p ~ 0 keeps every value
        attn.dropout = dropout
        x = pe.tensor(x0, dtype=pe.float64, requires_grad=True)
        attn.zero_grad()
        y = attn(x)
        (y * pe.tensor(w)).sum().backward()
        results.append((y.detach().numpy(), x.grad.numpy(), attn.c_attn.weight.grad.numpy()))
    for got, want in zip(*results):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
