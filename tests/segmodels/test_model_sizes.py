"""Parameter counts of the seed configurations, against their published or derived figures."""

from __future__ import annotations

import gc

import keras
import numpy as np
import pytest

import segmodels


def _trainable(model: keras.Model) -> int:
    return sum(int(np.prod(v.shape)) for v in model.trainable_weights)


def test_unet_mobilenetv2_matches_the_tensorflow_tutorial() -> None:
    # The tutorial's model.summary(): frozen MobileNetV2 encoder, 128x128x3 input, 3 classes.
    model = segmodels.create_model("unet", "mobilenetv2", num_classes=3, input_shape=(128, 128, 3), freeze_backbone=True)
    assert model.count_params() == 6_504_227
    assert _trainable(model) == 4_660_323


def test_unfrozen_unet_trains_the_encoder_too() -> None:
    model = segmodels.create_model("unet", "mobilenetv2", num_classes=3, input_shape=(128, 128, 3))
    # Everything but the BatchNorm moving statistics is trainable: 1,920 of them in the decoder
    # (512 + 256 + 128 + 64 channels, mean and variance) and 30,912 in the MobileNetV2 encoder.
    assert model.count_params() - _trainable(model) == 1_920 + 30_912


@pytest.mark.heavy
@pytest.mark.xdist_group("fcn-resnet")
def test_fcn_resnet50_is_dominated_by_fc6() -> None:
    model = segmodels.create_model("fcn8s", "resnet50", num_classes=3, input_shape=(64, 64, 3))
    fc6 = 7 * 7 * 2048 * 4096 + 4096
    fc7 = 4096 * 4096 + 4096
    assert model.get_layer("fc6").count_params() == fc6
    assert model.get_layer("fc7").count_params() == fc7
    assert model.count_params() == 451_434_409  # ~451 M, as the chapter's FCN-ResNet50
    del model
    keras.backend.clear_session()
    gc.collect()


@pytest.mark.parametrize(
    ("variant", "fused"),
    [("fcn32s", []), ("fcn16s", ["score_stride16"]), ("fcn8s", ["score_stride16", "score_stride8"])],
)
def test_fcn_variants_fuse_the_paper_strides(variant: str, fused: list[str]) -> None:
    model = segmodels.create_model(variant, "mobilenetv2", input_shape=(64, 64, 3))
    score_layers = sorted(layer.name for layer in model.layers if layer.name.startswith("score_stride"))
    assert score_layers == sorted(fused)
    # Zero-initialised skip scores: the fused net starts out as its coarser parent.
    for name in fused:
        assert not np.any(model.get_layer(name).get_weights()[0])


def test_fcn_upsampling_starts_as_bilinear_interpolation() -> None:
    model = segmodels.create_model("fcn32s", "mobilenetv2", input_shape=(64, 64, 3))
    kernel = model.get_layer("upscore_final").get_weights()[0]
    assert kernel.shape == (64, 64, 3, 3)
    assert np.allclose(kernel[:, :, 0, 1], 0.0)  # no cross-class mixing
    assert np.isclose(kernel[:, :, 0, 0].max(), kernel[:, :, 1, 1].max())
    # A bilinear kernel of stride s sums to s*s: a constant map stays constant after upsampling.
    assert np.isclose(kernel[:, :, 0, 0].sum(), 32 * 32, rtol=1e-5)
