"""Every registered model: builds, maps images to logits of the input size, trains.

Parametrized over ``segmodels.list_models()``, so a model is tested the day it is registered.
"""

from __future__ import annotations

import gc

import keras
import numpy as np
import pytest
import tensorflow as tf

import segmodels

INPUT_SHAPE = (32, 64, 3)  # smallest non-square input the five downsamplings allow
NUM_CLASSES = 3


def _params(model_name: str) -> list:
    marks = []
    if model_name.startswith("fcn") and "resnet" in model_name:
        # ~450 M parameters, ~8 GB while training: one at a time, on one worker.
        marks = [pytest.mark.heavy, pytest.mark.xdist_group("fcn-resnet")]
    return pytest.param(model_name, marks=marks, id=model_name)


def _sgd_step(model: keras.Model, images: np.ndarray, masks: np.ndarray) -> None:
    optimizer = keras.optimizers.SGD(learning_rate=0.1)
    with tf.GradientTape() as tape:
        logits = model(images, training=True)
        loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(masks, logits, from_logits=True))
    gradients = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(gradients, model.trainable_variables))


@pytest.mark.parametrize("model_name", [_params(m) for m in segmodels.list_models()])
def test_model_builds_predicts_and_trains(model_name: str) -> None:
    architecture, backbone = segmodels.parse_model_id(model_name)
    keras.utils.set_random_seed(0)
    model = segmodels.create_model(architecture, backbone, num_classes=NUM_CLASSES, input_shape=INPUT_SHAPE)
    assert model.name == model_name

    rng = np.random.default_rng(0)
    images = rng.random((2, *INPUT_SHAPE), dtype=np.float32)
    masks = rng.integers(0, NUM_CLASSES, size=(2, *INPUT_SHAPE[:2]))
    logits = keras.ops.convert_to_numpy(model(images, training=False))
    assert logits.shape == (2, *INPUT_SHAPE[:2], NUM_CLASSES)
    assert np.isfinite(logits).all()

    encoder_vars = {id(v) for v in model.get_layer(f"{backbone}_encoder").trainable_variables}
    before = {id(v): v.numpy().copy() for v in model.trainable_variables}
    _sgd_step(model, images, masks)
    changed = {id(v) for v in model.trainable_variables if not np.array_equal(before[id(v)], v.numpy())}
    assert changed & encoder_vars, "one training step left every encoder weight unchanged"
    assert changed - encoder_vars, "one training step left every decoder weight unchanged"

    del model, before
    keras.backend.clear_session()
    gc.collect()


def test_registry_covers_the_seed_matrix() -> None:
    seed_architectures = {"unet", "fcn32s", "fcn16s", "fcn8s", "segnet", "bayesian_segnet", "deeplabv3"}
    backbones = {"mobilenetv2", "resnet50", "resnet101", "resnet152"}
    assert seed_architectures <= set(segmodels.list_architectures())
    assert backbones <= set(segmodels.list_backbones())
    models = set(segmodels.list_models())
    assert {f"{a}-{b}" for a in seed_architectures for b in backbones} <= models
    assert "fpn-resnet50" in models  # the README's worked example
    assert segmodels.list_models("fcn8s-*") == ["fcn8s-mobilenetv2", "fcn8s-resnet101", "fcn8s-resnet152", "fcn8s-resnet50"]
