"""The statistics behind a ranking, from the per-image evidence a run stored (issue #12).

Pure NumPy/SciPy and deterministic: every resampling draws from ``np.random.default_rng(seed)``
with a fixed seed, and every resampled sum of counts is exact integer arithmetic, so the same
stored arrays give byte-identical numbers. The arrays are those of :mod:`bench.evidence`
(``confusion`` (N, C, C), ``boundary_iou_counts`` (N, 2), ``nll_sum``, ``brier_sum``,
``calibration_*``, ``mc_*``); nothing here looks at a prediction.

The definitions (pooled and per-image mIoU, foreground IoU, Boundary IoU, ECE, NLL, Brier, AUROC,
PAvPU) live in :mod:`bench.metrics`, which the runner also uses to store them as metric rows, and
are re-exported here: one definition of each, and the worker never loads the report package.
``pooled`` and ``per-image`` mIoU differ on purpose (see there).

Intervals are percentile bootstrap intervals over test images; with several seeds the resampling
is hierarchical: each replicate draws the seeds with replacement, then one draw of the images
shared by all of them (the seeds saw the same images, so the image draw is common), and the
statistic is the mean over the drawn seeds of each seed's pooled value.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bench.metrics import (  # noqa: F401 (re-exported: the report's statistics use the runner's definitions)
    PAVPU_THRESHOLD,
    Evidence,
    auroc_from_histograms,
    boundary_iou,
    calibration_scores,
    class_iou,
    expected_calibration_error,
    foreground_iou_counts,
    imagewise_miou,
    mc_evidence,
    miou_of,
    pavpu,
    per_image_boundary_iou,
    per_image_miou,
    pooled_miou,
    pooled_ratio,
    ratio,
    uncertainty_scores,
)

CONFIDENCE = 0.95
N_RESAMPLES = 2000
#: No interval or p-value is computed from fewer resamples.
MIN_RESAMPLES = 1000
RESAMPLING_SEED = 12
ALPHA = 0.05
#: A bootstrap p-value is at least 2 / (B + 1), and Holm multiplies the smallest by the number of
#: comparisons m: with B = 2,000 and m above 50, no model could ever be told from #1. Tests draw
#: enough resamples that the smallest corrected p-value, 2m / (B + 1), is at most ALPHA / this.
P_RESOLUTION = 10
# Replicates are drawn in blocks of this many, to bound memory; part of the determinism contract.
_BLOCK = 256


# === Monte-Carlo dropout ===


def sample_curve(evidence: Evidence) -> pd.DataFrame:
    """MC-dropout curve: pooled ``miou`` and ``ece`` after the first ``samples`` passes."""
    return pd.DataFrame({
        "samples": np.asarray(evidence["mc_curve_samples"], dtype=np.int64),
        "miou": miou_of(np.asarray(evidence["mc_curve_confusion"], dtype=np.int64)),
        "ece": expected_calibration_error(
            evidence["mc_curve_calibration_count"],
            evidence["mc_curve_calibration_confidence"],
            evidence["mc_curve_calibration_correct"],
        ),
    })


# === Resampling ===


@dataclass(frozen=True)
class Interval:
    """A point estimate and its percentile bootstrap interval."""

    estimate: float
    low: float
    high: float
    n_resamples: int
    seed: int


@dataclass(frozen=True)
class PairedTest:
    """``difference`` = statistic(a) - statistic(b) on the same images, its interval and p-value."""

    difference: float
    low: float
    high: float
    p_value: float


def stack_seeds(runs: Sequence[Evidence], key: str = "confusion") -> tuple[np.ndarray, np.ndarray]:
    """One model's seeds as ``(S, N, ...)``, images ordered by ``image_index``.

    Returns:
        ``(stacked, image_index)``. Raises ``ValueError`` when the seeds saw different images.
    """
    if not runs:
        raise ValueError("no run to stack")
    arrays, index = [], None
    for run in runs:
        ids = np.asarray(run["image_index"], dtype=np.int64)
        if np.unique(ids).size != ids.size:
            raise ValueError("a run's image_index repeats an image")
        order = np.argsort(ids, kind="stable")
        if index is not None and not np.array_equal(ids[order], index):
            raise ValueError("the seeds of one model were evaluated on different test images")
        index = ids[order]
        arrays.append(np.asarray(run[key])[order])
    return np.stack(arrays), index


def _with_seed_axis(per_image: np.ndarray, item_ndim: int) -> np.ndarray:
    a = np.asarray(per_image)
    if a.ndim == item_ndim + 1:
        a = a[None]
    if a.ndim != item_ndim + 2:
        raise ValueError(f"expected (N, ...) or (S, N, ...) with {item_ndim} item axes, got shape {a.shape}")
    return a.astype(np.int64) if np.issubdtype(a.dtype, np.integer) else a.astype(np.float64)


def _image_weights(rng: np.random.Generator, n_images: int, n_resamples: int) -> Iterator[np.ndarray]:
    """How often each image is drawn, ``(block, N)`` int64, block after block."""
    for start in range(0, n_resamples, _BLOCK):
        size = min(_BLOCK, n_resamples - start)
        draws = rng.integers(0, n_images, size=(size, n_images)) + np.arange(size)[:, None] * n_images
        yield np.bincount(draws.ravel(), minlength=size * n_images).reshape(size, n_images)


def _replicates(
    groups: Sequence[np.ndarray], statistic: Callable[[np.ndarray], np.ndarray], n_resamples: int, seed: int
) -> list[np.ndarray]:
    """Bootstrap replicates ``(B,)`` of ``statistic`` for each ``(S, N, ...)`` array, images paired.

    Each replicate draws every group's seeds independently and one image draw common to all
    groups; the statistic of a group is the mean over its drawn seeds of ``statistic`` applied to
    that seed's resampled image sums.
    """
    if n_resamples < MIN_RESAMPLES:
        raise ValueError(f"n_resamples must be at least {MIN_RESAMPLES}, got {n_resamples}.")
    n_images = groups[0].shape[1]
    if any(g.shape[1] != n_images for g in groups):
        raise ValueError("paired resampling needs the same images in every group")
    rng = np.random.default_rng(seed)
    seed_draws = [rng.integers(0, g.shape[0], size=(n_resamples, g.shape[0])) for g in groups]
    out = [np.empty(n_resamples) for _ in groups]
    start = 0
    for weights in _image_weights(rng, n_images, n_resamples):
        block = slice(start, start + len(weights))
        for g, draws, o in zip(groups, seed_draws, out):
            flat = g.reshape(g.shape[0], n_images, -1)
            w = weights if np.issubdtype(flat.dtype, np.integer) else weights.astype(np.float64)
            # einsum without optimize: its own loops, no BLAS threads, the same bits every time.
            sums = np.einsum("bn,snk->bsk", w, flat, optimize=False)
            picked = np.take_along_axis(sums, draws[block][:, :, None], axis=1)
            values = statistic(picked.reshape(len(weights), g.shape[0], *g.shape[2:]))
            with np.errstate(invalid="ignore"):
                o[block] = values.mean(axis=1)
        start += len(weights)
    return out


def _percentiles(values: np.ndarray, confidence: float) -> tuple[float, float]:
    low, high = np.nanquantile(values, [(1 - confidence) / 2, (1 + confidence) / 2])
    return float(low), float(high)


def bootstrap_interval(
    per_image: np.ndarray,
    statistic: Callable[[np.ndarray], np.ndarray],
    item_ndim: int,
    *,
    n_resamples: int = N_RESAMPLES,
    seed: int = RESAMPLING_SEED,
    confidence: float = CONFIDENCE,
) -> Interval:
    """Percentile bootstrap interval of a statistic of image sums (hierarchical over seeds).

    Args:
        per_image: ``(N, *item)`` or ``(S, N, *item)`` per-image arrays (counts or sums).
        statistic: Maps summed items ``(..., *item)`` to values ``(...)``, e.g. :func:`miou_of`.
        item_ndim: ``len(item)``: 2 for confusion matrices, 1 for ``[numerator, denominator]``.
    """
    groups = _with_seed_axis(per_image, item_ndim)
    (reps,) = _replicates([groups], statistic, n_resamples, seed)
    estimate = float(np.mean(statistic(groups.sum(axis=1))))
    return Interval(estimate, *_percentiles(reps, confidence), n_resamples=n_resamples, seed=seed)


def miou_interval(
    confusion: np.ndarray,
    *,
    n_resamples: int = N_RESAMPLES,
    seed: int = RESAMPLING_SEED,
    confidence: float = CONFIDENCE,
) -> Interval:
    """Bootstrap interval of the pooled mIoU of ``(N, C, C)`` or ``(S, N, C, C)`` per-image counts."""
    return bootstrap_interval(confusion, miou_of, 2, n_resamples=n_resamples, seed=seed, confidence=confidence)


def ratio_interval(
    counts: np.ndarray,
    *,
    n_resamples: int = N_RESAMPLES,
    seed: int = RESAMPLING_SEED,
    confidence: float = CONFIDENCE,
) -> Interval:
    """Bootstrap interval of ``sum(num) / sum(den)`` of ``(N, 2)`` or ``(S, N, 2)`` per-image pairs.

    Boundary IoU (``boundary_iou_counts``), foreground IoU (:func:`foreground_iou_counts`), or
    NLL/Brier per pixel (``stack([nll_sum, pixels], -1)``).
    """
    return bootstrap_interval(counts, ratio, 1, n_resamples=n_resamples, seed=seed, confidence=confidence)


def paired_bootstrap_test(
    a: np.ndarray,
    b: np.ndarray,
    *,
    n_resamples: int = N_RESAMPLES,
    seed: int = RESAMPLING_SEED,
    confidence: float = CONFIDENCE,
) -> PairedTest:
    """Paired bootstrap test of pooled mIoU(a) - pooled mIoU(b) on the same images.

    Both models are resampled with the same image draw (their seeds independently). The two-sided
    p-value is ``min(1, 2 * (1 + min(#{d* <= 0}, #{d* >= 0})) / (B + 1))``: twice the bootstrap
    mass on the far side of zero, so p < alpha exactly when 0 lies outside the (1 - alpha)
    percentile interval of the difference (up to the +1 that keeps p above 0).

    Args:
        a, b: ``(N, C, C)`` or ``(S, N, C, C)`` per-image confusion counts, images in the same order.
    """
    return paired_group_test([a], [b], n_resamples=n_resamples, seed=seed, confidence=confidence)


def paired_group_test(
    a: Sequence[np.ndarray],
    b: Sequence[np.ndarray],
    *,
    n_resamples: int = N_RESAMPLES,
    seed: int = RESAMPLING_SEED,
    confidence: float = CONFIDENCE,
) -> PairedTest:
    """Paired bootstrap test of the mean pooled mIoU of models ``a`` minus that of models ``b``.

    Every model is resampled with one image draw common to all (their seeds independently), so a
    family of methods is compared with another on the same images; with one model a side this is
    :func:`paired_bootstrap_test`. The p-value is that function's.

    Args:
        a, b: Per model, ``(N, C, C)`` or ``(S, N, C, C)`` per-image confusion counts, images in the
            same order for every model.
    """
    if not a or not b:
        raise ValueError("a paired group test needs at least one model on each side")
    ga, gb = [_with_seed_axis(x, 2) for x in a], [_with_seed_axis(x, 2) for x in b]
    reps = _replicates([*ga, *gb], miou_of, n_resamples, seed)
    d = np.mean(reps[: len(ga)], axis=0) - np.mean(reps[len(ga):], axis=0)
    low, high = _percentiles(d, confidence)
    tail = min(int(np.sum(d <= 0)), int(np.sum(d >= 0)))
    p = min(1.0, 2 * (1 + tail) / (n_resamples + 1))
    difference = float(np.mean([pooled_miou(g) for g in ga]) - np.mean([pooled_miou(g) for g in gb]))
    return PairedTest(difference, low, high, p)


def resamples_for_tests(comparisons: int, alpha: float = ALPHA) -> int:
    """Resamples for ``comparisons`` Holm-corrected paired tests: :data:`N_RESAMPLES`, or more,
    in thousands, so that the smallest attainable corrected p-value is at most ``alpha`` /
    :data:`P_RESOLUTION` (2,000 up to 5 comparisons at 5%; 15,000 for 37)."""
    needed = math.ceil(2 * max(comparisons, 1) * P_RESOLUTION / alpha) - 1
    return max(N_RESAMPLES, -(-needed // 1000) * 1000)


def holm(p_values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (step-down, monotone, at most 1), in the input order."""
    p = np.asarray(p_values, dtype=np.float64)
    m = p.size
    order = np.argsort(p, kind="stable")
    adjusted = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    out = np.empty(m)
    out[order] = adjusted
    return out


def tied_with_best(
    models: Mapping[str, Sequence[Evidence]],
    *,
    alpha: float = ALPHA,
    n_resamples: int | None = None,
    seed: int = RESAMPLING_SEED,
) -> pd.DataFrame:
    """Which models the test images cannot tell apart from the top one.

    The models are ranked by pooled mIoU (mean over seeds; ties by name). Each model below #1 is
    compared with #1 by :func:`paired_bootstrap_test`; the p-values are Holm-corrected over those
    comparisons, and a model is tied with #1 when its corrected p-value is above ``alpha``.
    ``n_resamples``: default :func:`resamples_for_tests` of the number of comparisons.

    Args:
        models: Model id -> the evidence of its runs (one per seed), as :func:`bench.evidence.load_evidence`
            reads them.

    Returns:
        One row per model, best first: ``model``, ``rank``, ``miou``, ``difference`` (its mIoU minus
        #1's) with ``low`` and ``high``, its 95% percentile interval, ``p_value``, ``p_holm`` (NaN for
        #1, also ``low`` and ``high``) and ``tied`` (True for #1 and every model not distinguishable
        from it).

    Raises:
        ValueError: When the models were not evaluated on the same test images.
    """
    if not models:
        raise ValueError("no model to compare")
    stacked = {name: stack_seeds(runs) for name, runs in models.items()}
    reference_name, (_, reference) = next(iter(stacked.items()))
    for name, (_, index) in stacked.items():
        if not np.array_equal(index, reference):
            common = np.intersect1d(index, reference).size
            raise ValueError(
                f"models were evaluated on different test images: {reference_name!r} on {reference.size}, "
                f"{name!r} on {index.size}, {common} in common; a paired comparison needs the same images"
            )
    scores = {name: pooled_miou(confusion) for name, (confusion, _) in stacked.items()}
    order = sorted(scores, key=lambda name: (-scores[name], name))
    if n_resamples is None:
        n_resamples = resamples_for_tests(len(order) - 1, alpha)
    best = stacked[order[0]][0]
    tests = [paired_bootstrap_test(stacked[name][0], best, n_resamples=n_resamples, seed=seed) for name in order[1:]]
    p = np.array([t.p_value for t in tests])
    p_holm = holm(p)
    return pd.DataFrame({
        "model": order,
        "rank": np.arange(1, len(order) + 1),
        "miou": [scores[name] for name in order],
        "difference": [0.0] + [t.difference for t in tests],
        "low": [np.nan, *(t.low for t in tests)],
        "high": [np.nan, *(t.high for t in tests)],
        "p_value": [np.nan, *p],
        "p_holm": [np.nan, *p_holm],
        "tied": [True, *(p_holm > alpha)],
    })

