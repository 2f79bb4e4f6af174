"""Sweeps on several Keras backends through the real command line, and the harness without TensorFlow.

Each backend's runs are the same models, seeds and schedule as TensorFlow's, stored side by side
with their own run ids; a TensorFlow run keeps the id it has in a TensorFlow-only sweep. Without
TensorFlow (an environment where importing it fails, sweep and workers alike) the harness runs,
lists and reports on JAX.
"""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from bench.config.modes import PARITY_TOLERANCE
from tests.support.commands import bench_cli, plugin_env
from tests.support.records import stored_records, undeclared_keys

pytest.importorskip("jax", reason="jax is not installed here: pip install -e '.[harness,jax]' (nox -s tests installs it)")

pytestmark = pytest.mark.slow

SAMPLE = Path(os.environ.get("SEGBENCH_PETS_DIR", Path(__file__).resolve().parents[3] / "shared/data/oxford-iiit-pet-sample"))

#: A short real-photo schedule: U-Net on MobileNetV2 from scratch, traced (not the smoke
#: profile's eager steps), 64 px, 8 epochs of 12 steps on the sample's 96 training images.
SHORT_SCHEDULE = ("--profile", "quick", "--image-size", "64", "--epochs", "8", "--steps-per-epoch", "12", "--seeds", "0",
                  "--patience", "0", "--val-images", "16", "--weights", "none")


def _by_backend(out: Path) -> dict[tuple[str, str], dict]:
    return {(r["model"], r["config"]["backend"]): r for r in stored_records(out)}


def _metric(record: dict, name: str) -> float:
    return next(m["value"] for m in record["metrics"] if m["metric"] == name)


def test_a_sweep_on_tensorflow_and_jax_stores_each_network_once_per_backend_at_parity(tmp_path: Path) -> None:
    """One sweep through the real CLI on both backends: a short real-photo schedule where the
    sample is (parity needs photos a network can learn), else the same schedule on synthetic data."""
    real = (SAMPLE / "annotations" / "trainval.txt").is_file()
    out = tmp_path / "two"
    data = f"dir:{SAMPLE}" if real else "synthetic"
    done = bench_cli(tmp_path, "run", *SHORT_SCHEDULE, "--arch", "unet-mobilenetv2,classical-otsu", "--data", data,
                     "--backend", "tensorflow,jax", "--out", str(out), timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    records = _by_backend(out)
    # The network once per backend; the classical method once, on the ranked backend (TensorFlow).
    assert sorted(records) == [("classical-otsu", "tensorflow"), ("unet-mobilenetv2", "jax"),
                               ("unet-mobilenetv2", "tensorflow")]
    assert all(r["status"] == "ok" for r in records.values()), [r.get("error") for r in records.values()]
    assert [undeclared_keys(r) for r in records.values()] == [set()] * 3
    tf_run, jax_run = records["unet-mobilenetv2", "tensorflow"], records["unet-mobilenetv2", "jax"]
    assert tf_run["run_id"] != jax_run["run_id"]
    assert (tf_run["env"]["keras_backend"], jax_run["env"]["keras_backend"]) == ("tensorflow", "jax")
    assert jax_run["env"]["jax_version"]
    assert jax_run["xla"] == "on" and tf_run["xla"] == "off"  # JAX compiles every step with XLA
    # Every phase measured on JAX what it measures on TensorFlow, in the same order.
    assert [m["metric"] for m in jax_run["metrics"]] == [m["metric"] for m in tf_run["metrics"]]
    assert _metric(jax_run, "params_total") == _metric(tf_run, "params_total") == 6504227
    assert _metric(jax_run, "flops_per_image") == _metric(tf_run, "flops_per_image")
    # The TensorFlow run is the very run a TensorFlow-only sweep plans: its id did not change.
    alone = bench_cli(tmp_path, "list", *SHORT_SCHEDULE, "--arch", "unet-mobilenetv2", "--data", data,
                      "--out", str(out), timeout=120)
    assert alone.returncode == 0 and tf_run["run_id"] in alone.stdout and "| done" in alone.stdout, alone.stdout
    page = (out / "leaderboard.md").read_text()
    assert "## Keras backends" in page and "Ranked on the tensorflow backend" in page
    if not real:
        pytest.skip(f"parity not checked: the Oxford-IIIT Pet sample is not at {SAMPLE} (set SEGBENCH_PETS_DIR)")
    # Parity: trained, not guessing (both past an all-background model), and within the tolerance.
    tf_miou, jax_miou = _metric(tf_run, "miou"), _metric(jax_run, "miou")
    assert min(tf_miou, jax_miou) > 0.3, (tf_miou, jax_miou)
    assert abs(jax_miou - tf_miou) <= PARITY_TOLERANCE, (tf_miou, jax_miou)


#: Importing TensorFlow (or TFDS) fails in every process that has this on its path, as in a venv
#: without them; the workers inherit it through PYTHONPATH.
_NO_TENSORFLOW = '''
import importlib.abc
import sys


class _Blocked(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in ("tensorflow", "tensorflow_datasets", "tf_keras"):
            raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)", name=name)
        return None


sys.meta_path.insert(0, _Blocked())
'''


def test_the_harness_runs_lists_and_reports_without_tensorflow(tmp_path: Path) -> None:
    blocker = tmp_path / "no_tensorflow"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(textwrap.dedent(_NO_TENSORFLOW))
    env = {"PYTHONPATH": os.pathsep.join([str(blocker), plugin_env(tmp_path)["PYTHONPATH"]]), "KERAS_BACKEND": "jax"}
    out = tmp_path / "jax"
    args = ("--profile", "smoke", "--arch", "unet-mobilenetv2,classical-otsu", "--out", str(out))
    done = bench_cli(tmp_path, "run", *args, timeout=600, **env)
    assert done.returncode == 0, done.stderr[-3000:]
    records = stored_records(out)
    assert sorted((r["model"], r["config"]["backend"], r["status"]) for r in records) == [
        ("classical-otsu", "jax", "ok"), ("unet-mobilenetv2", "jax", "ok")]
    assert {r["env"]["keras_backend"] for r in records} == {"jax"}
    listing = bench_cli(tmp_path, "list", *args, timeout=120, **env)
    assert listing.returncode == 0 and listing.stdout.count("| done") == 2, listing.stdout + listing.stderr
    report = bench_cli(tmp_path, "report", "--out", str(out), timeout=300, **env)
    assert report.returncode == 0, report.stderr[-3000:]
    page = (out / "leaderboard.md").read_text()
    assert "unet-mobilenetv2" in page and "## Keras backends" not in page  # one backend: nothing side by side
    assert set(pd.read_csv(out / "runs.csv")["keras_backend"]) == {"jax"}
    # The TFDS source is TensorFlow's: asked for without it, one line names the way out.
    tfds = bench_cli(tmp_path, "run", "--profile", "smoke", "--arch", "classical-otsu", "--data", "tfds",
                     "--out", str(tmp_path / "tfds"), timeout=120, **env)
    assert tfds.returncode != 0 and "Traceback" not in tfds.stderr, tfds.stderr[-3000:]
    assert "tensorflow" in tfds.stderr.lower() and "pip install" in tfds.stderr, tfds.stderr[-3000:]
    assert json.loads((out / "environment.json").read_text())["keras_backend"] == "jax"
