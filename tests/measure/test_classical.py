"""Classical segmenters in the harness: selected by the globs, run and stored like any model.

The end-to-end test runs two classical methods through the real command line on the smoke
profile (a few seconds each: nothing is trained) and renders the report from what they stored.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench.arguments import build_parser
from bench.cli import resolve_pairs
from bench.config.profiles import PROFILES
from bench.plan.matrix import DataChoice, plan, select_models
from tests.support.commands import bench_cli, plugin_env
from tests.support.records import undeclared_keys

METHODS = ["canny", "felzenszwalb", "otsu", "slic", "sobel", "watershed"]
CLASSICAL = [("classical", m) for m in METHODS]


def _classical(pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return sorted(p for p in pairs if p[0] == "classical")


@pytest.mark.parametrize("arch", ["classical-*", "classical", "class*", "classical-*,unet"])
def test_arch_globs_select_every_classical_method(arch: str) -> None:
    assert _classical(select_models(arch, "*")) == CLASSICAL


def test_backbone_glob_selects_the_method() -> None:
    assert select_models("classical-*", "canny") == [("classical", "canny")]
    assert sorted(select_models("*", "canny,otsu")) == [("classical", "canny"), ("classical", "otsu")]
    assert select_models("classical-s*", "*") == [("classical", "slic"), ("classical", "sobel")]


def test_default_matrix_is_deep_plus_classical() -> None:
    import segmodels

    everything = select_models("*", "*")
    assert _classical(everything) == CLASSICAL
    assert sorted(f"{a}-{b}" for a, b in everything if a != "classical") == sorted(segmodels.list_models())
    # Deep selections do not drag classical methods in, and the model id works as an --arch glob.
    assert _classical(select_models("unet", "*")) == []
    assert _classical(select_models("*", "mobilenetv2")) == []
    assert select_models("unet-mobilenetv2", "*") == [("unet", "mobilenetv2")]


def test_no_match_lists_the_classical_models() -> None:
    from bench.arguments import UsageError

    args = build_parser().parse_args(["run", "--arch", "classical-*", "--backbone", "cany"])
    with pytest.raises(UsageError, match="classical-canny"):
        resolve_pairs(args, PROFILES["quick"])


def _data() -> DataChoice:
    return DataChoice("synthetic", {"fingerprint": "f00d", "synthetic": True})


def test_classical_runs_once_first_and_keep_their_id_under_training_overrides() -> None:
    import dataclasses

    quick = PROFILES["quick"]
    runs = plan(quick, [("unet", "mobilenetv2"), ("classical", "canny")], _data())
    assert [r.model for r in runs] == ["classical-canny", *["unet-mobilenetv2"] * len(quick.seeds)]
    canny = runs[0]
    assert canny.seed == 0 and canny.run_id.startswith("classical-canny-s0-")
    # Training settings and seeds do not change what a classical run measures, nor its id ...
    trained_longer = dataclasses.replace(quick, epochs=7, batch_size=32, weights="none", seeds=(1, 2, 3))
    again = plan(trained_longer, [("unet", "mobilenetv2"), ("classical", "canny")], _data())
    assert [r.model for r in again] == ["classical-canny", "unet-mobilenetv2", "unet-mobilenetv2", "unet-mobilenetv2"]
    assert again[0].run_id == canny.run_id
    assert again[1].run_id != runs[1].run_id
    # ... but the image size and the timing do.
    bigger = plan(dataclasses.replace(quick, image_size=160), [("classical", "canny")], _data())
    assert bigger[0].run_id != canny.run_id


def test_list_shows_the_classical_models(tmp_path: Path) -> None:
    done = bench_cli(tmp_path, "list", "--profile", "smoke", "--arch", "classical-*", "--out", str(tmp_path / "r"), timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    for method in METHODS:
        assert f"classical-{method}" in done.stdout
    assert "6 runs" in done.stdout


TRACED_PREDICT = """
import numpy as np, tensorflow as tf
from bench.measure.timing import example_batch, make_predict_fn
from segmodels.classical import build_classical_model, segment
tf.config.experimental.enable_op_determinism()
images = example_batch(3, 64, seed=1)
for method in ("canny", "slic"):
    predict = make_predict_fn(build_classical_model(method, input_shape=(64, 64, 3)))
    scores = predict(images)
    assert isinstance(scores, np.ndarray) and scores.shape == (3, 64, 64, 3), scores.shape
    expected = np.stack([segment(image, method) for image in images.numpy()])
    np.testing.assert_array_equal(scores.argmax(-1), expected)
    np.testing.assert_array_equal(predict(images[:1]).argmax(-1), expected[:1])  # another batch size, same trace
print("ok")
"""


def test_classical_model_in_the_traced_predict_function_under_op_determinism(tmp_path: Path) -> None:
    """The harness's timed callable (a traced tf.function) runs tf.numpy_function under op
    determinism and gives segment()'s masks; a subprocess, because op determinism is process-wide."""
    done = subprocess.run([sys.executable, "-c", TRACED_PREDICT], env=plugin_env(tmp_path), capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-3000:]


@pytest.mark.slow
def test_classical_sweep_end_to_end_through_the_cli(tmp_path: Path) -> None:
    out = tmp_path / "smoke"
    done = bench_cli(tmp_path, "run", "--profile", "smoke", "--arch", "classical-*", "--backbone", "canny,otsu", "--out", str(out), timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    runs = pd.read_csv(out / "runs.csv")
    assert sorted(runs["model"]) == ["classical-canny", "classical-otsu"]
    assert (runs["status"] == "ok").all() and (runs["family"] == "classical").all()
    assert (runs["weights"] == "none").all() and (runs["seed"] == 0).all()
    by = pd.read_csv(out / "metrics.csv").set_index(["model", "metric"])["value"]
    for model in ["classical-canny", "classical-otsu"]:
        assert by[model, "params_total"] == 0 and by[model, "params_trainable"] == 0
        assert by[model, "train_time_s"] == 0
        assert 0 < by[model, "latency_p50_ms"] <= by[model, "latency_p95_ms"]
        assert by[model, "inference_throughput"] > 0
        assert 0 <= by[model, "miou"] <= 1
        assert (model, "flops_per_image") not in by.index  # unknown, not 0: numpy work is invisible to the profiler
    assert pd.read_csv(out / "history.csv").empty
    families = {}
    for run_id in runs["run_id"]:
        record = json.loads((out / "runs" / run_id / "record.json").read_text())
        families[record["model"]] = record["classical_family"]
        assert undeclared_keys(record) == set()
        with np.load(out / "runs" / run_id / "predictions.npz") as npz:
            assert npz["predictions"].shape == npz["masks"].shape == (4, 64, 64)
            assert set(np.unique(npz["predictions"])) <= {0, 1, 2}
    assert families == {"classical-canny": "edge", "classical-otsu": "region"}
    # The report rendered at the end of the sweep, from these stored runs only.
    markdown = (out / "leaderboard.md").read_text(encoding="utf-8")
    section = markdown.split("## Edge-based vs region-based", 1)[1].split("\n## ", 1)[0]
    assert "| classical-canny | canny    | edge" in section and "| classical-otsu  | otsu     | region" in section
    canny, otsu = by["classical-canny", "miou"], by["classical-otsu", "miou"]
    assert f"**Edge-based** (classical-canny): mean mIoU {canny:.3f} over 1 method" in section
    assert f"**Region-based** (classical-otsu): mean mIoU {otsu:.3f} over 1 method" in section
    assert "**Best deep model:** none finished" in section
    assert "![Classical segmentations](classical_gallery.png)" in section
    assert (out / "classical_gallery.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "classical-canny *(classical)*" in markdown
