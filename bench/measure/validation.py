"""Validation during training: the model measured as the final evaluation will measure it.

After each epoch :class:`Validation` recomputes the BatchNorm population statistics from training
batches (precise BN, :class:`bench.measure.precise_bn.PreciseBN`) and only then runs the validation images
in inference mode. Without the recomputation the curves would be blind: keras.applications builds
MobileNetV2's BatchNorm with momentum 0.999, so after n steps from scratch the moving statistics
still hold 0.999^n of their initial mean 0 and variance 1 (half of it after 700 steps), and a
network that learns well in training mode scores a constant in inference mode until precise BN
repairs it before the test. Recomputing before every validation changes no default of
keras.applications (the momentum stays 0.999 and training never reads the moving statistics), costs
a few forward passes an epoch, and makes the number early stopping and the restored best epoch
rest on the number the test would give.

The measures are :mod:`bench.evidence.metrics`'s definitions on the validation images' summed confusion
matrix (``val_miou``, ``val_accuracy``) and the mean pixel cross-entropy (``val_loss``, the
training loss's definition), written into the epoch's logs for Keras's ``EarlyStopping`` and
``History``.

The step is ``keras.ops``, compiled by :func:`bench.config.backends.traced`: on TensorFlow the model
runs inside it, as it always did; on JAX and PyTorch the model runs before it (a jitted step that
closed over the model would keep the weights of its first epoch as constants) and the step takes
its logits, still on the device.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import keras
import numpy as np

from bench.config.backends import current, to_numpy, traced
from bench.config.run_config import NUM_CLASSES
from bench.evidence.metrics import miou_of
from bench.evidence.ops import confusion_counts, predicted_classes
from bench.measure.precise_bn import PreciseBN

#: The logs early stopping monitors.
MONITOR = "val_miou"


def _validation_step(model: Any) -> Any:
    """``(masks, images) -> (confusion (C, C) int32, cross-entropy sum)`` in inference mode, compiled
    once (TensorFlow traces once for any batch size, JAX once a batch shape)."""
    fused = current() == "tensorflow"
    wide = _wide_float()

    def measures(masks: Any, logits: Any) -> tuple[Any, Any]:
        logits = keras.ops.cast(logits, "float32")
        # (N, H, W, 1) or (N, H, W) to (N, H, W): a trace generalised over both knows neither rank.
        labels = keras.ops.reshape(keras.ops.cast(masks, "int32"), keras.ops.shape(logits)[:-1])
        nll = keras.ops.sparse_categorical_crossentropy(labels, logits, from_logits=True)
        predicted = predicted_classes(logits)
        confusion = keras.ops.sum(confusion_counts(labels, predicted, NUM_CLASSES), axis=0)
        return confusion, keras.ops.sum(keras.ops.cast(nll, wide))

    if fused:
        return traced(lambda masks, images: measures(masks, model(images, training=False)))
    compiled = traced(measures)

    def step(masks: Any, images: Any) -> tuple[Any, Any]:
        return compiled(keras.ops.convert_to_tensor(masks), model(keras.ops.convert_to_tensor(images), training=False))

    return step


def _wide_float() -> str:
    """The dtype the cross-entropy is summed in: float64, except on JAX without x64, which has none
    (a float32 sum of one batch's pixels is off by about 1e-7 relative)."""
    if current() == "jax":
        import jax  # lazy: the JAX backend only

        return "float64" if jax.config.read("jax_enable_x64") else "float32"
    return "float64"


class Validation(keras.callbacks.Callback):
    """Precise BN, then ``val_loss``, ``val_accuracy`` and ``val_miou`` into each epoch's logs.

    Args:
        batches: The validation images, batched (a finite dataset, iterated once per epoch).
        bn_batches: Training batches for precise BN (an endless iterator; each epoch takes the
            next ``bn_batches_per_epoch`` of it).
        bn_batches_per_epoch: 0 measures the moving statistics as they are (no recomputation).
    """

    def __init__(self, batches: Any, bn_batches: Iterator[Any] | None, bn_batches_per_epoch: int) -> None:
        super().__init__()
        self.batches = batches
        self.bn_batches = bn_batches
        self.bn_batches_per_epoch = bn_batches_per_epoch if bn_batches is not None else 0
        self.bn_layers = 0
        self._precise_bn: PreciseBN | None = None
        self._step: Any = None

    def measure(self) -> dict[str, float]:
        """The validation measures of the model as it is now (after precise BN, where asked)."""
        if self.bn_batches_per_epoch:
            if self._precise_bn is None:
                self._precise_bn = PreciseBN(self.model)
            self.bn_layers = self._precise_bn.recompute(self.bn_batches, self.bn_batches_per_epoch)
        if self._step is None:
            self._step = _validation_step(self.model)
        confusion = np.zeros((NUM_CLASSES, NUM_CLASSES), np.int64)
        nll = 0.0
        for images, masks in self.batches:
            counts, loss = self._step(masks, images)
            confusion += to_numpy(counts)
            nll += float(to_numpy(loss))
        pixels = int(confusion.sum())
        if pixels == 0:
            raise ValueError("validation got no image: the validation split is empty")
        return {
            "val_loss": nll / pixels,
            "val_accuracy": float(np.trace(confusion)) / pixels,
            MONITOR: float(miou_of(confusion)),
        }

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if logs is not None:
            logs.update(self.measure())
