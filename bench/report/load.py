"""Read one profile's stored results (docs/results-schema.md) into typed frames.

This module is the report's only door to the disk: it reads what the runner stored and nothing
else, and says which file is missing and what writes it when the results are incomplete.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bench.evidence.npz import load_evidence

# The file names and key columns are the store's: one definition of the layout for writer and reader.
from bench.store.results import (
    CONTEXT_JSON,
    ENVIRONMENT_JSON,
    HISTORY_COLUMNS,
    HISTORY_CSV,
    METRICS_CSV,
    RUN_KEY,
    RUNS_CSV,
)
from bench.store.results import EVIDENCE as EVIDENCE_NPZ
from bench.store.results import PREDICTIONS as PREDICTIONS_NPZ
from bench.store.results import RECORD as RECORD_JSON

_REQUIRED_RUN_COLUMNS = [*RUN_KEY, "status", "error", "family"]
_REQUIRED_METRIC_COLUMNS = ["run_id", "model", "metric", "value"]
_TRUE = {"true", "1", "yes", "y", "t"}


class ResultsNotFoundError(FileNotFoundError):
    """A stored-results file the report needs is missing or unreadable."""


@dataclass(frozen=True)
class Predictions:
    """The gallery images of one run (predictions.npz)."""

    images: np.ndarray  # uint8 (N, H, W, 3)
    masks: np.ndarray  # uint8 (N, H, W), true classes
    predictions: np.ndarray  # uint8 (N, H, W)
    indices: np.ndarray  # int (N,), positions in the test split
    uncertainty: np.ndarray | None = None  # float (N, H, W) predictive entropy in nats, Monte-Carlo runs only


@dataclass(frozen=True)
class Results:
    """Everything the runner stored for one profile.

    Attributes:
        root: The profile's directory, ``results/<profile>``.
        runs: runs.csv, one row per run, sorted by model, seed, run_id.
        metrics: metrics.csv, tidy, one row per ok run x metric.
        history: history.csv, one row per run x epoch (may be empty).
        environment: environment.json as stored.
        context: context.json as stored (the folder's comparison context), or None where the
            folder has none (made by an older harness) or it cannot be read.
    """

    root: Path
    runs: pd.DataFrame
    metrics: pd.DataFrame
    history: pd.DataFrame
    environment: dict
    context: dict | None = None

    def record(self, run_id: str) -> dict | None:
        """The run's record.json (the source of truth of the CSVs), or None where it is missing."""
        path = self.root / "runs" / run_id / RECORD_JSON
        if not path.is_file():
            return None
        return json.loads(path.read_text(encoding="utf-8"))

    def predictions(self, run_id: str) -> Predictions | None:
        """The run's predictions.npz, or None where the runner stored none."""
        path = self.root / "runs" / run_id / PREDICTIONS_NPZ
        if not path.is_file():
            return None
        with np.load(path) as npz:
            return Predictions(
                images=np.asarray(npz["images"], dtype=np.uint8),
                masks=np.asarray(npz["masks"], dtype=np.uint8),
                predictions=np.asarray(npz["predictions"], dtype=np.uint8),
                indices=np.asarray(npz["indices"]),
                uncertainty=np.asarray(npz["uncertainty"], dtype=np.float32) if "uncertainty" in npz.files else None,
            )

    def evidence(self, run_id: str) -> dict[str, np.ndarray] | None:
        """The run's evidence.npz (:data:`bench.evidence.npz.SCHEMA`), or None where the runner stored
        none (runs measured before it existed). Raises ``ValueError`` or ``OSError`` for an unreadable file."""
        path = self.root / "runs" / run_id / EVIDENCE_NPZ
        if not path.is_file():
            return None
        return load_evidence(path)


def _missing(path: Path, profile: str) -> ResultsNotFoundError:
    return ResultsNotFoundError(
        f"{path} not found: the report reads stored results only; "
        f"run `python -m bench run --out {path.parent}` first, or `python -m bench report --out {path.parent}` "
        "to rebuild the tables from the stored records"
    )


#: Columns added to the stored tables after results were first stored: a table written before has
#: none, and reads as if every value were missing (the runs then had no such thing).
_ADDED_COLUMNS = ["val_miou"]


def _read_csv(path: Path, profile: str, required: list[str]) -> pd.DataFrame:
    if not path.is_file():
        raise _missing(path, profile)
    try:
        # A context id is hex: "12345678" or "1e345678" must stay text, not become a number.
        frame = pd.read_csv(path, dtype={"run_id": str, "model": str, "error": str, "context_id": str})
    except pd.errors.EmptyDataError:
        frame = pd.DataFrame(columns=required)
    for column in _ADDED_COLUMNS:
        if column in required and column not in frame.columns:
            frame[column] = pd.Series(dtype=float)
    absent = [c for c in required if c not in frame.columns]
    if absent:
        raise ResultsNotFoundError(
            f"{path} lacks the column(s) {absent} of docs/results-schema.md; "
            f"`python -m bench report --out {path.parent}` rebuilds it from the stored records"
        )
    return frame


def as_bool(values: pd.Series) -> pd.Series:
    """Stored booleans ("True", "true", 1, ...) as a bool Series; missing is False."""
    return values.map(lambda v: str(v).strip().lower() in _TRUE if pd.notna(v) else False).astype(bool)


def load_results(results_dir: Path) -> Results:
    """Read runs.csv, metrics.csv, history.csv, environment.json and context.json of one profile.

    Args:
        results_dir: ``results/<profile>``, as written by ``python -m bench run``.

    Returns:
        The stored results, sorted so that everything downstream is deterministic.

    Raises:
        ResultsNotFoundError: A file is missing, naming it and the command that writes it.
    """
    root = Path(results_dir)
    profile = root.name
    runs = _read_csv(root / RUNS_CSV, profile, _REQUIRED_RUN_COLUMNS)
    metrics = _read_csv(root / METRICS_CSV, profile, _REQUIRED_METRIC_COLUMNS)
    history = _read_csv(root / HISTORY_CSV, profile, HISTORY_COLUMNS)
    env_path = root / ENVIRONMENT_JSON
    if not env_path.is_file():
        raise _missing(env_path, profile)
    environment = json.loads(env_path.read_text(encoding="utf-8"))
    try:
        context = json.loads((root / CONTEXT_JSON).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        context = None  # then the most recent run names the context (bench.report.comparable)

    runs["status"] = runs["status"].astype(str).str.strip().str.lower()
    runs["family"] = runs["family"].fillna("deep").astype(str).str.strip().str.lower()
    runs["error"] = runs["error"].fillna("").astype(str)
    if "synthetic" in runs.columns:
        runs["synthetic"] = as_bool(runs["synthetic"])
    runs = runs.sort_values(["model", "seed", "run_id"], kind="stable").reset_index(drop=True)

    metrics["value"] = pd.to_numeric(metrics["value"], errors="coerce")
    metrics = metrics.sort_values(["model", "run_id", "metric"], kind="stable").reset_index(drop=True)

    for column in HISTORY_COLUMNS[len(RUN_KEY):]:
        history[column] = pd.to_numeric(history[column], errors="coerce")
    history = history.sort_values(["model", "seed", "run_id", "epoch"], kind="stable").reset_index(drop=True)

    return Results(root=root, runs=runs, metrics=metrics, history=history, environment=environment,
                   context=context if isinstance(context, dict) else None)
