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


def test_digits_cnn(tmp_path):
    cnn = _load("digits_cnn")
    ckpt = tmp_path / "digits_cnn.safetensors"
    m = cnn.main(quick=True, verbose=False, checkpoint=str(ckpt))
    assert m["test_accuracy"] >= 0.93, m                  # 4 epochs; the full run reaches >= 0.98
    saved = pe.load(ckpt)
    assert saved["epoch"] == m["best_epoch"] and {"model", "mean", "std"} <= set(saved)
    model = cnn.make_model()
    model.load_state_dict(saved["model"])
    rng = np.random.default_rng(0)
    img = rng.standard_normal((5, 1, 8, 8)).astype(np.float32)
    shifted = cnn.random_shift(img, rng)
    assert shifted.shape == img.shape
    for a, b in zip(img, shifted):                         # each image moved by at most one pixel, zeros in
        assert any(np.array_equal(b[0][max(dy, 0):8 + min(dy, 0), max(dx, 0):8 + min(dx, 0)],
                                  a[0][max(-dy, 0):8 + min(-dy, 0), max(-dx, 0):8 + min(-dx, 0)])
                   for dy in (-1, 0, 1) for dx in (-1, 0, 1))


def test_shapes_detection_encode_decode_and_scores():
    det = _load("shapes_detection")
    images, objects = det.make_images(40, seed=3)
    assert images.shape == (40, 1, 48, 48) and all(1 <= len(o) <= 3 for o in objects)
    # a perfect network output (from the targets) decodes to the true shapes: every score is 1
    obj, cls, box = det.encode(objects)
    eps = 1e-6
    logit = lambda p: np.log(np.clip(p, eps, 1 - eps) / (1 - np.clip(p, eps, 1 - eps)))  # noqa: E731
    out = np.concatenate([np.where(obj > 0, 20.0, -20.0)[:, None], 10.0 * np.eye(3)[cls].transpose(0, 3, 1, 2),
                          logit(box)], axis=1)
    m = det.score_detections(det.decode(out), objects)
    assert m["accuracy"] == m["precision"] == m["recall"] == 1.0 and m["mean_iou"] > 0.999, m
    wrong = out.copy()
    wrong[:, 1:4] = 10.0 * np.eye(3)[(cls + 1) % 3].transpose(0, 3, 1, 2)  # boxes right, every class wrong
    m = det.score_detections(det.decode(wrong), objects)
    assert m["accuracy"] == 0.0 and m["recall"] == 1.0 and m["mean_iou"] > 0.999
    assert det.score_detections([[] for _ in objects], objects)["mean_iou"] == 0.0
    np.testing.assert_allclose(det.iou(np.array([[0, 0, 2, 2.]]), np.array([[1, 1, 3, 3.], [0, 0, 2, 2]])),
                               [[1 / 7, 1.0]])


def test_shapes_detection_trains():
    # a short run (800 images, 5 epochs: accuracy ~0.66, mean IoU ~0.56); the full run's figures are in
    # examples/README.md
    m = _load("shapes_detection").main(quick=True, verbose=False)
    assert min(m["val_losses"][1:]) < 0.5 * m["val_losses"][0], m
    assert m["test_precision"] >= 0.8 and m["test_accuracy"] >= 0.3 and m["test_mean_iou"] >= 0.3, m
    for k in ("accuracy", "class_accuracy", "mean_iou", "precision", "recall"):
        assert 0.0 <= m[f"test_{k}"] <= 1.0
