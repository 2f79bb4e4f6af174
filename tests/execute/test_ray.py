"""The sweep on Ray: a real local cluster, the real command line, real worker processes.

One Ray head (2 CPUs) is started for the module the way a user starts one (``ray start --head``)
and the sweeps join it with ``--ray-address``, so the code reaches the cluster's workers as
``py_modules``; the kill test lets the command line start its own private cluster.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from tests.support.commands import bench_cli, bench_cmd, plugin_env

pytest.importorskip("ray", reason="Ray is an optional extra: pip install -e '.[bench,ray]'")

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("ray")]

QUALITY = ["miou", "iou_pet", "iou_background", "iou_border", "pixel_accuracy", "mean_class_accuracy",
           "params_total", "params_trainable", "flops_per_image"]
PAIRS = ["--arch", "tinytest,unet", "--backbone", "mobilenetv2"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ray_bin() -> str:
    return str(Path(sys.executable).with_name("ray"))


@pytest.fixture(scope="module")
def ray_head(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    """A 2-CPU Ray head on this machine: its address, and the environment (its token) a client
    needs to join it. Stopped with its process group afterwards, so a user's own Ray processes on
    the machine are left alone."""
    tmp = tmp_path_factory.mktemp("ray-head")
    port = _free_port()
    env = plugin_env(tmp)
    env.update(_auth(tmp))
    cmd = [
        _ray_bin(), "start", "--head", "--block", f"--port={port}", "--num-cpus=2", "--num-gpus=0",
        "--include-dashboard=false", "--disable-usage-stats", "--object-store-memory=200000000",
    ]
    head = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    address = f"127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while subprocess.run([_ray_bin(), "health-check", "--address", address], env=env, capture_output=True).returncode:
            if head.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"the Ray head did not start: {head.stderr.read().decode()[-2000:] if head.stderr else ''}")
            time.sleep(1)
        yield address, _auth(tmp)
    finally:
        head.terminate()  # `ray start --block` stops the processes it started, in a second or two
        with contextlib.suppress(subprocess.TimeoutExpired):
            head.wait(timeout=30)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(head.pid, signal.SIGKILL)  # whatever of its group is left


def _auth(folder: Path) -> dict[str, str]:
    """Token authentication with a token of the test's own: what Ray asks of a cluster (and turns
    on by default for local ones since 2.59), without touching ~/.ray of whoever runs the tests."""
    token = folder / "ray_auth_token"
    if not token.exists():
        token.write_text(secrets.token_hex(32))
    return {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token)}


def _records(out: Path) -> dict[str, dict]:
    return {r["architecture"]: r for r in (json.loads(p.read_text()) for p in out.glob("runs/*/record.json"))}


def _metrics(record: dict) -> dict[str, float]:
    return {m["metric"]: m["value"] for m in record["metrics"]}


def test_ray_sweep_stores_what_the_local_executor_stores(tmp_path: Path, ray_head: tuple[str, dict[str, str]]) -> None:
    address, auth = ray_head
    local, on_ray = tmp_path / "local", tmp_path / "ray"
    done = bench_cli(tmp_path, "run", "--profile", "smoke", *PAIRS, "--jobs", "1", "--out", str(local), "--no-report", timeout=400)
    assert done.returncode == 0, done.stderr[-3000:]
    done = bench_cli(
        tmp_path, "run", "--profile", "smoke", *PAIRS, "--executor", "ray", "--ray-address", address,
        "--out", str(on_ray), timeout=600, **auth,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"Executor: Ray cluster at {address}: 1 node(s), 2 CPUs, 0 GPUs; 1 CPU(s) per run, up to 2 at once" in done.stderr
    assert (on_ray / "leaderboard.md").is_file()

    a, b = _records(local), _records(on_ray)
    assert set(a) == set(b) == {"tinytest", "unet"}
    for arch in a:
        assert a[arch]["run_id"] == b[arch]["run_id"]  # the executor is not part of a run's identity
        assert b[arch]["status"] == "ok" and b[arch]["executor"] == "ray" and a[arch]["executor"] == "local"
        assert {k: _metrics(a[arch])[k] for k in QUALITY} == {k: _metrics(b[arch])[k] for k in QUALITY}
        assert a[arch]["history"] == b[arch]["history"]
        assert a[arch]["confusion_matrix"] == b[arch]["confusion_matrix"]
        options = b[arch]["ray"]["task_options"]
        assert options["num_cpus"] == 1 and options["num_gpus"] == 0 and options["memory"] > 0
        # The worker's files travelled back from the node: the gallery and the log are there.
        assert (on_ray / "runs" / b[arch]["run_id"] / "predictions.npz").stat().st_size > 0
        assert "SYNTHETIC stand-in" in (on_ray / "runs" / b[arch]["run_id"] / "log.txt").read_text()

    # Two CPUs, one per run: the two runs ran side by side.
    tiny, unet = b["tinytest"], b["unet"]
    assert tiny["started_at"] <= unet["finished_at"] and unet["started_at"] <= tiny["finished_at"]

    # Same tidy tables as the local executor, and resume works across executors.
    runs = pd.read_csv(on_ray / "runs.csv")
    assert list(runs.columns) == list(pd.read_csv(local / "runs.csv").columns)
    assert set(runs["executor"]) == {"ray"}
    again = bench_cli(tmp_path, "run", "--profile", "smoke", *PAIRS, "--out", str(local), "--executor", "ray", "--ray-address", address, "--no-report", timeout=300, **auth)
    assert again.returncode == 0 and "2 already done" in again.stderr and "0 to run" in again.stderr


def _ray_workers_running(run: str) -> list[int]:
    """PIDs of the Ray worker processes whose bench.execute.worker child runs ``run``: the ones titled
    ``ray::segbench:<run_id>`` (the task's name) and only those, so that an orphaned child's new
    parent (init, or the raylet as subreaper) is never the one killed."""
    import psutil

    parents = []
    for p in psutil.process_iter(["cmdline", "ppid"]):
        cmd = " ".join(p.info["cmdline"] or [])
        if "bench.execute.worker" in cmd and f"segbench-{run}" in cmd:
            try:
                parent = psutil.Process(p.info["ppid"])
                if (parent.cmdline() or [""])[0].startswith(f"ray::segbench:{run}"):
                    parents.append(parent.pid)
            except psutil.Error:
                continue
    return parents


def test_a_killed_ray_worker_is_retried_then_stored_as_failed(tmp_path: Path) -> None:
    out = tmp_path / "r"
    cmd = bench_cmd(
        "run", "--profile", "smoke", "--arch", "tinytest,tinywait", "--backbone", "mobilenetv2", "--out", str(out),
        "--no-report", "--executor", "ray", "--max-retries", "1",
    )
    env = plugin_env(tmp_path, TINYWAIT_SECONDS="120", **_auth(tmp_path))
    env.pop("RAY_ADDRESS", None)  # a private local cluster for this sweep
    sweep = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    kills = 0
    try:
        deadline = time.time() + 300
        while kills < 2 and time.time() < deadline and sweep.poll() is None:
            for pid in _ray_workers_running("tinywait"):
                os.kill(pid, signal.SIGKILL)  # what the kernel's OOM killer or a lost node does
                kills += 1
                time.sleep(3)  # Ray notices, then schedules the retry
                break
            time.sleep(0.5)
        try:
            _, err = sweep.communicate(timeout=300)
        except subprocess.TimeoutExpired:
            sweep.kill()
            raise AssertionError(f"the sweep did not finish after {kills} kill(s): {sweep.communicate()[1][-3000:]}") from None
    finally:
        if sweep.poll() is None:
            sweep.kill()
    assert kills == 2, err[-3000:]
    assert sweep.returncode == 0, err[-3000:]
    records = _records(out)
    assert records["tinytest"]["status"] == "ok"
    lost = records["tinywait"]
    assert lost["status"] == "failed" and lost["executor"] == "ray"
    assert lost["error"].startswith("Ray task lost after 2 attempt(s): "), lost["error"]
    runs = pd.read_csv(out / "runs.csv")
    assert sorted(runs["status"]) == ["failed", "ok"]
    assert not list(out.glob("runs/_tmp*"))
    assert "1 failed" in err
    # The failure is kept; --retry-failed redoes it (locally here, to keep the test short).
    again = bench_cli(tmp_path, "run", "--profile", "smoke", "--arch", "tinytest,tinywait", "--backbone", "mobilenetv2", "--out", str(out), "--no-report", "--retry-failed", TINYWAIT_SECONDS="0")
    assert again.returncode == 0 and "1 already done" in again.stderr and "1 to run" in again.stderr
    assert _records(out)["tinywait"]["status"] == "ok"


def test_ray_errors_name_the_problem_and_the_fix(tmp_path: Path, ray_head: tuple[str, dict[str, str]]) -> None:
    address, auth = ray_head
    out = tmp_path / "r"
    too_many = bench_cli(tmp_path, "run", "--profile", "smoke", "--arch", "tinytest", "--backbone", "mobilenetv2", "--out", str(out), "--executor", "ray", "--ray-address", address, "--gpus-per-run", "2", **auth)
    assert too_many.returncode == 2
    assert "--gpus-per-run 2 needs GPUs, and the Ray cluster has none (1 node(s), 2 CPUs)" in too_many.stderr
    big = bench_cli(tmp_path, "run", "--profile", "smoke", "--arch", "tinytest", "--backbone", "mobilenetv2", "--out", str(out), "--executor", "ray", "--ray-address", address, "--cpus-per-run", "4", **auth)
    assert big.returncode == 2 and "--cpus-per-run 4: the largest node of the Ray cluster has 2 CPUs" in big.stderr
    assert not list(out.glob("runs/*"))  # nothing ran, nothing stored
