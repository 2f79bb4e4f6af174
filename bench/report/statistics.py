"""The statistics behind a ranking, from the per-image evidence a run stored.

Pure NumPy/SciPy and deterministic: every resampling draws from ``np.random.default_rng(seed)``
with a fixed seed, and every resampled sum of counts is exact integer arithmetic, so the same
stored arrays give byte-identical numbers. The arrays are those of :mod:`bench.evidence.ops`
(``confusion`` (N, C, C), ``boundary_iou_counts`` (N, 2), ``nll_sum``, ``brier_sum``,
``calibration_*``, ``mc_*``); nothing here looks at a prediction.

The definitions (pooled and per-image mIoU, foreground IoU, Dice, Boundary IoU, ECE, NLL, Brier,
AUROC, PAvPU) live in :mod:`bench.evidence.quality` and :mod:`bench.evidence.metrics`, which the runner
also uses to store them as metric rows, and are re-exported here: one definition of each, and the
worker never loads the report package. ``pooled`` and ``per-image`` mIoU differ on purpose (see there).

A model's statistic is the mean over its seeds of each seed's pooled value. Every interval and
test says which noise it covers (:func:`coverage`, the one place that chooses how it is made):

- Every trained model of the claim has two or more seeds (a deterministic model, which draws no
  random number, needs none): the claim covers the test images and the training seeds. The
  standard error adds the image-bootstrap variance of the estimate (one image draw common to
  every model and seed, the seeds kept) to each trained model's seed variance ``s^2 / S``
  (estimated, S - 1 degrees of freedom), and the interval and p-value are Student's t with
  Welch-Satterthwaite degrees of freedom. With 3 seeds, resampling the seeds instead understates
  their variance by a third and takes it as known: two models of equal expected mIoU were called
  different up to 14.5% of the time at a nominal 5% (tests/evidence/test_ops.py's simulation).
- Otherwise (a trained model with one seed: its training noise cannot be estimated; or every model
  deterministic): a percentile bootstrap over the test images, which covers their noise only: with
  one seed it holds for one training of each model.

Without per-image evidence a model's interval, where it has one, is Student's t over its seeds' stored
values. :func:`interval_kind` names which of these a model's interval is; the report asks it, never
decides itself.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats

from bench.evidence.metrics import (  # noqa: F401 (re-exported: the report's statistics use the runner's definitions)
    PAVPU_THRESHOLD,
    Evidence,
    auroc_from_histograms,
    calibration_scores,
    expected_calibration_error,
    mc_evidence,
    pavpu,
    uncertainty_scores,
)
from bench.evidence.quality import (  # noqa: F401 (re-exported, as above)
    boundary_iou,
    class_iou,
    dice_counts,
    foreground_iou_counts,
    imagewise_miou,
    miou_of,
    per_image_boundary_iou,
    per_image_miou,
    pet_confusion,
    pooled_miou,
    pooled_ratio,
    precision_counts,
    ratio,
    recall_counts,
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


# === Which noise a claim covers ===

#: How an interval or a test is made (:func:`coverage` decides): a Student-t design whose standard
#: error adds the seed-to-seed variance to an image bootstrap's, or a percentile bootstrap over the
#: test images alone.
SEEDS_AND_IMAGES = "seeds and images"
IMAGES = "images"


@dataclass(frozen=True)
class ModelRuns:
    """One model's per-image evidence over its seeds, ``(S, N, *item)``, and whether it is deterministic.

    A deterministic model (a classical segmenter, which draws no random number) has no seed-to-seed
    variance: it is known to be zero, not estimated, so one run of it is all its runs.
    """

    counts: np.ndarray
    deterministic: bool = False

    @property
    def seeds(self) -> int:
        return int(self.counts.shape[0])


@dataclass(frozen=True)
class Coverage:
    """Which noise an interval or a test covers.

    Attributes:
        method: :data:`SEEDS_AND_IMAGES` when every trained model of the claim has two or more seeds
            (their seed variance is estimated and enters a t-interval and t-test); :data:`IMAGES`
            when some trained model has one seed (its training noise cannot be estimated) or every
            model is deterministic: a percentile bootstrap over the test images.
        seeds: The distinct seed counts of the trained (not deterministic) models, ascending; ()
            when every model is deterministic.
    """

    method: str
    seeds: tuple[int, ...]

    @property
    def covers_seeds(self) -> bool:
        return self.method == SEEDS_AND_IMAGES

    def describe(self) -> str:
        """What the claim covers, in a few words for the page."""
        if self.covers_seeds:
            counts = f"{self.seeds[0]}-{self.seeds[-1]}" if len(self.seeds) > 1 else str(self.seeds[0])
            return f"test images and training seeds ({counts} seeds)"
        if not self.seeds:
            return "test images, all the noise of deterministic methods"
        if max(self.seeds) == 1:
            return "test images only, one training of each model"
        return "test images only, since a model in it has one training"


def coverage(models: Sequence[ModelRuns]) -> Coverage:
    """How an interval or test of ``models`` is made, and so which noise it covers: the one place
    that chooses between the seed-and-image t-design and the image bootstrap."""
    seeds = tuple(sorted({m.seeds for m in models if not m.deterministic}))
    return Coverage(SEEDS_AND_IMAGES if seeds and seeds[0] >= 2 else IMAGES, seeds)


#: The kinds of a model's interval, as :func:`interval_kind` names them.
INTERVAL_SEEDS_AND_IMAGES = "seeds"
INTERVAL_IMAGES = "bootstrap"
INTERVAL_SEEDS = "t"
NO_INTERVAL = ""


def interval_kind(cover: Coverage | None, seeds: int) -> str:
    """Which interval a model's statistic has: the one place the report asks.

    Args:
        cover: The :class:`Coverage` of its interval from the per-image evidence (:func:`coverage`
            chose it), or None where there is none (no evidence, or an undefined statistic).
        seeds: How many of its runs stored the statistic.

    Returns:
        :data:`INTERVAL_SEEDS_AND_IMAGES` or :data:`INTERVAL_IMAGES` (from the evidence, as
        ``cover`` says); without it :data:`INTERVAL_SEEDS`, Student's t over the stored per-seed
        values, where there are two or more; else :data:`NO_INTERVAL`.
    """
    if cover is not None:
        return INTERVAL_SEEDS_AND_IMAGES if cover.covers_seeds else INTERVAL_IMAGES
    return INTERVAL_SEEDS if seeds >= 2 else NO_INTERVAL


# === Resampling ===


@dataclass(frozen=True)
class Interval:
    """A point estimate, its 95% interval, and which noise the interval covers.

    ``df``: the Welch-Satterthwaite degrees of freedom of a seed-and-image t-interval; NaN for a
    percentile bootstrap.
    """

    estimate: float
    low: float
    high: float
    n_resamples: int
    seed: int
    coverage: Coverage
    df: float = math.nan


@dataclass(frozen=True)
class PairedTest:
    """``difference`` = statistic(a) - statistic(b) on the same images, its interval, p-value and
    what they cover (``df`` as :class:`Interval`'s)."""

    difference: float
    low: float
    high: float
    p_value: float
    coverage: Coverage
    df: float = math.nan


def stack_seeds(
    runs: Sequence[Evidence], key: str | Callable[[Evidence], np.ndarray] = "confusion"
) -> tuple[np.ndarray, np.ndarray]:
    """One model's seeds as ``(S, N, ...)``, images ordered by ``image_index``.

    Args:
        key: The array to stack, or a function of a run's evidence giving its per-image items in
            the run's image order (e.g. :meth:`bench.evidence.declarations.Metric.items`).

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
        arrays.append(np.asarray(key(run) if callable(key) else run[key])[order])
    return np.stack(arrays), index


def _with_seed_axis(per_image: np.ndarray, item_ndim: int) -> np.ndarray:
    a = np.asarray(per_image)
    if a.ndim == item_ndim + 1:
        a = a[None]
    if a.ndim != item_ndim + 2:
        raise ValueError(f"expected (N, ...) or (S, N, ...) with {item_ndim} item axes, got shape {a.shape}")
    return a.astype(np.int64) if np.issubdtype(a.dtype, np.integer) else a.astype(np.float64)


def _runs(model: ModelRuns | np.ndarray, item_ndim: int) -> ModelRuns:
    """A model's evidence with its seed axis; a bare array is a trained model's."""
    if isinstance(model, ModelRuns):
        return ModelRuns(_with_seed_axis(model.counts, item_ndim), model.deterministic)
    return ModelRuns(_with_seed_axis(model, item_ndim))


def _image_weights(rng: np.random.Generator, n_images: int, n_resamples: int) -> Iterator[np.ndarray]:
    """How often each image is drawn, ``(block, N)`` int64, block after block."""
    for start in range(0, n_resamples, _BLOCK):
        size = min(_BLOCK, n_resamples - start)
        draws = rng.integers(0, n_images, size=(size, n_images)) + np.arange(size)[:, None] * n_images
        yield np.bincount(draws.ravel(), minlength=size * n_images).reshape(size, n_images)


def _weighted_sums(weights: np.ndarray, flat: np.ndarray) -> np.ndarray:
    """``(B, S, K)`` sums over images of ``flat`` ``(S, N, K)``, image n counted ``weights[b, n]`` times."""
    if np.issubdtype(flat.dtype, np.integer):
        # Integer matmul: NumPy's own loops (no BLAS), exact, and three times einsum's speed.
        s, n, k = flat.shape
        return (weights @ flat.transpose(1, 0, 2).reshape(n, s * k)).reshape(len(weights), s, k)
    # einsum without optimize: its own loops, no BLAS threads, the same bits every time.
    return np.einsum("bn,snk->bsk", weights.astype(np.float64), flat, optimize=False)


def _replicates(
    groups: Sequence[np.ndarray], statistic: Callable[[np.ndarray], np.ndarray], n_resamples: int, seed: int
) -> list[np.ndarray]:
    """Image-bootstrap replicates ``(B,)`` of each ``(S, N, ...)`` array's mean over its seeds of
    ``statistic`` applied to that seed's resampled image sums.

    One image draw is common to every group and every seed (they saw the same images); the seeds
    are kept, not resampled: their variance enters through :func:`_seed_terms`, where it is
    estimated with its degrees of freedom (resampling 3 seeds understates it by a third and treats
    it as known).
    """
    if n_resamples < MIN_RESAMPLES:
        raise ValueError(f"n_resamples must be at least {MIN_RESAMPLES}, got {n_resamples}.")
    n_images = groups[0].shape[1]
    if any(g.shape[1] != n_images for g in groups):
        raise ValueError("paired resampling needs the same images in every group")
    rng = np.random.default_rng(seed)
    out = [np.empty(n_resamples) for _ in groups]
    start = 0
    for weights in _image_weights(rng, n_images, n_resamples):
        block = slice(start, start + len(weights))
        for g, o in zip(groups, out):
            sums = _weighted_sums(weights, g.reshape(g.shape[0], n_images, -1))
            values = statistic(sums.reshape(len(weights), *g.shape[:1], *g.shape[2:]))
            with np.errstate(invalid="ignore"):
                o[block] = values.mean(axis=1)
        start += len(weights)
    return out


def _percentiles(values: np.ndarray, confidence: float) -> tuple[float, float]:
    low, high = np.nanquantile(values, [(1 - confidence) / 2, (1 + confidence) / 2])
    return float(low), float(high)


def _per_seed(model: ModelRuns, statistic: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """The statistic of each seed's image sums, ``(S,)``."""
    return np.asarray(statistic(model.counts.sum(axis=1)), dtype=np.float64)


def _seed_terms(
    a: Sequence[ModelRuns], b: Sequence[ModelRuns], statistic: Callable[[np.ndarray], np.ndarray], paired_seeds: bool
) -> list[tuple[float, int]]:
    """The training noise of mean(a) - mean(b): ``(variance, degrees of freedom)`` per trained model.

    A side's statistic is the mean of its models' seed means, so a model's term is
    ``s^2 / S / k^2`` (sample variance over its S seeds, k models on its side). Paired by seed
    (``a[0]`` and ``b[0]`` are two evaluations of the same trained weights), the term is that of the
    per-seed differences. Deterministic models have none.
    """
    if paired_seeds:
        (x,), (y,) = a, b
        d = _per_seed(x, statistic) - _per_seed(y, statistic)
        return [] if x.deterministic else [(float(np.var(d, ddof=1)) / d.size, d.size - 1)]
    terms = []
    for side in (a, b):
        for model in side:
            if not model.deterministic:
                m = _per_seed(model, statistic)
                terms.append((float(np.var(m, ddof=1)) / m.size / len(side) ** 2, m.size - 1))
    return terms


def _t_design(
    estimate: float, image_replicates: np.ndarray, n_images: int, seed_terms: list[tuple[float, int]], confidence: float
) -> tuple[float, float, float, float]:
    """``(low, high, p, df)`` of ``estimate`` with standard error ``sqrt(V_img + sum of seed terms)``.

    V_img is the image-bootstrap variance (N - 1 degrees of freedom); the degrees of freedom of
    the sum are Welch-Satterthwaite's, so that few seeds widen the interval as a t-test's would.
    """
    v_img = float(np.nanvar(image_replicates, ddof=1))
    parts = [(v_img, n_images - 1), *seed_terms]
    variance = sum(v for v, _ in parts)
    if variance <= 0:  # no noise at all: the estimate is exact
        return estimate, estimate, float(estimate == 0), math.inf
    df = variance**2 / sum(v**2 / k for v, k in parts if v > 0)
    se = math.sqrt(variance)
    half = float(scipy_stats.t.ppf(0.5 + confidence / 2, df)) * se
    p = float(2 * scipy_stats.t.sf(abs(estimate) / se, df))
    return estimate - half, estimate + half, min(1.0, p), float(df)


def contrast(
    a: Sequence[ModelRuns | np.ndarray],
    b: Sequence[ModelRuns | np.ndarray] = (),
    *,
    statistic: Callable[[np.ndarray], np.ndarray] = miou_of,
    item_ndim: int = 2,
    paired_seeds: bool = False,
    n_resamples: int = N_RESAMPLES,
    seed: int = RESAMPLING_SEED,
    confidence: float = CONFIDENCE,
) -> PairedTest:
    """The mean statistic of models ``a`` minus that of models ``b`` (0 without ``b``), its interval
    and two-sided p-value, made as :func:`coverage` chooses.

    A model's statistic is the mean over its seeds of each seed's pooled value; a side's, the mean
    over its models. Every model is resampled with one image draw common to all (paired on the
    same images). Seed-and-image t-design: standard error from the image bootstrap's variance plus
    each trained model's seed variance, t with Welch-Satterthwaite degrees of freedom. Image
    bootstrap: the percentile interval of the replicates and ``p = min(1, 2 (1 + #{d* on the far
    side of 0}) / (B + 1))``, so p < alpha exactly when 0 lies outside the (1 - alpha) interval
    (up to the +1 that keeps p above 0).

    Args:
        a, b: Per model, ``(N, *item)`` or ``(S, N, *item)`` per-image counts (a bare array: a
            trained model) or :class:`ModelRuns`; images in the same order for every model.
        statistic: Maps summed items ``(..., *item)`` to values ``(...)``: :func:`miou_of` for
            confusion counts, :func:`ratio` for ``[numerator, denominator]`` pairs.
        item_ndim: ``len(item)``.
        paired_seeds: ``a`` and ``b`` are one model each whose seed s is the same trained weights
            on both sides (Monte-Carlo and deterministic passes): the seed term is that of the
            per-seed differences.
    """
    if not a:
        raise ValueError("a paired group test needs at least one model on each side")
    ra, rb = [_runs(m, item_ndim) for m in a], [_runs(m, item_ndim) for m in b]
    if paired_seeds and (len(ra) != 1 or len(rb) != 1 or ra[0].seeds != rb[0].seeds):
        raise ValueError("a test paired by seed needs one model a side with the same seeds")
    cover = coverage([*ra, *rb])
    reps = _replicates([m.counts for m in (*ra, *rb)], statistic, n_resamples, seed)
    d = np.mean(reps[: len(ra)], axis=0) - (np.mean(reps[len(ra):], axis=0) if rb else 0)
    mean_a = float(np.mean([np.mean(_per_seed(m, statistic)) for m in ra]))
    estimate = mean_a - float(np.mean([np.mean(_per_seed(m, statistic)) for m in rb])) if rb else mean_a
    if cover.covers_seeds:
        terms = _seed_terms(ra, rb, statistic, paired_seeds)
        low, high, p, df = _t_design(estimate, d, ra[0].counts.shape[1], terms, confidence)
        return PairedTest(estimate, low, high, p, cover, df)
    low, high = _percentiles(d, confidence)
    tail = min(int(np.sum(d <= 0)), int(np.sum(d >= 0)))
    p = min(1.0, 2 * (1 + tail) / (n_resamples + 1))
    return PairedTest(estimate, low, high, p, cover)


def interval(
    per_image: ModelRuns | np.ndarray,
    statistic: Callable[[np.ndarray], np.ndarray],
    item_ndim: int,
    *,
    n_resamples: int = N_RESAMPLES,
    seed: int = RESAMPLING_SEED,
    confidence: float = CONFIDENCE,
) -> Interval:
    """A model's statistic (mean over its seeds of each seed's pooled value) and its 95% interval:
    :func:`contrast` of the model alone.

    Args:
        per_image: ``(N, *item)`` or ``(S, N, *item)`` per-image arrays (counts or sums), or
            :class:`ModelRuns`.
        statistic: Maps summed items ``(..., *item)`` to values ``(...)``, e.g. :func:`miou_of`.
        item_ndim: ``len(item)``: 2 for confusion matrices, 1 for ``[numerator, denominator]``.
    """
    c = contrast([per_image], statistic=statistic, item_ndim=item_ndim, n_resamples=n_resamples, seed=seed,
                 confidence=confidence)
    return Interval(c.difference, c.low, c.high, n_resamples=n_resamples, seed=seed, coverage=c.coverage, df=c.df)


def miou_interval(
    confusion: ModelRuns | np.ndarray,
    *,
    n_resamples: int = N_RESAMPLES,
    seed: int = RESAMPLING_SEED,
    confidence: float = CONFIDENCE,
) -> Interval:
    """Interval of the pooled mIoU of ``(N, C, C)`` or ``(S, N, C, C)`` per-image counts."""
    return interval(confusion, miou_of, 2, n_resamples=n_resamples, seed=seed, confidence=confidence)


def ratio_interval(
    counts: ModelRuns | np.ndarray,
    *,
    n_resamples: int = N_RESAMPLES,
    seed: int = RESAMPLING_SEED,
    confidence: float = CONFIDENCE,
) -> Interval:
    """Interval of ``sum(num) / sum(den)`` of ``(N, 2)`` or ``(S, N, 2)`` per-image pairs.

    Boundary IoU (``boundary_iou_counts``), foreground IoU (:func:`foreground_iou_counts`), or
    NLL/Brier per pixel (``stack([nll_sum, pixels], -1)``).
    """
    return interval(counts, ratio, 1, n_resamples=n_resamples, seed=seed, confidence=confidence)


def paired_test(
    a: ModelRuns | np.ndarray,
    b: ModelRuns | np.ndarray,
    *,
    paired_seeds: bool = False,
    n_resamples: int = N_RESAMPLES,
    seed: int = RESAMPLING_SEED,
    confidence: float = CONFIDENCE,
) -> PairedTest:
    """Paired test of pooled mIoU(a) - pooled mIoU(b) on the same images: :func:`contrast` of one
    model a side.

    Args:
        a, b: ``(N, C, C)`` or ``(S, N, C, C)`` per-image confusion counts, or :class:`ModelRuns`,
            images in the same order.
        paired_seeds: Seed s of ``a`` and of ``b`` share their weights (see :func:`contrast`).
    """
    return contrast([a], [b], paired_seeds=paired_seeds, n_resamples=n_resamples, seed=seed, confidence=confidence)


def paired_group_test(
    a: Sequence[ModelRuns | np.ndarray],
    b: Sequence[ModelRuns | np.ndarray],
    *,
    n_resamples: int = N_RESAMPLES,
    seed: int = RESAMPLING_SEED,
    confidence: float = CONFIDENCE,
) -> PairedTest:
    """Paired test of the mean pooled mIoU of models ``a`` minus that of models ``b`` (a family of
    methods against another, on the same images): :func:`contrast` with both sides non-empty."""
    if not b:
        raise ValueError("a paired group test needs at least one model on each side")
    return contrast(a, b, n_resamples=n_resamples, seed=seed, confidence=confidence)


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
    deterministic: Collection[str] = (),
    alpha: float = ALPHA,
    n_resamples: int | None = None,
    seed: int = RESAMPLING_SEED,
) -> pd.DataFrame:
    """Which models the evidence cannot tell apart from the top one.

    The models are ranked by pooled mIoU (mean over seeds; ties by name). Each model below #1 is
    compared with #1 by :func:`paired_test`, which covers the training seeds too where both have
    several (or are deterministic); the p-values are Holm-corrected over those comparisons, and a
    model is tied with #1 when its corrected p-value is above ``alpha``. ``n_resamples``: default
    :func:`resamples_for_tests` of the number of comparisons.

    Args:
        models: Model id -> the evidence of its runs (one per seed), as :func:`bench.evidence.ops.load_evidence`
            reads them.
        deterministic: The models that draw no random number (classical segmenters): no seed variance.

    Returns:
        One row per model, best first: ``model``, ``rank``, ``miou``, ``difference`` (its mIoU minus
        #1's) with ``low`` and ``high``, its 95% interval, ``p_value``, ``p_holm`` (NaN for #1, also
        ``low`` and ``high``), ``tied`` (True for #1 and every model not distinguishable from it) and
        ``coverage`` (the :class:`Coverage` of its comparison; #1's: of its own interval).

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
    runs = {name: ModelRuns(confusion, name in deterministic) for name, (confusion, _) in stacked.items()}
    best = runs[order[0]]
    tests = [paired_test(runs[name], best, n_resamples=n_resamples, seed=seed) for name in order[1:]]
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
        "coverage": [coverage([best]), *(t.coverage for t in tests)],
    })

