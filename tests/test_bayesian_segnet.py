"""Bayesian SegNet's point: Monte-Carlo dropout at test time gives an uncertainty map."""

from __future__ import annotations

import keras
import numpy as np
import pytest

import segmodels
from segmodels.architectures.segnet import mc_dropout_predict


def _with_batch_statistics(model: keras.Model, images: np.ndarray) -> None:
    # A fresh network's BatchNorm moving variance is 1, so its logits are ~1e-12 and every
    # softmax is uniform. One pass with momentum 0 installs real statistics.
    for layer in model._flatten_layers():
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.0
    model(images, training=True)


def test_mc_dropout_gives_probabilities_and_a_nonzero_uncertainty_map() -> None:
    keras.utils.set_random_seed(1)
    model = segmodels.create_model("bayesian_segnet", "mobilenetv2", input_shape=(64, 64, 3))
    images = np.random.default_rng(1).random((3, 64, 64, 3), dtype=np.float32)
    _with_batch_statistics(model, images)

    probabilities, uncertainty = mc_dropout_predict(model, images, num_samples=6, batch_size=2)
    assert probabilities.shape == (3, 64, 64, 3)
    assert uncertainty.shape == (3, 64, 64)
    assert np.allclose(probabilities.sum(axis=-1), 1.0, atol=1e-5)
    assert uncertainty.min() >= 0 and uncertainty.max() > 1e-6

    # Plain inference stays deterministic: dropout is off unless sampling.
    first, second = model.predict(images, verbose=0), model.predict(images, verbose=0)
    assert np.array_equal(first, second)


def test_mc_dropout_refuses_a_model_without_dropout() -> None:
    model = segmodels.create_model("segnet", "mobilenetv2", input_shape=(64, 64, 3))
    with pytest.raises(ValueError, match="no MonteCarloDropout layers.*bayesian_segnet"):
        mc_dropout_predict(model, np.zeros((1, 64, 64, 3), np.float32))
