"""What a sweep may ask of this machine (bench.execute.limits): refused before anything runs, with the
largest image size and batch that fit."""

from __future__ import annotations

import dataclasses
import re

from bench.config.profiles import PROFILES
from bench.config.run_config import RunConfig
from bench.execute.limits import memory_problem, run_memory_mb


def _cfg(model: str, **profile: int) -> RunConfig:
    architecture, backbone = model.split("-")
    return RunConfig(architecture, backbone, 0, dataclasses.replace(PROFILES["quick"], **profile), "synthetic", "f" * 12)


def test_runs_that_fit_are_not_refused() -> None:
    runs = [_cfg("unet-mobilenetv2"), _cfg("classical-otsu")]
    assert memory_problem(runs, [], memory_mb=64 * 1024) is None


def test_the_largest_image_size_and_batch_named_do_fit_and_one_step_more_does_not() -> None:
    runs = [_cfg("unet-mobilenetv2", image_size=512, batch_size=8), _cfg("classical-otsu", image_size=512, batch_size=8)]
    memory = 8 * 1024.0
    problem = memory_problem(runs, [], memory_mb=memory)
    assert problem is not None and "--image-size 512 with --batch-size 8: a run of unet-mobilenetv2" in problem
    size, batch = map(int, re.search(r"the largest that fits is --image-size (\d+) or --batch-size (\d+)\.$", problem).groups())
    assert size % 32 == 0 and size < 512 and 1 <= batch < 8
    fits = lambda **c: all(run_memory_mb(dataclasses.replace(r, profile=dataclasses.replace(r.profile, **c)), []) <= memory for r in runs)  # noqa: E731
    assert fits(image_size=size) and not fits(image_size=size + 32)
    assert fits(batch_size=batch) and not fits(batch_size=batch + 1)


def test_a_classical_run_needs_at_least_its_inputs() -> None:
    """The classical estimate is one constant; 100000 px images once passed it and died allocating 112 GiB."""
    huge = _cfg("classical-otsu", image_size=100000, batch_size=1)
    assert run_memory_mb(huge, []) > 100000**2 * 3 * 4 / 2**20
    problem = memory_problem([huge], [], memory_mb=16 * 1024)
    assert problem is not None and "the largest that fits is --image-size" in problem and "--batch-size" not in problem.split("is ")[-1]


def test_a_model_that_fits_at_no_size_is_named_with_the_way_out() -> None:
    problem = memory_problem([_cfg("fcn8s-resnet50", image_size=64, batch_size=4)], [], memory_mb=1024)
    assert problem is not None and "no image size or batch fits: leave fcn8s-resnet50 out of the sweep" in problem
