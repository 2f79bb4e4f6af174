"""Run configurations: one run of the matrix, and its identity.

A :class:`RunConfig` is a profile (:mod:`bench.profiles`) applied to one (architecture, backbone,
seed) on one dataset. Its :attr:`RunConfig.run_id` is a hash of every field, so "already done" is a
lookup of ``runs/<run_id>/record.json`` and any change to a setting makes a new run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from bench.profiles import Profile, TimingSpec

#: Bump when a change to the harness changes what a stored number means; it is part of every run
#: id, so results measured by an older harness are not mistaken for current ones.
HARNESS_VERSION = 1

NUM_CLASSES = 3
CLASS_NAMES = ("pet", "background", "border")  # class ids 0, 1, 2 of the masks (bench.data)


@dataclass(frozen=True)
class RunConfig:
    """Everything that determines one run; its hash is the run's identity.

    Attributes:
        architecture: Registry name, e.g. ``unet``.
        backbone: Registry name, e.g. ``mobilenetv2``.
        seed: Seed of weights, shuffling, augmentation and dropout.
        profile: The profile's settings (overrides included).
        data: The resolved data source (never ``auto``), as ``bench.data.load_pets`` takes it.
        dataset_fingerprint: The dataset's fingerprint (bench.data provenance): a changed dataset
            is a new run.
        harness_version: :data:`HARNESS_VERSION`.
        replicas: Devices the model is trained on at once (``--gpus-per-run``): above 1, a
            ``tf.distribute.MirroredStrategy`` over that many GPUs, the global batch staying the
            profile's ``batch_size``.
    """

    architecture: str
    backbone: str
    seed: int
    profile: Profile
    data: str
    dataset_fingerprint: str
    harness_version: int = HARNESS_VERSION
    replicas: int = 1

    @property
    def model(self) -> str:
        return f"{self.architecture}-{self.backbone}"

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def flat(self) -> dict[str, Any]:
        """One level of keys (``profile.timing.min_calls`` ...), for the ``config.*`` columns."""
        return _flatten(self.as_dict())

    @property
    def config_hash(self) -> str:
        # The data location is left out: the same dataset (same fingerprint) found at another
        # path, e.g. on CI's fresh clone, is the same run. Fields added after results were first
        # stored count only where they differ from their default, so stored run ids stay valid.
        identity = {
            k: v for k, v in self.flat().items()
            if k not in _NOT_IDENTITY and not (k in _ADDED_FIELD_DEFAULTS and v == _ADDED_FIELD_DEFAULTS[k])
        }
        blob = json.dumps(identity, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:10]

    @property
    def run_id(self) -> str:
        return f"{self.model}-s{self.seed}-{self.config_hash}"

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), sort_keys=True, indent=1)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> RunConfig:
        profile = dict(raw["profile"])
        profile["timing"] = TimingSpec(**profile["timing"])
        profile["seeds"] = tuple(profile["seeds"])
        return cls(**{**raw, "profile": Profile(**profile)})

    @classmethod
    def from_json(cls, text: str) -> RunConfig:
        return cls.from_dict(json.loads(text))


#: Flattened RunConfig fields that do not make a run another run: where the data was found, and how
#: many runs shared the machine (which every record states).
_NOT_IDENTITY = frozenset({"data", "profile.jobs"})

#: RunConfig fields added after the first stored results, with the default they had implicitly.
_ADDED_FIELD_DEFAULTS: dict[str, Any] = {"replicas": 1}


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in d.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        elif isinstance(value, (list, tuple)):
            out[f"{prefix}{key}"] = ",".join(str(v) for v in value)
        else:
            out[f"{prefix}{key}"] = value
    return out


def validation_steps(profile: Profile, test_size: int) -> int:
    """The chapter's ``test_size // batch // VAL_SUBSPLITS``, at least one step."""
    return max(1, test_size // profile.batch_size // profile.val_subsplits)


def steps_per_epoch(profile: Profile, train_size: int) -> int:
    """The profile's steps, or the chapter's ``train_size // batch`` (at least one)."""
    if profile.steps_per_epoch is not None:
        return profile.steps_per_epoch
    return max(1, train_size // profile.batch_size)
