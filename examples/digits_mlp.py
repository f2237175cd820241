"""Handwritten digit recognition: an MLP on scikit-learn's 8x8 digits (1797 images, 10 classes).

The whole PyTorch-style loop on real data, offline: train / validation / test splits, pixels
standardised with statistics of the training images only, a model built from ``nn.Sequential``, a
``DataLoader`` over a ``TensorDataset``, AdamW with a cosine learning-rate schedule, the best epoch
(lowest validation loss) kept in a checkpoint with ``pyengine.save`` and restored with
``pyengine.load`` before the test set is scored.

    pip install scikit-learn            # only for the bundled dataset
    python examples/digits_mlp.py       # ~40 epochs, a few seconds; test accuracy ~0.97
    python examples/digits_mlp.py --quick
"""
import argparse
import os
import tempfile
import time

import numpy as np
from sklearn.datasets import load_digits

import pyengine as pe
import pyengine.nn as nn
import pyengine.nn.functional as F
from pyengine.preprocessing import StandardScaler, train_test_split
from pyengine.utils.data import DataLoader, TensorDataset


def make_model(hidden=128, dropout=0.1):
    # 64 pixels -> 10 class logits (softmax is inside cross_entropy)
    return nn.Sequential(
        nn.Linear(64, hidden), nn.ReLU(), nn.Dropout(dropout),
        nn.Linear(hidden, hidden), nn.ReLU(), nn.Dropout(dropout),
        nn.Linear(hidden, 10),
    )


def evaluate(model, loader):
    """Mean cross-entropy and accuracy of ``model`` over ``loader``."""
    model.eval()
    total_loss, correct, n = 0.0, 0, 0
    with pe.no_grad():
        for x, y in loader:
            logits = model(x)
            total_loss += F.cross_entropy(logits, y, reduction="sum").item()
            correct += int((logits.argmax(dim=1) == y).sum().item())
            n += len(y)
    return total_loss / n, correct / n


def main(epochs=None, quick=False, seed=0, checkpoint=None, verbose=True):
    """Train, keep the best epoch, score it on the test set. Returns a dict of metrics."""
    epochs = epochs if epochs is not None else (15 if quick else 40)
    log = print if verbose else (lambda *a, **k: None)
    t0 = time.perf_counter()
    pe.manual_seed(seed)

    # data: 1797 images of 8x8 pixels (0..16); 20% held out for test, 15% of the rest for validation
    digits = load_digits()
    X = digits.data.astype(np.float32)
    y = digits.target.astype(np.int64)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, stratify=y, seed=seed)
    X_train, X_val, y_train, y_val = train_test_split(X_train, y_train, test_size=0.15, stratify=y_train,
                                                      seed=seed)
    scaler = StandardScaler().fit(X_train)  # per-pixel mean/std of the training images only
    X_train, X_val, X_test = scaler.transform(X_train), scaler.transform(X_val), scaler.transform(X_test)

    train_loader = DataLoader(TensorDataset(X_train, y_train), batch_size=64, shuffle=True)
    val_loader = DataLoader(TensorDataset(X_val, y_val), batch_size=512)
    test_loader = DataLoader(TensorDataset(X_test, y_test), batch_size=512)
    log(f"digits: {len(y_train)} train / {len(y_val)} val / {len(y_test)} test images of 8x8 pixels")

    model = make_model()
    optimizer = pe.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    scheduler = pe.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)

    tmp = None
    if checkpoint is None:
        tmp = tempfile.TemporaryDirectory()
        checkpoint = os.path.join(tmp.name, "digits_best.safetensors")
    best_loss, best_epoch = float("inf"), 0
    try:
        for epoch in range(1, epochs + 1):
            model.train()
            running, seen = 0.0, 0
            for x, y_batch in train_loader:
                loss = F.cross_entropy(model(x), y_batch)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                running += loss.item() * len(y_batch)
                seen += len(y_batch)
            scheduler.step()
            val_loss, val_acc = evaluate(model, val_loader)
            if val_loss < best_loss:  # keep the best epoch seen so far (model + the scaler it needs)
                best_loss, best_epoch = val_loss, epoch
                pe.save({"model": model.state_dict(), "scaler": scaler.state_dict(), "epoch": epoch,
                         "val_loss": val_loss, "val_accuracy": val_acc}, checkpoint)
            log(f"epoch {epoch:3d}  train loss {running / seen:.4f}  val loss {val_loss:.4f}  "
                f"val acc {val_acc:.4f}{'  *' if best_epoch == epoch else ''}")

        ckpt = pe.load(checkpoint)
        model.load_state_dict(ckpt["model"])
        best_acc = ckpt["val_accuracy"]
    finally:
        if tmp is not None:
            tmp.cleanup()

    test_loss, test_acc = evaluate(model, test_loader)
    seconds = time.perf_counter() - t0
    log(f"best epoch {best_epoch} (val loss {best_loss:.4f}, acc {best_acc:.4f}); test loss {test_loss:.4f}  "
        f"test accuracy {test_acc:.4f}  ({seconds:.1f} s)")
    return {"test_accuracy": test_acc, "test_loss": test_loss, "val_loss": best_loss, "val_accuracy": best_acc,
            "best_epoch": best_epoch, "epochs": epochs, "seconds": seconds}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=None, help="epochs to train (default 40, 15 with --quick)")
    parser.add_argument("--quick", action="store_true", help="a short run (for tests and smoke checks)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--checkpoint", default=None, help="where to keep the best checkpoint (default: a temp file)")
    args = parser.parse_args()
    main(epochs=args.epochs, quick=args.quick, seed=args.seed, checkpoint=args.checkpoint)
