"""Quality metrics from one confusion matrix (bench.evidence.metrics)."""

from __future__ import annotations

import numpy as np
import pytest

from bench.evidence.metrics import ConfusionMatrix, scores


def test_perfect_prediction_scores_one() -> None:
    cm = ConfusionMatrix(3)
    masks = np.array([[0, 1], [2, 1]])
    cm.update(masks, masks)
    s = scores(cm.matrix)
    assert s["miou"] == 1.0 and s["pixel_accuracy"] == 1.0 and s["mean_class_accuracy"] == 1.0
    assert s["iou_pet"] == s["iou_background"] == s["iou_border"] == 1.0


def test_hand_computed_example() -> None:
    cm = ConfusionMatrix(3)
    true = np.array([0, 0, 0, 1, 1, 2])
    pred = np.array([0, 0, 1, 1, 1, 1])
    cm.update(true, pred)
    assert cm.matrix.tolist() == [[2, 1, 0], [0, 2, 0], [0, 1, 0]]
    s = scores(cm.matrix)
    assert s["iou_pet"] == pytest.approx(2 / 3)
    assert s["iou_background"] == pytest.approx(2 / 4)
    assert s["iou_border"] == 0.0
    assert s["miou"] == pytest.approx((2 / 3 + 0.5 + 0) / 3)
    assert s["pixel_accuracy"] == pytest.approx(4 / 6)
    assert s["mean_class_accuracy"] == pytest.approx((2 / 3 + 1 + 0) / 3)


def test_accumulates_over_batches_like_one_big_batch() -> None:
    rng = np.random.default_rng(0)
    true = rng.integers(0, 3, size=(6, 8, 8))
    pred = rng.integers(0, 3, size=(6, 8, 8))
    whole, parts = ConfusionMatrix(3), ConfusionMatrix(3)
    whole.update(true, pred)
    for i in range(0, 6, 2):
        parts.update(true[i : i + 2], pred[i : i + 2])
    assert (whole.matrix == parts.matrix).all()
    assert whole.matrix.sum() == true.size


def test_all_background_prediction_is_the_collapse_the_issue_describes() -> None:
    """Predicting background everywhere: pet and border IoU 0, mIoU = background IoU / 3."""
    true = np.array([0] * 30 + [1] * 60 + [2] * 10)
    cm = ConfusionMatrix(3)
    cm.update(true, np.ones_like(true))
    s = scores(cm.matrix)
    assert s["iou_pet"] == 0.0 and s["iou_border"] == 0.0
    assert s["miou"] == pytest.approx(0.6 / 3)


def test_absent_class_is_left_out_of_the_mean() -> None:
    cm = ConfusionMatrix(3)
    cm.update(np.array([0, 1]), np.array([0, 1]))
    s = scores(cm.matrix)
    assert np.isnan(s["iou_border"]) and s["miou"] == 1.0


def test_bad_labels_and_shapes_are_errors() -> None:
    cm = ConfusionMatrix(3)
    with pytest.raises(ValueError, match="class ids"):
        cm.update(np.array([3]), np.array([0]))
    with pytest.raises(ValueError, match="pixels"):
        cm.update(np.array([0, 1]), np.array([0]))
