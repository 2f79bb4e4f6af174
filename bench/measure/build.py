"""The one place a run's model comes from, and the weights policy.

A deep run is ``segmodels.create_model(architecture, backbone)``; a classical run
(``classical-<method>``) wraps a classical segmenter in a Keras model. Pretrained weights are
used where they can be had and a fallback to random initialisation is said loudly and recorded.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import segmodels
from bench.config.run_config import CLASSICAL, NUM_CLASSES, RunConfig
from segmodels._network import host_unreachable
from segmodels.registry import get_classical


@dataclass(frozen=True)
class BuiltModel:
    """A run's model and how its weights were initialised.

    Attributes:
        model: The Keras model (images in [0, 1] -> logits or one-hot scores).
        weights: ``imagenet``, ``none``, or ``none (imagenet unavailable: <reason>)``.
        frozen_encoder: Whether the encoder was frozen (only ever with pretrained weights).
        family: ``deep``, or ``classical`` for a classical segmenter (``classical-<method>``).
        record_fields: Extra fields for the run's record (a classical run's ``classical_family``).
    """

    model: Any
    weights: str
    frozen_encoder: bool
    family: str
    record_fields: dict[str, Any] = field(default_factory=dict)


def build_model(cfg: RunConfig) -> BuiltModel:
    """The one place a run's model comes from.

    Architecture ``classical`` is a classical segmenter, the method in the backbone's place
    (``classical-canny``): no weights, nothing to train (segmodels.classical).

    Weights policy: ``imagenet`` where it can be had (Keras cache or network); otherwise random
    initialisation with the encoder trainable, said loudly and recorded. The encoder is frozen
    only when pretrained weights were really loaded and the profile asks for it: a frozen random
    encoder would be a benchmark of noise.
    """
    import keras  # lazy: the worker sets Keras's environment before it loads

    from segmodels import classical  # lazy: scikit-image and TensorFlow, for classical runs only

    shape = (cfg.profile.image_size, cfg.profile.image_size, 3)
    if cfg.architecture == CLASSICAL:
        method = get_classical(cfg.backbone)
        return BuiltModel(
            classical.build_classical_model(method.name, input_shape=shape, num_classes=NUM_CLASSES),
            "none", False, "classical",
            {"classical_family": method.family, "classical_description": method.description},
        )
    weights = "none"
    frozen = False
    if cfg.profile.weights == "imagenet":
        try:
            model = segmodels.create_model(
                cfg.architecture, cfg.backbone, num_classes=NUM_CLASSES, input_shape=shape,
                weights="imagenet", freeze_backbone=cfg.profile.freeze_encoder,
            )
            weights, frozen = "imagenet", cfg.profile.freeze_encoder
        except segmodels.WeightsUnavailableError as error:
            reason = str(error).split(". ")[0].strip()
            weights = f"none (imagenet unavailable: {reason})"
            banner = "!" * 100
            print(
                f"\n{banner}\n!! {cfg.model}: ImageNet weights unavailable -> RANDOM initialisation, "
                f"encoder TRAINABLE.\n!! {reason}\n{banner}\n",
                file=sys.stderr, flush=True,
            )
            keras.utils.set_random_seed(cfg.seed)  # the same init whatever the failed attempt drew
            model = segmodels.create_model(
                cfg.architecture, cfg.backbone, num_classes=NUM_CLASSES, input_shape=shape, weights=None
            )
    else:
        model = segmodels.create_model(
            cfg.architecture, cfg.backbone, num_classes=NUM_CLASSES, input_shape=shape, weights=None
        )
    return BuiltModel(model, weights, frozen, "deep")


#: How segmodels.weights words a missing file (kept in a fallback run's ``weights``).
_UNAVAILABLE = re.compile(r"not cached at (?P<path>\S+) and (?P<host>[\w.-]+) cannot be reached")


def imagenet_weights_available(record: dict[str, Any]) -> bool:
    """Whether the ImageNet weights that a run stored with random initialisation lacked can be had
    now: their file is in the Keras cache, or their host answers (never with SEGMODELS_OFFLINE=1)."""
    found = _UNAVAILABLE.search(str(record.get("weights", "")))
    if found is None:
        return False
    if Path(found["path"]).is_file():
        return True
    return os.environ.get("SEGMODELS_OFFLINE") != "1" and host_unreachable(found["host"]) is None
