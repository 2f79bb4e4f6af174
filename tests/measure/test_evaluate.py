"""Evaluation on the device (bench.measure.run.evaluate, evaluate_mc) and the metric rows of the stored
evidence (bench.evidence.metrics.evidence_metrics), on tiny in-process models; MC dropout's identity rules."""

from __future__ import annotations

import dataclasses
import io

import keras
import numpy as np
import pytest
import tensorflow as tf

from bench.config.profiles import PROFILES
from bench.config.run_config import CLASS_NAMES, NUM_CLASSES, RunConfig
from bench.evidence.metrics import ConfusionMatrix, evidence_metrics, scores
from bench.evidence.ops import (
    SCHEMA,
    boundary_width,
    check_evidence,
    load_evidence,
    save_evidence,
)
from bench.measure.run import evaluate, evaluate_mc, gallery
from bench.measure.timing import (
    make_forward,
    make_mc_predict_fn,
    make_mc_sample_fn,
    make_predict_fn,
)

SIZE = 32


def _model(dropout: float = 0.0, nested: bool = False) -> keras.Model:
    """Conv-BN-ReLU (-Dropout) -> 1x1 logits; ``nested`` puts the dropout in an inner Sequential."""
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", use_bias=False)(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU()(x)
    if dropout and nested:
        x = keras.Sequential([keras.layers.Conv2D(8, 1), keras.layers.Dropout(dropout)])(x)
    elif dropout:
        x = keras.layers.Dropout(dropout)(x)
    return keras.Model(inputs, keras.layers.Conv2D(NUM_CLASSES, 1)(x))


def _batches(n: int = 10, batch: int = 4, seed: int = 0) -> tf.data.Dataset:
    """``n`` random images with blocky masks, in batches (the last one partial), as bench.data gives them."""
    rng = np.random.default_rng(seed)
    images = rng.random((n, SIZE, SIZE, 3), dtype=np.float32)
    masks = np.kron(rng.integers(0, 3, (n, SIZE // 8, SIZE // 8)), np.ones((8, 8), np.int64)).astype(np.uint8)
    return tf.data.Dataset.from_tensor_slices((images, masks[..., None])).batch(batch)


def _host_confusion(model: keras.Model, batches: tf.data.Dataset) -> np.ndarray:
    """The evaluation as it was before per-image evidence: logits to the host, NumPy argmax, one matrix."""
    predict = make_predict_fn(model)
    cm = ConfusionMatrix(NUM_CLASSES)
    for images, masks in batches:
        cm.update(np.asarray(masks)[..., 0], np.argmax(predict(images), axis=-1))
    return cm.matrix


def test_device_evaluation_gives_the_host_evaluations_confusion_matrix() -> None:
    keras.utils.set_random_seed(0)
    model = _model()
    batches = _batches()
    evidence = evaluate(make_forward(model), batches)
    pooled = evidence["confusion"].sum(axis=0, dtype=np.int64)
    host = _host_confusion(model, batches)
    assert evidence["confusion"].shape == (10, 3, 3) and evidence["image_index"].tolist() == list(range(10))
    assert host.sum() == 10 * SIZE * SIZE and host[:, 1:].sum() > 0  # more than one class predicted
    np.testing.assert_array_equal(pooled, host)
    assert scores(pooled, CLASS_NAMES) == scores(host, CLASS_NAMES)
    assert int(evidence["boundary_width"]) == boundary_width(SIZE) == 1
    check_evidence(evidence)


def test_evidence_npz_follows_the_schema_at_tens_of_bytes_per_image(tmp_path) -> None:
    keras.utils.set_random_seed(0)
    model = _model()
    forward = make_forward(model)
    sizes = {}
    for n in (16, 48):
        evidence = evaluate(forward, _batches(n, batch=8, seed=n))
        save_evidence(tmp_path / f"{n}.npz", evidence)
        loaded = load_evidence(tmp_path / f"{n}.npz")
        assert set(loaded) <= set(SCHEMA) and {"confusion", "nll_sum", "calibration_count"} <= set(loaded)
        assert all(loaded[k].dtype == np.dtype(SCHEMA[k][0]) for k in loaded)
        sizes[n] = (tmp_path / f"{n}.npz").stat().st_size
    per_image = (sizes[48] - sizes[16]) / 32
    print(f"evidence.npz: {sizes} bytes, {per_image:.0f} bytes per extra image")
    assert 10 < per_image < 100


def test_classical_segmenter_has_evidence_but_no_calibration() -> None:
    from segmodels.classical import build_classical_model

    model = build_classical_model("otsu", input_shape=(SIZE, SIZE, 3))
    evidence = evaluate(make_forward(model), _batches(6), calibration=False)
    assert not {"nll_sum", "brier_sum", "calibration_count"} & set(evidence)
    np.testing.assert_array_equal(evidence["confusion"].sum(0), _host_confusion(model, _batches(6)))
    rows = evidence_metrics(evidence)
    assert {"miou_per_image", "fg_iou", "boundary_iou", "boundary_width_px"} <= set(rows)
    assert not {"ece", "nll", "brier"} & set(rows) and not any(k.startswith("mc_") for k in rows)


def test_deep_model_metric_rows_come_from_the_evidence() -> None:
    keras.utils.set_random_seed(0)
    evidence = evaluate(make_forward(_model()), _batches())
    rows = evidence_metrics(evidence)
    assert {"miou_per_image", "fg_iou", "boundary_iou", "ece", "nll", "brier"} <= set(rows)
    assert {"dice_pet", "dice_pet_per_image", "precision_pet", "recall_pet"} <= set(rows)
    iou = rows["fg_iou"][0]  # the same pixels: pooled Dice is 2 J / (1 + J) of the foreground IoU J
    assert rows["dice_pet"] == (pytest.approx(2 * iou / (1 + iou)), "ratio")
    assert rows["boundary_width_px"] == (1.0, "px") and rows["nll"][1] == "nats"
    assert all(np.isfinite(v) for v, _ in rows.values())
    assert 0 <= rows["ece"][0] <= 1 and 0 <= rows["brier"][0] <= 2


def _mc_evidence(seed: int, nested: bool = False) -> tuple[dict[str, np.ndarray], np.ndarray]:
    keras.utils.set_random_seed(0)  # the same weights; only the sampling seed varies
    model = _model(dropout=0.5, nested=nested)
    sample = make_mc_sample_fn(model, seed)
    evidence = evaluate_mc(sample, _batches(), num_samples=5)
    pictures = gallery(make_predict_fn(model), _batches().unbatch(), 2, make_mc_predict_fn(sample, 5))
    return evidence, pictures["uncertainty"]


def test_mc_evaluation_is_reproducible_for_a_seed_and_complete() -> None:
    first, uncertainty = _mc_evidence(3)
    again, uncertainty_again = _mc_evidence(3)
    other, _ = _mc_evidence(4)
    assert first.keys() == again.keys() and all(np.array_equal(first[k], again[k]) for k in first)
    np.testing.assert_array_equal(uncertainty, uncertainty_again)
    assert not np.array_equal(first["mc_nll_sum"], other["mc_nll_sum"])
    assert first["mc_curve_samples"].tolist() == [1, 2, 5] and first["mc_confusion"].shape == (10, 3, 3)
    assert first["mc_confusion"].sum() == 10 * SIZE * SIZE
    # The curve's last point is the per-image MC prediction, pooled.
    np.testing.assert_array_equal(first["mc_curve_confusion"][-1], first["mc_confusion"].sum(0))
    assert uncertainty.dtype == np.float16 and uncertainty.shape == (2, SIZE, SIZE)
    assert uncertainty.min() >= 0 and uncertainty.max() <= np.log(3) + 1e-3
    deterministic = evaluate(make_forward(_model(dropout=0.5)), _batches())
    evidence = {**deterministic, **first}
    check_evidence(evidence)
    rows = evidence_metrics(evidence)
    mc = {"mc_miou", "mc_ece", "mc_nll", "mc_brier", "mc_auroc", "mc_pavpu", "mc_samples"}
    assert mc <= set(rows) and rows["mc_samples"] == (5.0, "count")


def test_mc_sampling_reaches_dropout_inside_a_nested_model_and_keeps_inference_bn() -> None:
    evidence, _ = _mc_evidence(1, nested=True)
    assert len(np.unique(evidence["mc_nll_sum"])) > 1
    keras.utils.set_random_seed(0)
    model = _model(dropout=0.5, nested=True)
    images = next(iter(_batches()))[0]
    sample = make_mc_sample_fn(model, 0)
    a, b = sample(images).numpy(), sample(images).numpy()
    assert not np.array_equal(a, b)  # new masks every call
    np.testing.assert_array_equal(model(images, training=False), model(images, training=False))  # the model itself stays deterministic
    with pytest.raises(ValueError, match="no Dropout layer"):
        make_mc_sample_fn(_model(), 0)


# === Run identity and the profile ===


def _config(architecture: str, **profile: object) -> RunConfig:
    return RunConfig(architecture, "mobilenetv2", 0, PROFILES["quick"].override(**profile), "synthetic", "f")


def test_mc_settings_count_in_the_identity_of_mc_runs_only() -> None:
    unet = _config("unet")
    assert unet.mc_samples == 0 and not any(k.startswith("profile.mc_") for k in unet.identity())
    assert unet.run_id == _config("unet", mc_samples=30, mc_models=("fcn*",)).run_id
    assert unet.run_id == _config("unet", mc_samples=0, mc_models=()).run_id  # the stored runs' defaults
    bayes = _config("bayesian_segnet")
    assert bayes.mc_samples == 8 and bayes.identity()["profile.mc_samples"] == 8
    assert "profile.mc_models" not in bayes.identity()
    assert bayes.run_id != _config("bayesian_segnet", mc_samples=20).run_id
    assert bayes.run_id == _config("bayesian_segnet", mc_models=("bayesian_*", "unet")).run_id
    # Without MC, a Bayesian SegNet run is the run stored before these settings existed.
    assert _config("bayesian_segnet", mc_samples=0).run_id == _config("bayesian_segnet", mc_models=()).run_id
    fcn = _config("fcn8s", mc_models=("bayesian_segnet", "fcn*"))
    assert fcn.mc_samples == 8 and _config("fcn8s", mc_models=("fcn8s-mobilenetv2",)).mc_samples == 8
    assert _config("fcn8s", mc_models=("fcn8s-resnet50",)).mc_samples == 0
    assert RunConfig("classical", "otsu", 0, PROFILES["quick"].override(mc_models=("*",)), "synthetic", "f").mc_samples == 0
    # The settings do not split a comparison context; a config without them (an older record) reads back.
    assert unet.context_id == _config("unet", mc_samples=50).context_id == bayes.context_id
    raw = unet.as_dict()
    del raw["profile"]["mc_samples"], raw["profile"]["mc_models"]
    old = RunConfig.from_dict(raw)
    assert old.run_id == unet.run_id and old.context_id == unet.context_id
    assert RunConfig.from_json(bayes.to_json()) == bayes


def test_profiles_set_and_check_the_mc_settings() -> None:
    from bench.config.profiles import ProfileError

    assert [PROFILES[n].mc_samples for n in ("smoke", "quick", "full")] == [2, 8, 50]
    assert all(p.mc_models == ("bayesian_segnet",) for p in PROFILES.values())
    with pytest.raises(ProfileError, match="--mc-samples"):
        PROFILES["quick"].override(mc_samples=-1)
    with pytest.raises(ProfileError, match="--mc-models"):
        PROFILES["quick"].override(mc_models=("",))
    assert dataclasses.replace(PROFILES["quick"], mc_samples=0).mc_samples == 0


def test_mc_flags_parse_and_a_glob_matching_nothing_is_a_usage_error() -> None:
    from bench.arguments import UsageError, build_parser
    from bench.cli import resolve_profile

    parse = build_parser().parse_args
    profile = resolve_profile(parse(["run", "--mc-samples", "3", "--mc-models", "bayesian_segnet, fcn*"]))
    assert profile.mc_samples == 3 and profile.mc_models == ("bayesian_segnet", "fcn*")
    assert resolve_profile(parse(["list", "--mc-models", ""])).mc_models == ()
    with pytest.raises(UsageError, match="--mc-models 'bayes' matches no model"):
        resolve_profile(parse(["run", "--mc-models", "bayes"]))
    with pytest.raises(UsageError, match="--mc-samples"), io.StringIO() as sink:
        import contextlib

        with contextlib.redirect_stderr(sink):
            parse(["run", "--mc-samples", "-1"])


# === Through the command line (worker processes) ===

MC_METRICS = {"mc_miou", "mc_ece", "mc_nll", "mc_brier", "mc_auroc", "mc_pavpu", "mc_latency_ms", "mc_samples",
              "mc_eval_time_s"}


@pytest.mark.slow
def test_smoke_sweep_stores_evidence_and_reproducible_mc_metrics_for_bayesian_segnet(tmp_path) -> None:
    import json

    from tests.support.commands import bench_cli
    from tests.support.records import undeclared_keys

    def sweep(out, *args):
        done = bench_cli(tmp_path, "run", "--profile", "smoke", "--backbone", "mobilenetv2", "--out", str(out),
                         "--no-report", *args, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        records = [json.loads(p.read_text()) for p in out.glob("runs/*/record.json")]
        return {r["architecture"]: r for r in records}

    # U-Net is asked for MC too: it has no dropout layer, so it is evaluated without, and says so.
    a = sweep(tmp_path / "a", "--arch", "bayesian_segnet,unet", "--mc-models", "bayesian_segnet,unet")
    b = sweep(tmp_path / "b", "--arch", "bayesian_segnet")
    first, again = a["bayesian_segnet"], b["bayesian_segnet"]
    assert first["run_id"] == again["run_id"] and first["mc_dropout"] == {"samples": 2, "seed": 0, "dropout_layers": 5}
    assert undeclared_keys(first) == undeclared_keys(a["unet"]) == set()
    metrics = {m["metric"]: m["value"] for m in first["metrics"]}
    assert MC_METRICS | {"miou_per_image", "fg_iou", "boundary_iou", "ece", "nll", "brier"} <= set(metrics)
    assert metrics["mc_samples"] == 2 and metrics["boundary_width_px"] == first["boundary_width_px"] == 2
    repeated = {m["metric"]: m["value"] for m in again["metrics"]}
    quality = {k for k in metrics if k.startswith("mc_") and k not in ("mc_latency_ms", "mc_eval_time_s")}
    assert {k: metrics[k] for k in quality} == {k: repeated[k] for k in quality}  # seeded: the same numbers
    folder = tmp_path / "a" / "runs" / first["run_id"]
    evidence = load_evidence(folder / "evidence.npz")
    assert evidence["confusion"].shape == (8, 3, 3) and evidence["mc_confusion"].shape == (8, 3, 3)
    assert evidence["confusion"].sum(0).tolist() == first["confusion_matrix"]
    again_evidence = load_evidence(tmp_path / "b" / "runs" / again["run_id"] / "evidence.npz")
    assert all(np.array_equal(evidence[k], again_evidence[k]) for k in evidence)
    with np.load(folder / "predictions.npz") as npz:
        assert npz["uncertainty"].dtype == np.float16 and npz["uncertainty"].shape == (4, 64, 64)

    unet = a["unet"]
    unet_metrics = {m["metric"] for m in unet["metrics"]}
    assert not unet_metrics & MC_METRICS and {"ece", "boundary_iou"} <= unet_metrics
    assert any("no dropout layer" in note for note in unet["notes"])
    with np.load(tmp_path / "a" / "runs" / unet["run_id"] / "predictions.npz") as npz:
        assert "uncertainty" not in npz.files
