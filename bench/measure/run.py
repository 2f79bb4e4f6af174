"""Training and measuring one run, inside its worker process (:mod:`bench.execute.worker`).

:func:`measure_run` reads top to bottom as the phases of a run, each a call that returns its
metric rows: :func:`start` (devices, seed, speed mode), :func:`load_data` (the dataset, checked,
and the validation split), :func:`build`, :func:`train_model` (``bench.measure.train``, with
validation and precise BN), :func:`training_memory`, :func:`prepare_inference`,
:func:`evaluate_on_test` (on the device: only per-image evidence comes back, ``evidence.npz``;
Monte-Carlo dropout where the profile asks; the gallery), :func:`time_inference`,
:func:`peak_memory` and :func:`max_batch`. The rows land in the record's tidy ``metrics`` list in
that order; every other field a phase writes is declared in :class:`bench.store.record.Record`.

Keras and TensorFlow, and the modules that import them, are imported inside the phases (``# lazy``):
they read the environment the worker sets (log level, Keras's backend) when they load, and a test
or tool that imports this module for one helper does not pay for the rest.
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bench.config.backends import local_gpus, to_numpy
from bench.config.modes import Mode, apply_mode
from bench.config.run_config import CLASS_NAMES, CLASSICAL, RunConfig, steps_per_epoch
from bench.measure import envinfo
from bench.measure.build import BuiltModel, build_model
from bench.measure.devices import (
    device_peak_mb,
    peak_rss_mb,
    replica_strategy,
    reset_device_peak,
    split_cpu,
    virtual_devices,
)
from bench.store.record import STOP_ALL_EPOCHS, STOP_CAP_STILL_IMPROVING, STOP_PLATEAU, MetricRow, Metrics, Record
from bench.store.results import EVIDENCE, PREDICTIONS

if TYPE_CHECKING:  # these import TensorFlow or Keras, which a run imports only once it runs (start)
    from bench.data.split import ValidationSplit
    from bench.measure.train import TrainResult


def count_params(weights: list[Any]) -> int:
    return int(sum(int(np.prod(w.shape)) for w in weights))


def evaluate(
    forward: Any, test_batches: Any, *, calibration: bool = True, width: int | None = None
) -> dict[str, np.ndarray]:
    """The per-image evidence of ``forward`` (images -> logits) over the test batches.

    One traced step per batch runs the model and :func:`bench.evidence.ops.batch_evidence` on the
    device; only the evidence (tens of numbers an image) is copied back, never a logit or a mask.
    The run's confusion matrix is the sum of the per-image ones (``confusion.sum(0)``).

    Args:
        calibration: ``False`` for hard labels (classical segmenters): no calibration arrays.
        width: Boundary IoU's band width (default: :func:`bench.evidence.ops.boundary_width` of the size).
    """
    from bench.evidence.ops import EvidenceAccumulator  # lazy: Keras and its backend

    evidence = EvidenceAccumulator(width, forward=forward, calibration=calibration)
    for images, masks in test_batches:
        evidence.update(masks, images)
    return evidence.result()


def evaluate_mc(sample: Any, test_batches: Any, num_samples: int, *, width: int | None = None) -> dict[str, np.ndarray]:
    """The Monte-Carlo dropout evidence: ``num_samples`` passes of ``sample`` (images -> softmax) per batch.

    Returns the ``mc_*`` arrays of :data:`bench.evidence.ops.SCHEMA`: the sample curve and entropy
    histograms (:class:`bench.evidence.ops.MCDropoutAccumulator`) and the per-image evidence of the
    predictive mean (``mc_confusion`` ...). No T copies of a batch are held: one running sum.
    """
    from bench.evidence.ops import (  # lazy: Keras and its backend
        MC_PER_IMAGE,
        EvidenceAccumulator,
        MCDropoutAccumulator,
    )

    curve = MCDropoutAccumulator(num_samples)
    per_image = EvidenceAccumulator(width)
    for images, masks in test_batches:
        mean = curve.update(masks, (sample(images) for _ in range(num_samples)))
        per_image.update_probabilities(masks, mean)
    arrays = per_image.result()
    return {**curve.result(), **{f"mc_{name}": arrays[name] for name in MC_PER_IMAGE}}


def gallery(predict: Any, test_ds: Any, n: int, mc_predict: Any = None) -> dict[str, np.ndarray]:
    """The first ``n`` test images, their masks and predictions (predictions.npz); with
    ``mc_predict`` (images -> Monte-Carlo mean probabilities) also the predictive entropy."""
    from bench.evidence.ops import predictive_entropy  # lazy: Keras and its backend

    images, masks = [], []
    for image, mask in test_ds.take(n):
        images.append(np.asarray(image))
        masks.append(np.asarray(mask)[..., 0])
    if not images:
        return {}
    batch = np.stack(images).astype(np.float32)
    predicted = np.argmax(predict(batch), axis=-1)
    pictures = {
        "images": np.clip(np.round(batch * 255.0), 0, 255).astype(np.uint8),
        "masks": np.stack(masks).astype(np.uint8),
        "predictions": predicted.astype(np.uint8),
        "indices": np.arange(len(images), dtype=np.int64),
    }
    if mc_predict is not None:
        pictures["uncertainty"] = to_numpy(predictive_entropy(mc_predict(batch))).astype(np.float16)
    return pictures


def measure_run(cfg: RunConfig, staging: Path, record: Record) -> Record:
    """Trains and measures one run, filling ``record`` and writing its files into ``staging``
    (raises on failure). Each phase returns its metric rows; their order is the record's."""
    mode, gpu = start(cfg, record)
    data = load_data(cfg, record)
    # Everything that creates variables (model, optimiser, metrics) is built under the strategy:
    # with --gpus-per-run N > 1 a MirroredStrategy keeps a copy on each device and Keras splits
    # every global batch of the profile's size across them. With one device it is the default
    # strategy, whose scope changes nothing.
    strategy = replica_strategy(cfg.replicas, cfg.backend)
    if cfg.replicas > 1:
        record["replica_devices"] = [str(d) for d in strategy.extended.worker_devices]
    with strategy.scope():
        built, build_rows = build(cfg, record)
        mode, train_rows = train_model(cfg, built.model, data, mode, record)
    record.update(mode.fields())
    training_peak, train_memory_rows = training_memory(cfg, gpu)
    forward, predict, inference_rows = prepare_inference(cfg, built.model, mode)
    if cfg.evaluated:
        mc_predict, test_rows = evaluate_on_test(
            cfg, built.model, forward, predict, data.test, built.family, staging, record
        )
    else:
        mc_predict, test_rows = None, []
        record["notes"].append(
            f"cost run: {cfg.model} was built and timed, never trained or evaluated (not in --trained-models "
            f"{','.join(cfg.profile.trained_models)}): its size, speed and memory are measured, its accuracy is not"
        )
    timing_rows = time_inference(cfg, predict, mc_predict, record)
    memory_rows = peak_memory(cfg.backend, gpu, training_peak)
    # Last: it fills the device on purpose.
    max_batch_rows = max_batch(cfg, predict, gpu, record)
    record["metrics"] = [
        *build_rows, *train_rows, *train_memory_rows, *inference_rows, *test_rows, *timing_rows, *memory_rows,
        *max_batch_rows,
    ]
    record["status"] = "ok"
    return record


@dataclass(frozen=True)
class Data:
    """A run's splits as the phases use them: training (less the validation images), validation
    and test (cut to the profile's ``max_test_examples``)."""

    train: Any
    train_size: int
    validation: Any
    validation_split: ValidationSplit | None
    test: Any


def start(cfg: RunConfig, record: Record) -> tuple[Mode, bool]:
    """The worker's devices, environment, seed and speed mode, before anything is built; returns
    the mode and whether a GPU is there."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # Keras and its backend load only here, once a worker runs: the worker has set the environment
    # they read at import (KERAS_BACKEND among it), and importing this module for its helpers
    # stays cheap.
    import keras

    if keras.backend.backend() != cfg.backend:
        raise RuntimeError(
            f"the run is on {cfg.backend} but Keras was imported on {keras.backend.backend()}: the worker sets "
            "KERAS_BACKEND before Keras is imported, so something imported Keras first"
        )
    if cfg.backend == "tensorflow":
        split_cpu(virtual_devices())
    record["env"] = envinfo.collect()
    keras.utils.set_random_seed(cfg.seed)
    # Determinism and the dtype policy, before anything is built; XLA is asked of Keras at
    # compile time and the record says what Keras really did (bench.config.modes).
    mode = apply_mode(cfg.profile, classical=cfg.architecture == CLASSICAL, replicas=cfg.replicas, backend=cfg.backend)
    record.update(mode.fields())  # a run that fails still says the mode it ran in
    if cfg.backend == "tensorflow":
        import tensorflow as tf  # lazy: the TensorFlow backend only

        tf.config.run_functions_eagerly(cfg.profile.run_eagerly)
        # Said once per tf.data function when running eagerly; the input pipeline is traced on purpose.
        warnings.filterwarnings("ignore", message="Even though the `tf.config.experimental_run_functions_eagerly`")
    return mode, bool(local_gpus(cfg.backend))


def load_data(cfg: RunConfig, record: Record) -> Data:
    """The dataset, checked against the sweep's fingerprint, and the run's validation split."""
    from bench.data import load_pets  # lazy: NumPy arrays or tf.data
    from bench.data.split import carve, choose_validation  # lazy: see load_pets

    p = cfg.profile
    # The dataset is the same for every seed (seed 0 of the synthetic generator, as the sweep
    # planned it); the run's seed drives weights, shuffling, augmentation and dropout.
    # TensorFlow keeps its tf.data pipeline (the committed references were measured through it,
    # batch for batch); every other backend reads the same images as decoded, resized arrays.
    splits = load_pets(cfg.data, image_size=p.image_size, seed=0, as_arrays=cfg.backend != "tensorflow")
    provenance = splits.provenance.as_dict()
    record["env"].update(envinfo.dataset_columns(provenance))
    record["env"]["dataset_provenance"] = provenance
    record["dataset"] = dataset_name(provenance)
    if provenance.get("fingerprint") != cfg.dataset_fingerprint:
        raise RuntimeError(
            f"dataset fingerprint {provenance.get('fingerprint')} differs from the sweep's "
            f"{cfg.dataset_fingerprint}: the data changed since the sweep was planned"
        )
    train_ds, train_size, val_ds, validation_split = splits.train, int(provenance["train_size"]), None, None
    if cfg.trains and p.val_images:
        validation_split = choose_validation(train_size, p.val_images, p.val_seed, provenance["fingerprint"])
        train_ds, val_ds = carve(splits.train, validation_split)
        train_size = validation_split.train_size
        record["validation_split"] = validation_split.as_dict()
        provenance["validation"] = validation_split.as_dict()
    test_ds = splits.test
    if p.max_test_examples is not None and p.max_test_examples < int(provenance["test_size"]):
        test_ds = test_ds.take(p.max_test_examples)
    return Data(train_ds, train_size, val_ds, validation_split, test_ds)


def build(cfg: RunConfig, record: Record) -> tuple[BuiltModel, list[MetricRow]]:
    """The model, its build time, parameter counts and FLOPs."""
    from bench.measure.flops import flops_per_image  # lazy: Keras and its backend

    metrics = Metrics()
    t = time.perf_counter()
    built = build_model(cfg)
    record["weights"], record["family"] = built.weights, built.family
    record["frozen_encoder"] = built.frozen_encoder
    record.update(built.record_fields)
    metrics.add("build_time_s", time.perf_counter() - t, "s")
    metrics.add("params_total", count_params(built.model.weights), "count")
    metrics.add("params_trainable", count_params(built.model.trainable_weights), "count")
    if built.family != "classical":  # numpy work in tf.numpy_function is invisible to the profiler: unknown, not 0
        metrics.add("flops_per_image", flops_per_image(built.model, cfg.profile.image_size), "flops")
    return built, metrics.rows


def train_model(cfg: RunConfig, model: Any, data: Data, mode: Mode, record: Record) -> tuple[Mode, list[MetricRow]]:
    """Training with validation, early stopping and precise BN where the profile has them; returns
    the mode as Keras really compiled it. A run with nothing to train (a classical segmenter, a
    cost run) only states its training time, 0, where it is evaluated."""
    from bench.data import test_batches, train_batches  # lazy: the backend (tf.data on TensorFlow)
    from bench.measure.precise_bn import recompute_batchnorm_statistics  # lazy: Keras
    from bench.measure.train import train  # lazy: Keras
    from bench.measure.validation import Validation  # lazy: Keras

    p = cfg.profile
    metrics = Metrics()
    train_time = 0.0
    if count_params(model.trainable_weights) > 0 and cfg.trains:
        batches = train_batches(
            data.train, batch_size=p.batch_size, seed=cfg.seed, augment=p.augment, buffer_size=p.shuffle_buffer
        )
        # A second pipeline of its own seed: BatchNorm statistics come from training images as
        # the training saw them (augmented), never from the validation or test images.
        bn_batches = iter(train_batches(
            data.train, batch_size=p.batch_size, seed=cfg.seed + 1, augment=p.augment, buffer_size=p.shuffle_buffer
        )) if p.precise_bn_batches > 0 else None
        validation = None if data.validation_split is None else Validation(
            test_batches(data.validation, batch_size=p.batch_size), bn_batches, p.precise_bn_batches
        )
        result = train(
            model, batches,
            epochs=p.epochs,
            steps_per_epoch=steps_per_epoch(p, data.train_size),
            batch_size=p.batch_size,
            learning_rate=p.learning_rate,
            verbose=1 if sys.stdout.isatty() else 2,
            jit_compile=mode.xla,
            # JAX compiles even an eager profile's steps: op by op, its first step took 74 s where
            # the jitted one takes seconds (U-Net MobileNetV2, smoke, 2-core CPU).
            run_eagerly=p.run_eagerly and cfg.backend == "torch",
            validation=validation,
            patience=p.patience,
        )
        mode = mode.with_xla(result.jit_compile, "Keras compiled without XLA (a layer does not support it)")
        record["history"] = result.history
        record["training_stop"] = training_stop(result, epoch_cap=p.epochs, patience=p.patience)
        record["stop_reason"] = record["training_stop"]["reason"]
        train_time = result.train_time_s
        metrics.add("train_throughput", result.train_throughput, "images/s")
        metrics.add("train_first_step_s", result.first_step_s, "s")
        metrics.add("epochs_run", result.epochs_run, "count")
        metrics.add("best_epoch", result.best_epoch, "count")
        metrics.add("val_miou", result.tested_val_miou, "ratio")
        if validation is not None and validation.bn_batches_per_epoch:
            # Validation recomputed the statistics before measuring each epoch, and the weights
            # the run goes on with (the best epoch's, where early stopping restored them) carry
            # the statistics that epoch was measured with: recomputing them again would test
            # another model than the one validation chose.
            record["precise_bn_layers"] = validation.bn_layers
            record["precise_bn"] = "before every validation"
        elif bn_batches is not None:
            t = time.perf_counter()
            record["precise_bn_layers"] = recompute_batchnorm_statistics(model, bn_batches, p.precise_bn_batches)
            record["precise_bn"] = "before the test"
            metrics.add("precise_bn_time_s", time.perf_counter() - t, "s")
    if cfg.evaluated:  # a cost run trains nothing: no training time, not even 0
        metrics.add("train_time_s", train_time, "s")
    return mode, metrics.rows


@dataclass(frozen=True)
class TrainingPeak:
    """Training's peak device memory (0 on a CPU), and whether the counter restarted after it so
    that inference's peak is its own (JAX keeps one peak per process: it does not)."""

    mb: float = 0.0
    restarted: bool = False


def training_memory(cfg: RunConfig, gpu: bool) -> tuple[TrainingPeak, list[MetricRow]]:
    """On a GPU, training's peak device memory (building only, for a run that trains nothing),
    then the counter reset where the backend can; nothing and no row on a CPU."""
    peak_train_mb = device_peak_mb(cfg.backend) if gpu else None
    if peak_train_mb is None:
        return TrainingPeak(), []
    metrics = Metrics()
    if cfg.trains:
        metrics.add("peak_train_device_mem_mb", peak_train_mb, "MB")
    return TrainingPeak(peak_train_mb, reset_device_peak(cfg.backend)), metrics.rows


def prepare_inference(cfg: RunConfig, model: Any, mode: Mode) -> tuple[Any, Any, list[MetricRow]]:
    """The traced forward pass (images -> logits, on the device) and the timed predict function
    around it that every later phase calls, with the trace time and the first call's."""
    from bench.measure.timing import (  # lazy: Keras and its backend
        example_batch,
        first_call_seconds,
        make_forward,
        make_predict_fn,
        trace_seconds,
    )

    metrics = Metrics()
    forward = make_forward(model, jit_compile=mode.xla)
    metrics.add("inference_trace_s", trace_seconds(forward, cfg.profile.image_size), "s")
    predict = make_predict_fn(model, forward)
    metrics.add("inference_first_call_s", first_call_seconds(predict, example_batch(1, cfg.profile.image_size)), "s")
    return forward, predict, metrics.rows


def time_inference(cfg: RunConfig, predict: Any, mc_predict: Any, record: Record) -> list[MetricRow]:
    """Batch-1 latency (and the Monte-Carlo prediction's), throughput at the profile's batch and at
    several batch sizes."""
    from bench.measure.timing import (  # lazy: Keras and its backend
        example_batch,
        measure_latency,
        measure_throughput,
        throughput_by_batch,
    )

    p = cfg.profile
    metrics = Metrics()
    latency = measure_latency(predict, example_batch(1, p.image_size), p.timing)
    metrics.add("latency_p50_ms", latency.p50_ms, "ms")
    metrics.add("latency_p90_ms", latency.p90_ms, "ms")
    metrics.add("latency_p95_ms", latency.p95_ms, "ms")
    metrics.add("latency_p99_ms", latency.p99_ms, "ms")
    metrics.add("latency_mean_ms", latency.mean_ms, "ms")
    record["latency_calls"] = latency.calls
    if mc_predict is not None:
        metrics.add("mc_latency_ms", measure_latency(mc_predict, example_batch(1, p.image_size), p.timing).p50_ms, "ms")
    metrics.add(
        "inference_throughput",
        measure_throughput(predict, example_batch(p.timing.throughput_batch, p.image_size), p.timing),
        "images/s",
    )
    for batch, images_per_s in throughput_by_batch(predict, p.image_size, p.timing).items():
        metrics.add(f"inference_throughput_b{batch}", images_per_s, "images/s")
    return metrics.rows


def peak_memory(backend: str, gpu: bool, training: TrainingPeak) -> list[MetricRow]:
    """The process's peak RSS and, on a GPU, inference's (where the backend counts it on its own)
    and the run's peak device memory."""
    metrics = Metrics()
    metrics.add("peak_rss_mb", peak_rss_mb(), "MB")
    peak_mb = device_peak_mb(backend) if gpu else None
    if peak_mb is not None:
        if training.restarted:
            metrics.add("peak_inference_device_mem_mb", peak_mb, "MB")
        metrics.add("peak_device_mem_mb", max(training.mb, peak_mb), "MB")
    return metrics.rows


def max_batch(cfg: RunConfig, predict: Any, gpu: bool, record: Record) -> list[MetricRow]:
    """The largest batch that runs and its throughput (on a GPU; on a CPU the note says why not)."""
    from bench.measure.timing import largest_batch  # lazy: Keras and its backend

    metrics = Metrics()
    biggest = largest_batch(predict, cfg.profile.image_size, cfg.profile.timing, accelerator=gpu)
    metrics.add("inference_max_batch", biggest.batch, "count")
    metrics.add("inference_throughput_max_batch", biggest.images_per_s, "images/s")
    record["max_batch_note"] = biggest.note
    return metrics.rows


def evaluate_on_test(
    cfg: RunConfig, model: Any, forward: Any, predict: Any, test_ds: Any, family: str, staging: Path, record: Record,
) -> tuple[Any, list[MetricRow]]:
    """The test split's evidence (``evidence.npz``), its metric rows, Monte-Carlo dropout where the
    run has it, and the gallery (``predictions.npz``); returns the Monte-Carlo predict function
    (or ``None``) and the rows."""
    from bench.data import test_batches  # lazy: the backend (tf.data on TensorFlow)
    from bench.evidence.metrics import evidence_metrics, scores  # lazy: Keras and its backend
    from bench.evidence.ops import boundary_width, save_evidence  # lazy: Keras and its backend
    from bench.measure.timing import make_mc_predict_fn, make_mc_sample_fn  # lazy: Keras and its backend
    from segmodels.architectures.segnet import dropout_layers  # lazy: Keras

    p = cfg.profile
    metrics = Metrics()
    width = boundary_width(p.image_size)
    t = time.perf_counter()
    # A classical segmenter's one-hot scores are hard labels: no calibration for it (unknown, not 0).
    evidence = evaluate(
        forward, test_batches(test_ds, batch_size=p.batch_size), calibration=family != "classical", width=width
    )
    metrics.add("eval_time_s", time.perf_counter() - t, "s")
    matrix = evidence["confusion"].sum(axis=0, dtype=np.int64)
    record["confusion_matrix"] = matrix.tolist()
    record["boundary_width_px"] = width
    for name, value in scores(matrix, CLASS_NAMES).items():
        metrics.add(name, value, "ratio")

    mc_predict = None
    if cfg.mc_samples and not dropout_layers(model):
        record["notes"].append(
            f"Monte-Carlo dropout asked for ({cfg.mc_samples} samples, --mc-models) but {cfg.model} has no dropout "
            "layer: evaluated without it"
        )
    elif cfg.mc_samples:
        sample = make_mc_sample_fn(model, cfg.seed)
        t = time.perf_counter()
        evidence.update(evaluate_mc(sample, test_batches(test_ds, batch_size=p.batch_size), cfg.mc_samples, width=width))
        metrics.add("mc_eval_time_s", time.perf_counter() - t, "s")
        mc_predict = make_mc_predict_fn(sample, cfg.mc_samples)
        record["mc_dropout"] = {"samples": cfg.mc_samples, "seed": cfg.seed, "dropout_layers": len(dropout_layers(model))}
    save_evidence(staging / EVIDENCE, evidence)
    for name, (value, unit) in evidence_metrics(evidence).items():
        metrics.add(name, value, unit)

    pictures = gallery(predict, test_ds, p.gallery_size, mc_predict)
    if pictures:
        np.savez_compressed(staging / PREDICTIONS, **pictures)
    return mc_predict, metrics.rows


def training_stop(result: TrainResult, *, epoch_cap: int, patience: int) -> dict[str, Any]:
    """How training ended (the record's ``training_stop``): epochs run of the cap, the best epoch,
    and whether the run stopped on its plateau or reached the cap before one. With early stopping
    on, a run at the cap had a better validation mIoU within its last ``patience`` epochs than
    before them: it had not plateaued (``still_improving``), which is all the record claims."""
    if not patience:
        reason = STOP_ALL_EPOCHS
    else:
        reason = STOP_PLATEAU if result.stopped_early else STOP_CAP_STILL_IMPROVING
    return {
        "epochs_run": result.epochs_run,
        "epoch_cap": epoch_cap,
        "best_epoch": result.best_epoch,
        "best_val_miou": result.best_val_miou,
        "reason": reason,
        "patience": patience,
        "restored_best": result.restored_best,
        "still_improving": reason == STOP_CAP_STILL_IMPROVING,
    }


def dataset_name(provenance: dict[str, Any]) -> str:
    """``synthetic`` or ``oxford_iiit_pet`` (where it came from is in ``dataset_source``)."""
    return "synthetic" if provenance.get("synthetic") else "oxford_iiit_pet"
