"""pyengine.keras: the tf.keras front (models, layers, losses, metrics, callbacks, progress bar, files)."""
import io
import math
import os
import sys

import numpy as np
import pytest

import pyengine as pe
from pyengine import keras
from pyengine.keras import Input, Model, Sequential, callbacks, layers, losses, metrics, optimizers
from pyengine.keras.layers import LSTM, Dense, Embedding


@pytest.fixture(autouse=True)
def _fresh_session():
    keras.backend.clear_session()
    pe.manual_seed(0)
    yield


def _token_data(n=512, T=10, vocab=50, token=7, seed=0):
    """Sequences of ids in [1, vocab); label 1 iff ``token`` appears."""
    rng = np.random.default_rng(seed)
    x = rng.integers(1, vocab, (n, T))
    return x, (x == token).any(axis=1).astype(np.float32)


def _blobs(n=300, seed=0):
    """Three separable 2-D clusters: x (n, 2) float32, integer labels (n,)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    centers = np.array([[0.0, 3.0], [3.0, -2.0], [-3.0, -2.0]])
    return (centers[y] + rng.standard_normal((n, 2))).astype(np.float32), y


def _mlp(out=1, activation="sigmoid", inputs=4):
    return Sequential([Input(shape=(inputs,)), Dense(16, activation="relu"), Dense(out, activation=activation)])


def _binary_data(n=200, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 4)).astype(np.float32)
    return x, (x[:, 0] - x[:, 1] > 0).astype(np.float32)


# ---------------------------------------------------------------------- the product brief's program


def test_brief_program_learns_token_presence(capsys):
    x, y = _token_data(n=640)
    x_train, y_train, x_test, y_test = x[:512], y[:512], x[512:], y[512:]
    # the brief's program, verbatim apart from its imports
    model = Sequential([
        Embedding(input_dim=10000, output_dim=256),
        LSTM(128),
        Dense(1, activation='sigmoid')
    ])
    model.compile(optimizer='adam', loss='binary_crossentropy', metrics=['accuracy'])
    history = model.fit(x_train, y_train, epochs=10, batch_size=32)
    assert history.history["accuracy"][-1] > 0.97
    assert history.history["loss"][-1] < 0.1 < history.history["loss"][0]
    loss, acc = model.evaluate(x_test, y_test, verbose=0)
    assert acc > 0.95
    out = capsys.readouterr().out
    assert out.count("Epoch ") == 10 and "\r" not in out  # one line per epoch: pytest's stdout is no terminal


# ---------------------------------------------------------------------- layers


def test_dense_builds_lazily_with_keras_layout_and_init():
    d = Dense(3, activation="relu")
    assert not d.built
    out = d(np.ones((2, 5), np.float32))
    assert d.built and tuple(out.shape) == (2, 3)
    kernel, bias = d.get_weights()
    assert kernel.shape == (5, 3) and bias.shape == (3,)
    assert np.all(bias == 0)
    limit = math.sqrt(6 / (5 + 3))  # glorot_uniform
    assert np.abs(kernel).max() <= limit and np.abs(kernel).max() > limit / 4
    assert tuple(d.kernel.shape) == (5, 3)
    x = np.random.default_rng(0).standard_normal((4, 5)).astype(np.float32)
    np.testing.assert_allclose(d(x).detach().numpy(), np.maximum(x @ kernel + bias, 0), rtol=1e-5, atol=1e-6)
    assert tuple(d(np.ones((2, 7, 5), np.float32)).shape) == (2, 7, 3)  # applies to the last axis
    d.set_weights([np.ones((5, 3)), np.full(3, 0.5)])
    np.testing.assert_allclose(d(np.ones((1, 5))).detach().numpy(), np.full((1, 3), 5.5))
    with pytest.raises(ValueError, match="shape"):
        d.set_weights([np.ones((3, 5)), np.zeros(3)])


def test_embedding_shapes_init_and_bad_ids():
    emb = Embedding(input_dim=100, output_dim=8)
    out = emb(np.array([[1, 2, 3], [4, 5, 6]]))
    assert tuple(out.shape) == (2, 3, 8)
    (table,) = emb.get_weights()
    assert table.shape == (100, 8) and np.abs(table).max() <= 0.05
    np.testing.assert_array_equal(out.detach().numpy()[1, 0], table[4])
    assert tuple(emb(np.array([[1.0, 2.0]])).shape) == (1, 2, 8)  # float ids are cast
    with pytest.raises(ValueError, match=r"id 100 is outside \[0, 100\)"):
        emb(np.array([[1, 100]]))
    assert Embedding(10, 4).compute_mask(np.array([[0, 1]])) is None
    np.testing.assert_array_equal(Embedding(10, 4, mask_zero=True).compute_mask(np.array([[0, 3, 0]])),
                                  [[False, True, False]])


def _numpy_lstm(x, kernel, recurrent, bias):
    """Keras's LSTM equations (gates i, f, c, o) in NumPy: x (B, T, I) -> all hidden states (B, T, H)."""
    B, T, _ = x.shape
    H = recurrent.shape[0]
    sig = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
    h, c, hs = np.zeros((B, H)), np.zeros((B, H)), []
    for t in range(T):
        z = x[:, t] @ kernel + h @ recurrent + bias
        i, f, g, o = sig(z[:, :H]), sig(z[:, H:2 * H]), np.tanh(z[:, 2 * H:3 * H]), sig(z[:, 3 * H:])
        c = f * c + i * g
        h = o * np.tanh(c)
        hs.append(h)
    return np.stack(hs, 1), h, c


def test_lstm_matches_keras_equations_and_keras_weight_layout():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 6, 5)).astype(np.float32)
    lstm = LSTM(4, return_sequences=True, return_state=True)
    seq, h, c = lstm(x)
    assert tuple(seq.shape) == (3, 6, 4) and tuple(h.shape) == (3, 4) and tuple(c.shape) == (3, 4)
    kernel, recurrent, bias = lstm.get_weights()
    assert kernel.shape == (5, 16) and recurrent.shape == (4, 16) and bias.shape == (16,)
    np.testing.assert_array_equal(bias, np.r_[np.zeros(4), np.ones(4), np.zeros(8)])  # unit_forget_bias
    np.testing.assert_allclose(recurrent @ recurrent.T, np.eye(4), atol=1e-5)        # orthogonal
    assert lstm.count_params() == 4 * 4 * (5 + 4 + 1)
    # random Keras-layout weights in, Keras's equations out
    new = [rng.standard_normal(w.shape).astype(np.float32) * 0.5 for w in (kernel, recurrent, bias)]
    lstm.set_weights(new)
    ref_seq, ref_h, ref_c = _numpy_lstm(x.astype(np.float64), *new)
    seq, h, c = lstm(x)
    np.testing.assert_allclose(seq.detach().numpy(), ref_seq, atol=1e-5)
    np.testing.assert_allclose(h.detach().numpy(), ref_h, atol=1e-5)
    np.testing.assert_allclose(c.detach().numpy(), ref_c, atol=1e-5)
    last = LSTM(4)
    last.build((None, None, 5))
    last.set_weights(new)
    np.testing.assert_allclose(last(x).detach().numpy(), ref_h, atol=1e-5)
    with pytest.raises(NotImplementedError, match="recurrent_dropout"):
        LSTM(4, recurrent_dropout=0.1)


def test_sequential_build_output_shapes_and_summary():
    model = Sequential([Embedding(1000, 16), LSTM(8), Dense(1, activation="sigmoid")])
    assert not model.built
    with pytest.raises(ValueError, match="not yet been built"):
        model.summary()
    model.build((None, 20))
    assert model.built and all(layer.built for layer in model.layers)
    lines = []
    model.summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert 'Model: "sequential"' in text
    assert "embedding (Embedding)" in text and "(None, 20, 16)" in text and "16,000" in text
    assert "lstm (LSTM)" in text and "(None, 8)" in text and f"{4 * 8 * (16 + 8 + 1):,}" in text
    assert "dense (Dense)" in text and "(None, 1)" in text
    total = 16000 + 4 * 8 * 25 + 9
    assert f"Total params: {total:,}" in text and f"Trainable params: {total:,}" in text
    assert "Non-trainable params: 0" in text
    assert model.count_params() == total
    assert [layer.name for layer in model.layers] == ["embedding", "lstm", "dense"]
    assert len(model.trainable_weights) == 2 + 3 + 1 + 1 - 1  # embeddings; kernel, recurrent, bias; kernel, bias


def test_input_shape_declared_on_first_layer_is_checked():
    model = Sequential([Dense(4, input_shape=(3,)), Dense(1)])
    assert model.built
    with pytest.raises(ValueError, match="incompatible"):
        model(np.ones((2, 5), np.float32))


def test_dropout_only_in_training():
    drop = layers.Dropout(0.5)
    x = np.ones((100, 10), np.float32)
    assert np.array_equal(drop(x).detach().numpy(), x)
    y = drop(x, training=True).detach().numpy()
    assert set(np.unique(y)) <= {0.0, 2.0} and 0.3 < (y == 0).mean() < 0.7


def test_flatten_activation_reshape():
    model = Sequential([Input(shape=(2, 3)), layers.Flatten(), layers.Activation("tanh"), layers.Reshape((3, 2))])
    x = np.arange(12, dtype=np.float32).reshape(2, 2, 3) / 10
    np.testing.assert_allclose(model.predict(x, verbose=0), np.tanh(x).reshape(2, 3, 2), rtol=1e-6)
    assert model.layers[0].output_shape == (None, 6)
    with pytest.raises(ValueError, match="Unknown activation"):
        Dense(2, activation="swoosh")


# ---------------------------------------------------------------------- losses and metrics vs NumPy


def test_losses_match_numpy_formulas():
    rng = np.random.default_rng(2)
    eps = 1e-7
    p = rng.uniform(0.01, 0.99, (6, 1)).astype(np.float32)
    y = rng.integers(0, 2, 6).astype(np.float32)                  # (6,) labels against (6, 1) outputs
    bce = -np.mean(y[:, None] * np.log(p) + (1 - y[:, None]) * np.log(1 - p))
    assert float(losses.BinaryCrossentropy()(y, pe.tensor(p))) == pytest.approx(bce, rel=1e-5)
    z = rng.standard_normal((6, 1)).astype(np.float32)
    bce_logits = np.mean(np.maximum(z, 0) - z * y[:, None] + np.log1p(np.exp(-np.abs(z))))
    assert float(losses.BinaryCrossentropy(from_logits=True)(y, pe.tensor(z))) == pytest.approx(bce_logits, rel=1e-5)
    # clipping as Keras: p = 1 with label 0 costs -log(1e-7), not infinity
    worst = -np.log(1 - np.float32(1 - eps))  # 1 - 1e-7 rounds to 1 - 2^-23 in float32
    assert float(losses.binary_crossentropy(np.zeros((1, 1)), pe.ones(1, 1))[0]) == pytest.approx(worst, rel=1e-3)
    probs = rng.dirichlet(np.ones(4), 5).astype(np.float32)
    labels = rng.integers(0, 4, 5)
    onehot = np.eye(4, dtype=np.float32)[labels]
    cce = np.mean(-np.log(probs[np.arange(5), labels]))
    assert float(losses.CategoricalCrossentropy()(onehot, pe.tensor(probs))) == pytest.approx(cce, rel=1e-5)
    assert float(losses.SparseCategoricalCrossentropy()(labels, pe.tensor(probs))) == pytest.approx(cce, rel=1e-5)
    logits = rng.standard_normal((5, 4)).astype(np.float32)
    lsm = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    assert float(losses.get("sparse_categorical_crossentropy").__class__(from_logits=True)(labels, pe.tensor(logits))) \
        == pytest.approx(-lsm[np.arange(5), labels].mean(), rel=1e-5)
    a, b = rng.standard_normal((5, 3)).astype(np.float32), rng.standard_normal((5, 3)).astype(np.float32)
    assert float(losses.get("mse")(a, pe.tensor(b))) == pytest.approx(np.mean((a - b) ** 2), rel=1e-5)
    assert float(losses.get("mae")(a, pe.tensor(b))) == pytest.approx(np.mean(np.abs(a - b)), rel=1e-5)
    e = np.abs(a - b)
    huber = np.mean(np.where(e <= 1, 0.5 * e ** 2, e - 0.5))
    assert float(losses.Huber()(a, pe.tensor(b))) == pytest.approx(huber, rel=1e-5)
    w = np.array([1.0, 0.0, 2.0, 1.0, 0.5], np.float32)
    weighted = np.sum(np.mean((a - b) ** 2, 1) * w) / 5  # Keras: sum over batch / batch size
    assert float(losses.MeanSquaredError()(a, pe.tensor(b), sample_weight=w)) == pytest.approx(weighted, rel=1e-5)
    assert tuple(losses.mean_squared_error(a, pe.tensor(b)).shape) == (5,)  # functions: one value per sample


def test_losses_are_differentiable():
    p = pe.tensor([[0.3], [0.8]], requires_grad=True)
    losses.BinaryCrossentropy()(np.array([1.0, 0.0]), p).backward()
    # d/dp of -(y log p + (1 - y) log(1 - p)) / 2
    np.testing.assert_allclose(p.grad.numpy(), [[-1 / 0.3 / 2], [1 / 0.2 / 2]], rtol=1e-5)


def test_unknown_names_fail_clearly():
    with pytest.raises(ValueError, match="Unknown loss function: 'binary_crossentrpy'"):
        losses.get("binary_crossentrpy")
    model = _mlp()
    with pytest.raises(ValueError, match="Unknown loss function"):
        model.compile(optimizer="adam", loss="crossentropy_of_doom")
    with pytest.raises(ValueError, match="Unknown optimizer"):
        model.compile(optimizer="adamm", loss="mse")
    with pytest.raises(ValueError, match="Unknown metric"):
        model.compile(optimizer="adam", loss="mse", metrics=["acuracy"])


def test_metrics_match_numpy():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, (8, 1)).astype(np.float32)
    p = rng.uniform(size=(8, 1)).astype(np.float32)
    m = metrics.BinaryAccuracy()
    m.update_state(y[:4], p[:4])
    m.update_state(y[4:], p[4:])
    assert m.result() == pytest.approx(np.mean(y == (p > 0.5)))
    m.reset_state()
    assert m.result() == 0.0
    probs = rng.dirichlet(np.ones(3), 10)
    labels = rng.integers(0, 3, 10)
    acc = np.mean(probs.argmax(1) == labels)
    assert metrics.SparseCategoricalAccuracy()(labels, probs) == pytest.approx(acc)
    assert metrics.CategoricalAccuracy()(np.eye(3)[labels], probs) == pytest.approx(acc)
    a, b = rng.standard_normal((10, 2)), rng.standard_normal((10, 2))
    assert metrics.get("mae")(a, b) == pytest.approx(np.mean(np.abs(a - b)))
    assert metrics.get("mse")(a, b) == pytest.approx(np.mean((a - b) ** 2))
    assert metrics.RootMeanSquaredError()(a, b) == pytest.approx(np.sqrt(np.mean((a - b) ** 2)))
    yb, pb = np.array([1, 1, 0, 0, 1]), np.array([0.9, 0.4, 0.6, 0.1, 0.8])
    assert metrics.Precision()(yb, pb) == pytest.approx(2 / 3)
    assert metrics.Recall()(yb, pb) == pytest.approx(2 / 3)
    auc_exact = np.mean([[float(pp > pn) for pn in pb[yb == 0]] for pp in pb[yb == 1]])
    assert metrics.AUC()(yb, pb) == pytest.approx(auc_exact, abs=0.02)


@pytest.mark.parametrize("loss, y, expected", [
    ("binary_crossentropy", np.array([0.0, 1.0]), "binary_accuracy"),
    ("categorical_crossentropy", np.eye(3)[[0, 2]], "categorical_accuracy"),
    ("sparse_categorical_crossentropy", np.array([0, 2]), "sparse_categorical_accuracy"),
    ("mse", np.array([0.0, 1.0]), "binary_accuracy"),          # by shape: one output unit
    (losses.sparse_categorical_crossentropy, np.array([0, 2]), "sparse_categorical_accuracy"),  # a function:
    (losses.categorical_crossentropy, np.eye(3)[[0, 2]], "categorical_accuracy"),             # by shapes
])
def test_accuracy_resolves_by_loss_and_shapes(loss, y, expected):
    out, act = (1, "sigmoid") if expected == "binary_accuracy" else (3, "softmax")
    model = _mlp(out, act)
    model.compile(optimizer="adam", loss=loss, metrics=["accuracy"])
    x = np.zeros((2, 4), np.float32)
    model.evaluate(x, y, verbose=0)
    (acc,) = model._metrics
    assert acc.name == "accuracy" and acc.fn.__name__ == expected


# ---------------------------------------------------------------------- fit, evaluate, predict


def test_fit_returns_history_with_keys_and_lengths():
    x, y = _binary_data()
    model = _mlp()
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy", "mse"])
    history = model.fit(x, y, epochs=4, batch_size=32, validation_split=0.2, verbose=0)
    assert isinstance(history, callbacks.History) and model.history is history
    assert set(history.history) == {"loss", "accuracy", "mse", "val_loss", "val_accuracy", "val_mse"}
    assert all(len(v) == 4 for v in history.history.values())
    assert history.epoch == [0, 1, 2, 3]
    assert all(isinstance(v, float) for vs in history.history.values() for v in vs)
    h2 = model.fit(x, y, epochs=6, initial_epoch=4, verbose=0)
    assert h2.epoch == [4, 5] and set(h2.history) == {"loss", "accuracy", "mse"}


def test_validation_split_holds_out_the_last_fraction():
    x, y = _binary_data(n=100)
    model = _mlp()
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y, epochs=2, batch_size=16, validation_split=0.25, verbose=0)
    # the validation values of the last epoch are exactly those of the last 25 samples, at the final weights
    loss, acc = model.evaluate(x[75:], y[75:], verbose=0)
    assert history.history["val_loss"][-1] == pytest.approx(loss, rel=1e-6)
    assert history.history["val_accuracy"][-1] == pytest.approx(acc)
    other, _ = model.evaluate(x[:25], y[:25], verbose=0)
    assert other != pytest.approx(loss)
    # training used the first 75 only: 5 steps of 16 per epoch
    steps = []
    model.fit(x, y, epochs=1, batch_size=16, validation_split=0.25, verbose=0,
              callbacks=[callbacks.LambdaCallback(on_train_batch_end=lambda b, logs: steps.append(b))])
    assert steps == [0, 1, 2, 3, 4]


def test_validation_data_and_evaluate_predict_shapes():
    x, y = _binary_data()
    model = _mlp()
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    history = model.fit(x[:150], y[:150], validation_data=(x[150:], y[150:]), epochs=2, verbose=0)
    loss, acc = model.evaluate(x[150:], y[150:], batch_size=7, verbose=0)
    assert history.history["val_loss"][-1] == pytest.approx(loss, rel=1e-5)
    assert model.evaluate(x, y, verbose=0, return_dict=True).keys() == {"loss", "accuracy"}
    pred = model.predict(x, batch_size=64, verbose=0)
    assert isinstance(pred, np.ndarray) and pred.shape == (200, 1) and pred.dtype == np.float32
    assert np.all((pred > 0) & (pred < 1))
    np.testing.assert_allclose(pred[:5], model(x[:5]).detach().numpy(), rtol=1e-6)
    model.compile(optimizer="adam", loss="mse")
    assert isinstance(model.evaluate(x, y, verbose=0), float)  # loss only: a scalar


def test_inputs_as_lists_and_tensors():
    x, y = _binary_data(n=64)
    model = _mlp()
    model.compile(optimizer="sgd", loss="mse")
    h1 = model.fit(x.tolist(), y.tolist(), epochs=1, verbose=0, shuffle=False)
    h2 = model.fit(pe.tensor(x), pe.tensor(y), epochs=1, verbose=0, shuffle=False)
    assert len(h1.history["loss"]) == len(h2.history["loss"]) == 1
    loader = pe.utils.data.DataLoader(pe.utils.data.TensorDataset(pe.tensor(x), pe.tensor(y)), batch_size=16)
    h3 = model.fit(loader, epochs=2, verbose=0)
    assert len(h3.history["loss"]) == 2


def test_bad_inputs_fail_clearly():
    x, y = _binary_data()
    model = _mlp()
    with pytest.raises(RuntimeError, match="compile"):
        model.fit(x, y, verbose=0)
    model.compile(optimizer="adam", loss="binary_crossentropy")
    with pytest.raises(ValueError, match=r"cardinality.*x sizes: 200.*y sizes: 150"):
        model.fit(x, y[:150], verbose=0)
    with pytest.raises(ValueError, match="validation_split"):
        model.fit(x, y, validation_split=1.5, verbose=0)
    with pytest.raises(ValueError, match="batch_size"):
        model.fit(x, y, batch_size=0, verbose=0)
    with pytest.raises(ValueError, match="pad_sequences"):
        model.fit([[1, 2], [3]], [0, 1], verbose=0)
    with pytest.raises(ValueError, match="verbose"):
        model.fit(x, y, verbose=3)


def test_multiclass_softmax_learns_with_sparse_and_onehot_labels():
    x, y = _blobs()
    for loss, labels in (("sparse_categorical_crossentropy", y),
                         ("categorical_crossentropy", keras.utils.to_categorical(y, 3))):
        model = _mlp(3, "softmax", inputs=2)
        model.compile(optimizer=optimizers.Adam(learning_rate=0.01), loss=loss, metrics=["accuracy"])
        history = model.fit(x, labels, epochs=15, batch_size=32, verbose=0)
        assert history.history["accuracy"][-1] > 0.95
        np.testing.assert_allclose(model.predict(x[:4], verbose=0).sum(1), 1.0, rtol=1e-5)


def test_sigmoid_output_loss_uses_logits():
    model = Sequential([Input(shape=(1,)), Dense(1, activation="sigmoid")])
    model.set_weights([np.array([[50.0]]), np.zeros(1)])
    model.compile(optimizer="adam", loss="binary_crossentropy")
    # sigmoid(50) == 1.0 in float32: the probability path would give -log(1e-7) = 16.1
    assert model.evaluate(np.ones((1, 1)), np.zeros(1), verbose=0) == pytest.approx(50.0, rel=1e-5)
    model.compile(optimizer="adam", loss=losses.BinaryCrossentropy(from_logits=True))
    assert model.evaluate(np.ones((1, 1)), np.zeros(1), verbose=0) < 17  # user says outputs are logits: taken so


def test_custom_loss_function_and_regularizer():
    x, y = _binary_data(n=64)

    def my_mse(y_true, y_pred):
        return ((y_pred - y_true.reshape(-1, 1)) ** 2).mean(dim=-1)

    model = Sequential([Input(shape=(4,)), Dense(1, kernel_regularizer=keras.regularizers.l2(0.1))])
    model.compile(optimizer="sgd", loss=my_mse)
    kernel, _ = model.get_weights()
    expected = np.mean((model.predict(x, verbose=0) - y[:, None]) ** 2) + 0.1 * np.sum(kernel ** 2)
    assert model.evaluate(x, y, batch_size=64, verbose=0) == pytest.approx(expected, rel=1e-5)


# ---------------------------------------------------------------------- callbacks


def test_early_stopping_stops_and_restores_best_weights():
    x, y = _binary_data()
    model = _mlp()
    model.compile(optimizer=optimizers.Adam(learning_rate=0.02), loss="binary_crossentropy")
    # validation labels are flipped: the better the model learns, the worse val_loss gets
    early = callbacks.EarlyStopping(monitor="val_loss", patience=2, restore_best_weights=True)
    history = model.fit(x, y, validation_data=(x, 1 - y), epochs=30, verbose=0, callbacks=[early])
    val = history.history["val_loss"]
    assert len(val) < 30 and early.stopped_epoch == len(val) - 1
    assert early.best_epoch == int(np.argmin(val)) and len(val) - 1 - early.best_epoch == 2
    assert model.evaluate(x, 1 - y, verbose=0) == pytest.approx(min(val), rel=1e-5)


def test_early_stopping_mode_auto_and_missing_monitor():
    assert callbacks.EarlyStopping(monitor="val_accuracy").mode == "max"
    assert callbacks.EarlyStopping(monitor="val_loss").mode == "min"
    x, y = _binary_data(n=32)
    model = _mlp()
    model.compile(optimizer="adam", loss="mse")
    with pytest.warns(UserWarning, match="val_loss"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[callbacks.EarlyStopping()])


def test_model_checkpoint_writes_files(tmp_path):
    x, y = _binary_data(n=64)
    model = _mlp()
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    every = callbacks.ModelCheckpoint(str(tmp_path / "ckpt-{epoch:02d}-{loss:.2f}.safetensors"), monitor="loss")
    best = callbacks.ModelCheckpoint(str(tmp_path / "best.weights"), monitor="val_loss", save_best_only=True,
                                     save_weights_only=True)
    history = model.fit(x, y, epochs=3, validation_split=0.25, verbose=0, callbacks=[every, best])
    names = sorted(os.listdir(tmp_path))
    assert [n[:7] for n in names if n.startswith("ckpt")] == ["ckpt-01", "ckpt-02", "ckpt-03"]
    assert "best.weights" in names
    last = next(n for n in names if n.startswith("ckpt-03"))
    assert last == f"ckpt-03-{history.history['loss'][-1]:.2f}.safetensors"
    restored = keras.models.load_model(str(tmp_path / last))
    np.testing.assert_allclose(restored.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6)
    with pytest.raises(ValueError, match="weights only"):
        keras.models.load_model(str(tmp_path / "best.weights"))


def test_lambda_callback_and_hook_order():
    x, y = _binary_data(n=64)
    model = _mlp()
    model.compile(optimizer="adam", loss="mse")
    events = []

    class Recorder(callbacks.Callback):
        def on_train_begin(self, logs=None): events.append("train_begin")
        def on_epoch_begin(self, epoch, logs=None): events.append(f"epoch_begin {epoch}")
        def on_train_batch_end(self, batch, logs=None): events.append(f"batch {batch} {sorted(logs)}")
        def on_epoch_end(self, epoch, logs=None): events.append(f"epoch_end {epoch} {sorted(logs)}")
        def on_train_end(self, logs=None): events.append("train_end")

    seen = []
    model.fit(x, y, epochs=2, batch_size=32, validation_split=0.5, verbose=0,
              callbacks=[Recorder(), callbacks.LambdaCallback(on_epoch_end=lambda e, logs: seen.append(e))])
    assert events == ["train_begin", "epoch_begin 0", "batch 0 ['loss']", "epoch_end 0 ['loss', 'val_loss']",
                      "epoch_begin 1", "batch 0 ['loss']", "epoch_end 1 ['loss', 'val_loss']", "train_end"]
    assert seen == [0, 1]


def test_learning_rate_scheduler_and_stop_training():
    x, y = _binary_data(n=64)
    model = _mlp()
    model.compile(optimizer=optimizers.SGD(learning_rate=0.1), loss="mse")
    sched = callbacks.LearningRateScheduler(lambda epoch, lr: lr * 0.5)
    history = model.fit(x, y, epochs=3, verbose=0, callbacks=[sched])
    assert history.history["learning_rate"] == pytest.approx([0.05, 0.025, 0.0125])
    assert model.optimizer._opt.param_groups[0]["lr"] == pytest.approx(0.0125)
    stopper = callbacks.LambdaCallback(on_train_batch_end=lambda b, logs: setattr(model, "stop_training", True))
    history = model.fit(x, y, epochs=5, batch_size=8, verbose=0, callbacks=[stopper])
    assert len(history.history["loss"]) == 1


# ---------------------------------------------------------------------- progress bar


def test_progress_is_one_line_per_epoch_when_not_a_terminal(capsys):
    x, y = _binary_data(n=64)
    model = _mlp()
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y, epochs=3, batch_size=16, validation_split=0.25)
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert len(lines) == 3 and "\r" not in out
    for i, line in enumerate(lines):
        assert line.startswith(f"Epoch {i + 1}/3 - ")
        assert f"loss: {history.history['loss'][i]:.4f}" in line
        assert f"accuracy: {history.history['accuracy'][i]:.4f}" in line
        assert f"val_loss: {history.history['val_loss'][i]:.4f}" in line
    model.evaluate(x, y)
    assert capsys.readouterr().out.startswith("2/2 - ")
    model.fit(x, y, epochs=2, verbose=0)
    model.predict(x, verbose=0)
    assert capsys.readouterr().out == ""


class _FakeTerminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_bar_redraws_in_place_in_a_terminal(monkeypatch):
    term = _FakeTerminal()
    monkeypatch.setattr(sys, "stdout", term)
    x, y = _binary_data(n=64)
    model = _mlp()
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=2, batch_size=16, validation_split=0.25)
    out = term.getvalue()
    assert out.startswith("Epoch 1/2\n\r")
    assert "Epoch 2/2\n\r" in out
    assert "[" in out and "=" in out and "- ETA: " in out
    finals = [part for part in out.split("\r") if part.endswith("\n") and "[" in part]
    assert len(finals) == 2  # each epoch's bar is ended once, with its final state
    assert finals[0].startswith("3/3 [==============================] - ")
    assert "val_loss: " in finals[0] and "ms/step" in finals[0] or "us/step" in finals[0]
    term.seek(0)
    term.truncate()
    model.fit(x, y, epochs=2, batch_size=16, verbose=2)  # verbose=2: one line per epoch even here
    assert term.getvalue().count("\n") == 2 and "\r" not in term.getvalue()


def test_progbar_formatting():
    out = io.StringIO()
    bar = keras.utils.Progbar(4, verbose=1, stream=out, prefix="Epoch 1/1")
    for step in range(4):
        bar.update(step + 1, [("loss", float(step))])
    line = out.getvalue()
    assert line.startswith("Epoch 1/1 - ") and line.endswith(" - loss: 1.5000\n")  # averaged over steps


# ---------------------------------------------------------------------- files and weights


def test_save_load_model_predicts_identically_and_continues_training(tmp_path):
    x, y = _token_data(n=128, T=8, vocab=30)
    model = Sequential([Embedding(30, 8), LSTM(6), layers.Dropout(0.1), Dense(1, activation="sigmoid")])
    model.compile(optimizer=optimizers.Adam(learning_rate=0.01), loss="binary_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=2, batch_size=32, verbose=0)
    path = str(tmp_path / "model.safetensors")
    model.save(path)
    restored = keras.models.load_model(path)
    assert [type(layer).__name__ for layer in restored.layers] == ["Embedding", "LSTM", "Dropout", "Dense"]
    assert [layer.name for layer in restored.layers] == [layer.name for layer in model.layers]
    np.testing.assert_array_equal(restored.predict(x, verbose=0), model.predict(x, verbose=0))
    assert restored.optimizer.iterations == model.optimizer.iterations == 8
    assert restored.optimizer.learning_rate == pytest.approx(0.01)
    # one more epoch on each, same shuffling and dropout: the optimizer state came back too
    pe.manual_seed(5)
    h1 = model.fit(x, y, epochs=1, batch_size=32, verbose=0)
    pe.manual_seed(5)
    h2 = restored.fit(x, y, epochs=1, batch_size=32, verbose=0)
    assert h1.history == h2.history
    for a, b in zip(model.get_weights(), restored.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_keras_file_names_are_refused_with_a_format_that_works(tmp_path):
    """".keras" promises Keras 3's zip archive and ".h5" HDF5; pyengine writes its own checkpoint, which real
    Keras cannot open, so those names are refused (saving used to write safetensors under them)."""
    model = Sequential([Dense(2)])
    model.build((None, 3))
    for name, call in (("m.keras", model.save), ("m.h5", model.save), ("m.weights.h5", model.save_weights)):
        with pytest.raises(ValueError, match=r"Keras file format.*Save to '.*m\.safetensors' instead"):
            call(str(tmp_path / name))
        assert not os.listdir(tmp_path)
    with pytest.raises(ValueError, match="ModelCheckpoint.*Keras file format"):
        callbacks.ModelCheckpoint(str(tmp_path / "ckpt-{epoch}.keras"))
    model.save(str(tmp_path / "m.safetensors"))
    assert keras.models.load_model(str(tmp_path / "m.safetensors")).layers[0].units == 2


def test_weights_round_trip_and_save_weights(tmp_path):
    x, _ = _binary_data(n=8)
    a, b = _mlp(), _mlp()
    assert not np.allclose(a.predict(x, verbose=0), b.predict(x, verbose=0))
    b.set_weights(a.get_weights())
    np.testing.assert_array_equal(a.predict(x, verbose=0), b.predict(x, verbose=0))
    assert [w.shape for w in a.get_weights()] == [(4, 16), (16,), (16, 1), (1,)]
    with pytest.raises(ValueError, match="expects 4 weight arrays"):
        a.set_weights(a.get_weights()[:2])
    path = tmp_path / "w.weights"
    a.save_weights(str(path))
    c = _mlp()
    c.load_weights(str(path))
    np.testing.assert_array_equal(a.predict(x, verbose=0), c.predict(x, verbose=0))


def test_functional_and_subclassed_models(tmp_path):
    x, y = _binary_data()
    inputs = Input(shape=(4,))
    h = Dense(8, activation="relu")(inputs)
    skip = Dense(8)(inputs)
    outputs = Dense(1, activation="sigmoid")(layers.Concatenate()([h, skip]))
    model = Model(inputs, outputs)
    assert isinstance(model, keras.models.Functional) and len(model.layers) == 5
    model.compile(optimizer=optimizers.Adam(learning_rate=0.02), loss="binary_crossentropy", metrics=["accuracy"])
    assert model.fit(x, y, epochs=10, verbose=0).history["accuracy"][-1] > 0.9
    path = str(tmp_path / "functional.safetensors")
    model.save(path)
    np.testing.assert_array_equal(keras.models.load_model(path).predict(x, verbose=0), model.predict(x, verbose=0))

    class TwoLayer(Model):
        def __init__(self, units=8, **kwargs):
            super().__init__(**kwargs)
            self.units = units
            self.hidden = Dense(units, activation="relu")
            self.out = Dense(1, activation="sigmoid")

        def call(self, inputs, training=False):
            return self.out(self.hidden(inputs))

        def get_config(self):
            return {"units": self.units}

    sub = TwoLayer()
    sub.compile(optimizer=optimizers.Adam(learning_rate=0.02), loss="binary_crossentropy", metrics=["accuracy"])
    assert sub.fit(x, y, epochs=10, verbose=0).history["accuracy"][-1] > 0.9
    assert [layer.name for layer in sub.layers] == ["dense_3", "dense_4"]
    path = str(tmp_path / "sub.safetensors")
    sub.save(path)
    with pytest.raises(ValueError, match="custom_objects"):
        keras.models.load_model(path)
    again = keras.models.load_model(path, custom_objects={"TwoLayer": TwoLayer})
    np.testing.assert_array_equal(again.predict(x, verbose=0), sub.predict(x, verbose=0))


def test_optimizers_keras_defaults_and_updates():
    adam = optimizers.get("adam")
    assert (adam.learning_rate, adam.epsilon, adam.beta_1, adam.beta_2) == (0.001, 1e-7, 0.9, 0.999)
    assert optimizers.get("sgd").learning_rate == 0.01
    assert optimizers.AdamW().weight_decay == 0.004
    # RMSprop, Keras formula: v = rho v + (1 - rho) g^2;  p -= lr g / sqrt(v + eps)
    p = pe.nn.Parameter(np.array([1.0, -2.0], np.float32))
    rms = optimizers.RMSprop(learning_rate=0.1)
    for _ in range(2):
        rms.apply_gradients([(pe.tensor([0.5, -1.0]), p)])
    g, v, ref = np.array([0.5, -1.0]), np.zeros(2), np.array([1.0, -2.0])
    for _ in range(2):
        v = 0.9 * v + 0.1 * g * g
        ref = ref - 0.1 * g / np.sqrt(v + 1e-7)
    np.testing.assert_allclose(p.detach().numpy(), ref, rtol=1e-5)
    assert rms.iterations == 2
    # clipnorm scales each gradient to norm <= clipnorm
    q = pe.nn.Parameter(np.zeros(2, np.float32))
    optimizers.SGD(learning_rate=1.0, clipnorm=1.0).apply_gradients([(pe.tensor([3.0, 4.0]), q)])
    np.testing.assert_allclose(q.detach().numpy(), [-0.6, -0.8], rtol=1e-6)
    sched = optimizers.schedules.ExponentialDecay(0.1, decay_steps=10, decay_rate=0.5)
    assert optimizers.SGD(learning_rate=sched).learning_rate == pytest.approx(0.1)
    assert sched(20) == pytest.approx(0.025)


def test_keras_rmsprop_adagrad_run_pyengine_optim():
    """Keras's RMSprop / Adagrad are pyengine.optim's (rho -> alpha, epsilon -> eps): the same trajectory;
    Adagrad also equals Keras's formula (epsilon inside the root) within the documented 3e-7."""
    rng = np.random.default_rng(5)
    grads = [rng.standard_normal((3, 5)) for _ in range(6)]
    cases = [(optimizers.RMSprop(learning_rate=0.01, rho=0.8, momentum=0.5, centered=True),
              lambda ps: pe.optim.RMSprop(ps, lr=0.01, alpha=0.8, eps=1e-7, momentum=0.5, centered=True)),
             (optimizers.Adagrad(learning_rate=0.1, initial_accumulator_value=0.2),
              lambda ps: pe.optim.Adagrad(ps, lr=0.1, initial_accumulator_value=0.2, eps=1e-7))]
    for keras_opt, make in cases:
        p, q = pe.nn.Parameter(np.ones((3, 5))), pe.nn.Parameter(np.ones((3, 5)))
        opt = make([q])
        for g in grads:
            keras_opt.apply_gradients([(pe.tensor(g), p)])
            q.grad = pe.tensor(g)
            opt.step()
        np.testing.assert_array_equal(p.detach().numpy(), q.detach().numpy())
        assert type(keras_opt._opt) is type(opt)
    acc, ref = np.full((3, 5), 0.2), np.ones((3, 5))
    for g in grads:
        acc = acc + g * g
        ref = ref - 0.1 * g / np.sqrt(acc + 1e-7)  # Keras's Adagrad
    np.testing.assert_allclose(p.detach().numpy(), ref, rtol=3e-7)


def test_keras_import_paths():
    from pyengine.keras.preprocessing.sequence import pad_sequences
    from pyengine.keras.preprocessing.text import Tokenizer
    from pyengine.keras.utils import to_categorical
    tok = Tokenizer(num_words=10)
    tok.fit_on_texts(["the cat sat", "the dog"])
    x = pad_sequences(tok.texts_to_sequences(["the cat", "dog"]), maxlen=3)
    assert x.shape == (2, 3) and x[1, 0] == 0
    assert to_categorical([1, 0], 2).tolist() == [[0, 1], [1, 0]]
    assert keras.Sequential is Sequential and keras.layers.Dense is Dense


def test_multi_input_functional_model_with_generator_and_batch_methods():
    rng = np.random.default_rng(4)
    a = rng.standard_normal((96, 3)).astype(np.float32)
    ids = rng.integers(0, 20, (96, 5))
    y = (a[:, 0] > 0).astype(np.float32)
    in_a, in_ids = Input(shape=(3,)), Input(shape=(5,), dtype="int32")
    pooled = layers.GlobalAveragePooling1D()(Embedding(20, 4)(in_ids))
    model = Model([in_a, in_ids], Dense(1, activation="sigmoid")(layers.Concatenate()([in_a, pooled])))
    model.compile(optimizer=optimizers.Adam(learning_rate=0.05), loss="binary_crossentropy", metrics=["accuracy"])
    assert model.fit([a, ids], y, epochs=5, batch_size=16, verbose=0).history["accuracy"][-1] > 0.9
    loss, acc = model.train_on_batch([a, ids], y)
    assert model.test_on_batch([a, ids], y, return_dict=True).keys() == {"loss", "accuracy"}
    assert model.predict([a, ids], verbose=0).shape == (96, 1)

    def batches():  # a generator never ends: steps_per_epoch says where an epoch does
        while True:
            i = rng.integers(0, 96, 16)
            yield [a[i], ids[i]], y[i]
    steps = []
    model.fit(batches(), steps_per_epoch=3, epochs=2, verbose=0,
              callbacks=[callbacks.LambdaCallback(on_train_batch_end=lambda b, logs: steps.append(b))])
    assert steps == [0, 1, 2, 0, 1, 2]
    with pytest.raises(ValueError, match="steps_per_epoch"):
        model.fit(batches(), epochs=1, verbose=0)
    assert model.training  # fit, evaluate and predict put the train/eval flag back as they found it
    model.eval()
    model.fit([a, ids], y, epochs=1, verbose=0)
    assert not model.training


class _Scale(layers.Layer):
    """A custom layer written the Keras way: add_weight in build, math in call, get_config for saving."""

    def __init__(self, init=1.0, **kwargs):
        super().__init__(**kwargs)
        self.init = init

    def build(self, input_shape):
        self.w = self.add_weight(name="w", shape=(input_shape[-1],), initializer=keras.initializers.Constant(self.init))

    def call(self, inputs):
        return inputs * self.w

    def get_config(self):
        return {**super().get_config(), "init": self.init}


def test_custom_layer_trains_saves_and_loads(tmp_path):
    x, y = _binary_data(n=64)
    scale = _Scale(2.0)
    model = Sequential([Input(shape=(4,)), scale, Dense(1, activation="sigmoid")])
    assert scale.built and [w.shape for w in scale.get_weights()] == [(4,)]
    assert list(scale.state_dict()) == ["w"] and len(model.trainable_weights) == 3
    np.testing.assert_array_equal(scale.get_weights()[0], [2.0] * 4)
    model.compile(optimizer="adam", loss="binary_crossentropy")
    model.fit(x, y, epochs=2, verbose=0)
    assert not np.allclose(scale.get_weights()[0], 2.0)  # it learned
    path = str(tmp_path / "custom.safetensors")
    model.save(path)
    with pytest.raises(ValueError, match="Unknown layer: '_Scale'"):
        keras.models.load_model(path)
    again = keras.models.load_model(path, custom_objects={"_Scale": _Scale})
    np.testing.assert_array_equal(again.predict(x, verbose=0), model.predict(x, verbose=0))


@pytest.mark.parametrize("loss, y, out", [
    (losses.BinaryCrossentropy(), [[1.0], [0.0], [1.0]], [[0.9], [0.3], [1.0]]),
    (losses.BinaryCrossentropy(from_logits=True), [1.0, 0.0, 1.0], [[2.0], [-30.0], [0.1]]),
    (losses.SparseCategoricalCrossentropy(), [0, 2, 1], [[0.7, 0.2, 0.1], [0.1, 0.1, 0.8], [0.0, 1.0, 0.0]]),
    (losses.SparseCategoricalCrossentropy(from_logits=True), [[0], [2], [1]], [[3.0, 0.0, -1.0]] * 3),
    (losses.MeanSquaredError(), [1.0, 2.0, 3.0], [[1.5], [2.0], [0.0]]),
])
def test_fused_batch_mean_equals_per_sample_path(loss, y, out):
    fused = float(loss(np.array(y), pe.tensor(out)))
    per_sample = float(loss(np.array(y), pe.tensor(out), sample_weight=np.ones(3)))
    assert fused == pytest.approx(per_sample, rel=1e-6)


@pytest.mark.parametrize("merge_mode", ["concat", "sum"])
def test_bidirectional_lstm_matches_both_directions(merge_mode, tmp_path):
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 5, 3)).astype(np.float32)
    bi = layers.Bidirectional(LSTM(4, return_sequences=True), merge_mode=merge_mode)
    out = bi(x)
    weights = bi.get_weights()
    assert [w.shape for w in weights] == [(3, 16), (4, 16), (16,)] * 2 and bi.count_params() == 2 * 4 * 4 * 8
    fwd, _, _ = _numpy_lstm(x.astype(np.float64), *weights[:3])
    bwd, _, _ = _numpy_lstm(x[:, ::-1].astype(np.float64), *weights[3:])
    bwd = bwd[:, ::-1]  # back in time order
    expected = np.concatenate([fwd, bwd], -1) if merge_mode == "concat" else fwd + bwd
    np.testing.assert_allclose(out.detach().numpy(), expected, atol=1e-5)
    model = Sequential([Input(shape=(5,), dtype="int32"), Embedding(10, 3),
                        layers.Bidirectional(LSTM(4), merge_mode=merge_mode), Dense(1, activation="sigmoid")])
    assert model.layers[1].output_shape == (None, 8 if merge_mode == "concat" else 4)
    model.compile(optimizer="adam", loss="binary_crossentropy")
    ids = rng.integers(0, 10, (16, 5))
    model.fit(ids, rng.integers(0, 2, 16), epochs=1, verbose=0)
    model.save(str(tmp_path / "bi.safetensors"))
    again = keras.models.load_model(str(tmp_path / "bi.safetensors"))
    np.testing.assert_array_equal(again.predict(ids, verbose=0), model.predict(ids, verbose=0))


def test_masked_lstm_reads_only_the_real_steps():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((4, 6, 3)).astype(np.float32)
    mask = np.array([[0, 0, 1, 1, 1, 1],     # pre-padded
                     [1, 1, 1, 1, 1, 1],     # full
                     [1, 1, 1, 0, 0, 0],     # post-padded
                     [0, 0, 0, 0, 0, 0]], bool)  # empty
    lstm = LSTM(5, return_sequences=True)
    lstm.build((None, 6, 3))
    w = [rng.standard_normal(v.shape).astype(np.float32) * 0.5 for v in lstm.get_weights()]
    lstm.set_weights(w)
    seq = lstm(x, mask=mask).detach().numpy()
    last_layer = LSTM(5)
    last_layer.build((None, 6, 3))
    last_layer.set_weights(w)
    last = last_layer(x, mask=mask).detach().numpy()
    for b in range(4):
        steps = np.flatnonzero(mask[b])
        if len(steps) == 0:
            np.testing.assert_array_equal(last[b], 0)
            continue
        ref_seq, ref_h, _ = _numpy_lstm(x[b:b + 1, steps].astype(np.float64), *w)
        np.testing.assert_allclose(last[b], ref_h[0], atol=1e-5)
        np.testing.assert_allclose(seq[b, steps], ref_seq[0], atol=1e-5)
        np.testing.assert_array_equal(seq[b, ~mask[b]], 0)
    bi = layers.Bidirectional(LSTM(5))
    bi.build((None, 6, 3))
    bi.set_weights(w + w)  # the same weights both ways
    out = bi(x, mask=mask).detach().numpy()
    steps = np.flatnonzero(mask[0])
    _, fwd, _ = _numpy_lstm(x[:1, steps].astype(np.float64), *w)
    _, bwd, _ = _numpy_lstm(x[:1, steps[::-1]].astype(np.float64), *w)
    np.testing.assert_allclose(out[0], np.concatenate([fwd[0], bwd[0]]), atol=1e-5)
    with pytest.raises(NotImplementedError, match="gaps"):
        last_layer(x, mask=np.array([[1, 0, 1, 1, 1, 1]] * 4, bool))


def test_mask_zero_makes_predictions_independent_of_padding():
    from pyengine.keras.preprocessing.sequence import pad_sequences
    x, y = _token_data(n=96, T=6, vocab=20)
    x[::2, :2] = 0  # padding in half the rows
    model = Sequential([Embedding(20, 8, mask_zero=True), LSTM(6), Dense(1, activation="sigmoid")])
    model.compile(optimizer=optimizers.Adam(learning_rate=0.01), loss="binary_crossentropy")
    model.fit(x, y, epochs=1, batch_size=32, verbose=0)  # trains through the masked path
    seqs = [[3, 7, 1], [5], [2, 2, 9, 4]]
    short = model.predict(pad_sequences(seqs, maxlen=4), verbose=0)
    np.testing.assert_allclose(model.predict(pad_sequences(seqs, maxlen=9), verbose=0), short, atol=1e-6)
    np.testing.assert_allclose(model.predict(pad_sequences(seqs, maxlen=7, padding="post"), verbose=0), short,
                               atol=1e-6)
    pooled = Sequential([Embedding(20, 4, mask_zero=True), layers.GlobalAveragePooling1D()])
    ids = np.array([[0, 0, 3, 5]])
    mean = pooled.predict(ids, verbose=0)[0]
    table = pooled.layers[0].get_weights()[0]
    np.testing.assert_allclose(mean, (table[3] + table[5]) / 2, rtol=1e-6)
