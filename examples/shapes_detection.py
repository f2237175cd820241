"""Object detection on generated images: find every shape (square, circle, triangle), its class and its box.

The data is generated, so it is offline and its ground truth is exact: 48x48 grey images holding one to three
filled shapes of random class, size (8-18 pixels), position and brightness, non-overlapping, on a noisy
background. A small fully-convolutional detector in the style of YOLO (Redmon et al. 2016) / CenterNet
reads the image into a 6x6 grid of 8x8-pixel cells; every cell predicts

    objectness      is the centre of a shape in this cell?                 (binary cross-entropy, every cell)
    class           square / circle / triangle                            (cross-entropy, cells with a shape)
    box             the centre's offset in the cell and the width, height  (smooth L1, cells with a shape)

so one forward pass finds any number of shapes. Detections are the cells whose objectness exceeds 0.5
(then greedy non-maximum suppression at IoU 0.5). On the held-out images, every true shape is matched to
the best-overlapping detection (each detection used once), and the example reports

    accuracy        the fraction of shapes found (IoU >= 0.5) with the right class
    class accuracy  of the shapes found, the fraction with the right class
    mean IoU        the IoU of each true shape with its match (0 when missed), averaged over shapes
    precision       the fraction of detections that match a shape

Backbone: conv 3x3 - BN - ReLU blocks with max pooling, 48x48 -> 6x6; head: a 1x1 conv to 1 + 3 + 4
outputs per cell. Adam with a one-cycle learning rate.

    python examples/shapes_detection.py            # 3000 training images, 20 epochs
    python examples/shapes_detection.py --quick
"""
import argparse
import os
import tempfile
import time

import numpy as np

import pyengine as pe
import pyengine.nn as nn
import pyengine.nn.functional as F

SIZE, CELL = 48, 8
GRID = SIZE // CELL
CLASSES = ("square", "circle", "triangle")


# ---------------------------------------------------------------------- data


def _draw(img, cls, x0, y0, s, value):
    """A filled shape of class ``cls`` in the s x s box at (x0, y0) (pixel centres inside it)."""
    yy, xx = np.mgrid[0:s, 0:s] + 0.5
    if cls == 0:
        inside = np.ones((s, s), bool)
    elif cls == 1:
        inside = (xx - s / 2) ** 2 + (yy - s / 2) ** 2 <= (s / 2) ** 2
    else:  # an isosceles triangle, apex at the top centre, base along the bottom
        inside = np.abs(xx - s / 2) <= yy / 2
    patch = img[y0:y0 + s, x0:x0 + s]
    patch[inside] = value


def make_images(n, seed=0, max_shapes=3):
    """n images (n, 1, 48, 48) float32 and their objects: a list of (k, 5) arrays [class, x0, y0, x1, y1]."""
    rng = np.random.default_rng(seed)
    images = (rng.standard_normal((n, 1, SIZE, SIZE)) * 0.1).astype(np.float32)
    objects = []
    for i in range(n):
        boxes = []
        for _ in range(int(rng.integers(1, max_shapes + 1))):
            for _attempt in range(20):                     # a place that overlaps no shape already drawn
                s = int(rng.integers(8, 19))
                x0, y0 = int(rng.integers(0, SIZE - s + 1)), int(rng.integers(0, SIZE - s + 1))
                if all(x0 >= b[3] + 1 or x0 + s + 1 <= b[1] or y0 >= b[4] + 1 or y0 + s + 1 <= b[2] for b in boxes):
                    cls = int(rng.integers(0, 3))
                    _draw(images[i, 0], cls, x0, y0, s, rng.uniform(0.5, 1.0))
                    boxes.append([cls, x0, y0, x0 + s, y0 + s])
                    break
        objects.append(np.array(boxes, np.float32))
    return images, objects


def encode(objects):
    """Per-cell training targets: objectness (n, G, G), class (n, G, G) int64, box (n, 4, G, G) as (centre
    offset in the cell x, y in [0, 1], width, height / 48)."""
    n = len(objects)
    obj = np.zeros((n, GRID, GRID), np.float32)
    cls = np.zeros((n, GRID, GRID), np.int64)
    box = np.zeros((n, 4, GRID, GRID), np.float32)
    for i, boxes in enumerate(objects):
        for c, x0, y0, x1, y1 in boxes:
            cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
            gx, gy = min(int(cx // CELL), GRID - 1), min(int(cy // CELL), GRID - 1)
            obj[i, gy, gx] = 1.0
            cls[i, gy, gx] = int(c)
            box[i, :, gy, gx] = [cx / CELL - gx, cy / CELL - gy, (x1 - x0) / SIZE, (y1 - y0) / SIZE]
    return obj, cls, box


# ---------------------------------------------------------------------- model


def make_model(width=16):
    def block(c_in, c_out):
        return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]
    return nn.Sequential(
        *block(1, width), nn.MaxPool2d(2),                                   # 24x24
        *block(width, 2 * width), nn.MaxPool2d(2),                           # 12x12
        *block(2 * width, 4 * width), nn.MaxPool2d(2),                       # 6x6
        *block(4 * width, 4 * width), *block(4 * width, 4 * width),
        nn.Conv2d(4 * width, 1 + len(CLASSES) + 4, 1),                       # per cell: obj, classes, box
    )


def detection_loss(out, obj, cls, box):
    """Objectness BCE over every cell + class cross-entropy and box smooth-L1 over the cells with a shape."""
    obj_logit = out[:, 0]
    loss = F.binary_cross_entropy_with_logits(obj_logit, obj)
    pos = obj > 0
    if pos.any():
        cls_logits = out[:, 1:1 + len(CLASSES)].permute(0, 2, 3, 1)[pe.from_numpy(pos)]      # (P, 3)
        box_pred = out[:, 1 + len(CLASSES):].sigmoid().permute(0, 2, 3, 1)[pe.from_numpy(pos)]  # (P, 4)
        box_true = pe.from_numpy(np.ascontiguousarray(box.transpose(0, 2, 3, 1)[pos]))
        loss = loss + F.cross_entropy(cls_logits, pe.from_numpy(cls[pos])) + \
            10.0 * F.smooth_l1_loss(box_pred, box_true, beta=0.1)
    return loss


# ---------------------------------------------------------------------- decoding and scoring


def iou(a, b):
    """IoU of boxes a (k, 4) and b (m, 4) as [x0, y0, x1, y1]: (k, m)."""
    x0 = np.maximum(a[:, None, 0], b[None, :, 0])
    y0 = np.maximum(a[:, None, 1], b[None, :, 1])
    x1 = np.minimum(a[:, None, 2], b[None, :, 2])
    y1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = lambda r: (r[:, 2] - r[:, 0]) * (r[:, 3] - r[:, 1])  # noqa: E731
    return inter / (area(a)[:, None] + area(b)[None, :] - inter)


def decode(out, threshold=0.5, nms_iou=0.5):
    """Network outputs (n, 8, G, G) -> per image a list of detections (score, class, [x0, y0, x1, y1])."""
    out = np.asarray(out, np.float64)
    score = 1 / (1 + np.exp(-out[:, 0]))
    cls = out[:, 1:1 + len(CLASSES)].argmax(axis=1)
    b = 1 / (1 + np.exp(-out[:, 1 + len(CLASSES):]))
    results = []
    for i in range(out.shape[0]):
        gy, gx = np.nonzero(score[i] > threshold)
        cx, cy = (gx + b[i, 0, gy, gx]) * CELL, (gy + b[i, 1, gy, gx]) * CELL
        w, h = b[i, 2, gy, gx] * SIZE, b[i, 3, gy, gx] * SIZE
        boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
        s = score[i, gy, gx]
        keep = []
        for j in np.argsort(-s):                            # greedy non-maximum suppression
            if all(iou(boxes[j:j + 1], boxes[k:k + 1])[0, 0] < nms_iou for k in keep):
                keep.append(j)
        results.append([(float(s[j]), int(cls[i, gy[j], gx[j]]), boxes[j]) for j in keep])
    return results


def score_detections(detections, objects, match_iou=0.5):
    """accuracy, class accuracy, mean IoU and precision (see the module's docstring)."""
    n_true = n_found = n_right = n_det = n_matched = 0
    ious = []
    for dets, truth in zip(detections, objects):
        n_true += len(truth)
        n_det += len(dets)
        if not len(dets):
            ious += [0.0] * len(truth)
            continue
        overlap = iou(truth[:, 1:5], np.stack([d[2] for d in dets]))        # (true, detections)
        used = set()
        for t in np.argsort(-overlap.max(axis=1)):         # the best-covered shapes choose first
            order = [j for j in np.argsort(-overlap[t]) if j not in used]
            if not order:
                ious.append(0.0)
                continue
            j = order[0]
            ious.append(float(overlap[t, j]))
            if overlap[t, j] >= match_iou:
                used.add(j)
                n_found += 1
                n_right += int(dets[j][1] == int(truth[t, 0]))
        n_matched += len(used)
    return {"accuracy": n_right / n_true, "class_accuracy": n_right / max(n_found, 1),
            "mean_iou": float(np.mean(ious)), "precision": n_matched / max(n_det, 1),
            "recall": n_found / n_true, "objects": n_true}


def predict(model, images, batch=256):
    model.eval()
    outs = []
    with pe.no_grad():
        for s in range(0, len(images), batch):
            outs.append(model(pe.from_numpy(images[s:s + batch])).numpy())
    return np.concatenate(outs)


# ---------------------------------------------------------------------- training


def main(epochs=None, quick=False, seed=0, checkpoint=None, verbose=True, n_train=None):
    """Train the detector, keep the best epoch by validation loss, score it on held-out images."""
    epochs = epochs if epochs is not None else (5 if quick else 20)
    n_train = n_train if n_train is not None else (800 if quick else 3000)
    log = print if verbose else (lambda *a, **k: None)
    t0 = time.perf_counter()
    pe.manual_seed(seed)
    rng = np.random.default_rng(seed)

    x_train, obj_train = make_images(n_train, seed=seed)
    x_val, obj_val = make_images(150 if quick else 300, seed=seed + 1000)
    x_test, obj_test = make_images(200 if quick else 500, seed=seed + 2000)
    t_train, t_val = encode(obj_train), encode(obj_val)
    log(f"shapes: {n_train} train / {len(x_val)} val / {len(x_test)} test images of {SIZE}x{SIZE}, "
        f"{sum(map(len, obj_test))} test shapes")

    model = make_model()
    batch = 32
    steps = -(-n_train // batch)
    optimizer = pe.optim.Adam(model.parameters(), lr=3e-3)
    scheduler = pe.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=3e-3, total_steps=epochs * steps)

    tmp = None
    if checkpoint is None:
        tmp = tempfile.TemporaryDirectory()
        checkpoint = os.path.join(tmp.name, "shapes_best.safetensors")
    best_loss, best_epoch, val_losses = float("inf"), 0, []
    try:
        for epoch in range(1, epochs + 1):
            model.train()
            running = 0.0
            perm = rng.permutation(n_train)
            for s in range(0, n_train, batch):
                idx = perm[s:s + batch]
                out = model(pe.from_numpy(x_train[idx]))
                loss = detection_loss(out, *(t[idx] for t in t_train))
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                scheduler.step()
                running += loss.item() * len(idx)
            model.eval()
            with pe.no_grad():
                val_loss = detection_loss(pe.from_numpy(predict(model, x_val)), *t_val).item()
            val_losses.append(val_loss)
            if val_loss < best_loss:
                best_loss, best_epoch = val_loss, epoch
                pe.save({"model": model.state_dict(), "epoch": epoch, "val_loss": val_loss}, checkpoint)
            log(f"epoch {epoch:3d}  train loss {running / n_train:.4f}  val loss {val_loss:.4f}"
                f"{'  *' if best_epoch == epoch else ''}")
        model.load_state_dict(pe.load(checkpoint)["model"])
    finally:
        if tmp is not None:
            tmp.cleanup()

    m = score_detections(decode(predict(model, x_test)), obj_test)
    seconds = time.perf_counter() - t0
    log(f"best epoch {best_epoch}; on {m['objects']} held-out shapes: accuracy {m['accuracy']:.4f} (found with "
        f"IoU >= 0.5 and the right class), class accuracy {m['class_accuracy']:.4f}, mean IoU {m['mean_iou']:.4f}, "
        f"precision {m['precision']:.4f}, recall {m['recall']:.4f}  ({seconds:.1f} s)")
    return {**{f"test_{k}": v for k, v in m.items()}, "best_epoch": best_epoch, "epochs": epochs,
            "val_losses": val_losses, "seconds": seconds}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=None, help="epochs to train (default 20, 5 with --quick)")
    parser.add_argument("--quick", action="store_true", help="a short run (for tests and smoke checks)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--checkpoint", default=None, help="where to keep the best checkpoint (default: a temp file)")
    args = parser.parse_args()
    main(epochs=args.epochs, quick=args.quick, seed=args.seed, checkpoint=args.checkpoint)
