"""Weights-only export of a GPT language model in Hugging Face's layout, and loading it back.

``pyengine export --checkpoint runs/lm/best.safetensors --out model/`` writes

    model/model.safetensors          the weights only (no optimizer moments, no RNG state): GPT-2's tensor
                                     names (transformer.h.0.attn.c_attn.weight, ...) and orientation (Conv1D:
                                     (in, out)); the tied output embedding is stored once, as
                                     transformer.wte.weight; metadata {"format": "pt"}
    model/config.json                a GPT2Config (model_type "gpt2", n_embd, n_layer, n_head, n_positions,
                                     activation_function "gelu_new" for the tanh GELU or "gelu", ...) plus a
                                     "pyengine" section: the GPTConfig, the tokenizer file, the training step
    model/pyengine_tokenizer.json    the tokenizer (pyengine's character/byte vocabulary; a GPT-2 BPE
                                     tokenizer it is not, so it has its own name rather than tokenizer.json)

so the folder is what ``transformers.GPT2LMHeadModel.from_pretrained`` reads (a model without biases is
written with zero biases, which is the same function), and what ``pyengine serve/sample/eval
--checkpoint model/`` (or ``model/model.safetensors``) load.
"""
import json
import os

import numpy as np

from . import io as pio
from .models.gpt import GPT, GPTConfig

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
TOKENIZER_NAME = "pyengine_tokenizer.json"
EXPORT_FORMAT = "pyengine-gpt-export-1"
MAX_CONFIG_BYTES = 1 << 20

# pyengine name suffix -> (GPT-2 name suffix, transposed): GPT-2's Conv1D stores (in, out), Linear (out, in)
_BLOCK = {
    "ln_1.weight": ("ln_1.weight", False), "ln_1.bias": ("ln_1.bias", False),
    "attn.c_attn.weight": ("attn.c_attn.weight", True), "attn.c_attn.bias": ("attn.c_attn.bias", False),
    "attn.c_proj.weight": ("attn.c_proj.weight", True), "attn.c_proj.bias": ("attn.c_proj.bias", False),
    "ln_2.weight": ("ln_2.weight", False), "ln_2.bias": ("ln_2.bias", False),
    "mlp.c_fc.weight": ("mlp.c_fc.weight", True), "mlp.c_fc.bias": ("mlp.c_fc.bias", False),
    "mlp.c_proj.weight": ("mlp.c_proj.weight", True), "mlp.c_proj.bias": ("mlp.c_proj.bias", False),
}


def _hf_names(config):
    """{pyengine name: (GPT-2 name, transposed, shape in the file)} of every tensor GPT-2 has (biases included
    even when the model has none), and the tied lm_head.weight -> None."""
    C, V = config.n_embd, config.vocab_size
    widths = {"ln_1": C, "ln_2": C, "attn.c_attn": 3 * C, "attn.c_proj": C, "mlp.c_fc": 4 * C, "mlp.c_proj": C}
    fan_in = {"attn.c_attn": C, "attn.c_proj": C, "mlp.c_fc": C, "mlp.c_proj": 4 * C}
    names = {"wte.weight": ("transformer.wte.weight", False, (V, C)),
             "wpe.weight": ("transformer.wpe.weight", False, (config.block_size, C))}
    for i in range(config.n_layer):
        for ours, (theirs, t) in _BLOCK.items():
            part = ours.rsplit(".", 1)[0]
            if ours.endswith("weight") and part in fan_in:
                shape = (fan_in[part], widths[part])
            else:
                shape = (widths[part],)
            names[f"h.{i}.{ours}"] = (f"transformer.h.{i}.{theirs}", t, shape)
    names["ln_f.weight"] = ("transformer.ln_f.weight", False, (C,))
    names["ln_f.bias"] = ("transformer.ln_f.bias", False, (C,))
    return names


def hf_config(config, tokenizer_file=TOKENIZER_NAME, step=None):
    """config.json's contents for ``config`` (a GPTConfig)."""
    return {
        "architectures": ["GPT2LMHeadModel"], "model_type": "gpt2",
        "vocab_size": config.vocab_size, "n_positions": config.block_size, "n_ctx": config.block_size,
        "n_embd": config.n_embd, "n_layer": config.n_layer, "n_head": config.n_head, "n_inner": None,
        "activation_function": "gelu_new" if config.gelu == "tanh" else "gelu",
        "resid_pdrop": config.dropout, "embd_pdrop": config.dropout, "attn_pdrop": config.dropout,
        "layer_norm_epsilon": 1e-5, "initializer_range": 0.02, "scale_attn_weights": True,
        "tie_word_embeddings": True, "use_cache": True, "torch_dtype": "float32",
        "bos_token_id": None, "eos_token_id": None,  # a character vocabulary has no GPT-2 <|endoftext|>
        "pyengine": {"format": EXPORT_FORMAT, "gpt_config": config.to_dict(), "tokenizer_file": tokenizer_file,
                     "step": step},
    }


def save_pretrained(model, tokenizer, out, step=None):
    """Write ``model`` (a GPT) and ``tokenizer`` into the folder ``out``; returns the paths written."""
    if not isinstance(model, GPT):
        raise TypeError(f"export: expected a pyengine GPT, got {type(model).__name__}")
    st = pio._safetensors()
    os.makedirs(out, exist_ok=True)
    config = model.config
    state = {k: np.asarray(v._data if hasattr(v, "_data") else v) for k, v in model.state_dict().items()}
    tensors = {}
    for ours, (theirs, transposed, shape) in _hf_names(config).items():
        arr = state.get(ours)
        if arr is None:  # a model without biases: GPT-2 has them; zeros are the same function
            arr = np.zeros(shape, np.float32)
        arr = np.ascontiguousarray(arr.T if transposed else arr, dtype=np.float32)
        assert arr.shape == shape, (ours, arr.shape, shape)
        tensors[theirs] = arr
    paths = {"weights": os.path.join(out, WEIGHTS_NAME), "config": os.path.join(out, CONFIG_NAME),
             "tokenizer": os.path.join(out, TOKENIZER_NAME)}
    tmp = paths["weights"] + f".tmp{os.getpid()}"
    st.save_file(tensors, tmp, metadata={"format": "pt"})
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # a file to hand on, readable as any other (safetensors writes 0600)
    os.replace(tmp, paths["weights"])
    _write_json(paths["config"], hf_config(config, TOKENIZER_NAME, step))
    _write_json(paths["tokenizer"], tokenizer.to_dict())
    return paths


def _write_json(path, obj):
    tmp = path + f".tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, ensure_ascii=False)
        f.write("\n")
    os.replace(tmp, path)


def _folder_and_weights(path):
    if os.path.isdir(path):
        return path, os.path.join(path, WEIGHTS_NAME)
    return os.path.dirname(os.path.abspath(path)), path


def is_pretrained(path):
    """Whether ``path`` is an export folder or the weights file of one (a config.json with a pyengine
    section beside a plain safetensors file), rather than a training checkpoint."""
    folder, _ = _folder_and_weights(path)
    if not os.path.isdir(path) and os.path.basename(path) != WEIGHTS_NAME:
        return False
    return os.path.isfile(os.path.join(folder, CONFIG_NAME))


def _read_json(path, what):
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what}: no file {path}")
    if os.path.getsize(path) > MAX_CONFIG_BYTES:
        raise ValueError(f"{what}: {path} is larger than {MAX_CONFIG_BYTES} bytes")
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (ValueError, UnicodeDecodeError) as e:
        raise ValueError(f"{what}: {path} is not valid JSON ({e})") from None


def load_pretrained(path):
    """(model, tokenizer, checkpoint-like dict) from an export folder or its model.safetensors. The files
    are checked against each other (the config's values, every tensor's name and shape, the tokenizer
    against the vocabulary) before the model is built."""
    from . import lm
    folder, weights = _folder_and_weights(path)
    config = _read_json(os.path.join(folder, CONFIG_NAME), "load")
    section = config.get("pyengine") if isinstance(config, dict) else None
    if not isinstance(section, dict) or not isinstance(section.get("gpt_config"), dict):
        raise ValueError(f"{folder}/{CONFIG_NAME} has no 'pyengine' section: it was not written by "
                         "`pyengine export` (a pyengine model needs its own tokenizer)")
    tok_name = section.get("tokenizer_file") or TOKENIZER_NAME
    if not isinstance(tok_name, str) or os.path.basename(tok_name) != tok_name:
        raise ValueError(f"{folder}/{CONFIG_NAME}: tokenizer_file must be a file name in the folder, "
                         f"got {tok_name!r}")
    tok = _read_json(os.path.join(folder, tok_name), "load")
    if not os.path.isfile(weights):
        raise FileNotFoundError(f"load: no weights file {weights}")
    flat = pio.load(weights)
    try:
        gpt_config = GPTConfig(**section["gpt_config"])
    except (TypeError, ValueError) as e:
        raise ValueError(f"{folder}/{CONFIG_NAME}: bad pyengine gpt_config ({e})") from None
    state = {}
    names = _hf_names(gpt_config)
    unexpected = sorted(set(flat) - {theirs for theirs, _, _ in names.values()})
    if unexpected:
        raise ValueError(f"load: {weights} has tensors this model does not: {unexpected[:3]}")
    for ours, (theirs, transposed, shape) in names.items():
        t = flat.get(theirs)
        if t is None:
            raise ValueError(f"load: {weights} lacks {theirs}")
        if tuple(t.shape) != shape:
            raise ValueError(f"load: {theirs} has shape {tuple(t.shape)}, the config says {shape}")
        arr = np.asarray(t._data if hasattr(t, "_data") else t)
        if not gpt_config.bias and ours.endswith(".bias"):
            if np.any(arr != 0):
                raise ValueError(f"load: the config says the model has no biases, but {theirs} is not zero")
            continue
        state[ours] = np.ascontiguousarray(arr.T if transposed else arr)
    state["lm_head.weight"] = state["wte.weight"]
    ck = {"format": "pyengine-lm-1", "config": gpt_config.to_dict(), "model": state, "tokenizer": tok,
          "step": section.get("step") or 0, "export": True}
    gpt_config, tokenizer = lm.check_checkpoint(ck, weights)
    model = GPT(gpt_config)
    model.load_state_dict(state)
    model.eval()
    return model, tokenizer, ck


def export_command(checkpoint, out, format="safetensors", seq_len=None):
    """``pyengine export``: {"weights"|"onnx", "config", "tokenizer": path} written into ``out``."""
    from . import lm
    model, tokenizer, ck = lm.load_checkpoint(checkpoint)
    step = int(ck.get("step") or 0)
    if format == "safetensors":
        if seq_len is not None:
            raise ValueError("export: --seq-len applies to --format onnx only")
        return save_pretrained(model, tokenizer, out, step=step)
    if format != "onnx":
        raise ValueError(f"export: format must be 'safetensors' or 'onnx', got {format!r}")
    from . import onnx as ponnx
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, "model.onnx")
    ponnx.export_gpt(model, path, seq_len=seq_len)
    paths = {"onnx": path, "config": os.path.join(out, CONFIG_NAME), "tokenizer": os.path.join(out, TOKENIZER_NAME)}
    _write_json(paths["config"], hf_config(model.config, TOKENIZER_NAME, step))
    _write_json(paths["tokenizer"], tokenizer.to_dict())
    return paths
