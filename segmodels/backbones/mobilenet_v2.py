"""MobileNetV2 (Sandler et al., CVPR 2018, arXiv:1801.04381) from keras.applications.

The taps are the TensorFlow segmentation tutorial's: the expansion activations of blocks 1, 3, 6
and 13 (strides 2-16) and the projection of block 16 (stride 32). Like the tutorial, the encoder
stops at ``block_16_project``: the final 1x1 ``Conv_1`` (1280 channels) is not part of it.

Dilated (output stride 16, for DeepLabV3): block 13's depthwise convolution keeps stride 1 and
blocks 14-16 dilate their depthwise convolutions by 2x the multi-grid (1, 2, 4), mirroring
DeepLabV3's treatment of ResNet's last stage.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras

from segmodels.backbones.base import Encoder, make_encoder, rebuild_with
from segmodels.registry import BackboneCost, register_backbone
from segmodels.weights import WeightsFile, resolve_weights

TAPS = {
    2: "block_1_expand_relu",
    4: "block_3_expand_relu",
    8: "block_6_expand_relu",
    16: "block_13_expand_relu",
    32: "block_16_project",
}
_DILATED_TAPS = {**{s: TAPS[s] for s in (2, 4, 8)}, 16: "block_16_project"}
_WEIGHT_SIDES = (96, 128, 160, 192, 224)
_MULTI_GRID = {"block_14_depthwise": 1, "block_15_depthwise": 2, "block_16_depthwise": 4}


def _weights_file(input_shape: Sequence[int]) -> WeightsFile:
    # keras.applications falls back to the 224 px weights for any other square side.
    side = input_shape[0] if input_shape[0] == input_shape[1] and input_shape[0] in _WEIGHT_SIDES else 224
    name = f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_{side}_no_top.h5"
    return WeightsFile(name, "https://storage.googleapis.com/tensorflow/keras-applications/mobilenet_v2/" + name)


def _dilate_last_stage(config: dict[str, Any]) -> None:
    name = config["name"]
    if name == "block_13_pad":
        config["padding"] = ((0, 0), (0, 0))
    elif name == "block_13_depthwise":
        config["strides"] = (1, 1)
        config["padding"] = "same"
    elif name in _MULTI_GRID:
        config["dilation_rate"] = (2 * _MULTI_GRID[name],) * 2


# Measured on `--profile quick` runs and the smoke and quick sweeps (see BackboneCost). The FCNs'
# fc6 sees 320 channels here, so their heavy head costs far less than on a ResNet.
COST = BackboneCost(
    train_images_per_s_128=25.0, fixed_s=28.0, heavy_head_extra_s=12.0, peak_mb=1300.0, peak_mb_heavy_head=3400.0
)


@register_backbone("mobilenetv2", cost=COST)
def mobilenetv2(input_shape: Sequence[int], weights: str | None = None, output_stride: int = 32) -> Encoder:
    path = resolve_weights(weights, _weights_file(input_shape), "mobilenetv2")
    base = keras.applications.MobileNetV2(input_shape=tuple(input_shape), include_top=False, weights=path)
    taps = TAPS
    if output_stride == 16:
        base = rebuild_with(base, _dilate_last_stage, name="mobilenetv2_os16")
        taps = _DILATED_TAPS
    return make_encoder("mobilenetv2", base, taps, input_shape, "tf", output_stride, weights or "none")
