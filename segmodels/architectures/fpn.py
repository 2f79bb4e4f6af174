"""Semantic FPN (Kirillov, Girshick, He & Dollar, CVPR 2019, arXiv:1901.02446) on a Feature Pyramid
Network (Lin et al., CVPR 2017, arXiv:1612.03144).

This file is the README's worked example of adding a model: one new file, one decorator.

FPN turns the backbone's stride 4-32 maps into a pyramid of 256-channel maps with 1x1 lateral
convolutions and a top-down path (2x nearest upsampling and addition), each level smoothed by a 3x3
convolution. The semantic head upsamples every level to stride 4 through 3x3 Conv-BN-ReLU (128
channels) and 2x bilinear upsampling steps, sums the levels, and predicts logits with a 1x1
convolution that is upsampled 4x bilinearly to the input size.

Changes from the paper: BatchNorm instead of GroupNorm in the head (the benchmark trains with
batches large enough for it, and every other model here uses BatchNorm).
"""

from __future__ import annotations

from typing import Any

import keras

from segmodels.backbones.base import Encoder
from segmodels.registry import ArchitectureCost, register_architecture

PYRAMID_STRIDES = (4, 8, 16, 32)


def _head_stage(x: Any, upsamplings: int, name: str, filters: int = 128) -> Any:
    """Conv-BN-ReLU, then 2x bilinear upsampling, repeated until stride 4 (once for stride 4)."""
    for i in range(max(upsamplings, 1)):
        x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv{i}")(x)
        x = keras.layers.BatchNormalization(name=f"{name}_bn{i}")(x)
        x = keras.layers.ReLU(name=f"{name}_relu{i}")(x)
        if upsamplings:
            x = keras.layers.UpSampling2D(2, interpolation="bilinear", name=f"{name}_up{i}")(x)
    return x


@register_architecture(
    "fpn", cost=ArchitectureCost(relative_train_cost=0.8),
    paper="Kirillov, Girshick, He & Dollar, CVPR 2019, arXiv:1901.02446",
)
def fpn(encoder: Encoder, num_classes: int, pyramid_filters: int = 256) -> keras.Model:
    # === Encoder ===
    inputs = encoder.new_input()
    features = encoder(inputs)

    # === Feature pyramid: lateral 1x1 convolutions and the top-down path ===
    pyramid: dict[int, Any] = {}
    top = None
    for stride in reversed(PYRAMID_STRIDES):
        lateral = keras.layers.Conv2D(pyramid_filters, 1, name=f"lateral_stride{stride}")(features[stride])
        if top is not None:
            upsampled = keras.layers.UpSampling2D(2, name=f"topdown_stride{stride}")(top)
            lateral = keras.layers.Add(name=f"merge_stride{stride}")([lateral, upsampled])
        top = lateral
        pyramid[stride] = keras.layers.Conv2D(pyramid_filters, 3, padding="same", name=f"smooth_stride{stride}")(lateral)

    # === Semantic head: every level to stride 4, summed ===
    levels = [_head_stage(pyramid[s], (s // 4).bit_length() - 1, name=f"head_stride{s}") for s in PYRAMID_STRIDES]
    x = keras.layers.Add(name="head_sum")(levels)
    x = keras.layers.Conv2D(num_classes, 1, name="classifier")(x)
    logits = keras.layers.UpSampling2D(4, interpolation="bilinear", name="logits")(x)
    return keras.Model(inputs, logits)
