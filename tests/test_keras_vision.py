"""The Keras front's recurrent (GRU, SimpleRNN) and vision layers, checked against Keras's equations and
weight layouts by construction (TensorFlow is not a dependency), and a Keras CNN tutorial model that runs
with only its imports changed."""
import numpy as np
import pytest

import pyengine as pe
from pyengine import keras
from pyengine.keras import Sequential, layers, optimizers
from pyengine.keras.layers import GRU, Bidirectional, Dense, Embedding, SimpleRNN


def _sig(z):
    return 1 / (1 + np.exp(-z))


def _numpy_gru(x, kernel, recurrent, bias):
    """Keras's GRU (reset_after=True, gates z, r, h) in NumPy: x (B, T, I) -> states (B, T, H), last h."""
    B, T, _ = x.shape
    H = recurrent.shape[0]
    b_in, b_rec = (bias[0], bias[1]) if bias is not None else (0.0, 0.0)
    h, hs = np.zeros((B, H)), []
    for t in range(T):
        xi = x[:, t] @ kernel + b_in
        hr = h @ recurrent + b_rec
        z = _sig(xi[:, :H] + hr[:, :H])
        r = _sig(xi[:, H:2 * H] + hr[:, H:2 * H])
        cand = np.tanh(xi[:, 2 * H:] + r * hr[:, 2 * H:])
        h = z * h + (1 - z) * cand
        hs.append(h)
    return np.stack(hs, 1), h


def _numpy_rnn(x, kernel, recurrent, bias, act=np.tanh):
    B, T, _ = x.shape
    h, hs = np.zeros((B, recurrent.shape[0])), []
    for t in range(T):
        h = act(x[:, t] @ kernel + h @ recurrent + (bias if bias is not None else 0.0))
        hs.append(h)
    return np.stack(hs, 1), h


def _random_weights(layer, rng, scale=0.5):
    return [rng.standard_normal(w.shape).astype(np.float32) * scale for w in layer.get_weights()]


@pytest.mark.parametrize("use_bias", [True, False])
def test_gru_matches_keras_equations_and_weight_layout(use_bias):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 7, 5)).astype(np.float32)
    gru = GRU(4, return_sequences=True, return_state=True, use_bias=use_bias)
    seq, h = gru(x)
    assert tuple(seq.shape) == (3, 7, 4) and tuple(h.shape) == (3, 4)
    w = gru.get_weights()
    assert [a.shape for a in w] == [(5, 12), (4, 12)] + ([(2, 12)] if use_bias else [])
    np.testing.assert_allclose(w[1] @ w[1].T, np.eye(4), atol=1e-5)        # orthogonal recurrent kernel
    assert gru.count_params() == 3 * 4 * (5 + 4) + (2 * 12 if use_bias else 0)   # Keras's count
    new = _random_weights(gru, rng)
    gru.set_weights(new)
    for a, b in zip(gru.get_weights(), new):                              # the layout round-trips
        np.testing.assert_array_equal(a, b)
    ref_seq, ref_h = _numpy_gru(x.astype(np.float64), new[0], new[1], new[2] if use_bias else None)
    seq, h = gru(x)
    np.testing.assert_allclose(seq.detach().numpy(), ref_seq, atol=1e-5)
    np.testing.assert_allclose(h.detach().numpy(), ref_h, atol=1e-5)
    last = GRU(4, use_bias=use_bias)
    last.build((None, None, 5))
    last.set_weights(new)
    np.testing.assert_allclose(last(x).detach().numpy(), ref_h, atol=1e-5)
    back = GRU(4, go_backwards=True, return_sequences=True, use_bias=use_bias)   # Keras: reversed input,
    back.build((None, None, 5))                                                  # outputs in that order
    back.set_weights(new)
    ref_back, _ = _numpy_gru(x[:, ::-1].astype(np.float64), new[0], new[1], new[2] if use_bias else None)
    np.testing.assert_allclose(back(x).detach().numpy(), ref_back, atol=1e-5)


def test_gru_gradients_reach_every_keras_weight():
    rng = np.random.default_rng(1)
    gru = GRU(3)
    x = pe.tensor(rng.standard_normal((2, 4, 5)).astype(np.float32), requires_grad=True)
    gru(x).sum().backward()
    assert x.grad is not None and len(gru.trainable_weights) == 4        # kernel, recurrent, b_in, b_rec
    assert all(w.grad is not None and np.abs(w.grad.numpy()).sum() > 0 for w in gru.trainable_weights)


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_simple_rnn_matches_keras_equations(activation):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 6, 3)).astype(np.float32)
    rnn = SimpleRNN(5, activation=activation, return_sequences=True, return_state=True)
    seq, h = rnn(x)
    w = rnn.get_weights()
    assert [a.shape for a in w] == [(3, 5), (5, 5), (5,)]
    assert rnn.count_params() == 5 * (3 + 5 + 1) and len(rnn.trainable_weights) == 3
    new = _random_weights(rnn, rng, 0.4)
    rnn.set_weights(new)
    act = np.tanh if activation == "tanh" else (lambda z: np.maximum(z, 0))
    ref_seq, ref_h = _numpy_rnn(x.astype(np.float64), *new, act=act)
    seq, h = rnn(x)
    np.testing.assert_allclose(seq.detach().numpy(), ref_seq, atol=1e-5)
    np.testing.assert_allclose(h.detach().numpy(), ref_h, atol=1e-5)
    with pytest.raises(NotImplementedError, match="tanh' or 'relu"):
        SimpleRNN(4, activation="sigmoid")
    with pytest.raises(NotImplementedError, match="recurrent_dropout"):
        SimpleRNN(4, recurrent_dropout=0.2)
    with pytest.raises(NotImplementedError, match="reset_after"):
        GRU(4, reset_after=False)


@pytest.mark.parametrize("cls", [GRU, SimpleRNN])
def test_recurrent_masks_and_bidirectional(cls):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 5, 2)).astype(np.float32)
    mask = np.array([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1], [1, 1, 0, 0, 0]], bool)
    ref = _numpy_gru if cls is GRU else _numpy_rnn
    layer = cls(4, return_sequences=True)
    layer.build((None, 5, 2))
    w = _random_weights(layer, rng)
    layer.set_weights(w)
    seq = layer(x, mask=mask).detach().numpy()
    for b in range(3):
        steps = np.flatnonzero(mask[b])
        ref_seq, _ = ref(x[b:b + 1, steps].astype(np.float64), *w)
        np.testing.assert_allclose(seq[b, steps], ref_seq[0], atol=1e-5)
        np.testing.assert_array_equal(seq[b, ~mask[b]], 0)
    bi = Bidirectional(cls(4))
    bi.build((None, 5, 2))
    bi.set_weights(w + w)
    out = bi(x).detach().numpy()
    _, fwd = ref(x.astype(np.float64), *w)
    _, bwd = ref(x[:, ::-1].astype(np.float64), *w)
    np.testing.assert_allclose(out, np.concatenate([fwd, bwd], axis=1), atol=1e-5)


def test_gru_text_model_trains_saves_and_loads(tmp_path):
    rng = np.random.default_rng(4)
    x = rng.integers(1, 20, (64, 6))
    y = (x[:, :3].sum(1) > x[:, 3:].sum(1)).astype(np.float32)
    keras.utils.set_random_seed(0)
    model = Sequential([Embedding(20, 8, mask_zero=True), GRU(8, return_sequences=True), SimpleRNN(4),
                        Dense(1, activation="sigmoid")])
    model.compile(optimizer=optimizers.Adam(learning_rate=0.02), loss="binary_crossentropy", metrics=["accuracy"])
    hist = model.fit(x, y, epochs=3, batch_size=16, verbose=0)
    assert hist.history["loss"][-1] < hist.history["loss"][0]
    path = str(tmp_path / "gru.safetensors")
    model.save(path)
    again = keras.models.load_model(path)
    assert [type(layer).__name__ for layer in again.layers] == ["Embedding", "GRU", "SimpleRNN", "Dense"]
    np.testing.assert_allclose(again.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)


# ---------------------------------------------------------------------- convolution, pooling, batch norm

torch = pytest.importorskip("torch")
TF = torch.nn.functional


def _tf_same_pads(size, k, s, d):
    """TensorFlow's 'same' padding of one dim: output ceil(size / s), the odd pad after."""
    total = max((-(-size // s) - 1) * s + (k - 1) * d + 1 - size, 0)
    return total // 2, total - total // 2


def _torch_conv_reference(x_nhwc, kernel, bias, strides, padding, dilation, groups):
    """Keras's Conv2D by construction: torch's conv2d on the NCHW transpose, the (kh, kw, in, out) kernel as
    (out, in, kh, kw), TensorFlow's 'same' pads applied explicitly; returns NHWC."""
    x = x_nhwc.permute(0, 3, 1, 2)
    w = kernel.permute(3, 2, 0, 1)
    if padding == "same":
        (t, b), (l, r) = (_tf_same_pads(n, k, s, d) for n, k, s, d in
                          zip(x.shape[2:], kernel.shape[:2], strides, dilation))
        x = TF.pad(x, (l, r, t, b))
    y = TF.conv2d(x, w, bias, strides, 0, dilation, groups)
    return y.permute(0, 2, 3, 1)


CONV2D_CASES = [  # (batch, rows, cols, in, filters, kernel, strides, padding, dilation, groups, use_bias)
    (2, 7, 9, 3, 4, 3, 1, "valid", 1, 1, True),
    (1, 8, 5, 2, 5, (2, 3), (2, 1), "same", 1, 1, True),     # even kernel, stride 2: uneven 'same' pads
    (3, 11, 11, 4, 4, 3, 2, "same", 1, 4, False),            # depthwise
    (2, 10, 7, 6, 3, (3, 2), 1, "same", (2, 1), 3, True),    # dilation, groups
    (1, 5, 5, 1, 1, 5, 3, "valid", 1, 1, True),
]


@pytest.mark.parametrize("case", range(len(CONV2D_CASES)))
def test_conv2d_matches_keras_semantics(case):
    B, Hh, W, C, filters, k, s, padding, d, groups, use_bias = CONV2D_CASES[case]
    rng = np.random.default_rng(case)
    x = rng.standard_normal((B, Hh, W, C)).astype(np.float32)
    layer = layers.Conv2D(filters, k, strides=s, padding=padding, dilation_rate=d, groups=groups, use_bias=use_bias)
    xt = pe.tensor(x, requires_grad=True)
    out = layer(xt)
    weights = layer.get_weights()
    kh, kw = (k, k) if isinstance(k, int) else k
    assert weights[0].shape == (kh, kw, C // groups, filters)
    assert tuple(out.shape)[1:] == tuple(layer.compute_output_shape((None, Hh, W, C)))[1:]
    if use_bias:
        layer.set_weights([weights[0], rng.standard_normal(filters).astype(np.float32)])
        weights = layer.get_weights()
    out = layer(xt)
    g = rng.standard_normal(tuple(out.shape)).astype(np.float32)
    (out * pe.tensor(g)).sum().backward()

    xr = torch.tensor(x, requires_grad=True)
    kr = torch.tensor(weights[0], requires_grad=True)
    br = torch.tensor(weights[1], requires_grad=True) if use_bias else None
    s2 = (s, s) if isinstance(s, int) else s
    d2 = (d, d) if isinstance(d, int) else d
    ref = _torch_conv_reference(xr, kr, br, s2, padding, d2, groups)
    (ref * torch.tensor(g)).sum().backward()
    np.testing.assert_allclose(out.detach().numpy(), ref.detach().numpy(), atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(xt.grad.numpy(), xr.grad.numpy(), atol=1e-4, rtol=1e-4)
    kernel_grad = np.transpose(layer.weight.grad.numpy(), (2, 3, 1, 0))   # PyTorch layout -> Keras layout
    np.testing.assert_allclose(kernel_grad, kr.grad.numpy(), atol=1e-3, rtol=1e-4)
    if use_bias:
        np.testing.assert_allclose(layer.bias.grad.numpy(), br.grad.numpy(), atol=1e-3, rtol=1e-4)
    np.testing.assert_array_equal(layer.kernel.detach().numpy(), weights[0])   # the Keras-layout view

    first = layers.Conv2D(filters, k, strides=s, padding=padding, dilation_rate=d, groups=groups,
                          use_bias=use_bias, data_format="channels_first")
    first.build((None, C, Hh, W))
    first.set_weights(weights)
    np.testing.assert_allclose(first(np.ascontiguousarray(x.transpose(0, 3, 1, 2))).detach().numpy(),
                               ref.detach().numpy().transpose(0, 3, 1, 2), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("padding", ["valid", "same", "causal"])
def test_conv1d_matches_keras_semantics(padding):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 9, 3)).astype(np.float32)
    layer = layers.Conv1D(4, 3, padding=padding, dilation_rate=2, activation="tanh")
    out = layer(x).detach().numpy()
    kernel, bias = layer.get_weights()
    assert kernel.shape == (3, 3, 4)
    xr = torch.tensor(x).permute(0, 2, 1)
    pads = {"valid": (0, 0), "same": _tf_same_pads(9, 3, 1, 2), "causal": (4, 0)}[padding]
    ref = torch.tanh(TF.conv1d(TF.pad(xr, pads), torch.tensor(kernel).permute(2, 1, 0), torch.tensor(bias),
                               dilation=2)).permute(0, 2, 1)
    np.testing.assert_allclose(out, ref.numpy(), atol=1e-5)
    assert tuple(out.shape)[1:] == tuple(layer.compute_output_shape((None, 9, 3)))[1:]
    if padding == "causal":   # output t sees only inputs <= t
        x2 = x.copy()
        x2[:, 6:] += 1.0
        np.testing.assert_allclose(layer(x2).detach().numpy()[:, :6], out[:, :6], atol=1e-6)


def _numpy_pool(x, k, s, padding, mode):
    """TensorFlow's pooling of NHWC x: windows over the real positions only ('same' pads never count)."""
    B, Hh, W, C = x.shape
    pads = [_tf_same_pads(n, kk, ss, 1) if padding == "same" else (0, 0) for n, kk, ss in zip((Hh, W), k, s)]
    out_h = -(-Hh // s[0]) if padding == "same" else (Hh - k[0]) // s[0] + 1
    out_w = -(-W // s[1]) if padding == "same" else (W - k[1]) // s[1] + 1
    out = np.zeros((B, out_h, out_w, C))
    for i in range(out_h):
        for j in range(out_w):
            r0, c0 = i * s[0] - pads[0][0], j * s[1] - pads[1][0]
            win = x[:, max(r0, 0):r0 + k[0], max(c0, 0):c0 + k[1]]
            out[:, i, j] = win.max(axis=(1, 2)) if mode == "max" else win.mean(axis=(1, 2))
    return out


@pytest.mark.parametrize("cls,mode", [(layers.MaxPooling2D, "max"), (layers.AveragePooling2D, "avg")])
@pytest.mark.parametrize("pool,strides,padding", [(2, None, "valid"), (3, 2, "same"), ((2, 3), (1, 2), "same"),
                                                  (3, 1, "valid")])
def test_pooling_2d_matches_tensorflow_semantics(cls, mode, pool, strides, padding):
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 7, 8, 3)).astype(np.float32)
    layer = cls(pool, strides=strides, padding=padding)
    xt = pe.tensor(x, requires_grad=True)
    out = layer(xt)
    k = (pool, pool) if isinstance(pool, int) else pool
    s = k if strides is None else (strides, strides) if isinstance(strides, int) else strides
    np.testing.assert_allclose(out.detach().numpy(), _numpy_pool(x.astype(np.float64), k, s, padding, mode),
                               atol=1e-5)
    assert tuple(out.shape)[1:] == tuple(layer.compute_output_shape((None, 7, 8, 3)))[1:]
    out.sum().backward()
    eps, (b, r, c, ch) = 1e-2, (1, 3, 4, 2)                     # one input's gradient by finite differences
    xp, xm = x.astype(np.float64).copy(), x.astype(np.float64).copy()
    xp[b, r, c, ch] += eps
    xm[b, r, c, ch] -= eps
    numeric = (_numpy_pool(xp, k, s, padding, mode).sum() - _numpy_pool(xm, k, s, padding, mode).sum()) / (2 * eps)
    assert xt.grad.numpy()[b, r, c, ch] == pytest.approx(numeric, abs=1e-3)
    first = cls(pool, strides=strides, padding=padding, data_format="channels_first")
    np.testing.assert_allclose(first(np.ascontiguousarray(x.transpose(0, 3, 1, 2))).detach().numpy(),
                               out.detach().numpy().transpose(0, 3, 1, 2), atol=1e-6)


def test_pooling_1d_and_global_pooling():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 9, 4)).astype(np.float32)
    out = layers.MaxPooling1D(2)(x).detach().numpy()
    np.testing.assert_allclose(out, x[:, :8].reshape(2, 4, 2, 4).max(axis=2))
    avg = layers.AveragePooling1D(3, strides=2, padding="same")(x).detach().numpy()
    assert avg.shape == (2, 5, 4)
    np.testing.assert_allclose(avg[:, 0], x[:, 0:2].mean(1), atol=1e-6)        # pads (1, 1): the first window
    np.testing.assert_allclose(avg[:, 4], x[:, 7:9].mean(1), atol=1e-6)        # and the last hold 2 real steps
    img = rng.standard_normal((3, 5, 6, 2)).astype(np.float32)
    np.testing.assert_allclose(layers.GlobalAveragePooling2D()(img).detach().numpy(), img.mean(axis=(1, 2)),
                               atol=1e-6)
    np.testing.assert_allclose(layers.GlobalMaxPooling2D(keepdims=True)(img).detach().numpy(),
                               img.max(axis=(1, 2), keepdims=True))
    np.testing.assert_allclose(
        layers.GlobalAveragePooling2D(data_format="channels_first")(img.transpose(0, 3, 1, 2).copy())
        .detach().numpy(), img.mean(axis=(1, 2)), atol=1e-6)
    padded = layers.ZeroPadding2D(((1, 0), (2, 1)))(img).detach().numpy()
    assert padded.shape == (3, 6, 9, 2)
    np.testing.assert_array_equal(padded[:, 1:, 2:8], img)


def test_batch_normalization_keras_conventions():
    rng = np.random.default_rng(8)
    x = (rng.standard_normal((4, 5, 3, 6)) * 3 + 2).astype(np.float32)
    bn = layers.BatchNormalization()
    bn.build((None, 5, 3, 6))
    assert [w.shape for w in bn.get_weights()] == [(6,)] * 4
    assert len(bn.trainable_weights) == 2 and len(bn.non_trainable_weights) == 2
    gamma, beta = (rng.standard_normal(6).astype(np.float32) for _ in range(2))
    bn.set_weights([gamma, beta, np.zeros(6, np.float32), np.ones(6, np.float32)])
    xt = pe.tensor(x, requires_grad=True)
    out = bn(xt, training=True)
    mean, var = x.mean(axis=(0, 1, 2)), x.var(axis=(0, 1, 2))                # biased batch variance
    np.testing.assert_allclose(out.detach().numpy(), (x - mean) / np.sqrt(var + 1e-3) * gamma + beta, atol=1e-4)
    _, _, moving_mean, moving_var = bn.get_weights()
    np.testing.assert_allclose(moving_mean, 0.01 * mean, rtol=1e-5)           # momentum 0.99 keeps 99% of the old
    np.testing.assert_allclose(moving_var, 0.99 + 0.01 * var, rtol=1e-5)
    # gradients: torch's batch norm in training mode on the same data
    g = rng.standard_normal(x.shape).astype(np.float32)
    (out * pe.tensor(g)).sum().backward()
    xr = torch.tensor(x, requires_grad=True)
    gr, br = torch.tensor(gamma, requires_grad=True), torch.tensor(beta, requires_grad=True)
    ref = TF.batch_norm(xr.reshape(-1, 6), None, None, gr, br, training=True, eps=1e-3).reshape(x.shape)
    (ref * torch.tensor(g)).sum().backward()
    np.testing.assert_allclose(xt.grad.numpy(), xr.grad.numpy(), atol=1e-4)
    np.testing.assert_allclose(bn.gamma.grad.numpy(), gr.grad.numpy(), atol=1e-3)
    # inference: the moving statistics; a frozen layer runs in inference mode even with training=True
    infer = bn(x).detach().numpy()
    np.testing.assert_allclose(infer, (x - moving_mean) / np.sqrt(moving_var + 1e-3) * gamma + beta, atol=1e-4)
    bn.trainable = False
    np.testing.assert_allclose(bn(x, training=True).detach().numpy(), infer, atol=1e-6)
    np.testing.assert_array_equal(bn.get_weights()[2], moving_mean)
    assert bn.trainable_weights == []
    # channels_first: axis=1
    bn1 = layers.BatchNormalization(axis=1, momentum=0.5, epsilon=1e-5)
    xf = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    out1 = bn1(xf, training=True).detach().numpy()
    np.testing.assert_allclose(out1, ((x - mean) / np.sqrt(var + 1e-5)).transpose(0, 3, 1, 2), atol=1e-4)
    np.testing.assert_allclose(bn1.get_weights()[2], 0.5 * mean, rtol=1e-5)


def test_conv_layer_errors():
    with pytest.raises(ValueError, match="padding"):
        layers.Conv2D(4, 3, padding="full")
    with pytest.raises(ValueError, match="kernel_size"):
        layers.Conv2D(4, (3, 3, 3))
    with pytest.raises(ValueError, match="filters"):
        layers.Conv2D(0, 3)
    with pytest.raises(ValueError, match="4 dims"):
        layers.Conv2D(4, 3)(np.zeros((2, 8, 3), np.float32))
    with pytest.raises(ValueError, match="not divisible by groups"):
        layers.Conv2D(4, 3, groups=2)(np.zeros((1, 5, 5, 3), np.float32))
    with pytest.raises(ValueError, match="data_format"):
        layers.MaxPooling2D(data_format="NHWC")


def _digits_images():
    """scikit-learn's 8x8 digits, each pixel made 2x2, as (n, 16, 16, 1) channels_last images in [0, 1]."""
    from sklearn.datasets import load_digits
    digits = load_digits()
    x = np.kron(digits.images.astype(np.float32) / 16.0, np.ones((1, 2, 2), np.float32))[..., None]
    return x, digits.target


def test_keras_cnn_tutorial_runs_with_only_the_imports_changed(tmp_path):
    # Keras's "Simple MNIST convnet" tutorial, imports changed, on scikit-learn's digits (upscaled to 16x16)
    from pyengine import keras
    from pyengine.keras import layers

    num_classes = 10
    input_shape = (16, 16, 1)
    x, y = _digits_images()
    x_train, y_train, x_test, y_test = x[:1400], y[:1400], x[1400:], y[1400:]
    y_train = keras.utils.to_categorical(y_train, num_classes)
    y_test = keras.utils.to_categorical(y_test, num_classes)
    keras.utils.set_random_seed(0)

    model = keras.Sequential(
        [
            keras.Input(shape=input_shape),
            layers.Conv2D(16, kernel_size=(3, 3), activation="relu"),
            layers.MaxPooling2D(pool_size=(2, 2)),
            layers.Conv2D(32, kernel_size=(3, 3), activation="relu"),
            layers.MaxPooling2D(pool_size=(2, 2)),
            layers.Flatten(),
            layers.Dropout(0.5),
            layers.Dense(num_classes, activation="softmax"),
        ]
    )
    lines = []
    model.summary(print_fn=lines.append)
    summary = "\n".join(lines)
    assert "(None, 14, 14, 16)" in summary and "(None, 2, 2, 32)" in summary
    assert model.count_params() == (9 * 16 + 16) + (9 * 16 * 32 + 32) + (128 * 10 + 10)

    batch_size, epochs = 16, 6
    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    history = model.fit(x_train, y_train, batch_size=batch_size, epochs=epochs, validation_split=0.1, verbose=0)
    score = model.evaluate(x_test, y_test, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert score[1] >= 0.8, score       # 6 short epochs; examples/digits_cnn.py trains to >= 0.98

    path = str(tmp_path / "cnn.safetensors")
    model.save(path)
    again = keras.models.load_model(path)
    np.testing.assert_allclose(again.predict(x_test[:20], verbose=0), model.predict(x_test[:20], verbose=0),
                               atol=1e-5)


def test_functional_cnn_with_batch_norm_and_global_pooling(tmp_path):
    inputs = keras.Input(shape=(12, 12, 3))
    h = layers.Conv2D(8, 3, padding="same", use_bias=False)(inputs)
    h = layers.BatchNormalization()(h)
    h = layers.Activation("relu")(h)
    h = layers.AveragePooling2D()(h)
    h = layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(h)
    h = layers.GlobalAveragePooling2D()(h)
    outputs = layers.Dense(3, activation="softmax")(h)
    model = keras.Model(inputs, outputs)
    assert model.output_shape == (None, 3)
    stem = Sequential([layers.Conv2D(4, 3), layers.MaxPooling2D(), layers.Flatten()])   # a model as a layer
    assert stem(keras.Input(shape=(12, 12, 3))).shape == (None, 100) and stem.output_shape == (None, 100)
    rng = np.random.default_rng(9)
    x = rng.standard_normal((48, 12, 12, 3)).astype(np.float32)
    y = rng.integers(0, 3, 48)
    model.compile(optimizer=optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=2, batch_size=16, verbose=0)
    bn = model.layers[2]
    assert isinstance(bn, layers.BatchNormalization)
    assert not np.allclose(bn.get_weights()[2], 0)          # fit updated the moving statistics
    assert model.predict(x[:4], verbose=0).shape == (4, 3)
    path = str(tmp_path / "bn.safetensors")
    model.save(path)
    again = keras.models.load_model(path)        # configs (BN's momentum/epsilon, conv padding) and moving stats
    assert [type(layer).__name__ for layer in again.layers] == [type(layer).__name__ for layer in model.layers]
    np.testing.assert_allclose(again.predict(x[:8], verbose=0), model.predict(x[:8], verbose=0), atol=1e-6)


@pytest.mark.parametrize("padding,k,s", [("same", 3, 2), ("same", 4, 2), ("valid", 3, 2), ("same", 2, 3),
                                         ("valid", 2, 3), ("same", 3, 1)])
def test_conv2d_transpose_is_the_adjoint_of_conv2d(padding, k, s):
    # TensorFlow defines conv2d_transpose as the gradient of conv2d: with the same kernel array (Conv2D's
    # (kh, kw, big, small) is Conv2DTranspose's (kh, kw, filters, in)), <conv(x), y> = <x, conv_T(y)>
    rng = np.random.default_rng(10)
    y = rng.standard_normal((2, 4, 5, 3)).astype(np.float32)
    up = layers.Conv2DTranspose(6, k, strides=s, padding=padding, use_bias=False)
    out = up(y).detach().numpy()
    H, W = out.shape[1:3]
    if padding == "same":
        assert (H, W) == (4 * s, 5 * s)
    else:
        assert (H, W) == (4 * s + max(k - s, 0), 5 * s + max(k - s, 0))
    assert tuple(up.compute_output_shape((None, 4, 5, 3)))[1:] == out.shape[1:]
    kernel = up.get_weights()[0]
    assert kernel.shape == (k, k, 6, 3)
    conv = layers.Conv2D(3, k, strides=s, padding=padding, use_bias=False)
    conv.build((None, H, W, 6))
    conv.set_weights([kernel])
    x = rng.standard_normal((2, H, W, 6)).astype(np.float32)
    cx = conv(x).detach().numpy()
    assert cx.shape == y.shape
    assert float((cx * y).sum()) == pytest.approx(float((x * out).sum()), rel=1e-4, abs=1e-3)
    # the bias is added to every output position, and channels_first agrees
    up_b = layers.Conv2DTranspose(6, k, strides=s, padding=padding, data_format="channels_first")
    up_b.build((None, 3, 4, 5))
    bias = rng.standard_normal(6).astype(np.float32)
    up_b.set_weights([kernel, bias])
    np.testing.assert_allclose(up_b(np.ascontiguousarray(y.transpose(0, 3, 1, 2))).detach().numpy(),
                               (out + bias).transpose(0, 3, 1, 2), atol=1e-5)


def test_depthwise_conv2d_and_upsampling():
    rng = np.random.default_rng(11)
    x = rng.standard_normal((2, 7, 6, 3)).astype(np.float32)
    dw = layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same")
    out = dw(x).detach().numpy()
    kernel, bias = dw.get_weights()
    assert kernel.shape == (3, 3, 3, 2) and out.shape == (2, 7, 6, 6)
    bias = rng.standard_normal(6).astype(np.float32)
    dw.set_weights([kernel, bias])
    out = dw(x).detach().numpy()
    for c in range(3):           # output channel c * 2 + m: channel c convolved with kernel[..., c, m]
        for m in range(2):
            single = layers.Conv2D(1, 3, padding="same")
            single.build((None, 7, 6, 1))
            single.set_weights([kernel[:, :, c:c + 1, m:m + 1], bias[c * 2 + m:c * 2 + m + 1]])
            np.testing.assert_allclose(out[..., c * 2 + m], single(x[..., c:c + 1]).detach().numpy()[..., 0],
                                       atol=1e-5)
    config = dw.get_config()
    again = layers.DepthwiseConv2D.from_config(config)
    again.build((None, 7, 6, 3))
    again.set_weights(dw.get_weights())
    np.testing.assert_allclose(again(x).detach().numpy(), out, atol=1e-6)

    up = layers.UpSampling2D((2, 3))(x).detach().numpy()
    np.testing.assert_array_equal(up, x.repeat(2, axis=1).repeat(3, axis=2))
    bil = layers.UpSampling2D(2, interpolation="bilinear")(x).detach().numpy()
    ref = TF.interpolate(torch.tensor(x).permute(0, 3, 1, 2), scale_factor=2, mode="bilinear",
                         align_corners=False).permute(0, 2, 3, 1).numpy()
    np.testing.assert_allclose(bil, ref, atol=1e-5)
