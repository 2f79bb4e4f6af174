"""Atomic run records and the tidy tables rebuilt from them (bench.store)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd
import pytest

from bench.config import RunConfig
from bench.envinfo import ENV_COLUMNS
from bench.profiles import PROFILES
from bench.record import new_record
from bench.store import RECORD, ResultsStore, SweepLockedError


def _record(model: str = "unet-mobilenetv2", seed: int = 0, status: str = "ok") -> dict:
    arch, backbone = model.split("-")
    cfg = RunConfig(arch, backbone, seed, PROFILES["smoke"], "synthetic", "fp")
    r = new_record(cfg)
    r.update(
        status=status, dataset="synthetic", weights="none", wall_time_s=12.5,
        env={c: f"v-{c}" for c in ENV_COLUMNS} | {"synthetic": True},
        metrics=[{"metric": "miou", "value": 0.5, "unit": "ratio"}, {"metric": "params_total", "value": 10.0, "unit": "count"}],
        history=[{"epoch": 1, "loss": 1.0, "accuracy": 0.5, "val_loss": 1.1, "val_accuracy": 0.4}],
    )
    if status != "ok":
        r["error"] = "killed by signal 9 (SIGKILL) - out of memory? peak RSS seen 900 MB"
    return r


def _commit(store: ResultsStore, record: dict) -> Path:
    staging = store.staging_dir(record["run_id"])
    (staging / "history.csv").write_text("x\n")
    return store.commit_run(staging, record)


def test_tables_follow_the_schema_and_pandas_reads_them(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path / "smoke")
    _commit(store, _record())
    _commit(store, _record("fpn-mobilenetv2"))
    _commit(store, _record("segnet-mobilenetv2", status="failed"))
    store.consolidate()
    runs = pd.read_csv(store.root / "runs.csv")
    metrics = pd.read_csv(store.root / "metrics.csv")
    history = pd.read_csv(store.root / "history.csv")
    assert list(runs.columns[:17]) == [
        "run_id", "model", "architecture", "backbone", "seed", "profile", "dataset", "status", "error",
        "weights", "family", "executor", "host", "concurrent_runs", "wall_time_s", "started_at", "finished_at",
    ]
    assert set(ENV_COLUMNS) <= set(runs.columns) and set(ENV_COLUMNS) <= set(metrics.columns)
    assert any(c.startswith("config.profile.") for c in runs.columns)
    assert len(runs) == 3 and sorted(runs["status"]) == ["failed", "ok", "ok"]
    # Only ok runs have metric rows; one row per run x metric.
    assert len(metrics) == 4 and set(metrics["metric"]) == {"miou", "params_total"}
    assert metrics["value"].dtype.kind == "f"
    assert len(history) == 3 and list(history.columns) == [
        "run_id", "model", "architecture", "backbone", "seed", "epoch", "loss", "accuracy", "val_loss", "val_accuracy",
    ]
    assert runs["synthetic"].dtype == bool


def test_consolidating_twice_never_duplicates_rows(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path)
    _commit(store, _record())
    store.consolidate()
    store.consolidate()
    assert len(pd.read_csv(tmp_path / "metrics.csv")) == 2
    assert not list(tmp_path.glob("_tmp*"))


def test_empty_store_writes_headers_only(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path)
    store.consolidate()
    assert pd.read_csv(tmp_path / "runs.csv").empty
    assert "metric" in pd.read_csv(tmp_path / "metrics.csv").columns


def test_staging_is_invisible_until_committed_and_cleaned_after_a_kill(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path)
    record = _record()
    staging = store.staging_dir(record["run_id"])
    (staging / RECORD).write_text("{}")  # a worker killed after writing, before the parent stored it
    assert store.records() == [] and store.load_record(record["run_id"]) is None
    assert store.clean_staging() == 1
    assert not staging.exists()


def test_a_forced_run_replaces_the_stored_one_whole(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path)
    first = _record()
    _commit(store, first)
    (store.run_dir(first["run_id"]) / "predictions.npz").write_text("old")
    second = dict(first, wall_time_s=99.0)
    _commit(store, second)
    assert store.load_record(first["run_id"])["wall_time_s"] == 99.0
    assert not (store.run_dir(first["run_id"]) / "predictions.npz").exists()
    assert len(store.records()) == 1
    assert [p.name for p in (tmp_path / "runs").iterdir()] == [first["run_id"]]


def test_non_finite_values_are_stored_as_null(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path)
    record = _record()
    record["metrics"] = [{"metric": "iou_border", "value": float("nan"), "unit": "ratio"}]
    _commit(store, record)
    text = (store.run_dir(record["run_id"]) / RECORD).read_text()
    assert "NaN" not in text and "null" in text


def test_a_second_sweep_on_the_same_directory_is_refused(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path)
    with store.lock():
        with pytest.raises(SweepLockedError, match="Another sweep"):
            with ResultsStore(tmp_path).lock():
                pass
    with store.lock():  # released
        pass


def test_record_config_is_the_run_config(tmp_path: Path) -> None:
    record = _record()
    cfg = RunConfig.from_dict(record["config"])
    assert cfg.run_id == record["run_id"]
    assert dataclasses.asdict(cfg.profile)["name"] == "smoke"
