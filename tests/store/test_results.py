"""Atomic run records and the tidy tables rebuilt from them (bench.store.results)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd
import pytest

from bench.config.profiles import PROFILES
from bench.config.run_config import RunConfig
from bench.store.record import new_record
from bench.store.results import (
    ENV_COLUMNS,
    RECORD,
    FolderNotOwnedError,
    ResultsStore,
    StoreWriteError,
    SweepLockedError,
)


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
        "val_miou",
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
    assert store.clean_temporary() == 1
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
    with store.lock(), pytest.raises(SweepLockedError, match="Another sweep"), ResultsStore(tmp_path).lock():
        pass
    with store.lock():  # released
        pass


def test_record_config_is_the_run_config(tmp_path: Path) -> None:
    record = _record()
    cfg = RunConfig.from_dict(record["config"])
    assert cfg.run_id == record["run_id"]
    assert dataclasses.asdict(cfg.profile)["name"] == "smoke"


# === Results you can trust: staged writes, damaged folders, refused overwrites ===


def _context(fingerprint: str = "fp", **profile: object) -> tuple[dict, str]:
    cfg = RunConfig("unet", "mobilenetv2", 0, PROFILES["smoke"].override(**profile), "synthetic", fingerprint)
    return cfg.context(), cfg.context_id


def test_a_new_folder_is_claimed_with_its_context_and_a_foreign_one_is_refused_untouched(tmp_path: Path) -> None:
    context, cid = _context()
    mine = ResultsStore(tmp_path / "new" / "deeper")
    mine.claim(context, cid)
    assert mine.context()["context_id"] == cid and mine.context()["reference"] is False
    mine.claim(context, cid)  # the same context again: fine

    # A user's folder: a metrics.csv, a Keras CSVLogger history.csv, a runs/ subfolder of their own.
    theirs = tmp_path / "theirs"
    (theirs / "runs" / "exp1").mkdir(parents=True)
    files = {"metrics.csv": "epoch,miou\n1,0.5\n", "history.csv": "epoch,loss\n0,1.2\n", "runs/exp1/notes.txt": "mine"}
    for name, text in files.items():
        (theirs / name).write_text(text)
    with pytest.raises(FolderNotOwnedError, match=r"not made by segbench .* history.csv, metrics.csv, runs"):
        ResultsStore(theirs).claim(context, cid)
    assert {str(p.relative_to(theirs)) for p in theirs.rglob("*") if p.is_file()} == set(files)
    assert all((theirs / n).read_text() == t for n, t in files.items())


def test_a_folder_of_another_context_or_the_reference_is_refused_with_the_way_out(tmp_path: Path) -> None:
    real, real_id = _context("real-photos")
    synthetic, synthetic_id = _context("synthetic-stand-in", epochs=PROFILES["smoke"].epochs + 2)
    store = ResultsStore(tmp_path / "quick")
    store.claim(real, real_id)
    with pytest.raises(FolderNotOwnedError) as caught:
        store.claim(synthetic, synthetic_id)
    message = str(caught.value)
    assert "another comparison context" in message and "never ranked together" in message
    assert "dataset_fingerprint: real-photos there, synthetic-stand-in now" in message
    smoke_epochs = PROFILES["smoke"].epochs
    assert f"profile.epochs: {smoke_epochs} there, {smoke_epochs + 2} now" in message
    assert f"--out {tmp_path / ('quick-' + synthetic_id)}" in message
    reference = Path(__file__).resolve().parents[2] / "results" / "quick"
    with pytest.raises(FolderNotOwnedError, match="committed reference"):
        ResultsStore(reference).claim(real, real_id)


def test_a_folder_of_an_older_harness_is_adopted(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path)
    _commit(store, _record())
    assert store.foreign_files() == []
    context, cid = _context()
    store.claim(context, cid)
    assert store.context()["context_id"] == cid


def _two_runs(tmp_path: Path) -> tuple[ResultsStore, list[str], dict, dict]:
    """A store of two committed runs that records what it says; the second run is the one to damage."""
    said: list[str] = []
    store = ResultsStore(tmp_path, say=said.append)
    good, bad = _record(), _record("fpn-mobilenetv2")
    _commit(store, good)
    _commit(store, bad)
    return store, said, good, bad


def test_a_truncated_record_is_reported_once_kept_aside_and_its_run_redone(tmp_path: Path) -> None:
    store, said, good, bad = _two_runs(tmp_path)
    path = store.run_dir(bad["run_id"]) / RECORD
    truncated = path.read_text()[:200]
    path.write_text(truncated)
    assert [r["run_id"] for r in store.records()] == [good["run_id"]]
    assert len(said) == 1 and str(path) in said[0] and "not valid JSON" in said[0] and "redone" in said[0]
    kept = list((tmp_path / "damaged").glob(f"{bad['run_id']}-*/{RECORD}"))
    assert len(kept) == 1 and kept[0].read_text() == truncated and not path.exists()
    assert store.load_record(bad["run_id"]) is None
    assert [r["run_id"] for r in store.records()] == [good["run_id"]] and len(said) == 1
    # Planning sees the run as not done: it is redone.
    cfg = RunConfig.from_dict(bad["config"])
    from bench.plan.matrix import status

    assert [c.run_id for c in status([cfg], store).todo] == [cfg.run_id]


def test_disk_full_while_storing_keeps_records_and_csvs_agreeing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins
    import errno

    store = ResultsStore(tmp_path)
    first = _record()
    _commit(store, first)
    before = {name: (tmp_path / name).read_bytes() for name in ("runs.csv", "metrics.csv", "history.csv")}

    real_open = builtins.open

    def full_disk(file, mode="r", *args, **kwargs):  # open's own signature
        if "w" in mode and Path(file).name.startswith("_tmp-metrics.csv"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", full_disk)
    second = _record("fpn-mobilenetv2")
    with pytest.raises(StoreWriteError) as caught:
        _commit(store, second)
    message = caught.value.strerror
    assert "metrics.csv" in message and "the disk is full" in message and "needed about" in message
    assert "intact" in message and "run the same command again" in message
    monkeypatch.setattr(builtins, "open", real_open)
    # The store is as it was: one run, CSVs unchanged and agreeing, nothing temporary left.
    assert [r["run_id"] for r in store.records()] == [first["run_id"]]
    assert {name: (tmp_path / name).read_bytes() for name in before} == before
    assert set(pd.read_csv(tmp_path / "runs.csv")["run_id"]) == set(pd.read_csv(tmp_path / "metrics.csv")["run_id"])
    assert not list(tmp_path.rglob("_tmp*")) and store.tables_problem() is None


def test_temporary_files_a_kill_left_anywhere_are_cleaned_and_nothing_else(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path)
    _commit(store, _record())
    left = [tmp_path / "_tmp-runs.csv-4242", tmp_path / "_tmp-leaderboard.md-17", tmp_path / "runs" / "_tmp-x-s0-1-99"]
    left[0].write_text("half")
    left[1].write_text("half")
    left[2].mkdir()
    (tmp_path / "notes.txt").write_text("a user's note")
    assert store.clean_temporary() == 3
    assert not any(p.exists() for p in left)
    assert (tmp_path / "notes.txt").read_text() == "a user's note" and len(store.records()) == 1


def test_csvs_that_disagree_with_the_records_are_found(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path)
    _commit(store, _record())
    assert store.tables_problem() is None
    (tmp_path / "metrics.csv").unlink()
    assert "metrics.csv is missing" in store.tables_problem()
    store.consolidate()
    (tmp_path / "runs.csv").write_bytes(b"\x00\xff garbage")
    assert "runs.csv" in store.tables_problem()
    store.consolidate()
    assert store.tables_problem() is None


# === A damaged or odd results folder ===


def _minimal(record: dict) -> dict:
    return {"run_id": record["run_id"], "model": record["model"], "status": "ok", "config": {}}


def _without_seed(record: dict) -> dict:
    return {k: v for k, v in record.items() if k != "seed"}


def _config_text(record: dict) -> dict:
    return {**record, "config": "unet mobilenetv2 seed 0"}


@pytest.mark.parametrize("damage", [_minimal, _without_seed, _config_text], ids=["minimal", "no-seed", "config-text"])
def test_a_record_the_store_cannot_read_is_set_aside_and_its_run_redone(tmp_path: Path, damage) -> None:
    import json

    store, said, good, bad = _two_runs(tmp_path)
    path = store.run_dir(bad["run_id"]) / RECORD
    text = json.dumps(damage(bad))
    path.write_text(text)
    store.consolidate()  # reads every record: it once failed with KeyError: 'seed'
    assert [r["run_id"] for r in store.records()] == [good["run_id"]]
    assert len(said) == 1 and str(path) in said[0] and "not a record this harness can read" in said[0]
    kept = list((tmp_path / "damaged").glob(f"{bad['run_id']}-*/{RECORD}"))
    assert len(kept) == 1 and kept[0].read_text() == text
    assert list(pd.read_csv(tmp_path / "runs.csv")["run_id"]) == [good["run_id"]]
    from bench.plan.matrix import status

    cfg = RunConfig.from_dict(bad["config"])
    assert [c.run_id for c in status([cfg], store).todo] == [cfg.run_id]


def test_what_is_in_runs_but_is_not_a_run_is_ignored_with_a_warning(tmp_path: Path) -> None:
    import shutil

    said: list[str] = []
    store = ResultsStore(tmp_path, say=said.append)
    record = _record()
    folder = _commit(store, record)
    shutil.copytree(folder, folder.with_name(folder.name + ".bak"))  # a user's backup copy
    (tmp_path / "runs" / "notes.txt").write_text("mine")
    (tmp_path / "runs" / "empty").mkdir()
    store.consolidate()
    store.consolidate()
    assert [r["run_id"] for r in store.records()] == [record["run_id"]]
    assert len(pd.read_csv(tmp_path / "runs.csv")) == 1 and len(pd.read_csv(tmp_path / "metrics.csv")) == 2
    assert len(said) == 3 and all("is not a run" in s and "ignored" in s for s in said)
    assert any(f"{folder}.bak" in s and "a copy?" in s for s in said)
    assert (tmp_path / "runs" / "notes.txt").read_text() == "mine" and (folder.parent / f"{folder.name}.bak").is_dir()


def test_runs_replaced_by_a_file_is_refused_and_nothing_changes(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path)
    _commit(store, _record())
    shutil_rmtree(tmp_path / "runs")
    (tmp_path / "runs").write_text("not a folder")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    with pytest.raises(FolderNotOwnedError, match=r"runs is a file, not the folder of stored runs"):
        store.records()
    context, cid = _context()
    with pytest.raises(FolderNotOwnedError, match=r"runs is a file"):
        store.claim(context, cid)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()} == before


def shutil_rmtree(path: Path) -> None:
    import shutil

    shutil.rmtree(path)


def test_a_damaged_context_is_kept_aside_and_rebuilt_from_the_stored_runs(tmp_path: Path) -> None:
    said: list[str] = []
    store = ResultsStore(tmp_path / "r", say=said.append)
    record = _record()
    cfg = RunConfig.from_dict(record["config"])
    store.claim(cfg.context(), cfg.context_id)
    _commit(store, record)
    path = tmp_path / "r" / "context.json"
    truncated = path.read_text()[:100]
    path.write_text(truncated)
    assert store.context()["context_id"] == cfg.context_id and store.context()["reference"] is False
    assert len(said) == 1 and f"damaged {path}" in said[0] and "rebuilt from the stored runs" in said[0]
    assert [p.read_text() for p in (tmp_path / "r" / "damaged").glob("context.json-*")] == [truncated]
    store.claim(cfg.context(), cfg.context_id)  # the sweep of that context goes on
    # Without a stored run, nothing says what it was: refused, left as it is.
    empty = ResultsStore(tmp_path / "empty")
    empty.claim(cfg.context(), cfg.context_id)
    (tmp_path / "empty" / "context.json").write_text("{")
    with pytest.raises(FolderNotOwnedError, match=r"context.json is damaged .* restore it from a copy, or delete it"):
        empty.context()
    assert (tmp_path / "empty" / "context.json").read_text() == "{"


@pytest.mark.parametrize("name", ["predictions.npz", "evidence.npz"])
def test_a_damaged_npz_sets_its_run_aside(tmp_path: Path, name: str) -> None:
    import numpy as np

    said: list[str] = []
    store = ResultsStore(tmp_path, say=said.append)
    good, bad = _record(), _record("fpn-mobilenetv2")
    for record in (good, bad):
        staging = store.staging_dir(record["run_id"])
        np.savez_compressed(staging / name, images=np.zeros((2, 8, 8, 3), np.uint8))
        store.commit_run(staging, record)
    path = store.run_dir(bad["run_id"]) / name
    path.write_bytes(path.read_bytes()[:60])
    assert store.set_aside_damaged_files() == 1
    assert [r["run_id"] for r in store.records()] == [good["run_id"]]
    assert len(said) == 1 and f"damaged file {path}" in said[0] and "redone" in said[0]
    assert len(list((tmp_path / "damaged").glob(f"{bad['run_id']}-*/{name}"))) == 1
    assert store.set_aside_damaged_files() == 0


def test_a_run_inside_another_results_folder_is_refused(tmp_path: Path) -> None:
    context, cid = _context()
    # A copy of the committed reference: a failing check must not write into the checkout.
    reference = tmp_path / "results" / "quick"
    reference.mkdir(parents=True)
    committed = Path(__file__).resolve().parents[2] / "results" / "quick" / "context.json"
    (reference / "context.json").write_bytes(committed.read_bytes())
    with pytest.raises(FolderNotOwnedError, match="is inside .*results/quick, the committed reference"):
        ResultsStore(reference / "sub").claim(context, cid)
    assert not (reference / "sub").exists()
    ResultsStore(tmp_path / "mine").claim(context, cid)
    with pytest.raises(FolderNotOwnedError, match=f"inside {tmp_path / 'mine'}, another results folder"):
        ResultsStore(tmp_path / "mine" / "deeper" / "sub").claim(context, cid)
    assert not (tmp_path / "mine" / "deeper").exists()


def test_disk_full_names_the_free_space_of_that_disk_and_what_the_run_needs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins
    import errno
    import shutil

    store = ResultsStore(tmp_path)
    record = _record()
    staging = store.staging_dir(record["run_id"])
    (staging / "predictions.npz").write_bytes(b"x" * 150_000)
    real_open = builtins.open

    def full_disk(file, mode="r", *args, **kwargs):  # open's own signature
        if "w" in mode and "record.json" in Path(file).name:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", full_disk)
    with pytest.raises(StoreWriteError) as caught:
        store.commit_run(staging, record)
    monkeypatch.setattr(builtins, "open", real_open)
    free = shutil.disk_usage(tmp_path).free / 2**20
    message = caught.value.strerror
    assert "needed about 150 KB" in message or "needed about 151 KB" in message, message
    assert f"and {free:.0f}." in message or f"and {free:.1f} MB is free there" in message, message
    assert not staging.exists()
