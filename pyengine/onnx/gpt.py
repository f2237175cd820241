"""The ONNX graph of pyengine's GPT, written from its weights with onnx.helper (opset 17).

input_ids (B, T) int64 -> logits (B, T, V) float32, the same arithmetic as ``GPT.forward`` in eval mode:
token + position embeddings (Gather; positions Range(0, T)), per block LayerNormalization -> packed q, k, v
projection -> heads (Reshape/Transpose) -> softmax(q k^T / sqrt(hd)) with a causal mask (Where over
Range-built indices, so any T up to block_size works) -> V -> output projection, residual; LayerNorm ->
GELU MLP (tanh approximation or erf, as the model's config says) -> residual; final LayerNorm and the tied
output embedding (the embedding matrix is stored once; a Transpose node reads it).
"""
import math

import numpy as np

from ._graph import Graph, arr


def export_gpt(model, f=None, batch="batch", seq_len=None, input_name="input_ids", output_name="logits"):
    """The ONNX ModelProto of ``model`` (a pyengine GPT), written to ``f`` (a path) when given.

    batch / seq_len: an int fixes that axis, a string (or seq_len None: "sequence") leaves it dynamic;
    the sequence may be any length up to the model's block_size.
    """
    from ..models.gpt import GPT
    if not isinstance(model, GPT):
        raise NotImplementedError(f"pyengine.onnx: export_gpt takes a pyengine GPT, got {type(model).__name__}")
    cfg = model.config
    if isinstance(seq_len, int) and not 1 <= seq_len <= cfg.block_size:
        raise ValueError(f"pyengine.onnx: seq_len must be in [1, block_size={cfg.block_size}], got {seq_len}")
    g = Graph()
    TP, helper = g.TP, g.helper
    C, H, V = cfg.n_embd, cfg.n_head, cfg.vocab_size
    hd = C // H

    layer_norm, linear = g.layer_norm, g.linear

    def gelu(x):
        return g.gelu(x, cfg.gelu)

    ids = input_name
    # T as a scalar, positions 0..T-1, and the causal mask (key index > query index is masked)
    T = g.op("Gather", [g.op("Shape", [ids]), g.const("one_i", np.int64(1))], "seq_len", axis=0)
    pos = g.op("Range", [g.const("zero_i", np.int64(0)), T, g.const("step", np.int64(1))], "positions")
    masked = g.op("Greater", [g.op("Unsqueeze", [pos, g.const("ax0", np.array([0], np.int64))]),
                              g.op("Unsqueeze", [pos, g.const("ax1", np.array([1], np.int64))])], "causal")
    neg = g.const("neg_inf", np.float32(-np.inf))
    wte = g.const("wte", arr(model.wte.weight))
    x = g.op("Add", [g.op("Gather", [wte, ids], "tok_emb", axis=0),
                     g.op("Gather", [g.const("wpe", arr(model.wpe.weight)), pos], "pos_emb", axis=0)], "x")
    qkv_shape = g.const("qkv_shape", np.array([0, 0, 3, H, hd], np.int64))
    merge_shape = g.const("merge_shape", np.array([0, 0, C], np.int64))
    scale = g.const("scale", np.float32(1.0 / math.sqrt(hd)))
    for blk in model.h:
        a = blk.attn
        qkv = g.op("Reshape", [linear(layer_norm(x, blk.ln_1), a.c_attn), qkv_shape])      # (B, T, 3, H, hd)
        qkv = g.op("Transpose", [qkv], "heads", perm=[2, 0, 3, 1, 4])                      # (3, B, H, T, hd)
        q, k, v = (g.op("Gather", [qkv, g.const("i", np.int64(i))], "qkv"[i], axis=0) for i in range(3))
        att = g.op("Mul", [g.op("MatMul", [q, g.op("Transpose", [k], "kT", perm=[0, 1, 3, 2])]), scale])
        att = g.op("Softmax", [g.op("Where", [masked, neg, att], "masked")], "softmax", axis=-1)
        y = g.op("Transpose", [g.op("MatMul", [att, v])], "merge", perm=[0, 2, 1, 3])      # (B, T, H, hd)
        x = g.op("Add", [x, linear(g.op("Reshape", [y, merge_shape]), a.c_proj)], "resid")
        m = blk.mlp
        x = g.op("Add", [x, linear(gelu(linear(layer_norm(x, blk.ln_2), m.c_fc)), m.c_proj)], "resid")
    x = layer_norm(x, model.ln_f)
    if model.lm_head.weight is model.wte.weight:
        head = g.op("Transpose", [wte], "lm_head_T", perm=[1, 0])
    else:
        head = g.const("lm_head_T", arr(model.lm_head.weight).T.copy())
    logits = g.op("MatMul", [x, head], "logits")
    g.nodes.append(helper.make_node("Identity", [logits], [output_name], name="output"))
    T_dim = seq_len if seq_len is not None else "sequence"
    proto = g.model("pyengine_gpt", [helper.make_tensor_value_info(ids, TP.INT64, [batch, T_dim])],
                    [helper.make_tensor_value_info(output_name, TP.FLOAT, [batch, T_dim, V])],
                    doc=f"pyengine GPT {cfg.to_dict()}")
    if f is not None:
        with open(f, "wb") as fh:
            fh.write(proto.SerializeToString())
    return proto
