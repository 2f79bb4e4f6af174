"""Stored results: one record per finished run, and the tidy CSVs rebuilt from all of them.

The layout and columns are the contract of docs/results-schema.md. Two rules keep the store
consistent whenever the sweep is killed:

1. A run's files are written into a staging folder (``runs/_tmp-<run_id>-<pid>``) and renamed into
   ``runs/<run_id>`` in one ``os.rename``; ``runs/<run_id>/record.json`` therefore exists only
   beside the complete set of that run's files. Staging folders left by a kill are removed by the
   next sweep and their runs are redone.
2. runs.csv, metrics.csv and history.csv are never appended to: each is rebuilt from every stored
   record, written to a temporary file and renamed over the old one. A kill leaves the previous
   complete file or the new complete file, never a partial or duplicated row.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from bench.envinfo import ENV_COLUMNS

RECORD = "record.json"
RUN_HISTORY = "history.csv"
PREDICTIONS = "predictions.npz"
RUNS_CSV = "runs.csv"
METRICS_CSV = "metrics.csv"
HISTORY_CSV = "history.csv"
ENVIRONMENT_JSON = "environment.json"
TMP_PREFIX = "_tmp"

RUN_KEY = ["run_id", "model", "architecture", "backbone", "seed"]
RUN_COLUMNS = [
    *RUN_KEY, "profile", "dataset", "status", "error", "weights", "family",
    "executor", "host", "concurrent_runs", "wall_time_s", "started_at", "finished_at",
]
METRIC_COLUMNS = [*RUN_KEY, "profile", "dataset", "metric", "value", "unit"]
HISTORY_COLUMNS = [*RUN_KEY, "epoch", "loss", "accuracy", "val_loss", "val_accuracy"]


class SweepLockedError(RuntimeError):
    """Another sweep is writing to the same results directory."""


def atomic_write_text(path: Path, text: str) -> None:
    """Writes ``text`` to ``path`` through a temporary file and a rename."""
    tmp = path.with_name(f"{TMP_PREFIX}-{path.name}-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(_json_safe(data), indent=1, sort_keys=True) + "\n")


def _json_safe(value: Any) -> Any:
    """NaN and infinity become null: strict JSON readers reject them."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


class ResultsStore:
    """The results directory of one profile, ``results/<profile>`` by default.

    Args:
        root: The directory; created on first write.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.runs_dir = self.root / "runs"

    # --- runs ---------------------------------------------------------------------------------

    def run_dir(self, run_id: str) -> Path:
        return self.runs_dir / run_id

    def load_record(self, run_id: str) -> dict[str, Any] | None:
        path = self.run_dir(run_id) / RECORD
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None

    def records(self) -> list[dict[str, Any]]:
        """Every stored record, sorted by run id."""
        if not self.runs_dir.is_dir():
            return []
        out = []
        for path in sorted(self.runs_dir.glob(f"*/{RECORD}")):
            if path.parent.name.startswith(TMP_PREFIX):
                continue
            out.append(json.loads(path.read_text(encoding="utf-8")))
        return out

    def staging_dir(self, run_id: str) -> Path:
        """A fresh folder to write a run's files into before :meth:`commit_run`."""
        path = self.runs_dir / f"{TMP_PREFIX}-{run_id}-{os.getpid()}"
        if path.exists():
            shutil.rmtree(path)
        path.mkdir(parents=True)
        return path

    def commit_run(self, staging: Path, record: dict[str, Any]) -> Path:
        """Writes ``record`` into ``staging`` and renames the folder to ``runs/<run_id>``.

        A run stored before (``--force``) is replaced: it is first renamed aside, so a kill in
        between leaves either the old or the new run, or neither (the run is then redone), never
        a mixture.
        """
        atomic_write_json(staging / RECORD, record)
        target = self.run_dir(record["run_id"])
        if target.exists():
            trash = self.runs_dir / f"{TMP_PREFIX}-old-{record['run_id']}-{os.getpid()}"
            os.rename(target, trash)
            os.rename(staging, target)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.rename(staging, target)
        return target

    def clean_staging(self) -> int:
        """Removes staging folders left by a killed sweep; returns how many."""
        if not self.runs_dir.is_dir():
            return 0
        stale = [p for p in self.runs_dir.iterdir() if p.name.startswith(TMP_PREFIX)]
        for path in stale:
            shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
        return len(stale)

    # --- the tidy tables -----------------------------------------------------------------------

    def consolidate(self) -> None:
        """Rebuilds runs.csv, metrics.csv and history.csv from every stored record."""
        self.root.mkdir(parents=True, exist_ok=True)
        runs, metrics, history = tables(self.records())
        for frame, name in ((runs, RUNS_CSV), (metrics, METRICS_CSV), (history, HISTORY_CSV)):
            atomic_write_text(self.root / name, frame.to_csv(index=False))

    def write_environment(self, environment: dict[str, Any]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.root / ENVIRONMENT_JSON, environment)

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Holds an exclusive lock on the directory for the duration of a sweep.

        POSIX only (``fcntl.flock``), as is the sweep that takes it: its workers run in process
        groups and are stopped by signal. fcntl is imported here, not at the top, so that the
        report, which reads the store, imports on Windows too.
        """
        import fcntl

        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / ".lock"
        with open(path, "a+", encoding="utf-8") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                f.seek(0)
                holder = f.read().strip() or "another process"
                raise SweepLockedError(
                    f"Another sweep ({holder}) is writing to {self.root}; wait for it or use --out."
                ) from None
            f.seek(0)
            f.truncate()
            f.write(f"pid {os.getpid()}")
            f.flush()
            try:
                yield
            finally:
                f.seek(0)
                f.truncate()
                fcntl.flock(f, fcntl.LOCK_UN)


def tables(records: list[dict[str, Any]]) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """runs, metrics and history frames (docs/results-schema.md) of a list of records."""
    run_rows, metric_rows, history_rows = [], [], []
    config_columns: set[str] = set()
    for record in sorted(records, key=lambda r: (r["model"], r["seed"], r["run_id"])):
        key = {k: record[k] for k in RUN_KEY}
        env = {c: record.get("env", {}).get(c, "") for c in ENV_COLUMNS}
        config = {f"config.{k}": v for k, v in record.get("config_flat", {}).items()}
        config_columns.update(config)
        run_rows.append({**{c: record.get(c, "") for c in RUN_COLUMNS}, **env, **config})
        if record.get("status") == "ok":
            for m in record.get("metrics", []):
                metric_rows.append({
                    **key, "profile": record["profile"], "dataset": record["dataset"],
                    "metric": m["metric"], "value": m["value"], "unit": m["unit"], **env,
                })
        for h in record.get("history", []):
            history_rows.append({**key, **{c: h.get(c) for c in HISTORY_COLUMNS[len(RUN_KEY):]}})
    runs = pd.DataFrame(run_rows, columns=[*RUN_COLUMNS, *ENV_COLUMNS, *sorted(config_columns)])
    metrics = pd.DataFrame(metric_rows, columns=[*METRIC_COLUMNS, *ENV_COLUMNS])
    history = pd.DataFrame(history_rows, columns=HISTORY_COLUMNS)
    return runs, metrics, history
