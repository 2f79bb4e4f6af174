"""Backbones: feature maps keyed by stride, dilation that reuses kernels, weights that fail fast."""

from __future__ import annotations

import time
from pathlib import Path

import keras
import numpy as np
import pytest

import segmodels
from segmodels.registry import get_backbone

SIDE = 64


def _save_like_keras_applications(model: keras.Model, path: Path) -> None:
    """Writes weights in the legacy HDF5 layout of the ImageNet files keras.applications downloads."""
    import h5py
    from keras.src.legacy.saving import legacy_h5_format

    with h5py.File(path, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, model)


@pytest.mark.parametrize("name", ["mobilenetv2", "resnet50"])
def test_features_are_keyed_by_stride(name: str) -> None:
    encoder = get_backbone(name).build((SIDE, 2 * SIDE, 3), weights=None, output_stride=32)
    assert encoder.strides == (2, 4, 8, 16, 32)
    features = encoder(encoder.new_input())
    for stride, feature in features.items():
        assert feature.shape[1:3] == (SIDE // stride, 2 * SIDE // stride)
        assert feature.shape[-1] == encoder.channels[stride]


@pytest.mark.parametrize("name", ["mobilenetv2", "resnet50"])
def test_dilated_last_stage_stops_at_stride_16_with_the_same_kernels(name: str) -> None:
    plain = get_backbone(name).build((SIDE, SIDE, 3), weights=None, output_stride=32)
    dilated = get_backbone(name).build((SIDE, SIDE, 3), weights=None, output_stride=16)
    assert dilated.strides == (2, 4, 8, 16)
    assert dilated.model.output_shape[-1][1:] == (SIDE // 16, SIDE // 16, plain.channels[32])
    # Same layers, same kernel shapes: pretrained weights transfer one to one.
    assert [w.shape for w in plain.model.weights] == [w.shape for w in dilated.model.weights]


def _dilation_rates(model: keras.Model) -> dict[str, tuple[int, int]]:
    rates = {}
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            rates.update(_dilation_rates(layer))
        elif tuple(getattr(layer, "dilation_rate", (1, 1))) != (1, 1):
            rates[layer.name] = tuple(layer.dilation_rate)
    return rates


def test_resnet_last_stage_uses_multi_grid_1_2_4_at_rate_2() -> None:
    dilated = get_backbone("resnet50").build((SIDE, SIDE, 3), weights=None, output_stride=16)
    assert _dilation_rates(dilated.model) == {
        "conv5_block1_2_conv": (2, 2),
        "conv5_block2_2_conv": (4, 4),
        "conv5_block3_2_conv": (8, 8),
    }


def test_weights_from_a_file_are_loaded_and_survive_dilation(tmp_path: Path) -> None:
    reference = keras.applications.MobileNetV2(input_shape=(SIDE, SIDE, 3), include_top=False, weights=None)
    path = tmp_path / "my_mobilenet_v2_no_top.h5"
    _save_like_keras_applications(reference, path)
    encoder = get_backbone("mobilenetv2").build((SIDE, SIDE, 3), weights=str(path), output_stride=16)
    features = encoder.model.get_layer("mobilenetv2_features")
    for name in ("Conv1", "block_13_depthwise", "block_16_depthwise"):  # before, at and after the dilation
        for loaded, saved in zip(features.get_layer(name).get_weights(), reference.get_layer(name).get_weights()):
            assert np.array_equal(loaded, saved)
    assert encoder.weights == str(path)


def test_imagenet_weights_offline_fail_fast_and_say_where_they_looked(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setenv("SEGMODELS_OFFLINE", "1")
    start = time.monotonic()
    with pytest.raises(segmodels.WeightsUnavailableError) as error:
        segmodels.create_model("unet", "resnet50", weights="imagenet")
    assert time.monotonic() - start < 10
    message = str(error.value)
    assert str(tmp_path / "models" / "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5") in message
    assert "weights=None" in message


def test_imagenet_weights_without_network_fail_within_the_probe_timeout(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # No SEGMODELS_OFFLINE: the probe itself must find out, and quickly (this machine has no route
    # to the weights host; a connected machine would download instead).
    from segmodels import weights

    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.delenv("SEGMODELS_OFFLINE", raising=False)
    monkeypatch.setattr(weights, "host_unreachable", lambda host, port=443: "timed out")
    with pytest.raises(segmodels.WeightsUnavailableError, match=r"storage.googleapis.com cannot be reached \(timed out\)"):
        segmodels.create_model("unet", "mobilenetv2", weights="imagenet")


def test_imagenet_weights_probe_survives_a_hanging_dns_lookup(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # The module promises never to hang: a resolver that never answers costs the probe's timeout.
    import socket
    import threading

    from segmodels import _network

    release = threading.Event()
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.delenv("SEGMODELS_OFFLINE", raising=False)
    monkeypatch.setattr(socket, "getaddrinfo", lambda *args, **kwargs: release.wait(60) and [])
    start = time.monotonic()
    try:
        with pytest.raises(segmodels.WeightsUnavailableError, match="no answer within"):
            segmodels.create_model("unet", "mobilenetv2", weights="imagenet")
    finally:
        release.set()  # let the abandoned lookup thread finish
    assert time.monotonic() - start < _network.PROBE_TIMEOUT_S + 2


def test_cached_imagenet_weights_are_used_without_network(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setenv("SEGMODELS_OFFLINE", "1")
    reference = keras.applications.MobileNetV2(input_shape=(128, 128, 3), include_top=False, weights=None)
    cache = tmp_path / "models"
    cache.mkdir()
    _save_like_keras_applications(reference, cache / "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_128_no_top.h5")
    model = segmodels.create_model("unet", "mobilenetv2", weights="imagenet", freeze_backbone=True)
    expected = reference.get_layer("Conv1").kernel.numpy()
    assert np.array_equal(model.get_layer("mobilenetv2_encoder").get_layer("mobilenetv2_features").get_layer("Conv1").kernel.numpy(), expected)


def test_a_missing_weights_file_is_named() -> None:
    with pytest.raises(FileNotFoundError, match="no/such/file.h5"):
        segmodels.create_model("unet", "mobilenetv2", weights="no/such/file.h5")
