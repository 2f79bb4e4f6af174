"""One run in its own process: ``python -m bench.worker <config.json> <staging_dir>``.

The parent (:mod:`bench.runner`) starts one worker per run, because TensorFlow does not give
memory back and a crash or an out-of-memory kill must not end the sweep. The worker trains and
measures, writes ``history.csv``, ``predictions.npz`` and ``record.json`` into the staging folder,
and exits; the parent then stores the folder atomically. A Python exception becomes a failed
record written by the worker itself; a signal (out of memory) is recorded by the parent.
"""

from __future__ import annotations

import datetime as dt
import os
import resource
import socket
import sys
import threading
import time
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench.config import CLASS_NAMES, NUM_CLASSES, RunConfig, steps_per_epoch, validation_steps
from bench.store import PREDICTIONS, RECORD, RUN_HISTORY, atomic_write_json, atomic_write_text

EXIT_OK = 0
EXIT_CRASH = 3  # a record could not even be written


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def peak_rss_mb() -> float:
    """Peak resident memory of this process (Linux reports ``ru_maxrss`` in KiB, macOS in bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def base_record(cfg: RunConfig) -> dict[str, Any]:
    """The identity part of a record: every field the tables need, whatever happens later."""
    return {
        "run_id": cfg.run_id,
        "model": cfg.model,
        "architecture": cfg.architecture,
        "backbone": cfg.backbone,
        "seed": cfg.seed,
        "profile": cfg.profile.name,
        "dataset": "",
        "status": "failed",
        "error": "",
        "weights": "",
        "family": "deep",
        "executor": "",
        "host": socket.gethostname(),
        "wall_time_s": None,
        "started_at": _now(),
        "finished_at": None,
        "env": {},
        "config": cfg.as_dict(),
        "config_flat": cfg.flat(),
        "metrics": [],
        "history": [],
        "notes": [],
    }


# === The model ===


@dataclass(frozen=True)
class BuiltModel:
    """A run's model and how its weights were initialised.

    Attributes:
        model: The Keras model (images in [0, 1] -> logits or one-hot scores).
        weights: ``imagenet``, ``none``, or ``none (imagenet unavailable: <reason>)``.
        frozen_encoder: Whether the encoder was frozen (only ever with pretrained weights).
        family: ``deep``, or ``classical`` for a classical segmenter (``classical-<method>``).
        record_fields: Extra fields for the run's record (a classical run's ``classical_family``).
    """

    model: Any
    weights: str
    frozen_encoder: bool
    family: str
    record_fields: dict[str, Any] = field(default_factory=dict)


def one_line(error: BaseException, limit: int = 300) -> str:
    """``Type: first non-empty line of the message``, at most ``limit`` characters (the ``error``
    of a failed record)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    text = f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def build_model(cfg: RunConfig) -> BuiltModel:
    """The one place a run's model comes from.

    Architecture ``classical`` is a classical segmenter, the method in the backbone's place
    (``classical-canny``): no weights, nothing to train (segmodels.classical).

    Weights policy: ``imagenet`` where it can be had (Keras cache or network); otherwise random
    initialisation with the encoder trainable, said loudly and recorded. The encoder is frozen
    only when pretrained weights were really loaded and the profile asks for it: a frozen random
    encoder would be a benchmark of noise.
    """
    import keras

    import segmodels
    from segmodels import classical

    shape = (cfg.profile.image_size, cfg.profile.image_size, 3)
    if cfg.architecture == classical.ARCHITECTURE:
        method = classical.get_method(cfg.backbone)
        return BuiltModel(
            classical.build_classical_model(method.name, input_shape=shape, num_classes=NUM_CLASSES),
            "none", False, "classical",
            {"classical_family": method.family, "classical_description": method.description},
        )
    weights = "none"
    frozen = False
    if cfg.profile.weights == "imagenet":
        try:
            model = segmodels.create_model(
                cfg.architecture, cfg.backbone, num_classes=NUM_CLASSES, input_shape=shape,
                weights="imagenet", freeze_backbone=cfg.profile.freeze_encoder,
            )
            weights, frozen = "imagenet", cfg.profile.freeze_encoder
        except segmodels.WeightsUnavailableError as error:
            reason = str(error).split(". ")[0].strip()
            weights = f"none (imagenet unavailable: {reason})"
            banner = "!" * 100
            print(
                f"\n{banner}\n!! {cfg.model}: ImageNet weights unavailable -> RANDOM initialisation, "
                f"encoder TRAINABLE.\n!! {reason}\n{banner}\n",
                file=sys.stderr, flush=True,
            )
            keras.utils.set_random_seed(cfg.seed)  # the same init whatever the failed attempt drew
            model = segmodels.create_model(
                cfg.architecture, cfg.backbone, num_classes=NUM_CLASSES, input_shape=shape, weights=None
            )
    else:
        model = segmodels.create_model(
            cfg.architecture, cfg.backbone, num_classes=NUM_CLASSES, input_shape=shape, weights=None
        )
    return BuiltModel(model, weights, frozen, "deep")


# === Devices ===

#: Splits this machine's CPU into N logical devices, so that ``--gpus-per-run N`` can be tried
#: (and tested) without GPUs: the MirroredStrategy code path runs, with no speed-up.
VIRTUAL_DEVICES_ENV = "SEGBENCH_VIRTUAL_DEVICES"


def split_cpu(devices: int) -> None:
    """Makes ``devices`` logical CPUs out of the first physical one (before TensorFlow starts)."""
    if devices <= 1:
        return
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * devices)


def replica_strategy(replicas: int) -> Any:
    """The distribution strategy of a run on ``replicas`` devices.

    One device: TensorFlow's default strategy (the GPU where there is one, else the CPU). More: a
    ``MirroredStrategy`` over the first ``replicas`` GPUs this process sees (under Ray, the ones
    it was given), or over the logical CPUs of ``$SEGBENCH_VIRTUAL_DEVICES`` on a machine
    without GPUs.

    Raises:
        RuntimeError: fewer devices than ``replicas``.
    """
    import tensorflow as tf

    if replicas <= 1:
        return tf.distribute.get_strategy()
    gpus = [d.name for d in tf.config.list_logical_devices("GPU")]
    devices = gpus or [d.name for d in tf.config.list_logical_devices("CPU")]
    if len(devices) < replicas:
        raise RuntimeError(
            f"--gpus-per-run {replicas} needs {replicas} GPUs, and {socket.gethostname()} shows this run "
            f"{len(gpus)}: run with fewer GPUs per run, on a machine (or Ray cluster) with more, or set "
            f"{VIRTUAL_DEVICES_ENV}={replicas} to try the multi-device path on CPUs"
        )
    return tf.distribute.MirroredStrategy(devices[:replicas])


def count_params(weights: list[Any]) -> int:
    return int(sum(int(np.prod(w.shape)) for w in weights))


# === Measuring ===


def evaluate(predict: Any, test_batches: Any) -> np.ndarray:
    """Confusion matrix of ``argmax(predict(images))`` over every pixel of the test batches."""
    from bench.metrics import ConfusionMatrix

    cm = ConfusionMatrix(NUM_CLASSES)
    for images, masks in test_batches:
        predicted = np.argmax(predict(images), axis=-1)
        cm.update(np.asarray(masks)[..., 0], predicted)
    return cm.matrix


def gallery(predict: Any, test_ds: Any, n: int) -> dict[str, np.ndarray]:
    """The first ``n`` test images, their masks and predictions (predictions.npz)."""
    images, masks = [], []
    for image, mask in test_ds.take(n):
        images.append(np.asarray(image))
        masks.append(np.asarray(mask)[..., 0])
    if not images:
        return {}
    batch = np.stack(images).astype(np.float32)
    predicted = np.argmax(predict(batch), axis=-1)
    return {
        "images": np.clip(np.round(batch * 255.0), 0, 255).astype(np.uint8),
        "masks": np.stack(masks).astype(np.uint8),
        "predictions": predicted.astype(np.uint8),
        "indices": np.arange(len(images), dtype=np.int64),
    }


class Metrics:
    """The record's tidy metrics list, in the order they are measured."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def add(self, metric: str, value: float | int | None, unit: str) -> None:
        if value is None:
            return
        self.rows.append({"metric": metric, "value": float(value), "unit": unit})


def execute(cfg: RunConfig, staging: Path, record: dict[str, Any]) -> dict[str, Any]:
    """Trains and measures one run, filling ``record`` (raises on failure)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import tensorflow as tf

    from bench import envinfo
    from bench.data import load_pets, test_batches, train_batches
    from bench.flops import flops_per_image
    from bench.metrics import scores
    from bench.precise_bn import recompute_batchnorm_statistics
    from bench.timing import example_batch, make_predict_fn, measure_latency, measure_throughput
    from bench.train import train

    p = cfg.profile
    metrics = Metrics()
    split_cpu(int(os.environ.get(VIRTUAL_DEVICES_ENV, "0") or 0))
    record["env"] = envinfo.collect()
    keras.utils.set_random_seed(cfg.seed)
    tf.config.experimental.enable_op_determinism()
    tf.config.run_functions_eagerly(p.run_eagerly)
    # Said once per tf.data function when running eagerly; the input pipeline is traced on purpose.
    warnings.filterwarnings("ignore", message="Even though the `tf.config.experimental_run_functions_eagerly`")

    # The dataset is the same for every seed (seed 0 of the synthetic generator, as the sweep
    # planned it); the run's seed drives weights, shuffling, augmentation and dropout.
    splits = load_pets(cfg.data, image_size=p.image_size, seed=0)
    provenance = splits.provenance.as_dict()
    record["env"].update(envinfo.dataset_columns(provenance))
    record["env"]["dataset_provenance"] = provenance
    record["dataset"] = dataset_name(provenance)
    if provenance.get("fingerprint") != cfg.dataset_fingerprint:
        raise RuntimeError(
            f"dataset fingerprint {provenance.get('fingerprint')} differs from the sweep's "
            f"{cfg.dataset_fingerprint}: the data changed since the sweep was planned"
        )
    test_ds = splits.test
    test_size = int(provenance["test_size"])
    if p.max_test_examples is not None and p.max_test_examples < test_size:
        test_ds = test_ds.take(p.max_test_examples)
        test_size = p.max_test_examples

    # Everything that creates variables (model, optimiser, metrics) is built under the strategy:
    # with --gpus-per-run N > 1 a MirroredStrategy keeps a copy on each device and Keras splits
    # every global batch of the profile's size across them. With one device it is the default
    # strategy, whose scope changes nothing.
    strategy = replica_strategy(cfg.replicas)
    if cfg.replicas > 1:
        record["replica_devices"] = [str(d) for d in strategy.extended.worker_devices]
    with strategy.scope():
        t = time.perf_counter()
        built = build_model(cfg)
        model = built.model
        record["weights"], record["family"] = built.weights, built.family
        record["frozen_encoder"] = built.frozen_encoder
        record.update(built.record_fields)
        metrics.add("build_time_s", time.perf_counter() - t, "s")
        total, trainable = count_params(model.weights), count_params(model.trainable_weights)
        metrics.add("params_total", total, "count")
        metrics.add("params_trainable", trainable, "count")
        if built.family != "classical":  # numpy work in tf.numpy_function is invisible to the profiler: unknown, not 0
            metrics.add("flops_per_image", flops_per_image(model, p.image_size), "flops")

        train_time = 0.0
        if trainable > 0:
            batches = train_batches(
                splits.train, batch_size=p.batch_size, seed=cfg.seed, augment=p.augment, buffer_size=p.shuffle_buffer
            )
            result = train(
                model, batches,
                epochs=p.epochs,
                steps_per_epoch=steps_per_epoch(p, int(provenance["train_size"])),
                batch_size=p.batch_size,
                learning_rate=p.learning_rate,
                validation_data=test_batches(test_ds, batch_size=p.batch_size),
                validation_steps=validation_steps(p, test_size),
                verbose=1 if sys.stdout.isatty() else 2,
            )
            record["history"] = result.history
            train_time = result.train_time_s
            metrics.add("train_throughput", result.train_throughput, "images/s")
            if p.precise_bn_batches > 0:
                # A fresh pipeline with the same seed: the statistics come from training images as
                # the training saw them (augmented), never from the test split.
                bn_batches = train_batches(
                    splits.train, batch_size=p.batch_size, seed=cfg.seed + 1, augment=p.augment,
                    buffer_size=p.shuffle_buffer,
                )
                t = time.perf_counter()
                layers = recompute_batchnorm_statistics(model, iter(bn_batches), p.precise_bn_batches)
                record["precise_bn_layers"] = layers
                metrics.add("precise_bn_time_s", time.perf_counter() - t, "s")
        metrics.add("train_time_s", train_time, "s")

    predict = make_predict_fn(model)
    t = time.perf_counter()
    matrix = evaluate(predict, test_batches(test_ds, batch_size=p.batch_size))
    metrics.add("eval_time_s", time.perf_counter() - t, "s")
    record["confusion_matrix"] = matrix.tolist()
    for name, value in scores(matrix, CLASS_NAMES).items():
        metrics.add(name, value, "ratio")

    pictures = gallery(predict, test_ds, p.gallery_size)
    if pictures:
        np.savez_compressed(staging / PREDICTIONS, **pictures)

    latency = measure_latency(predict, example_batch(1, p.image_size), p.timing)
    metrics.add("latency_p50_ms", latency.p50_ms, "ms")
    metrics.add("latency_p90_ms", latency.p90_ms, "ms")
    metrics.add("latency_p95_ms", latency.p95_ms, "ms")
    metrics.add("latency_mean_ms", latency.mean_ms, "ms")
    record["latency_calls"] = latency.calls
    metrics.add(
        "inference_throughput",
        measure_throughput(predict, example_batch(p.timing.throughput_batch, p.image_size), p.timing),
        "images/s",
    )

    metrics.add("peak_rss_mb", peak_rss_mb(), "MB")
    if tf.config.list_physical_devices("GPU"):
        info = tf.config.experimental.get_memory_info("GPU:0")
        metrics.add("peak_device_mem_mb", info["peak"] / 2**20, "MB")
    record["metrics"] = metrics.rows
    record["status"] = "ok"
    return record


def dataset_name(provenance: dict[str, Any]) -> str:
    """``synthetic`` or ``oxford_iiit_pet`` (where it came from is in ``dataset_source``)."""
    return "synthetic" if provenance.get("synthetic") else "oxford_iiit_pet"


def write_history(staging: Path, record: dict[str, Any]) -> None:
    import pandas as pd

    from bench.store import HISTORY_COLUMNS, RUN_KEY

    rows = [{**{k: record[k] for k in RUN_KEY}, **h} for h in record.get("history", [])]
    atomic_write_text(staging / RUN_HISTORY, pd.DataFrame(rows, columns=HISTORY_COLUMNS).to_csv(index=False))


def _watch_parent() -> None:
    """Exits when the parent sweep dies (on Linux the parent also sets PR_SET_PDEATHSIG)."""
    parent = int(os.environ.get("SEGBENCH_PARENT_PID", os.getppid()))
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        try:  # PR_SET_PDEATHSIG = 1: the kernel kills us the moment the parent dies
            ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL), 0, 0, 0)
        except (OSError, AttributeError):
            pass
        if os.getppid() != parent:
            os._exit(EXIT_CRASH)

    def watch() -> None:
        while True:
            time.sleep(1.0)
            if os.getppid() != parent:
                os._exit(EXIT_CRASH)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m bench.worker <config.json> <staging_dir>", file=sys.stderr)
        return 2
    cfg = RunConfig.from_json(Path(args[0]).read_text(encoding="utf-8"))
    staging = Path(args[1])
    _watch_parent()
    start = time.perf_counter()
    record = base_record(cfg)
    try:
        execute(cfg, staging, record)
    except Exception as error:  # noqa: BLE001 - failures are data
        record["status"] = "failed"
        record["error"] = str(error) if type(error).__name__ == "NaNLossError" else one_line(error)
        record["traceback"] = traceback.format_exc()
        traceback.print_exc()
        record["metrics"] = [{"metric": "peak_rss_mb", "value": peak_rss_mb(), "unit": "MB"}]
    record["finished_at"] = _now()
    record["worker_time_s"] = time.perf_counter() - start
    write_history(staging, record)
    atomic_write_json(staging / RECORD, record)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
