"""Timing, FLOPs and precise BatchNorm on tiny in-process models."""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import tensorflow as tf

from bench.config.profiles import TimingSpec
from bench.measure.flops import flops_per_image
from bench.measure.precise_bn import batchnorm_layers, recompute_batchnorm_statistics
from bench.measure.timing import example_batch, make_predict_fn, measure_latency, measure_throughput, time_calls


def _conv_bn_model(size: int = 32, filters: int = 8, momentum: float = 0.99) -> keras.Model:
    inputs = keras.Input((size, size, 3))
    x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False)(inputs)
    x = keras.layers.BatchNormalization(momentum=momentum)(x)
    x = keras.layers.ReLU()(x)
    outputs = keras.layers.Conv2D(3, 1)(x)
    return keras.Model(inputs, outputs)


# === FLOPs ===


def test_flops_count_multiply_adds_twice() -> None:
    inputs = keras.Input((32, 32, 3))
    outputs = keras.layers.Conv2D(4, 3, padding="same", use_bias=False)(inputs)
    model = keras.Model(inputs, outputs)
    assert flops_per_image(model, 32) == 2 * 3 * 3 * 3 * 4 * 32 * 32


# === Timing ===


def test_time_calls_respects_bounds() -> None:
    calls = []
    spec = TimingSpec(warmup_calls=2, min_calls=5, min_seconds=0.0, max_calls=7, max_seconds=10.0)
    durations = time_calls(lambda: calls.append(1), spec)
    assert len(durations) == 5 and len(calls) == 7  # warm-up calls are not timed
    spec = dataclasses.replace(spec, min_seconds=100.0)
    assert len(time_calls(lambda: None, spec)) == 7  # max_calls caps a long min_seconds
    spec = TimingSpec(warmup_calls=0, min_calls=3, min_seconds=0.0, max_calls=100, max_seconds=0.0)
    assert len(time_calls(lambda: None, spec)) == 3  # min_calls beats max_seconds


def test_latency_and_throughput_of_a_tiny_model() -> None:
    model = _conv_bn_model()
    predict = make_predict_fn(model)
    out = predict(example_batch(1, 32))
    assert isinstance(out, np.ndarray) and out.shape == (1, 32, 32, 3)
    spec = TimingSpec(warmup_calls=2, min_calls=10, min_seconds=0.05, max_calls=50, max_seconds=1.0, throughput_batch=4)
    stats = measure_latency(predict, example_batch(1, 32), spec)
    assert 10 <= stats.calls <= 50
    assert 0 < stats.p50_ms <= stats.p90_ms <= stats.p95_ms
    assert measure_throughput(predict, example_batch(4, 32), spec) > 0


# === Precise BN ===


def test_precise_bn_sets_population_statistics() -> None:
    keras.utils.set_random_seed(0)
    model = _conv_bn_model()
    rng = np.random.default_rng(0)
    batches = [tf.constant(rng.random((4, 32, 32, 3), dtype=np.float32) * 5 + 3) for _ in range(5)]
    assert recompute_batchnorm_statistics(model, iter(batches), num_batches=5) == 1
    bn = batchnorm_layers(model)[0]
    assert bn.momentum == 0.99  # restored
    conv = keras.Model(model.input, model.layers[1].output)
    features = np.concatenate([conv(b).numpy() for b in batches]).reshape(-1, 8)
    # The mean of equal-size batch means is the population mean; the variance is the mean of the
    # batch variances (Detectron2's PreciseBN), close to the population variance.
    np.testing.assert_allclose(bn.moving_mean.numpy(), features.mean(0), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(bn.moving_variance.numpy(), features.var(0), rtol=0.05)


def test_precise_bn_leaves_frozen_layers_alone() -> None:
    model = _conv_bn_model()
    model.layers[2].trainable = False
    before = model.layers[2].moving_mean.numpy().copy()
    assert recompute_batchnorm_statistics(model, iter([tf.ones((2, 32, 32, 3))]), 1) == 0
    np.testing.assert_array_equal(model.layers[2].moving_mean.numpy(), before)


def test_precise_bn_rescues_a_short_schedule() -> None:
    """The issue's failure mode in miniature: a short schedule learns in training mode, but the
    BatchNorm moving averages (momentum 0.999 as in ResNet) are still near their initial values,
    so inference collapses; recomputing the statistics restores it."""
    keras.utils.set_random_seed(1)
    rng = np.random.default_rng(1)
    # Pixel class = which of three brightness bands the pixel falls in; bright, offset inputs make
    # the features' true statistics far from BatchNorm's initial mean 0 / variance 1.
    images = rng.random((64, 16, 16, 1)).astype(np.float32)
    masks = np.digitize(images[..., 0], [1 / 3, 2 / 3]).astype(np.int32)[..., None]
    images = np.repeat(images, 3, axis=-1) * 20 + 10
    model = _conv_bn_model(size=16, filters=16, momentum=0.999)
    model.compile(keras.optimizers.Adam(0.01), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(images, masks, batch_size=16, epochs=15, verbose=0, shuffle=False)

    def accuracy() -> float:
        predicted = np.argmax(model.predict(images, verbose=0), -1)
        return float((predicted == masks[..., 0]).mean())

    before = accuracy()
    batches = (tf.constant(images[i : i + 16]) for i in range(0, 64, 16))
    recompute_batchnorm_statistics(model, batches, 4)
    after = accuracy()
    print(f"precise BN: accuracy {before:.3f} -> {after:.3f}")
    assert after > before + 0.2, (before, after)
    assert after > 0.8
