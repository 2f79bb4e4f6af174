"""The sweep through the real command line: end to end, determinism, failures, kill and resume.

Workers are real processes; the models are the tiny test architectures of bench_support (and, in
the end-to-end test, two cheap real pairs), on the smoke profile's synthetic data.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench.config.profiles import PROFILES
from tests.support.commands import bench_cli, bench_cmd, plugin_env
from tests.support.records import stored_records, undeclared_keys

pytest.importorskip("bench.data", reason="bench.data (the data pipeline) is not there yet")

pytestmark = pytest.mark.slow

QUALITY = ["miou", "iou_pet", "iou_background", "iou_border", "pixel_accuracy", "mean_class_accuracy",
           "params_total", "params_trainable", "flops_per_image"]


def _run(tmp_path: Path, out: Path, *args: str, timeout: float = 300, **env: str) -> subprocess.CompletedProcess:
    return bench_cli(tmp_path, "run", "--profile", "smoke", "--backbone", "mobilenetv2", "--out", str(out), "--no-report", *args, timeout=timeout, **env)


def _records(out: Path) -> dict[str, dict]:
    records = [json.loads(p.read_text()) for p in out.glob("runs/*/record.json")]
    return {r["architecture"]: r for r in records}


#: A trained and evaluated network's metric rows on a CPU, in the order measure_run's phases add
#: them: build, training, inference set-up, test evidence, timing, memory, and the sweep's wall time.
UNET_SMOKE_METRIC_ORDER = [
    "build_time_s", "params_total", "params_trainable", "flops_per_image",
    "train_throughput", "train_first_step_s", "epochs_run", "best_epoch", "val_miou", "train_time_s",
    "inference_trace_s", "inference_first_call_s",
    "eval_time_s", "miou", "iou_pet", "iou_background", "iou_border", "pixel_accuracy", "mean_class_accuracy",
    "miou_per_image", "fg_iou", "dice_pet", "dice_pet_per_image", "precision_pet", "recall_pet",
    "boundary_iou", "boundary_width_px", "ece", "nll", "brier",
    "latency_p50_ms", "latency_p90_ms", "latency_p95_ms", "latency_p99_ms", "latency_mean_ms",
    "inference_throughput", "inference_throughput_b1", "inference_throughput_b2",
    "peak_rss_mb", "wall_time_s",
]


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
    epochs = set(range(1, PROFILES["smoke"].epochs + 1))
    assert len(history) == 2 * len(epochs) and set(history["epoch"]) == epochs
    assert env["tf_version"] and env["synthetic"] is True
    for run_id in runs["run_id"]:
        with np.load(out / "runs" / run_id / "predictions.npz") as npz:
            assert npz["images"].shape == (4, 64, 64, 3) and npz["images"].dtype == np.uint8
            assert npz["predictions"].shape == npz["masks"].shape == (4, 64, 64)
            assert npz["predictions"].max() <= 2
    assert not list(out.glob("**/_tmp*"))
    # Each run's log holds all its worker printed, Keras's per-epoch progress line (stdout)
    # included; with two runs at once none of it reaches the terminal, which shows one line per
    # finished run.
    keras_progress = re.compile(r"^2/2 - .* - loss: [0-9.]+ - val_loss: [0-9.]+ - val_accuracy: [0-9.]+ - val_miou: [0-9.]+",
                                re.MULTILINE)
    for run_id in runs["run_id"]:
        log = (out / "runs" / run_id / "log.txt").read_text()
        assert keras_progress.search(log) and "SYNTHETIC stand-in" in log, log[-2000:]
    assert not keras_progress.search(done.stderr) and not keras_progress.search(done.stdout)
    assert done.stderr.count("seed 0: ok") == 2
    records = stored_records(out)
    assert [undeclared_keys(r) for r in records] == [set(), set()]
    # The order of a record's metric rows is the order of measure_run's phases, pinned.
    (unet,) = [r for r in records if r["model"] == "unet-mobilenetv2"]
    assert [m["metric"] for m in unet["metrics"]] == UNET_SMOKE_METRIC_ORDER

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
        if "bench.execute.worker" in cmd and str(out) in cmd:
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


def test_damage_is_survivable_and_the_seed_list_is_not_identity(tmp_path: Path) -> None:
    out = tmp_path / "r"
    done = _run(tmp_path, out, "--arch", "tinytest,tinyraise", "--seeds", "0")
    assert done.returncode == 0, done.stderr[-3000:]
    # Widening the seeds finds the finished seed-0 runs: only seed 1 runs.
    wider = _run(tmp_path, out, "--arch", "tinytest", "--seeds", "0-1")
    assert wider.returncode == 0 and "1 already done" in wider.stderr and "1 to run" in wider.stderr, wider.stderr[-2000:]
    runs = pd.read_csv(out / "runs.csv")
    assert sorted(runs.loc[runs["architecture"] == "tinytest", "seed"]) == [0, 1]

    # A truncated record, a missing metrics.csv and garbage in runs.csv: every command goes on.
    record = next(out.glob("runs/tinytest-mobilenetv2-s1-*/record.json"))
    record.write_text(record.read_text()[:100])
    (out / "metrics.csv").unlink()
    (out / "runs.csv").write_text("\x00garbage,\n1,2,3\n")
    listing = bench_cli(tmp_path, "list", "--profile", "smoke", "--arch", "tinytest", "--backbone", "mobilenetv2", "--seeds", "0-1", "--out", str(out), timeout=120)
    assert listing.returncode == 0 and f"damaged record {record}" in listing.stderr and "Traceback" not in listing.stderr
    assert listing.stdout.count("| done") == 1 and listing.stdout.count("| to do") == 1
    kept = list((out / "damaged").glob("tinytest-mobilenetv2-s1-*/record.json"))
    assert len(kept) == 1 and len(kept[0].read_text()) == 100
    report = bench_cli(tmp_path, "report", "--out", str(out), timeout=300)
    assert report.returncode == 0, report.stderr[-2000:]
    assert "rebuilt runs.csv, metrics.csv and history.csv from the 2 stored records" in report.stderr
    assert (out / "leaderboard.md").is_file() and len(pd.read_csv(out / "metrics.csv")) > 0
    again = _run(tmp_path, out, "--arch", "tinytest", "--seeds", "0-1")
    assert again.returncode == 0 and "1 already done" in again.stderr and "1 to run" in again.stderr
    assert len(list(out.glob("runs/tinytest-mobilenetv2-s1-*/record.json"))) == 1

    # Another comparison context into the same folder stops before running, naming the way out.
    epochs = PROFILES["smoke"].epochs
    other = _run(tmp_path, out, "--arch", "tinytest", "--epochs", str(epochs + 1))
    assert other.returncode == 2 and "another comparison context" in other.stderr
    assert f"profile.epochs: {epochs} there, {epochs + 1} now" in other.stderr and f"--out {out}-" in other.stderr
    assert "Traceback" not in other.stderr


def test_disk_full_stops_the_sweep_with_a_message_and_a_consistent_store(tmp_path: Path) -> None:
    disk = tmp_path / "small-disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=160k", "tmpfs", str(disk)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here to fill ({mounted.stderr.strip()})")
    try:
        out = disk / "r"
        done = _run(tmp_path, out, "--arch", "tinytest", "--seeds", "0-9")
        assert done.returncode == 74, done.stderr[-3000:]
        assert "could not write" in done.stderr and "the disk is full" in done.stderr and "Traceback" not in done.stderr
        assert "run the same command again to resume" in done.stderr
        stored = {p.parent.name for p in out.glob("runs/*/record.json")}
        if (out / "runs.csv").exists():
            assert set(pd.read_csv(out / "runs.csv")["run_id"]) == stored
            ok = {r for r in stored if json.loads((out / "runs" / r / "record.json").read_text())["status"] == "ok"}
            assert set(pd.read_csv(out / "metrics.csv")["run_id"]) == ok
        assert len(stored) < 10 and not list(out.rglob("_tmp*"))
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)


def test_a_fresh_clone_without_the_sample_keeps_git_status_clean(tmp_path: Path) -> None:
    """The issue's first command: in a fresh clone with no real photos beside it, a sweep of one
    cheap model writes where git ignores it and leaves the committed reference alone."""
    repo = Path(__file__).resolve().parents[2]
    if not (repo / ".git").exists():
        pytest.skip("not a git checkout")
    clone = tmp_path / "clone"  # nothing named shared/ beside it
    subprocess.run(["git", "clone", "-q", str(repo), str(clone)], check=True, capture_output=True, timeout=120)
    env = plugin_env(tmp_path)
    for name in ("SEGBENCH_PETS_DIR", "SEGMODELS_PLUGINS"):  # a new user has neither
        env.pop(name, None)
    env["PYTHONPATH"] = str(clone)  # the clone's own code
    done = subprocess.run(
        bench_cmd("run", "--arch", "classical", "--backbone", "otsu"), cwd=clone, env=env, capture_output=True,
        text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "SYNTHETIC" in done.stderr
    assert (clone / "results" / "local" / "quick" / "leaderboard.md").is_file()
    status = subprocess.run(["git", "status", "--porcelain"], cwd=clone, capture_output=True, text=True, check=True)
    assert status.stdout == "", status.stdout
    # Into the reference on purpose: refused, untouched.
    into_reference = subprocess.run(
        bench_cmd("run", "--arch", "classical", "--backbone", "otsu", "--out", "results/quick"), cwd=clone, env=env,
        capture_output=True, text=True, timeout=300,
    )
    assert into_reference.returncode == 2 and "committed reference" in into_reference.stderr
    assert subprocess.run(["git", "status", "--porcelain"], cwd=clone, capture_output=True, text=True).stdout == ""
