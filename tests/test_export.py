"""Deployment formats: `pyengine export` (weights-only safetensors + config.json in Hugging Face's GPT-2
layout, loaded back by serve/sample/eval) and ONNX (pyengine.onnx, run in onnxruntime)."""
import io
import json
import os

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import safetensors.numpy

import pyengine
import pyengine.onnx
from pyengine import cli, export, lm, nn
from pyengine.models.gpt import GPT, GPTConfig
from pyengine.optim import AdamW
from pyengine.text import CharTokenizer

TEXT = "to be or not to be, that is the question.\n"


def _model(seed=0, **kw):
    pyengine.manual_seed(seed)
    cfg = dict(vocab_size=CharTokenizer.fit(TEXT).vocab_size, block_size=16, n_layer=2, n_head=2, n_embd=12) | kw
    return GPT(GPTConfig(**cfg)).eval()


def _logits(model, idx):
    return model(idx)[0].detach().numpy()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A training checkpoint with optimizer moments, as `pyengine train` writes."""
    model, tok = _model(), CharTokenizer.fit(TEXT)
    model.train()
    opt = AdamW(model.parameters(), lr=1e-3)
    idx = tok.encode(TEXT)[None, :17]
    _, loss = model(idx[:, :-1], idx[:, 1:])
    loss.backward()
    opt.step()
    model.eval()
    path = str(tmp_path_factory.mktemp("ck") / "best.safetensors")
    lm.save_checkpoint(path, model, opt, 1, lm.TrainConfig(), tok, None, 1.0, "x")
    return path


@pytest.mark.parametrize("kw", [{}, {"bias": False}, {"gelu": "none"}, {"n_layer": 1, "n_head": 3, "n_embd": 9}])
def test_save_and_load_pretrained_round_trip(tmp_path, kw):
    model, tok = _model(**kw), CharTokenizer.fit(TEXT)
    paths = export.save_pretrained(model, tok, str(tmp_path / "m"), step=7)
    assert sorted(os.listdir(tmp_path / "m")) == ["config.json", "model.safetensors", "pyengine_tokenizer.json"]
    idx = np.random.default_rng(1).integers(0, tok.vocab_size, (3, 11))
    for where in (str(tmp_path / "m"), paths["weights"]):
        again, tok2, ck = lm.load_checkpoint(where)
        np.testing.assert_array_equal(_logits(again, idx), _logits(model, idx))
        assert again.config == model.config and tok2.to_dict() == tok.to_dict() and ck["step"] == 7


def test_hugging_face_gpt2_layout(tmp_path):
    model, tok = _model(), CharTokenizer.fit(TEXT)
    export.save_pretrained(model, tok, str(tmp_path))
    cfg = json.load(open(tmp_path / "config.json"))
    assert cfg["model_type"] == "gpt2" and cfg["architectures"] == ["GPT2LMHeadModel"]
    assert (cfg["n_embd"], cfg["n_layer"], cfg["n_head"], cfg["n_positions"], cfg["vocab_size"]) == \
        (12, 2, 2, 16, tok.vocab_size)
    assert cfg["activation_function"] == "gelu_new" and cfg["tie_word_embeddings"] is True
    tensors = safetensors.numpy.load_file(str(tmp_path / "model.safetensors"))
    assert "lm_head.weight" not in tensors  # tied: stored once
    # Conv1D orientation (in, out), and the packed q, k, v in GPT-2's order
    w = model.h[0].attn.c_attn.weight.detach().numpy()
    np.testing.assert_array_equal(tensors["transformer.h.0.attn.c_attn.weight"], w.T)
    assert tensors["transformer.h.1.mlp.c_fc.weight"].shape == (12, 48)
    with safetensors.safe_open(str(tmp_path / "model.safetensors"), "np") as f:
        assert f.metadata() == {"format": "pt"}


def test_the_gpt2_layout_matches_a_gpt2_written_in_torch(tmp_path):
    """GPT-2's forward (Hugging Face's arithmetic: Conv1D x @ W + b, gelu_new), written in torch from the exported
    tensors and config alone, gives pyengine's logits: the files mean what GPT-2 readers take them to mean."""
    torch = pytest.importorskip("torch")  # as every PyTorch comparison here: CI installs torch when it can
    model, tok = _model(3), CharTokenizer.fit(TEXT)
    export.save_pretrained(model, tok, str(tmp_path))
    cfg = json.load(open(tmp_path / "config.json"))
    t = {k: torch.tensor(v) for k, v in safetensors.numpy.load_file(str(tmp_path / "model.safetensors")).items()}
    idx = torch.tensor(np.random.default_rng(2).integers(0, tok.vocab_size, (2, 9)))
    C, H = cfg["n_embd"], cfg["n_head"]
    B, T = idx.shape
    ln = lambda x, p: torch.nn.functional.layer_norm(x, (C,), t[p + ".weight"], t[p + ".bias"],  # noqa: E731
                                                      cfg["layer_norm_epsilon"])
    x = t["transformer.wte.weight"][idx] + t["transformer.wpe.weight"][torch.arange(T)]
    for i in range(cfg["n_layer"]):
        p = f"transformer.h.{i}."
        qkv = ln(x, p + "ln_1") @ t[p + "attn.c_attn.weight"] + t[p + "attn.c_attn.bias"]
        q, k, v = (z.view(B, T, H, C // H).transpose(1, 2) for z in qkv.split(C, dim=2))
        y = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + y.transpose(1, 2).reshape(B, T, C) @ t[p + "attn.c_proj.weight"] + t[p + "attn.c_proj.bias"]
        h = torch.nn.functional.gelu(ln(x, p + "ln_2") @ t[p + "mlp.c_fc.weight"] + t[p + "mlp.c_fc.bias"],
                                     approximate="tanh")
        x = x + h @ t[p + "mlp.c_proj.weight"] + t[p + "mlp.c_proj.bias"]
    logits = ln(x, "transformer.ln_f") @ t["transformer.wte.weight"].T
    np.testing.assert_allclose(logits.numpy(), _logits(model, idx.numpy()), rtol=1e-5, atol=1e-5)


def test_export_command_is_weights_only_and_loads_everywhere(checkpoint, tmp_path, capsys):
    out = str(tmp_path / "export")
    assert cli.main(["export", "--checkpoint", checkpoint, "--out", out]) == 0
    paths = json.loads(capsys.readouterr().out)
    names = safetensors.numpy.load_file(paths["weights"]).keys()
    assert not [n for n in names if "optimizer" in n or "exp_avg" in n]
    assert os.path.getsize(paths["weights"]) < 0.5 * os.path.getsize(checkpoint)  # no Adam moments
    original, _, _ = lm.load_checkpoint(checkpoint)
    exported, _, _ = lm.load_checkpoint(out)
    idx = np.arange(10)[None] % 7
    np.testing.assert_array_equal(_logits(exported, idx), _logits(original, idx))
    for where in (checkpoint, out, paths["weights"]):
        assert cli.main(["sample", "--checkpoint", where, "--prompt", "to", "--max-new-tokens", "12",
                         "--seed", "3"]) == 0
    texts = [line for line in capsys.readouterr().out.splitlines() if line.startswith("to")]
    assert len(texts) == 3 and texts[0] == texts[1] == texts[2]
    assert cli.main(["eval", "--checkpoint", out, "--data", _corpus(tmp_path)]) == 0


def _corpus(tmp_path):
    p = tmp_path / "corpus.txt"
    p.write_text(TEXT * 40)
    return str(p)


def test_loading_a_damaged_export_says_what_is_wrong(tmp_path):
    model, tok = _model(bias=False), CharTokenizer.fit(TEXT)
    d = tmp_path / "m"
    export.save_pretrained(model, tok, str(d))
    cfg = json.load(open(d / "config.json"))
    tensors = safetensors.numpy.load_file(str(d / "model.safetensors"))

    def broken(config=None, weights=None):
        json.dump(config or cfg, open(d / "config.json", "w"))
        safetensors.numpy.save_file(weights or tensors, str(d / "model.safetensors"))
        with pytest.raises(ValueError) as e:
            lm.load_checkpoint(str(d))
        return str(e.value)

    assert "pyengine" in broken({k: v for k, v in cfg.items() if k != "pyengine"})
    bad = dict(cfg, pyengine=dict(cfg["pyengine"], gpt_config=dict(cfg["pyengine"]["gpt_config"], n_embd=16)))
    assert "shape" in broken(bad)
    assert "lacks" in broken(weights={k: v for k, v in tensors.items() if "ln_f" not in k})
    nonzero = dict(tensors, **{"transformer.ln_f.bias": np.ones_like(tensors["transformer.ln_f.bias"])})
    assert "not zero" in broken(weights=nonzero)
    bad = dict(cfg, pyengine=dict(cfg["pyengine"], tokenizer_file="../../etc/passwd"))
    assert "tokenizer_file" in broken(bad)


# ---------------------------------------------------------------------- ONNX


def _run_onnx(path_or_bytes, idx, name="input_ids"):
    sess = ort.InferenceSession(path_or_bytes, providers=["CPUExecutionProvider"])
    return sess.run(None, {name: np.asarray(idx, np.int64)})[0]


@pytest.mark.parametrize("kw", [{}, {"bias": False, "gelu": "none"}, {"n_layer": 3, "n_head": 3, "n_embd": 15}])
def test_onnx_gpt_matches_pyengine_in_onnxruntime(tmp_path, kw):
    model = _model(1, **kw)
    path = str(tmp_path / "gpt.onnx")
    pyengine.onnx.export_gpt(model, path)
    rng = np.random.default_rng(0)
    for B, T in ((1, 1), (2, 7), (3, 16)):  # any batch and length up to block_size, one graph
        idx = rng.integers(0, model.config.vocab_size, (B, T))
        np.testing.assert_allclose(_run_onnx(path, idx), _logits(model, idx), rtol=0, atol=1e-4)


def test_onnx_export_has_torch_onnx_export_signature(tmp_path):
    model = _model(2)
    idx = pyengine.tensor(np.arange(10, dtype=np.int64).reshape(2, 5) % model.config.vocab_size)
    buf = io.BytesIO()
    pyengine.onnx.export(model, (idx,), buf, input_names=["tokens"], output_names=["out"],
                         dynamic_axes={"tokens": {0: "batch", 1: "seq"}, "out": {0: "batch", 1: "seq"}},
                         opset_version=17)
    proto = onnx.load_from_string(buf.getvalue())
    dims = [d.dim_param or d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", "seq"] and proto.graph.output[0].name == "out"
    other = np.arange(12).reshape(3, 4) % model.config.vocab_size
    np.testing.assert_allclose(_run_onnx(buf.getvalue(), other, "tokens"), _logits(model, other), atol=1e-4)
    # without dynamic_axes the example's shape is fixed, as in torch.onnx.export
    fixed = str(tmp_path / "fixed.onnx")
    pyengine.onnx.export(model, idx, fixed)
    dims = [d.dim_value for d in onnx.load(fixed).graph.input[0].type.tensor_type.shape.dim]
    assert dims == [2, 5]
    np.testing.assert_allclose(_run_onnx(fixed, idx.numpy()), _logits(model, idx.numpy()), atol=1e-4)


def test_onnx_export_refuses_what_it_cannot_write(tmp_path):
    with pytest.raises(NotImplementedError, match=r"LSTM \(at '1.0'\) is not supported; supported: GPT"):
        pyengine.onnx.export(nn.Sequential(nn.Linear(3, 4), nn.Sequential(nn.LSTM(4, 4))), pyengine.randn(2, 3),
                             str(tmp_path / "x.onnx"))
    with pytest.raises(NotImplementedError, match="Softmax needs an explicit dim"):
        pyengine.onnx.export(nn.Softmax(), pyengine.randn(2, 3), str(tmp_path / "x.onnx"))
    assert not os.path.exists(tmp_path / "x.onnx")
    model = _model()
    idx = np.zeros((1, 4), np.int64)
    with pytest.raises(ValueError, match="opset_version"):
        pyengine.onnx.export(model, idx, str(tmp_path / "x.onnx"), opset_version=11)
    with pytest.raises(ValueError, match="dynamic"):
        pyengine.onnx.export(model, idx, str(tmp_path / "x.onnx"), dynamic_axes={"input_ids": [2]})
    with pytest.raises(ValueError, match="block_size"):
        pyengine.onnx.export_gpt(model, None, seq_len=17)
    with pytest.raises(TypeError, match="unsupported arguments"):
        pyengine.onnx.export(model, idx, str(tmp_path / "x.onnx"), dynamo=True)


def test_onnx_feed_forward_models_match_pyengine(tmp_path):
    pyengine.manual_seed(4)
    model = nn.Sequential(
        nn.Flatten(), nn.Linear(12, 7), nn.LayerNorm(7), nn.GELU(), nn.Dropout(0.3),
        nn.Sequential(nn.Linear(7, 5, bias=False), nn.Tanh(), nn.LeakyReLU(0.2), nn.SiLU(), nn.Identity()),
        nn.Linear(5, 3), nn.Sigmoid(), nn.ReLU(), nn.Linear(3, 4), nn.GELU(approximate="tanh"), nn.Softmax(dim=-1))
    path = str(tmp_path / "mlp.onnx")
    pyengine.onnx.export(model, (pyengine.randn(2, 3, 4),), path, dynamic_axes={"input": [0], "output": [0]})
    assert model.training  # the mode is left as it was
    model.eval()
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    for batch in (1, 2, 7):
        x = np.random.default_rng(batch).standard_normal((batch, 3, 4)).astype(np.float32)
        np.testing.assert_allclose(sess.run(None, {"input": x})[0], model(pyengine.tensor(x)).detach().numpy(),
                                   rtol=0, atol=1e-4)
    ln = nn.LayerNorm((3, 4))  # normalized over the last two axes
    with pyengine.no_grad():
        ln.weight.normal_()
        ln.bias.normal_()
    pyengine.onnx.export(ln, pyengine.randn(2, 3, 4), path)
    x = np.random.default_rng(0).standard_normal((2, 3, 4)).astype(np.float32)
    out = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    np.testing.assert_allclose(out, ln(pyengine.tensor(x)).detach().numpy(), atol=1e-4)


def test_export_command_onnx(checkpoint, tmp_path, capsys):
    out = str(tmp_path / "onnx")
    assert cli.main(["export", "--checkpoint", checkpoint, "--out", out, "--format", "onnx", "--seq-len", "8"]) == 0
    paths = json.loads(capsys.readouterr().out)
    assert sorted(os.listdir(out)) == ["config.json", "model.onnx", "pyengine_tokenizer.json"]
    model, _, _ = lm.load_checkpoint(checkpoint)
    idx = np.arange(16).reshape(2, 8) % 7
    np.testing.assert_allclose(_run_onnx(paths["onnx"], idx), _logits(model, idx), atol=1e-4)
    assert cli.main(["export", "--checkpoint", checkpoint, "--out", out, "--seq-len", "8"]) == 1
    assert "--seq-len applies to --format onnx" in capsys.readouterr().err
