"""The cost model against what the committed references measured."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from bench.config.run_config import RunConfig
from bench.plan.estimate import model_cost

REPO = Path(__file__).resolve().parents[2]


def _stored(profile: str, *, trained: bool) -> list[tuple[RunConfig, dict]]:
    found = []
    for path in sorted((REPO / "results" / profile / "runs").glob("*/record.json")):
        record = json.loads(path.read_text())
        cfg = RunConfig.from_dict(record["config"])
        if record["status"] == "ok" and cfg.architecture != "classical" and cfg.trains == trained:
            found.append((cfg, record))
    return found


def test_cost_runs_are_estimated_near_what_the_costs_reference_took() -> None:
    """`python -m bench list` of the costs companion: the 32 cost runs' estimate within 25% of the
    wall times the committed reference stored (a cost run trains nothing: no training step's trace)."""
    runs = _stored("costs", trained=False)
    assert len(runs) == 32
    sizes = {(r["env"]["dataset_train_size"], r["env"]["dataset_test_size"]) for _, r in runs}
    ((train_size, test_size),) = sizes
    estimated = sum(model_cost(cfg, int(train_size), int(test_size)) for cfg, _ in runs)
    measured = sum(r["wall_time_s"] for _, r in runs)
    assert estimated == pytest.approx(measured, rel=0.25)


def test_a_cost_run_is_estimated_cheaper_than_the_run_that_trains_it() -> None:
    (cfg, _), *_ = _stored("quick", trained=True)
    costed = dataclasses.replace(cfg, profile=dataclasses.replace(cfg.profile, trained_models=()))
    assert not costed.trains
    assert model_cost(costed, 96, 98) < model_cost(cfg, 96, 98) / 3
