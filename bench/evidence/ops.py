"""Per-image evidence measured on the device during evaluation, so that no logit or mask crosses to the host.

Every function here is ``keras.ops`` on one batch, so it runs on the process's Keras backend
(TensorFlow, JAX or PyTorch) and its tensors stay on that backend's device: masks ``(N, H, W)``
(or ``(N, H, W, 1)``) of class ids and logits ``(N, H, W, C)``. Only small per-image arrays (at most a few hundred numbers
an image) leave the device; no per-pixel tensor is copied to the host. The report
(:mod:`bench.report.statistics`) turns the stored arrays into numbers, intervals and tests.

What is measured, per image unless noted:

- ``confusion``: the 3x3 confusion counts, rows = true class, columns = ``argmax(logits)``.
  Pooled and per-image mIoU, and the pet-vs-background foreground IoU, Dice, precision and recall
  with border pixels ignored (the dataset's own convention), all derive from it
  (:mod:`bench.evidence.quality`), so nothing else is stored for them.
- ``boundary_iou_counts``: intersection and union of the pet's boundary bands, for Boundary IoU
  (Cheng et al., CVPR 2021, arXiv:2103.16562). See :func:`boundary_region` for the definition.
- ``nll_sum``, ``brier_sum``: the per-image sums of the pixel negative log-likelihood (nats) and
  multi-class Brier score ``sum_c (p_c - onehot_c)^2``, from the softmax of float32 logits.
- ``calibration_*`` (per run): for 15 equal-width bins of the max softmax probability, the pixel
  count, the sum of that confidence and the count of correct pixels: pixel-level expected
  calibration error (Guo et al., ICML 2017, arXiv:1706.04599; bins are ``(lo, hi]`` as there).

Monte-Carlo dropout (:class:`MCDropoutAccumulator`) adds, from T stochastic softmax samples, the
predictive entropy histograms of correct and wrong pixels (AUROC and PAvPU, Mukhoti & Gal 2018,
arXiv:1811.12709) and the mIoU/ECE curve after the first t samples, without holding T copies.

Which arrays are stored, and how each is kept over the batches, is declared once in
:mod:`bench.evidence.declarations`.

Implementation notes, for running inside a traced, deterministic evaluation on a GPU: counts are
``segment_sum`` of float32 ones, per image (exact: every segment holds at most H*W < 2**24 pixels,
where a float32 sum of ones still counts by one; on TensorFlow it is ``unsorted_segment_sum``, whose
deterministic GPU kernels exist under ``enable_op_determinism``), index arithmetic is int64 on
TensorFlow (it keeps int32 arithmetic in host memory on GPUs) and int32 on JAX (no int64 without
x64; the largest id, N * 2 * 100, is far from 2**31), results are cast to int32 only at the end,
and the host sums images in int64. :func:`bench.config.backends.traced` compiles the steps.

Why one module of this size: every evidence array is measured in one traced step on the device;
their definitions (bands, bins, MC curve) stay side by side so that the step stays one.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import keras
import numpy as np
from numpy.typing import ArrayLike

from bench.config.backends import current, to_numpy, traced
from bench.config.run_config import NUM_CLASSES
from bench.evidence import declarations
from bench.evidence.npz import (  # noqa: F401 (the stored format, re-exported where it is measured)
    CALIBRATION_ARRAYS,
    CALIBRATION_BINS,
    ENTROPY_BINS,
    MC_PER_IMAGE,
    SCHEMA,
    check_evidence,
    load_evidence,
    save_evidence,
)
from segmodels.trimap import BORDER, PET

#: Boundary IoU's band width as a fraction of the image diagonal (the paper's d = 2%).
BOUNDARY_RATIO = 0.02
#: Predictive-entropy histograms have ENTROPY_BINS equal bins over [0, log(NUM_CLASSES)] nats.
MAX_ENTROPY = math.log(NUM_CLASSES)
#: The sample curve is recorded after t samples for t in 1, 2, 5, 10, 20, 50, ... and at T.
CURVE_SERIES = (1, 2, 5)


# === Definitions ===


def boundary_width(image_size: int | Sequence[int], ratio: float = BOUNDARY_RATIO) -> int:
    """Boundary IoU's band width d in pixels: ``max(1, round(ratio * sqrt(H**2 + W**2)))``.

    The reference implementation's rule (boundary-iou-api ``mask_to_boundary``), so the band
    scales with the image: 4 px at 128x128, 6 px at 224x224, 14 px at 512x512.
    """
    h, w = (image_size, image_size) if isinstance(image_size, int) else tuple(int(s) for s in image_size)
    return max(1, round(ratio * math.hypot(h, w)))


def curve_points(num_samples: int) -> tuple[int, ...]:
    """Sample counts at which the MC-dropout curve is recorded: 1, 2, 5, 10, 20, 50, ... <= T, and T."""
    if num_samples < 1:
        raise ValueError(f"num_samples must be at least 1, got {num_samples}.")
    points, scale = [], 1
    while scale <= num_samples:
        points += [m * scale for m in CURVE_SERIES if m * scale <= num_samples]
        scale *= 10
    return tuple(sorted(set(points) | {num_samples}))


# === Per-image evidence (keras.ops on one batch) ===


def _index_dtype() -> str:
    # TensorFlow keeps int32 arithmetic in host memory on GPUs; JAX has no int64 without x64.
    return "int32" if current() == "jax" else "int64"


def _class_ids(masks: Any) -> Any:
    masks = keras.ops.convert_to_tensor(masks)
    if len(masks.shape) == 4:
        masks = masks[..., 0]
    return keras.ops.cast(masks, _index_dtype())


def _image_ids(t: Any) -> tuple[Any, Any]:
    """``(N, 1, 1)``, each pixel's image (the outer digit of its segment id), and N: a tensor on
    TensorFlow, whose traced batch size is unknown; an int elsewhere."""
    n = keras.ops.shape(t)[0]
    return keras.ops.arange(n, dtype=_index_dtype())[:, None, None], n


def _segment_counts(values: Any, ids: Any, segments: Any) -> Any:
    return keras.ops.segment_sum(keras.ops.reshape(values, [-1]), keras.ops.reshape(ids, [-1]), segments)


def predicted_classes(scores: Any) -> Any:
    """The class of the highest score ``(..., C) -> (...)``, the first on a tie, as an index.

    Each backend's own argmax: ``keras.ops.argmax`` also orders -0.0 below +0.0, which costs two
    more passes over the logits (a fifth of the evidence step on a CPU) and no number here wants.
    """
    backend = current()
    if backend == "tensorflow":
        import tensorflow as tf  # lazy: the TensorFlow backend only

        return tf.argmax(scores, axis=-1, output_type=tf.int64)
    if backend == "jax":
        import jax.numpy as jnp  # lazy: the JAX backend only

        return jnp.argmax(scores, axis=-1).astype(_index_dtype())
    import torch  # lazy: the PyTorch backend only

    return torch.argmax(scores, dim=-1)


def _bin(position: Any, bins: int) -> Any:
    """A whole bin position (a ceil or a floor) clipped to ``[0, bins - 1]``, as an index."""
    return keras.ops.cast(keras.ops.clip(position, 0.0, bins - 1.0), _index_dtype())


def confusion_counts(masks: Any, predicted: Any, num_classes: int = NUM_CLASSES) -> Any:
    """Per-image confusion counts ``(N, C, C)`` int32: ``[n, true, predicted]``."""
    t, p = _class_ids(masks), _class_ids(predicted)
    image, n = _image_ids(t)
    ids = (image * num_classes + t) * num_classes + p
    counts = _segment_counts(keras.ops.ones_like(t, dtype="float32"), ids, n * num_classes * num_classes)
    return keras.ops.reshape(keras.ops.cast(counts, "int32"), [-1, num_classes, num_classes])


def boundary_region(mask: Any, width: int) -> Any:
    """The pixels of a binary mask ``(N, H, W)`` within ``width`` of its contour (bool).

    ``mask AND NOT erode(mask, width)``, where the erosion is ``width`` repeated 3x3 erosions =
    one ``(2*width+1)`` square: a mask pixel is in the band when a non-mask pixel lies within
    chessboard (L-infinity) distance ``width``. Outside the image counts as non-mask, so a mask cut
    by the frame has a boundary there. Both match the reference implementation (zero padding,
    ``cv2.erode`` with a 3x3 kernel ``d`` times). The square's max-pool is separable: two 1-D
    passes over the complement.
    """
    inside = keras.ops.cast(mask, "bool")
    outside = keras.ops.cast(keras.ops.logical_not(inside), "float32")[..., None]
    k = 2 * width + 1
    padded = keras.ops.pad(outside, [[0, 0], [width, width], [width, width], [0, 0]], constant_values=1.0)
    near = keras.ops.max_pool(padded, (k, 1), strides=1, padding="valid", data_format="channels_last")
    near = keras.ops.max_pool(near, (1, k), strides=1, padding="valid", data_format="channels_last")
    return keras.ops.logical_and(inside, near[..., 0] > 0.5)


def boundary_iou_counts(true_mask: Any, pred_mask: Any, width: int) -> Any:
    """Per-image ``[|G_d & P_d|, |G_d | P_d|]`` ``(N, 2)`` int32 of two binary masks ``(N, H, W)``."""
    g, p = boundary_region(true_mask, width), boundary_region(pred_mask, width)
    inter = keras.ops.sum(keras.ops.cast(keras.ops.logical_and(g, p), "float32"), axis=(1, 2))
    union = keras.ops.sum(keras.ops.cast(keras.ops.logical_or(g, p), "float32"), axis=(1, 2))
    return keras.ops.cast(keras.ops.stack([inter, union], axis=-1), "int32")


def calibration_bins(masks: Any, probs: Any, bins: int = CALIBRATION_BINS) -> tuple[Any, Any, Any]:
    """Per-image ``(count, confidence sum, correct count)``, each ``(N, bins)``, of max-softmax bins.

    Bin b holds confidences in ``(b/bins, (b+1)/bins]`` (bin 0 also takes 0).
    """
    t = _class_ids(masks)
    probs = keras.ops.convert_to_tensor(probs)
    confidence = keras.ops.max(probs, axis=-1)
    correct = keras.ops.cast(keras.ops.equal(predicted_classes(probs), t), "float32")
    b = _bin(keras.ops.ceil(confidence * bins) - 1.0, bins)
    image, n = _image_ids(t)
    ids = image * bins + b
    segments = n * bins
    count = _segment_counts(keras.ops.ones_like(confidence), ids, segments)
    conf_sum = _segment_counts(confidence, ids, segments)
    correct_sum = _segment_counts(correct, ids, segments)
    shape = [-1, bins]
    return (
        keras.ops.reshape(keras.ops.cast(count, "int32"), shape),
        keras.ops.reshape(conf_sum, shape),
        keras.ops.reshape(keras.ops.cast(correct_sum, "int32"), shape),
    )


def batch_evidence(masks: Any, logits: Any, width: int) -> dict[str, Any]:
    """Every per-image evidence array of one batch; traceable (compile it with
    :func:`bench.config.backends.traced`).

    Args:
        masks: ``(N, H, W)`` or ``(N, H, W, 1)`` class ids.
        logits: ``(N, H, W, C)`` model outputs; cast to float32 before the softmax.
        width: Boundary band width in pixels (:func:`boundary_width` of the image size).

    Returns:
        ``confusion`` (N, C, C) int32, ``boundary_iou_counts`` (N, 2) int32, ``nll_sum`` and
        ``brier_sum`` (N,) float32, ``calibration_count``/``_confidence``/``_correct`` (N, 15).
        Boundary IoU is of the pet: ground truth = class 0 (the trimap's border is not pet, so the
        contour is the inner edge of the border band), prediction = ``argmax == 0``.
    """
    t = _class_ids(masks)
    logits = keras.ops.cast(logits, "float32")
    classes = logits.shape[-1] or NUM_CLASSES
    log_p = keras.ops.log_softmax(logits, axis=-1)
    p = keras.ops.exp(log_p)
    predicted = predicted_classes(logits)
    onehot = keras.ops.one_hot(t, classes, dtype="float32")
    count, conf_sum, correct = calibration_bins(t, p)
    return {
        "confusion": confusion_counts(t, predicted, num_classes=classes),
        "boundary_iou_counts": boundary_iou_counts(keras.ops.equal(t, PET), keras.ops.equal(predicted, PET), width),
        "nll_sum": -keras.ops.sum(log_p * onehot, axis=(1, 2, 3)),
        "brier_sum": keras.ops.sum(keras.ops.square(p - onehot), axis=(1, 2, 3)),
        "calibration_count": count,
        "calibration_confidence": conf_sum,
        "calibration_correct": correct,
    }


def _spatial_size(masks: Any) -> tuple[int, int]:
    shape = tuple(np.shape(masks))
    if len(shape) not in (3, 4) or shape[1] is None or shape[2] is None:
        raise ValueError(f"masks must be (N, H, W) or (N, H, W, 1) with a known H and W, got {shape}.")
    return int(shape[1]), int(shape[2])


class EvidenceAccumulator:
    """Collects :func:`batch_evidence` over the test batches of one run.

    ``update`` runs one traced step on the device and keeps only its small outputs; ``result``
    gives the arrays to store (``np.savez_compressed(path, **result)`` or :func:`save_evidence`).
    On TensorFlow the step is traced once for any batch size (the batch axis is left unknown); JAX
    compiles it once more for each new batch size (a last, smaller batch). Every output the
    step returns is kept as its :class:`bench.evidence.declarations.Array` says (per image:
    concatenated; per run: summed over the images); an output no declaration claims is an error
    at the first batch, not an array silently dropped.

    Args:
        width: Boundary band width; ``None`` takes :func:`boundary_width` of the first batch.
        forward: ``images -> logits``, e.g. a model in inference mode (or a ``tf.function`` of
            one, which the step then calls without tracing the model again). With it, ``update``
            takes images; only the evidence leaves the device. On TensorFlow the forward pass runs
            inside the traced step; on JAX and PyTorch ``update`` calls it before the step and
            hands the step its logits, still on the device (a jitted step that closed over the
            model would hold its weights as constants). Without it, ``update`` takes logits.
        calibration: ``False`` leaves out :data:`CALIBRATION_ARRAYS` (for hard labels, where a
            softmax of one-hot scores would be a made-up probability).
    """

    def __init__(
        self, width: int | None = None, forward: Callable[[Any], Any] | None = None, calibration: bool = True
    ) -> None:
        self.width = width
        self.forward = forward
        self.calibration = calibration
        # TensorFlow runs the forward pass inside the step; the other backends before it.
        self._fused = forward is not None and current() == "tensorflow"
        self._step: Callable[..., dict[str, Any]] | None = None
        self._size: tuple[int, int] | None = None
        self._parts: dict[str, list[np.ndarray]] = {}
        self._index: list[np.ndarray] = []
        self._seen = 0

    def _compiled(self, masks: Any, inputs: Any) -> Callable[..., dict[str, Any]]:
        size = _spatial_size(masks)
        if self._size is not None and size != self._size:
            raise ValueError(f"a batch of {size} images after {self._size}: one run has one image size.")
        self._size = size
        if self.width is None:
            self.width = boundary_width(size)
        if self._step is None:
            fixed, keep_calibration = self.width, self.calibration
            forward = self.forward if self._fused else None

            def step(m: Any, x: Any) -> dict[str, Any]:
                out = batch_evidence(m, x if forward is None else forward(x), fixed)
                # Outputs left out are pruned from the graph: hard labels pay for no softmax.
                return out if keep_calibration else {k: v for k, v in out.items() if k not in CALIBRATION_ARRAYS}

            self._step = traced(step, signature=_any_batch_size(masks, inputs))
        return self._step

    def update(self, masks: Any, inputs: Any, image_index: ArrayLike | None = None) -> None:
        """Adds one batch: ``inputs`` are logits, or images when there is a ``forward``;
        ``image_index`` (N,) names the images (default: running position)."""
        masks = keras.ops.cast(masks, "int32")
        inputs = keras.ops.cast(inputs, "float32")
        if self.forward is not None and not self._fused:
            inputs = keras.ops.cast(self.forward(inputs), "float32")
        arrays = {k: to_numpy(v) for k, v in self._compiled(masks, inputs)(masks, inputs).items()}
        unknown = declarations.undeclared(arrays)
        if unknown:
            raise ValueError(
                f"batch_evidence returned {', '.join(map(repr, unknown))}, which no declaration claims: add an "
                "Array to bench.evidence.declarations (dtype, shape, per image or a run total) so that it is stored"
            )
        n = arrays["confusion"].shape[0]
        index = np.arange(self._seen, self._seen + n) if image_index is None else np.asarray(image_index)
        if index.shape != (n,):
            raise ValueError(f"image_index must have shape ({n},), got {index.shape}.")
        self._index.append(index.astype(np.int64))
        for key, value in arrays.items():
            self._parts.setdefault(key, []).append(value)
        self._seen += n

    def update_probabilities(self, masks: Any, probs: Any, image_index: ArrayLike | None = None) -> None:
        """Adds a batch of class probabilities (e.g. an MC-dropout mean): ``log(p)`` as logits."""
        if self.forward is not None:
            raise ValueError("update_probabilities takes probabilities, but this accumulator has a forward pass")
        logits = keras.ops.log(keras.ops.maximum(keras.ops.cast(probs, "float32"), np.finfo(np.float32).tiny))
        self.update(masks, logits, image_index)

    def result(self) -> dict[str, np.ndarray]:
        """The run's evidence arrays (see :data:`SCHEMA`), in the declared order: every output of
        the step, each concatenated over the images or summed to a run total as declared, the image
        index and the band width."""
        if not self._index:
            raise ValueError("no batch was added")
        index = np.concatenate(self._index)
        if np.unique(index).size != index.size:
            raise ValueError("image_index repeats an image")
        own = {"image_index": _int32(index), "boundary_width": np.int32(self.width)}
        out = {}
        for array in declarations.ARRAYS:
            if array.name in own:
                out[array.name] = own[array.name]
            elif array.name in self._parts:
                out[array.name] = _combine(np.concatenate(self._parts[array.name]), array.per_image, array.dtype)
        return {k: np.asarray(v) for k, v in out.items()}


def _any_batch_size(masks: Any, inputs: Any) -> list[Any] | None:
    """TensorFlow's input signature of the evidence step, the batch axis unknown, so that one trace
    serves every batch size; ``None`` elsewhere (JAX compiles each new shape, PyTorch runs eagerly)."""
    if current() != "tensorflow":
        return None
    import tensorflow as tf  # lazy: the TensorFlow backend only

    return [tf.TensorSpec([None, *masks.shape[1:]], masks.dtype), tf.TensorSpec([None, *inputs.shape[1:]], inputs.dtype)]


def _combine(values: np.ndarray, per_image: bool, dtype: str) -> np.ndarray:
    """One output of the step over all images ``(N, ...)``: kept per image, or summed over the
    images (in int64 or float64) to a run total; in the stored dtype."""
    if not per_image:
        wide = np.int64 if np.issubdtype(values.dtype, np.integer) else np.float64
        values = values.sum(axis=0, dtype=wide)
    return _int32(values) if np.dtype(dtype) == np.int32 else values.astype(dtype)


def _int32(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values)
    if values.size and (values.max() > np.iinfo(np.int32).max or values.min() < np.iinfo(np.int32).min):
        raise OverflowError("a count does not fit in int32")
    return values.astype(np.int32)


# === Monte-Carlo dropout ===


def predictive_entropy(probs: Any) -> Any:
    """Entropy in nats of class probabilities ``(..., C)`` over the last axis (0 log 0 = 0)."""
    probs = keras.ops.cast(probs, "float32")
    return -keras.ops.sum(_p_log_p(probs), axis=-1)


def _p_log_p(probs: Any) -> Any:
    """``p * log(p)``, 0 where ``p = 0``: each backend's xlogy, which keras.ops lacks (one kernel;
    ``where(p > 0, ...)`` around a log and a product takes two more passes over the pixels, 5% of
    an MC-dropout update on a CPU)."""
    backend = current()
    if backend == "tensorflow":
        import tensorflow as tf  # lazy: the TensorFlow backend only

        return tf.math.xlogy(probs, probs)
    if backend == "jax":
        from jax.scipy.special import xlogy  # lazy: the JAX backend only

        return xlogy(probs, probs)
    import torch  # lazy: the PyTorch backend only

    return torch.special.xlogy(probs, probs)


def mc_summary(samples: Any) -> tuple[Any, Any]:
    """Predictive mean ``(N, H, W, C)`` and entropy ``(N, H, W)`` of softmax samples ``(T, N, H, W, C)``."""
    mean = keras.ops.mean(keras.ops.cast(samples, "float32"), axis=0)
    return mean, predictive_entropy(mean)


def running_means(samples: Iterable[Any], points: Sequence[int]) -> Iterator[tuple[int, Any]]:
    """Yields ``(t, mean of the first t samples)`` for each t in ``points``, holding one running sum.

    ``samples`` is a stream of softmax tensors of one batch, e.g. a generator of stochastic
    forward passes; it is consumed up to ``max(points)``.
    """
    wanted = sorted(set(points))
    if not wanted or wanted[0] < 1:
        raise ValueError(f"points must be positive sample counts, got {points}.")
    total, t = None, 0
    for sample in samples:
        sample = keras.ops.cast(sample, "float32")
        total = sample if total is None else total + sample
        t += 1
        if t == wanted[0]:
            yield t, total / t
            wanted.pop(0)
            if not wanted:
                return
    raise ValueError(f"the stream ended after {t} samples; points ask for {wanted[-1]}.")


def entropy_histograms(masks: Any, probs: Any, bins: int = ENTROPY_BINS, ignore_border: bool = False) -> Any:
    """Per-image pixel counts by predictive-entropy bin ``(N, 2, bins)`` int32: ``[n, 0]`` correct
    pixels, ``[n, 1]`` wrong ones.

    A pixel is wrong when ``argmax(probs) != true class``. Bins split [0, log C] equally; the
    entropy of the maximum (uniform) lands in the last bin. Border pixels count unless
    ``ignore_border`` (the default keeps them, as the 3-class mIoU and ECE do).

    Per image, because the counts are float32 sums of ones: one image's are exact (H*W < 2**24),
    a batch's would stop at 2**24 (64 images of 512x512 reach it); the host sums them in int64.
    """
    t = _class_ids(masks)
    probs = keras.ops.cast(probs, "float32")
    classes = probs.shape[-1]
    entropy = predictive_entropy(probs)
    b = _bin(keras.ops.floor(entropy / math.log(classes) * bins), bins)
    wrong = keras.ops.cast(keras.ops.not_equal(predicted_classes(probs), t), _index_dtype())
    weight = keras.ops.ones_like(entropy)
    if ignore_border:
        weight = keras.ops.cast(keras.ops.not_equal(t, BORDER), "float32")
    image, n = _image_ids(t)
    ids = (image * 2 + wrong) * bins + b
    counts = _segment_counts(weight, ids, n * 2 * bins)
    return keras.ops.reshape(keras.ops.cast(counts, "int32"), [-1, 2, bins])


def _curve_stats(masks: Any, probs: Any) -> dict[str, Any]:
    # Per image: the host sums them (int32 reductions would run in host memory on a GPU).
    predicted = predicted_classes(probs)
    count, conf_sum, correct = calibration_bins(masks, probs)
    confusion = confusion_counts(masks, predicted, probs.shape[-1] or NUM_CLASSES)
    return {"confusion": confusion, "count": count, "confidence": conf_sum, "correct": correct}


class MCDropoutAccumulator:
    """MC-dropout evidence of one run: the sample curve and the entropy histograms.

    Args:
        num_samples: T, the stochastic passes per batch.
        ignore_border: Leave true-border pixels out of the entropy histograms (AUROC, PAvPU).
    """

    def __init__(self, num_samples: int, ignore_border: bool = False) -> None:
        self.num_samples = num_samples
        self.points = curve_points(num_samples)
        self.ignore_border = ignore_border
        self._curve = traced(_curve_stats)
        self._entropy = traced(lambda m, p: entropy_histograms(m, p, ignore_border=ignore_border))
        self._totals: dict[str, np.ndarray] = {}
        self._histogram = np.zeros((2, ENTROPY_BINS), dtype=np.int64)
        self._batches = 0

    def update(self, masks: Any, softmax_samples: Iterable[Any]) -> Any:
        """Consumes T softmax samples ``(N, H, W, C)`` of one batch; returns their mean (on device).

        The mean can go on to :meth:`EvidenceAccumulator.update_probabilities` for the per-image
        evidence of the MC prediction.
        """
        masks = _class_ids(masks)
        mean = None
        for i, (_, mean) in enumerate(running_means(softmax_samples, self.points)):
            for key, per_image in self._curve(masks, mean).items():
                value = to_numpy(per_image)
                value = value.sum(axis=0, dtype=_wide(value))
                total = self._totals.setdefault(key, np.zeros((len(self.points), *value.shape), dtype=_wide(value)))
                total[i] += value
        self._histogram += to_numpy(self._entropy(masks, mean)).sum(axis=0, dtype=np.int64)
        self._batches += 1
        return mean

    def result(self) -> dict[str, np.ndarray]:
        """The ``mc_*`` arrays of :data:`SCHEMA`."""
        if not self._batches:
            raise ValueError("no batch was added")
        return {
            "mc_num_samples": np.asarray(np.int32(self.num_samples)),
            "mc_curve_samples": np.asarray(self.points, dtype=np.int32),
            "mc_curve_confusion": _int32(self._totals["confusion"]),
            "mc_curve_calibration_count": _int32(self._totals["count"]),
            "mc_curve_calibration_confidence": self._totals["confidence"].astype(np.float32),
            "mc_curve_calibration_correct": _int32(self._totals["correct"]),
            "mc_entropy_histogram": _int32(self._histogram),
        }


def _wide(value: np.ndarray) -> type:
    return np.float64 if np.issubdtype(value.dtype, np.floating) else np.int64
