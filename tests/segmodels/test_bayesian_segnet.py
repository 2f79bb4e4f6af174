"""Bayesian SegNet's point: Monte-Carlo dropout at test time gives an uncertainty map."""

from __future__ import annotations

import keras
import numpy as np
import pytest

import segmodels
from segmodels.architectures.segnet import dropout_layers, mc_dropout_predict


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
    assert dropout_layers(model) == []
    with pytest.raises(ValueError, match="no Dropout layer.*bayesian_segnet"):
        mc_dropout_predict(model, np.zeros((1, 64, 64, 3), np.float32))


def test_the_benchmarks_mc_pass_is_the_librarys_and_is_seeded() -> None:
    """bench.measure.timing.make_mc_sample_fn (the worker's traced pass) samples as mc_dropout_predict does:
    the same seed gives the same masks; another seed, other masks."""
    from bench.measure.timing import make_mc_predict_fn, make_mc_sample_fn

    keras.utils.set_random_seed(2)
    model = segmodels.create_model("bayesian_segnet", "mobilenetv2", input_shape=(64, 64, 3))
    images = np.random.default_rng(2).random((2, 64, 64, 3), dtype=np.float32)
    _with_batch_statistics(model, images)
    assert len(dropout_layers(model)) == 5

    library, _ = mc_dropout_predict(model, images, num_samples=3, batch_size=2, seed=7)
    again, _ = mc_dropout_predict(model, images, num_samples=3, batch_size=2, seed=7)
    other, _ = mc_dropout_predict(model, images, num_samples=3, batch_size=2, seed=8)
    harness = make_mc_predict_fn(make_mc_sample_fn(model, 7), 3)(images)
    np.testing.assert_array_equal(library, again)
    # The same masks; a traced graph (oneDNN fusions) rounds a little differently from eager calls.
    np.testing.assert_allclose(harness, library, atol=1e-3)
    assert np.abs(other - library).max() > 0.02
