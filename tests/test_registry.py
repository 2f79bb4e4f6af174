"""Registration and the errors a user meets first: wrong names, sizes, class counts."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import segmodels
from segmodels import registry


def test_unknown_architecture_lists_known_names_and_suggests_the_nearest() -> None:
    with pytest.raises(segmodels.UnknownNameError) as error:
        segmodels.create_model("fcn_8s", "resnet50")
    message = str(error.value)
    assert "Unknown architecture 'fcn_8s'" in message
    assert "Did you mean 'fcn8s'?" in message
    assert "deeplabv3" in message and "unet" in message


def test_unknown_backbone_lists_known_names_and_suggests_the_nearest() -> None:
    with pytest.raises(segmodels.UnknownNameError, match=r"Did you mean 'resnet101'\?.*mobilenetv2"):
        segmodels.create_model("unet", "resnet_101")


@pytest.mark.parametrize("shape", [(100, 128, 3), (128, 130, 3), (16, 16, 3)])
def test_input_size_must_be_a_multiple_of_32(shape: tuple[int, int, int]) -> None:
    with pytest.raises(ValueError, match="multiples of 32.*Try"):
        segmodels.create_model("unet", "mobilenetv2", input_shape=shape)


def test_input_must_have_three_channels() -> None:
    with pytest.raises(ValueError, match=r"\(height, width, 3\)"):
        segmodels.create_model("unet", "mobilenetv2", input_shape=(128, 128, 1))


@pytest.mark.parametrize("num_classes", [1, 0, -3, 2.5, True])
def test_num_classes_must_be_an_integer_of_at_least_two(num_classes: object) -> None:
    with pytest.raises(ValueError, match="num_classes must be an integer >= 2"):
        segmodels.create_model("unet", "mobilenetv2", num_classes=num_classes)  # type: ignore[arg-type]


def test_duplicate_and_malformed_names_are_refused() -> None:
    segmodels.list_models()  # make sure the built-in ones are registered
    with pytest.raises(ValueError, match="already registered"):
        segmodels.register_architecture("unet")(lambda encoder, num_classes: None)
    with pytest.raises(ValueError, match="lowercase"):
        segmodels.register_architecture("My-Net")(lambda encoder, num_classes: None)


def test_a_registered_architecture_runs_on_every_backbone() -> None:
    import keras

    @segmodels.register_architecture("one_by_one_test")
    def one_by_one(encoder: segmodels.Encoder, num_classes: int) -> keras.Model:
        inputs = encoder.new_input()
        x = keras.layers.Conv2D(num_classes, 1)(encoder(inputs)[4])
        return keras.Model(inputs, keras.layers.UpSampling2D(4)(x))

    try:
        assert segmodels.list_models("one_by_one_test-*") == [
            f"one_by_one_test-{b}" for b in segmodels.list_backbones()
        ]
        model = segmodels.create_model("one_by_one_test", "mobilenetv2", num_classes=4, input_shape=(64, 64, 3))
        assert model.output_shape == (None, 64, 64, 4)
    finally:
        registry._unregister(["one_by_one_test"])


def test_a_model_in_its_own_file_joins_the_registry_through_segmodels_plugins(tmp_path: Path) -> None:
    # What a user does to add a model outside the repository: one file, one decorator.
    (tmp_path / "my_head.py").write_text(
        textwrap.dedent(
            """
            import keras
            import segmodels

            @segmodels.register_architecture("my_head")
            def my_head(encoder, num_classes):
                inputs = encoder.new_input()
                x = keras.layers.Conv2D(num_classes, 1)(encoder(inputs)[8])
                return keras.Model(inputs, keras.layers.UpSampling2D(8)(x))
            """
        )
    )
    env = {**os.environ, "SEGMODELS_PLUGINS": "my_head", "PYTHONPATH": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-c", "import segmodels; print(','.join(segmodels.list_models('my_head-*')))"],
        env=env, capture_output=True, text=True, check=True,
    ).stdout.strip()
    assert out.split(",") == [f"my_head-{b}" for b in segmodels.list_backbones()]


def test_a_missing_plugin_module_says_where_it_was_named() -> None:
    with pytest.raises(ImportError, match="SEGMODELS_PLUGINS or --plugins"):
        segmodels.load_plugins("no_such_module_xyz")


def test_model_ids_round_trip() -> None:
    assert segmodels.parse_model_id("bayesian_segnet-resnet152") == ("bayesian_segnet", "resnet152")
    assert segmodels.model_id("fcn8s", "resnet101") == "fcn8s-resnet101"
    with pytest.raises(ValueError, match="<architecture>-<backbone>"):
        segmodels.parse_model_id("unet")
