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


@pytest.fixture
def corpus(tmp_path):
    p = tmp_path / "corpus.txt"
    p.write_text(TEXT)
    return p


def test_training_lowers_the_loss_and_writes_a_run(tmp_path, corpus):
    r = lm.train(_cfg(tmp_path, corpus), quiet=True)
    rows = [json.loads(line) for line in open(r["metrics"])]
    assert [row["step"] for row in rows] == [20, 40]
    assert np.log(27) - 1.0 > r["best_val_loss"]  # well below the uniform-guess loss over the vocabulary
    assert os.path.exists(r["checkpoint"]) and os.path.exists(r["best_checkpoint"])
    model, tok, ck = lm.load_checkpoint(r["best_checkpoint"])
    assert ck["step"] in (20, 40) and tok.decode(tok.encode("fox")) == "fox"
    ev = lm.evaluate(r["best_checkpoint"])
    assert ev["loss"] < np.log(tok.vocab_size) and ev["perplexity"] == pytest.approx(np.exp(ev["loss"]))


def test_resume_equals_uninterrupted(tmp_path, corpus):
    full = lm.train(_cfg(tmp_path, corpus, out=str(tmp_path / "full")), quiet=True)
    part = _cfg(tmp_path, corpus, out=str(tmp_path / "part"), stop_at=20)  # "interrupted" after step 20
    lm.train(part, quiet=True)
    resumed = lm.train(_cfg(tmp_path, corpus, out=str(tmp_path / "part"), resume=True), quiet=True)
    a = pe.load(full["checkpoint"])["model"]
    b = pe.load(resumed["checkpoint"])["model"]
    for k in a:
        np.testing.assert_array_equal(a[k].numpy(), b[k].numpy(), err_msg=k)
    assert resumed["final"]["val_loss"] == full["final"]["val_loss"]


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


def test_finetune_on_feedback(tmp_path, corpus):
    r = lm.train(_cfg(tmp_path, corpus, max_steps=20), quiet=True)
    fb = tmp_path / "feedback.jsonl"
    with open(fb, "w") as f:
        f.write(json.dumps({"prompt": "the ", "completion": "lazy dog", "rating": 5}) + "\n")
        f.write(json.dumps({"prompt": "pack ", "completion": "zzz", "rating": 1, "corrected": "my box"}) + "\n")
        f.write(json.dumps({"prompt": "x", "completion": "bad", "rating": 1}) + "\n")
    out = lm.finetune(r["checkpoint"], str(fb), steps=15, lr=3e-3, quiet=True)
    assert out["feedback"] == {"used": 2, "skipped": 1}
    assert out["after"]["feedback_loss"] < out["before"]["feedback_loss"]
    assert os.path.exists(out["checkpoint"])
    lm.load_checkpoint(out["checkpoint"])


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
    rc = cli_main(["eval", "--checkpoint", os.path.join(out, "best.safetensors")])
    assert rc == 0 and "perplexity" in json.loads(capsys.readouterr().out)
    assert cli_main(["eval", "--checkpoint", str(tmp_path / "missing.safetensors")]) == 2


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


def test_split_merge_heads_gradients():
    """The fused head split/merge Functions of the GPT: forward as the reshape/transpose they replace,
    gradients equal to central finite differences (float64), also when only some outputs are used."""
    from pyengine.models.gpt import MergeHeads, SplitHeads
    rng = np.random.default_rng(0)
    qkv = pe.tensor(rng.standard_normal((2, 5, 12)), dtype=pe.float64, requires_grad=True)
    q, k, v = SplitHeads.apply(qkv, 2)
    ref = qkv.detach().numpy().reshape(2, 5, 3, 2, 2).transpose(2, 0, 3, 1, 4)
    for got, want in zip((q, k, v), ref):
        np.testing.assert_array_equal(got.detach().numpy(), want)
    w = rng.standard_normal((2, 2, 5, 2))
    loss = (MergeHeads.apply(q * pe.tensor(w)) * pe.tensor(rng.standard_normal((2, 5, 4)))).sum() + (v * v).sum()
    loss.backward()

    def f(a):
        qq, kk, vv = a.reshape(2, 5, 3, 2, 2).transpose(2, 0, 3, 1, 4)
        g = np.random.default_rng(0)
        g.standard_normal((2, 5, 12)); g.standard_normal((2, 2, 5, 2))  # noqa: E702  (same draws as above)
        m = (qq * w).transpose(0, 2, 1, 3).reshape(2, 5, 4)
        return np.sum(m * g.standard_normal((2, 5, 4))) + np.sum(vv * vv)

    a = qkv.detach().numpy().copy()
    num = np.zeros_like(a)
    for i in np.ndindex(a.shape):
        a[i] += 1e-6
        fp = f(a)
        a[i] -= 2e-6
        fm = f(a)
        a[i] += 1e-6
        num[i] = (fp - fm) / 2e-6
    np.testing.assert_allclose(qkv.grad.numpy(), num, rtol=1e-6, atol=1e-7)
