"""Inference latency and throughput, measured the way MMSegmentation's benchmark does.

One callable is timed everywhere: :func:`make_predict_fn` builds it (a traced ``tf.function`` of
the model in inference mode that returns a NumPy array, so every call waits for the device), and
the pytest-benchmark suite (``tests/perf``) times the very same callable, so the two figures can be
cross-checked. Warm-up calls (tracing, allocator) are excluded; the number of timed calls is
bounded by both a count and a time so that fast models get stable percentiles and slow ones do
not take forever.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from bench.profiles import TimingSpec

PredictFn = Callable[[Any], np.ndarray]


def make_predict_fn(model: Any) -> PredictFn:
    """The timed callable: ``images (B, H, W, 3) -> logits as np.ndarray``, device-synchronised.

    ``.numpy()`` copies the result to the host, which waits for the device to finish; on a GPU
    without it a call would only time the kernel launches. The function is traced once for any
    batch size (tracing a ResNet-152 model costs seconds on a CPU, and evaluation, the gallery,
    latency and throughput use four batch sizes).
    """
    import tensorflow as tf

    spec = tf.TensorSpec([None, *model.input_shape[1:]], tf.float32)
    forward = tf.function(lambda x: model(x, training=False), input_signature=[spec], jit_compile=False)

    def predict(images: Any) -> np.ndarray:
        return forward(images).numpy()

    return predict


def example_batch(batch_size: int, image_size: int, seed: int = 0) -> Any:
    """A fixed random image batch already on the device (a ``tf.Tensor``), values in [0, 1]."""
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    return tf.constant(rng.random((batch_size, image_size, image_size, 3), dtype=np.float32))


@dataclass(frozen=True)
class LatencyStats:
    """Batch-1 latency percentiles in milliseconds over ``calls`` timed calls."""

    p50_ms: float
    p90_ms: float
    p95_ms: float
    mean_ms: float
    calls: int


def time_calls(fn: Callable[[], Any], spec: TimingSpec) -> list[float]:
    """Seconds per call of ``fn()`` after ``spec.warmup_calls`` untimed calls."""
    for _ in range(spec.warmup_calls):
        fn()
    durations: list[float] = []
    start = time.perf_counter()
    while True:
        t0 = time.perf_counter()
        fn()
        durations.append(time.perf_counter() - t0)
        elapsed = time.perf_counter() - start
        enough = len(durations) >= spec.min_calls and elapsed >= spec.min_seconds
        if enough or len(durations) >= spec.max_calls or elapsed >= spec.max_seconds:
            # The minimum call count wins over max_seconds: percentiles of 3 calls mean little.
            if len(durations) >= min(spec.min_calls, spec.max_calls):
                return durations


def measure_latency(predict: PredictFn, image: Any, spec: TimingSpec) -> LatencyStats:
    """Latency of ``predict(image)`` for one image (``image`` of shape (1, H, W, 3))."""
    ms = np.asarray(time_calls(lambda: predict(image), spec)) * 1e3
    p50, p90, p95 = np.percentile(ms, [50, 90, 95])
    return LatencyStats(float(p50), float(p90), float(p95), float(ms.mean()), int(ms.size))


def measure_throughput(predict: PredictFn, batch: Any, spec: TimingSpec) -> float:
    """Images per second of ``predict(batch)`` at ``spec.throughput_batch`` (median call)."""
    throughput_spec = TimingSpec(
        warmup_calls=1, min_calls=spec.throughput_calls, min_seconds=0.0,
        max_calls=spec.throughput_calls, max_seconds=float("inf"),
    )
    seconds = float(np.median(time_calls(lambda: predict(batch), throughput_spec)))
    return int(batch.shape[0]) / seconds
