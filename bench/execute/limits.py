"""What a sweep may ask of this machine: each run's expected peak memory against the memory there is.

Checked before anything is loaded or stored, so that an image size or a batch no run could survive
is a one-line refusal naming the largest value that fits, not a MemoryError an hour in. The
expected peak is the estimate's (:func:`bench.plan.estimate.peak_memory_mb`), and never less than what
one batch of inputs, logits and labels takes in float32, which no model, learned or classical,
can do without.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from bench.config.run_config import RunConfig
from bench.plan.estimate import peak_memory_mb

# Per pixel of a batch: the float32 RGB image, the float32 logits of the three classes, the label.
INPUT_BYTES_PER_PIXEL = 4 * (3 + 3 + 1)
IMAGE_STEP = 32  # image sizes are multiples of 32 (segmodels.shapes)


def machine_memory_mb() -> float:
    """The host memory of this machine (all of it: what is free changes while a sweep runs)."""
    import psutil

    return psutil.virtual_memory().total / 2**20


def run_memory_mb(cfg: RunConfig, records: Iterable[dict[str, Any]]) -> float:
    """The host memory ``cfg`` is expected to peak at (MB), at least one batch of its inputs."""
    p = cfg.profile
    floor = p.batch_size * p.image_size**2 * INPUT_BYTES_PER_PIXEL / 2**20
    return max(peak_memory_mb(cfg, records), floor)


def memory_problem(
    runs: Sequence[RunConfig], records: Sequence[dict[str, Any]], memory_mb: float | None = None
) -> str | None:
    """Why a run of ``runs`` cannot fit in this machine's memory, with the largest image size and
    batch that would, or ``None`` when every run fits.

    Args:
        runs: The planned runs (one profile).
        records: The stored records (a peak measured at the same size and batch is the estimate).
        memory_mb: The memory to fit in; the machine's by default.
    """
    if not runs:
        return None
    memory_mb = machine_memory_mb() if memory_mb is None else memory_mb
    need = {cfg.run_id: run_memory_mb(cfg, records) for cfg in runs}
    worst = max(runs, key=lambda cfg: need[cfg.run_id])
    if need[worst.run_id] <= memory_mb:
        return None
    p = worst.profile

    def fits(**change: int) -> bool:
        return all(run_memory_mb(_with(cfg, **change), records) <= memory_mb for cfg in runs)

    size = _largest(IMAGE_STEP, p.image_size - IMAGE_STEP, IMAGE_STEP, lambda s: fits(image_size=s))
    batch = _largest(1, p.batch_size - 1, 1, lambda b: fits(batch_size=b))
    ways = [f"--image-size {size}" if size else "", f"--batch-size {batch}" if batch else ""]
    way = " or ".join(w for w in ways if w)
    fix = (
        f"the largest that fits is {way}" if way
        else f"no image size or batch fits: leave {worst.model} out of the sweep with --arch/--backbone"
    )
    return (
        f"--image-size {p.image_size} with --batch-size {p.batch_size}: a run of {worst.model} is expected to need "
        f"about {_gb(need[worst.run_id])} of memory, more than the {_gb(memory_mb)} of this machine; {fix}."
    )


def _with(cfg: RunConfig, **change: int) -> RunConfig:
    return dataclasses.replace(cfg, profile=dataclasses.replace(cfg.profile, **change))


def _largest(low: int, high: int, step: int, fits: Callable[[int], bool]) -> int | None:
    """The largest multiple of ``step`` in [low, high] that ``fits`` (monotone: what fits, fits
    smaller), or ``None``."""
    lo, hi = low // step, high // step
    if hi < lo or not fits(lo * step):
        return None
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if fits(mid * step) else (lo, mid - 1)
    return lo * step


def _gb(mb: float) -> str:
    return f"{mb / 1024:.1f} GB" if mb >= 1024 else f"{mb:.0f} MB"
