"""Inference latency and throughput, measured the way MMSegmentation's benchmark does.

One callable is timed everywhere: :func:`make_predict_fn` builds it (the model in inference mode,
compiled as the run's Keras backend compiles, returning a NumPy array, so every call waits for
the device), and
the pytest-benchmark suite (``tests/perf``) times the very same callable, so the two figures can be
cross-checked. Warm-up calls (tracing, allocator) are excluded; the number of timed calls is
bounded by both a count and a time so that fast models get stable percentiles and slow ones do
not take forever. Tracing (:func:`trace_seconds`) and the first call (XLA compilation,
autotuning: :func:`first_call_seconds`) are timed on their own; throughput is measured at several
batch sizes (:func:`throughput_by_batch`) and, on a GPU, at the largest batch that fits
(:func:`largest_batch`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from bench.config import backends
from bench.config.profiles import TimingSpec

PredictFn = Callable[[Any], np.ndarray]


def make_forward(model: Any, jit_compile: bool = False) -> Any:
    """``images (B, H, W, 3) -> logits`` on the device: the model in inference mode, compiled the
    way the run's Keras backend compiles.

    TensorFlow: one ``tf.function`` traced once for any batch size (tracing a ResNet-152 model
    costs seconds on a CPU, and evaluation, the gallery, latency and throughput use four batch
    sizes); the evaluation's evidence step calls it inside its own traced step, which reuses this
    trace; with ``jit_compile`` XLA compiles it, again for each new batch size at its first call.
    JAX: :class:`StatelessForward` (XLA always). PyTorch: the model called eagerly without
    gradients (``jit_compile`` is Keras's, at training, where a profile asks for it).
    """
    backend = backends.current()
    if backend == "tensorflow":
        import tensorflow as tf  # lazy: the TensorFlow backend only

        spec = tf.TensorSpec([None, *model.input_shape[1:]], tf.float32)
        return tf.function(lambda x: model(x, training=False), input_signature=[spec], jit_compile=jit_compile)
    if backend == "jax":
        return StatelessForward(model)
    return backends.traced(lambda x: model(x, training=False))


class StatelessForward:
    """A Keras model on JAX as one jitted pure function of its variables and the images.

    The variables are arguments, not constants of the compiled program: a model traced with its
    weights closed over would have them copied into the program (1.8 GB for an FCN on ResNet).
    Their values are read when the forward is made, so make it after training (as a run does).
    For a model whose dropout layers draw seeds (a Monte-Carlo sampler), each call threads the seed
    generators' state on, so every call draws new masks and the same calls give the same samples.
    """

    def __init__(self, model: Any, *, softmax: bool = False) -> None:
        import jax  # lazy: the JAX backend only
        import keras

        self.model, self.input_shape = model, model.input_shape

        def pure(trainable: Any, non_trainable: Any, images: Any) -> tuple[Any, Any]:
            out, non_trainable = model.stateless_call(trainable, non_trainable, images, training=False)
            if softmax:
                out = keras.ops.softmax(keras.ops.cast(out, "float32"), axis=-1)
            return out, non_trainable

        self._pure = jax.jit(pure)
        self._trainable = [v.value for v in model.trainable_variables]
        self._non_trainable = [v.value for v in model.non_trainable_variables]

    def __call__(self, images: Any) -> Any:
        out, self._non_trainable = self._pure(self._trainable, self._non_trainable, images)
        return out

    def trace(self, batch: Any) -> None:
        """Traces and lowers the function for ``batch``'s shape without running it."""
        self._pure.lower(self._trainable, self._non_trainable, batch)


def trace_seconds(forward: Any, image_size: int | None = None) -> float:
    """Traces ``forward`` (a :func:`make_forward`) now and returns how long it took; later calls
    reuse the trace, so the first call's time is compilation, autotuning and allocation only.
    TensorFlow traces once for every batch size; JAX traces (and lowers) at batch 1, the first
    call's size (``image_size``, default the model's input size); an eager PyTorch forward has
    nothing to trace (0 s)."""
    batch = example_batch(1, image_size or forward.input_shape[1]) if isinstance(forward, StatelessForward) else None
    t = time.perf_counter()
    if hasattr(forward, "get_concrete_function"):
        forward.get_concrete_function()
    elif batch is not None:
        forward.trace(batch)  # tracing and lowering; XLA's compilation is the first call's
    return time.perf_counter() - t


def first_call_seconds(predict: PredictFn, batch: Any) -> float:
    """Seconds of one call, meant as the first at ``batch``'s size (XLA compilation, cuDNN
    autotuning and allocation included; the warm latency beside it shows the one-off part)."""
    t = time.perf_counter()
    predict(batch)
    return time.perf_counter() - t


def make_predict_fn(model: Any, forward: Any = None) -> PredictFn:
    """The timed callable: ``images (B, H, W, 3) -> logits as np.ndarray``, device-synchronised.

    Copying the result to the host waits for the device to finish (every backend); on a GPU
    without it a call would only time the kernel launches (JAX and PyTorch dispatch asynchronously
    too).

    Args:
        forward: The model's :func:`make_forward`, where the caller has it already (one trace).
    """
    forward = make_forward(model) if forward is None else forward

    def predict(images: Any) -> np.ndarray:
        return backends.to_numpy(forward(images))

    return predict


def make_mc_sample_fn(model: Any, seed: int) -> Any:
    """``images -> softmax probabilities`` of one Monte-Carlo dropout pass, compiled once.

    The sampling is :func:`segmodels.architectures.segnet.mc_sampler`'s (every dropout layer on,
    BatchNorm in inference mode, masks seeded by ``seed``): each call draws new masks, and the
    same seed and the same calls give the same samples. Raises ``ValueError`` for a model without
    dropout.
    """
    import keras

    from segmodels.architectures.segnet import mc_sampler  # lazy: Keras

    sampler = mc_sampler(model, seed)
    backend = backends.current()
    if backend == "jax":
        return StatelessForward(sampler, softmax=True)

    def sample(x: Any) -> Any:
        return keras.ops.softmax(keras.ops.cast(sampler(x, training=False), "float32"), axis=-1)

    if backend == "tensorflow":
        import tensorflow as tf  # lazy: the TensorFlow backend only

        spec = tf.TensorSpec([None, *model.input_shape[1:]], tf.float32)
        return tf.function(sample, input_signature=[spec], jit_compile=False)
    return backends.traced(sample)


def make_mc_predict_fn(sample: Any, num_samples: int) -> PredictFn:
    """The timed callable of Monte-Carlo dropout: the mean of ``num_samples`` passes, as np.ndarray."""

    def predict(images: Any) -> np.ndarray:
        total = sample(images)
        for _ in range(num_samples - 1):
            total += sample(images)
        return backends.to_numpy(total / num_samples)

    return predict


def example_batch(batch_size: int, image_size: int, seed: int = 0) -> Any:
    """A fixed random image batch already on the device (the backend's tensor), values in [0, 1]."""
    import keras

    rng = np.random.default_rng(seed)
    return keras.ops.convert_to_tensor(rng.random((batch_size, image_size, image_size, 3), dtype=np.float32))


@dataclass(frozen=True)
class LatencyStats:
    """Batch-1 latency percentiles in milliseconds over ``calls`` timed calls."""

    p50_ms: float
    p90_ms: float
    p95_ms: float
    mean_ms: float
    calls: int
    p99_ms: float = float("nan")


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
        stop = enough or len(durations) >= spec.max_calls or elapsed >= spec.max_seconds
        # The minimum call count wins over max_seconds: percentiles of 3 calls mean little.
        if stop and len(durations) >= min(spec.min_calls, spec.max_calls):
            return durations


def measure_latency(predict: PredictFn, image: Any, spec: TimingSpec) -> LatencyStats:
    """Latency of ``predict(image)`` for one image (``image`` of shape (1, H, W, 3))."""
    ms = np.asarray(time_calls(lambda: predict(image), spec)) * 1e3
    p50, p90, p95, p99 = np.percentile(ms, [50, 90, 95, 99])
    return LatencyStats(float(p50), float(p90), float(p95), float(ms.mean()), int(ms.size), float(p99))


def measure_throughput(predict: PredictFn, batch: Any, spec: TimingSpec) -> float:
    """Images per second of ``predict(batch)`` at ``spec.throughput_batch`` (median call)."""
    throughput_spec = TimingSpec(
        warmup_calls=1, min_calls=spec.throughput_calls, min_seconds=0.0,
        max_calls=spec.throughput_calls, max_seconds=float("inf"),
    )
    seconds = float(np.median(time_calls(lambda: predict(batch), throughput_spec)))
    return int(batch.shape[0]) / seconds


# === Throughput at several batch sizes: where batching stops paying ===

#: The largest-batch search on a GPU stops here (a larger batch says nothing more to a user);
#: ``$SEGBENCH_MAX_BATCH`` lowers it (the GPU check does, to fit its time), and the record's
#: ``max_batch_note`` says where a search stopped.
MAX_BATCH_SEARCH = 4096
MAX_BATCH_ENV = "SEGBENCH_MAX_BATCH"


def max_batch_limit() -> int:
    """``$SEGBENCH_MAX_BATCH``, else :data:`MAX_BATCH_SEARCH`."""
    import os

    return int(os.environ.get(MAX_BATCH_ENV) or MAX_BATCH_SEARCH)


def throughput_by_batch(predict: PredictFn, image_size: int, spec: TimingSpec) -> dict[int, float]:
    """Images per second at each of ``spec.throughput_batches`` (median of ``throughput_calls``
    calls after one warm-up call each)."""
    return {b: measure_throughput(predict, example_batch(b, image_size), spec) for b in spec.throughput_batches}


@dataclass(frozen=True)
class LargestBatch:
    """The largest inference batch that fitted in device memory, and its throughput.

    Attributes:
        batch: The largest batch (a power of two) that ran; ``None`` where the search was skipped.
        images_per_s: Its throughput.
        note: Why the search was skipped, or where it stopped.
    """

    batch: int | None
    images_per_s: float | None
    note: str = ""


def largest_batch(
    predict: PredictFn, image_size: int, spec: TimingSpec, *, accelerator: bool, limit: int | None = None
) -> LargestBatch:
    """Doubles the batch from 1 until the device runs out of memory (or ``limit``).

    Only on an accelerator: a CPU pages host memory long before an allocation fails, so the
    search says nothing useful there and is skipped, with the reason. Each size is timed like
    :func:`measure_throughput`; an out-of-memory error (:func:`out_of_memory`) ends the search.
    """
    if not accelerator:
        return LargestBatch(None, None, "skipped: no accelerator (a CPU pages rather than running out of memory)")
    limit = max_batch_limit() if limit is None else limit
    best = LargestBatch(None, None, "batch 1 did not fit")
    batch = 1
    while batch <= limit:
        try:
            images_per_s = measure_throughput(predict, example_batch(batch, image_size), spec)
        except Exception as error:
            if not out_of_memory(error):
                raise
            return LargestBatch(best.batch, best.images_per_s, f"batch {batch} ran out of device memory")
        best = LargestBatch(batch, images_per_s)
        batch *= 2
    return LargestBatch(best.batch, best.images_per_s, f"the search stops at {limit}")


def out_of_memory(error: BaseException) -> bool:
    """Whether ``error`` is a device running out of memory, on any backend: TensorFlow's
    ``ResourceExhaustedError`` (or XLA's ``InternalError`` naming the allocation), XLA's
    ``RESOURCE_EXHAUSTED`` status under JAX, PyTorch's ``OutOfMemoryError``."""
    kind = type(error).__name__
    text = str(error)
    if kind in ("ResourceExhaustedError", "OutOfMemoryError"):
        return True
    if kind == "InternalError":
        return "memory" in text.lower()
    return kind in ("XlaRuntimeError", "JaxRuntimeError") and "RESOURCE_EXHAUSTED" in text
