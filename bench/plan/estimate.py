"""How long a run will take: stored wall times where there are any, else a cost model.

The estimate printed before a sweep prefers what this machine already measured: the median wall
time of stored successful runs of the same model, profile and image size (seeds and small
overrides aside). Models never run here get a cost model calibrated on this project's 2-core CPU
reference machine; it is a guide, and says so. What the cost model knows of each architecture and
backbone is a hint in its registry entry (``segmodels.registry.ArchitectureCost`` and
``BackboneCost``, set beside the model's code); a model that gives none, or a name the registry
does not know, gets those classes' defaults.
"""

from __future__ import annotations

import functools
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bench.clock import format_duration
from bench.config.backends import local_gpus
from bench.config.modes import CPU_TRAIN_TIME, GPU_TRAIN_TIME, resolve_xla
from bench.config.run_config import ADDED_FIELD_DEFAULTS, CLASSICAL, RunConfig, steps_per_epoch
from segmodels.registry import (
    ArchitectureCost,
    BackboneCost,
    UnknownNameError,
    get_architecture,
    get_backbone,
)

if TYPE_CHECKING:
    from bench.config.profiles import Profile
    from bench.plan.matrix import DataChoice
    from bench.store.results import ResultsStore

INFERENCE_SPEEDUP = 3.0  # a forward pass costs about a third of a training step
#: The share of a backbone's fixed cost that a cost run pays: the fixed costs are calibrated on runs
#: that train (the training step's trace and the optimiser's build are most of them), and a cost run
#: builds, traces inference and times. Fitted on the committed costs reference (32 cost runs: 793 s
#: measured, 862 s estimated with this share, 2,255 s with the whole fixed cost).
COST_RUN_FIXED_SHARE = 0.25


def cost_hints(cfg: RunConfig) -> tuple[ArchitectureCost, BackboneCost]:
    """The registry's cost hints for ``cfg``'s architecture and backbone; defaults where it has none."""
    try:
        architecture = get_architecture(cfg.architecture).cost
    except UnknownNameError:  # e.g. "classical": the cost model knows networks only
        architecture = ArchitectureCost()
    try:
        backbone = get_backbone(cfg.backbone).cost
    except UnknownNameError:
        backbone = BackboneCost()
    return architecture, backbone


@dataclass(frozen=True)
class Estimate:
    """Seconds for one run, and where the figure came from (``measured`` or ``model``)."""

    seconds: float
    source: str


def _similar(cfg: RunConfig, record: dict[str, Any]) -> bool:
    c = record.get("config_flat", {})
    return (
        record.get("status") == "ok"
        and record.get("model") == cfg.model
        and record.get("profile") == cfg.profile.name
        and c.get("profile.image_size") == cfg.profile.image_size
        and c.get("profile.epochs") == cfg.profile.epochs
        and c.get("profile.steps_per_epoch") == cfg.profile.steps_per_epoch
        and c.get("profile.batch_size") == cfg.profile.batch_size
        # validation and early stopping change how long training lasts; a cost run trains nothing
        and all(c.get(k, ADDED_FIELD_DEFAULTS[k]) == getattr(cfg.profile, k.removeprefix("profile."))
                for k in ("profile.val_images", "profile.patience"))
        and bool(record.get("cost_only", False)) == (not cfg.evaluated)
        # the speed mode (records from before it existed ran in the defaults)
        and all(c.get(k, ADDED_FIELD_DEFAULTS[k]) == getattr(cfg.profile, k.removeprefix("profile."))
                for k in ("profile.precision", "profile.xla", "profile.deterministic"))
    )


def estimate_run(cfg: RunConfig, records: Iterable[dict[str, Any]], train_size: int, test_size: int) -> Estimate:
    """The expected wall time of ``cfg``; ``records`` are the stored records of this profile."""
    measured = [r["wall_time_s"] for r in records if _similar(cfg, r) and r.get("wall_time_s")]
    if measured:
        return Estimate(float(statistics.median(measured)), "measured")
    return Estimate(model_cost(cfg, train_size, test_size), "model")


#: Epochs a run with early stopping is expected to train before its plateau, in patiences: about
#: its best epoch, then the patience it waits (unet-mobilenetv2 on the 96 training photos of the
#: sample: best epoch 11, stopped at 16 with patience 5). A guide; measured runs replace it.
EXPECTED_EPOCHS_PER_PATIENCE = 3.2


def expected_epochs(profile: Profile) -> float:
    """Epochs a trained run of ``profile`` is expected to run: all of them without early stopping,
    else :data:`EXPECTED_EPOCHS_PER_PATIENCE` patiences, at most the cap."""
    if not profile.patience:
        return float(profile.epochs)
    return min(float(profile.epochs), EXPECTED_EPOCHS_PER_PATIENCE * profile.patience)


def model_cost(cfg: RunConfig, train_size: int, test_size: int) -> float:
    """The cost model: fixed costs plus images trained and inferred at the calibrated speeds."""
    p = cfg.profile
    arch, backbone = cost_hints(cfg)
    scale = (p.image_size / 128) ** 2
    train_ips = backbone.train_images_per_s_128 / arch.relative_train_cost / scale / mode_time_factor(p)
    infer_ips = train_ips * INFERENCE_SPEEDUP
    timed = (1 + p.timing.throughput_calls) * (p.timing.throughput_batch + sum(p.timing.throughput_batches))
    if cfg.trains:
        tested = min(test_size, p.max_test_examples or test_size)
        epochs = expected_epochs(p)
        val_images = p.val_images if 0 < p.val_images < train_size else 0
        trained = epochs * steps_per_epoch(p, train_size - val_images) * p.batch_size
        # Precise BN runs before every validation where there is one, else once before the test.
        bn_passes = epochs if val_images else 1
        inferred = (
            epochs * val_images + bn_passes * p.precise_bn_batches * p.batch_size + tested + p.gallery_size + timed
            + cfg.mc_samples * tested  # Monte-Carlo dropout: T passes over the test images
        )
    else:  # a cost run: built and timed only
        trained, inferred = 0.0, timed
    latency = min(p.timing.max_seconds, max(p.timing.min_seconds, (p.timing.min_calls + p.timing.warmup_calls) / infer_ips))
    fixed = backbone.fixed_s * (0.5 if p.image_size <= 64 else 1.0)
    if arch.heavy_head:
        fixed += backbone.heavy_head_extra_s
    if not cfg.trains:
        fixed *= COST_RUN_FIXED_SHARE
    if mode_xla(p):
        fixed += XLA_COMPILE_S
    return fixed + trained / train_ips + inferred / infer_ips + latency


@functools.lru_cache(maxsize=1)
def on_accelerator() -> bool:
    """Whether this machine has a GPU (the sweep's runs then train on it)."""
    return bool(local_gpus())


#: What compiling with XLA adds to a run: the first training step took 20-23 s instead of 9 s, and
#: each new inference batch size compiles again (U-Net MobileNetV2, 128 px, 2-core reference CPU).
XLA_COMPILE_S = 20.0


def _may_compile(profile: Any) -> bool:
    """Whether XLA can be on for ``profile`` on some device (``auto`` is off under determinism)."""
    return profile.xla == "on" or (profile.xla == "auto" and not profile.deterministic and not profile.run_eagerly)


def mode_xla(profile: Any, accelerator: bool | None = None) -> bool:
    """Whether the profile's runs will compile with XLA on this machine (as the worker resolves it)."""

    if not _may_compile(profile):
        return False  # off on every device: no need to ask for one
    gpu = on_accelerator() if accelerator is None else accelerator
    return resolve_xla(profile.xla, deterministic=profile.deterministic, accelerator=gpu, eager=profile.run_eagerly)[0]


def mode_time_factor(profile: Any, accelerator: bool | None = None) -> float:
    """How much longer than float32 without XLA the profile's speed mode trains, on this device.

    CPU: measured on the reference machine (XLA 3.2x slower, float16 3.9x, bfloat16 no change); GPU:
    published figures as priors (mixed precision ~2.1x faster, XLA ~1.2x; README "Speed"),
    never measured here. ``xla=auto`` is resolved as the worker will (:mod:`bench.config.modes`).
    """

    if profile.precision == "float32" and not _may_compile(profile):
        return 1.0  # the mode the cost model was calibrated in, on every device: no need to ask for one
    gpu = on_accelerator() if accelerator is None else accelerator
    factors = GPU_TRAIN_TIME if gpu else CPU_TRAIN_TIME
    return factors.get(profile.precision, 1.0) * (factors["xla"] if mode_xla(profile, gpu) else 1.0)


def describe_mode(profile: Any, accelerator: bool | None = None) -> str:
    """What the cost model assumed of the speed mode (a clause of the estimate's line), or ``""``."""
    factor = mode_time_factor(profile, accelerator)
    if factor == 1.0:
        return ""
    gpu = on_accelerator() if accelerator is None else accelerator
    basis = "published GPU figures as priors, not measured here" if gpu else "measured on the 2-core reference CPU"
    compile_note = f", +{XLA_COMPILE_S:.0f} s compiling" if mode_xla(profile, gpu) else ""
    return (
        f"; the cost model's training time x{factor:.2f}{compile_note} for precision {profile.precision}, "
        f"XLA {profile.xla} ({basis})"
    )


# Peak host memory (MB) of a run never measured here: the backbone's hint for the reference size of
# 4 images of 64x64 (BackboneCost.peak_mb, or peak_mb_heavy_head under a heavy head), plus what
# activations add per image pixel of a batch beyond that (fitted between the smoke and quick
# sweeps: deeplabv3-resnet152 2498 MB -> 4280 MB for 8 x 128x128).
PEAK_MB_CLASSICAL = 850.0
PEAK_REF_PIXELS = 4 * 64 * 64
ACTIVATION_MB_PER_PIXEL = 0.0155
PEAK_MARGIN = 1.1  # the peaks of one model vary by a few percent between runs


def peak_memory_mb(cfg: RunConfig, records: Iterable[dict[str, Any]]) -> float:
    """The host memory ``cfg`` is expected to peak at, with a margin: the largest stored peak of
    the same model at the same image size and batch, else the registry's hints (see above)."""

    p = cfg.profile
    measured = [
        m["value"]
        for r in records
        if r.get("status") == "ok" and r.get("model") == cfg.model
        # a cost run's peak holds no training: it says nothing of a run that trains, and back
        and bool(r.get("cost_only", False)) == (not cfg.evaluated)
        and r.get("config_flat", {}).get("profile.image_size") == p.image_size
        and r.get("config_flat", {}).get("profile.batch_size") == p.batch_size
        for m in r.get("metrics", [])
        if m.get("metric") == "peak_rss_mb"
    ]
    if measured:
        return max(measured) * PEAK_MARGIN
    if cfg.architecture == CLASSICAL:
        return PEAK_MB_CLASSICAL * PEAK_MARGIN
    arch, backbone = cost_hints(cfg)
    base = backbone.peak_mb_heavy_head if arch.heavy_head else backbone.peak_mb
    pixels = p.batch_size * p.image_size**2
    return (base + ACTIVATION_MB_PER_PIXEL * max(0, pixels - PEAK_REF_PIXELS)) * PEAK_MARGIN


# === A sweep's runs ===


# A classical run never measured here: process start, imports and data (~4 s measured at 64 px),
# then about 20 ms per image at 128 px for each of evaluation, latency and throughput calls.
CLASSICAL_FIXED_S = 5.0
CLASSICAL_S_PER_IMAGE_128 = 0.02


def _classical_cost(cfg: RunConfig, test_size: int) -> float:
    p = cfg.profile
    images = min(test_size, p.max_test_examples or test_size) + p.gallery_size
    images += (1 + p.timing.throughput_calls) * (p.timing.throughput_batch + sum(p.timing.throughput_batches))
    images += p.timing.warmup_calls
    per_image = CLASSICAL_S_PER_IMAGE_128 * (p.image_size / 128) ** 2
    latency = min(p.timing.max_seconds, max(p.timing.min_seconds, p.timing.min_calls * per_image))
    return CLASSICAL_FIXED_S + images * per_image + latency


def estimates(runs: Sequence[RunConfig], store: ResultsStore, data: DataChoice) -> dict[str, Estimate]:
    """The expected time of each run of ``runs``, by run id."""

    records = store.records()
    train_size = int(data.provenance.get("train_size") or 0)
    test_size = int(data.provenance.get("test_size") or 0)
    out = {}
    for cfg in runs:
        est = estimate_run(cfg, records, train_size, test_size)
        if cfg.architecture == CLASSICAL and est.source == "model":  # the cost model knows training only
            est = Estimate(_classical_cost(cfg, test_size), "model")
        out[cfg.run_id] = est
    return out


def describe_estimate(todo: Sequence[RunConfig], est: dict[str, Estimate], slots: int = 1) -> str:
    """The expected time of ``todo`` and what the figure rests on; with ``slots`` runs at a time,
    the run time spread over them (an optimistic bound: memory may keep some runs apart)."""
    total = sum(est[c.run_id].seconds for c in todo)
    measured = sum(1 for c in todo if est[c.run_id].source == "measured")
    basis = (
        f"{measured} from stored wall times of the same runs, {len(todo) - measured} from the cost model"
        if measured else "cost model; no stored run of these models yet"
    )
    if todo and measured < len(todo):
        basis += describe_mode(todo[0].profile)
    if slots > 1 and len(todo) > 1:
        return f"~{format_duration(total / min(slots, len(todo)))} with {slots} runs at a time, ~{format_duration(total)} of run time ({basis})"
    return f"~{format_duration(total)} ({basis})"


#: The parts of a sweep, in the order the plan runs them (:func:`bench.plan.matrix.plan`).
PARTS = {
    "classical": "classical methods (evaluated, nothing trained)",
    "trained": "networks trained and ranked",
    "cost": "cost runs (built and timed, not trained: no accuracy claim)",
}


def run_part(cfg: RunConfig) -> str:
    """The part of the sweep ``cfg`` belongs to: a key of :data:`PARTS`."""
    if cfg.architecture == CLASSICAL:
        return "classical"
    return "trained" if cfg.trains else "cost"


def describe_parts(todo: Sequence[RunConfig], est: dict[str, Estimate], slots: int = 1) -> list[str]:
    """One line per part of ``todo`` that has runs: how many, and their expected time."""
    lines = []
    for part, words in PARTS.items():
        runs = [c for c in todo if run_part(c) == part]
        if runs:
            lines.append(f"{words}: {len(runs)} run{'s' * (len(runs) != 1)}, {describe_estimate(runs, est, slots)}")
    return lines
