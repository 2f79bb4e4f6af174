"""Training to a plateau: the validation split, validation that sees what training learned, early
stopping with the best epoch restored, and the cost runs of the networks a profile does not train."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from bench.config.profiles import PROFILES, ProfileError
from bench.config.run_config import RunConfig
from bench.data.split import carve, choose_validation
from bench.measure.precise_bn import PreciseBN
from bench.measure.run import training_stop
from bench.measure.train import train
from bench.measure.validation import MONITOR, Validation
from bench.plan.matrix import COST_SEED, DataChoice, plan
from bench.report import render_report
from bench.store.record import STOP_ALL_EPOCHS, STOP_CAP_STILL_IMPROVING, STOP_PLATEAU
from tests.support.report_fixture import run_config, write_results

# === The validation split ===


def test_the_validation_split_is_seeded_and_the_same_for_every_run() -> None:
    a = choose_validation(112, 16, seed=0, dataset_fingerprint="fp")
    assert a == choose_validation(112, 16, seed=0, dataset_fingerprint="fp")  # any model, any training seed
    assert a.indices != choose_validation(112, 16, seed=1, dataset_fingerprint="fp").indices
    assert len(set(a.indices)) == 16 and list(a.indices) == sorted(a.indices) and min(a.indices) >= 0
    assert max(a.indices) < 112 and a.train_size == 96
    # The fingerprint names the images of this dataset: another dataset, another fingerprint.
    assert a.fingerprint != choose_validation(112, 16, seed=0, dataset_fingerprint="other").fingerprint


def test_carving_keeps_every_training_image_once_and_never_touches_the_test_split() -> None:
    split = choose_validation(20, 5, seed=3, dataset_fingerprint="fp")
    ds = tf.data.Dataset.range(100, 120).map(lambda i: (i, -i))  # (image, mask) stand-ins, in a fixed order
    train_ds, val_ds = carve(ds, split)
    train_ids = [int(x) for x, _ in train_ds]
    val_ids = [int(x) for x, _ in val_ds]
    assert val_ids == [100 + i for i in split.indices]
    assert sorted(train_ids + val_ids) == list(range(100, 120)) and not set(train_ids) & set(val_ids)


@pytest.mark.parametrize("size", [0, 20, 25])
def test_a_validation_split_that_leaves_nothing_to_train_on_is_refused(size: int) -> None:
    with pytest.raises(ValueError, match=r"--val-images .* pass at most 19"):
        choose_validation(20, size, seed=0, dataset_fingerprint="fp")


def test_early_stopping_without_a_validation_split_is_refused_by_name() -> None:
    with pytest.raises(ProfileError, match="--patience 3 needs a validation split.*--val-images"):
        PROFILES["quick"].override(val_images=0, patience=3)


# === Validation that measures what training learned ===


def _task(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Images whose class is readable from the pixel: a model from scratch learns it in a few steps."""
    rng = np.random.default_rng(seed)
    images = rng.uniform(0, 1, (n, 16, 16, 3)).astype(np.float32)
    masks = np.digitize(images[..., :1], [0.33, 0.66]).astype(np.uint8)  # class from the red channel
    images[..., 1:] *= 0.1
    return images, masks


def _bn_model() -> keras.Model:
    """A small network with keras.applications' MobileNetV2 BatchNorm momentum (0.999)."""
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(8, 3, padding="same")(inputs)
    x = keras.layers.BatchNormalization(momentum=0.999)(x)
    x = keras.layers.ReLU()(x)
    return keras.Model(inputs, keras.layers.Conv2D(3, 1)(x))


def _batches(images: np.ndarray, masks: np.ndarray, batch: int) -> tf.data.Dataset:
    return tf.data.Dataset.from_tensor_slices((images, masks)).batch(batch)


def _fit(validation: Validation, epochs: int, patience: int = 0, seed: int = 0):
    keras.utils.set_random_seed(seed)
    model = _bn_model()
    images, masks = _task(64, seed=1)
    result = train(
        model, _batches(images, masks, 16).repeat(), epochs=epochs, steps_per_epoch=4, batch_size=16,
        learning_rate=1e-2, verbose=0, validation=validation, patience=patience,
    )
    return model, result


def _validation(precise_bn: int) -> Validation:
    images, masks = _task(32, seed=2)
    train_images, train_masks = _task(64, seed=1)
    bn = iter(_batches(train_images, train_masks, 16).repeat()) if precise_bn else None
    return Validation(_batches(images, masks, 16), bn, precise_bn)


def test_validation_after_precise_bn_moves_with_training_where_the_moving_statistics_stay_blind() -> None:
    _, blind = _fit(_validation(precise_bn=0), epochs=8)
    _, seeing = _fit(_validation(precise_bn=2), epochs=8)
    blind_curve = [row[MONITOR] for row in blind.history]
    curve = [row[MONITOR] for row in seeing.history]
    # The same training: with momentum 0.999 the moving statistics after 32 steps are still ~97% their
    # initial values, and inference-mode validation scores what an untrained model would.
    assert [row["loss"] for row in blind.history] == pytest.approx([row["loss"] for row in seeing.history])
    assert max(blind_curve) < 0.25 and max(curve) > 0.55
    assert curve == sorted(curve)  # it climbs as the training loss falls
    assert all(0 <= row["val_accuracy"] <= 1 and row["val_loss"] > 0 for row in seeing.history)


def test_precise_bn_traces_once_however_often_it_recomputes() -> None:
    model = _bn_model()
    images, masks = _task(32, seed=0)
    precise = PreciseBN(model)
    batches = iter(_batches(images, masks, 8).repeat())
    assert precise.recompute(batches, 2) == 1 and precise.recompute(batches, 2) == 1
    assert precise._forward.experimental_get_tracing_count() == 1
    assert model.layers[2].momentum == 0.999  # put back after each recomputation


# === Early stopping ===


class ScriptedValidation(Validation):
    """A validation whose mIoU per epoch is given, and which keeps each epoch's weights."""

    def __init__(self, scores: list[float]) -> None:
        super().__init__(batches=None, bn_batches=None, bn_batches_per_epoch=0)
        self.scores = scores
        self.weights: list[list[np.ndarray]] = []

    def measure(self) -> dict[str, float]:
        self.weights.append([w.copy() for w in self.model.get_weights()])
        return {"val_loss": 1.0, "val_accuracy": 0.5, MONITOR: self.scores[len(self.weights) - 1]}


def test_training_stops_on_its_plateau_and_goes_on_with_the_best_epochs_weights() -> None:
    scripted = ScriptedValidation([0.30, 0.50, 0.45, 0.40, 0.60, 0.70])
    model, result = _fit(scripted, epochs=6, patience=2)
    assert (result.epochs_run, result.best_epoch, result.stopped_early) == (4, 2, True)
    assert result.best_val_miou == result.tested_val_miou == 0.50 and result.restored_best
    for restored, best in zip(model.get_weights(), scripted.weights[1], strict=True):
        np.testing.assert_array_equal(restored, best)


def test_a_run_still_improving_at_the_cap_says_so() -> None:
    model, result = _fit(ScriptedValidation([0.3, 0.4, 0.5]), epochs=3, patience=2)
    assert (result.epochs_run, result.best_epoch, result.stopped_early, result.restored_best) == (3, 3, False, True)
    stop = training_stop(result, epoch_cap=3, patience=2)
    assert stop["reason"] == STOP_CAP_STILL_IMPROVING and stop["still_improving"]


def test_without_early_stopping_the_last_epochs_weights_are_tested_and_said_to_be() -> None:
    scripted = ScriptedValidation([0.3, 0.6, 0.4])
    model, result = _fit(scripted, epochs=3, patience=0)
    assert (result.best_epoch, result.best_val_miou, result.restored_best) == (2, 0.6, False)
    assert result.tested_val_miou == 0.4  # the weights the test will see are the last epoch's
    for kept, last in zip(model.get_weights(), scripted.weights[-1], strict=True):
        np.testing.assert_array_equal(kept, last)
    assert training_stop(result, epoch_cap=3, patience=0)["reason"] == STOP_ALL_EPOCHS


# === Cost runs ===


def test_a_profile_trains_the_networks_it_names_and_costs_the_others_once() -> None:
    profile = PROFILES["quick"].override(seeds=(0, 1, 2))
    data = DataChoice(spec="synthetic", provenance={"fingerprint": "fp", "synthetic": True})
    runs = plan(profile, [("classical", "otsu"), ("unet", "mobilenetv2"), ("unet", "resnet50")], data)
    parts = [(c.model, c.seed, c.trains, c.evaluated) for c in runs]
    assert parts == [
        ("classical-otsu", 0, False, True),
        ("unet-mobilenetv2", 0, True, True), ("unet-mobilenetv2", 1, True, True), ("unet-mobilenetv2", 2, True, True),
        ("unet-resnet50", COST_SEED, False, False),  # once, and last: the ranking is complete first
    ]
    cost = runs[-1]
    # Nothing a cost run measures depends on training or the test split: changing them keeps its id.
    longer = dataclasses.replace(cost, profile=profile.override(epochs=99, patience=9, max_test_examples=5))
    assert longer.run_id == cost.run_id
    # ... but the weights it builds change what it measures (trainable parameters, memory).
    random = dataclasses.replace(cost, profile=profile.override(weights="none", freeze_encoder=False))
    assert random.run_id != cost.run_id
    trained = runs[1]
    assert dataclasses.replace(trained, profile=profile.override(epochs=99)).run_id != trained.run_id


def test_stored_runs_keep_their_ids_under_the_new_fields() -> None:
    # A run of a profile from before validation existed: the new fields at the defaults it implicitly had.
    stored = RunConfig("unet", "mobilenetv2", 0, PROFILES["full"].override(val_images=0, patience=0, trained_models=("*",)),
                       "tfds", "fp")
    flat = stored.identity()
    assert not any(k in flat for k in ("profile.val_images", "profile.patience", "profile.trained_models"))


def test_cost_runs_are_never_ranked_and_get_a_table_without_accuracy(tmp_path: Path) -> None:
    root = write_results(tmp_path)
    runs = pd.read_csv(root / "runs.csv")
    cost = runs[runs["model"] == "unet-mobilenetv2"].iloc[[0]].assign(
        run_id="fcn8s-resnet101-s0", model="fcn8s-resnet101", architecture="fcn8s", backbone="resnet101",
        cost_only=True)
    pd.concat([runs.assign(cost_only=False), cost]).to_csv(root / "runs.csv", index=False)
    metrics = pd.read_csv(root / "metrics.csv")
    key = {"run_id": "fcn8s-resnet101-s0", "model": "fcn8s-resnet101", "architecture": "fcn8s",
           "backbone": "resnet101", "seed": 0, "profile": "smoke", "dataset": "oxford_iiit_pet"}
    rows = [{**key, "metric": m, "value": v, "unit": u} for m, v, u in (
        ("params_total", 4.5e8, "count"), ("latency_p50_ms", 321.0, "ms"), ("latency_p95_ms", 350.0, "ms"),
        ("inference_throughput", 3.0, "images/s"), ("peak_rss_mb", 9000.0, "MB"), ("flops_per_image", 9e10, "flops"))]
    pd.concat([metrics, pd.DataFrame(rows)]).to_csv(root / "metrics.csv", index=False)
    text = render_report(root).read_text()
    leaderboard, _, rest = text.partition("## Costs of the networks not trained")
    assert "fcn8s-resnet101" not in leaderboard  # no rank, no figure caption, no test
    table = rest.split("\n## ", 1)[0]
    assert "| fcn8s-resnet101 |" in table and "321.0 / 350.0" in table and "450.0" in table
    assert "mIoU" not in table and "nothing about how well it segments" in table
    # "At a glance" ranks the evaluated models and says whom its claims leave out.
    glance = text.split("## At a glance", 1)[1].split("\n## ", 1)[0]
    assert "**Not in these claims:** the 1 network of this sweep that was only built and timed" in glance
    assert "(#costs-of-the-networks-not-trained)" in glance


def test_the_training_section_says_how_each_seed_stopped_and_marks_the_leaderboard(tmp_path: Path) -> None:
    root = write_results(tmp_path)
    runs = pd.read_csv(root / "runs.csv")
    deep = runs["family"] != "classical"
    runs["stop_reason"] = ""
    runs.loc[deep, "stop_reason"] = STOP_PLATEAU
    runs.loc[(runs["model"] == "unet-mobilenetv2") & (runs["seed"] == 1), "stop_reason"] = STOP_CAP_STILL_IMPROVING
    for key, value in (("val_images", 16), ("patience", 5), ("epochs", 30), ("val_seed", 0)):
        runs[f"config.profile.{key}"] = value
    runs.to_csv(root / "runs.csv", index=False)
    text = render_report(root).read_text()
    leaderboard = text.split("## Leaderboard", 1)[1].split("\n## ", 1)[0]
    assert "unet-mobilenetv2 †" in leaderboard and "unet-resnet50 †" not in leaderboard
    section = text.split("## Training\n", 1)[1].split("\n## ", 1)[0]
    assert "16 images held out of the training split" in section and "no test image is used" in section
    assert "not improved for 5 epochs, at most 30 epochs" in section
    assert "cap before a plateau † ×1, plateau ×2" in section


def test_a_stored_history_from_before_validation_existed_still_renders(tmp_path: Path) -> None:
    root = write_results(tmp_path)
    history = pd.read_csv(root / "history.csv").drop(columns=["val_miou"])
    history.to_csv(root / "history.csv", index=False)
    render_report(root)
    assert not (root / "validation_curves.png").exists()
    assert json.loads((root / "environment.json").read_text())  # untouched inputs still readable


def test_run_config_of_the_fixture_trains_every_model() -> None:
    # The report fixture's runs are of the smoke profile, which trains every network it selects.
    assert run_config("unet-mobilenetv2", 0).trains and PROFILES["smoke"].trained_models == ("*",)


def test_list_shows_the_default_matrix_its_parts_and_its_companion(tmp_path: Path) -> None:
    import os
    import subprocess

    from tests.support.commands import REPO, bench_cmd

    # In a folder of its own (the default results folders, results/local/..., are relative to it),
    # without the test plugins (the companion's matrix is every registered model).
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("SEGMODELS_PLUGINS", None)
    listing = subprocess.run(bench_cmd("list"), cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=240)
    assert listing.returncode == 0, listing.stderr[-2000:]
    out = listing.stdout
    ranked = 5 * len(PROFILES["quick"].seeds)
    assert f"{ranked + 6} runs: 0 done, 0 failed, {ranked + 6} to do" in out
    assert "classical methods (evaluated, nothing trained): 6 runs" in out
    assert f"networks trained and ranked: {ranked} runs" in out
    # Nothing of the default matrix is a cost run: the pairs it does not rank are the companion's.
    mine, companion = out.split("Companion profile costs", 1)
    assert "cost runs (built and timed" not in mine
    assert "38 runs, 38 to do" in companion
    assert "cost runs (built and timed, not trained: no accuracy claim): 32 runs" in companion
    assert not (tmp_path / "results").exists()  # listing writes nothing


def test_a_validation_split_bigger_than_the_training_split_is_refused_before_anything_runs(tmp_path: Path) -> None:
    from tests.support.commands import bench_cli

    out = tmp_path / "r"
    done = bench_cli(tmp_path, "run", "--profile", "smoke", "--arch", "tinytest", "--backbone", "mobilenetv2",
                     "--val-images", "5000", "--out", str(out), timeout=240)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "--val-images 5000" in done.stderr and "pass at most 199" in done.stderr
    assert not out.exists()
