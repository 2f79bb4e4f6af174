"""A run's record: the one dict every stored run has, ok or failed, local or Ray.

:class:`Record` declares every key a record may hold, with its type and who writes it; nothing
else writes a key it does not declare (tests/store/test_record.py reads the code for it, and
checks docs/results-schema.md's table of them). :func:`new_record` is the only constructor: the
worker fills in what it measured, and a run that ended without writing its own record (killed,
timed out, lost by Ray) gets :func:`failed_record`, which is a new record with the reason.
:func:`finalize` then stamps what only the sweep knows. ``record.json`` is the source of truth the
CSVs are rebuilt from.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any, TypedDict

from bench.clock import utc_now
from bench.config.run_config import RunConfig
from bench.store.results import HISTORY_COLUMNS, RECORD, RUN_HISTORY, RUN_KEY, atomic_write_text

#: ``stop_reason``: the validation mIoU had not improved for ``patience`` epochs.
STOP_PLATEAU = "plateau"
#: ``stop_reason``: early stopping was on and the epoch cap came first: the run was still improving.
STOP_CAP_STILL_IMPROVING = "cap_still_improving"
#: ``stop_reason``: no early stopping; every epoch of the schedule was trained.
STOP_ALL_EPOCHS = "all_epochs"


class MetricRow(TypedDict):
    """One row of a record's tidy ``metrics`` list (and of metrics.csv)."""

    metric: str
    value: float
    unit: str


class Record(TypedDict, total=False):
    """Every key of ``record.json``. The first block is what :func:`new_record` writes for every
    run; the rest is written where a run has it (the module that writes it in brackets)."""

    # --- every run (new_record) ---
    run_id: str
    model: str
    architecture: str
    backbone: str
    seed: int
    profile: str
    dataset: str  # "synthetic" or "oxford_iiit_pet", once the worker loaded it
    status: str  # "ok" or "failed"
    error: str  # a failed run's one line
    weights: str  # "none", "imagenet" or the random-init fallback's label
    family: str  # "deep" or "classical"
    executor: str  # "local" or "ray" (finalize)
    host: str
    wall_time_s: float | None  # the worker's own time (finalize)
    started_at: str
    finished_at: str | None
    env: dict[str, Any]  # results.ENV_COLUMNS plus dataset_provenance (measure.envinfo)
    config: dict[str, Any]  # RunConfig.as_dict(): the run's identity is recomputed from it
    config_flat: dict[str, Any]
    metrics: list[MetricRow]
    history: list[dict[str, Any]]  # one row per epoch, results.HISTORY_COLUMNS
    notes: list[str]  # what a reader must know about this run, in sentences
    cost_only: bool  # built and timed, never trained or evaluated
    stop_reason: str  # STOP_PLATEAU, STOP_CAP_STILL_IMPROVING, STOP_ALL_EPOCHS or "" (untrained)
    # --- the speed mode it really ran in (config.modes.Mode.fields, measure.run) ---
    precision: str
    xla: str  # "on" or "off"
    deterministic: bool
    mode_note: str
    # --- the model (measure.build, measure.run) ---
    frozen_encoder: bool
    classical_family: str  # "edge" or "region"
    classical_description: str
    replica_devices: list[str]  # with --gpus-per-run above 1
    # --- training (measure.run) ---
    validation_split: dict[str, Any]  # data.split.ValidationSplit.as_dict
    training_stop: dict[str, Any]  # measure.run.training_stop
    precise_bn: str  # "before every validation" or "before the test"
    precise_bn_layers: int
    # --- evaluation (measure.run) ---
    confusion_matrix: list[list[int]]  # rows: true class
    boundary_width_px: int
    mc_dropout: dict[str, Any]  # samples, seed, dropout_layers
    # --- timing (measure.run) ---
    latency_calls: int
    max_batch_note: str
    # --- the worker and the executors ---
    traceback: str  # a failed run's (execute.worker)
    worker_time_s: float  # (execute.worker)
    concurrent_runs: int  # runs executing at once when it ran (execute.local)
    ray: dict[str, Any]  # task_options, since_submitted_s (execute.ray)


#: Every key a record may hold, in the order :class:`Record` declares them.
RECORD_FIELDS: tuple[str, ...] = tuple(Record.__annotations__)


def new_record(cfg: RunConfig) -> Record:
    """A record of ``cfg`` with every field the tables need, ``failed`` until a worker says ``ok``."""
    return {
        "run_id": cfg.run_id,
        "model": cfg.model,
        "architecture": cfg.architecture,
        "backbone": cfg.backbone,
        "seed": cfg.seed,
        "profile": cfg.profile.name,
        "dataset": "",
        "status": "failed",
        "error": "",
        "weights": "",
        "family": "deep",
        "executor": "",
        "host": socket.gethostname(),
        "wall_time_s": None,
        "started_at": utc_now(),
        "finished_at": None,
        "env": {},
        "config": cfg.as_dict(),
        "config_flat": cfg.flat(),
        "metrics": [],
        "history": [],
        "notes": [],
        "cost_only": not cfg.evaluated,
        "stop_reason": "",
    }


def failed_record(
    cfg: RunConfig, error: str, *, started_at: str | None = None, peak_rss_mb: float = 0.0
) -> Record:
    """The record of a run that ended without writing its own: its identity and why."""
    record = new_record(cfg)
    if started_at:
        record["started_at"] = started_at
    record["error"] = error
    record["metrics"] = [metric_row("peak_rss_mb", peak_rss_mb, "MB")] if peak_rss_mb else []
    return record


def finalize(
    record: Record, *, env_defaults: dict[str, Any], wall_time_s: float | None, executor: str
) -> Record:
    """Stamps what only the sweep knows: the sweep's environment under the worker's, the executor,
    the end time and the worker's wall time (of an ``ok`` run also as the ``wall_time_s`` metric;
    ``None`` where no worker reported one)."""
    record["env"] = {**env_defaults, **record.get("env", {})}
    record["executor"] = executor
    record["finished_at"] = utc_now()
    record["wall_time_s"] = wall_time_s
    if record["status"] == "ok":
        record["metrics"] = [m for m in record["metrics"] if m["metric"] != "wall_time_s"]
        record["metrics"].append(metric_row("wall_time_s", wall_time_s, "s"))
    return record


def metric_row(metric: str, value: float | int, unit: str) -> MetricRow:
    """One row of a record's tidy ``metrics`` list."""
    return {"metric": metric, "value": float(value), "unit": unit}


class Metrics:
    """A record's tidy metrics list, in the order they are measured; ``None`` values are left out."""

    def __init__(self) -> None:
        self.rows: list[MetricRow] = []

    def add(self, metric: str, value: float | int | None, unit: str) -> None:
        if value is not None:
            self.rows.append(metric_row(metric, value, unit))


def one_line(error: BaseException, limit: int = 300) -> str:
    """``Type: first non-empty line of the message``, at most ``limit`` characters (the ``error``
    of a failed record)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    text = f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def read_record(folder: Path) -> dict[str, Any] | None:
    """The ``record.json`` a worker left in ``folder``, or ``None`` where there is none (or half of one)."""
    try:
        return json.loads((folder / RECORD).read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return None


def write_history(folder: Path, record: dict[str, Any]) -> None:
    """The run's per-epoch ``history.csv`` beside its record."""
    import pandas as pd

    rows = [{**{k: record[k] for k in RUN_KEY}, **h} for h in record.get("history", [])]
    atomic_write_text(folder / RUN_HISTORY, pd.DataFrame(rows, columns=HISTORY_COLUMNS).to_csv(index=False))
