"""What the harness costs in training speed: at most 5% against a bare ``model.fit``.

U-Net MobileNetV2 at 128 px. The harness side is the harness's own path and its own figure: the
``bench.data`` training pipeline (cache, seeded shuffle, flips, prefetch) into ``bench.measure.train.train``
(NaN guard, step timer, Keras progress) under the worker's seeding and op determinism, and the
``train_throughput`` it reports. The baseline is ``model.fit`` on the same images as in-memory
NumPy arrays, timed by the wall clock over a second ``fit`` call (the first one traces), in a fresh
process with TensorFlow's defaults. Each side runs in its own process, in alternating pairs; the
median of the per-pair ratios is compared (see PAIRS).
Run: ``python -m pytest tests/perf/test_harness_overhead.py -m perf -s``.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys

import pytest

pytestmark = pytest.mark.perf

BATCH = 16
STEPS = 16
MIN_RATIO = 0.95
#: Alternating (bare, harness) pairs; the median of the per-pair ratios is compared. With two
#: samples a side the best-of ratio moved by 0.1 between two runs of the same code (0.835, 0.823
#: against bare fits of 19.8 and 25.1 images/s): a pair's two processes share the machine's state
#: of the moment, and the median ignores the odd pair a neighbour slowed.
PAIRS = 5

SCRIPT = r'''
import json, os, sys, time
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import keras, numpy as np, tensorflow as tf
import segmodels
from bench.data import load_pets, train_batches

mode, batch, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
keras.utils.set_random_seed(0)
source = f"dir:{os.environ['SEGBENCH_PETS_DIR']}" if os.environ.get("SEGBENCH_PETS_DIR") else "synthetic"
splits = load_pets(source, image_size=128, seed=0)
model = segmodels.create_model("unet", "mobilenetv2", input_shape=(128, 128, 3))
if mode == "harness":
    from bench.measure.train import train
    tf.config.experimental.enable_op_determinism()
    data = train_batches(splits.train, batch_size=batch, seed=0, augment=True)
    result = train(model, data, epochs=2, steps_per_epoch=steps, batch_size=batch, learning_rate=1e-3, verbose=2)
    ips = result.train_throughput
else:
    from bench.measure.train import compile_model
    pairs = list(splits.train.as_numpy_iterator())
    x = np.stack([p[0] for p in pairs]); y = np.stack([p[1] for p in pairs])
    n = batch * steps
    reps = -(-n // len(x))
    x, y = np.concatenate([x] * reps)[:n], np.concatenate([y] * reps)[:n]
    compile_model(model, 1e-3)
    model.fit(x[: 2 * batch], y[: 2 * batch], batch_size=batch, epochs=1, shuffle=False, verbose=0)
    t = time.perf_counter()
    model.fit(x, y, batch_size=batch, epochs=1, shuffle=False, verbose=0)
    ips = n / (time.perf_counter() - t)
print("RESULT", json.dumps({"mode": mode, "images_per_s": ips}))
'''


def _measure(mode: str) -> float:
    done = subprocess.run([sys.executable, "-c", SCRIPT, mode, str(BATCH), str(STEPS)], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(out for out in done.stdout.splitlines() if out.startswith("RESULT "))
    return float(json.loads(line[len("RESULT "):])["images_per_s"])


def test_harness_training_throughput_is_within_5_percent_of_model_fit(record_property) -> None:
    harness, bare = [], []
    for pair in range(PAIRS):
        # Each pair alternates which side goes first, so that a drift of the machine's speed over
        # the test (thermal, a neighbour) falls on both sides alike.
        for mode in ("bare", "harness") if pair % 2 == 0 else ("harness", "bare"):
            (bare if mode == "bare" else harness).append(_measure(mode))
    ratios = sorted(h / b for h, b in zip(harness, bare))
    ratio = statistics.median(ratios)
    record_property("harness_images_per_s", harness)
    record_property("model_fit_images_per_s", bare)
    record_property("ratios", ratios)
    print(
        f"\nU-Net MobileNetV2, 128 px, batch {BATCH}, {PAIRS} alternating pairs: harness "
        f"{[f'{v:.1f}' for v in harness]} images/s, model.fit on in-memory arrays {[f'{v:.1f}' for v in bare]} "
        f"images/s; harness/fit per pair {[f'{r:.3f}' for r in ratios]}, median {ratio:.3f}"
    )
    assert ratio >= MIN_RATIO
