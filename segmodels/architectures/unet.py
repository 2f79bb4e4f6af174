"""U-Net (Ronneberger et al., MICCAI 2015, arXiv:1505.04597) as in the TensorFlow image
segmentation tutorial.

The tutorial's variant: an ImageNet encoder (MobileNetV2 there) gives skips at strides 16, 8, 4, 2
and a bottleneck at stride 32; the decoder is four pix2pix ``upsample`` blocks (Conv2DTranspose
512/256/128/64, kernel 3, stride 2, no bias, N(0, 0.02) init, BatchNorm, ReLU), each followed by
concatenation with the skip of the same stride, then a stride-2 Conv2DTranspose to
``num_classes`` logits at full resolution.

Changes from the tutorial: none to the layers. The encoder here normalises [0, 1] inputs to what
its ImageNet weights expect (the tutorial feeds [0, 1] to a MobileNetV2 trained on [-1, 1]); the
normalisation layer has no parameters, so the tutorial's counts (6,504,227 parameters, 4,660,323
trainable with a frozen MobileNetV2 at 128x128x3 and 3 classes) hold.
"""

from __future__ import annotations

import keras

from segmodels.backbones.base import Encoder
from segmodels.registry import ArchitectureCost, register_architecture

DECODER_FILTERS = (512, 256, 128, 64)


def upsample(filters: int, size: int, name: str, dropout: float = 0.0) -> keras.Sequential:
    """pix2pix's ``upsample``: Conv2DTranspose -> BatchNorm -> (Dropout) -> ReLU."""
    layers = [
        keras.layers.Conv2DTranspose(
            filters,
            size,
            strides=2,
            padding="same",
            kernel_initializer=keras.initializers.RandomNormal(0.0, 0.02),
            use_bias=False,
        ),
        keras.layers.BatchNormalization(),
    ]
    if dropout:
        layers.append(keras.layers.Dropout(dropout))
    layers.append(keras.layers.ReLU())
    return keras.Sequential(layers, name=name)


# The unit of the cost hints: every architecture's training cost is relative to U-Net's.
@register_architecture(
    "unet", cost=ArchitectureCost(relative_train_cost=1.0), paper="Ronneberger et al., MICCAI 2015, arXiv:1505.04597"
)
def unet(encoder: Encoder, num_classes: int) -> keras.Model:
    # === Encoder ===
    inputs = encoder.new_input()
    features = encoder(inputs)
    x = features[32]
    skips = [features[s] for s in (16, 8, 4, 2)]

    # === Decoder ===
    for filters, skip in zip(DECODER_FILTERS, skips):
        x = upsample(filters, 3, name=f"upsample_{filters}")(x)
        x = keras.layers.Concatenate(name=f"skip_{filters}")([x, skip])
    logits = keras.layers.Conv2DTranspose(num_classes, 3, strides=2, padding="same", name="logits")(x)
    return keras.Model(inputs, logits)
