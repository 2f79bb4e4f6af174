"""FCN-32s, FCN-16s and FCN-8s (Long, Shelhamer & Darrell, CVPR 2015, arXiv:1411.4038).

One builder, three thin variants. The classifier of the paper's VGG16 becomes convolutions on the
stride-32 features: fc6 (7x7, 4096, ReLU, dropout 0.5), fc7 (1x1, 4096, ReLU, dropout 0.5) and a
1x1 score layer. FCN-32s upsamples the scores 32x in one transposed convolution; FCN-16s first fuses
them 2x-upsampled with a 1x1 score of the stride-16 features; FCN-8s fuses again with the stride-8
features. Transposed convolutions start as bilinear interpolation and the skip score layers at
zero, as in the paper, so training starts from the coarser net's prediction.

Changes from the paper: the encoder is the chosen backbone rather than VGG16, so fc6 sees its
stride-32 features (2048 channels on ResNet: ~411 M of FCN-ResNet50's ~451 M parameters are fc6);
"same" padding replaces the paper's 100-pixel input padding and crop layers, so any input that is
a multiple of 32 maps to logits of the same size.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from segmodels.backbones.base import Encoder
from segmodels.registry import ArchitectureCost, register_architecture

# Training cost relative to U-Net, measured on `--profile quick` runs (see ArchitectureCost). The
# 7x7x4096 fc6 layer holds 0.26-0.41 G parameters: a heavy head, whose building, initialising and
# updating take time of their own (measured: FCN-ResNet50 ~95 s a quick run) and whose parameters
# set the peak memory at any image size.
_COST = ArchitectureCost(relative_train_cost=1.3, heavy_head=True)
PAPER = "Long, Shelhamer & Darrell, CVPR 2015, arXiv:1411.4038"


@keras.saving.register_keras_serializable(package="segmodels")
class BilinearUpsampling(keras.initializers.Initializer):
    """Initialises a ``(k, k, C, C)`` transposed-convolution kernel to bilinear interpolation of
    each channel onto itself (the paper's upsampling initialisation)."""

    def __call__(self, shape: tuple[int, ...], dtype: Any = None) -> Any:
        size, _, out_channels, in_channels = shape
        factor = (size + 1) // 2
        center = factor - 1 if size % 2 == 1 else factor - 0.5
        grid = np.arange(size)
        filt = 1 - np.abs(grid - center) / factor
        kernel = np.zeros(shape, dtype="float32")
        for channel in range(min(in_channels, out_channels)):
            kernel[:, :, channel, channel] = np.outer(filt, filt)
        return keras.ops.convert_to_tensor(kernel, dtype=dtype or "float32")


def _upsample(num_classes: int, factor: int, name: str) -> keras.layers.Layer:
    return keras.layers.Conv2DTranspose(
        num_classes,
        kernel_size=2 * factor,
        strides=factor,
        padding="same",
        use_bias=False,
        kernel_initializer=BilinearUpsampling(),
        name=name,
    )


def _score(num_classes: int, name: str) -> keras.layers.Layer:
    # Zero-initialised, so a fused net starts out as its coarser parent (paper, section 4.2).
    return keras.layers.Conv2D(num_classes, 1, kernel_initializer="zeros", name=name)


def build_fcn(encoder: Encoder, num_classes: int, fuse_strides: tuple[int, ...], dropout: float = 0.5) -> keras.Model:
    """FCN whose stride-32 scores are fused with those of ``fuse_strides`` (e.g. ``(16, 8)``)."""
    # === Encoder ===
    inputs = encoder.new_input()
    features = encoder(inputs)

    # === Convolutionalised classifier ===
    x = keras.layers.Conv2D(4096, 7, padding="same", activation="relu", name="fc6")(features[32])
    x = keras.layers.Dropout(dropout, name="drop6")(x)
    x = keras.layers.Conv2D(4096, 1, activation="relu", name="fc7")(x)
    x = keras.layers.Dropout(dropout, name="drop7")(x)
    scores = keras.layers.Conv2D(num_classes, 1, name="score_fr")(x)

    # === Skip fusion and upsampling ===
    stride = 32
    for skip in fuse_strides:
        scores = _upsample(num_classes, stride // skip, name=f"upscore_to_{skip}")(scores)
        skip_scores = _score(num_classes, name=f"score_stride{skip}")(features[skip])
        scores = keras.layers.Add(name=f"fuse_stride{skip}")([scores, skip_scores])
        stride = skip
    logits = _upsample(num_classes, stride, name="upscore_final")(scores)
    return keras.Model(inputs, logits)


@register_architecture("fcn32s", cost=_COST, paper=PAPER)
def fcn32s(encoder: Encoder, num_classes: int, **kwargs: Any) -> keras.Model:
    return build_fcn(encoder, num_classes, fuse_strides=(), **kwargs)


@register_architecture("fcn16s", cost=_COST, paper=PAPER)
def fcn16s(encoder: Encoder, num_classes: int, **kwargs: Any) -> keras.Model:
    return build_fcn(encoder, num_classes, fuse_strides=(16,), **kwargs)


@register_architecture("fcn8s", cost=_COST, paper=PAPER)
def fcn8s(encoder: Encoder, num_classes: int, **kwargs: Any) -> keras.Model:
    return build_fcn(encoder, num_classes, fuse_strides=(16, 8), **kwargs)
