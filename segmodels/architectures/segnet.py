"""SegNet (Badrinarayanan, Kendall & Cipolla, TPAMI 2017, arXiv:1511.00561) and Bayesian SegNet
(Kendall, Badrinarayanan & Cipolla, BMVC 2017, arXiv:1511.02680).

The decoder mirrors SegNet's: five stages, each a 2x upsampling followed by a stack of 3x3
Conv-BatchNorm-ReLU layers (512 ... 64 channels, the mirror of VGG16's encoder), then a 1x1
convolution to per-class logits. Bayesian SegNet adds dropout (p = 0.5) before each upsampling and,
which is the point of the paper, keeps it on at test time: :func:`mc_dropout_predict` averages the
softmax of N stochastic passes into class probabilities and returns the per-pixel variance across
the passes as an uncertainty map.

Changes from the papers: the encoder is the chosen backbone, so the decoder cannot reuse max-pooling
indices (ResNet and MobileNetV2 downsample with strided convolutions); it upsamples with
nearest-neighbour ``UpSampling2D`` as the chapter does. Dropout sits before each of the five
upsamplings (the chapter's placement) rather than after the central encoder and decoder units.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from segmodels.backbones.base import Encoder
from segmodels.registry import ArchitectureCost, register_architecture

# The mirror of VGG16's five convolution stages, deepest first.
DECODER_STAGES: tuple[tuple[int, ...], ...] = (
    (512, 512, 512),
    (512, 512, 256),
    (256, 256, 128),
    (128, 64),
    (64,),
)


@keras.saving.register_keras_serializable(package="segmodels")
class MonteCarloDropout(keras.layers.Dropout):
    """Dropout that can stay on at inference (``always_on=True``) for Monte-Carlo sampling.

    Built with ``always_on=False`` it is plain dropout; :func:`mc_sampler` clones the model with
    every dropout layer switched on and every other layer shared, so BatchNorm stays in inference
    mode while the dropout masks vary.
    """

    def __init__(self, rate: float, always_on: bool = False, **kwargs: Any) -> None:
        super().__init__(rate, **kwargs)
        self.always_on = always_on

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        return super().call(inputs, training=True if self.always_on else training)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "always_on": self.always_on}


def _conv_bn_relu(x: Any, filters: int, name: str) -> Any:
    x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = keras.layers.BatchNormalization(name=f"{name}_bn")(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x)


def build_segnet(encoder: Encoder, num_classes: int, dropout: float = 0.0) -> keras.Model:
    """SegNet decoder on ``encoder``; ``dropout > 0`` gives Bayesian SegNet."""
    # === Encoder ===
    inputs = encoder.new_input()
    x = encoder(inputs)[32]

    # === Decoder ===
    for stage, filters in enumerate(DECODER_STAGES, start=1):
        if dropout:
            x = MonteCarloDropout(dropout, name=f"decoder{stage}_dropout")(x)
        x = keras.layers.UpSampling2D(2, name=f"decoder{stage}_upsample")(x)
        for i, f in enumerate(filters, start=1):
            x = _conv_bn_relu(x, f, name=f"decoder{stage}_{i}")
    logits = keras.layers.Conv2D(num_classes, 1, name="logits")(x)
    return keras.Model(inputs, logits)


# Training cost relative to U-Net, measured on `--profile quick` runs (see ArchitectureCost): on
# MobileNetV2 at 128 px, 5.8 training images/s against U-Net's 20.4; on a ResNet the encoder weighs more.
_COST = ArchitectureCost(relative_train_cost=3.0)


@register_architecture("segnet", cost=_COST, paper="Badrinarayanan, Kendall & Cipolla, TPAMI 2017, arXiv:1511.00561")
def segnet(encoder: Encoder, num_classes: int) -> keras.Model:
    return build_segnet(encoder, num_classes)


@register_architecture(
    "bayesian_segnet", cost=_COST, paper="Kendall, Badrinarayanan & Cipolla, BMVC 2017, arXiv:1511.02680"
)
def bayesian_segnet(encoder: Encoder, num_classes: int, dropout: float = 0.5) -> keras.Model:
    return build_segnet(encoder, num_classes, dropout=dropout)


def dropout_layers(model: keras.Model) -> list[keras.layers.Dropout]:
    """Every ``Dropout`` layer with a positive rate in ``model``, nested models included."""
    found: list[keras.layers.Dropout] = []

    def walk(layer: keras.layers.Layer) -> None:
        if isinstance(layer, keras.layers.Dropout) and layer.rate > 0:
            found.append(layer)
        for inner in getattr(layer, "layers", ()):
            walk(inner)

    for layer in model.layers:
        walk(layer)
    return found


def mc_sampler(model: keras.Model, seed: int | None = None) -> keras.Model:
    """The model with its dropout always on: one call is one Monte-Carlo sample (section 3.2).

    Every ``Dropout`` layer (a :class:`MonteCarloDropout` of Bayesian SegNet, or the plain dropout
    of another model, such as FCN's fc6/fc7) becomes an always-on :class:`MonteCarloDropout` of
    the same rate; every other layer, and so every weight, is shared with ``model``. Call it with
    ``training=False``: BatchNorm stays in inference mode while the dropout masks vary.

    Args:
        seed: Seeds the dropout masks: the same seed and the same calls give the same samples
            (each layer draws from its own stream, ``seed * 1000 + its position``). ``None``
            draws from Keras's global seed.

    Raises:
        ValueError: ``model`` has no dropout layer (nothing to sample).
    """
    found = dropout_layers(model)
    if not found:
        raise ValueError(
            f"Model {model.name!r} has no Dropout layer; Monte-Carlo dropout inference needs a model with "
            "dropout, such as 'bayesian_segnet-<backbone>' or an FCN (fc6/fc7)."
        )
    position = {id(layer): i for i, layer in enumerate(found)}

    def clone(layer: keras.layers.Layer) -> keras.layers.Layer:
        if id(layer) in position:
            layer_seed = None if seed is None else seed * 1000 + position[id(layer)]
            return MonteCarloDropout(
                layer.rate, always_on=True, noise_shape=layer.noise_shape, seed=layer_seed, name=layer.name
            )
        return layer

    # Nested models are rebuilt only when a dropout layer lives in one (a U-Net block, say).
    nested = any(all(layer is not top for top in model.layers) for layer in found)
    return keras.models.clone_model(model, clone_function=clone, recursive=nested)


def mc_dropout_predict(
    model: keras.Model, images: Any, num_samples: int = 10, batch_size: int = 8, seed: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Monte-Carlo dropout inference (Bayesian SegNet, section 3.2).

    Args:
        model: A model with dropout (``bayesian_segnet-*``; see :func:`mc_sampler`).
        images: ``(N, H, W, 3)`` images in [0, 1].
        num_samples: Stochastic forward passes per image (the paper reports 40-50 for its best
            numbers; 10 already separates confident from uncertain pixels).
        batch_size: Images per forward pass.
        seed: Seeds the dropout masks (:func:`mc_sampler`).

    Returns:
        ``(probabilities, uncertainty)``: the mean softmax over the passes, ``(N, H, W, C)``, and
        per-pixel uncertainty ``(N, H, W)``, the variance of the sampled softmax averaged over
        classes.
    """
    if num_samples < 2:
        raise ValueError(f"num_samples must be at least 2 to estimate a variance, got {num_samples}.")
    sampler = mc_sampler(model, seed)
    images = np.asarray(images, dtype="float32")
    means, variances = [], []
    for start in range(0, len(images), batch_size):
        batch = images[start : start + batch_size]
        samples = np.stack([
            keras.ops.convert_to_numpy(keras.ops.softmax(sampler(batch, training=False))) for _ in range(num_samples)
        ])
        means.append(samples.mean(axis=0))
        variances.append(samples.var(axis=0).mean(axis=-1))
    return np.concatenate(means), np.concatenate(variances)
