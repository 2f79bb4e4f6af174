"""Segmentation quality, calibration and uncertainty: the one definition of each stored metric.

The classic metrics (:func:`scores`) come from one confusion matrix accumulated over the whole test
split. The evidence metrics (issue #12) come from the per-image evidence a run stores
(``evidence.npz``, :mod:`bench.evidence.ops`): the runner turns it into metric rows with
:func:`evidence_metrics`, and the report (:mod:`bench.report.statistics`, which re-exports these
functions) computes its intervals and tests with the same definitions. NumPy only: the worker
imports this module, and the report package's plotting stack must not load in every run.

Two mIoUs, which differ on purpose:

- **pooled** (:func:`pooled_miou`, and ``miou`` of :func:`scores`): sum the confusion matrices of
  every image, then IoU per class = TP / (TP + FP + FN), then the mean over classes whose union is
  non-zero. This is PASCAL VOC's and Cityscapes' number, MMSegmentation's ``mean_iou``
  (``total_intersect_and_union``, then ``nanmean``), Hugging Face ``evaluate``'s ``mean_iou``,
  Keras ``MeanIoU`` accumulated over batches. Large pets weigh more than small ones.
- **per-image** (:func:`per_image_miou`): each image's own mIoU, then the plain mean over images
  (segmentation_models_pytorch's ``"macro-imagewise"`` reduction). A class absent from both the
  truth and the prediction of an image has 0/0 IoU there; here it is left out of that image's
  mean (NaN, then ``nanmean``), as Keras ``MeanIoU`` and :func:`scores` leave out a class with no
  union. Note that smp by default scores such a class 1 (``zero_division=1.0``):
  ``absent_score=1.0`` reproduces that. Every image has at least one class, so every image's
  mIoU is defined.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from bench.config.run_config import CLASS_NAMES
from bench.evidence.npz import MC_PER_IMAGE

#: PAvPU calls a pixel uncertain when its predictive entropy is at least this fraction of
#: log(C): a fixed threshold (not a per-model one such as its mean entropy) so models compare on
#: the same footing; 0.5 is a bin edge of the stored 100-bin histograms.
PAVPU_THRESHOLD = 0.5

Evidence = Mapping[str, np.ndarray]


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
    iou = class_iou(m)
    with np.errstate(divide="ignore", invalid="ignore"):
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


# === Segmentation quality from per-image confusion counts ===


def class_iou(confusion: np.ndarray) -> np.ndarray:
    """IoU per class of confusion matrices ``(..., C, C)``; NaN where a class has no union."""
    m = np.asarray(confusion, dtype=np.float64)
    tp = np.diagonal(m, axis1=-2, axis2=-1)
    union = m.sum(axis=-1) + m.sum(axis=-2) - tp
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, tp / union, np.nan)


def _nanmean_last(values: np.ndarray) -> np.ndarray:
    defined = ~np.isnan(values)
    total = np.where(defined, values, 0.0).sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(defined.any(axis=-1), total / defined.sum(axis=-1), np.nan)


def miou_of(confusion: np.ndarray) -> np.ndarray:
    """mIoU of each confusion matrix ``(..., C, C)``: mean IoU over the classes with a union."""
    return _nanmean_last(class_iou(confusion))


def pooled_miou(confusion: np.ndarray) -> float:
    """Pooled mIoU: the mIoU of the confusion summed over images (module docstring).

    Args:
        confusion: ``(N, C, C)`` per-image counts of one run, or ``(S, N, C, C)`` for S seeds;
            with seeds, the mean over seeds of each seed's pooled mIoU.
    """
    c = np.asarray(confusion, dtype=np.int64)
    return float(np.mean(miou_of(c.sum(axis=-3))))


def per_image_miou(confusion: np.ndarray, absent_score: float | None = None) -> np.ndarray:
    """Each image's mIoU ``(N,)`` from ``(N, C, C)`` (module docstring).

    Args:
        absent_score: ``None`` leaves a class absent from an image's truth and prediction out of
            that image's mean; a number scores it so (1.0 is smp's default).
    """
    iou = class_iou(confusion)
    if absent_score is not None:
        iou = np.where(np.isnan(iou), absent_score, iou)
    return _nanmean_last(iou)


def imagewise_miou(confusion: np.ndarray, absent_score: float | None = None) -> float:
    """The mean over images of :func:`per_image_miou`."""
    return float(np.nanmean(per_image_miou(confusion, absent_score)))


def foreground_iou_counts(confusion: np.ndarray, pet: int = 0, border: int = 2) -> np.ndarray:
    """Pet-vs-background ``[intersection, union]`` ``(..., 2)`` with true-border pixels ignored.

    Over pixels whose true class is not border: pet = class ``pet``, truth against prediction; a
    predicted border pixel counts as not-pet.
    """
    c = np.asarray(confusion, dtype=np.int64)
    keep = [k for k in range(c.shape[-1]) if k != border]
    inter = c[..., pet, pet]
    true_pet = c[..., pet, :].sum(axis=-1)
    predicted_pet = c[..., keep, pet].sum(axis=-1)
    return np.stack([inter, true_pet + predicted_pet - inter], axis=-1)


def ratio(counts: np.ndarray) -> np.ndarray:
    """``counts[..., 0] / counts[..., 1]``, NaN where the denominator is 0."""
    c = np.asarray(counts, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(c[..., 1] > 0, c[..., 0] / c[..., 1], np.nan)


def pooled_ratio(counts: np.ndarray) -> float:
    """``sum(numerators) / sum(denominators)`` over images ``(N, 2)`` (or the seed mean of ``(S, N, 2)``)."""
    return float(np.mean(ratio(np.asarray(counts).sum(axis=-2))))


def boundary_iou(counts: np.ndarray) -> float:
    """Boundary IoU of a run, ``sum(I) / sum(U)`` over images of ``boundary_iou_counts``."""
    return pooled_ratio(counts)


def per_image_boundary_iou(counts: np.ndarray) -> np.ndarray:
    """Each image's Boundary IoU ``I / U``; NaN for an image with no pet in truth or prediction."""
    return ratio(counts)


# === Calibration and uncertainty ===


def expected_calibration_error(count: np.ndarray, confidence: np.ndarray, correct: np.ndarray) -> np.ndarray:
    """ECE from per-bin sums (last axis = bins): ``sum_b |correct_b - confidence_b| / sum_b count_b``.

    That is ``sum_b (n_b / n) |accuracy_b - mean confidence_b|`` (Guo et al. 2017).
    """
    n = np.asarray(count, dtype=np.float64).sum(axis=-1)
    gap = np.abs(np.asarray(correct, dtype=np.float64) - np.asarray(confidence, dtype=np.float64)).sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(n > 0, gap / n, np.nan)


def calibration_scores(evidence: Evidence) -> dict[str, float]:
    """Pixel-level ``ece``, ``nll`` (nats per pixel) and ``brier`` (per pixel) of one run."""
    pixels = float(np.asarray(evidence["confusion"], dtype=np.int64).sum())
    return {
        "ece": float(expected_calibration_error(
            evidence["calibration_count"], evidence["calibration_confidence"], evidence["calibration_correct"]
        )),
        "nll": float(np.asarray(evidence["nll_sum"], dtype=np.float64).sum() / pixels),
        "brier": float(np.asarray(evidence["brier_sum"], dtype=np.float64).sum() / pixels),
    }


def auroc_from_histograms(correct: np.ndarray, wrong: np.ndarray) -> float:
    """AUROC of uncertainty as a detector of wrong pixels, from entropy histograms (same bins).

    P(entropy of a wrong pixel > that of a correct one), a pair in the same bin counting half.
    Against the exact AUROC of the unbinned values it is off by at most
    ``sum_i wrong_i * correct_i / (2 * n_wrong * n_correct)``.
    """
    c = np.asarray(correct, dtype=np.float64)
    w = np.asarray(wrong, dtype=np.float64)
    below = np.cumsum(c) - c
    pairs = c.sum() * w.sum()
    return float((w * (below + 0.5 * c)).sum() / pairs) if pairs else float("nan")


def pavpu(correct: np.ndarray, wrong: np.ndarray, threshold: float = PAVPU_THRESHOLD) -> float:
    """Patch accuracy vs patch uncertainty (Mukhoti & Gal 2018) at 1x1 patches, from histograms.

    ``(n_ac + n_iu) / (n_ac + n_au + n_ic + n_iu)``: accurate-certain plus inaccurate-uncertain
    over all pixels. A pixel is uncertain when its bin's lower edge is at least ``threshold``
    (a fraction of the histogram's range, log C), snapped to the nearest bin edge.
    """
    c = np.asarray(correct, dtype=np.int64)
    w = np.asarray(wrong, dtype=np.int64)
    edge = round(threshold * c.size)
    total = c.sum() + w.sum()
    return float((c[:edge].sum() + w[edge:].sum()) / total) if total else float("nan")


def uncertainty_scores(evidence: Evidence, threshold: float = PAVPU_THRESHOLD) -> dict[str, float]:
    """``auroc`` and ``pavpu`` of a run's ``mc_entropy_histogram`` (row 0 correct, row 1 wrong)."""
    correct, wrong = np.asarray(evidence["mc_entropy_histogram"])
    return {"auroc": auroc_from_histograms(correct, wrong), "pavpu": pavpu(correct, wrong, threshold)}


def mc_evidence(evidence: Evidence) -> dict[str, np.ndarray]:
    """The Monte-Carlo prediction's evidence under the deterministic names, so that every function
    here scores it as it scores the deterministic one.

    ``mc_confusion`` -> ``confusion`` (and the other per-image ``mc_*`` arrays likewise); the
    calibration bins are the sample curve's last point (all T samples). Raises ``KeyError`` for a
    run without Monte-Carlo evidence.
    """
    out = {"image_index": np.asarray(evidence["image_index"])}
    for name in MC_PER_IMAGE:
        out[name] = np.asarray(evidence[f"mc_{name}"])
    for name in ("count", "confidence", "correct"):
        out[f"calibration_{name}"] = np.asarray(evidence[f"mc_curve_calibration_{name}"])[-1]
    return out


# === The metric rows of one run ===


def evidence_metrics(evidence: Evidence) -> dict[str, tuple[float, str]]:
    """The metric rows (``name -> (value, unit)``) a run's stored evidence gives.

    Always: ``miou_per_image``, ``fg_iou``, ``boundary_iou`` and ``boundary_width_px``; with
    calibration arrays (deep models): ``ece``, ``nll``, ``brier``; with Monte-Carlo evidence:
    ``mc_miou``, ``mc_ece``, ``mc_nll``, ``mc_brier``, ``mc_auroc``, ``mc_pavpu`` and
    ``mc_samples``. An undefined value (NaN, e.g. Boundary IoU with no pet anywhere) is left out:
    unknown, not 0.
    """
    rows: dict[str, tuple[float, str]] = {
        "miou_per_image": (imagewise_miou(evidence["confusion"]), "ratio"),
        "fg_iou": (pooled_ratio(foreground_iou_counts(evidence["confusion"])), "ratio"),
        "boundary_iou": (boundary_iou(evidence["boundary_iou_counts"]), "ratio"),
        "boundary_width_px": (float(evidence["boundary_width"]), "px"),
    }
    if "nll_sum" in evidence:
        rows.update(_calibration_rows(calibration_scores(evidence), prefix=""))
    if "mc_confusion" in evidence:
        mc = mc_evidence(evidence)
        rows["mc_miou"] = (pooled_miou(mc["confusion"]), "ratio")
        rows.update(_calibration_rows(calibration_scores(mc), prefix="mc_"))
        rows.update({f"mc_{k}": (v, "ratio") for k, v in uncertainty_scores(evidence).items()})
        rows["mc_samples"] = (float(evidence["mc_num_samples"]), "count")
    return {k: (float(v), unit) for k, (v, unit) in rows.items() if np.isfinite(v)}


def _calibration_rows(values: Mapping[str, float], prefix: str) -> dict[str, tuple[float, str]]:
    units = {"ece": "ratio", "nll": "nats", "brier": "score"}
    return {f"{prefix}{k}": (v, units[k]) for k, v in values.items()}
