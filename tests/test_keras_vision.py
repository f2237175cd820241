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
