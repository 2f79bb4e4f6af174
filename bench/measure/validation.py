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
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from bench.config.run_config import NUM_CLASSES
from bench.evidence.metrics import miou_of
from bench.evidence.ops import confusion_counts
from bench.measure.precise_bn import PreciseBN

#: The logs early stopping monitors.
MONITOR = "val_miou"


def _validation_step(model: Any) -> Any:
    """``(masks, images) -> (confusion (C, C) int32, cross-entropy sum)`` in inference mode, traced once."""

    def step(masks: tf.Tensor, images: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        logits = tf.cast(model(images, training=False), tf.float32)
        labels = tf.cast(masks[..., 0] if masks.shape.rank == 4 else masks, tf.int32)
        nll = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
        predicted = tf.argmax(logits, axis=-1, output_type=tf.int32)
        return tf.reduce_sum(confusion_counts(labels, predicted, NUM_CLASSES), axis=0), tf.reduce_sum(
            tf.cast(nll, tf.float64)
        )

    return tf.function(step, jit_compile=False, reduce_retracing=True)


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
            confusion += counts.numpy()
            nll += float(loss.numpy())
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
