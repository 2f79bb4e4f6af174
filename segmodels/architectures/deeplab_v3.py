"""DeepLabV3 (Chen, Papandreou, Schroff & Adam, 2017, arXiv:1706.05587).

The backbone runs at output stride 16: its last stage keeps stride 1 and dilates its 3x3
convolutions with the multi-grid (1, 2, 4) times rate 2 (each backbone does that in its own file).
Atrous Spatial Pyramid Pooling then looks at the stride-16 features through a 1x1 convolution,
three 3x3 convolutions at rates 6, 12 and 18, and image-level pooling, each with 256 channels,
BatchNorm and ReLU; the five branches are concatenated and projected by a 1x1 convolution
(256, BatchNorm, ReLU), a 1x1 classifier gives the logits, and bilinear upsampling brings them back
to the input size (section 3.3, "Atrous Spatial Pyramid Pooling").

Changes from the paper: none to the head. At 128 px input the stride-16 map is 8x8, smaller than
the rate-12 and rate-18 receptive fields, so those branches see mostly padding; the paper notes the
same degeneration (its motivation for image pooling).
"""

from __future__ import annotations

from typing import Any

import keras

from segmodels.backbones.base import Encoder
from segmodels.registry import ArchitectureCost, register_architecture

ASPP_RATES = (6, 12, 18)
ASPP_FILTERS = 256


def _conv_bn_relu(x: Any, filters: int, kernel: int, name: str, rate: int = 1) -> Any:
    x = keras.layers.Conv2D(filters, kernel, padding="same", dilation_rate=rate, use_bias=False, name=f"{name}_conv")(x)
    x = keras.layers.BatchNormalization(name=f"{name}_bn")(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x)


def aspp(x: Any, filters: int = ASPP_FILTERS, rates: tuple[int, ...] = ASPP_RATES) -> Any:
    """Atrous Spatial Pyramid Pooling with image-level features (paper, figure 5)."""
    height, width = x.shape[1], x.shape[2]
    branches = [_conv_bn_relu(x, filters, 1, name="aspp_1x1")]
    branches += [_conv_bn_relu(x, filters, 3, name=f"aspp_rate{r}", rate=r) for r in rates]
    pooled = keras.layers.GlobalAveragePooling2D(keepdims=True, name="aspp_image_pool")(x)
    pooled = _conv_bn_relu(pooled, filters, 1, name="aspp_image")
    branches.append(keras.layers.UpSampling2D((height, width), interpolation="bilinear", name="aspp_image_upsample")(pooled))
    x = keras.layers.Concatenate(name="aspp_concat")(branches)
    return _conv_bn_relu(x, filters, 1, name="aspp_project")


# Training cost relative to U-Net, measured on `--profile quick` runs (see ArchitectureCost).
@register_architecture(
    "deeplabv3", output_stride=16, cost=ArchitectureCost(relative_train_cost=2.5),
    paper="Chen, Papandreou, Schroff & Adam, 2017, arXiv:1706.05587",
)
def deeplabv3(encoder: Encoder, num_classes: int) -> keras.Model:
    # === Encoder (dilated, output stride 16) ===
    inputs = encoder.new_input()
    x = encoder(inputs)[encoder.output_stride]

    # === Head ===
    x = aspp(x)
    x = keras.layers.Conv2D(num_classes, 1, name="classifier")(x)
    logits = keras.layers.UpSampling2D(encoder.output_stride, interpolation="bilinear", name="logits")(x)
    return keras.Model(inputs, logits)
