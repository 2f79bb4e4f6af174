"""Profiles and run configurations: the settings that must not drift.

A :class:`Profile` is a frozen, named set of training and measuring settings (``smoke``, ``quick``,
``full``); command-line overrides make a new profile with ``dataclasses.replace``. A
:class:`RunConfig` is one run of the matrix: a profile applied to one (architecture, backbone,
seed) on one dataset. Its :attr:`RunConfig.run_id` is a hash of every field, so "already done" is a
lookup of ``runs/<run_id>/record.json`` and any change to a setting makes a new run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

#: Bump when a change to the harness changes what a stored number means; it is part of every run
#: id, so results measured by an older harness are not mistaken for current ones.
HARNESS_VERSION = 1

NUM_CLASSES = 3
CLASS_NAMES = ("pet", "background", "border")  # class ids 0, 1, 2 of the masks (bench.data)


@dataclass(frozen=True)
class TimingSpec:
    """How inference speed is measured (see :mod:`bench.timing`).

    Attributes:
        warmup_calls: Untimed calls first (tracing, allocator warm-up).
        min_calls: At least this many timed batch-1 calls ...
        min_seconds: ... and at least this long, ...
        max_calls: ... but at most this many calls ...
        max_seconds: ... or this long, whichever comes first once the minimums are met.
        throughput_batch: The fixed larger batch for inference throughput (images/s).
        throughput_calls: Timed calls at that batch (after one warm-up call).
    """

    warmup_calls: int = 3
    min_calls: int = 20
    min_seconds: float = 2.0
    max_calls: int = 200
    max_seconds: float = 10.0
    throughput_batch: int = 16
    throughput_calls: int = 3


@dataclass(frozen=True)
class Profile:
    """A named, frozen set of settings for a whole sweep.

    Attributes:
        name: ``smoke``, ``quick`` or ``full`` (the results directory is ``results/<name>``).
        description: One line for ``python -m bench list``.
        data: Data source (``bench.data.load_pets``): ``auto``, ``tfds``, ``dir:PATH``, ``synthetic``.
        image_size: Square side in pixels (a multiple of 32).
        batch_size: Training batch size.
        epochs: Training epochs.
        steps_per_epoch: Training steps per epoch; ``None`` is the chapter's ``train_size // batch``.
        val_subsplits: Validation runs ``test_size // batch // val_subsplits`` steps after each
            epoch (the chapter's ``VAL_SUBSPLITS``), at least one.
        max_test_examples: Evaluate on the first N test examples only (``None``: the whole split).
        seeds: One run per seed.
        weights: ``imagenet`` (falls back to random init, loudly, where unavailable) or ``none``.
        freeze_encoder: Freeze the encoder, but only when pretrained weights were really loaded.
        learning_rate: Adam learning rate.
        augment: Random flips in the training pipeline (seeded).
        shuffle_buffer: Shuffle buffer of the training pipeline.
        precise_bn_batches: Training batches over which BatchNorm population statistics are
            recomputed before evaluation ("precise BN"); 0 turns it off.
        gallery_size: Test images stored per run in ``predictions.npz``.
        timing: How inference speed is measured.
        run_eagerly: Train, evaluate and time without tracing (``tf.config.run_functions_eagerly``).
            For the smoke profile only: tracing a ResNet-152's train step costs ~40 s on a CPU, far
            more than the two steps it then runs. Eager timings are not comparable with traced
            ones, so profiles that measure speed keep this off.
        jobs: Runs the local executor executes at once (``--jobs``), memory permitting. Above 1
            the runs share the cores and slow each other down, so profiles that measure speed keep
            1; the smoke profile's eager runs are mostly single-threaded Python and run two at a
            time. Not part of a run's identity (it changes timings only, and every record says how
            many runs it shared the machine with).
    """

    name: str
    description: str
    data: str
    image_size: int
    batch_size: int
    epochs: int
    steps_per_epoch: int | None
    val_subsplits: int
    max_test_examples: int | None
    seeds: tuple[int, ...]
    weights: str
    freeze_encoder: bool
    learning_rate: float = 1e-3
    augment: bool = True
    shuffle_buffer: int = 1000
    precise_bn_batches: int = 30
    gallery_size: int = 4
    timing: TimingSpec = field(default_factory=TimingSpec)
    run_eagerly: bool = False
    jobs: int = 1


PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile(
            name="smoke",
            description="synthetic data, 64 px, 2 training steps: does everything work (CI)",
            data="synthetic",
            image_size=64,
            batch_size=4,
            epochs=1,
            steps_per_epoch=2,
            val_subsplits=5,
            max_test_examples=8,
            seeds=(0,),
            weights="none",
            freeze_encoder=False,
            precise_bn_batches=2,
            gallery_size=4,
            timing=TimingSpec(
                warmup_calls=1, min_calls=5, min_seconds=0.2, max_calls=20, max_seconds=1.0,
                throughput_batch=2, throughput_calls=1,
            ),
            run_eagerly=True,
            jobs=2,
        ),
        Profile(
            name="quick",
            description="best real data at 128 px, a short schedule sized for <= 60 min on 2 CPU cores",
            data="auto",
            image_size=128,
            batch_size=8,
            epochs=2,
            steps_per_epoch=2,
            val_subsplits=5,
            max_test_examples=32,
            seeds=(0,),
            weights="imagenet",
            freeze_encoder=True,
            precise_bn_batches=4,
            gallery_size=4,
            timing=TimingSpec(
                warmup_calls=2, min_calls=10, min_seconds=1.0, max_calls=50, max_seconds=3.0,
                throughput_batch=8, throughput_calls=1,
            ),
        ),
        Profile(
            name="full",
            description="the chapter's protocol: 128 px, batch 64, 20 epochs, pretrained encoder, 3 seeds (GPU)",
            data="auto",
            image_size=128,
            batch_size=64,
            epochs=20,
            steps_per_epoch=None,
            val_subsplits=5,
            max_test_examples=None,
            seeds=(0, 1, 2),
            weights="imagenet",
            freeze_encoder=True,
            precise_bn_batches=30,
            gallery_size=4,
            timing=TimingSpec(throughput_batch=32, throughput_calls=5),
        ),
    )
}


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
