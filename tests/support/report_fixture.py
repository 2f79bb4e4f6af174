"""Writes a small stored-results directory that follows docs/results-schema.md, for the report tests.

Five deep models, one to three seeds each, a run that failed with NaN loss beside two good seeds,
a model whose only run was killed, four classical segmenters, two edge-based and two region-based
(0 parameters, no training, no history, no FLOP count, their family in record.json), and
synthetic-data provenance. The numbers are chosen so the ranking, the statistics, the Pareto front
and the edge-vs-region comparison are known in advance (see EXPECTED_*).

Every record holds a real ``config`` (a :class:`bench.config.run_config.RunConfig` of the smoke profile), so
each run has a comparison context; :func:`add_run`, :func:`write_context_json` and
:func:`set_device` make folders with runs of several contexts or devices.

``write_results(..., evidence=True)`` also stores each successful run's per-image evidence
(``evidence.npz``, :data:`bench.evidence.ops.SCHEMA`) as the runner would, synthesised from the
planted mIoU (the per-image accuracy follows it, so the ranking is the same), and the metric rows
computed from it with the runner's own definitions (:func:`bench.evidence.metrics.evidence_metrics`); the
Bayesian SegNet run gets Monte-Carlo-dropout evidence (T = :data:`MC_SAMPLES`) and an uncertainty
map in its predictions.npz. Without it, the folder is one measured before evidence existed.
"""

from __future__ import annotations

import json
import math
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from bench.config.profiles import PROFILES
from bench.config.run_config import RunConfig
from bench.evidence.metrics import evidence_metrics, scores
from bench.evidence.ops import CALIBRATION_BINS, ENTROPY_BINS, curve_points, save_evidence

ENVIRONMENT = {
    "device": "CPU (2 cores)",
    "tf_version": "2.19.0",
    "keras_version": "3.10.0",
    "cuda_version": "",
    "python_version": "3.11.9",
    "git_commit": "0123456789abcdef",
    "date": "2025-11-24T10:00:00+00:00",
    "dataset_source": "synthetic (generated shapes)",
    "dataset_location": "",
    "dataset_fingerprint": "f00dfeed",
    "dataset_train_size": 64,
    "dataset_test_size": 16,
    "synthetic": True,
}
CONFIG = {"config.epochs": 2, "config.image_size": 32, "config.batch_size": 8}

# model -> (architecture, backbone, family, weights, params, gflops, {seed: miou or error}, latency p50 ms)
# With seed noise counted, two seeds give a model's seed variance one degree of freedom: the planted
# winner (unet-resnet50) and deeplabv3-resnet50 have two close seeds, and the winner a wide gap to #2,
# so the tests of a clear winner have one; unet-mobilenetv2's three seeds keep their spread of 0.02.
MODELS = {
    "unet-mobilenetv2": ("unet", "mobilenetv2", "deep", "imagenet", 6.5e6, 1.2, {0: 0.70, 1: 0.72, 2: 0.74}, 20.0),
    "unet-resnet50": ("unet", "resnet50", "deep", "imagenet", 32.0e6, 8.0,
                      {0: 0.795, 1: 0.805, 2: "NaN loss at epoch 2 step 3"}, 60.0),
    "fcn8s-vgg16": ("fcn8s", "vgg16", "deep", "imagenet", 134.0e6, 60.0, {0: 0.66}, 120.0),
    "deeplabv3-resnet50": ("deeplabv3", "resnet50", "deep", "imagenet", 40.0e6, 20.0, {0: 0.615, 1: 0.625}, 80.0),
    "segnet-vgg16": ("segnet", "vgg16", "deep", "imagenet", 29.0e6, 30.0,
                     {0: "killed by signal 9 (out of memory?)"}, 90.0),
    "bayesian_segnet-vgg16": ("bayesian_segnet", "vgg16", "deep", "imagenet", 29.5e6, 31.0, {0: 0.68}, 100.0),
    "classical-slic": ("classical", "slic", "classical", "none", 0.0, None, {0: 0.50}, 15.0),
    "classical-canny": ("classical", "canny", "classical", "none", 0.0, None, {0: 0.45}, 8.0),
    "classical-sobel": ("classical", "sobel", "classical", "none", 0.0, None, {0: 0.40}, 5.0),
    "classical-otsu": ("classical", "otsu", "classical", "none", 0.0, None, {0: 0.30}, 3.0),
}
CLASSICAL_FAMILY = {"classical-slic": "region", "classical-canny": "edge", "classical-sobel": "edge",
                    "classical-otsu": "region"}
EXPECTED_RANKING = ["unet-resnet50", "unet-mobilenetv2", "bayesian_segnet-vgg16", "fcn8s-vgg16", "deeplabv3-resnet50",
                    "classical-slic", "classical-canny", "classical-sobel", "classical-otsu"]
#: The models stored with Monte-Carlo-dropout evidence (``evidence=True``), and its T.
MC_MODELS = ("bayesian_segnet-vgg16",)
MC_SAMPLES = 10
#: Test images per run in evidence.npz: the same images (same image_index) for every run.
N_EVIDENCE_IMAGES = 40
EXPECTED_PARETO = {"unet-resnet50", "unet-mobilenetv2", "classical-slic", "classical-canny", "classical-sobel",
                   "classical-otsu"}
# Edge-based: canny 0.45, sobel 0.40 -> mean 0.425, best canny. Region-based: slic 0.50, otsu 0.30 ->
# mean 0.400, best slic. Best deep: unet-resnet50, mean 0.80 over its two ok seeds: 0.300 above slic.
EXPECTED_CLASSICAL = {"edge_mean": 0.425, "region_mean": 0.400, "best_edge": "classical-canny",
                      "best_region": "classical-slic", "best_deep": "unet-resnet50", "best_deep_miou": 0.80,
                      "gap": 0.30}
EXPECTED_FAILED = {("unet-resnet50", 2), ("segnet-vgg16", 0)}
# unet-mobilenetv2 mIoU over seeds 0.70, 0.72, 0.74: mean 0.72, std 0.02, 95% CI half-width
# t(0.975, 2) * 0.02 / sqrt(3) = 4.302653 * 0.011547 = 0.049683.
EXPECTED_UNET_MOBILENET = {"mean": 0.72, "std": 0.02, "ci_low": 0.72 - 0.049683, "ci_high": 0.72 + 0.049683}

HISTORY_COLUMNS = ["run_id", "model", "architecture", "backbone", "seed", "epoch", "loss", "accuracy",
                   "val_loss", "val_accuracy", "val_miou"]
N_GALLERY = 3
SIZE = 32


def _gallery(seed: int, quality: float) -> dict[str, np.ndarray]:
    """The same three test images for every run; predictions degrade with lower quality."""
    rng = np.random.default_rng(1234)
    yy, xx = np.mgrid[:SIZE, :SIZE]
    images, masks = [], []
    for i in range(N_GALLERY):
        cy, cx, r = 10 + 5 * i, 12 + 4 * i, 7 + i
        dist = np.sqrt((yy - cy) ** 2 + (xx - cx) ** 2)
        mask = np.where(dist < r - 1, 0, np.where(dist < r + 1, 2, 1)).astype(np.uint8)
        image = rng.integers(0, 60, size=(SIZE, SIZE, 3)).astype(np.uint8)
        image[mask == 0] += np.array([150, 90, 40], dtype=np.uint8)
        images.append(image)
        masks.append(mask)
    noise = np.random.default_rng(seed).random((N_GALLERY, SIZE, SIZE))
    masks_arr = np.stack(masks)
    predictions = np.where(noise < quality, masks_arr, (masks_arr + 1) % 3).astype(np.uint8)
    return {
        "images": np.stack(images),
        "masks": masks_arr,
        "predictions": predictions,
        "indices": np.array([0, 5, 11], dtype=np.int64),
    }


def run_config(model: str, seed: int, fingerprint: str = ENVIRONMENT["dataset_fingerprint"],
               **profile: object) -> RunConfig:
    """The config of a fixture run: the smoke profile (with ``profile`` overrides) on ``fingerprint``."""
    arch, backbone = MODELS[model][:2]
    return RunConfig(arch, backbone, seed, PROFILES["smoke"].override(**profile) if profile else PROFILES["smoke"],
                     "synthetic", fingerprint)


def _environment(synthetic: bool, **changes: object) -> dict:
    env = dict(ENVIRONMENT, synthetic=synthetic)
    if not synthetic:
        env.update(dataset_source="tfds oxford_iiit_pet:4.0.0", dataset_location="/data/pets")
    return {**env, **changes}


def _truth() -> tuple[np.ndarray, np.ndarray]:
    """Per test image: the true pixel count of each class ``(N, 3)`` and a difficulty shared by every run."""
    rng = np.random.default_rng(7)
    pixels = SIZE * SIZE
    pet = np.round(rng.uniform(0.15, 0.5, N_EVIDENCE_IMAGES) * pixels).astype(np.int64)
    border = np.round(rng.uniform(0.08, 0.15, N_EVIDENCE_IMAGES) * pixels).astype(np.int64)
    return np.stack([pet, pixels - pet - border, border], axis=-1), rng.normal(0.0, 0.05, N_EVIDENCE_IMAGES)


def _confusion(rng: np.random.Generator, truth: np.ndarray, accuracy: np.ndarray) -> np.ndarray:
    """``(N, 3, 3)``: each true pixel right with its image's accuracy, else one of the two other classes."""
    out = np.zeros((len(truth), 3, 3), dtype=np.int64)
    for c in range(3):
        right = rng.binomial(truth[:, c], accuracy)
        first = rng.binomial(truth[:, c] - right, 0.5)
        a, b = (k for k in range(3) if k != c)
        out[:, c, c], out[:, c, a], out[:, c, b] = right, first, truth[:, c] - right - first
    return out


def _calibration(rng: np.random.Generator, pixels: int, accuracy: float, overconfidence: float) -> dict:
    """Run-level confidence bins: confidences around ``accuracy + overconfidence``, accuracy per bin
    ``overconfidence`` below its mean confidence."""
    confidence = np.clip(rng.beta(8.0, 8.0 * (1 - accuracy) / accuracy, size=pixels) + overconfidence, 1 / 3, 1.0)
    b = np.clip(np.ceil(confidence * CALIBRATION_BINS) - 1, 0, CALIBRATION_BINS - 1).astype(np.int64)
    count = np.bincount(b, minlength=CALIBRATION_BINS)
    total = np.bincount(b, weights=confidence, minlength=CALIBRATION_BINS)
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(count > 0, np.clip(total / np.maximum(count, 1) - overconfidence, 0, 1), 0.0)
    return {"calibration_count": count.astype(np.int32), "calibration_confidence": total.astype(np.float32),
            "calibration_correct": rng.binomial(count, rate).astype(np.int32)}


def _per_image(rng: np.random.Generator, truth: np.ndarray, accuracy: np.ndarray, calibrated: bool) -> dict:
    confusion = _confusion(rng, truth, accuracy)
    band = np.round(8 * np.sqrt(truth[:, 0])).astype(np.int64)  # pixels of the pet's boundary band
    inter = rng.binomial(band, accuracy**4)
    out = {"confusion": confusion.astype(np.int32),
           "boundary_iou_counts": np.stack([inter, 2 * band - inter], axis=-1).astype(np.int32)}
    if calibrated:
        pixels = truth.sum(axis=1)
        out["nll_sum"] = (pixels * (-np.log(accuracy) * 1.3 + 0.05)).astype(np.float32)
        out["brier_sum"] = (pixels * (1 - accuracy) * 1.4).astype(np.float32)
    return out


def synthetic_evidence(model: str, seed: int, quality: float) -> dict[str, np.ndarray]:
    """The evidence.npz a run of planted mIoU ``quality`` would store: every image's accuracy is
    ``quality + 0.15`` plus the image's shared difficulty and a little noise of the run's own."""
    family = MODELS[model][2]
    rng = np.random.default_rng(zlib.crc32(f"{model}/{seed}".encode()))
    truth, difficulty = _truth()
    accuracy = np.clip(quality + 0.15 + difficulty + rng.normal(0.0, 0.01, len(truth)), 0.05, 0.995)
    calibrated = family != "classical"
    arrays = {"image_index": np.arange(len(truth), dtype=np.int32), "boundary_width": np.int32(2),
              **_per_image(rng, truth, accuracy, calibrated)}
    overconfidence = 0.02 + 0.15 * (1 - quality)
    if calibrated:
        arrays.update(_calibration(rng, int(truth.sum()), float(accuracy.mean()), overconfidence))
    if model in MC_MODELS:
        points = curve_points(MC_SAMPLES)
        gain = [0.03 * (1 - 1 / t) for t in points]
        mc = _per_image(rng, truth, np.clip(accuracy + gain[-1], 0.05, 0.995), calibrated)
        curve = [_confusion(rng, truth, np.clip(accuracy + g, 0.05, 0.995)).sum(axis=0) for g in gain[:-1]]
        bins = [_calibration(rng, int(truth.sum()), float(accuracy.mean() + g), overconfidence / math.sqrt(t))
                for g, t in zip(gain, points)]
        wrong = int(truth.sum() - np.trace(mc["confusion"].sum(axis=0)))
        x = (np.arange(ENTROPY_BINS) + 0.5) / ENTROPY_BINS
        histogram = [rng.multinomial(n, w / w.sum()) for n, w in
                     ((int(truth.sum()) - wrong, (1 - x) ** 6), (wrong, x**3 * (1 - x)))]
        arrays.update({f"mc_{k}": v for k, v in mc.items()})
        arrays.update({
            "mc_num_samples": np.int32(MC_SAMPLES),
            "mc_curve_samples": np.asarray(points, dtype=np.int32),
            "mc_curve_confusion": np.stack([*curve, mc["confusion"].sum(axis=0)]).astype(np.int32),
            "mc_entropy_histogram": np.stack(histogram).astype(np.int32),
            **{f"mc_curve_{k}": np.stack([b[k] for b in bins]) for k in bins[0]},
        })
    return arrays


def _write_run(out: Path, profile: str, env: dict, model: str, seed: int, outcome: float | str,
               config: RunConfig, run_id: str | None = None, finished_at: str | None = None,
               latency: float | None = None, evidence: bool = False) -> tuple[dict, list[dict], list[dict]]:
    """Writes runs/<run_id>/ of one run; returns its runs.csv row, metrics.csv rows and history rows."""
    arch, backbone, family, weights, params, gflops, _, p50 = MODELS[model]
    p50 = p50 if latency is None else latency
    run_id = run_id or f"{model}-s{seed}"
    ok = not isinstance(outcome, str)
    key = {"run_id": run_id, "model": model, "architecture": arch, "backbone": backbone, "seed": seed}
    run = {
        **key, "profile": profile, "dataset": "oxford_iiit_pet", "status": "ok" if ok else "failed",
        "error": "" if ok else outcome, "weights": weights, "family": family,
        "wall_time_s": 100.0 + seed, "started_at": f"2025-11-24T10:{seed:02d}:00+00:00",
        "finished_at": finished_at or f"2025-11-24T10:{seed:02d}:30+00:00", "context_id": config.context_id,
        **env, **CONFIG,
    }
    metrics, history = [], []
    run_dir = out / "runs" / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    record = {**run, "config": config.as_dict()}
    if family == "classical":
        record["classical_family"] = CLASSICAL_FAMILY[model]
    (run_dir / "record.json").write_text(json.dumps(record, indent=2, sort_keys=True))
    epochs = [] if family == "classical" else ([1, 2] if ok else [1])
    for epoch in epochs:
        history.append({**key, "epoch": epoch, "loss": 1.0 / epoch + 0.01 * seed, "accuracy": 0.5 + 0.1 * epoch,
                        "val_loss": 1.1 / epoch + 0.02 * seed, "val_accuracy": 0.45 + 0.1 * epoch,
                        "val_miou": 0.3 + 0.1 * epoch + 0.01 * seed})
    pd.DataFrame(history, columns=HISTORY_COLUMNS).to_csv(run_dir / "history.csv", index=False)
    if ok:
        miou = float(outcome)
        pictures = _gallery(seed, quality=miou)
        if evidence and model in MC_MODELS:
            wrong = pictures["predictions"] != pictures["masks"]
            pictures["uncertainty"] = (np.where(wrong, 0.85, 0.15) * math.log(3)).astype(np.float16)
        np.savez(run_dir / "predictions.npz", **pictures)
        values = {
            "miou": (miou, "ratio"), "iou_pet": (miou + 0.1, "ratio"), "iou_background": (miou + 0.15, "ratio"),
            "iou_border": (miou - 0.25, "ratio"), "pixel_accuracy": (miou + 0.2, "ratio"),
            "mean_class_accuracy": (miou + 0.05, "ratio"), "params_total": (params, "count"),
            "params_trainable": (params * 0.98, "count"),
            "latency_p50_ms": (p50 + seed, "ms"), "latency_p90_ms": (p50 * 1.2 + seed, "ms"),
            "latency_p95_ms": (p50 * 1.3 + seed, "ms"), "inference_throughput": (1000.0 / p50 * 4, "images/s"),
            "train_throughput": (1000.0 / p50, "images/s"), "wall_time_s": (100.0 + seed, "s"),
            "peak_rss_mb": (800.0 + params / 1e6 * 10, "MB"),
        }
        if gflops is not None:
            values["flops_per_image"] = (gflops * 1e9, "flops")
        values["train_time_s"] = (50.0 + 10 * seed + params / 1e6, "s") if family == "deep" else (0.0, "s")
        if evidence:  # the quality rows as the runner computes them from what it stores
            arrays = synthetic_evidence(model, seed, miou)
            save_evidence(run_dir / "evidence.npz", arrays)
            values.update({k: (v, "ratio") for k, v in scores(arrays["confusion"].sum(axis=0)).items()})
            values.update(evidence_metrics(arrays))
            if model in MC_MODELS:
                values["mc_latency_ms"] = (p50 * MC_SAMPLES + seed, "ms")
        for metric, (value, unit) in values.items():
            metrics.append({**key, "profile": profile, "dataset": "oxford_iiit_pet", "metric": metric,
                            "value": value, "unit": unit, **env})
    return run, metrics, history


def write_results(root: Path, profile: str = "smoke", synthetic: bool = True, evidence: bool = False,
                  outcomes: dict[str, dict[int, float | str]] | None = None) -> Path:
    """Write ``root/<profile>`` with runs/, runs.csv, metrics.csv, history.csv, environment.json
    (no context.json: the folder of a harness older than it).

    Args:
        evidence: Store each successful run's evidence.npz, and its metric rows (module docstring).
        outcomes: Model -> {seed: planted mIoU or error}, replacing that model's in :data:`MODELS`.

    Returns:
        The profile directory (what ``render_report`` takes).
    """
    out = Path(root) / profile
    env = _environment(synthetic)
    runs, metrics, history = [], [], []
    for model, spec in MODELS.items():
        for seed, outcome in (outcomes or {}).get(model, spec[6]).items():
            run, run_metrics, run_history = _write_run(out, profile, env, model, seed, outcome, run_config(model, seed),
                                                       evidence=evidence)
            runs.append(run)
            metrics += run_metrics
            history += run_history
    pd.DataFrame(runs).to_csv(out / "runs.csv", index=False)
    pd.DataFrame(metrics).to_csv(out / "metrics.csv", index=False)
    pd.DataFrame(history, columns=HISTORY_COLUMNS).to_csv(out / "history.csv", index=False)
    (out / "environment.json").write_text(json.dumps(env, indent=2, sort_keys=True))
    return out


def add_run(results_dir: Path, model: str, seed: int, miou: float, config: RunConfig, *, synthetic: bool = True,
            finished_at: str = "2025-11-24T11:00:00+00:00", latency: float | None = None, **env: object) -> str:
    """Adds one successful run of ``model`` measured under ``config`` to a fixture folder (its files
    and its rows of the CSVs), as a sweep of another context, a hand merge, or an older harness
    would leave it. ``env`` overrides environment columns (``device=...``). Returns its run id."""
    results_dir = Path(results_dir)
    run_id = f"{model}-s{seed}-{config.context_id}"
    run, metrics, history = _write_run(results_dir, results_dir.name, _environment(synthetic, **env), model, seed,
                                       miou, config, run_id=run_id, finished_at=finished_at, latency=latency)
    for name, rows in (("runs.csv", [run]), ("metrics.csv", metrics), ("history.csv", history)):
        frame = pd.read_csv(results_dir / name)
        pd.concat([frame, pd.DataFrame(rows)], ignore_index=True).to_csv(results_dir / name, index=False)
    return run_id


def write_context_json(results_dir: Path, config: RunConfig) -> None:
    """Writes context.json as the harness does when it makes a folder for runs of ``config``'s context."""
    (Path(results_dir) / "context.json").write_text(json.dumps(
        {"segbench": "results folder", "context_id": config.context_id, "context": config.context(),
         "reference": False, "created_at": "2025-11-24T09:59:00+00:00"}, indent=1, sort_keys=True))


def set_device(results_dir: Path, models: list[str], device: str, replicas: int = 1) -> None:
    """Marks every run of ``models`` as measured on ``device`` with ``replicas`` devices (the
    ``device`` column of runs.csv and metrics.csv, ``config.replicas`` of runs.csv)."""
    results_dir = Path(results_dir)
    for name in ("runs.csv", "metrics.csv"):
        frame = pd.read_csv(results_dir / name)
        chosen = frame["model"].isin(models)
        frame.loc[chosen, "device"] = device
        if name == "runs.csv":
            frame["config.replicas"] = frame.get("config.replicas", pd.Series(1, index=frame.index)).fillna(1)
            frame.loc[chosen, "config.replicas"] = replicas
        frame.to_csv(results_dir / name, index=False)
