"""How long a run will take: stored wall times where there are any, else a cost model.

The estimate printed before a sweep prefers what this machine already measured: the median wall
time of stored successful runs of the same model, profile and image size (seeds and small
overrides aside). Models never run here get a cost model calibrated on this project's 2-core CPU
reference machine (see the constants); it is a guide, and says so.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from bench.config import RunConfig, steps_per_epoch, validation_steps

# Calibrated on the reference machine (2 CPU cores, no GPU), 128 px, from `--profile quick` runs:
# training images/s of U-Net on each backbone, and each architecture's cost relative to U-Net.
TRAIN_IMAGES_PER_S_128 = {"mobilenetv2": 25.0, "resnet50": 4.5, "resnet101": 2.6, "resnet152": 1.8}
ARCH_COST = {
    "unet": 1.0, "fcn32s": 1.3, "fcn16s": 1.3, "fcn8s": 1.3, "segnet": 1.5, "bayesian_segnet": 1.5,
    "deeplabv3": 2.2, "fpn": 0.8,
}
# Fixed costs per run, seconds: process start and imports, data, model build and FLOP count,
# tracing of the train, validation, precise-BN and predict functions (most of a quick run).
FIXED_S = {"mobilenetv2": 28.0, "resnet50": 40.0, "resnet101": 55.0, "resnet152": 70.0}
HEAVY_ARCHS = {"fcn32s", "fcn16s", "fcn8s"}  # the 7x7x4096 fc6 layer: 0.26-0.41 G parameters
# Building, initialising and updating those parameters (measured: FCN-ResNet50 ~95 s a quick run).
HEAVY_EXTRA_S = {"mobilenetv2": 12.0, "resnet50": 35.0, "resnet101": 35.0, "resnet152": 35.0}
INFERENCE_SPEEDUP = 3.0  # a forward pass costs about a third of a training step


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
    )


def estimate_run(cfg: RunConfig, records: Iterable[dict[str, Any]], train_size: int, test_size: int) -> Estimate:
    """The expected wall time of ``cfg``; ``records`` are the stored records of this profile."""
    measured = [r["wall_time_s"] for r in records if _similar(cfg, r) and r.get("wall_time_s")]
    if measured:
        return Estimate(float(statistics.median(measured)), "measured")
    return Estimate(model_cost(cfg, train_size, test_size), "model")


def model_cost(cfg: RunConfig, train_size: int, test_size: int) -> float:
    """The cost model: fixed costs plus images trained and inferred at the calibrated speeds."""
    p = cfg.profile
    scale = (p.image_size / 128) ** 2
    train_ips = TRAIN_IMAGES_PER_S_128.get(cfg.backbone, 2.0) / ARCH_COST.get(cfg.architecture, 1.5) / scale
    infer_ips = train_ips * INFERENCE_SPEEDUP
    tested = min(test_size, p.max_test_examples or test_size)
    trained = p.epochs * steps_per_epoch(p, train_size) * p.batch_size
    inferred = (
        p.epochs * validation_steps(p, tested) * p.batch_size
        + p.precise_bn_batches * p.batch_size
        + tested
        + p.gallery_size
        + (1 + p.timing.throughput_calls) * p.timing.throughput_batch
    )
    latency = min(p.timing.max_seconds, max(p.timing.min_seconds, (p.timing.min_calls + p.timing.warmup_calls) / infer_ips))
    fixed = FIXED_S.get(cfg.backbone, 60.0) * (0.5 if p.image_size <= 64 else 1.0)
    if cfg.architecture in HEAVY_ARCHS:
        fixed += HEAVY_EXTRA_S.get(cfg.backbone, 35.0)
    return fixed + trained / train_ips + inferred / infer_ips + latency


def format_duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
