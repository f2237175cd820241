"""Regressions of the reliability review (issue 12): each test failed, or crashed the process, before
its fix. Cases that could take the interpreter down run in a subprocess."""
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import pyengine as pe


def run_isolated(code, timeout=120):
    """Run ``code`` in a fresh interpreter; return (returncode, stdout + stderr)."""
    r = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                       timeout=timeout)
    return r.returncode, r.stdout + r.stderr


# ---------------------------------------------------------------------- 1. matmul with an empty batch


@pytest.mark.parametrize("sa,sb,expected", [((3, 2), (0, 2, 4), (0, 3, 4)), ((0, 3, 2), (2, 4), (0, 3, 4)),
                                            ((1, 3, 2), (0, 2, 4), (0, 3, 4)), ((2, 0, 3, 2), (2, 4), (2, 0, 3, 4))])
def test_matmul_empty_batch(sa, sb, expected):
    a = pe.ones(*sa, requires_grad=True)
    b = pe.ones(*sb, requires_grad=True)
    y = pe.matmul(a, b)
    assert tuple(y.shape) == expected == np.matmul(np.ones(sa), np.ones(sb)).shape
    y.sum().backward()
    assert a.grad.shape == a.shape and b.grad.shape == b.shape
    assert (a.grad.numpy() == 0).all() and (b.grad.numpy() == 0).all()


def test_matmul_empty_batch_huge_rows_reads_nothing():
    """(1, 2**20) @ (0, 2**20, 1) used to read 4 MiB past a 1-byte buffer."""
    y = pe.ones(1, 2 ** 20) @ pe.ones(0, 2 ** 20, 1)
    assert tuple(y.shape) == (0, 1, 1)


# ---------------------------------------------------------------------- 2. indices re-read without the GIL


def test_indices_changed_by_another_thread_cannot_crash():
    """A second thread rewrites the index array (shared through from_numpy) while embedding and
    cross-entropy run without the GIL: the kernels read a private copy that was range-checked, so each
    call either works on one consistent set of indices or raises IndexError; the process lives."""
    rc, out = run_isolated("""
        import threading
        import numpy as np
        from pyengine.backend import cpu
        V, C, N = 50, 256, 100_000
        rng = np.random.default_rng(0)
        w = rng.standard_normal((V, C)).astype(np.float32)
        logits = rng.standard_normal((N, 7)).astype(np.float32)
        idx = np.zeros(N, np.int64)
        stop = threading.Event()
        def flip():
            while not stop.is_set():
                idx.fill(1 << 40)
                idx.fill(3)
        t = threading.Thread(target=flip)
        t.start()
        try:
            for _ in range(25):
                for f in (lambda: cpu.embedding_forward(w, idx),
                          lambda: cpu.embedding_backward(np.ones((N, C), np.float32), idx, V),
                          lambda: cpu.cross_entropy_forward(logits, idx),
                          lambda: cpu.cross_entropy_backward(logits, idx, np.zeros(N, np.float32), 1.0)):
                    try:
                        f()
                    except IndexError:
                        pass
        finally:
            stop.set()
            t.join()
        print("alive")
    """)
    assert rc == 0 and "alive" in out, out


# ---------------------------------------------------------------------- 4. untrusted checkpoints


def _rewrite_header(path, edit):
    """Apply ``edit(header_dict)`` to a safetensors file's JSON header in place (same data section)."""
    import json
    import struct
    raw = open(path, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    edit(header)
    new = json.dumps(header).encode()
    new += b" " * ((8 - len(new) % 8) % 8)
    open(path, "wb").write(struct.pack("<Q", len(new)) + new + raw[8 + n:])


def test_relabelled_float_tensor_is_refused_by_load_state_dict(tmp_path):
    """A float32 weight whose header says int32 loads as int32 garbage; copying it into a float
    parameter used to succeed silently (copyto casting='unsafe')."""
    model = pe.nn.Linear(3, 2)
    path = tmp_path / "m.safetensors"
    pe.save(model.state_dict(), path)
    _rewrite_header(path, lambda h: h["weight"].update(dtype="I32"))
    state = pe.load(path)
    assert state["weight"].dtype == pe.int32
    with pytest.raises(RuntimeError, match="dtype mismatch for weight"):
        pe.nn.Linear(3, 2).load_state_dict(state)
    # float widths still convert, as PyTorch's load_state_dict does
    pe.nn.Linear(3, 2).load_state_dict({k: v.double() for k, v in model.state_dict().items()})


def test_deeply_nested_checkpoint_is_a_clear_error(tmp_path):
    path = tmp_path / "deep.safetensors"
    pe.save({"a": 1}, path)
    deep = "[" * 100_000 + "]" * 100_000

    def nest_structure(h):
        h["__metadata__"]["pyengine.structure"] = deep
    _rewrite_header(path, nest_structure)
    with pytest.raises(ValueError, match="corrupt"):
        pe.load(path)

    def nest_moderately(h):   # parses as JSON, but deeper than any saved object
        h["__metadata__"]["pyengine.structure"] = "[" * 500 + "]" * 500
    pe.save({"a": 1}, path)
    _rewrite_header(path, nest_moderately)
    with pytest.raises(ValueError, match="nesting deeper"):
        pe.load(path)
    # and a header that is itself deeply nested JSON
    import struct
    body = ("{\"x\": " + "[" * 100_000 + "]" * 100_000 + "}").encode()
    path.write_bytes(struct.pack("<Q", len(body)) + body)
    with pytest.raises(ValueError, match="not a pyengine checkpoint"):
        pe.load(path)


def _lm_checkpoint(tmp_path):
    from pyengine import lm
    from pyengine.models.gpt import GPT, GPTConfig
    from pyengine.text import CharTokenizer
    tok = CharTokenizer.fit("abcdefgh ")
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=8, n_layer=1, n_head=2, n_embd=8))
    path = tmp_path / "lm.safetensors"
    lm.save_checkpoint(path, model, None, 0, lm.TrainConfig(), tok, None, 1.0, "x")
    return path


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("n_layer", [1, 3])
def test_gpt_state_shapes_match_the_model(bias, n_layer):
    from pyengine.models.gpt import GPT, GPTConfig
    cfg = GPTConfig(vocab_size=13, block_size=7, n_layer=n_layer, n_head=3, n_embd=12, bias=bias)
    assert cfg.state_shapes() == {k: tuple(v.shape) for k, v in GPT(cfg).state_dict().items()}


@pytest.mark.parametrize("field,value,match", [
    ("vocab_size", 10 ** 9, "wte.weight has shape"),      # would allocate 32 GB before any check
    ("n_layer", 400, "do not match its config"),
    ("n_layer", "4", "integer"),
    ("n_embd", 6, "wte.weight has shape"),
    ("gelu", "relu", "gelu"),
    ("unknown", 1, "unknown fields"),
])
def test_crafted_lm_config_is_refused_before_allocating(tmp_path, field, value, match):
    import tracemalloc
    from pyengine import lm
    path = _lm_checkpoint(tmp_path)
    ck = pe.load(path)
    ck["config"][field] = value
    pe.save(ck, path)
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=match):
            lm.load_checkpoint(str(path))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20 * 2 ** 20, peak


def test_tokenizer_larger_than_the_vocabulary_is_refused(tmp_path):
    from pyengine import lm
    path = _lm_checkpoint(tmp_path)
    ck = pe.load(path)
    ck["tokenizer"]["chars"] = list("abcdefghijklmnopqrstuvwxyz ")
    pe.save(ck, path)
    with pytest.raises(ValueError, match="tokenizer has 27 tokens but the model only 9"):
        lm.load_checkpoint(str(path))


def test_relabelled_lm_weight_is_refused(tmp_path):
    from pyengine import lm
    path = _lm_checkpoint(tmp_path)
    _rewrite_header(path, lambda h: h["model.wte.weight"].update(dtype="I32"))
    with pytest.raises(ValueError, match="wte.weight has dtype"):
        lm.load_checkpoint(str(path))


# ---------------------------------------------------------------------- 5. crash leftovers, the command line


def test_save_killed_mid_write_leaves_the_old_checkpoint_and_no_leftover(tmp_path):
    """SIGKILL during pe.save: the previous checkpoint is intact, and the killed writer's temporary is
    removed by the next save (it used to stay beside the checkpoint forever)."""
    import signal
    import time
    path = tmp_path / "ckpt.safetensors"
    pe.save({"w": pe.ones(3), "step": 0}, path)
    writer = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import numpy as np, pyengine as pe
        big = {{"w": np.random.default_rng(0).standard_normal(30_000_000).astype(np.float32)}}
        while True:
            pe.save(big, {str(path)!r})
    """)])
    deadline = time.time() + 60
    while not any(p.name.endswith(".tmp") for p in tmp_path.iterdir()) and time.time() < deadline:
        time.sleep(0.01)
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    leftovers = [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert leftovers, "the writer was killed before it started a temporary file"
    ck = pe.load(path)  # whichever checkpoint was complete last: never a torn one
    assert set(ck) in ({"w", "step"}, {"w"})
    pe.save({"w": pe.ones(3), "step": 1}, path)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert pe.load(path)["step"] == 1


def test_a_live_writers_temporary_is_left_alone(tmp_path):
    import os
    path = tmp_path / "ckpt.safetensors"
    mine = tmp_path / f".ckpt.safetensors.{os.getppid()}.abcdef.tmp"   # the parent process is alive
    mine.write_bytes(b"partial")
    pe.save({"a": 1}, path)
    assert mine.exists()


def _lm_cfg(tmp_path, corpus, **kw):
    from pyengine import lm
    base = dict(data=str(corpus), preset="tiny", out=str(tmp_path / "run"), max_steps=30, batch_size=4,
                block_size=8, n_layer=1, n_head=2, n_embd=8, eval_interval=10, eval_iters=2, warmup=2)
    base.update(kw)
    return lm.TrainConfig(**base)


def test_resumed_metrics_neither_repeat_nor_lose_a_step(tmp_path):
    """The metrics row is written after the checkpoint it describes, and a resumed run makes
    metrics.jsonl end at the checkpoint's step: no row twice, none missing."""
    import json
    from pyengine import lm
    corpus = tmp_path / "c.txt"
    corpus.write_text("abcd efgh ijkl. " * 100)
    lm.train(_lm_cfg(tmp_path, corpus, stop_at=20), quiet=True)
    metrics = tmp_path / "run" / "metrics.jsonl"
    rows = metrics.read_text().splitlines()
    assert [json.loads(r)["step"] for r in rows] == [10, 20]
    # a crash after the step-20 checkpoint but before its row, and a torn row of a later evaluation
    metrics.write_text(rows[0] + "\n" + '{"step": 2')
    r = lm.train(_lm_cfg(tmp_path, corpus, resume=True), quiet=True)
    steps = [json.loads(line)["step"] for line in open(r["metrics"])]
    assert steps == [10, 20, 30]


def _cli(*args):
    r = subprocess.run([sys.executable, "-m", "pyengine", *args], capture_output=True, text=True, timeout=300)
    return r.returncode, r.stdout, r.stderr


@pytest.mark.parametrize("args,needle", [
    (["train", "--steps", "-3"], "--steps: must be >= 1"),
    (["train", "--eval-interval", "0"], "--eval-interval"),
    (["train", "--eval-iters", "0"], "--eval-iters"),
    (["train", "--batch-size", "0"], "--batch-size"),
    (["train", "--lr", "nan"], "--lr"),
    (["train", "--preset", "huge"], "invalid choice"),
    (["train", "--n-embd", "10", "--n-head", "4"], "divisible"),
    (["sample", "--checkpoint", "/nonexistent/c.safetensors"], "no such file"),
    (["sample", "--checkpoint", "x", "--top-p", "0"], "--top-p"),
    (["bogus"], "invalid choice"),
])
def test_cli_usage_errors_are_one_line_and_status_2(args, needle):
    rc, out, err = _cli(*args)
    assert rc == 2, (rc, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in err, err


@pytest.mark.parametrize("damage", ["garbage", "truncated", "not_lm", "bad_config"])
def test_cli_bad_checkpoint_is_one_line_and_status_1(tmp_path, damage):
    path = _lm_checkpoint(tmp_path)
    raw = path.read_bytes()
    if damage == "garbage":
        path.write_bytes(b"\x00" * 100)
    elif damage == "truncated":
        path.write_bytes(raw[: len(raw) // 2])
    elif damage == "not_lm":
        pe.save({"model": {}}, path)
    else:
        ck = pe.load(path)
        ck["config"]["n_head"] = 3
        pe.save(ck, path)
    for command in (["sample", "--checkpoint", str(path), "--max-new-tokens", "2"],
                    ["eval", "--checkpoint", str(path)]):
        rc, out, err = _cli(*command)
        lines = err.strip().splitlines()
        assert rc == 1 and len(lines) == 1 and "error" in lines[0] and "Traceback" not in err, (rc, err)
