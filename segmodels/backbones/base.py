"""The contract between backbones and decoders.

A backbone hands a decoder an :class:`Encoder`: one functional ``keras.Model`` from the image to
its feature maps, with the maps keyed by stride (2, 4, 8, 16, 32). Decoders read features by
stride and never ask which backbone they got. A backbone asked for ``output_stride=16`` dilates its
last stage (for DeepLabV3); it then has no stride-32 map, and its stride-16 map is the output of
that dilated last stage.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import keras

STRIDES = (2, 4, 8, 16, 32)


@dataclass(frozen=True)
class Encoder:
    """A backbone's feature pyramid.

    Attributes:
        name: The backbone's registry key.
        model: Image -> list of feature maps, ordered as ``strides``. Freeze the encoder by setting
            ``model.trainable = False``.
        strides: The stride of each output of ``model``.
        channels: Channels of each feature map, keyed by stride.
        output_stride: Stride of the deepest map (32, or 16 when the last stage is dilated).
        weights: What the weights were initialised from: ``"none"``, ``"imagenet"`` or a path.
    """

    name: str
    model: keras.Model
    strides: tuple[int, ...]
    channels: Mapping[int, int]
    output_stride: int
    weights: str

    def new_input(self) -> Any:
        """A fresh ``keras.Input`` of the encoder's image shape, to start a model from."""
        return keras.Input(shape=self.model.input_shape[1:], name="images")

    def __call__(self, images: Any) -> dict[int, Any]:
        """Apply the encoder; returns ``{stride: feature_map}``."""
        outputs = self.model(images)
        return dict(zip(self.strides, outputs))


@keras.saving.register_keras_serializable(package="segmodels")
class ImageNetNormalization(keras.layers.Layer):
    """Maps images in [0, 1] to what a keras.applications backbone was trained on.

    The data pipeline yields [0, 1] floats for every model; each backbone declares the input its
    ImageNet weights expect, so pretrained weights see the distribution they were trained on.

    Args:
        mode: ``"tf"`` -> [-1, 1] (MobileNetV2); ``"caffe"`` -> BGR, 0-255, ImageNet mean removed
            (ResNet).
    """

    _CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)

    def __init__(self, mode: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if mode not in ("tf", "caffe"):
            raise ValueError(f"mode must be 'tf' or 'caffe', got {mode!r}.")
        self.mode = mode

    def call(self, images: Any) -> Any:
        if self.mode == "tf":
            return images * 2.0 - 1.0
        bgr = keras.ops.flip(images, axis=-1) * 255.0
        return bgr - keras.ops.convert_to_tensor(self._CAFFE_MEAN_BGR, dtype=images.dtype)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "mode": self.mode}


def rebuild_with(
    model: keras.Model, edit: Callable[[dict[str, Any]], None], name: str | None = None
) -> keras.Model:
    """Rebuilds a functional model after ``edit`` changed its layer configs; keeps its weights.

    Used to dilate a backbone: strides and dilation rates change, kernel shapes do not, so the
    (pretrained) weights transfer one to one.
    """
    config = model.get_config()
    for layer_config in config["layers"]:
        edit(layer_config["config"])
    if name:
        config["name"] = name
    rebuilt = keras.Model.from_config(config)
    rebuilt.set_weights(model.get_weights())
    return rebuilt


def make_encoder(
    name: str,
    base: keras.Model,
    taps: Mapping[int, str],
    input_shape: Sequence[int],
    normalization: str,
    output_stride: int,
    weights: str,
) -> Encoder:
    """Wraps a keras.applications model into an :class:`Encoder`.

    Args:
        name: Backbone registry key.
        base: The (possibly dilated) keras.applications model, without its top.
        taps: Layer name to read for each stride.
        input_shape: The model input, ``(H, W, 3)``, images in [0, 1].
        normalization: ``ImageNetNormalization`` mode of the backbone's weights.
        output_stride: 32, or 16 if ``base`` was dilated.
        weights: Provenance of the weights, recorded on the encoder.
    """
    strides = tuple(sorted(taps))
    features = keras.Model(
        base.input, [base.get_layer(taps[s]).output for s in strides], name=f"{name}_features"
    )
    images = keras.Input(shape=tuple(input_shape), name="images")
    normalized = ImageNetNormalization(normalization, name="imagenet_normalization")(images)
    model = keras.Model(images, features(normalized), name=f"{name}_encoder")
    channels = {s: int(t.shape[-1]) for s, t in zip(strides, model.outputs)}
    return Encoder(name, model, strides, channels, output_stride, weights)
