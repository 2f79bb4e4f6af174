"""Every array of ``evidence.npz`` and every per-image metric, each declared once.

A stored array is an :class:`Array`: its dtype, shape, and whether it holds one entry per test
image or one per run. A per-image metric is a :class:`Metric`: the arrays it reads, the per-image
counts it takes from them, the statistic that pools them, its metric rows, whether the report gives
it an interval, and its columns in "Accuracy in detail". Everything that stores, pools, resamples or
shows a metric reads these declarations and nothing else:

- :class:`bench.evidence.ops.EvidenceAccumulator` keeps every declared array the device step returns
  (per image: concatenated; per run: summed over images) and refuses one that no :class:`Array` claims;
- :data:`bench.evidence.npz.SCHEMA`, which :func:`bench.evidence.npz.save_evidence` checks, is :data:`ARRAYS`;
- :func:`bench.evidence.metrics.evidence_metrics` writes each metric's rows;
- the report computes the interval of each metric that asks for one (:mod:`bench.report.summary`,
  made as :func:`bench.report.statistics.interval_kind` chooses) and draws each declared column
  (:mod:`bench.report.tables`, :mod:`bench.report.sections`).

The computations live in :mod:`bench.evidence.quality` (NumPy, from stored counts) and
:mod:`bench.evidence.ops` (TensorFlow, on the device); docs/architecture.md ("Adding a metric") says
which files a new metric touches.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace

import numpy as np

from bench.evidence.quality import (
    dice_counts,
    foreground_iou_counts,
    mean_over_images,
    miou_of,
    pixel_counts,
    precision_counts,
    ratio,
    recall_counts,
)
from segmodels.trimap import NUM_CLASSES

CALIBRATION_BINS = 15
#: Predictive-entropy histograms have this many equal bins over [0, log(NUM_CLASSES)] nats.
ENTROPY_BINS = 100
#: Every Monte-Carlo-dropout array is named ``mc_<name>``.
MC_PREFIX = "mc_"

Evidence = Mapping[str, np.ndarray]


# === Stored arrays ===


@dataclass(frozen=True)
class Array:
    """One array of ``evidence.npz``.

    Attributes:
        name: Its key in the file.
        dtype: NumPy dtype name, as stored.
        shape: Per image: the shape after the leading image axis; per run: the whole shape. ``"P"``
            is the number of Monte-Carlo curve points, known only at run time.
        per_image: One entry per test image, ``(N, *shape)`` in ``image_index`` order; else one per
            run. Every output of the device step has an image axis: a per-image array is
            concatenated over batches, a per-run one summed over every image (exact in int64).
        probabilities: Needs class probabilities: a hard-label model (a classical segmenter) has none.
        monte_carlo: Also stored for the Monte-Carlo prediction (mean of the T softmax samples) as
            ``mc_<name>``, measured as this one.
    """

    name: str
    dtype: str
    shape: tuple[int | str, ...]
    per_image: bool
    probabilities: bool = False
    monte_carlo: bool = False


_C = NUM_CLASSES
_MEASURED = (
    Array("image_index", "int32", (), per_image=True),
    Array("confusion", "int32", (_C, _C), per_image=True, monte_carlo=True),
    Array("boundary_iou_counts", "int32", (2,), per_image=True, monte_carlo=True),
    Array("boundary_width", "int32", (), per_image=False),
    Array("nll_sum", "float32", (), per_image=True, probabilities=True, monte_carlo=True),
    Array("brier_sum", "float32", (), per_image=True, probabilities=True, monte_carlo=True),
    Array("calibration_count", "int32", (CALIBRATION_BINS,), per_image=False, probabilities=True),
    Array("calibration_confidence", "float32", (CALIBRATION_BINS,), per_image=False, probabilities=True),
    Array("calibration_correct", "int32", (CALIBRATION_BINS,), per_image=False, probabilities=True),
    Array("mc_num_samples", "int32", (), per_image=False),
    Array("mc_curve_samples", "int32", ("P",), per_image=False),
    Array("mc_curve_confusion", "int32", ("P", _C, _C), per_image=False),
    Array("mc_curve_calibration_count", "int32", ("P", CALIBRATION_BINS), per_image=False),
    Array("mc_curve_calibration_confidence", "float32", ("P", CALIBRATION_BINS), per_image=False),
    Array("mc_curve_calibration_correct", "int32", ("P", CALIBRATION_BINS), per_image=False),
    Array("mc_entropy_histogram", "int32", (2, ENTROPY_BINS), per_image=False),
)
#: Every stored array, in the order a run stores them: the measured ones, then the Monte-Carlo
#: prediction's copies of the per-image ones.
ARRAYS: tuple[Array, ...] = (
    *_MEASURED,
    *(replace(a, name=f"{MC_PREFIX}{a.name}", monte_carlo=False) for a in _MEASURED if a.monte_carlo),
)


# === Per-image metrics ===


@dataclass(frozen=True)
class Column:
    """A metric's column in "Accuracy in detail".

    Attributes:
        header: The column's header (``"<header> [95% interval]"`` with ``interval``).
        per_image: Shows the metric's per-image mean (its ``per_image`` row), not the pooled value.
        interval: Shows the pooled value with its 95% interval (the metric must have one).
    """

    header: str
    per_image: bool = False
    interval: bool = False

    @property
    def title(self) -> str:
        return f"{self.header} [95% interval]" if self.interval else self.header


@dataclass(frozen=True)
class Metric:
    """A per-image metric: one statistic of per-image counts, pooled by summing them over images.

    Attributes:
        name: Its row in metrics.csv: the value pooled over the run's test images.
        unit: The unit of its rows.
        arrays: The :data:`ARRAYS` it reads; a run whose evidence lacks one has no row of it.
        statistic: Counts ``(..., *item)`` -> values ``(...)``: of the counts summed over images,
            the pooled value; of one image's, that image's value (its per-image form).
        item_ndim: ``len(item)``: 2 for confusion matrices, 1 for ``[numerator, denominator]``.
        counts: The arrays it reads, in order -> per-image counts ``(N, *item)`` (integer counts or
            sums, which the report's resampling sums exactly); None: the one array itself.
        pooled_row: :func:`bench.evidence.metrics.evidence_metrics` writes the pooled row; False
            where :func:`bench.evidence.metrics.scores` writes it, from the same summed counts.
        per_image: The row of the mean over images of the per-image values (images where it is
            undefined left out), or None for no such row.
        interval: The report gives the pooled value a 95% interval over the images (and the seeds,
            where every run of the claim has several).
        columns: Its columns in "Accuracy in detail", in order; none: not in that table.
        about: What the columns show, for the text above the table; ``{band}`` is replaced by the
            Boundary IoU band's width as the runs stored it.
    """

    name: str
    unit: str
    arrays: tuple[str, ...]
    statistic: Callable[[np.ndarray], np.ndarray]
    item_ndim: int
    counts: Callable[..., np.ndarray] | None = None
    pooled_row: bool = True
    per_image: str | None = None
    interval: bool = False
    columns: tuple[Column, ...] = ()
    about: str = ""

    @property
    def monte_carlo(self) -> bool:
        """Whether it scores the Monte-Carlo prediction (reads ``mc_*`` arrays)."""
        return any(a.startswith(MC_PREFIX) for a in self.arrays)

    @property
    def rows(self) -> tuple[str, ...]:
        """Its metric rows: the pooled value (whoever writes it), then the per-image mean."""
        return (self.name, *((self.per_image,) if self.per_image else ()))

    def reads(self, evidence: Evidence) -> bool:
        """Whether ``evidence`` holds every array it reads."""
        return all(a in evidence for a in self.arrays)

    def items(self, evidence: Evidence) -> np.ndarray:
        """Its per-image counts ``(N, *item)`` in the evidence's image order."""
        arrays = [np.asarray(evidence[a]) for a in self.arrays]
        return arrays[0] if self.counts is None else np.asarray(self.counts(*arrays))

    def pooled(self, evidence: Evidence) -> float:
        """The statistic of the counts summed over the run's images (NaN where undefined)."""
        items = self.items(evidence)
        wide = np.int64 if np.issubdtype(items.dtype, np.integer) else np.float64
        return float(self.statistic(items.sum(axis=0, dtype=wide)))

    def per_image_values(self, evidence: Evidence) -> np.ndarray:
        """Each image's value ``(N,)``, NaN where undefined."""
        return np.asarray(self.statistic(self.items(evidence)), dtype=np.float64)

    def per_image_mean(self, evidence: Evidence) -> float:
        """The mean over images of :meth:`per_image_values`, undefined images left out."""
        return mean_over_images(self.per_image_values(evidence))


def _confusion_metric(name: str, counts: Callable[[np.ndarray], np.ndarray], **fields: object) -> Metric:
    """A metric of the pet-vs-rest counts of the per-image confusion matrices (a ratio)."""
    return Metric(name, "ratio", ("confusion",), ratio, 1, counts, **fields)


#: Every per-image metric. The order is that of the rows and of the columns.
METRICS: tuple[Metric, ...] = (
    Metric(
        "miou", "ratio", ("confusion",), miou_of, 2, pooled_row=False, per_image="miou_per_image", interval=True,
        columns=(Column("mIoU pooled"), Column("mIoU per image", per_image=True)),
        about=("Two aggregations of the same confusion counts. **mIoU pooled** (the leaderboard's): one confusion "
               "matrix summed over every test image, then the IoU of each class and their mean, as PASCAL VOC, "
               "Cityscapes and MMSegmentation report it; large pets weigh more. **mIoU per image**: each image's own "
               "mIoU (a class absent from an image's truth and prediction left out), then the mean over images, as "
               "segmentation_models_pytorch's image-wise reduction; every image weighs the same."),
    ),
    _confusion_metric(
        "fg_iou", foreground_iou_counts, columns=(Column("Foreground IoU"),),
        about=("**Foreground IoU**: the dataset's own measure, pet vs background IoU with the trimap's border pixels "
               "ignored (Parkhi et al., CVPR 2012)."),
    ),
    _confusion_metric(
        "dice_pet", dice_counts, per_image="dice_pet_per_image", interval=True,
        columns=(Column("Dice pet", interval=True),),
        about=("**Dice pet**: the pet's Dice (F1), 2 TP / (2 TP + FP + FN) over the same pixels as the foreground "
               "IoU (true border ignored, predicted border not pet), the counts summed over images, so that it is "
               "2 IoU / (1 + IoU) of the foreground IoU; its interval is made as the mIoU's. It is computed here from "
               "each run's stored per-image confusion matrices, so runs stored before it existed have it too; runs "
               "measured since also store it, its precision, recall and mean over images as rows of `metrics.csv`."),
    ),
    _confusion_metric("precision_pet", precision_counts),
    _confusion_metric("recall_pet", recall_counts),
    Metric(
        "boundary_iou", "ratio", ("boundary_iou_counts",), ratio, 1, interval=True,
        columns=(Column("Boundary IoU", interval=True),),
        about=("**Boundary IoU** (Cheng et al., CVPR 2021) of the pet: IoU of the pixels within {band} (2% of the "
               "image diagonal) of the true and the predicted pet contours, summed over images; its interval is a "
               "bootstrap over the images."),
    ),
    Metric(
        "pixel_accuracy", "ratio", ("confusion",), ratio, 1, pixel_counts, pooled_row=False,
        columns=(Column("Pixel acc."),),
    ),
    Metric(f"{MC_PREFIX}miou", "ratio", (f"{MC_PREFIX}confusion",), miou_of, 2, interval=True),
)
METRICS_BY_NAME: dict[str, Metric] = {m.name: m for m in METRICS}


def metric(name: str) -> Metric:
    """The declared metric ``name``; an unknown name is an error naming the nearest."""
    if name not in METRICS_BY_NAME:
        near = difflib.get_close_matches(name, METRICS_BY_NAME, n=1)
        hint = f" (did you mean {near[0]!r}?)" if near else ""
        raise KeyError(f"no metric {name!r} is declared{hint}; declared: {', '.join(METRICS_BY_NAME)}")
    return METRICS_BY_NAME[name]


def undeclared(names: Iterable[str]) -> list[str]:
    """The names among ``names`` that no :class:`Array` of :data:`ARRAYS` declares, sorted."""
    declared = {a.name for a in ARRAYS}
    return sorted(str(n) for n in names if n not in declared)


def _check() -> None:
    """Declarations that contradict each other are an error when this module is imported."""
    for kind, names in (("array", [a.name for a in ARRAYS]), ("metric row", [r for m in METRICS for r in m.rows])):
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"{kind} declared twice: {', '.join(repeated)}")
    for m in METRICS:
        missing = undeclared(m.arrays)
        if missing:
            raise ValueError(f"metric {m.name!r} reads undeclared arrays: {', '.join(missing)}")
        for column in m.columns:
            if column.per_image and not m.per_image:
                raise ValueError(f"metric {m.name!r}: column {column.header!r} shows a per-image row it has not")
            if column.interval and not m.interval:
                raise ValueError(f"metric {m.name!r}: column {column.header!r} shows an interval it has not")


_check()
