"""Run configurations: one run of the matrix, and its identity.

A :class:`RunConfig` is a profile (:mod:`bench.config.profiles`) applied to one (architecture, backbone,
seed) on one dataset. Its :attr:`RunConfig.run_id` is a hash of every field, so "already done" is a
lookup of ``runs/<run_id>/record.json`` and any change to a setting makes a new run.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from bench.config.backends import DEFAULT_BACKEND
from bench.config.profiles import Profile, TimingSpec
from segmodels.registry import CLASSICAL_ARCHITECTURE as CLASSICAL
from segmodels.trimap import CLASS_NAMES, NUM_CLASSES  # noqa: F401 (bench's import of the mask classes)

#: Bump when a change to the harness changes what a stored number means; it is part of every run
#: id, so results measured by an older harness are not mistaken for current ones.
HARNESS_VERSION = 1


def matches_model(architecture: str, backbone: str, globs: Iterable[str]) -> bool:
    """Whether one of ``globs`` matches the architecture name or the whole model id, as ``--arch``,
    ``--mc-models`` and ``--trained-models`` match: ``unet``, ``fcn*``, ``unet-mobilenetv2``."""
    model = f"{architecture}-{backbone}"
    return any(fnmatch.fnmatch(architecture, g) or fnmatch.fnmatch(model, g) for g in globs)


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
        backend: The Keras backend it computes on (:mod:`bench.config.backends`); in the identity
            only where it is not TensorFlow, on which every run stored before it ran.
    """

    architecture: str
    backbone: str
    seed: int
    profile: Profile
    data: str
    dataset_fingerprint: str
    harness_version: int = HARNESS_VERSION
    replicas: int = 1
    backend: str = DEFAULT_BACKEND

    @property
    def model(self) -> str:
        return f"{self.architecture}-{self.backbone}"

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def flat(self) -> dict[str, Any]:
        """One level of keys (``profile.timing.min_calls`` ...), for the ``config.*`` columns."""
        return _flatten(self.as_dict())

    def identity(self) -> dict[str, Any]:
        """The settings that can change this run's result: its config, flattened, less what cannot.

        Left out: where the data was found (the same dataset, same fingerprint, at another path is
        the same run), the sweep's seed list (a run has its own seed), how many runs shared the
        machine, the profile's description, and for a classical segmenter the training-only
        settings it never reads. Fields added after results were first stored count only where
        they differ from the default they implicitly had. The ImageNet weights a run asked for
        are here; the weights it really got are in its record (:func:`bench.plan.matrix.status` redoes a
        run that fell back to random initialisation once the weights can be had).
        """
        skip = set(_NOT_IDENTITY)
        if self.architecture == CLASSICAL:
            skip |= _TRAINING_ONLY | _NETWORK_ONLY
        elif not self.trains:
            # A cost run trains and evaluates nothing, but the weights it builds (pretrained and
            # frozen, or random) change its trainable parameters, build time and memory.
            skip |= (_TRAINING_ONLY - _BUILD_FIELDS) | _EVALUATION_ONLY
        # Monte-Carlo dropout changes only the runs it evaluates, and those by T alone: a U-Net
        # run keeps its id whatever --mc-samples or --mc-models say.
        skip |= {"profile.mc_models"} if self.mc_samples else _MC_FIELDS
        return {k: v for k, v in _explicit(self.flat()).items() if k not in skip}

    @property
    def mc_samples(self) -> int:
        """T, this run's Monte-Carlo dropout passes per test batch; 0 when it has none.

        The profile's ``mc_samples`` where one of its ``mc_models`` globs matches the architecture
        or the model id (as ``--arch`` matches), else 0; always 0 for a classical segmenter and a cost run.
        """
        p = self.profile
        if not p.mc_samples or not self.trains:
            return 0
        named = matches_model(self.architecture, self.backbone, p.mc_models)
        return p.mc_samples if named else 0

    @property
    def trains(self) -> bool:
        """Whether this run trains and is evaluated: a network one of the profile's
        ``trained_models`` globs matches (by architecture or model id, as ``--arch`` matches).
        A network that is not is a cost run; a classical segmenter trains nothing."""
        if self.architecture == CLASSICAL:
            return False
        return matches_model(self.architecture, self.backbone, self.profile.trained_models)

    @property
    def evaluated(self) -> bool:
        """Whether this run is evaluated on the test split (every run but a cost run)."""
        return self.trains or self.architecture == CLASSICAL

    @property
    def config_hash(self) -> str:
        return _digest(self.identity(), 10)

    def context(self) -> dict[str, Any]:
        """The comparison context of this run: what every run ranked beside it must share.

        The dataset (its fingerprint), the harness version and every profile setting that can
        change a measured number, quality or cost; not the model, the seed, the device or where
        the data was found. Runs of one context may be ranked in one table; runs of two never
        are (docs/results-schema.md, "Comparison contexts").
        """
        # A field added later counts only where it differs from the default it implicitly had, as
        # in the identity: folders made before it existed keep their context.
        return {
            k: v for k, v in sorted(_explicit(self.flat()).items())
            if (k.startswith("profile.") and k not in _NOT_CONTEXT) or k in ("dataset_fingerprint", "harness_version")
        }

    @property
    def context_id(self) -> str:
        return context_id(self.context())

    @property
    def run_id(self) -> str:
        return f"{self.model}-s{self.seed}-{self.config_hash}"

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), sort_keys=True, indent=1)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> RunConfig:
        profile = dict(raw["profile"])
        timing = dict(profile["timing"])
        if "throughput_batches" in timing:  # a list in JSON
            timing["throughput_batches"] = tuple(timing["throughput_batches"])
        profile["timing"] = TimingSpec(**timing)
        profile["seeds"] = tuple(profile["seeds"])
        for name in ("mc_models", "trained_models", "models"):  # lists in JSON
            if name in profile:
                profile[name] = tuple(profile[name])
        return cls(**{**raw, "profile": Profile(**profile)})

    @classmethod
    def from_json(cls, text: str) -> RunConfig:
        return cls.from_dict(json.loads(text))


#: Flattened RunConfig fields that do not make a run another run: where the data was found, the
#: sweep's seed list, how many runs shared the machine (which every record states), the profile's
#: one-line description.
_NOT_IDENTITY = frozenset(
    {"data", "profile.seeds", "profile.jobs", "profile.description", "profile.models", "profile.companion"}
)

#: Profile fields only training reads: a classical segmenter's result does not depend on them.
_TRAINING_ONLY = frozenset(
    f"profile.{name}" for name in (
        "batch_size", "epochs", "steps_per_epoch", "val_subsplits", "weights", "freeze_encoder", "learning_rate",
        "augment", "shuffle_buffer", "precise_bn_batches", "val_images", "val_seed", "patience", "trained_models",
    )
)

#: Training settings that the model's build reads too: in a cost run's identity.
_BUILD_FIELDS = frozenset({"profile.weights", "profile.freeze_encoder"})

#: Profile fields only evaluation on the test split reads: a cost run's result does not depend on them.
_EVALUATION_ONLY = frozenset(
    {"profile.max_test_examples", "profile.gallery_size", "profile.mc_samples", "profile.mc_models"}
)

#: The speed mode (bench.config.modes): a classical segmenter computes in NumPy, in float32, without XLA.
_NETWORK_ONLY = frozenset({"profile.precision", "profile.xla", "profile.deterministic"})

#: Monte-Carlo dropout: in the identity of the runs it evaluates only (as T), since the other runs
#: measure the same deterministic network with or without it.
_MC_FIELDS = frozenset({"profile.mc_samples", "profile.mc_models"})

#: Profile fields that do not change what a run measures, so runs differing in them compare. The
#: Monte-Carlo settings add ``mc_*`` metrics to the runs they evaluate (each stating its T in
#: ``mc_samples``) and change no other number, so they do not split a comparison context.
_NOT_CONTEXT = (
    frozenset({"profile.seeds", "profile.jobs", "profile.description", "profile.data", "profile.models",
               "profile.companion"})
    | _MC_FIELDS
)



def record_context_id(record: dict[str, Any]) -> str:
    """The comparison context of a stored run, from its config (records of every harness version)."""
    try:
        return RunConfig.from_dict(record["config"]).context_id
    except (KeyError, TypeError, ValueError):
        return ""


def context_id(context: dict[str, Any]) -> str:
    """A short name of a comparison context (:meth:`RunConfig.context`)."""
    return _digest(context, 8)


def _digest(fields: dict[str, Any], length: int) -> str:
    blob = json.dumps(fields, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:length]

#: RunConfig fields added after the first stored results, with the default they had implicitly.
ADDED_FIELD_DEFAULTS: dict[str, Any] = {
    "replicas": 1,
    # Every run stored before the backend was a choice ran on TensorFlow.
    "backend": DEFAULT_BACKEND,
    # Speed modes. Every run stored before them ran in float32 with op determinism on, and so without XLA
    # on every device (Keras turns XLA off under op determinism), which is what ``xla="auto"``
    # resolves to whenever determinism is on: the defaults reproduce those runs exactly.
    "profile.precision": "float32",
    "profile.xla": "auto",
    "profile.deterministic": True,
    # Throughput at several batch sizes adds metrics only; a stored run is not redone for them.
    "profile.timing.throughput_batches": "1,8,32",
    # No Monte-Carlo dropout, as every run stored before it existed (see RunConfig.identity).
    "profile.mc_samples": 0,
    "profile.mc_models": "",
    # Validation, early stopping and cost runs: none of them, as every run stored before.
    "profile.val_images": 0,
    "profile.val_seed": 0,
    "profile.patience": 0,
    "profile.trained_models": "*",
}


def _explicit(flat: dict[str, Any]) -> dict[str, Any]:
    """``flat`` without the added fields still at the default they implicitly had (stored runs
    keep their identity and context)."""
    return {k: v for k, v in flat.items() if not (k in ADDED_FIELD_DEFAULTS and v == ADDED_FIELD_DEFAULTS[k])}


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


def steps_per_epoch(profile: Profile, train_size: int) -> int:
    """The profile's steps, or the chapter's ``train_size // batch`` (at least one); ``train_size``
    counts the images trained on (the validation split already carved out)."""
    if profile.steps_per_epoch is not None:
        return profile.steps_per_epoch
    return max(1, train_size // profile.batch_size)
