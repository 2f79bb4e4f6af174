"""Executors: the local one's memory-aware concurrency, what a run asks for, multi-device runs.

The Ray executor's end-to-end tests are in test_bench_ray.py (they need the optional extra).
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import pytest

from bench.config.profiles import PROFILES
from bench.config.run_config import RunConfig
from bench.execute.local import LocalExecutor
from bench.plan.estimate import PEAK_MARGIN, peak_memory_mb
from bench.store.results import ResultsStore
from tests.support.commands import bench_cli


def _cfg(model: str, profile: str = "quick", **changes: object) -> RunConfig:
    architecture, backbone = model.split("-")
    p = dataclasses.replace(PROFILES[profile], **{k: v for k, v in changes.items() if k != "replicas"})
    return RunConfig(architecture, backbone, 0, p, "synthetic", "f" * 12, replicas=int(changes.get("replicas", 1)))


def test_the_local_executor_never_plans_two_runs_beyond_the_memory() -> None:
    fcn_a, fcn_b = _cfg("fcn32s-resnet50", "smoke"), _cfg("fcn8s-resnet101", "smoke")
    unet, segnet = _cfg("unet-mobilenetv2", "smoke"), _cfg("segnet-resnet50", "smoke")
    peaks = {c.run_id: peak_memory_mb(c, []) for c in (fcn_a, fcn_b, unet, segnet)}
    executor = LocalExecutor(jobs=2, memory_mb=19_000)
    running = {fcn_a.run_id: None}
    # Beside a ~17 GB FCN only the small U-Net fits, even though it comes later in the queue.
    assert executor._next([fcn_b, segnet, unet], running, peaks) is unet  # type: ignore[arg-type]
    assert executor._next([fcn_b, segnet], running, peaks) is None  # type: ignore[arg-type]
    # With nothing running the first run starts, however big: one run alone is never refused.
    assert LocalExecutor(jobs=2, memory_mb=1_000)._next([fcn_b, unet], {}, peaks) is fcn_b
    assert executor._next([], {}, peaks) is None


def test_peak_memory_prefers_what_this_machine_measured() -> None:
    cfg = _cfg("unet-resnet50", trained_models=("*",))  # a run that trains
    table = peak_memory_mb(cfg, [])
    stored = {
        "status": "ok", "model": cfg.model,
        "config_flat": {"profile.image_size": cfg.profile.image_size, "profile.batch_size": cfg.profile.batch_size},
        "metrics": [{"metric": "peak_rss_mb", "value": 2244.0, "unit": "MB"}],
    }
    assert peak_memory_mb(cfg, [stored]) == pytest.approx(2244.0 * PEAK_MARGIN)
    # A cost run's peak holds no training: it never plans a run that trains.
    assert peak_memory_mb(cfg, [{**stored, "cost_only": True}]) == table
    other_size = {**stored, "config_flat": {"profile.image_size": 256, "profile.batch_size": cfg.profile.batch_size}}
    assert peak_memory_mb(cfg, [other_size]) == table  # another image size says nothing
    # The FCNs' 0.45 G parameters dominate; bigger batches add activations.
    assert peak_memory_mb(_cfg("fcn8s-resnet152"), []) > 3 * table
    assert peak_memory_mb(_cfg("unet-resnet50", batch_size=64), []) > table


def test_jobs_and_replicas_in_the_run_identity() -> None:
    quick = _cfg("unet-mobilenetv2")
    # How many runs share the machine changes timings only, and each record says it.
    assert _cfg("unet-mobilenetv2", jobs=2).run_id == quick.run_id
    # Training on two devices is another run; one device keeps the ids stored before the field existed.
    assert _cfg("unet-mobilenetv2", replicas=2).run_id != quick.run_id
    assert "replicas" not in json.dumps(
        {k: v for k, v in quick.flat().items() if k == "replicas" and v != 1}
    )
    # Runs stored before these fields existed (and before the seed list left the identity) are
    # still found by their identity, under the ids they were stored with.
    reference = Path(__file__).resolve().parents[2] / "results" / "quick"
    stored = ResultsStore(reference).records_by_identity()
    for config in sorted((reference / "runs").glob("*/config.json"))[:5]:
        assert stored[RunConfig.from_json(config.read_text()).config_hash]["run_id"] == config.parent.name


def test_missing_ray_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from bench.execute.ray import RayExecutorError, import_ray

    monkeypatch.setitem(sys.modules, "ray", None)  # as if it were not installed
    with pytest.raises(RayExecutorError, match=r"needs Ray, which is not installed .* pip install -e '\.\[bench,ray\]'"):
        import_ray()


@pytest.mark.slow
def test_executor_arguments_are_checked_before_anything_runs(tmp_path: Path) -> None:
    out = tmp_path / "r"
    base = ["run", "--profile", "smoke", "--arch", "tinytest", "--backbone", "mobilenetv2", "--out", str(out)]
    ray_only = bench_cli(tmp_path, *base, "--cpus-per-run", "2", "--max-retries", "0")
    assert ray_only.returncode == 2
    assert "--cpus-per-run, --max-retries only applies with --executor ray" in ray_only.stderr
    no_gpus = bench_cli(tmp_path, *base, "--gpus-per-run", "2")
    assert no_gpus.returncode == 2
    assert "--gpus-per-run 2 needs 2 GPUs and this machine has 0" in no_gpus.stderr
    assert "SEGBENCH_VIRTUAL_DEVICES=2" in no_gpus.stderr
    uneven = bench_cli(tmp_path, *base, "--gpus-per-run", "3")
    assert uneven.returncode == 2 and "must divide the batch size 4" in uneven.stderr and "--batch-size 6" in uneven.stderr
    jobs_on_ray = bench_cli(tmp_path, *base, "--executor", "ray", "--jobs", "2")
    assert jobs_on_ray.returncode == 2 and "--jobs is for the local executor" in jobs_on_ray.stderr
    # Refused before the folder is claimed: not even context.json is written.
    assert not out.exists(), sorted(p.name for p in out.iterdir())


@pytest.mark.slow
def test_one_run_on_two_devices_with_mirrored_strategy(tmp_path: Path) -> None:
    """``--gpus-per-run 2`` on two logical CPUs: the MirroredStrategy path end to end."""
    out = tmp_path / "r"
    args = ["run", "--profile", "smoke", "--arch", "tinytest", "--backbone", "mobilenetv2", "--out", str(out), "--no-report"]
    done = bench_cli(tmp_path, *args, "--gpus-per-run", "2", SEGBENCH_VIRTUAL_DEVICES="2")
    assert done.returncode == 0, done.stderr[-3000:]
    single = bench_cli(tmp_path, *args)
    assert single.returncode == 0, single.stderr[-3000:]
    records = [json.loads(p.read_text()) for p in sorted(out.glob("runs/*/record.json"))]
    by_replicas = {r["config"]["replicas"]: r for r in records}
    assert set(by_replicas) == {1, 2}
    two = by_replicas[2]
    assert two["status"] == "ok", two.get("error")
    assert two["replica_devices"] == ["/job:localhost/replica:0/task:0/device:CPU:0", "/job:localhost/replica:0/task:0/device:CPU:1"]
    assert "replica_devices" not in by_replicas[1]
    assert two["run_id"] != by_replicas[1]["run_id"]
    metrics = {m["metric"]: m["value"] for m in two["metrics"]}
    assert 0 <= metrics["miou"] <= 1 and metrics["train_throughput"] > 0
    assert len(two["history"]) == PROFILES["smoke"].epochs and two["history"][0]["loss"] > 0


def test_the_log_relay_survives_a_full_disk_and_drains_the_worker(capsys: pytest.CaptureFixture[str]) -> None:
    """A full disk once killed the relay thread (a traceback on the terminal); nothing read the
    worker's pipe after that, so a chatty worker would block on it."""
    import io
    import threading

    from bench.execute.process import _Relay

    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full here to fill")
    lines = "".join(f"epoch {i}: loss {i / 10}\n" for i in range(5000))
    stream = io.StringIO(lines)
    echoed: list[str] = []
    died: list[BaseException] = []
    previous, threading.excepthook = threading.excepthook, lambda args: died.append(args.exc_value)
    try:
        relay = _Relay(stream, Path("/dev/full"), echoed.append)  # every write: ENOSPC
        relay.start()
        relay.join(timeout=30)
    finally:
        threading.excepthook = previous
    assert not relay.is_alive() and died == []
    assert stream.tell() == len(lines)  # read to the end
    assert relay.tail[-1] == "epoch 4999: loss 499.9"
    warnings = [e for e in echoed if "cannot be written" in e]
    assert len(warnings) == 1 and "/dev/full" in warnings[0] and "No space left on device" in warnings[0]
    assert len(echoed) == 5001
