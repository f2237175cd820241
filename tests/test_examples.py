"""The examples run end to end (quick mode) and reach their stated figures.

Each example exposes ``main(epochs=None, quick=False, seed=0, checkpoint=None, verbose=True) -> dict``.
They need scikit-learn for its bundled datasets (offline); without it this module is skipped.
"""
import importlib.util
import pathlib
import runpy
import sys

import numpy as np
import pytest

pytest.importorskip("sklearn")

import pyengine as pe  # noqa: E402

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"


def _load(name):
    spec = importlib.util.spec_from_file_location(f"_example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def _one_blas_thread():
    """Matmul runs on pyengine's GEMM, but scikit-learn (the data) and NumPy bring OpenBLAS: on a small
    shared machine its threads and the engine's OpenMP threads busy-wait against each other, which
    once made a step ~30x slower; one BLAS thread keeps these tests' time bounded."""
    threadpoolctl = pytest.importorskip("threadpoolctl")   # a dependency of scikit-learn
    with threadpoolctl.threadpool_limits(1, user_api="blas"):
        yield


def test_digits_mlp(tmp_path):
    digits = _load("digits_mlp")
    ckpt = tmp_path / "digits.safetensors"
    m = digits.main(quick=True, verbose=False, checkpoint=str(ckpt))
    assert m["test_accuracy"] >= 0.95, m
    # the kept checkpoint is the best epoch, and holds what restoring needs
    saved = pe.load(ckpt)
    assert saved["epoch"] == m["best_epoch"]
    assert set(saved) >= {"model", "scaler"}
    model = digits.make_model()
    model.load_state_dict(saved["model"])


def test_breast_cancer():
    bc = _load("breast_cancer")
    m = bc.main(quick=True, verbose=False)
    assert m["test_accuracy"] >= 0.95, m
    assert m["test_auc"] >= 0.97, m
    again = bc.main(quick=True, verbose=False)       # pyengine.manual_seed makes a run reproducible
    assert again["test_loss"] == m["test_loss"] and again["best_epoch"] == m["best_epoch"]


def test_breast_cancer_roc_auc_matches_sklearn():
    from sklearn.metrics import roc_auc_score
    roc_auc = _load("breast_cancer").roc_auc
    rng = np.random.default_rng(0)
    for i in range(50):
        n = int(rng.integers(2, 60))
        y = rng.integers(0, 2, n)
        y[:2] = [0, 1]
        scores = rng.integers(0, 4, n).astype(float) if i % 2 else rng.standard_normal(n)  # with and without ties
        assert roc_auc(y, scores) == pytest.approx(roc_auc_score(y, scores), abs=1e-12)


def test_diabetes_regression():
    m = _load("diabetes_regression").main(quick=True, verbose=False)
    assert m["baseline_r2"] > 0.3, m                      # the linear baseline itself is sane
    assert m["test_r2"] >= 0.9 * m["baseline_r2"], m      # the MLP is within 10% of least squares (or better)
    assert np.isfinite(m["test_mse"]) and m["test_mse"] > 0


def test_command_line(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["breast_cancer.py", "--epochs", "2"])
    runpy.run_path(str(EXAMPLES / "breast_cancer.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "test accuracy" in out and "ROC AUC" in out


def test_recommender_beats_popularity():
    rec = _load("recommender")
    m = rec.main(quick=True, verbose=False, n_users=300, n_items=200, epochs=6)
    assert m["test_recall_at_10"] > 1.5 * m["popularity_recall_at_10"], m
    assert m["test_auc"] > m["popularity_auc"] + 0.05, m
    assert m["test_auc"] <= m["oracle_auc"] + 0.02, m     # the hidden truth is the ceiling


def test_recommender_rank_metrics():
    from sklearn.metrics import roc_auc_score
    rank_metrics = _load("recommender").rank_metrics
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 5, (3, 30)).astype(float)      # with ties
    held = [np.array([1, 4, 7]), np.array([0]), np.array([2, 29])]
    exclude = np.zeros((3, 30), bool)
    exclude[:, 10:12] = True                                 # "seen in training": neither ranked nor negatives
    recall, auc = rank_metrics(scores, held, exclude, k=10)
    aucs = []
    for u in range(3):
        cand = np.flatnonzero(~exclude[u])
        aucs.append(roc_auc_score(np.isin(cand, held[u]), scores[u, cand]))
    assert auc == pytest.approx(np.mean(aucs), abs=1e-12)
    assert 0.0 <= recall <= 1.0
    perfect = np.zeros((3, 30))
    for u in range(3):
        perfect[u, held[u]] = 1.0
    assert rank_metrics(perfect, held, exclude, k=10) == (1.0, 1.0)
