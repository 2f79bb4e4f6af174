"""segmodels: semantic-segmentation architectures on interchangeable backbones.

>>> import segmodels
>>> model = segmodels.create_model("unet", "mobilenetv2", num_classes=3, input_shape=(128, 128, 3))
>>> segmodels.list_models("fcn*")[:2]
['fcn16s-mobilenetv2', 'fcn16s-resnet101']
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from segmodels import registry as _registry
from segmodels._discovery import discover as _discover
from segmodels._discovery import load_classical as _load_classical
from segmodels._discovery import load_plugins
from segmodels.registry import (
    ArchitectureCost,
    BackboneCost,
    UnknownNameError,
    architecture_names,
    backbone_names,
    get_architecture,
    get_backbone,
    register_architecture,
    register_backbone,
    register_classical,
)
from segmodels.shapes import SIZE_MULTIPLE, check_input_shape, input_size_problem
from segmodels.weights import WeightsUnavailableError

if TYPE_CHECKING:
    import keras

    from segmodels.backbones.base import Encoder, make_encoder

__all__ = [
    "SIZE_MULTIPLE",
    "ArchitectureCost",
    "BackboneCost",
    "Encoder",
    "UnknownNameError",
    "WeightsUnavailableError",
    "create_model",
    "get_architecture",
    "get_backbone",
    "input_size_problem",
    "list_architectures",
    "list_backbones",
    "list_models",
    "load_plugins",
    "make_encoder",
    "model_id",
    "parse_model_id",
    "register_architecture",
    "register_backbone",
    "register_classical",
]

_registry.install_loaders(networks=_discover, classical=_load_classical)


def __getattr__(name: str) -> Any:
    # Keras loads with the first model (seconds), not with the package: the harness imports the
    # light parts (class list, size check, suggestions) without it.
    if name in ("Encoder", "make_encoder"):
        from segmodels.backbones import base

        return getattr(base, name)
    raise AttributeError(f"module 'segmodels' has no attribute {name!r}")


def model_id(architecture: str, backbone: str) -> str:
    """``("fcn8s", "resnet101") -> "fcn8s-resnet101"``."""
    return f"{architecture}-{backbone}"


def parse_model_id(name: str) -> tuple[str, str]:
    """``"fcn8s-resnet101" -> ("fcn8s", "resnet101")``; registry names never contain ``-``."""
    architecture, sep, backbone = name.partition("-")
    if not sep or not architecture or not backbone:
        raise ValueError(f"Model id {name!r} is not of the form '<architecture>-<backbone>', e.g. 'unet-mobilenetv2'.")
    return architecture, backbone


def list_architectures(pattern: str = "*") -> list[str]:
    """Registered architecture names matching a shell-style ``pattern``."""
    return fnmatch.filter(architecture_names(), pattern)


def list_backbones(pattern: str = "*") -> list[str]:
    """Registered backbone names matching a shell-style ``pattern``."""
    return fnmatch.filter(backbone_names(), pattern)


def list_models(pattern: str = "*") -> list[str]:
    """Every ``<architecture>-<backbone>`` id matching ``pattern``: each architecture on each backbone."""
    ids = [model_id(a, b) for a in list_architectures() for b in list_backbones()]
    return fnmatch.filter(ids, pattern)


def create_model(
    architecture: str,
    backbone: str,
    num_classes: int = 3,
    input_shape: Sequence[int] = (128, 128, 3),
    weights: str | os.PathLike[str] | None = None,
    freeze_backbone: bool = False,
    **kwargs: object,
) -> keras.Model:
    """Builds ``architecture`` on ``backbone``; the model maps images in [0, 1] to logits.

    Args:
        architecture: Registry name, e.g. ``"unet"``, ``"fcn8s"``, ``"deeplabv3"``.
        backbone: Registry name, e.g. ``"mobilenetv2"``, ``"resnet50"``.
        num_classes: Number of output classes (at least 2).
        input_shape: ``(height, width, 3)``, sides multiples of 32.
        weights: Encoder initialisation: ``None`` (random), ``"imagenet"`` (Keras cache or
            download; fails fast offline), or the path of a keras.applications weights file.
        freeze_backbone: Make the encoder non-trainable (its BatchNorm then runs in inference
            mode), as the TensorFlow tutorial does with its pretrained MobileNetV2.
        **kwargs: Passed to the architecture's builder (e.g. ``dropout=0.5``).

    Returns:
        A functional ``keras.Model`` named ``"<architecture>-<backbone>"`` with output
        ``(batch, height, width, num_classes)`` logits, float32 under any dtype policy (a
        mixed-precision model ends in a float32 ``logits_float32`` layer).

    Raises:
        UnknownNameError: An unregistered architecture or backbone (lists the known names).
        ValueError: A bad ``num_classes`` or ``input_shape``.
        WeightsUnavailableError: ``weights="imagenet"`` with neither cache nor network.
    """
    arch = get_architecture(architecture)
    bb = get_backbone(backbone)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}.")
    shape = check_input_shape(input_shape)
    encoder: Encoder = bb.build(shape, weights=None if weights is None else str(weights), output_stride=arch.output_stride)
    if freeze_backbone:
        encoder.model.trainable = False
    model = arch.build(encoder, num_classes, **kwargs)
    model = _float32_logits(model)
    model.name = model_id(architecture, backbone)
    return model


def _float32_logits(model: keras.Model) -> keras.Model:
    """``model`` with float32 logits under a mixed-precision policy (unchanged where they are).

    The softmax and the loss of float16/bfloat16 logits lose precision and can overflow (Keras's
    mixed-precision guide; segmentation_models#323), so every architecture's output is cast to
    float32 here, in one place, by a float32 linear activation, whatever its builder did.
    """
    import keras

    if all(keras.backend.standardize_dtype(out.dtype) == "float32" for out in model.outputs):
        return model
    outputs = [
        keras.layers.Activation("linear", dtype="float32", name="logits_float32" + (f"_{i}" if i else ""))(out)
        for i, out in enumerate(model.outputs)
    ]
    return keras.Model(model.inputs, outputs[0] if len(outputs) == 1 else outputs)
