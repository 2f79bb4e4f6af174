"""Precise BatchNorm: recompute the population statistics before evaluating.

Keras's MobileNetV2 and ResNet BatchNorm layers keep moving averages with momentum 0.99-0.999.
After a short schedule (a few hundred steps or fewer) those averages are still mostly their initial
values (mean 0, variance 1), so a network that learned well in training mode collapses in
inference mode: measured on real Oxford Pets photos, a from-scratch U-Net MobileNetV2 predicted all
background at test time (mIoU 0.195) until its statistics were recomputed (mIoU 0.47).

The remedy is the one of Wu & Johnson, "Rethinking 'Batch' in BatchNorm" (arXiv:2105.07576) and
Detectron2's ``PreciseBN`` hook: run the model in training mode over a number of training batches
and set each BatchNorm layer's moving mean and variance to the equal-weight average of the batch
statistics it saw. Only BatchNorm layers that are trainable are touched: a frozen pretrained
encoder runs its BatchNorm in inference mode and keeps its ImageNet statistics.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from bench.config.backends import current, to_numpy, traced


def batchnorm_layers(model: Any) -> list[Any]:
    """Every trainable BatchNormalization layer of ``model``, nested models included."""
    import keras

    found: list[Any] = []
    seen: set[int] = set()

    def walk(layer: Any, parent_trainable: bool) -> None:
        if id(layer) in seen:
            return
        seen.add(id(layer))
        trainable = parent_trainable and layer.trainable
        if isinstance(layer, keras.layers.BatchNormalization):
            if trainable:
                found.append(layer)
            return
        for sub in getattr(layer, "layers", []) or []:
            walk(sub, trainable)

    walk(model, True)
    return found


class PreciseBN:
    """Recomputes the population statistics of one model's trainable BatchNorm layers, as often
    as asked, with one traced training-mode forward pass (retracing a ResNet costs seconds on a
    CPU; validation recomputes before every epoch's measurement).

    The trace is made with every touched layer's momentum at 0 and is only ever called so: with
    momentum 0 a training-mode call leaves the batch's own statistics in the moving variables,
    which are read back and averaged here. On TensorFlow the trace is a ``tf.function`` whose
    variable updates persist; on JAX a variable assigned inside ``jax.jit`` is not, so the jitted
    pass is :meth:`keras.Model.stateless_call`, given the variables' current values as arguments
    (nothing baked in as a constant), whose new non-trainable values are assigned back; PyTorch runs
    the pass eagerly (:func:`bench.config.backends.traced`), where assignments persist.
    """

    def __init__(self, model: Any) -> None:
        self.model = model
        self.layers = batchnorm_layers(model)
        self._forward: Any = None

    def recompute(self, batches: Iterator[Any], num_batches: int) -> int:
        """Sets every layer's moving statistics to the mean over the next ``num_batches`` of
        ``batches`` (``images`` or ``(images, masks)``); returns the number of layers updated."""
        layers = self.layers
        if not layers or num_batches <= 0:
            return 0
        saved_momentum = [layer.momentum for layer in layers]
        for layer in layers:
            layer.momentum = 0.0
        try:
            if self._forward is None:
                self._forward = _training_pass(self.model)
            sums_mean = [np.zeros(layer.moving_mean.shape, np.float64) for layer in layers]
            sums_var = [np.zeros(layer.moving_variance.shape, np.float64) for layer in layers]
            seen = 0
            while seen < num_batches:
                batch = next(batches, None)
                if batch is None:
                    break
                images = batch[0] if isinstance(batch, (tuple, list)) else batch
                self._forward(images)
                for i, layer in enumerate(layers):
                    sums_mean[i] += np.asarray(to_numpy(layer.moving_mean), np.float64)
                    sums_var[i] += np.asarray(to_numpy(layer.moving_variance), np.float64)
                seen += 1
            if seen == 0:
                raise ValueError("precise BN got no batch to average over.")
            for i, layer in enumerate(layers):
                layer.moving_mean.assign((sums_mean[i] / seen).astype(np.float32))
                layer.moving_variance.assign((sums_var[i] / seen).astype(np.float32))
        finally:
            for layer, momentum in zip(layers, saved_momentum):
                layer.momentum = momentum
        return len(layers)


def _training_pass(model: Any) -> Callable[[Any], None]:
    """``images -> None``: one training-mode forward pass of ``model`` that leaves the BatchNorm
    updates in its variables, compiled once (see :class:`PreciseBN`)."""
    import keras

    if current() != "jax":
        return traced(lambda x: model(x, training=True))
    import jax  # lazy: the JAX backend only

    @jax.jit
    def updated(trainable: list[Any], non_trainable: list[Any], x: Any) -> list[Any]:
        _, non_trainable = model.stateless_call(trainable, non_trainable, x, training=True)
        return non_trainable

    def run(images: Any) -> None:
        values = updated([v.value for v in model.trainable_variables], [v.value for v in model.non_trainable_variables],
                         keras.ops.convert_to_tensor(images))
        for variable, value in zip(model.non_trainable_variables, values):
            variable.assign(value)

    return run


def recompute_batchnorm_statistics(model: Any, batches: Iterator[Any], num_batches: int) -> int:
    """Sets every trainable BatchNorm layer's moving statistics to the mean over ``num_batches``.

    Args:
        model: A Keras model.
        batches: Yields ``images`` or ``(images, masks)`` training batches.
        num_batches: How many batches to average over (Detectron2 uses 200; 20-30 is plenty for
            these models).

    Returns:
        The number of BatchNorm layers updated (0 when there is none or ``num_batches`` is 0).
    """
    return PreciseBN(model).recompute(iter(batches), num_batches)
