"""Regression: disease progression one year after baseline (scikit-learn's diabetes data), MLP vs least squares.

442 patients, 10 baseline variables (age, sex, BMI, blood pressure, six serum measurements). Features
and target are standardised with ``StandardScaler`` fitted on the training rows only; a small MLP is
trained with ``MSELoss`` and the epoch with the lowest validation MSE is restored from its checkpoint.
The test MSE and R^2 are printed next to those of ordinary least squares (``np.linalg.lstsq``) fitted
on the same standardised training rows. This dataset is small and close to linear: a well regularised
MLP matches the linear baseline; expect no large win.

    pip install scikit-learn                   # only for the bundled dataset
    python examples/diabetes_regression.py     # ~150 epochs, a few seconds
    python examples/diabetes_regression.py --quick
"""
import argparse
import os
import tempfile
import time

import numpy as np
from sklearn.datasets import load_diabetes

import pyengine as pe
import pyengine.nn as nn
from pyengine.preprocessing import StandardScaler, train_test_split
from pyengine.utils.data import DataLoader, TensorDataset


def make_model(n_features=10, hidden=32, dropout=0.1):
    return nn.Sequential(nn.Linear(n_features, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, 1))


def r2_score(y_true, y_pred):
    """Coefficient of determination: 1 - SS_res / SS_tot."""
    y_true, y_pred = np.asarray(y_true, np.float64).ravel(), np.asarray(y_pred, np.float64).ravel()
    return float(1.0 - np.sum((y_true - y_pred) ** 2) / np.sum((y_true - y_true.mean()) ** 2))


def least_squares(X_train, y_train, X_test):
    """Ordinary least squares with an intercept: the linear baseline's predictions for X_test."""
    ones = lambda a: np.hstack([a, np.ones((len(a), 1))])  # noqa: E731
    coef, *_ = np.linalg.lstsq(ones(X_train).astype(np.float64), y_train.astype(np.float64), rcond=None)
    return ones(X_test) @ coef


def predict(model, X):
    model.eval()
    with pe.no_grad():
        return model(pe.tensor(X)).numpy()


def main(epochs=None, quick=False, seed=0, checkpoint=None, verbose=True):
    """Train, keep the best epoch, compare with least squares on the test set. Returns a dict of metrics."""
    epochs = epochs if epochs is not None else (60 if quick else 150)
    log = print if verbose else (lambda *a, **k: None)
    t0 = time.perf_counter()
    pe.manual_seed(seed)

    data = load_diabetes()
    X = data.data.astype(np.float32)
    y = data.target.astype(np.float32).reshape(-1, 1)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, seed=seed)
    X_train, X_val, y_train, y_val = train_test_split(X_train, y_train, test_size=0.2, seed=seed)
    x_scaler, y_scaler = StandardScaler().fit(X_train), StandardScaler().fit(y_train)   # training rows only
    X_train, X_val, X_test = (x_scaler.transform(a) for a in (X_train, X_val, X_test))
    # the model learns standardised targets; validation and test are scored in the original units
    t_train = y_scaler.transform(y_train)
    log(f"diabetes: {len(y_train)} train / {len(y_val)} val / {len(y_test)} test patients, {X.shape[1]} features")

    train_loader = DataLoader(TensorDataset(X_train, t_train), batch_size=32, shuffle=True)
    model = make_model(X.shape[1])
    loss_fn = nn.MSELoss()
    optimizer = pe.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-2)

    tmp = None
    if checkpoint is None:
        tmp = tempfile.TemporaryDirectory()
        checkpoint = os.path.join(tmp.name, "diabetes_best.safetensors")
    best_mse, best_epoch = float("inf"), 0
    try:
        for epoch in range(1, epochs + 1):
            model.train()
            running = 0.0
            for x, target in train_loader:
                loss = loss_fn(model(x), target)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                running += loss.item() * len(target)
            val_mse = float(np.mean((y_scaler.inverse_transform(predict(model, X_val)) - y_val) ** 2))
            if val_mse < best_mse:
                best_mse, best_epoch = val_mse, epoch
                pe.save({"model": model.state_dict(), "x_scaler": x_scaler.state_dict(),
                         "y_scaler": y_scaler.state_dict(), "epoch": epoch}, checkpoint)
            if verbose and (epoch % 10 == 0 or epoch == 1):
                log(f"epoch {epoch:4d}  train loss (standardised) {running / len(t_train):.4f}  "
                    f"val MSE {val_mse:8.1f}")
        model.load_state_dict(pe.load(checkpoint)["model"])
    finally:
        if tmp is not None:
            tmp.cleanup()

    pred = y_scaler.inverse_transform(predict(model, X_test))               # back to the target's units
    baseline = least_squares(X_train, y_train, X_test)
    mlp_mse, mlp_r2 = float(np.mean((pred - y_test) ** 2)), r2_score(y_test, pred)
    lin_mse, lin_r2 = float(np.mean((baseline - y_test) ** 2)), r2_score(y_test, baseline)
    seconds = time.perf_counter() - t0
    log(f"best epoch {best_epoch} (val MSE {best_mse:.1f})")
    log(f"test MSE {mlp_mse:8.1f}  R^2 {mlp_r2:.4f}   MLP")
    log(f"test MSE {lin_mse:8.1f}  R^2 {lin_r2:.4f}   least squares (same standardised training rows)")
    log(f"MLP R^2 / least-squares R^2 = {mlp_r2 / lin_r2:.3f}  ({seconds:.1f} s)")
    return {"test_mse": mlp_mse, "test_r2": mlp_r2, "baseline_mse": lin_mse, "baseline_r2": lin_r2,
            "val_mse": best_mse, "best_epoch": best_epoch, "epochs": epochs, "seconds": seconds}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=None, help="epochs to train (default 150, 60 with --quick)")
    parser.add_argument("--quick", action="store_true", help="a short run (for tests and smoke checks)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--checkpoint", default=None, help="where to keep the best checkpoint (default: a temp file)")
    args = parser.parse_args()
    main(epochs=args.epochs, quick=args.quick, seed=args.seed, checkpoint=args.checkpoint)
