"""The Keras backend as a recorded choice: parsed, defaulted from $KERAS_BACKEND, in a run's
identity only where it is not TensorFlow, planned once per backend, set in each worker."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.cli import main
from bench.config.backends import BackendError, default_backends, parse_backends
from bench.config.profiles import PROFILES
from bench.config.run_config import RunConfig
from bench.plan.matrix import DataChoice, plan

REPO = Path(__file__).resolve().parents[2]


def test_parse_keeps_the_order_given_once_each() -> None:
    assert parse_backends("jax, tensorflow,JAX") == ("jax", "tensorflow")
    with pytest.raises(BackendError, match="cntk is not a Keras backend"):
        parse_backends("tensorflow,cntk")
    with pytest.raises(BackendError, match="empty"):
        parse_backends(" , ")


def test_the_default_is_keras_backend_else_tensorflow() -> None:
    assert default_backends({}) == ("tensorflow",)
    assert default_backends({"KERAS_BACKEND": "jax"}) == ("jax",)
    assert default_backends({"KERAS_BACKEND": " "}) == ("tensorflow",)


def test_stored_runs_keep_their_ids_and_another_backend_is_another_run() -> None:
    records = sorted((REPO / "results").glob("*/runs/*/record.json"))
    assert records
    for path in records:
        record = json.loads(path.read_text())
        cfg = RunConfig.from_dict(record["config"])  # stored before the field existed: tensorflow
        assert cfg.backend == "tensorflow" and cfg.run_id == record["run_id"] == path.parent.name
    cfg = RunConfig("unet", "mobilenetv2", 0, PROFILES["quick"], "synthetic", "f" * 64)
    on_jax = RunConfig("unet", "mobilenetv2", 0, PROFILES["quick"], "synthetic", "f" * 64, backend="jax")
    assert on_jax.run_id != cfg.run_id and on_jax.identity()["backend"] == "jax" and "backend" not in cfg.identity()
    # One comparison context: a folder holds a model's runs on every backend, side by side.
    assert on_jax.context_id == cfg.context_id
    assert RunConfig.from_dict(json.loads(on_jax.to_json())) == on_jax


def test_each_network_is_planned_once_per_backend_and_a_classical_method_once() -> None:
    pairs = [("unet", "mobilenetv2"), ("classical", "otsu")]
    runs = plan(PROFILES["smoke"], pairs, DataChoice("synthetic", {"fingerprint": "f" * 64}), backends=("tensorflow", "jax"))
    assert [(c.model, c.backend) for c in runs] == [
        ("classical-otsu", "tensorflow"), ("unet-mobilenetv2", "tensorflow"), ("unet-mobilenetv2", "jax"),
    ]
    assert len({c.run_id for c in runs}) == 3


def test_list_plans_every_backend_side_by_side(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["list", "--profile", "smoke", "--arch", "unet", "--backbone", "mobilenetv2", "--out", str(tmp_path / "r")]
    assert main([*argv, "--backend", "tensorflow,jax"]) == 0
    out = capsys.readouterr().out
    assert "| model            | backend    |" in out and out.count("| unet-mobilenetv2 |") == 2
    assert "| jax        |" in out and not (tmp_path / "r").exists()


def test_the_worker_gets_the_runs_backend_not_the_sweeps(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """process.run_worker's environment: what Keras will load in the worker is the run's backend."""
    import bench.execute.process as process

    seen = {}

    class Stop(Exception):
        pass

    def popen(cmd, env, **kwargs):  # the signature run_worker calls it with
        seen.update(env)
        raise Stop

    monkeypatch.setenv("KERAS_BACKEND", "torch")
    monkeypatch.setattr(process.subprocess, "Popen", popen)
    cfg = RunConfig("unet", "mobilenetv2", 0, PROFILES["smoke"], "synthetic", "f" * 64, backend="jax")
    with pytest.raises(Stop):
        process.run_worker(cfg, tmp_path, timeout_s=None, echo=None)
    assert seen["KERAS_BACKEND"] == "jax"


@pytest.mark.parametrize("backend", ["tensorflow", "jax"])
def test_the_environment_names_the_backend_and_its_versions(backend: str) -> None:
    """envinfo.collect under each installed backend, in a fresh interpreter (Keras picks its
    backend once): the backend, the installed backends' versions, and the device."""
    pytest.importorskip(backend)
    code = "import json; from bench.measure import envinfo; print(json.dumps(envinfo.collect()))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=REPO,
                          env={**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert done.returncode == 0, done.stderr[-2000:]
    env = json.loads(done.stdout.strip().splitlines()[-1])
    assert env["keras_backend"] == backend and env["keras_version"]
    assert env["tf_version"].startswith("2.")  # installed beside, read from its metadata
    assert bool(env["jax_version"]) == (importlib.util.find_spec("jax") is not None)
    assert env["device"].startswith("CPU: ") or env["gpu_name"]
