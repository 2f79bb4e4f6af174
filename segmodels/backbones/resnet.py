"""ResNet-50/101/152 (He et al., CVPR 2016, arXiv:1512.03385) from keras.applications.

Three thin variants of one builder. Taps: ``conv1_relu`` (stride 2) and the output of each stage
(``conv2``..``conv5``, strides 4-32).

Dilated (output stride 16, for DeepLabV3, arXiv:1706.05587 section 3.2): stage 5 keeps stride 1 and
its three 3x3 convolutions use rates 2 x multi-grid (1, 2, 4) = 2, 4, 8. Kernel shapes do not
change, so pretrained kernels are reused as they are.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import keras

from segmodels.backbones.base import Encoder, make_encoder, rebuild_with
from segmodels.registry import BackboneCost, register_backbone
from segmodels.weights import WeightsFile, resolve_weights

_URL = "https://storage.googleapis.com/tensorflow/keras-applications/resnet/"
# (keras.applications constructor, last block of stages 3 and 4, md5 of the no-top weights)
_VARIANTS: dict[str, tuple[Callable[..., keras.Model], int, int, str]] = {
    "resnet50": (keras.applications.ResNet50, 4, 6, "4d473c1dd8becc155b73f8504c6f6626"),
    "resnet101": (keras.applications.ResNet101, 4, 23, "88cf7a10940856eca736dc7b7e228a21"),
    "resnet152": (keras.applications.ResNet152, 8, 36, "ee4c566cf9a93f14d82f913c2dc6dd0c"),
}
_MULTI_GRID = (1, 2, 4)

# Cost hints, measured on `--profile quick` runs and the smoke and quick sweeps (see BackboneCost).
# The peaks are the largest of any ResNet. A peak is dominated by the parameters: ~30 bytes each
# (weights, gradients, Adam's two moments, the temporaries of an update), so the FCNs' 0.45 G
# parameters make ~15 GB at any size.
_PEAKS = {"peak_mb": 2650.0, "peak_mb_heavy_head": 15600.0}
COSTS = {
    "resnet50": BackboneCost(train_images_per_s_128=4.5, fixed_s=40.0, heavy_head_extra_s=35.0, **_PEAKS),
    "resnet101": BackboneCost(train_images_per_s_128=2.6, fixed_s=55.0, heavy_head_extra_s=35.0, **_PEAKS),
    "resnet152": BackboneCost(train_images_per_s_128=1.8, fixed_s=70.0, heavy_head_extra_s=35.0, **_PEAKS),
}


def _taps(stage3_blocks: int, stage4_blocks: int) -> dict[int, str]:
    return {
        2: "conv1_relu",
        4: "conv2_block3_out",
        8: f"conv3_block{stage3_blocks}_out",
        16: f"conv4_block{stage4_blocks}_out",
        32: "conv5_block3_out",
    }


def _dilate_stage5(config: dict[str, Any]) -> None:
    name = config["name"]
    if not name.startswith("conv5_"):
        return
    if "strides" in config:
        config["strides"] = (1, 1)
    for block, grid in enumerate(_MULTI_GRID, start=1):
        if name == f"conv5_block{block}_2_conv":
            config["dilation_rate"] = (2 * grid, 2 * grid)


def _build(variant: str, input_shape: Sequence[int], weights: str | None, output_stride: int) -> Encoder:
    constructor, stage3, stage4, md5 = _VARIANTS[variant]
    filename = f"{variant}_weights_tf_dim_ordering_tf_kernels_notop.h5"
    path = resolve_weights(weights, WeightsFile(filename, _URL + filename, md5), variant)
    base = constructor(input_shape=tuple(input_shape), include_top=False, weights=path)
    taps = _taps(stage3, stage4)
    if output_stride == 16:
        base = rebuild_with(base, _dilate_stage5, name=f"{variant}_os16")
        taps = {**{s: taps[s] for s in (2, 4, 8)}, 16: taps[32]}
    return make_encoder(variant, base, taps, input_shape, "caffe", output_stride, weights or "none")


@register_backbone("resnet50", cost=COSTS["resnet50"])
def resnet50(input_shape: Sequence[int], weights: str | None = None, output_stride: int = 32) -> Encoder:
    return _build("resnet50", input_shape, weights, output_stride)


@register_backbone("resnet101", cost=COSTS["resnet101"])
def resnet101(input_shape: Sequence[int], weights: str | None = None, output_stride: int = 32) -> Encoder:
    return _build("resnet101", input_shape, weights, output_stride)


@register_backbone("resnet152", cost=COSTS["resnet152"])
def resnet152(input_shape: Sequence[int], weights: str | None = None, output_stride: int = 32) -> Encoder:
    return _build("resnet152", input_shape, weights, output_stride)
