"""The Transformer family and MultiheadAttention against PyTorch: a torch module built with a seed, its state
dict loaded one to one into pyengine's, then outputs, input gradients and parameter gradients compared in
float64. Also Embedding's max_norm / scale_grad_by_freq, and a small TransformerEncoder LM that learns.
"""
import copy
import warnings

import numpy as np
import pytest

import pyengine as pe
import pyengine.nn as nn
import pyengine.nn.functional as F
from pyengine.testing import assert_close

torch = pytest.importorskip("torch")

E, H, FF = 12, 3, 20  # d_model, heads (head_dim 4), feed-forward width
TOL = dict(rtol=1e-9, atol=1e-11)


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        # PyTorch warns about its fast paths (nested tensors) and mixed mask types; nothing to see here
        warnings.simplefilter("ignore", UserWarning)
        yield


def _load(tm, pm):
    """Perturb torch's parameters (LayerNorm's ones and zeros, zero biases), load them into pm, one to one."""
    with torch.no_grad():
        for p in tm.parameters():
            p.add_(0.2 * torch.randn_like(p))
    sd = {k: v.detach().numpy() for k, v in tm.state_dict().items()}
    assert list(pm.state_dict()) == list(sd)
    for k, v in pm.state_dict().items():
        assert tuple(v.shape) == sd[k].shape, k
    pm.load_state_dict(sd)
    return tm, pm


def _tt(a, grad=False):
    return torch.tensor(a, requires_grad=grad) if isinstance(a, np.ndarray) else a


def _pt(a, grad=False):
    return pe.tensor(a, requires_grad=grad) if isinstance(a, np.ndarray) else a


def _compare(tm, pm, inputs, call=None, rng=None, tol=TOL, grads=True):
    """Run both modules on the same float64 inputs (+ keyword args, arrays converted), compare outputs and,
    with ``grads``, the gradients of <out, g> for every input and parameter."""
    call = call or {}
    ti = [_tt(x, True) for x in inputs]
    pi = [_pt(x, True) for x in inputs]
    ot = tm(*ti, **{k: _tt(v) for k, v in call.items()})
    op = pm(*pi, **{k: _pt(v) for k, v in call.items()})
    if isinstance(ot, tuple):
        ot, op = ot[0], op[0]
    assert tuple(op.shape) == tuple(ot.shape)
    assert_close(op.detach(), ot.detach().numpy(), msg="output ", **tol)
    if not grads:
        return op
    g = rng.standard_normal(tuple(ot.shape))
    (ot * torch.tensor(g)).sum().backward()
    (op * pe.tensor(g)).sum().backward()
    for i, (a, b) in enumerate(zip(pi, ti)):
        assert_close(a.grad, b.grad.numpy(), msg=f"input {i} grad ", **tol)
    tp = dict(tm.named_parameters())
    for n, p in pm.named_parameters():
        assert_close(p.grad, tp[n].grad.numpy(), msg=n + " grad ", **tol)
    return op


def _seq(rng, L, N, bf, dim=E):
    return rng.standard_normal((N, L, dim) if bf else (L, N, dim))


def _kpm(N, S, kind="bool"):
    m = np.zeros((N, S), bool)
    m[-1, -2:] = True  # the last sequence is two shorter
    if kind == "float":
        return np.where(m, -1e9, 0.0) + np.linspace(-0.5, 0.5, S)  # and a soft bias on every key
    return m


def _causal(L, kind="float"):
    upper = np.triu(np.ones((L, L), bool), 1)
    return upper if kind == "bool" else np.where(upper, -np.inf, 0.0)


# ---------------------------------------------------------------------- encoder layer

LAYER_CONFIGS = {
    "relu": dict(),
    "gelu_batch_first": dict(activation="gelu", batch_first=True),
    "norm_first": dict(norm_first=True),
    "norm_first_batch_first_gelu": dict(norm_first=True, batch_first=True, activation="gelu"),
    "no_bias_eps": dict(bias=False, layer_norm_eps=1e-3),
}

MASKS = ["none", "causal_float", "causal_hint", "bool", "key_padding_bool", "key_padding_float", "all_bool",
         "unbatched"]


def _layer_masks(kind, L, N):
    """(call kwargs for an encoder layer, unbatched?)"""
    if kind == "causal_float":
        return dict(src_mask=_causal(L)), False
    if kind == "causal_hint":
        return dict(src_mask=_causal(L), is_causal=True), False
    if kind == "bool":
        m = np.random.default_rng(5).random((L, L)) < 0.3
        np.fill_diagonal(m, False)
        return dict(src_mask=m), False
    if kind == "key_padding_bool":
        return dict(src_key_padding_mask=_kpm(N, L)), False
    if kind == "key_padding_float":
        return dict(src_key_padding_mask=_kpm(N, L, "float")), False
    if kind == "all_bool":
        return dict(src_mask=_causal(L, "bool"), src_key_padding_mask=_kpm(N, L)), False
    if kind == "unbatched":
        kpm = np.zeros(L, bool)
        kpm[-1] = True
        return dict(src_mask=_causal(L), src_key_padding_mask=kpm), True
    return {}, False


@pytest.mark.parametrize("masks", MASKS)
@pytest.mark.parametrize("config", list(LAYER_CONFIGS))
def test_encoder_layer_vs_torch(config, masks, rng):
    kw = LAYER_CONFIGS[config]
    torch.manual_seed(0)
    tm = torch.nn.TransformerEncoderLayer(E, H, FF, dropout=0.0, dtype=torch.float64, **kw)
    tm, pm = _load(tm, nn.TransformerEncoderLayer(E, H, FF, dropout=0.0, dtype=pe.float64, **kw))
    if masks == "key_padding_float":  # eval mode too (dropout = 0: the same function)
        tm.eval(), pm.eval()
    L, N = 5, 3
    call, unbatched = _layer_masks(masks, L, N)
    x = rng.standard_normal((L, E)) if unbatched else _seq(rng, L, N, kw.get("batch_first", False))
    _compare(tm, pm, [x], call, rng)


def test_encoder_layer_activation_callable(rng):
    torch.manual_seed(1)
    tm = torch.nn.TransformerEncoderLayer(E, H, FF, dropout=0.0, activation=torch.nn.GELU(approximate="tanh"),
                                          dtype=torch.float64)
    pm = nn.TransformerEncoderLayer(E, H, FF, dropout=0.0, activation=nn.GELU(approximate="tanh"),
                                    dtype=pe.float64)
    _load(tm, pm)
    _compare(tm, pm, [_seq(rng, 4, 2, False)], {}, rng)
    torch.manual_seed(1)
    tm = torch.nn.TransformerEncoderLayer(E, H, FF, dropout=0.0, activation=torch.nn.functional.silu,
                                          dtype=torch.float64)
    pm = nn.TransformerEncoderLayer(E, H, FF, dropout=0.0, activation=F.silu, dtype=pe.float64)
    _load(tm, pm)
    _compare(tm, pm, [_seq(rng, 4, 2, False)], {}, rng)
    assert pm.activation_relu_or_gelu == 0
    assert nn.TransformerEncoderLayer(E, H).activation_relu_or_gelu == 1
    assert nn.TransformerEncoderLayer(E, H, activation="gelu").activation_relu_or_gelu == 2


def test_encoder_layer_dropout_modes(rng):
    """dropout > 0: random in training (not comparable with torch), the identity in eval (compared)."""
    torch.manual_seed(2)
    tm = torch.nn.TransformerEncoderLayer(E, H, FF, dropout=0.3, dtype=torch.float64)
    tm, pm = _load(tm, nn.TransformerEncoderLayer(E, H, FF, dropout=0.3, dtype=pe.float64))
    x = _seq(rng, 6, 2, False)
    a, b = pm(pe.tensor(x)), pm(pe.tensor(x))
    assert not np.allclose(a.detach(), b.detach())  # two draws of the dropout masks
    tm.eval(), pm.eval()
    _compare(tm, pm, [x], {"src_mask": _causal(6)}, rng)


# ---------------------------------------------------------------------- decoder layer


@pytest.mark.parametrize("masks", ["none", "causal", "causal_hint", "memory_masks", "all", "unbatched"])
@pytest.mark.parametrize("config", ["relu", "gelu_batch_first", "norm_first_batch_first_gelu", "no_bias_eps"])
def test_decoder_layer_vs_torch(config, masks, rng):
    kw = LAYER_CONFIGS[config]
    bf = kw.get("batch_first", False)
    torch.manual_seed(0)
    tm = torch.nn.TransformerDecoderLayer(E, H, FF, dropout=0.0, dtype=torch.float64, **kw)
    tm, pm = _load(tm, nn.TransformerDecoderLayer(E, H, FF, dropout=0.0, dtype=pe.float64, **kw))
    T, S, N = 4, 6, 3
    call = {}
    if masks in ("causal", "all"):
        call["tgt_mask"] = _causal(T)
    if masks == "causal_hint":
        call.update(tgt_mask=_causal(T), tgt_is_causal=True)
    if masks in ("memory_masks", "all"):
        mm = np.random.default_rng(3).standard_normal((T, S))
        call.update(memory_mask=mm, memory_key_padding_mask=_kpm(N, S))
    if masks == "all":
        call["tgt_key_padding_mask"] = _kpm(N, T)
    if masks == "unbatched":
        call.update(tgt_mask=_causal(T), memory_key_padding_mask=np.array([False] * (S - 1) + [True]))
        tgt, mem = rng.standard_normal((T, E)), rng.standard_normal((S, E))
    else:
        tgt, mem = _seq(rng, T, N, bf), _seq(rng, S, N, bf)
    _compare(tm, pm, [tgt, mem], call, rng)


# ---------------------------------------------------------------------- stacks and the full model


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("batch_first", [False, True])
def test_encoder_and_decoder_stacks_vs_torch(batch_first, norm_first, rng):
    kw = dict(dropout=0.0, batch_first=batch_first, norm_first=norm_first)
    torch.manual_seed(0)
    tenc = torch.nn.TransformerEncoder(torch.nn.TransformerEncoderLayer(E, H, FF, dtype=torch.float64, **kw), 3,
                                       norm=torch.nn.LayerNorm(E, dtype=torch.float64), enable_nested_tensor=False)
    penc = nn.TransformerEncoder(nn.TransformerEncoderLayer(E, H, FF, dtype=pe.float64, **kw), 3,
                                 norm=nn.LayerNorm(E, dtype=pe.float64))
    _load(tenc, penc)
    # the layers are copies, not one layer three times
    assert len({id(layer.linear1.weight) for layer in penc.layers}) == 3
    assert not np.array_equal(penc.layers[0].linear1.weight._data, penc.layers[1].linear1.weight._data)
    x = _seq(rng, 5, 2, batch_first)
    _compare(tenc, penc, [x], {"mask": _causal(5), "src_key_padding_mask": _kpm(2, 5)}, rng)
    _compare(tenc, penc, [x], {"mask": _causal(5)}, rng)  # is_causal detected from the mask
    torch.manual_seed(1)
    tdec = torch.nn.TransformerDecoder(torch.nn.TransformerDecoderLayer(E, H, FF, dtype=torch.float64, **kw), 2,
                                       norm=torch.nn.LayerNorm(E, dtype=torch.float64))
    pdec = nn.TransformerDecoder(nn.TransformerDecoderLayer(E, H, FF, dtype=pe.float64, **kw), 2,
                                 norm=nn.LayerNorm(E, dtype=pe.float64))
    _load(tdec, pdec)
    tgt, mem = _seq(rng, 4, 2, batch_first), _seq(rng, 7, 2, batch_first)
    _compare(tdec, pdec, [tgt, mem], {"tgt_mask": _causal(4), "memory_key_padding_mask": _kpm(2, 7)}, rng)


@pytest.mark.parametrize("config", ["post_norm", "pre_norm_batch_first_gelu", "unbatched"])
def test_transformer_vs_torch(config, rng):
    kw = dict(dropout=0.0)
    if config == "pre_norm_batch_first_gelu":
        kw.update(norm_first=True, batch_first=True, activation="gelu")
    torch.manual_seed(0)
    tm = torch.nn.Transformer(E, H, 2, 2, FF, dtype=torch.float64, **kw)
    tm, pm = _load(tm, nn.Transformer(E, H, 2, 2, FF, dtype=pe.float64, **kw))
    bf = kw.get("batch_first", False)
    S, T, N = 6, 4, 2
    if config == "unbatched":
        src, tgt = rng.standard_normal((S, E)), rng.standard_normal((T, E))
        call = {"tgt_mask": _causal(T)}
    else:
        src, tgt = _seq(rng, S, N, bf), _seq(rng, T, N, bf)
        call = {"tgt_mask": nn.Transformer.generate_square_subsequent_mask(T, dtype=pe.float64)._data,
                "src_key_padding_mask": _kpm(N, S), "memory_key_padding_mask": _kpm(N, S),
                "tgt_key_padding_mask": _kpm(N, T)}
    _compare(tm, pm, [src, tgt], call, rng)


def test_transformer_init_and_mask(rng):
    m = nn.Transformer(16, 4, 1, 1, 32)
    assert [n for n, _ in m.named_parameters()] == \
        [n for n, _ in torch.nn.Transformer(16, 4, 1, 1, 32).named_parameters()]
    w = m.encoder.layers[0].linear1.weight._data  # xavier-uniform: bound sqrt(6 / (16 + 32)) = 0.354
    assert np.abs(w).max() <= np.sqrt(6 / 48) and np.abs(w).max() > 0.3
    assert np.all(m.encoder.norm.weight._data == 1)
    mk = nn.Transformer.generate_square_subsequent_mask(5)
    assert mk.dtype == pe.float32
    assert_close(mk, torch.nn.Transformer.generate_square_subsequent_mask(5).numpy())
    assert nn.modules.transformer._detect_is_causal_mask(mk)
    assert not nn.modules.transformer._detect_is_causal_mask(mk._data.T)
    assert not nn.modules.transformer._detect_is_causal_mask(_causal(5, "bool"))
    with pytest.raises(RuntimeError, match="batch number of src and tgt"):
        m(pe.randn(5, 2, 16), pe.randn(3, 3, 16))
    with pytest.raises(RuntimeError, match="feature number"):
        m(pe.randn(5, 2, 16), pe.randn(3, 2, 8))
    with pytest.raises(RuntimeError, match="activation should be relu/gelu, not tanh"):
        nn.TransformerEncoderLayer(16, 4, activation="tanh")
    with pytest.raises(TypeError, match="must be a Module"):
        nn.TransformerEncoder("layer", 2)
    with pytest.raises(TypeError, match="TransformerDecoder: norm must be a Module or None"):
        nn.TransformerDecoder(nn.TransformerDecoderLayer(16, 4), 1, norm="x")
    with pytest.raises(MemoryError, match="TransformerEncoder: .* copies of the layer"):
        nn.TransformerEncoder(nn.TransformerEncoderLayer(16, 4), 2 ** 40)
    with pytest.raises(TypeError, match="TransformerEncoderLayer.*'src'"):
        nn.TransformerEncoderLayer(16, 4)(None)
    with pytest.raises(ValueError, match="divisible by num_heads"):
        nn.TransformerDecoderLayer(10, 4)


def test_module_deepcopy_is_independent():
    layer = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0)
    c = copy.deepcopy(layer)
    assert c.self_attn.in_proj_weight is not layer.self_attn.in_proj_weight
    assert isinstance(c.self_attn.in_proj_weight, nn.Parameter)
    assert np.array_equal(c.self_attn.in_proj_weight._data, layer.self_attn.in_proj_weight._data)
    with pe.no_grad():
        c.linear1.weight.mul_(0.0)
    assert np.abs(layer.linear1.weight._data).sum() > 0
    x = pe.randn(3, 2, 8)
    assert np.allclose(layer(x).detach(), copy.deepcopy(layer)(x).detach())


# ---------------------------------------------------------------------- MultiheadAttention


def test_multihead_attention_module_path():
    from pyengine.nn.modules import activation, attention, linear
    assert activation.MultiheadAttention is nn.MultiheadAttention is attention.MultiheadAttention
    assert nn.MultiheadAttention.__module__ == "pyengine.nn.modules.activation"
    m = nn.MultiheadAttention(8, 2, add_bias_kv=True)
    assert type(m.out_proj) is linear.NonDynamicallyQuantizableLinear and isinstance(m.out_proj, nn.Linear)
    assert m.bias_k.shape == (1, 1, 8) and m.bias_v.shape == (1, 1, 8)
    assert list(m.state_dict()) == list(torch.nn.MultiheadAttention(8, 2, add_bias_kv=True).state_dict())


MHA_CASES = {
    "bias_kv": dict(ctor=dict(add_bias_kv=True)),
    "zero_attn": dict(ctor=dict(add_zero_attn=True)),
    "bias_kv_zero_attn_masks": dict(ctor=dict(add_bias_kv=True, add_zero_attn=True), masks="bool"),
    "bias_kv_float_masks_per_head": dict(ctor=dict(add_bias_kv=True), masks="float3d",
                                         call=dict(average_attn_weights=False)),
    "kdim_vdim_bias_kv": dict(ctor=dict(kdim=5, vdim=7, add_bias_kv=True, batch_first=True), masks="bool"),
    "kdim_vdim_zero_attn_no_bias": dict(ctor=dict(kdim=5, vdim=3, add_zero_attn=True, bias=False),
                                        call=dict(need_weights=False), masks="float3d"),
    "causal_hint": dict(ctor={}, masks="causal_hint", call=dict(need_weights=False)),
    "causal_hint_weights": dict(ctor=dict(batch_first=True), masks="causal_hint"),
    "causal_hint_padding": dict(ctor={}, masks="causal_hint_padding", call=dict(need_weights=False)),
    "no_weights_masks": dict(ctor=dict(batch_first=True), masks="bool", call=dict(need_weights=False)),
    "unbatched_3d_mask": dict(ctor=dict(add_bias_kv=True), masks="unbatched"),
    "unbatched_no_weights": dict(ctor=dict(kdim=5, vdim=5), masks="unbatched", call=dict(need_weights=False)),
    "eval_bias_kv": dict(ctor=dict(add_bias_kv=True, add_zero_attn=True), eval=True, masks="bool"),
}


@pytest.mark.parametrize("case", list(MHA_CASES))
def test_multihead_attention_extras_vs_torch(case, rng):
    spec = MHA_CASES[case]
    ctor, call = dict(spec["ctor"]), dict(spec.get("call", {}))
    torch.manual_seed(0)
    tm = torch.nn.MultiheadAttention(E, H, dtype=torch.float64, **ctor)
    tm, pm = _load(tm, nn.MultiheadAttention(E, H, dtype=pe.float64, **ctor))
    if spec.get("eval"):
        tm.eval(), pm.eval()
    L, S, N = 5, 7, 3
    bf = ctor.get("batch_first", False)
    kd, vd = ctor.get("kdim", E), ctor.get("vdim", E)
    masks = spec.get("masks")
    unbatched = masks == "unbatched"
    if masks in ("causal_hint", "causal_hint_padding"):
        S = L
    if unbatched:
        q, k, v = rng.standard_normal((L, E)), rng.standard_normal((S, kd)), rng.standard_normal((S, vd))
        m = rng.random((H, L, S)) < 0.3
        m[..., 0] = False
        call.update(attn_mask=m, key_padding_mask=np.array([False] * (S - 2) + [True, True]))
    else:
        q, k, v = _seq(rng, L, N, bf), _seq(rng, S, N, bf, kd), _seq(rng, S, N, bf, vd)
    if masks == "bool":
        m = rng.random((L, S)) < 0.3
        m[:, 0] = False
        call.update(attn_mask=m, key_padding_mask=_kpm(N, S))
    elif masks == "float3d":
        call.update(attn_mask=rng.standard_normal((N * H, L, S)), key_padding_mask=_kpm(N, S, "float"))
    elif masks == "causal_hint":
        call.update(attn_mask=_causal(L), is_causal=True)
    elif masks == "causal_hint_padding":
        call.update(attn_mask=_causal(L, "bool"), key_padding_mask=_kpm(N, S), is_causal=True)
    inputs = [q, k, v]
    ti = [_tt(x, True) for x in inputs]
    pi = [_pt(x, True) for x in inputs]
    ot, wt = tm(*ti, **{k_: _tt(v_) for k_, v_ in call.items()})
    op, wp = pm(*pi, **{k_: _pt(v_) for k_, v_ in call.items()})
    assert_close(op.detach(), ot.detach().numpy(), **TOL)
    if wt is None:
        assert wp is None
    else:
        assert_close(wp.detach(), wt.detach().numpy(), **TOL)
    g = rng.standard_normal(tuple(ot.shape))
    loss_t = (ot * torch.tensor(g)).sum() + (0 if wt is None else (wt * torch.tensor(g[..., :1].mean())).sum())
    loss_p = (op * pe.tensor(g)).sum() + (0 if wp is None else (wp * float(g[..., :1].mean())).sum())
    loss_t.backward()
    loss_p.backward()
    for i, (a, b) in enumerate(zip(pi, ti)):
        assert_close(a.grad, b.grad.numpy(), msg=f"input {i} ", **TOL)
    tp = dict(tm.named_parameters())
    for n, p in pm.named_parameters():
        assert_close(p.grad, tp[n].grad.numpy(), msg=n + " ", **TOL)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_multihead_attention_fused_equals_op_by_op(dtype, rng):
    """need_weights=False runs the fused kernel, True the op-by-op path: the same outputs and gradients."""
    m = nn.MultiheadAttention(E, H, add_bias_kv=True, dtype=getattr(pe, dtype))
    tol = TOL if dtype == "float64" else dict(rtol=1e-4, atol=1e-5)
    x = rng.standard_normal((6, 2, E)).astype(dtype)
    kpm = _kpm(2, 6)
    outs, grads = [], []
    for need in (False, True):
        xp = pe.tensor(x, requires_grad=True)
        out, _ = m(xp, xp, xp, attn_mask=_causal(6, "bool"), key_padding_mask=kpm, need_weights=need)
        m.zero_grad()
        (out * out).sum().backward()
        outs.append(out.detach())
        grads.append([xp.grad.numpy()] + [p.grad.numpy() for p in m.parameters()])
    assert_close(outs[0], outs[1], **tol)
    for a, b in zip(*grads):
        assert_close(a, b, **tol)


def test_multihead_attention_mask_errors():
    m = nn.MultiheadAttention(8, 2)
    x = pe.randn(3, 2, 8)
    with pytest.raises(TypeError, match="only bool and floating types of attn_mask"):
        m(x, x, x, attn_mask=np.zeros((3, 3), np.int64))
    with pytest.raises(TypeError, match="key_padding_mask"):
        m(x, x, x, key_padding_mask=np.zeros((2, 3), np.int32))
    with pytest.raises(RuntimeError, match=r"3D attn_mask is \(2, 3, 3\), but should be \(4, 3, 3\)"):
        m(x, x, x, attn_mask=np.zeros((2, 3, 3), bool))
    with pytest.raises(RuntimeError, match="key_padding_mask of shape"):
        m(x, x, x, key_padding_mask=np.zeros((3, 2), bool))
    with pytest.raises(RuntimeError, match="unbatched"):
        m(x[:, 0], x[:, 0], x[:, 0], key_padding_mask=np.zeros((1, 3), bool))
    with pytest.raises(ValueError, match="dropout probability"):
        nn.MultiheadAttention(8, 2, dropout=1.5)


# ---------------------------------------------------------------------- Embedding options


@pytest.mark.parametrize("kw", [dict(max_norm=1.5), dict(max_norm=2.0, norm_type=1.0, padding_idx=0),
                                dict(scale_grad_by_freq=True, padding_idx=2),
                                dict(max_norm=0.7, norm_type=float("inf"), scale_grad_by_freq=True)],
                         ids=["max_norm", "max_norm_l1_padding", "scale_grad_by_freq", "all"])
def test_embedding_options_vs_torch(kw, rng):
    W = rng.standard_normal((7, 5)) * 2
    idx = np.array([[1, 3, 3, 0], [6, 1, 1, 2], [2, 2, 5, 1]])
    tm = torch.nn.Embedding(7, 5, _weight=torch.tensor(W.copy()), **kw)
    pm = nn.Embedding(7, 5, dtype=pe.float64, **kw)
    pm.load_state_dict({"weight": W.copy()})
    before = pm.weight._version[0] if pm.weight._version else 0
    for step in range(2):  # the second forward sees the renormalised rows
        ot, op = tm(torch.tensor(idx)), pm(pe.tensor(idx))
        assert_close(op.detach(), ot.detach().numpy(), **TOL)
        assert_close(pm.weight.detach(), tm.weight.detach().numpy(), **TOL)  # renormalised in place
        g = rng.standard_normal(tuple(ot.shape))
        (ot * torch.tensor(g)).sum().backward()
        (op * pe.tensor(g)).sum().backward()
        assert_close(pm.weight.grad, tm.weight.grad.numpy(), **TOL)
    if "max_norm" in kw:
        assert pm.weight._version[0] > before  # an in-place write, as PyTorch's embedding_renorm_
        norms = np.linalg.norm(pm.weight._data[np.unique(idx)], ord=kw.get("norm_type", 2.0), axis=1)
        assert np.all(norms <= kw["max_norm"] + 1e-6)
        assert "max_norm=" in repr(pm)
    fn = F.embedding(pe.tensor(idx), pe.tensor(W.copy()), None, 1.0)  # torch's positional order
    assert_close(fn.detach(), torch.nn.functional.embedding(torch.tensor(idx), torch.tensor(W.copy()), None,
                                                            1.0).numpy(), **TOL)
    with pytest.raises(NotImplementedError, match="sparse"):
        nn.Embedding(3, 2, sparse=True)


def test_embedding_max_norm_out_of_range_index():
    with pytest.raises(IndexError, match="index 7 is out of range"):
        F.embedding(pe.tensor([1, 7]), pe.randn(5, 3), max_norm=1.0)


# ---------------------------------------------------------------------- training


def test_transformer_encoder_lm_learns():
    """A causal TransformerEncoder LM memorises a fixed batch of random tokens: the loss must fall well."""
    pe.manual_seed(0)
    rng = np.random.default_rng(0)
    V, T, B, D = 13, 8, 4, 16

    class LM(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(V, D)
            self.pos = nn.Parameter(pe.randn(T, D) * 0.1)
            layer = nn.TransformerEncoderLayer(D, 2, 32, dropout=0.0, batch_first=True, norm_first=True)
            self.enc = nn.TransformerEncoder(layer, 2, norm=nn.LayerNorm(D))
            self.head = nn.Linear(D, V)

        def forward(self, idx):
            mask = nn.Transformer.generate_square_subsequent_mask(idx.shape[1])
            return self.head(self.enc(self.emb(idx) + self.pos, mask=mask, is_causal=True))

    tokens = rng.integers(0, V, (B, T + 1))
    x, y = pe.tensor(tokens[:, :-1]), pe.tensor(tokens[:, 1:])
    model = LM()
    opt = pe.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(40):
        loss = F.cross_entropy(model(x).reshape(-1, V), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[0] > 2.0 and losses[-1] < 0.5 * losses[0], losses
