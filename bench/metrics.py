"""Segmentation quality from one confusion matrix accumulated over the whole test split.

Per-image IoUs averaged over images weigh a small pet as much as a large one and are undefined for
a class absent from an image; the standard (PASCAL VOC, Cityscapes) practice, followed here, sums
one confusion matrix over every pixel of the split and derives every metric from it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from bench.config import CLASS_NAMES


class ConfusionMatrix:
    """Accumulates ``matrix[true, predicted]`` pixel counts over batches.

    Args:
        num_classes: Number of classes; labels outside ``[0, num_classes)`` are an error.
    """

    def __init__(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.matrix = np.zeros((num_classes, num_classes), dtype=np.int64)

    def update(self, y_true: np.ndarray, y_pred: np.ndarray) -> None:
        """Adds one batch of integer class maps of the same shape."""
        t = np.asarray(y_true, dtype=np.int64).ravel()
        p = np.asarray(y_pred, dtype=np.int64).ravel()
        if t.shape != p.shape:
            raise ValueError(f"y_true has {t.size} pixels but y_pred has {p.size}.")
        n = self.num_classes
        if t.size and (t.min() < 0 or t.max() >= n or p.min() < 0 or p.max() >= n):
            raise ValueError(f"class ids must lie in [0, {n}); got true {t.min()}..{t.max()}, predicted {p.min()}..{p.max()}.")
        self.matrix += np.bincount(t * n + p, minlength=n * n).reshape(n, n)


def scores(matrix: np.ndarray, class_names: Sequence[str] = CLASS_NAMES) -> dict[str, float]:
    """mIoU, per-class IoU, pixel accuracy and mean class accuracy of a confusion matrix.

    A class that appears neither in the truth nor in the predictions has an undefined IoU (NaN);
    the means are taken over the classes where the metric is defined, as in ``np.nanmean``.

    Returns:
        ``{"miou", "iou_<class>"..., "pixel_accuracy", "mean_class_accuracy"}``.
    """
    m = np.asarray(matrix, dtype=np.float64)
    tp = np.diag(m)
    true_count = m.sum(axis=1)
    pred_count = m.sum(axis=0)
    union = true_count + pred_count - tp
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(union > 0, tp / union, np.nan)
        class_acc = np.where(true_count > 0, tp / true_count, np.nan)
    total = m.sum()
    out = {"miou": _nanmean(iou)}
    out.update({f"iou_{name}": float(v) for name, v in zip(class_names, iou)})
    out["pixel_accuracy"] = float(tp.sum() / total) if total else float("nan")
    out["mean_class_accuracy"] = _nanmean(class_acc)
    return out


def _nanmean(values: np.ndarray) -> float:
    finite = values[~np.isnan(values)]
    return float(finite.mean()) if finite.size else float("nan")
