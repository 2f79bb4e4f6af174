"""Speed modes on this machine, measured in one process as ratios, so that two CPUs compare.

* The training loop without a per-step host sync: ``bench.measure.train.BoundaryCallbacks`` (batch-end
  hooks, and so reads of the logs, at check points only) against Keras's own ``CallbackList``,
  which copies the logs to the host after every step (what ``bench.measure.train`` did before).
* Precision, XLA and op determinism: training images/s of U-Net MobileNetV2 at 128 px, batch 8,
  for each mode (the figures of README "Speed").

Each side runs the same steps of ``model.fit`` on in-memory batches, alternating, several times;
the best of each is compared (noise on a shared machine only ever slows a run down).
Run: ``python -m pytest tests/perf/test_speed_modes.py -m perf -s``.
"""

from __future__ import annotations

import time

import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.python.framework import config as tf_config

from bench.measure.train import CHECK_EVERY, BoundaryCallbacks, NaNGuard, StepTimer, compile_model

pytestmark = pytest.mark.perf


def _data(size: int, batch: int) -> tf.data.Dataset:
    rng = np.random.default_rng(0)
    x = rng.random((batch * 4, size, size, 3), dtype=np.float32)
    y = rng.integers(0, 3, (batch * 4, size, size, 1)).astype(np.int32)
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(batch).repeat().prefetch(2)


def _tiny(size: int) -> keras.Model:
    inputs = keras.Input((size, size, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    return keras.Model(inputs, keras.layers.Conv2D(3, 1)(x))


def _seconds_per_step(model: keras.Model, data: tf.data.Dataset, steps: int, callbacks: list | keras.callbacks.CallbackList) -> float:
    t = time.perf_counter()
    model.fit(data, epochs=1, steps_per_epoch=steps, callbacks=callbacks, verbose=0)
    return (time.perf_counter() - t) / steps


@pytest.mark.parametrize(("name", "size", "batch", "steps", "reps"), [
    ("tiny conv net, 32 px (per-step overhead dominates)", 32, 8, 320, 20),
    ("U-Net MobileNetV2, 128 px", 128, 8, 32, 6),
])
def test_training_without_a_per_step_sync_is_not_slower(name, size, batch, steps, reps, record_property) -> None:
    import segmodels

    keras.utils.set_random_seed(0)
    tf.config.experimental.enable_op_determinism()
    model = _tiny(size) if size == 32 else segmodels.create_model("unet", "mobilenetv2", input_shape=(size, size, 3))
    compile_model(model, 1e-3)
    data = _data(size, batch)
    sides = {
        "per step": lambda: [NaNGuard(), StepTimer(batch)],  # Keras's CallbackList: logs read after every step
        "check points": lambda: BoundaryCallbacks(
            [NaNGuard(), StepTimer(batch)], add_history=True, add_progbar=False, verbose=0, epochs=1, steps=steps,
            model=model,
        ),
    }
    _seconds_per_step(model, data, 3, sides["per step"]())  # tracing
    times: dict[str, list[float]] = {k: [] for k in sides}
    for i in range(reps):  # alternating, each side first in turn
        for side in sorted(sides, reverse=bool(i % 2)):
            times[side].append(_seconds_per_step(model, data, steps, sides[side]()))
    ratios = sorted(a / b for a, b in zip(times["per step"], times["check points"]))
    median = float(np.median(ratios))
    best = {k: min(v) for k, v in times.items()}
    record_property("ms_per_step", {k: [t * 1e3 for t in v] for k, v in times.items()})
    print(
        f"\n{name} on {tf.config.list_logical_devices()[-1].device_type}, batch {batch}, {steps} steps x {reps} "
        f"alternating: logs read every step {best['per step'] * 1e3:.2f} ms/step (best), at check points (every "
        f"{CHECK_EVERY}) {best['check points'] * 1e3:.2f} ms/step; speed-up per pair: median {median:.3f}x "
        f"(range {ratios[0]:.3f}-{ratios[-1]:.3f})"
    )
    # On a CPU the device is the host: no gain is expected (median 1.00x on the reference machine), and
    # single pairs swing +-40% when the machine is shared; a GPU shows the gain (nox -s gpu runs this).
    assert median >= 0.85


MODES = [  # (label, precision, xla, deterministic)
    ("float32, deterministic", "float32", False, True),
    ("float32, not deterministic", "float32", False, False),
    ("mixed_bfloat16, deterministic", "mixed_bfloat16", False, True),
    ("mixed_float16, deterministic", "mixed_float16", False, True),
    ("float32, XLA (not deterministic)", "float32", True, False),
    ("mixed_bfloat16, XLA (not deterministic)", "mixed_bfloat16", True, False),
]


def test_cpu_training_speed_of_each_mode(record_property) -> None:
    """README "Speed": training images/s of each mode on this CPU, relative to float32."""
    import segmodels

    size, batch, steps, reps = 128, 8, 16, 3
    data = _data(size, batch)
    models = {}
    try:
        for label, precision, xla, deterministic in MODES:
            keras.mixed_precision.set_global_policy(precision)
            keras.utils.set_random_seed(0)
            (tf.config.experimental.enable_op_determinism if deterministic else tf_config.disable_op_determinism)()
            model = segmodels.create_model("unet", "mobilenetv2", input_shape=(size, size, 3))
            compile_model(model, 1e-3, jit_compile=xla)
            assert bool(model.jit_compile) == xla and model.outputs[0].dtype == "float32"
            _seconds_per_step(model, data, 2, [])  # tracing, XLA compilation
            models[label] = (model, deterministic)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    best = {label: float("inf") for label in models}
    for _ in range(reps):
        for label, (model, deterministic) in models.items():
            (tf.config.experimental.enable_op_determinism if deterministic else tf_config.disable_op_determinism)()
            best[label] = min(best[label], _seconds_per_step(model, data, steps, [NaNGuard(), StepTimer(batch)]))
    tf.config.experimental.enable_op_determinism()
    base = best[MODES[0][0]]
    print(f"\nU-Net MobileNetV2, {size} px, batch {batch}, best of {reps} x {steps} training steps:")
    for label, seconds in best.items():
        print(f"  {label:42s} {batch / seconds:6.1f} images/s  ({base / seconds:.2f}x float32 deterministic)")
    record_property("images_per_s", {label: batch / s for label, s in best.items()})
