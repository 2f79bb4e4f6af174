"""The sweep through the real command line: end to end, determinism, failures, kill and resume.

Workers are real processes; the models are the tiny test architectures of bench_support (and, in
the end-to-end test, two cheap real pairs), on the smoke profile's synthetic data.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from bench_support import bench_cli, bench_cmd, plugin_env

pytest.importorskip("bench.data", reason="bench.data (the data pipeline) is not there yet")

pytestmark = pytest.mark.slow

QUALITY = ["miou", "iou_pet", "iou_background", "iou_border", "pixel_accuracy", "mean_class_accuracy",
           "params_total", "params_trainable", "flops_per_image"]


def _run(tmp_path: Path, out: Path, *args: str, timeout: float = 300, **env: str) -> subprocess.CompletedProcess:
    return bench_cli(tmp_path, "run", "--profile", "smoke", "--backbone", "mobilenetv2", "--out", str(out), "--no-report", *args, timeout=timeout, **env)


def _records(out: Path) -> dict[str, dict]:
    records = [json.loads(p.read_text()) for p in out.glob("runs/*/record.json")]
    return {r["architecture"]: r for r in records}


def _metrics(record: dict) -> dict[str, float]:
    return {m["metric"]: m["value"] for m in record["metrics"]}


def test_smoke_sweep_of_two_cheap_pairs_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "smoke"
    done = bench_cli(tmp_path, "run", "--profile", "smoke", "--arch", "unet,deeplabv3", "--backbone", "mobilenetv2", "--out", str(out), timeout=400)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Estimated time" in done.stderr and "synthetic images (as asked)" in done.stderr
    runs = pd.read_csv(out / "runs.csv")
    metrics = pd.read_csv(out / "metrics.csv")
    history = pd.read_csv(out / "history.csv")
    env = json.loads((out / "environment.json").read_text())
    assert sorted(runs["model"]) == ["deeplabv3-mobilenetv2", "unet-mobilenetv2"]
    assert (runs["status"] == "ok").all() and (runs["weights"] == "none").all()
    assert runs["synthetic"].all() and (runs["dataset"] == "synthetic").all()
    assert runs["config.profile.precise_bn_batches"].eq(2).all()
    # The smoke profile runs two at a time on the local executor, and each row says so.
    assert (runs["executor"] == "local").all() and runs["concurrent_runs"].eq(2).all()
    assert "up to 2 runs at a time" in done.stderr
    expected = {
        *QUALITY, "latency_p50_ms", "latency_p90_ms", "latency_p95_ms", "inference_throughput",
        "train_throughput", "train_time_s", "wall_time_s", "peak_rss_mb",
    }
    for _, group in metrics.groupby("run_id"):
        assert expected <= set(group["metric"]), expected - set(group["metric"])
        assert not group.duplicated("metric").any()
    assert metrics["value"].notna().all()
    by = metrics.set_index(["model", "metric"])["value"]
    assert 0 <= by["unet-mobilenetv2", "miou"] <= 1
    assert by["unet-mobilenetv2", "params_total"] == 6504227
    assert by["unet-mobilenetv2", "latency_p50_ms"] <= by["unet-mobilenetv2", "latency_p95_ms"]
    assert len(history) == 2 and set(history["epoch"]) == {1}
    assert env["tf_version"] and env["synthetic"] is True
    for run_id in runs["run_id"]:
        with np.load(out / "runs" / run_id / "predictions.npz") as npz:
            assert npz["images"].shape == (4, 64, 64, 3) and npz["images"].dtype == np.uint8
            assert npz["predictions"].shape == npz["masks"].shape == (4, 64, 64)
            assert npz["predictions"].max() <= 2
    assert not list(out.glob("**/_tmp*"))

    environment = (out / "environment.json").read_bytes()
    again = bench_cli(tmp_path, "run", "--profile", "smoke", "--arch", "unet,deeplabv3", "--backbone", "mobilenetv2", "--out", str(out), "--no-report", timeout=120)
    assert again.returncode == 0 and "2 already done" in again.stderr and "0 to run" in again.stderr
    assert (out / "environment.json").read_bytes() == environment  # a sweep that ran nothing keeps it
    listing = bench_cli(tmp_path, "list", "--profile", "smoke", "--arch", "unet,deeplabv3", "--backbone", "mobilenetv2", "--out", str(out), timeout=120)
    assert listing.returncode == 0 and listing.stdout.count("| done") == 2, listing.stdout


def test_same_run_twice_gives_identical_metrics(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    for out in (a, b):
        done = _run(tmp_path, out, "--arch", "tinytest", "--epochs", "2")
        assert done.returncode == 0, done.stderr[-3000:]
    ra, rb = _records(a)["tinytest"], _records(b)["tinytest"]
    assert ra["run_id"] == rb["run_id"]
    ma, mb = _metrics(ra), _metrics(rb)
    assert {k: ma[k] for k in QUALITY} == {k: mb[k] for k in QUALITY}
    assert ra["history"] == rb["history"] and ra["confusion_matrix"] == rb["confusion_matrix"]
    with np.load(a / "runs" / ra["run_id"] / "predictions.npz") as pa, np.load(b / "runs" / rb["run_id"] / "predictions.npz") as pb:
        assert (pa["predictions"] == pb["predictions"]).all()
    # A different seed is a different run with different numbers.
    done = _run(tmp_path, a, "--arch", "tinytest", "--epochs", "2", "--seeds", "1")
    assert done.returncode == 0
    other = [json.loads(p.read_text()) for p in a.glob("runs/*s1-*/record.json")][0]
    assert other["history"] != ra["history"]


def test_failed_runs_are_recorded_and_the_sweep_goes_on(tmp_path: Path) -> None:
    out = tmp_path / "r"
    done = _run(tmp_path, out, "--arch", "tinyraise,tinynan,tinykill,tinytest")
    assert done.returncode == 0, done.stderr[-3000:]
    records = _records(out)
    assert records["tinytest"]["status"] == "ok"
    assert records["tinyraise"]["status"] == "failed"
    assert records["tinyraise"]["error"] == "RuntimeError: this architecture always fails to build"
    assert records["tinynan"]["error"] == "NaN loss at epoch 1 step 1"
    assert records["tinykill"]["error"].startswith("killed by signal 9 (SIGKILL) - out of memory?")
    runs = pd.read_csv(out / "runs.csv")
    assert len(runs) == 4 and (runs["status"] == "failed").sum() == 3
    assert set(pd.read_csv(out / "metrics.csv")["model"]) == {"tinytest-mobilenetv2"}
    assert "3 failed" in done.stderr
    # Failures are kept on a re-run; --retry-failed redoes them only.
    again = _run(tmp_path, out, "--arch", "tinyraise,tinytest", "--retry-failed")
    assert "1 already done" in again.stderr and "1 to run" in again.stderr


def _wait_for(predicate, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while not predicate():
        if time.time() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.2)


def _in_flight(out: Path) -> bool:
    """tinytest is stored (its row is in runs.csv) while tinywait runs (its staging folder is there).

    The smoke profile runs both at once, so tinywait may be in flight long before tinytest ends."""
    try:
        stored = "tinytest" in set(pd.read_csv(out / "runs.csv")["architecture"])
    except (FileNotFoundError, pd.errors.EmptyDataError, KeyError):
        return False
    return stored and bool(list(out.glob("runs/_tmp-tinywait*")))


def _worker_pids(out: Path) -> list[int]:
    import psutil

    pids = []
    for p in psutil.process_iter(["cmdline"]):
        cmd = " ".join(p.info["cmdline"] or [])
        if "bench.worker" in cmd and str(out) in cmd:
            pids.append(p.pid)
    return pids


@pytest.mark.parametrize("how", ["sigkill", "ctrl-c"])
def test_kill_mid_run_then_resume(tmp_path: Path, how: str) -> None:
    out = tmp_path / "r"
    args = ["--arch", "tinytest,tinywait"]
    cmd = bench_cmd("run", "--profile", "smoke", "--backbone", "mobilenetv2", "--out", str(out), "--no-report", *args)
    proc = subprocess.Popen(cmd, env=plugin_env(tmp_path, TINYWAIT_SECONDS="60"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(lambda: _in_flight(out))
        proc.send_signal(signal.SIGKILL if how == "sigkill" else signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    if how == "ctrl-c":
        assert proc.returncode == 130
        assert "Resume with the same command" in err
        assert not list(out.glob("runs/_tmp*"))  # the abandoned run leaves nothing
    else:
        assert proc.returncode == -signal.SIGKILL
    _wait_for(lambda: not _worker_pids(out), timeout=30)  # the worker died with its sweep
    runs = pd.read_csv(out / "runs.csv")
    assert list(runs["architecture"]) == ["tinytest"]  # finished run kept, nothing partial

    resumed = _run(tmp_path, out, *args, TINYWAIT_SECONDS="0")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "1 already done" in resumed.stderr and "1 to run" in resumed.stderr
    runs = pd.read_csv(out / "runs.csv")
    assert sorted(runs["architecture"]) == ["tinytest", "tinywait"] and (runs["status"] == "ok").all()
    metrics = pd.read_csv(out / "metrics.csv")
    assert not metrics.duplicated(["run_id", "metric"]).any()
    assert not list(out.glob("runs/_tmp*"))
