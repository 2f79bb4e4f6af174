"""The ``evidence.npz`` format: which arrays a run stores, their dtypes and shapes, and reading
and writing them. No TensorFlow here: the report reads evidence without loading it; the arrays
are measured on the device by :mod:`bench.evidence.ops`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from segmodels.trimap import NUM_CLASSES

CALIBRATION_BINS = 15
#: Predictive-entropy histograms have this many equal bins over [0, log(NUM_CLASSES)] nats.
ENTROPY_BINS = 100

#: Every stored array: dtype and shape after the leading image axis (per image) or whole (per run).
#: ``P`` is the number of curve points, known only at run time.
SCHEMA: dict[str, tuple[str, tuple[int | str, ...], bool]] = {
    # name: (dtype, shape, per_image)
    "image_index": ("int32", (), True),
    "confusion": ("int32", (NUM_CLASSES, NUM_CLASSES), True),
    "boundary_iou_counts": ("int32", (2,), True),
    "nll_sum": ("float32", (), True),
    "brier_sum": ("float32", (), True),
    "boundary_width": ("int32", (), False),
    "calibration_count": ("int32", (CALIBRATION_BINS,), False),
    "calibration_confidence": ("float32", (CALIBRATION_BINS,), False),
    "calibration_correct": ("int32", (CALIBRATION_BINS,), False),
    "mc_num_samples": ("int32", (), False),
    "mc_curve_samples": ("int32", ("P",), False),
    "mc_curve_confusion": ("int32", ("P", NUM_CLASSES, NUM_CLASSES), False),
    "mc_curve_calibration_count": ("int32", ("P", CALIBRATION_BINS), False),
    "mc_curve_calibration_confidence": ("float32", ("P", CALIBRATION_BINS), False),
    "mc_curve_calibration_correct": ("int32", ("P", CALIBRATION_BINS), False),
    "mc_entropy_histogram": ("int32", (2, ENTROPY_BINS), False),
    # The MC prediction (mean of all T samples) per image, as the deterministic arrays above.
    "mc_confusion": ("int32", (NUM_CLASSES, NUM_CLASSES), True),
    "mc_boundary_iou_counts": ("int32", (2,), True),
    "mc_nll_sum": ("float32", (), True),
    "mc_brier_sum": ("float32", (), True),
}

#: The arrays that need class probabilities; a hard-label model (a classical segmenter) has none.
CALIBRATION_ARRAYS = (
    "nll_sum", "brier_sum", "calibration_count", "calibration_confidence", "calibration_correct",
)
#: The per-image arrays of :class:`EvidenceAccumulator` that are stored for the MC prediction, as ``mc_<name>``.
MC_PER_IMAGE = ("confusion", "boundary_iou_counts", "nll_sum", "brier_sum")


def check_evidence(arrays: Mapping[str, np.ndarray]) -> None:
    """Raises ``ValueError`` when a known array has the wrong dtype or shape."""
    n = None
    for name, value in arrays.items():
        if name not in SCHEMA:
            continue
        dtype, shape, per_image = SCHEMA[name]
        value = np.asarray(value)
        if value.dtype != np.dtype(dtype):
            raise ValueError(f"evidence array {name!r} is {value.dtype}, expected {dtype}.")
        tail = value.shape[1:] if per_image else value.shape
        if per_image:
            n = value.shape[0] if n is None else n
            if value.shape[0] != n:
                raise ValueError(f"evidence array {name!r} has {value.shape[0]} images, others have {n}.")
        if len(tail) != len(shape) or any(s != "P" and s != d for s, d in zip(shape, tail)):
            raise ValueError(f"evidence array {name!r} has shape {value.shape}, expected {shape}.")


def save_evidence(path: str | Path, arrays: Mapping[str, np.ndarray]) -> None:
    """Checks the arrays against :data:`SCHEMA` and writes them with ``np.savez_compressed``."""
    check_evidence(arrays)
    np.savez_compressed(path, **{k: np.asarray(v) for k, v in arrays.items()})


def load_evidence(path: str | Path) -> dict[str, np.ndarray]:
    """Reads a file written by :func:`save_evidence` (no pickles) and checks it."""
    with np.load(path, allow_pickle=False) as data:
        arrays = {name: data[name] for name in data.files}
    check_evidence(arrays)
    return arrays
