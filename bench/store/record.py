"""A run's record: the one dict every stored run has, ok or failed, local or Ray.

:func:`new_record` is the only constructor: the worker fills in what it measured, and a run that
ended without writing its own record (killed, timed out, lost by Ray) gets :func:`failed_record`,
which is a new record with the reason. :func:`finalize` then stamps what only the sweep knows.
The fields are the contract of docs/results-schema.md; ``record.json`` is the source of truth the
CSVs are rebuilt from.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

from bench.clock import utc_now
from bench.config.run_config import RunConfig
from bench.store.results import HISTORY_COLUMNS, RECORD, RUN_HISTORY, RUN_KEY, atomic_write_text

#: ``stop_reason``: the validation mIoU had not improved for ``patience`` epochs.
STOP_PLATEAU = "plateau"
#: ``stop_reason``: early stopping was on and the epoch cap came first: the run was still improving.
STOP_CAP_STILL_IMPROVING = "cap_still_improving"
#: ``stop_reason``: no early stopping; every epoch of the schedule was trained.
STOP_ALL_EPOCHS = "all_epochs"


def new_record(cfg: RunConfig) -> dict[str, Any]:
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
) -> dict[str, Any]:
    """The record of a run that ended without writing its own: its identity and why."""
    record = new_record(cfg)
    if started_at:
        record["started_at"] = started_at
    record["error"] = error
    record["metrics"] = [metric_row("peak_rss_mb", peak_rss_mb, "MB")] if peak_rss_mb else []
    return record


def finalize(
    record: dict[str, Any], *, env_defaults: dict[str, Any], wall_time_s: float | None, executor: str
) -> dict[str, Any]:
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


def metric_row(metric: str, value: float | int, unit: str) -> dict[str, Any]:
    """One row of a record's tidy ``metrics`` list."""
    return {"metric": metric, "value": float(value), "unit": unit}


class Metrics:
    """A record's tidy metrics list, in the order they are measured; ``None`` values are left out."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

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
