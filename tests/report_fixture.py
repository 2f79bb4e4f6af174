"""Writes a small stored-results directory that follows docs/results-schema.md, for the report tests.

Five deep models, one to three seeds each, a run that failed with NaN loss beside two good seeds,
a model whose only run was killed, four classical segmenters, two edge-based and two region-based
(0 parameters, no training, no history, no FLOP count, their family in record.json), and
synthetic-data provenance. The numbers are chosen so the ranking, the statistics, the Pareto front
and the edge-vs-region comparison are known in advance (see EXPECTED_*).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

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
MODELS = {
    "unet-mobilenetv2": ("unet", "mobilenetv2", "deep", "imagenet", 6.5e6, 1.2, {0: 0.70, 1: 0.72, 2: 0.74}, 20.0),
    "unet-resnet50": ("unet", "resnet50", "deep", "imagenet", 32.0e6, 8.0,
                      {0: 0.75, 1: 0.77, 2: "NaN loss at epoch 2 step 3"}, 60.0),
    "fcn8s-vgg16": ("fcn8s", "vgg16", "deep", "imagenet", 134.0e6, 60.0, {0: 0.66}, 120.0),
    "deeplabv3-resnet50": ("deeplabv3", "resnet50", "deep", "imagenet", 40.0e6, 20.0, {0: 0.60, 1: 0.64}, 80.0),
    "segnet-vgg16": ("segnet", "vgg16", "deep", "imagenet", 29.0e6, 30.0,
                     {0: "killed by signal 9 (out of memory?)"}, 90.0),
    "classical-slic": ("classical", "slic", "classical", "none", 0.0, None, {0: 0.50}, 15.0),
    "classical-canny": ("classical", "canny", "classical", "none", 0.0, None, {0: 0.45}, 8.0),
    "classical-sobel": ("classical", "sobel", "classical", "none", 0.0, None, {0: 0.40}, 5.0),
    "classical-otsu": ("classical", "otsu", "classical", "none", 0.0, None, {0: 0.30}, 3.0),
}
CLASSICAL_FAMILY = {"classical-slic": "region", "classical-canny": "edge", "classical-sobel": "edge",
                    "classical-otsu": "region"}
EXPECTED_RANKING = ["unet-resnet50", "unet-mobilenetv2", "fcn8s-vgg16", "deeplabv3-resnet50", "classical-slic",
                    "classical-canny", "classical-sobel", "classical-otsu"]
EXPECTED_PARETO = {"unet-resnet50", "unet-mobilenetv2", "classical-slic", "classical-canny", "classical-sobel",
                   "classical-otsu"}
# Edge-based: canny 0.45, sobel 0.40 -> mean 0.425, best canny. Region-based: slic 0.50, otsu 0.30 ->
# mean 0.400, best slic. Best deep: unet-resnet50, mean 0.76 over its two ok seeds: 0.260 above slic.
EXPECTED_CLASSICAL = {"edge_mean": 0.425, "region_mean": 0.400, "best_edge": "classical-canny",
                      "best_region": "classical-slic", "best_deep": "unet-resnet50", "gap": 0.26}
EXPECTED_FAILED = {("unet-resnet50", 2), ("segnet-vgg16", 0)}
# unet-mobilenetv2 mIoU over seeds 0.70, 0.72, 0.74: mean 0.72, std 0.02, 95% CI half-width
# t(0.975, 2) * 0.02 / sqrt(3) = 4.302653 * 0.011547 = 0.049683.
EXPECTED_UNET_MOBILENET = {"mean": 0.72, "std": 0.02, "ci_low": 0.72 - 0.049683, "ci_high": 0.72 + 0.049683}

HISTORY_COLUMNS = ["run_id", "model", "architecture", "backbone", "seed", "epoch", "loss", "accuracy",
                   "val_loss", "val_accuracy"]
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


def write_results(root: Path, profile: str = "smoke", synthetic: bool = True) -> Path:
    """Write ``root/<profile>`` with runs/, runs.csv, metrics.csv, history.csv, environment.json.

    Returns:
        The profile directory (what ``render_report`` takes).
    """
    out = Path(root) / profile
    env = dict(ENVIRONMENT, synthetic=synthetic)
    if not synthetic:
        env.update(dataset_source="tfds oxford_iiit_pet:4.0.0", dataset_location="/data/pets")
    runs, metrics, history = [], [], []
    for model, (arch, backbone, family, weights, params, gflops, seeds, p50) in MODELS.items():
        for seed, outcome in seeds.items():
            run_id = f"{model}-s{seed}"
            ok = not isinstance(outcome, str)
            key = {"run_id": run_id, "model": model, "architecture": arch, "backbone": backbone, "seed": seed}
            runs.append({
                **key, "profile": profile, "dataset": "oxford_iiit_pet", "status": "ok" if ok else "failed",
                "error": "" if ok else outcome, "weights": weights, "family": family,
                "wall_time_s": 100.0 + seed, "started_at": f"2025-11-24T10:{seed:02d}:00+00:00",
                "finished_at": f"2025-11-24T10:{seed:02d}:30+00:00", **env, **CONFIG,
            })
            run_dir = out / "runs" / run_id
            run_dir.mkdir(parents=True, exist_ok=True)
            record = dict(runs[-1])
            if family == "classical":
                record["classical_family"] = CLASSICAL_FAMILY[model]
            (run_dir / "record.json").write_text(json.dumps(record, indent=2, sort_keys=True))
            epochs = [] if family == "classical" else ([1, 2] if ok else [1])
            for epoch in epochs:
                history.append({**key, "epoch": epoch, "loss": 1.0 / epoch + 0.01 * seed, "accuracy": 0.5 + 0.1 * epoch,
                                "val_loss": 1.1 / epoch + 0.02 * seed, "val_accuracy": 0.45 + 0.1 * epoch})
            run_history = pd.DataFrame([h for h in history if h["run_id"] == run_id], columns=HISTORY_COLUMNS)
            run_history.to_csv(run_dir / "history.csv", index=False)
            if not ok:
                continue
            miou = float(outcome)
            np.savez(run_dir / "predictions.npz", **_gallery(seed, quality=miou))
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
            for metric, (value, unit) in values.items():
                metrics.append({**key, "profile": profile, "dataset": "oxford_iiit_pet", "metric": metric,
                                "value": value, "unit": unit, **env})
    pd.DataFrame(runs).to_csv(out / "runs.csv", index=False)
    pd.DataFrame(metrics).to_csv(out / "metrics.csv", index=False)
    pd.DataFrame(history, columns=HISTORY_COLUMNS).to_csv(out / "history.csv", index=False)
    (out / "environment.json").write_text(json.dumps(env, indent=2, sort_keys=True))
    return out
