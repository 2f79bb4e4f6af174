"""Profiles: named, frozen sets of training and measuring settings for a whole sweep.

There is one base, :data:`QUICK` (the default profile: real data at 128 px on a short schedule),
and the other profiles are written as overrides of it, so a reader sees what makes ``smoke`` and
``full`` different and nothing else. Command-line overrides make another profile the same way
(:meth:`Profile.override`). Every profile, named or overridden, is checked in one place
(:func:`profile_problem`) when it is made.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from segmodels.shapes import input_size_problem

#: At most this many seeds in one sweep: each is a full training run of every model.
MAX_SEEDS = 100
#: At most this many Monte-Carlo dropout passes per test batch (Kendall et al. saw no gain past 50).
MAX_MC_SAMPLES = 1000

#: The speed modes a profile may ask for (applied by :mod:`bench.config.modes`).
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
XLA_SETTINGS = ("auto", "on", "off")


class ProfileError(ValueError):
    """A profile setting out of range; the message names the command-line option that sets it."""


@dataclass(frozen=True)
class TimingSpec:
    """How inference speed is measured (see :mod:`bench.measure.timing`).

    Attributes:
        warmup_calls: Untimed calls first (tracing, allocator warm-up).
        min_calls: At least this many timed batch-1 calls ...
        min_seconds: ... and at least this long, ...
        max_calls: ... but at most this many calls ...
        max_seconds: ... or this long, whichever comes first once the minimums are met.
        throughput_batch: The fixed larger batch for inference throughput (images/s).
        throughput_calls: Timed calls at that batch (after one warm-up call).
        throughput_batches: Batch sizes at which inference throughput is also measured, each
            ``throughput_calls`` timed calls after one warm-up call (metrics
            ``inference_throughput_b<N>``); on a GPU the largest batch that fits is searched for
            as well (``inference_max_batch``).
    """

    warmup_calls: int = 3
    min_calls: int = 20
    min_seconds: float = 2.0
    max_calls: int = 200
    max_seconds: float = 10.0
    throughput_batch: int = 16
    throughput_calls: int = 3
    throughput_batches: tuple[int, ...] = (1, 8, 32)


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
        val_subsplits: The chapter's ``VAL_SUBSPLITS``: validation used to run ``test_size // batch
            // val_subsplits`` steps of the *test* split after each epoch. Not read any more (the
            validation split is ``val_images``, carved from trainval); it stays so that stored runs
            keep their identity.
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
        precision: Keras dtype policy of the model: ``float32``, ``mixed_float16`` (loss scaling as
            Keras does it) or ``mixed_bfloat16``; the logits are float32 whatever the policy.
        xla: Compile training and inference with XLA: ``on``, ``off``, or ``auto`` (on for one GPU
            without op determinism; off on CPUs, where it trained 3.2x slower, and under op
            determinism: :func:`bench.config.modes.resolve_xla`).
        deterministic: TensorFlow's op determinism (``tf.config.experimental.enable_op_determinism``):
            the same seed gives the same numbers, at some cost in speed on a GPU.
        mc_samples: T, the stochastic passes of Monte-Carlo dropout evaluation (``--mc-samples``;
            0 = none), for the models ``mc_models`` names; seeded by the run's seed. Part of the
            identity of those runs only (:meth:`bench.config.run_config.RunConfig.mc_samples`).
        mc_models: Globs, each matched against the architecture name or the whole model id as
            ``--arch`` is (``--mc-models 'bayesian_segnet,fcn*'``): the models evaluated with
            Monte-Carlo dropout as well. A matched model without a dropout layer is evaluated
            without it, and its record says so (``notes``).
        val_images: Training images held out for validation (``--val-images``;
            :mod:`bench.data.split`), the same for every model and seed; 0 validates nothing.
            Validation never uses the test split.
        val_seed: The seed that chooses them (one per sweep, not the run's seed).
        patience: Early stopping (``--patience``): stop once the validation mIoU has not improved
            for this many epochs and restore the best epoch's weights, ``epochs`` being the cap;
            0 trains every epoch and keeps the last weights. Needs ``val_images``.
        models: The profile's matrix: the ``--arch`` globs a sweep selects when the command line
            names none (``--arch '*'`` selects every model). Which runs a sweep plans, never what a
            run measures: part of no run's identity or comparison context.
        companion: The profile whose sweep completes this one's (``quick``'s is ``costs``: the costs
            of the pairs it does not rank); ``nox -s bench`` runs both, ``python -m bench list``
            estimates both. Not part of any identity or context.
        trained_models: Globs as ``mc_models`` (``--trained-models``): the networks trained,
            evaluated and ranked. Every other network of the sweep is a *cost run*: built and
            measured for its size, FLOPs, speed and memory, never trained or evaluated, so it
            makes no accuracy claim. Classical segmenters train nothing and are always evaluated.
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
    precision: str = "float32"
    xla: str = "auto"
    deterministic: bool = True
    # The defaults are "no Monte-Carlo dropout": what every run did before these fields existed.
    mc_samples: int = 0
    mc_models: tuple[str, ...] = ()
    # The defaults are what every run did before these fields existed: no validation split (the
    # curves' validation, on the test split then, chose nothing), every epoch, every model trained.
    val_images: int = 0
    val_seed: int = 0
    patience: int = 0
    trained_models: tuple[str, ...] = ("*",)
    models: tuple[str, ...] = ("*",)
    companion: str = ""

    def __post_init__(self) -> None:
        problem = profile_problem(self)
        if problem:
            raise ProfileError(problem)

    def override(self, **changes: Any) -> Profile:
        """This profile with ``changes`` applied (validated like any profile)."""
        return dataclasses.replace(self, **changes)


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def profile_problem(p: Profile) -> str | None:
    """What is wrong with ``p``, named by the command-line option that sets it, or ``None``."""
    for name in ("batch_size", "epochs", "val_subsplits", "jobs"):
        value = getattr(p, name)
        if not isinstance(value, int) or value < 1:
            return f"{_flag(name)} must be a positive integer, got {value}"
    for name in ("steps_per_epoch", "max_test_examples"):
        value = getattr(p, name)
        if value is not None and (not isinstance(value, int) or value < 1):
            return f"{_flag(name)} must be a positive integer or unset, got {value}"
    for name in ("precise_bn_batches", "gallery_size", "val_images", "val_seed", "patience"):
        value = getattr(p, name)
        if not isinstance(value, int) or value < 0:
            return f"{_flag(name)} must be an integer >= 0, got {value}"
    size_problem = input_size_problem(p.image_size)
    if size_problem:
        return f"--image-size {size_problem}"
    if not p.seeds:
        return "--seeds must name at least one seed"
    if any(s < 0 for s in p.seeds):
        return f"--seeds must be non-negative, got {min(p.seeds)}"
    if len(p.seeds) > MAX_SEEDS:
        return (
            f"--seeds asks for {len(p.seeds)} seeds; at most {MAX_SEEDS} per sweep (each seed trains every "
            "model once): pass a smaller range"
        )
    if p.weights not in ("imagenet", "none"):
        return f"--weights must be 'imagenet' or 'none', got {p.weights!r}"
    if not p.learning_rate > 0:
        return f"learning_rate must be positive, got {p.learning_rate}"
    speed_problem = _speed_mode_problem(p)
    if speed_problem:
        return speed_problem
    if not isinstance(p.mc_samples, int) or not 0 <= p.mc_samples <= MAX_MC_SAMPLES:
        return f"--mc-samples must be an integer from 0 (no Monte-Carlo dropout) to {MAX_MC_SAMPLES}, got {p.mc_samples}"
    if not isinstance(p.mc_models, tuple) or not all(isinstance(g, str) and g.strip() for g in p.mc_models):
        return f"--mc-models must be comma-separated model globs, e.g. 'bayesian_segnet,fcn*', got {p.mc_models!r}"
    if p.patience and not p.val_images:
        return f"--patience {p.patience} needs a validation split to watch: pass --val-images N (N > 0) or --patience 0"
    if not isinstance(p.models, tuple) or not p.models or not all(isinstance(g, str) and g.strip() for g in p.models):
        return f"models must be non-empty --arch globs, got {p.models!r}"
    if not isinstance(p.trained_models, tuple) or not all(
        isinstance(g, str) and g.strip() for g in p.trained_models
    ):
        return f"--trained-models must be comma-separated model globs, e.g. '*-mobilenetv2', got {p.trained_models!r}"
    return None


def _speed_mode_problem(p: Profile) -> str | None:
    """Combinations of precision, XLA and determinism that cannot run as asked, refused before a run starts."""

    if p.precision not in PRECISIONS:
        return f"--precision must be one of {', '.join(PRECISIONS)}, got {p.precision!r}"
    if p.xla not in XLA_SETTINGS:
        return f"--xla must be one of {', '.join(XLA_SETTINGS)}, got {p.xla!r}"
    if p.xla == "on" and p.deterministic:
        return (
            "--xla on needs --no-deterministic: Keras 3 compiles nothing with XLA while TensorFlow's op determinism "
            "is on (keras model_supports_jit), so the run would silently train without XLA"
        )
    if p.xla == "on" and p.run_eagerly:
        return f"--xla on cannot apply to the {p.name} profile, which runs eagerly (nothing is compiled)"
    batches = p.timing.throughput_batches
    if not batches or any(not isinstance(b, int) or b < 1 for b in batches):
        return f"timing.throughput_batches must be positive integers, got {batches}"
    return None


#: The architectures the default ranks: the chapter's, on the tutorial's MobileNetV2, FCN by its
#: best variant (README, "Why the default ranks these pairs"). FCN-16s, FCN-32s, FPN and every
#: ResNet pair are costed by the companion profile; ``--arch`` adds any MobileNetV2 pair to the
#: same ranking.
RANKED_ARCHITECTURES = ("unet", "fcn8s", "segnet", "bayesian_segnet", "deeplabv3")

#: The base profile and the default: real photos where there are any, at 96 px, every ranked
#: network trained to its plateau on 3 seeds beside the classical methods, sized for <= 60 min of
#: the whole matrix on 2 CPU cores.
QUICK = Profile(
    name="quick",
    description="best real data at 96 px: five of the chapter's architectures on MobileNetV2 trained to their "
                "plateau on 3 seeds, beside the classical methods; sized for <= 60 min on 2 CPU cores",
    data="auto",
    image_size=96,
    batch_size=16,
    epochs=25,
    steps_per_epoch=None,
    val_subsplits=5,
    max_test_examples=None,
    seeds=(0, 1, 2),
    weights="imagenet",
    freeze_encoder=True,
    precise_bn_batches=3,
    gallery_size=4,
    timing=TimingSpec(
        warmup_calls=2, min_calls=10, min_seconds=1.0, max_calls=50, max_seconds=3.0,
        throughput_batch=8, throughput_calls=1,
    ),
    mc_samples=8,
    mc_models=("bayesian_segnet",),
    val_images=16,
    patience=4,
    trained_models=("*-mobilenetv2",),
    models=(*(f"{a}-mobilenetv2" for a in RANKED_ARCHITECTURES), "classical"),
    companion="costs",
)

#: The quick profile's companion: every network built and timed at its settings, none trained.
COSTS = QUICK.override(
    name="costs",
    description="every pair built and timed at the quick profile's settings, none trained: the costs of every "
                "network (and the classical methods), no accuracy claim for a network",
    seeds=(0,),
    trained_models=(),
    models=("*",),
    companion="",
)

#: Does everything work: synthetic data, two steps, eager (CI).
SMOKE = QUICK.override(
    name="smoke",
    description="synthetic data, 64 px, 2 epochs of 2 training steps: does everything work (CI)",
    data="synthetic",
    image_size=64,
    batch_size=4,
    max_test_examples=8,
    weights="none",
    freeze_encoder=False,
    precise_bn_batches=2,
    timing=TimingSpec(
        warmup_calls=1, min_calls=5, min_seconds=0.2, max_calls=20, max_seconds=1.0,
        throughput_batch=2, throughput_calls=1, throughput_batches=(1, 2),
    ),
    run_eagerly=True,
    jobs=2,
    mc_samples=2,
    seeds=(0,),
    # Two epochs of two steps: the validation, early stopping and the steady-state throughput (the
    # steps after each epoch's first) are all exercised.
    epochs=2,
    steps_per_epoch=2,
    val_images=8,
    patience=1,
    trained_models=("*",),
    models=("*",),
    companion="",
)

#: The chapter's protocol, for GPUs.
FULL = QUICK.override(
    name="full",
    description="the chapter's protocol: 128 px, batch 64, at most 20 epochs to a plateau, pretrained encoder, "
                "every pair, 3 seeds (GPU)",
    image_size=128,
    batch_size=64,
    epochs=20,
    steps_per_epoch=None,
    max_test_examples=None,
    seeds=(0, 1, 2),
    precise_bn_batches=30,
    timing=TimingSpec(throughput_batch=32, throughput_calls=5),
    mc_samples=50,  # Kendall et al.: the mIoU stops improving at 40-50 samples
    val_images=368,  # a tenth of the 3,680 trainval images
    patience=5,
    trained_models=("*",),
    models=("*",),
    companion="",
)

PROFILES: dict[str, Profile] = {p.name: p for p in (SMOKE, QUICK, COSTS, FULL)}
