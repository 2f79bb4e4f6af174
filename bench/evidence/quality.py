"""Segmentation quality from per-image counts: the one definition of each overlap measure.

NumPy only, and below every other evidence module: :mod:`bench.evidence.declarations` names these
functions as the computations of the declared metrics, :mod:`bench.evidence.metrics` turns them into
the metric rows a run stores, and the report (:mod:`bench.report.statistics`) resamples them. Each
function maps counts ``(..., *item)`` to values ``(...)``: applied to one image's counts it gives that
image's value, applied to the counts summed over images the pooled value.

Two mIoUs, which differ on purpose:

- **pooled** (:func:`pooled_miou`, and ``miou`` of :func:`bench.evidence.metrics.scores`): sum the
  confusion matrices of every image, then IoU per class = TP / (TP + FP + FN), then the mean over
  classes whose union is non-zero. This is PASCAL VOC's and Cityscapes' number, MMSegmentation's
  ``mean_iou`` (``total_intersect_and_union``, then ``nanmean``), Hugging Face ``evaluate``'s
  ``mean_iou``, Keras ``MeanIoU`` accumulated over batches. Large pets weigh more than small ones.
- **per-image** (:func:`per_image_miou`): each image's own mIoU, then the plain mean over images
  (segmentation_models_pytorch's ``"macro-imagewise"`` reduction). A class absent from both the
  truth and the prediction of an image has 0/0 IoU there; here it is left out of that image's
  mean (NaN, then ``nanmean``), as Keras ``MeanIoU`` and ``scores`` leave out a class with no
  union. Note that smp by default scores such a class 1 (``zero_division=1.0``):
  ``absent_score=1.0`` reproduces that. Every image has at least one class, so every image's
  mIoU is defined.

The pet-vs-rest measures (foreground IoU, Dice, precision, recall) share one convention, the
dataset's own (Parkhi et al., CVPR 2012): pixels whose true class is the trimap's border are ignored,
and a pixel predicted border counts as not pet (:func:`pet_confusion`).
"""

from __future__ import annotations

import warnings

import numpy as np

from segmodels.trimap import BORDER, PET

# === mIoU ===


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


def mean_over_images(values: np.ndarray) -> float:
    """The mean of per-image values ``(N,)`` over the images where they are defined (NaN left out);
    NaN, without a warning, when no image has one."""
    values = np.asarray(values, dtype=np.float64)
    if np.isnan(values).all():
        return float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(np.nanmean(values))


# === Ratios of counts ===


def ratio(counts: np.ndarray) -> np.ndarray:
    """``counts[..., 0] / counts[..., 1]``, NaN where the denominator is 0."""
    c = np.asarray(counts, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(c[..., 1] > 0, c[..., 0] / c[..., 1], np.nan)


def pooled_ratio(counts: np.ndarray) -> float:
    """``sum(numerators) / sum(denominators)`` over images ``(N, 2)`` (or the seed mean of ``(S, N, 2)``)."""
    return float(np.mean(ratio(np.asarray(counts).sum(axis=-2))))


def pixel_counts(confusion: np.ndarray) -> np.ndarray:
    """``[correct pixels, pixels]`` ``(..., 2)`` of confusion matrices ``(..., C, C)``: pixel accuracy's."""
    c = np.asarray(confusion, dtype=np.int64)
    return np.stack([np.trace(c, axis1=-2, axis2=-1), c.sum(axis=(-2, -1))], axis=-1)


def boundary_iou(counts: np.ndarray) -> float:
    """Boundary IoU of a run, ``sum(I) / sum(U)`` over images of ``boundary_iou_counts``."""
    return pooled_ratio(counts)


def per_image_boundary_iou(counts: np.ndarray) -> np.ndarray:
    """Each image's Boundary IoU ``I / U``; NaN for an image with no pet in truth or prediction."""
    return ratio(counts)


# === The pet against the rest, true border ignored ===


def pet_confusion(confusion: np.ndarray, pet: int = PET, border: int = BORDER) -> np.ndarray:
    """Pet-vs-rest ``[TP, FP, FN]`` ``(..., 3)`` of confusion matrices ``(..., C, C)``, over the pixels
    whose true class is not ``border`` (module docstring).

    TP: true pet predicted pet. FP: true background predicted pet (a true-border pixel predicted pet
    is ignored). FN: true pet predicted anything else, border included.
    """
    c = np.asarray(confusion, dtype=np.int64)
    keep = [k for k in range(c.shape[-1]) if k != border]
    tp = c[..., pet, pet]
    fp = c[..., keep, pet].sum(axis=-1) - tp
    fn = c[..., pet, :].sum(axis=-1) - tp
    return np.stack([tp, fp, fn], axis=-1)


def foreground_iou_counts(confusion: np.ndarray, pet: int = PET, border: int = BORDER) -> np.ndarray:
    """Pet-vs-background ``[intersection, union]`` ``(..., 2)`` with true-border pixels ignored:
    ``[TP, TP + FP + FN]`` of :func:`pet_confusion`."""
    tp, fp, fn = np.moveaxis(pet_confusion(confusion, pet, border), -1, 0)
    return np.stack([tp, tp + fp + fn], axis=-1)


def dice_counts(confusion: np.ndarray) -> np.ndarray:
    """The pet's Dice (F1) as ``[2 TP, 2 TP + FP + FN]`` ``(..., 2)`` of :func:`pet_confusion`.

    Summed over images, Dice = 2 J / (1 + J) of the pooled foreground IoU J (the same pixels).
    An image with no pet in its truth or its prediction has 0/0: undefined (NaN), not 0 or 1.
    """
    tp, fp, fn = np.moveaxis(pet_confusion(confusion), -1, 0)
    return np.stack([2 * tp, 2 * tp + fp + fn], axis=-1)


def precision_counts(confusion: np.ndarray) -> np.ndarray:
    """The pet's precision as ``[TP, TP + FP]`` ``(..., 2)`` of :func:`pet_confusion`: of the pixels
    predicted pet (true border left out), the share that is pet."""
    tp, fp, _ = np.moveaxis(pet_confusion(confusion), -1, 0)
    return np.stack([tp, tp + fp], axis=-1)


def recall_counts(confusion: np.ndarray) -> np.ndarray:
    """The pet's recall as ``[TP, TP + FN]`` ``(..., 2)`` of :func:`pet_confusion`: of the true pet
    pixels, the share predicted pet."""
    tp, _, fn = np.moveaxis(pet_confusion(confusion), -1, 0)
    return np.stack([tp, tp + fn], axis=-1)
