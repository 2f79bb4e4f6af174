"""Training and measuring one run, inside its worker process (:mod:`bench.worker`).

:func:`measure_run` is the path of a run from data to record: load and check the dataset, build
the model on the run's devices, train (``bench.train``), recompute BatchNorm statistics, evaluate
on the test split, store a few predictions for the gallery, then time inference and read the
peak memory. Every number lands in the record's tidy ``metrics`` list.
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from bench.build import build_model
from bench.config import CLASS_NAMES, NUM_CLASSES, RunConfig, steps_per_epoch, validation_steps
from bench.devices import peak_rss_mb, replica_strategy, split_cpu, virtual_devices
from bench.record import Metrics
from bench.store import PREDICTIONS


def count_params(weights: list[Any]) -> int:
    return int(sum(int(np.prod(w.shape)) for w in weights))


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


def measure_run(cfg: RunConfig, staging: Path, record: dict[str, Any]) -> dict[str, Any]:
    """Trains and measures one run, filling ``record`` and writing its files into ``staging``
    (raises on failure)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import tensorflow as tf

    from bench import envinfo
    from bench.data import load_pets, test_batches, train_batches
    from bench.flops import flops_per_image
    from bench.metrics import scores
    from bench.precise_bn import recompute_batchnorm_statistics
    from bench.timing import (
        example_batch,
        make_predict_fn,
        measure_latency,
        measure_throughput,
    )
    from bench.train import train

    p = cfg.profile
    metrics = Metrics()
    split_cpu(virtual_devices())
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
