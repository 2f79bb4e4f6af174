"""Segmentation quality, calibration and uncertainty: the metric rows a run stores.

The classic metrics (:func:`scores`) come from one confusion matrix accumulated over the whole test
split. The evidence metrics come from the per-image evidence a run stores
(``evidence.npz``, :mod:`bench.evidence.ops`): the runner turns it into metric rows with
:func:`evidence_metrics`, one set of rows per metric declared in :mod:`bench.evidence.declarations`
(whose computations are :mod:`bench.evidence.quality`'s, re-exported here) plus the run-level
calibration and uncertainty rows, and the report (:mod:`bench.report.statistics`) computes its
intervals and tests with the same definitions. NumPy only: the worker imports this module, and the
report package's plotting stack must not load in every run. Pooled and per-image mIoU differ on
purpose: see :mod:`bench.evidence.quality`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from bench.config.run_config import CLASS_NAMES
from bench.evidence.declarations import METRICS, Evidence
from bench.evidence.npz import MC_PER_IMAGE
from bench.evidence.quality import (  # noqa: F401 (re-exported: the definitions every caller of this module knew here)
    boundary_iou,
    class_iou,
    dice_counts,
    foreground_iou_counts,
    imagewise_miou,
    mean_over_images,
    miou_of,
    per_image_boundary_iou,
    per_image_miou,
    pet_confusion,
    pixel_counts,
    pooled_miou,
    pooled_ratio,
    precision_counts,
    ratio,
    recall_counts,
)

#: PAvPU calls a pixel uncertain when its predictive entropy is at least this fraction of
#: log(C): a fixed threshold (not a per-model one such as its mean entropy) so models compare on
#: the same footing; 0.5 is a bin edge of the stored 100-bin histograms.
PAVPU_THRESHOLD = 0.5


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

    Every declared metric (:data:`bench.evidence.declarations.METRICS`) whose arrays the evidence
    holds gives its pooled row (unless :func:`scores` writes it) and its per-image mean where it has
    one: ``miou_per_image``, ``fg_iou``, ``dice_pet``, ``dice_pet_per_image``, ``precision_pet``,
    ``recall_pet``, ``boundary_iou``; with Monte-Carlo evidence ``mc_miou``. Beside them:
    ``boundary_width_px``; with calibration arrays (deep models): ``ece``, ``nll``, ``brier``; with
    Monte-Carlo evidence: ``mc_ece``, ``mc_nll``, ``mc_brier``, ``mc_auroc``, ``mc_pavpu`` and
    ``mc_samples``. An undefined value (NaN, e.g. Boundary IoU with no pet anywhere) is left out:
    unknown, not 0.
    """
    rows = _declared_rows(evidence, monte_carlo=False)
    rows["boundary_width_px"] = (float(evidence["boundary_width"]), "px")
    if "nll_sum" in evidence:
        rows.update(_calibration_rows(calibration_scores(evidence), prefix=""))
    if "mc_confusion" in evidence:
        mc = mc_evidence(evidence)
        rows.update(_declared_rows(evidence, monte_carlo=True))
        rows.update(_calibration_rows(calibration_scores(mc), prefix="mc_"))
        rows.update({f"mc_{k}": (v, "ratio") for k, v in uncertainty_scores(evidence).items()})
        rows["mc_samples"] = (float(evidence["mc_num_samples"]), "count")
    return {k: (float(v), unit) for k, (v, unit) in rows.items() if np.isfinite(v)}


def _declared_rows(evidence: Evidence, monte_carlo: bool) -> dict[str, tuple[float, str]]:
    """The rows of the declared metrics of one prediction (deterministic or Monte-Carlo) that the
    evidence holds, in declared order."""
    rows = {}
    for metric in METRICS:
        if metric.monte_carlo != monte_carlo or not metric.reads(evidence):
            continue
        if metric.pooled_row:
            rows[metric.name] = (metric.pooled(evidence), metric.unit)
        if metric.per_image:
            rows[metric.per_image] = (metric.per_image_mean(evidence), metric.unit)
    return rows


def _calibration_rows(values: Mapping[str, float], prefix: str) -> dict[str, tuple[float, str]]:
    units = {"ece": "ratio", "nll": "nats", "brier": "score"}
    return {f"{prefix}{k}": (v, units[k]) for k, v in values.items()}
